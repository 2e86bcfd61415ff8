//! The README's "Token and cost budgets" example, run: keep the two in step.
#![allow(clippy::unwrap_used)]

use bulwark::budget::{BudgetSpec, Charge, Ledger, Period, PriceTable, Unit, Usage};
use bulwark::llm::{LlmClassifier, ProviderLimits, ProviderSignals, usage_from_openai};

#[test]
fn readme_budget_example() -> Result<(), Box<dyn std::error::Error>> {
    let prices = PriceTable::from_toml("[models.\"gpt-4o\"]\ninput = 2.5\noutput = 10.0")?;
    let ledger = Ledger::builder()
        .prices(prices)
        .budget(BudgetSpec::new(
            "gpt-4o:tpm",
            Unit::Tokens,
            30_000,
            Period::minute(),
        ))
        .budget(BudgetSpec::new(
            "tenant:daily",
            Unit::Cost,
            5_000_000_000,
            Period::Day,
        )) // $5
        .build()?;
    let stack = [
        ledger.budget("gpt-4o:tpm", "")?,
        ledger.budget("tenant:daily", "acme")?,
    ];
    let limits = ProviderLimits::new(bulwark::clock::MonotonicClock::new())
        .token_budget(ledger.clone(), stack[0]);

    let reservation =
        ledger.reserve(&stack, &Charge::new("gpt-4o", Usage::estimate(1_200, 800)))?;
    let response = http::Response::builder()
        .header("x-ratelimit-remaining-tokens", "25000")
        .header("x-ratelimit-reset-tokens", "12s")
        .body(r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":1200,"completion_tokens":90}}"#)?;
    limits.apply(&ProviderSignals::from_response(&response));
    let body: serde_json::Value = serde_json::from_str(response.body())?;
    LlmClassifier::new().classify_completion(&body, &[])?;
    let settled = reservation.settle(usage_from_openai(&body)?);
    assert_eq!(settled.cost, 3_900_000);
    assert_eq!(
        ledger.snapshot_of(stack[0]).ok_or("no budget")?.spent,
        1_290
    );
    Ok(())
}
