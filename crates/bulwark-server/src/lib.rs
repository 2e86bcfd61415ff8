//! The Bulwark service: the observability API and the hardened workflow endpoint as an
//! embeddable [`axum::Router`], and the pieces of the `bulwark` binary.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bulwark_server::{AppState, router};
//! use bulwark_server::workflow::WorkflowDefinition;
//! use serde_json::json;
//!
//! let dir = std::env::temp_dir().join(format!("bulwark-doc-{}", std::process::id()));
//! let state = AppState::new(&dir).await?;
//! // Register your own workflow next to the demo:
//! state.workflows().register(
//!     WorkflowDefinition::new("hello", "two steps")
//!         .step("classify", "router", |ctx, mut s| async move {
//!             // Runs behind the circuit breaker named "llm".
//!             let label: String = ctx.call("llm", || async { Ok::<_, String>("greeting".into()) }).await?;
//!             s["label"] = json!(label);
//!             Ok(s)
//!         })
//!         .step("greet", "greeter", |_ctx, mut s| async move {
//!             s["greeting"] = json!("hello");
//!             Ok(s)
//!         }),
//! );
//! assert_eq!(state.workflows().names(), ["demo", "hello"]);
//! // Nest it into your own service:
//! let app: axum::Router = axum::Router::new().merge(router(state));
//! # let _ = app;
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod api;
mod auth;
pub mod budgets;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod guard;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod workflow;

pub use api::router;
pub use error::ApiError;
pub use state::AppState;
