//! What a workflow is: named steps, each owned by an agent, in sequence or fanned out.
//!
//! A [`Workflow<S>`] is typed by its state `S`; registering it in an
//! [`Executor`](super::Executor) erases the type into a [`WorkflowDef`] whose steps map JSON to
//! JSON, so one executor runs workflows of different state types.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::StepContext;
use super::error::{DurableError, StepError};
use super::retry::StepPolicy;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A step or branch with its types erased: JSON state in, JSON output out.
pub(crate) type ErasedStep =
    Arc<dyn Fn(StepContext, Value) -> BoxFuture<'static, Result<Value, StepError>> + Send + Sync>;

/// A fan-out's join with its types erased.
type ErasedMerge =
    Arc<dyn Fn(Value, Vec<BranchOutcome<Value>>) -> Result<Value, StepError> + Send + Sync>;

/// When a fan-out is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Join {
    /// Once every branch has settled (succeeded, or failed after its retries).
    All,
    /// Once this many branches have succeeded; the others are cancelled.
    First(usize),
}

/// What a branch's failure (after its retries) does to its fan-out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BranchFailure {
    /// The fan-out step fails, and the other branches are cancelled (the default).
    #[default]
    FailStep,
    /// The failure is handed to the join as an `Err` outcome and the others go on.
    Continue,
}

/// A branch's result as the join sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BranchOutcome<B> {
    /// The branch's name.
    pub branch: String,
    /// Its output, or its error message.
    pub result: Result<B, String>,
}

pub(crate) struct BranchNode {
    pub(crate) name: String,
    pub(crate) agent: String,
    pub(crate) on_failure: BranchFailure,
    pub(crate) run: ErasedStep,
}

pub(crate) enum Node {
    Step {
        name: String,
        agent: String,
        policy: StepPolicy,
        run: ErasedStep,
    },
    FanOut {
        name: String,
        agent: String,
        policy: StepPolicy,
        join: Join,
        branches: Vec<BranchNode>,
        merge: ErasedMerge,
    },
}

impl Node {
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Step { name, .. } | Self::FanOut { name, .. } => name,
        }
    }

    /// The agent that owns the step (for a fan-out, the one that joins).
    pub(crate) fn agent(&self) -> &str {
        match self {
            Self::Step { agent, .. } | Self::FanOut { agent, .. } => agent,
        }
    }
}

/// A fan-out: branches of one step run at once on the same input state, each by its own
/// agent, then a join folds their outputs (of type `B`) into the next state.
pub struct FanOut<S, B> {
    join: Join,
    policy: StepPolicy,
    branches: Vec<BranchNode>,
    merge: ErasedMerge,
    _types: PhantomData<fn(S) -> B>,
}

impl<S, B> fmt::Debug for FanOut<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut")
            .field("join", &self.join)
            .field("branches", &self.branches.len())
            .finish_non_exhaustive()
    }
}

