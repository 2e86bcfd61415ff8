//! Provider rate-limit headers read into [`ProviderSignals`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::budget::spec::days_from_civil;
use crate::retry::retry_after_from_headers;

/// One limit as a provider reports it: its size, what is left, and when it is whole again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LimitSignal {
    /// The limit per window.
    pub limit: Option<u64>,
    /// What is left in the window.
    pub remaining: Option<u64>,
    /// Time until the window resets.
    #[serde(serialize_with = "crate::serde_duration::millis::serialize")]
    pub reset_in: Option<Duration>,
}

impl LimitSignal {
    fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_in.is_none()
    }
}

/// What a provider's response says about its limits and health.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProviderSignals {
    /// The HTTP status.
    pub status: u16,
    /// Requests per window.
    pub requests: Option<LimitSignal>,
    /// Tokens per window (OpenAI; Anthropic's combined limit).
    pub tokens: Option<LimitSignal>,
    /// Input tokens per window (Anthropic).
    pub input_tokens: Option<LimitSignal>,
    /// Output tokens per window (Anthropic).
    pub output_tokens: Option<LimitSignal>,
    /// The wait asked for: `retry-after-ms`, else `retry-after` (seconds or an HTTP-date).
    #[serde(serialize_with = "crate::serde_duration::millis::serialize")]
    pub retry_after: Option<Duration>,
    /// Names of rate-limit headers whose value could not be read: ignored, and counted here
    /// (and in the `bulwark_llm_malformed_headers_total` counter), never an error.
    pub malformed: Vec<String>,
}

impl ProviderSignals {
    /// Reads `status` and `headers` at wall-clock time `now` (for Anthropic's RFC 3339 resets
    /// and HTTP-date `retry-after`s). Knows OpenAI's `x-ratelimit-*`, Anthropic's
    /// `anthropic-ratelimit-*` and the generic `retry-after` / `retry-after-ms`.
    pub fn from_parts(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Self {
        let mut signals = ProviderSignals {
            status: status.as_u16(),
            retry_after: retry_after_from_headers(headers, now),
            ..Self::default()
        };
        let text = |name: &str| headers.get(name).map(|v| v.to_str().map(str::trim));
        if let Some(ms) = text("retry-after-ms")
            && !ms.is_ok_and(|v| v.parse::<f64>().is_ok_and(|n| n.is_finite() && n >= 0.0))
        {
            signals.malformed.push("retry-after-ms".to_owned());
        }
        if let Some(after) = text("retry-after")
            && !after
                .is_ok_and(|v| v.parse::<u64>().is_ok() || httpdate::parse_http_date(v).is_ok())
        {
            signals.malformed.push("retry-after".to_owned());
        }
        let mut reader = Reader {
            headers,
            now,
            malformed: Vec::new(),
        };
        signals.requests = reader.openai("requests").or(reader.anthropic("requests"));
        signals.tokens = reader.openai("tokens").or(reader.anthropic("tokens"));
        signals.input_tokens = reader.anthropic("input-tokens");
        signals.output_tokens = reader.anthropic("output-tokens");
        signals.malformed.extend(reader.malformed);
        if !signals.malformed.is_empty() {
            tracing::debug!(malformed = ?signals.malformed, "ignored unreadable rate-limit headers");
            metrics::counter!("bulwark_llm_malformed_headers_total")
                .increment(signals.malformed.len() as u64);
        }
        signals
    }

    /// [`from_parts`](Self::from_parts) of an `http::Response` (reqwest, hyper, axum…) now.
    pub fn from_response<B>(response: &http::Response<B>) -> Self {
        Self::from_parts(response.status(), response.headers(), SystemTime::now())
    }

    /// Whether the provider refused for rate (429).
    pub fn is_rate_limited(&self) -> bool {
        self.status == 429
    }

    /// How long to stop calling: the `retry-after` asked for, else the reset of the first
    /// exhausted limit; only for a 429.
    pub fn pause_for(&self) -> Option<Duration> {
        if !self.is_rate_limited() {
            return None;
        }
        self.retry_after.or_else(|| {
            [
                self.requests,
                self.tokens,
                self.input_tokens,
                self.output_tokens,
            ]
            .into_iter()
            .flatten()
            .filter(|l| l.remaining == Some(0))
            .filter_map(|l| l.reset_in)
            .max()
        })
    }
}

struct Reader<'a> {
    headers: &'a HeaderMap,
    now: SystemTime,
    malformed: Vec<String>,
}

impl Reader<'_> {
    fn value<T>(&mut self, name: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let raw = self.headers.get(name)?;
        let parsed = raw.to_str().ok().map(str::trim).and_then(&parse);
        if parsed.is_none() {
            self.malformed.push(name.to_owned());
        }
        parsed
    }

    /// `x-ratelimit-{limit,remaining,reset}-{kind}`; resets are Go durations (`6m0s`).
    fn openai(&mut self, kind: &str) -> Option<LimitSignal> {
        let signal = LimitSignal {
            limit: self.value(&format!("x-ratelimit-limit-{kind}"), parse_count),
            remaining: self.value(&format!("x-ratelimit-remaining-{kind}"), parse_count),
            reset_in: self.value(&format!("x-ratelimit-reset-{kind}"), parse_go_duration),
        };
        (!signal.is_empty()).then_some(signal)
    }

    /// `anthropic-ratelimit-{kind}-{limit,remaining,reset}`; resets are RFC 3339 instants.
    fn anthropic(&mut self, kind: &str) -> Option<LimitSignal> {
        let now = self.now;
        let signal = LimitSignal {
            limit: self.value(&format!("anthropic-ratelimit-{kind}-limit"), parse_count),
            remaining: self.value(
                &format!("anthropic-ratelimit-{kind}-remaining"),
                parse_count,
            ),
            reset_in: self.value(&format!("anthropic-ratelimit-{kind}-reset"), |v| {
                let at = parse_rfc3339(v)?;
                Some(at.duration_since(now).unwrap_or(Duration::ZERO))
            }),
        };
        (!signal.is_empty()).then_some(signal)
    }
}

fn parse_count(value: &str) -> Option<u64> {
    value.parse().ok()
}

/// A Go `time.Duration` string as OpenAI sends it: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, `0s`.
pub fn parse_go_duration(value: &str) -> Option<Duration> {
    if value.is_empty() {
        return None;
    }
    let mut rest = value;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// An RFC 3339 instant (`2026-12-07T18:01:30Z`, fractions and offsets allowed).
pub fn parse_rfc3339(value: &str) -> Option<SystemTime> {
    let bytes = value.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = value.get(range)?;
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &value[19..];
    let mut nanos = 0u64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if digits == 0 {
            return None;
        }
        let padded: String = fraction[..digits]
            .chars()
            .chain("000000000".chars())
            .take(9)
            .collect();
        nanos = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_nanos(nanos))
}
