//! The Bulwark service: the observability API and the hardened workflow endpoint as an
//! embeddable [`axum::Router`], and the pieces of the `bulwark` binary.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bulwark::durable::{StepError, Workflow};
//! use bulwark_server::{AppState, router};
//! use serde_json::{Value, json};
//!
//! let dir = tempfile::tempdir()?;
//! let state = AppState::new(dir.path()).await?;
//! let llm = state.pipelines().get("llm")?; // `[pipelines.llm]`, or the default
//! // Register your own durable workflow next to the demo:
//! state.workflows().register(
//!     Workflow::new("hello")
//!         .step("classify", "router", move |ctx, mut s: Value| {
//!             let llm = llm.clone();
//!             async move {
//!                 // Recorded once per run, called through the pipeline named "llm".
//!                 let label: String = ctx.effect("classify", |_key| async move {
//!                     llm.execute(|| async { Ok::<_, String>("greeting".to_owned()) })
//!                         .await
//!                         .map_err(|e| StepError::retryable(format!("{e:?}")))
//!                 }).await?;
//!                 s["label"] = json!(label);
//!                 Ok(s)
//!             }
//!         })
//!         .step("greet", "greeter", |_ctx, mut s: Value| async move {
//!             s["greeting"] = json!("hello");
//!             Ok(s)
//!         }),
//! )?;
//! assert_eq!(state.workflows().names(), ["demo", "hello"]);
//! // Nest it into your own service:
//! let app: axum::Router = axum::Router::new().merge(router(state));
//! # let _ = app;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod alerting;
pub mod api;
mod auth;
pub mod budgets;
pub mod cli;
pub mod config;
mod dashboard;
pub mod error;
pub mod extract;
pub mod guard;
pub mod pipelines;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod workflow;

pub use api::router;
pub use error::ApiError;
pub use state::AppState;