fn erase<I, O, F, Fut>(f: F) -> ErasedStep
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(StepContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send + 'static,
{
    Arc::new(move |ctx: StepContext, input: Value| {
        let typed = I::deserialize(input)
            .map_err(|e| StepError::fatal(format!("the state does not deserialize: {e}")));
        let future = typed.map(|input| f(ctx, input));
        Box::pin(async move {
            let output = future?.await?;
            serde_json::to_value(output)
                .map_err(|e| StepError::fatal(format!("the output does not serialize: {e}")))
        })
    })
}

impl<S, B> FanOut<S, B>
where
    S: Serialize + DeserializeOwned + Send + 'static,
    B: Serialize + DeserializeOwned + Send + 'static,
{
    /// A fan-out with no branches yet, joining on all of them with `merge`: the input state
    /// and the branches' outcomes, in the order the branches were added.
    pub fn new<M>(merge: M) -> Self
    where
        M: Fn(S, Vec<BranchOutcome<B>>) -> Result<S, StepError> + Send + Sync + 'static,
    {
        let merge: ErasedMerge = Arc::new(move |state, outcomes| {
            let state = S::deserialize(state)
                .map_err(|e| StepError::fatal(format!("the state does not deserialize: {e}")))?;
            let mut typed = Vec::with_capacity(outcomes.len());
            for BranchOutcome { branch, result } in outcomes {
                let result = match result {
                    Ok(value) => Ok(B::deserialize(value)
                        .map_err(|e| StepError::fatal(format!("branch {branch:?} output: {e}")))?),
                    Err(error) => Err(error),
                };
                typed.push(BranchOutcome { branch, result });
            }
            let next = merge(state, typed)?;
            serde_json::to_value(next)
                .map_err(|e| StepError::fatal(format!("the state does not serialize: {e}")))
        });
        Self {
            join: Join::All,
            policy: StepPolicy::default(),
            branches: Vec::new(),
            merge,
            _types: PhantomData,
        }
    }

    /// Adds a branch run by `agent`; its failure fails the step.
    pub fn branch<F, Fut>(self, name: impl Into<String>, agent: impl Into<String>, f: F) -> Self
    where
        F: Fn(StepContext, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B, StepError>> + Send + 'static,
    {
        self.branch_with(name, agent, BranchFailure::FailStep, f)
    }

    /// Adds a branch with its own failure policy.
    pub fn branch_with<F, Fut>(
        mut self,
        name: impl Into<String>,
        agent: impl Into<String>,
        on_failure: BranchFailure,
        f: F,
    ) -> Self
    where
        F: Fn(StepContext, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B, StepError>> + Send + 'static,
    {
        self.branches.push(BranchNode {
            name: name.into(),
            agent: agent.into(),
            on_failure,
            run: erase::<S, B, F, Fut>(f),
        });
        self
    }

    /// When the fan-out is done (default [`Join::All`]).
    pub fn join(mut self, join: Join) -> Self {
        self.join = join;
        self
    }

    /// Retries and timeouts of each branch.
    pub fn policy(mut self, policy: StepPolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// A named workflow over state `S`: steps run in order, each one an async function of a
/// [`StepContext`] and the state, returning the next state.
pub struct Workflow<S> {
    name: String,
    description: String,
    nodes: Vec<Node>,
    _state: PhantomData<fn(S) -> S>,
}

impl<S> fmt::Debug for Workflow<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field(
                "steps",
                &self.nodes.iter().map(Node::name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S> Workflow<S>
where
    S: Serialize + DeserializeOwned + Send + 'static,
{
    /// A workflow with no steps yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            nodes: Vec::new(),
            _state: PhantomData,
        }
    }

    /// What it does (shown by [`Executor::workflows`](super::Executor::workflows)).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Appends a step run by `agent`, with the default [`StepPolicy`].
    pub fn step<F, Fut>(self, name: impl Into<String>, agent: impl Into<String>, f: F) -> Self
    where
        F: Fn(StepContext, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, StepError>> + Send + 'static,
    {
        self.step_with(name, agent, StepPolicy::default(), f)
    }

    /// Appends a step with its own retries and timeouts.
    pub fn step_with<F, Fut>(
        mut self,
        name: impl Into<String>,
        agent: impl Into<String>,
        policy: StepPolicy,
        f: F,
    ) -> Self
    where
        F: Fn(StepContext, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, StepError>> + Send + 'static,
    {
        self.nodes.push(Node::Step {
            name: name.into(),
            agent: agent.into(),
            policy,
            run: erase::<S, S, F, Fut>(f),
        });
        self
    }

    /// Appends a fan-out step whose join is owned by `agent`.
    pub fn fan_out<B>(
        mut self,
        name: impl Into<String>,
        agent: impl Into<String>,
        fan_out: FanOut<S, B>,
    ) -> Self {
        self.nodes.push(Node::FanOut {
            name: name.into(),
            agent: agent.into(),
            policy: fan_out.policy,
            join: fan_out.join,
            branches: fan_out.branches,
            merge: fan_out.merge,
        });
        self
    }

    /// Checks the definition and erases its state type.
    pub(crate) fn into_def(self) -> Result<WorkflowDef, DurableError> {
        let invalid = |reason: String| DurableError::InvalidWorkflow {
            workflow: self.name.clone(),
            reason,
        };
        check_name(&self.name).map_err(|r| invalid(format!("its name {r}")))?;
        if self.nodes.is_empty() {
            return Err(invalid("it has no steps".into()));
        }
        let mut steps = BTreeSet::new();
        for node in &self.nodes {
            let name = node.name();
            check_name(name).map_err(|r| invalid(format!("step {name:?}: its name {r}")))?;
            check_name(node.agent()).map_err(|r| invalid(format!("step {name:?}: agent {r}")))?;
            if !steps.insert(name) {
                return Err(invalid(format!("step {name:?} appears twice")));
            }
            if let Node::FanOut { branches, join, .. } = node {
                let mut names = BTreeSet::new();
                for branch in branches {
                    let b = &branch.name;
                    check_name(b).map_err(|r| invalid(format!("branch {b:?}: its name {r}")))?;
                    check_name(&branch.agent)
                        .map_err(|r| invalid(format!("branch {b:?}: agent {r}")))?;
                    if !names.insert(b) {
                        return Err(invalid(format!("branch {b:?} of {name:?} appears twice")));
                    }
                }
                if branches.is_empty() {
                    return Err(invalid(format!("fan-out {name:?} has no branches")));
                }
                if let Join::First(n) = join
                    && (*n == 0 || *n > branches.len())
                {
                    return Err(invalid(format!(
                        "fan-out {name:?} joins on the first {n} of {} branches",
                        branches.len()
                    )));
                }
            }
        }
        let mut agents = BTreeSet::new();
        for node in &self.nodes {
            agents.insert(node.agent().to_owned());
            if let Node::FanOut { branches, .. } = node {
                agents.extend(branches.iter().map(|b| b.agent.clone()));
            }
        }
        Ok(WorkflowDef {
            name: self.name,
            description: self.description,
            nodes: self.nodes,
            agents: agents.into_iter().collect(),
            validate: validate_state::<S>,
        })
    }
}

fn validate_state<S: DeserializeOwned>(state: &Value) -> Result<(), String> {
    S::deserialize(state).map(drop).map_err(|e| e.to_string())
}

/// Names of workflows, steps, branches, agents and effects: 1 to 128 bytes, no `/` (the
/// ledger's separator) and no control characters.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("must not be empty")
    } else if name.len() > 128 {
        Err("is longer than 128 bytes")
    } else if name.contains('/') || name.chars().any(char::is_control) {
        Err("must not contain '/' or control characters")
    } else {
        Ok(())
    }
}

/// A registered workflow with its state type erased.
pub(crate) struct WorkflowDef {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) nodes: Vec<Node>,
    /// Every agent that owns a step, a branch or a join, sorted: the run's checkpoints are
    /// under these agent ids.
    pub(crate) agents: Vec<String>,
    pub(crate) validate: fn(&Value) -> Result<(), String>,
}

impl WorkflowDef {
    pub(crate) fn info(&self) -> WorkflowInfo {
        WorkflowInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            steps: self
                .nodes
                .iter()
                .map(|node| StepInfo {
                    name: node.name().to_owned(),
                    agent: node.agent().to_owned(),
                    branches: match node {
                        Node::Step { .. } => Vec::new(),
                        Node::FanOut { branches, .. } => branches
                            .iter()
                            .map(|b| (b.name.clone(), b.agent.clone()))
                            .collect(),
                    },
                })
                .collect(),
        }
    }
}

/// A registered workflow, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkflowInfo {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its steps, in order.
    pub steps: Vec<StepInfo>,
}

/// A step of a [`WorkflowInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StepInfo {
    /// Its name.
    pub name: String,
    /// The agent that owns it (for a fan-out, the one that joins).
    pub agent: String,
    /// A fan-out's branches, as (name, agent); empty for a plain step.
    pub branches: Vec<(String, String)>,
}
