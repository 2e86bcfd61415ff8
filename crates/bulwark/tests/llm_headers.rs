//! Provider header sets (recorded from the providers' public docs, in tests/fixtures/llm)
//! read into signals, malformed values included; usage blocks read into budget usage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulwark::budget::Usage;
use bulwark::llm::{
    LimitSignal, ProviderSignals, UsageError, parse_go_duration, parse_rfc3339,
    usage_from_anthropic, usage_from_openai,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::json;

/// 2026-12-07T18:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_666_400)
}

fn fixture(name: &str) -> (StatusCode, HeaderMap) {
    let path = format!("{}/tests/fixtures/llm/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let status = lines
        .next()
        .unwrap()
        .trim_start_matches("HTTP ")
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(": ").unwrap();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    (StatusCode::from_u16(status).unwrap(), headers)
}

fn read(name: &str) -> ProviderSignals {
    let (status, headers) = fixture(name);
    ProviderSignals::from_parts(status, &headers, now())
}

fn limit(limit: u64, remaining: u64, reset_ms: u64) -> Option<LimitSignal> {
    let mut signal = LimitSignal::default();
    signal.limit = Some(limit);
    signal.remaining = Some(remaining);
    signal.reset_in = Some(Duration::from_millis(reset_ms));
    Some(signal)
}

#[test]
fn openai_success_headers_give_requests_and_tokens() {
    let s = read("openai_200.headers");
    assert_eq!(s.requests, limit(60, 59, 1_000));
    assert_eq!(s.tokens, limit(150_000, 149_984, 360_000));
    assert_eq!((s.retry_after, s.pause_for()), (None, None));
    assert!(s.malformed.is_empty());
}

#[test]
fn openai_429_prefers_retry_after_ms_and_pauses_for_it() {
    let s = read("openai_429.headers");
    assert!(s.is_rate_limited());
    assert_eq!(s.tokens, limit(30_000, 0, 72_345));
    assert_eq!(s.requests, limit(500, 499, 120));
    assert_eq!(s.pause_for(), Some(Duration::from_millis(1_500)));
}

#[test]
fn anthropic_headers_give_all_four_limits_with_rfc3339_resets() {
    let s = read("anthropic_200.headers");
    assert_eq!(s.requests, limit(50, 49, 1_000));
    assert_eq!(s.tokens, limit(38_000, 37_000, 30_500));
    assert_eq!(s.input_tokens, limit(30_000, 29_500, 30_000));
    // 19:00:10+01:00 is 18:00:10Z.
    assert_eq!(s.output_tokens, limit(8_000, 7_500, 10_000));
}

#[test]
fn anthropic_429_pauses_for_retry_after() {
    let s = read("anthropic_429.headers");
    assert_eq!(s.pause_for(), Some(Duration::from_secs(30)));
    assert_eq!(s.requests.unwrap().remaining, Some(0));
}

#[test]
fn a_429_without_retry_after_pauses_until_the_exhausted_limit_resets() {
    let (_, mut headers) = fixture("anthropic_429.headers");
    headers.remove("retry-after");
    let s = ProviderSignals::from_parts(StatusCode::TOO_MANY_REQUESTS, &headers, now());
    assert_eq!(s.pause_for(), Some(Duration::from_secs(30)));
}

#[test]
fn an_http_date_retry_after_is_measured_from_now() {
    let s = read("generic_503.headers");
    assert_eq!(s.retry_after, Some(Duration::from_secs(120)));
    assert_eq!(s.pause_for(), None, "only a 429 pauses the limiter");
}

#[test]
fn malformed_values_are_ignored_and_named_never_an_error() {
    let s = read("malformed.headers");
    let mut malformed = s.malformed.clone();
    malformed.sort();
    assert_eq!(
        malformed,
        [
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
            "retry-after",
            "retry-after-ms",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ]
    );
    let tokens = s.tokens.unwrap();
    assert_eq!(
        (tokens.limit, tokens.remaining, tokens.reset_in),
        (Some(150_000), None, None)
    );
    assert_eq!(s.retry_after, None);
    assert_eq!(s.pause_for(), None);
}

#[test]
fn go_durations_and_rfc3339_instants_parse_and_reject() {
    assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
    assert_eq!(
        parse_go_duration("1h2m3.5s"),
        Some(Duration::from_millis(3_723_500))
    );
    assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
    for bad in ["", "5", "1x", "ms", "-1s", "1.2.3s"] {
        assert_eq!(parse_go_duration(bad), None, "{bad}");
    }
    assert_eq!(
        parse_rfc3339("1970-01-01T00:00:01.25Z"),
        Some(UNIX_EPOCH + Duration::from_millis(1_250))
    );
    for bad in [
        "2026-12-07",
        "2026-12-07T25:00:00Z",
        "2026-12-07T18:00:00",
        "2026-12-07T18:00:00+1:00",
        "1969-12-31T23:59:59Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn usage_blocks_split_cached_tokens_and_refuse_negative_counts() {
    let tool_ok: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/llm/openai_tool_ok.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        usage_from_openai(&tool_ok),
        Ok(Usage::new(26, 20).with_cached(64))
    );
    let anthropic = json!({"usage": {"input_tokens": 400, "cache_creation_input_tokens": 100,
                                     "cache_read_input_tokens": 300, "output_tokens": 40}});
    assert_eq!(
        usage_from_anthropic(&anthropic),
        Ok(Usage::new(500, 40).with_cached(300))
    );
    let negative = json!({"usage": {"prompt_tokens": -5, "completion_tokens": 1}});
    assert!(
        matches!(usage_from_openai(&negative), Err(UsageError::NotACount { field, .. }) if field == "prompt_tokens")
    );
    let fractional = json!({"usage": {"input_tokens": 1.5, "output_tokens": 1}});
    assert!(usage_from_anthropic(&fractional).is_err());
    let cached =
        json!({"usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}});
    assert_eq!(
        usage_from_openai(&cached),
        Err(UsageError::CachedAbovePrompt {
            cached: 9,
            prompt: 5
        })
    );
    assert_eq!(usage_from_openai(&json!({})), Err(UsageError::Missing));
}
