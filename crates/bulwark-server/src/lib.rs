//! The Bulwark observability API as an embeddable [`axum::Router`], and the pieces of the
//! `bulwark` binary.
//!
//! ```
//! use bulwark_server::{AppState, router};
//!
//! let state = AppState::new("./bulwark-data".into());
//! // Nest it into your own service:
//! let app: axum::Router = axum::Router::new().merge(router(state));
//! # let _ = app;
//! ```

pub mod api;
pub mod cli;
pub mod error;
pub mod state;

pub use api::router;
pub use error::ApiError;
pub use state::AppState;
