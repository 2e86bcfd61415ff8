//! LLM failure classes: what went wrong with a provider call or an agent's output, and what
//! retries and breakers should make of it.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::headers::ProviderSignals;
use super::schema;
use crate::retry::Classify;

/// What went wrong with an LLM call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureClass {
    /// 429: the provider's rate limit.
    RateLimited,
    /// 529, or 503 ("overloaded"): the provider cannot take the call now.
    Overloaded,
    /// 408, 504, or the client's own timeout.
    Timeout,
    /// Another 5xx.
    ServerError,
    /// The prompt does not fit the model's context window.
    ContextLengthExceeded,
    /// The model refused (OpenAI `refusal` / `content_filter`, Anthropic `stop_reason: refusal`).
    ContentRefusal,
    /// A tool call whose arguments are not JSON, or do not match the tool's JSON Schema.
    InvalidToolCall,
    /// A completion with neither text nor tool calls.
    EmptyCompletion,
    /// Another 4xx: the request is wrong (auth, validation) and will stay wrong.
    BadRequest,
}

impl FailureClass {
    /// Every class, in declaration order.
    pub const ALL: [FailureClass; 9] = [
        FailureClass::RateLimited,
        FailureClass::Overloaded,
        FailureClass::Timeout,
        FailureClass::ServerError,
        FailureClass::ContextLengthExceeded,
        FailureClass::ContentRefusal,
        FailureClass::InvalidToolCall,
        FailureClass::EmptyCompletion,
        FailureClass::BadRequest,
    ];

    /// The default treatment:
    ///
    /// | class | retryable | breaker failure |
    /// |---|---|---|
    /// | rate limited | yes (after its `retry-after`) | no: the provider is healthy |
    /// | overloaded, timeout, server error | yes | yes |
    /// | invalid tool call, empty completion | yes (ask again) | no |
    /// | context length, refusal, bad request | no: fatal | no |
    pub const fn default_treatment(self) -> Treatment {
        match self {
            FailureClass::RateLimited => Treatment::new(true, false),
            FailureClass::Overloaded | FailureClass::Timeout | FailureClass::ServerError => {
                Treatment::new(true, true)
            }
            FailureClass::InvalidToolCall | FailureClass::EmptyCompletion => {
                Treatment::new(true, false)
            }
            FailureClass::ContextLengthExceeded
            | FailureClass::ContentRefusal
            | FailureClass::BadRequest => Treatment::new(false, false),
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::RateLimited => "rate_limited",
            FailureClass::Overloaded => "overloaded",
            FailureClass::Timeout => "timeout",
            FailureClass::ServerError => "server_error",
            FailureClass::ContextLengthExceeded => "context_length_exceeded",
            FailureClass::ContentRefusal => "content_refusal",
            FailureClass::InvalidToolCall => "invalid_tool_call",
            FailureClass::EmptyCompletion => "empty_completion",
            FailureClass::BadRequest => "bad_request",
        }
    }
}

/// What retries and breakers make of a class. Not retryable means fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Treatment {
    /// Whether another attempt could succeed.
    pub retryable: bool,
    /// Whether a circuit breaker counts it as the dependency failing.
    pub breaker_failure: bool,
}

impl Treatment {
    /// A treatment.
    pub const fn new(retryable: bool, breaker_failure: bool) -> Self {
        Self {
            retryable,
            breaker_failure,
        }
    }
}

/// A classified LLM failure. Retries read it through [`Classify`]; breakers through
/// [`LlmError::is_breaker_failure`] as the `call_with` classifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LlmError {
    /// The class.
    pub class: FailureClass,
    /// What the classifier decided for it.
    pub treatment: Treatment,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The provider's message or the classifier's reason.
    pub message: String,
    /// The wait the provider asked for.
    #[serde(serialize_with = "crate::serde_duration::millis::serialize")]
    pub retry_after: Option<Duration>,
}

