//! Prices per model, turning token usage into money.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::usage::Usage;

/// Nano-dollars in one dollar: costs are counted in 10⁻⁹ USD, exact integers.
pub const NANO_USD_PER_USD: u64 = 1_000_000_000;

/// A model's price in dollars per million tokens, as providers list them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Dollars per 1M uncached input tokens.
    pub input: f64,
    /// Dollars per 1M output tokens.
    pub output: f64,
    /// Dollars per 1M cached input tokens; the input price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
}

/// A validated price in nano-dollars per million tokens, cheap to copy into a reservation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Nano-dollars per 1M uncached input tokens.
    pub input: u64,
    /// Nano-dollars per 1M cached input tokens.
    pub cached_input: u64,
    /// Nano-dollars per 1M output tokens.
    pub output: u64,
}

impl Price {
    /// The cost of `usage` in nano-dollars, rounded up (a budget never undercounts), saturating.
    pub fn cost(&self, usage: &Usage) -> u64 {
        let part = |tokens: u64, per_million: u64| {
            (u128::from(tokens) * u128::from(per_million)).div_ceil(1_000_000)
        };
        let total = part(usage.input_tokens, self.input)
            + part(usage.cached_input_tokens, self.cached_input)
            + part(usage.output_tokens, self.output);
        u64::try_from(total).unwrap_or(u64::MAX)
    }
}

fn to_nano(model: &str, dollars: f64) -> Result<u64, ConfigError> {
    if !dollars.is_finite() || !(0.0..=1.0e6).contains(&dollars) {
        return Err(ConfigError::BadPrice {
            model: model.to_owned(),
            value: dollars,
        });
    }
    Ok((dollars * NANO_USD_PER_USD as f64).round() as u64)
}

impl ModelPrice {
    fn validate(&self, model: &str) -> Result<Price, ConfigError> {
        let input = to_nano(model, self.input)?;
        Ok(Price {
            input,
            cached_input: match self.cached_input {
                Some(cached) => to_nano(model, cached)?,
                None => input,
            },
            output: to_nano(model, self.output)?,
        })
    }
}

/// Prices by model name, loadable from TOML:
///
/// ```
/// use bulwark::budget::{PriceTable, Usage};
///
/// let table = PriceTable::from_toml(r#"
///     [models."gpt-4o"]
///     input = 2.50
///     cached_input = 1.25
///     output = 10.00
/// "#)?;
/// let price = table.get("gpt-4o").ok_or("no price")?;
/// // 1 000 input and 500 output tokens: $0.0025 + $0.005 = 7 500 000 nano-dollars.
/// assert_eq!(price.cost(&Usage::new(1_000, 500)), 7_500_000);
/// assert!(table.get("unknown-model").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceTable {
    models: HashMap<String, Price>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    models: HashMap<String, ModelPrice>,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `[models."name"] input = …, output = …, cached_input = …` (dollars per 1M
    /// tokens). A negative, non-finite or absurd (above $1M) price is an error naming the model.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: PriceFile =
            toml::from_str(text).map_err(|e| ConfigError::PriceToml(e.to_string()))?;
        let mut table = Self::new();
        for (model, price) in file.models {
            table.insert(model, price)?;
        }
        Ok(table)
    }

    /// Adds or replaces `model`'s price.
    pub fn insert(
        &mut self,
        model: impl Into<String>,
        price: ModelPrice,
    ) -> Result<(), ConfigError> {
        let model = model.into();
        let price = price.validate(&model)?;
        self.models.insert(model, price);
        Ok(())
    }

    /// `model`'s price, if it has one.
    pub fn get(&self, model: &str) -> Option<Price> {
        self.models.get(model).copied()
    }

    /// How many models have a price.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model has a price.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
