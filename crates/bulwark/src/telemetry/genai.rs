//! Attributes that make agent and LLM spans render well in agent-observability tools: the
//! OpenTelemetry GenAI semantic conventions (`gen_ai.*`) and the OpenInference span kind
//! (`openinference.span.kind`, read by Arize Phoenix).
//!
//! With `#[tracing::instrument]` the keys can be written as fields directly
//! (`fields(gen_ai.agent.name = "planner", openinference.span.kind = "AGENT")`); these helpers
//! are for spans whose values are known later, or for manual spans.
//!
//! ```
//! use bulwark::telemetry::genai::{self, SpanKind};
//! use bulwark::telemetry::{TelemetryLayer, TraceStore};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let store = TraceStore::default();
//! let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("chat");
//!     genai::llm_call(&span, "chat", "gpt-4o-mini");
//!     genai::usage(&span, 120, 35);
//! });
//! let trace = store.recent_traces(&Default::default());
//! let spans = store.spans(trace[0].trace_id);
//! assert_eq!(spans[0].attribute(genai::REQUEST_MODEL).unwrap().to_string(), "gpt-4o-mini");
//! assert_eq!(spans[0].attribute(genai::OPENINFERENCE_SPAN_KIND).unwrap().to_string(), "LLM");
//! ```

use super::span::SpanExt;

/// `gen_ai.operation.name`: `chat`, `invoke_agent`, `execute_tool`, `embeddings`, ...
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.agent.name`.
pub const AGENT_NAME: &str = "gen_ai.agent.name";
/// `gen_ai.agent.id`.
pub const AGENT_ID: &str = "gen_ai.agent.id";
/// `gen_ai.request.model`.
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.response.model`.
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.provider.name` (`openai`, `anthropic`, ...).
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
/// `gen_ai.usage.input_tokens`.
pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens`.
pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.tool.name`.
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// `gen_ai.tool.call.id`.
pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// `gen_ai.conversation.id`.
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// `openinference.span.kind`: how Phoenix and other OpenInference tools classify a span.
pub const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";
/// `llm.model_name` (OpenInference's name for the model).
pub const LLM_MODEL_NAME: &str = "llm.model_name";
/// `llm.token_count.prompt` (OpenInference).
pub const LLM_TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
/// `llm.token_count.completion` (OpenInference).
pub const LLM_TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
/// `tool.name` (OpenInference).
pub const OI_TOOL_NAME: &str = "tool.name";

/// The OpenInference span kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpanKind {
    /// An agent's turn or run.
    Agent,
    /// A call to a language model.
    Llm,
    /// A tool call.
    Tool,
    /// A sequence of steps (a workflow).
    Chain,
    /// A retrieval from a vector store or search index.
    Retriever,
    /// An embedding call.
    Embedding,
    /// A guardrail check.
    Guardrail,
}

impl SpanKind {
    /// The value written to `openinference.span.kind`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "AGENT",
            Self::Llm => "LLM",
            Self::Tool => "TOOL",
            Self::Chain => "CHAIN",
            Self::Retriever => "RETRIEVER",
            Self::Embedding => "EMBEDDING",
            Self::Guardrail => "GUARDRAIL",
        }
    }
}

/// Sets the OpenInference span kind.
pub fn kind(span: &tracing::Span, kind: SpanKind) {
    span.set_attribute(OPENINFERENCE_SPAN_KIND, kind.as_str());
}

/// Marks `span` as an agent invocation: operation `invoke_agent`, the agent's name, kind AGENT.
pub fn agent(span: &tracing::Span, agent_name: impl Into<String>) {
    span.set_attribute(OPERATION_NAME, "invoke_agent");
    span.set_attribute(AGENT_NAME, agent_name.into());
    kind(span, SpanKind::Agent);
}

/// Marks `span` as a model call: the operation (`chat`, `text_completion`, `embeddings`), the
/// requested model under both the GenAI and OpenInference keys, kind LLM.
pub fn llm_call(span: &tracing::Span, operation: &'static str, model: impl Into<String>) {
    let model = model.into();
    span.set_attribute(OPERATION_NAME, operation);
    span.set_attribute(REQUEST_MODEL, model.clone());
    span.set_attribute(LLM_MODEL_NAME, model);
    kind(span, SpanKind::Llm);
}

/// Records token usage under both the GenAI and OpenInference keys.
pub fn usage(span: &tracing::Span, input_tokens: u64, output_tokens: u64) {
    span.set_attribute(USAGE_INPUT_TOKENS, input_tokens);
    span.set_attribute(USAGE_OUTPUT_TOKENS, output_tokens);
    span.set_attribute(LLM_TOKEN_COUNT_PROMPT, input_tokens);
    span.set_attribute(LLM_TOKEN_COUNT_COMPLETION, output_tokens);
}

/// Marks `span` as a tool call: operation `execute_tool`, the tool's name, kind TOOL.
pub fn tool_call(span: &tracing::Span, tool_name: impl Into<String>) {
    let tool = tool_name.into();
    span.set_attribute(OPERATION_NAME, "execute_tool");
    span.set_attribute(TOOL_NAME, tool.clone());
    span.set_attribute(OI_TOOL_NAME, tool);
    kind(span, SpanKind::Tool);
}

/// Marks `span` as a workflow step sequence: kind CHAIN.
pub fn chain(span: &tracing::Span) {
    kind(span, SpanKind::Chain);
}
