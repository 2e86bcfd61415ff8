//! The demo workflow: four agents calling simulated flaky tools, each through the resilience
//! pipeline named after the tool (retries and a circuit breaker by default, see
//! [`crate::pipelines`]), so that a fresh `bulwark serve` has something real to show on
//! every endpoint.

use std::sync::Arc;
use std::time::Duration;

use bulwark::pipeline::PipelineError;
use bulwark::retry::Classify;
use serde_json::{Value, json};

use bulwark::durable::{RetryPolicy, StepContext, StepError, StepPolicy, Workflow};

use crate::pipelines::Pipelines;

/// The name the demo workflow is registered under (the default of a request's `workflow`).
pub const DEMO_WORKFLOW: &str = "demo";

/// A simulated external tool: answers after `latency`, failing with probability
/// `failure_rate`. Its answer depends only on its input, so retries and resumed runs agree.
#[derive(Clone, Debug)]
pub struct FlakyTool {
    name: Arc<str>,
    failure_rate: f64,
    latency: Duration,
}

/// A simulated tool failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{tool}: simulated failure")]
#[non_exhaustive]
pub struct ToolError {
    /// The tool that failed.
    pub tool: String,
}

/// A simulated failure is transient: worth retrying, with no wait asked.
impl Classify for ToolError {}

impl FlakyTool {
    /// A tool named `name`; `failure_rate` is clamped to `[0, 1]`.
    pub fn new(name: &str, failure_rate: f64, latency: Duration) -> Self {
        Self {
            name: name.into(),
            failure_rate: if failure_rate.is_nan() {
                0.0
            } else {
                failure_rate.clamp(0.0, 1.0)
            },
            latency,
        }
    }

    /// The tool's name (also the name of the breaker around it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One call.
    pub async fn call(&self, input: &str) -> Result<String, ToolError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.failure_rate > 0.0 && fastrand::f64() < self.failure_rate {
            return Err(ToolError {
                tool: self.name.to_string(),
            });
        }
        Ok(format!("{}({input})", self.name))
    }
}

/// Reads the previous step's output (or the run id, for the first step), calls `tool` on it
/// through its pipeline as a memoized effect (a resumed run replays the recorded answer), and
/// records this step's output and its place in the trail. When the pipeline gives up, the
/// step pauses the run: it waits until a person (or another `execute`) runs the step again.
async fn use_tool(
    context: StepContext,
    (tool, pipelines): (FlakyTool, Arc<Pipelines>),
    mut state: Value,
    input_key: Option<&'static str>,
    output_key: &'static str,
) -> Result<Value, StepError> {
    if state.is_null() {
        state = Value::Object(serde_json::Map::new());
    }
    let Some(_) = state.as_object() else {
        return Err(StepError::fatal(format!(
            "the demo's state is a JSON object, not {}",
            kind_of(&state)
        )));
    };
    let input = match input_key {
        Some(key) => state[key]["output"].as_str().unwrap_or_default().to_owned(),
        None => context.run_id().to_owned(),
    };
    let pipeline = pipelines
        .get(tool.name())
        .map_err(|error| StepError::fatal(format!("pipeline {:?}: {error}", tool.name())))?;
    let output: String = context
        .effect(tool.name(), |_key| async {
            pipeline
                .execute(|| tool.call(&input))
                .await
                .map_err(|error| {
                    StepError::pause(format!("step {:?}: {}", context.step(), describe(&error)))
                })
        })
        .await?;
    state[output_key] = json!({ "agent": context.agent(), "output": output });
    let mut trail = match state["trail"].take() {
        Value::Array(trail) => trail,
        _ => Vec::new(),
    };
    trail.push(json!(context.step()));
    state["trail"] = Value::Array(trail);
    Ok(state)
}

/// What kind of JSON value `value` is, for a message.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why a tool call through its pipeline failed, in words.
fn describe(error: &PipelineError<ToolError>) -> String {
    match error {
        PipelineError::Failed(failed) => failed.to_string(),
        PipelineError::RateLimited(limited) => limited.to_string(),
        PipelineError::BulkheadFull(full) => full.to_string(),
        PipelineError::TimedOut(timed_out) => timed_out.to_string(),
        PipelineError::CircuitOpen(rejected) => rejected.to_string(),
        PipelineError::RetryBudgetExhausted { attempts, last } => {
            format!(
                "retry budget exhausted after {attempts} attempt(s); last: {}",
                describe(last)
            )
        }
        other => format!("{:?}", other.kind()),
    }
}

/// The demo: a researcher searches, an analyst analyses, a writer drafts and a reviewer
/// checks, each through its own simulated tool (`search_api`, `analysis_api`, `llm_api`,
/// `review_api`) with the given failure rate and latency, through the pipeline of that name
/// (which does the retrying: the steps themselves make one attempt).
pub fn demo_workflow(
    failure_rate: f64,
    latency: Duration,
    pipelines: Arc<Pipelines>,
) -> Workflow<Value> {
    let tool = |name| {
        (
            FlakyTool::new(name, failure_rate, latency),
            Arc::clone(&pipelines),
        )
    };
    let (search, analysis, llm, review) = (
        tool("search_api"),
        tool("analysis_api"),
        tool("llm_api"),
        tool("review_api"),
    );
    let once = || StepPolicy::new().retry(RetryPolicy::none());
    Workflow::new(DEMO_WORKFLOW)
        .description(
            "research, analyse, draft and review, each agent calling a simulated flaky tool",
        )
        .step_with("research", "researcher", once(), move |ctx, state| {
            use_tool(ctx, search.clone(), state, None, "research")
        })
        .step_with("analyse", "analyst", once(), move |ctx, state| {
            use_tool(ctx, analysis.clone(), state, Some("research"), "analysis")
        })
        .step_with("draft", "writer", once(), move |ctx, state| {
            use_tool(ctx, llm.clone(), state, Some("analysis"), "draft")
        })
        .step_with("review", "reviewer", once(), move |ctx, state| {
            use_tool(ctx, review.clone(), state, Some("draft"), "review")
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn a_tool_that_never_fails_answers_from_its_input_alone() {
        let tool = FlakyTool::new("t", 0.0, Duration::ZERO);
        assert_eq!(tool.call("x").await.unwrap(), "t(x)");
        let always = FlakyTool::new("t", 1.0, Duration::ZERO);
        assert_eq!(always.call("x").await.unwrap_err().tool, "t");
    }

    #[tokio::test]
    async fn the_demo_steps_thread_state_from_one_agent_to_the_next() {
        let pipelines = crate::pipelines::Pipelines::new(
            &Default::default(),
            crate::pipelines::default_pipeline(1, Default::default()),
            Default::default(),
            Default::default(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let manager = bulwark::checkpoint::StateCheckpointManager::open(dir.path())
            .await
            .unwrap();
        let executor = bulwark::durable::Executor::builder(manager)
            .workflow(demo_workflow(0.0, Duration::ZERO, Arc::new(pipelines)))
            .build()
            .unwrap();
        let run = executor
            .start_with_id(DEMO_WORKFLOW, "run-1", &json!({}))
            .await
            .unwrap();
        let state = run.state;
        assert_eq!(
            state["trail"],
            json!(["research", "analyse", "draft", "review"])
        );
        assert_eq!(state["research"]["output"], "search_api(run-1)");
        assert_eq!(state["review"]["agent"], "reviewer");
        assert_eq!(
            state["review"]["output"],
            "review_api(llm_api(analysis_api(search_api(run-1))))"
        );
    }
}
