//! What a step sees: its run, memoized effects through the ledger, and interrupts.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::definition::{BoxFuture, check_name};
use super::error::StepError;
use super::live::RunShared;
use super::record::{EffectRecord, EffectState, InterruptKind, PendingInterrupt};

/// A user's check of an unknown outcome, given the idempotency key.
pub type UnknownCheck<T> =
    Box<dyn FnOnce(String) -> BoxFuture<'static, Result<Option<T>, StepError>> + Send>;

/// What to do with an effect whose outcome is unknown: it was recorded as started, but the
/// process stopped (or the attempt was cut off) before its result was recorded.
pub enum OnUnknown<T> {
    /// Call it again with the same idempotency key (the default: right for calls whose
    /// provider deduplicates by key, and for calls that are safe to repeat).
    Rerun,
    /// Ask this check, given the key: `Some(result)` means the call did happen (its result is
    /// recorded and returned), `None` that it did not (it is called again).
    Check(UnknownCheck<T>),
    /// Pause the run for a person, who answers with a [`Resolution`] through
    /// [`Executor::resume`](super::Executor::resume).
    Pause,
}

impl<T> OnUnknown<T> {
    /// [`OnUnknown::Check`] from an async function of the idempotency key.
    pub fn check<F, Fut>(check: F) -> Self
    where
        F: FnOnce(String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<T>, StepError>> + Send + 'static,
    {
        Self::Check(Box::new(move |key| Box::pin(check(key))))
    }
}

impl<T> fmt::Debug for OnUnknown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rerun => "Rerun",
            Self::Check(_) => "Check",
            Self::Pause => "Pause",
        })
    }
}

/// A person's answer about an effect whose outcome was unknown (the resume input of a run
/// paused by [`OnUnknown::Pause`]): `{"done": <result>}` or `"rerun"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resolution {
    /// The call happened and returned this result.
    Done(Value),
    /// The call did not happen (or may be repeated): call it again with the same key.
    Rerun,
}

/// The context of one attempt of a step (or of a fan-out branch).
#[derive(Clone)]
pub struct StepContext {
    pub(crate) run: Arc<RunShared>,
    /// The ledger's name of the step: `step`, or `step/branch` in a fan-out.
    pub(crate) step: Arc<str>,
    pub(crate) agent: Arc<str>,
    pub(crate) attempt: u32,
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("run_id", &self.run.run_id)
            .field("step", &self.step)
            .field("agent", &self.agent)
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// What the ledger says to do about an effect.
enum Decision {
    Replay(Value),
    Unknown(String),
    Call(String),
}

fn decode<T: DeserializeOwned>(what: &str, value: Value) -> Result<T, StepError> {
    T::deserialize(value).map_err(|e| StepError::fatal(format!("{what} does not deserialize: {e}")))
}

impl StepContext {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run.run_id
    }

    /// The step's name (`step/branch` in a fan-out branch).
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The agent that owns the step or branch.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// 1 for the first attempt, 2 for the first retry, and so on (counted across restarts).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The run's trace id (32 hex digits).
    pub fn trace_id(&self) -> &str {
        &self.run.trace_id
    }

