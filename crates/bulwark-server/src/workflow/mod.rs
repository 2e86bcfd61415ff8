//! Registered multi-step, multi-agent workflows and the runner that hardens them.
//!
//! A [`WorkflowDefinition`] is a name and an ordered list of steps; each step belongs to an
//! agent and is an async function from the run's JSON state to the next state. The runner
//! executes the steps not yet done — resuming from the run's latest checkpoint — with a span
//! per run and per step, retries a failed step up to `max_attempts` times, and reaches
//! external dependencies through [`StepContext::call`], which puts a circuit breaker named
//! after the dependency around the call. Because a step maps state to state, a run resumed
//! after a crash ends in the same state as an uninterrupted one.
//!
//! ```
//! use bulwark_server::workflow::{StepError, WorkflowDefinition, WorkflowRegistry};
//! use serde_json::json;
//!
//! let registry = WorkflowRegistry::new();
//! registry.register(
//!     WorkflowDefinition::new("greet", "says hello, then goodbye")
//!         .step("hello", "greeter", |_ctx, mut state| async move {
//!             state["hello"] = json!("world");
//!             Ok::<_, StepError>(state)
//!         })
//!         .step("goodbye", "greeter", |_ctx, mut state| async move {
//!             state["goodbye"] = json!("moon");
//!             Ok(state)
//!         }),
//! );
//! let greet = registry.get("greet").unwrap();
//! assert_eq!(greet.steps().len(), 2);
//! assert_eq!(registry.names(), ["greet"]);
//! ```

mod definition;
mod demo;
pub mod journal;
mod runner;

pub(crate) use definition::{BreakerGuard, DependencyGuard};
pub use definition::{
    Step, StepContext, StepError, StepFuture, WorkflowDefinition, WorkflowRegistry,
};
pub use demo::{DEMO_WORKFLOW, FlakyTool, ToolError, demo_workflow};
pub(crate) use runner::run;
pub use runner::{RunOutcome, RunState, RunStatus};

/// Whether `id` may name a workflow run (and so a checkpoint key): 1 to 128 characters from
/// `A-Z a-z 0-9 . _ -`, not starting with a dot (so never `.` or `..`).
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
