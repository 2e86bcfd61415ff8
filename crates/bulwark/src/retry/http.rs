//! The wait an HTTP response asks for: `Retry-After` (seconds or an HTTP-date) and
//! `retry-after-ms`.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// The wait `headers` ask for, measured from `now` for an HTTP-date.
///
/// `retry-after-ms` (milliseconds, as sent by OpenAI and Azure) wins over `Retry-After`, which
/// is either whole seconds (`120`) or an IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`); a date
/// in the past is a wait of zero. Unreadable values are ignored (`None`), never an error: the
/// caller's own backoff then applies.
///
/// ```
/// use bulwark::retry::retry_after_from_headers;
/// use http::HeaderMap;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "Thu, 01 Jan 1970 00:01:40 GMT".parse()?);
/// let now = UNIX_EPOCH + Duration::from_secs(40);
/// assert_eq!(retry_after_from_headers(&headers, now), Some(Duration::from_secs(60)));
/// headers.insert("retry-after-ms", "250".parse()?);
/// assert_eq!(retry_after_from_headers(&headers, now), Some(Duration::from_millis(250)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Ok(wait) = Duration::try_from_secs_f64(ms / 1000.0)
    {
        return Some(wait);
    }
    let value = text(http::header::RETRY_AFTER.as_str())?;
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}