    /// The idempotency key of effect `name` in this step: `run/step/effect`, the same in
    /// every attempt and after every restart, for the provider to deduplicate on.
    pub fn idempotency_key(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.run.run_id, self.step)
    }

    /// Runs `call` at most once per run with a recorded result: see
    /// [`effect_with`](Self::effect_with); an unknown outcome is re-run with the same key.
    pub async fn effect<T, E, F, Fut>(&self, name: &str, call: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Into<StepError>,
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.effect_with(name, OnUnknown::Rerun, call).await
    }

    /// A memoized effect: `call` gets the effect's idempotency key. "Started" is checkpointed
    /// before the call and the result right after it; when the ledger already holds the
    /// result (a retry, a resume, a replay), it is returned and `call` is not made. An
    /// effect recorded as started but not done has an unknown outcome, and `on_unknown`
    /// decides. An `Err` from `call` is recorded too, and the next attempt calls again.
    /// Effect names are unique within a step.
    pub async fn effect_with<T, E, F, Fut>(
        &self,
        name: &str,
        on_unknown: OnUnknown<T>,
        call: F,
    ) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Into<StepError>,
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        check_name(name).map_err(|r| StepError::fatal(format!("effect name {name:?} {r}")))?;
        let slot = format!("{}/{name}", self.step);
        let key = self.idempotency_key(name);
        let decision = {
            let slot = slot.clone();
            self.run
                .update(&self.agent, move |record| {
                    match record.effects.get_mut(&slot) {
                        Some(EffectRecord {
                            state: EffectState::Done { result },
                            ..
                        }) => (Decision::Replay(result.clone()), false),
                        Some(
                            effect @ EffectRecord {
                                state: EffectState::Started,
                                ..
                            },
                        ) => (Decision::Unknown(effect.key.clone()), false),
                        Some(effect) => {
                            effect.state = EffectState::Started;
                            effect.calls += 1;
                            (Decision::Call(effect.key.clone()), true)
                        }
                        None => {
                            let effect = EffectRecord {
                                key: key.clone(),
                                state: EffectState::Started,
                                calls: 1,
                            };
                            record.effects.insert(slot, effect);
                            (Decision::Call(key), true)
                        }
                    }
                })
                .await?
        };
        let key = match decision {
            Decision::Replay(result) => return decode("the recorded result", result),
            Decision::Call(key) => key,
            Decision::Unknown(key) => {
                match self.resolve_unknown(name, &slot, key, on_unknown).await? {
                    Ok(known) => return Ok(known),
                    Err(key) => key,
                }
            }
        };
        tracing::debug!(effect = name, key = %key, "calling effect");
        let outcome = call(key).await.map_err(Into::into);
        let recorded = match &outcome {
            Ok(result) => EffectState::Done {
                result: serde_json::to_value(result).map_err(|e| {
                    StepError::fatal(format!(
                        "effect {name:?}: the result does not serialize: {e}"
                    ))
                })?,
            },
            Err(error) => EffectState::Failed {
                error: error.to_string(),
            },
        };
        self.run
            .update(&self.agent, move |record| {
                if let Some(effect) = record.effects.get_mut(&slot) {
                    effect.state = recorded;
                }
                ((), true)
            })
            .await?;
        outcome
    }

    /// An unknown outcome under `on_unknown`: `Ok(Ok(result))` when it is known after all,
    /// `Ok(Err(key))` when the call is to be made again.
    async fn resolve_unknown<T>(
        &self,
        name: &str,
        slot: &str,
        key: String,
        on_unknown: OnUnknown<T>,
    ) -> Result<Result<T, String>, StepError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        tracing::warn!(effect = name, key = %key, policy = ?on_unknown, "effect outcome unknown");
        let known = match on_unknown {
            OnUnknown::Rerun => None,
            OnUnknown::Check(check) => check(key.clone()).await?,
            OnUnknown::Pause => {
                let pending = PendingInterrupt {
                    name: name.to_owned(),
                    step: self.step.to_string(),
                    kind: InterruptKind::UnknownEffect,
                    payload: serde_json::json!({ "effect": name, "idempotency_key": key }),
                };
                self.set_interrupt(pending).await?;
                return Err(StepError::waiting_for_input(format!(
                    "effect {name:?} has an unknown outcome: waiting for a person"
                )));
            }
        };
        let slot = slot.to_owned();
        match known {
            Some(result) => {
                let value = serde_json::to_value(&result)
                    .map_err(|e| StepError::fatal(format!("effect {name:?}: {e}")))?;
                self.run
                    .update(&self.agent, move |record| {
                        if let Some(effect) = record.effects.get_mut(&slot) {
                            effect.state = EffectState::Done { result: value };
                        }
                        ((), true)
                    })
                    .await?;
                Ok(Ok(result))
            }
            None => {
                self.run
                    .update(&self.agent, move |record| {
                        if let Some(effect) = record.effects.get_mut(&slot) {
                            effect.calls += 1;
                        }
                        ((), true)
                    })
                    .await?;
                Ok(Err(key))
            }
        }
    }

    /// Pauses the run for input: the first time, the run is checkpointed as waiting with
    /// `payload` and the step stops here (propagate the error with `?`); once
    /// [`Executor::resume`](super::Executor::resume) has delivered an input, the step runs
    /// again from its start, its recorded effects replay without being called, and this
    /// returns the input. An input that does not deserialize as `R` is dropped and the run
    /// waits again.
    pub async fn interrupt<P, R>(&self, name: &str, payload: &P) -> Result<R, StepError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        check_name(name).map_err(|r| StepError::fatal(format!("interrupt name {name:?} {r}")))?;
        let payload = serde_json::to_value(payload)
            .map_err(|e| StepError::fatal(format!("interrupt {name:?}: {e}")))?;
        let slot = format!("{}/{name}", self.step);
        let input = self.run.snapshot().await.inputs.get(&slot).cloned();
        let reason = match input.map(R::deserialize) {
            Some(Ok(input)) => return Ok(input),
            Some(Err(e)) => {
                let reason = format!("interrupt {name:?}: the input does not deserialize: {e}");
                self.run
                    .update(&self.agent, move |record| {
                        record.inputs.remove(&slot);
                        ((), false)
                    })
                    .await?;
                reason
            }
            None => format!("interrupt {name:?}: waiting for input"),
        };
        let pending = PendingInterrupt {
            name: name.to_owned(),
            step: self.step.to_string(),
            kind: InterruptKind::Interrupt,
            payload,
        };
        self.set_interrupt(pending).await?;
        Err(StepError::waiting_for_input(reason))
    }

    /// Records what the run will wait on (the first one, when branches pause together).
    async fn set_interrupt(&self, pending: PendingInterrupt) -> Result<(), StepError> {
        self.run
            .update(&self.agent, move |record| {
                if record.interrupt.is_none() {
                    record.interrupt = Some(pending);
                }
                ((), false)
            })
            .await?;
        Ok(())
    }
}
