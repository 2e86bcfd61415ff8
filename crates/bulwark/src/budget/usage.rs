//! Token usage of one call, as estimated before it and reported after it.

use serde::{Deserialize, Serialize};

/// The tokens of one LLM call. `input_tokens` excludes the cached prompt tokens, which are
/// counted apart in `cached_input_tokens` (they are priced apart); providers that report a
/// prompt total including cached tokens (OpenAI's `prompt_tokens`) are split by the parser.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached prompt tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Completion tokens (reasoning included).
    #[serde(default)]
    pub output_tokens: u64,
}

impl Usage {
    /// A usage of `input_tokens` uncached prompt tokens and `output_tokens` completion tokens.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            cached_input_tokens: 0,
            output_tokens,
        }
    }

    /// The estimate to reserve before a call: the prompt's tokens (known) and `max_tokens`,
    /// the most the completion can use. Reserving the bound, not a guess, is what makes
    /// concurrent calls unable to overspend.
    pub const fn estimate(prompt_tokens: u64, max_tokens: u64) -> Self {
        Self::new(prompt_tokens, max_tokens)
    }

    /// The same usage with `cached` of its prompt tokens read from the cache.
    pub const fn with_cached(mut self, cached: u64) -> Self {
        self.cached_input_tokens = cached;
        self
    }

    /// All tokens: input, cached input and output.
    pub const fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cached_input_tokens)
            .saturating_add(self.output_tokens)
    }
}