impl LlmError {
    /// Whether a breaker counts it as a failure: `breaker.call_async_with(call, LlmError::is_breaker_failure)`.
    pub fn is_breaker_failure(&self) -> bool {
        self.treatment.breaker_failure
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "llm call failed ({})", self.class.as_str())?;
        if let Some(status) = self.status {
            write!(f, " with HTTP {status}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LlmError {}

impl Classify for LlmError {
    fn is_retryable(&self) -> bool {
        self.treatment.retryable
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// A tool the model may call, with the JSON Schema its arguments must match.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSchema {
    /// The tool's name.
    pub name: String,
    /// The schema of its arguments (the subset [`schema`](super::validate_schema) checks).
    pub parameters: Value,
}

/// Classifies provider responses and agent outputs into [`FailureClass`]es, each treated by
/// default as [`FailureClass::default_treatment`] says unless overridden.
#[derive(Clone, Debug)]
pub struct LlmClassifier {
    treatments: [Treatment; FailureClass::ALL.len()],
}

impl Default for LlmClassifier {
    fn default() -> Self {
        Self {
            treatments: FailureClass::ALL.map(FailureClass::default_treatment),
        }
    }
}

fn message_of(body: &Value) -> String {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl LlmClassifier {
    /// The default treatments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides how `class` is treated.
    pub fn treat(mut self, class: FailureClass, treatment: Treatment) -> Self {
        self.treatments[class as usize] = treatment;
        self
    }

    /// The treatment in force for `class`.
    pub fn treatment(&self, class: FailureClass) -> Treatment {
        self.treatments[class as usize]
    }

    /// An error of `class` with this classifier's treatment.
    pub fn error(&self, class: FailureClass, message: impl Into<String>) -> LlmError {
        LlmError {
            class,
            treatment: self.treatment(class),
            status: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Classifies an error response (status ≥ 400) from its status and JSON body; `None` for
    /// a success status. OpenAI's `context_length_exceeded` code and Anthropic's "prompt is
    /// too long" are told apart from other 400s; 529 and Anthropic's `overloaded_error` are
    /// overloads.
    pub fn classify_status(&self, signals: &ProviderSignals, body: &[u8]) -> Option<LlmError> {
        let status = signals.status;
        if status < 400 {
            return None;
        }
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let code = json.pointer("/error/code").and_then(Value::as_str);
        let kind = json.pointer("/error/type").and_then(Value::as_str);
        let message = message_of(&json);
        let lower = message.to_ascii_lowercase();
        let class = match status {
            429 => FailureClass::RateLimited,
            529 => FailureClass::Overloaded,
            _ if kind == Some("overloaded_error") => FailureClass::Overloaded,
            503 => FailureClass::Overloaded,
            408 | 504 => FailureClass::Timeout,
            500..=599 => FailureClass::ServerError,
            _ if code == Some("context_length_exceeded")
                || lower.contains("prompt is too long")
                || lower.contains("maximum context length") =>
            {
                FailureClass::ContextLengthExceeded
            }
            _ => FailureClass::BadRequest,
        };
        let mut error = self.error(class, message);
        error.status = Some(status);
        error.retry_after = signals.retry_after.or_else(|| signals.pause_for());
        Some(error)
    }

    /// Classifies a successful completion (OpenAI chat completions or Anthropic messages
    /// JSON): a refusal, an empty completion, or a tool call whose arguments do not parse or do
    /// not match its tool's schema; `Ok` when it is usable.
    pub fn classify_completion(&self, body: &Value, tools: &[ToolSchema]) -> Result<(), LlmError> {
        if let Some(choice) = body.pointer("/choices/0") {
            let message = &choice["message"];
            if message["refusal"].as_str().is_some_and(|r| !r.is_empty())
                || choice["finish_reason"] == "content_filter"
            {
                let reason = message["refusal"].as_str().unwrap_or("content filter");
                return Err(self.error(FailureClass::ContentRefusal, reason));
            }
            let calls = message["tool_calls"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            for call in calls {
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let raw = call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let arguments: Value = serde_json::from_str(raw).map_err(|e| {
                    self.error(
                        FailureClass::InvalidToolCall,
                        format!("tool `{name}`: arguments are not JSON: {e}"),
                    )
                })?;
                self.check_tool(name, &arguments, tools)?;
            }
            let text = message["content"].as_str().unwrap_or("");
            if calls.is_empty() && text.trim().is_empty() {
                return Err(self.error(FailureClass::EmptyCompletion, "no text and no tool call"));
            }
            return Ok(());
        }
        if body["stop_reason"] == "refusal" {
            return Err(self.error(FailureClass::ContentRefusal, "stop_reason: refusal"));
        }
        let blocks = body["content"].as_array().map_or(&[][..], Vec::as_slice);
        let mut usable = false;
        for block in blocks {
            match block["type"].as_str() {
                Some("text") => {
                    usable |= block["text"].as_str().is_some_and(|t| !t.trim().is_empty())
                }
                Some("tool_use") => {
                    let name = block["name"].as_str().unwrap_or("");
                    self.check_tool(name, &block["input"], tools)?;
                    usable = true;
                }
                _ => {}
            }
        }
        if !usable {
            return Err(self.error(FailureClass::EmptyCompletion, "no text and no tool call"));
        }
        Ok(())
    }

    fn check_tool(
        &self,
        name: &str,
        arguments: &Value,
        tools: &[ToolSchema],
    ) -> Result<(), LlmError> {
        let Some(tool) = tools.iter().find(|t| t.name == name) else {
            if tools.is_empty() {
                return Ok(());
            }
            return Err(self.error(
                FailureClass::InvalidToolCall,
                format!("no tool named `{name}`"),
            ));
        };
        schema::validate(&tool.parameters, arguments).map_err(|reason| {
            self.error(
                FailureClass::InvalidToolCall,
                format!("tool `{name}`: {reason}"),
            )
        })
    }
}
