//! Token usage read from a provider's response body.

use serde_json::Value;

use crate::budget::Usage;

/// A usage block that cannot be charged: missing, negative, fractional or inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The body has no usage block.
    #[error("the response has no `usage`")]
    Missing,
    /// A count that is not a whole number of tokens at least zero.
    #[error("usage field `{field}` is not a non-negative integer: {value}")]
    NotACount {
        /// The field.
        field: String,
        /// Its value.
        value: String,
    },
    /// More cached tokens than prompt tokens.
    #[error("{cached} cached tokens exceed the {prompt} prompt tokens")]
    CachedAbovePrompt {
        /// Cached tokens.
        cached: u64,
        /// Prompt tokens.
        prompt: u64,
    },
}

fn count(usage: &Value, pointer: &str) -> Result<u64, UsageError> {
    match usage.pointer(pointer) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => value.as_u64().ok_or_else(|| UsageError::NotACount {
            field: pointer.trim_start_matches('/').replace('/', "."),
            value: value.to_string(),
        }),
    }
}

/// The usage of an OpenAI chat completion (or Responses API) body; `prompt_tokens` includes
/// the cached ones, which are split out.
pub fn usage_from_openai(body: &Value) -> Result<Usage, UsageError> {
    let usage = body.get("usage").ok_or(UsageError::Missing)?;
    let (prompt, output) = if usage.get("input_tokens").is_some() {
        (
            count(usage, "/input_tokens")?,
            count(usage, "/output_tokens")?,
        )
    } else {
        (
            count(usage, "/prompt_tokens")?,
            count(usage, "/completion_tokens")?,
        )
    };
    let cached = count(usage, "/prompt_tokens_details/cached_tokens")?
        .max(count(usage, "/input_tokens_details/cached_tokens")?);
    if cached > prompt {
        return Err(UsageError::CachedAbovePrompt { cached, prompt });
    }
    Ok(Usage::new(prompt - cached, output).with_cached(cached))
}

/// The usage of an Anthropic messages body; cache writes count as input, cache reads as cached.
pub fn usage_from_anthropic(body: &Value) -> Result<Usage, UsageError> {
    let usage = body.get("usage").ok_or(UsageError::Missing)?;
    let input = count(usage, "/input_tokens")?
        .saturating_add(count(usage, "/cache_creation_input_tokens")?);
    Ok(Usage::new(input, count(usage, "/output_tokens")?)
        .with_cached(count(usage, "/cache_read_input_tokens")?))
}
