//! Requests a browser could be tricked into sending: DNS rebinding and cross-site writes.
//!
//! A web page open in the operator's browser can make it send requests to the loopback
//! server. Two rules shut that out, before authentication, for every request:
//!
//! 1. **Host.** The `Host` header (or the URI's authority) must name one of the allowed
//!    hosts, whatever the port: `localhost`, `127.0.0.1`, `[::1]` and the listen address by
//!    default, or `server.allowed_hosts` (`"*"` turns the check off). A page on
//!    `evil.example` whose name was rebound to 127.0.0.1 still sends `Host: evil.example`,
//!    so it is refused. A request without any host (not a browser's) passes.
//! 2. **Origin.** A write (POST, PUT, PATCH, DELETE) is refused when `Sec-Fetch-Site` says it
//!    came from another site (`cross-site` or `same-site`; `same-origin`, `none` and no
//!    header pass), or when `Origin` is present and its host and port differ from `Host`'s
//!    (`Origin: null` included). A dashboard served by this server fetches from its own
//!    origin, so it passes both.
//!
//! A write must also be JSON: a `Content-Type` other than `application/json` (parameters
//! allowed), or a body without any, is refused with 415. The forms and `text/plain` bodies
//! a page can send without a CORS preflight are therefore never accepted.
//!
//! ```
//! use bulwark_server::guard::AllowedHosts;
//!
//! let hosts = AllowedHosts::new(&[], "127.0.0.1:8000".parse().ok());
//! assert!(hosts.allows("localhost:8000"));
//! assert!(hosts.allows("[::1]:9"));
//! assert!(!hosts.allows("evil.example:8000"));
//! assert!(AllowedHosts::new(&["*".into()], None).allows("evil.example"));
//! ```

use std::net::SocketAddr;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::extract::is_json_content_type;
use crate::state::AppState;

/// The host names a request's `Host` may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Lowercase names (IPv6 in brackets); `None` means any.
    names: Option<Vec<String>>,
}

impl Default for AllowedHosts {
    fn default() -> Self {
        Self::new(&[], None)
    }
}

/// Allowed whatever the configuration says, unless it says `"*"`.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl AllowedHosts {
    /// The loopback names, the listen address's IP (when it is not a wildcard) and
    /// `configured`; `"*"` among them allows any host.
    pub fn new(configured: &[String], listen: Option<SocketAddr>) -> Self {
        if configured.iter().any(|name| name.trim() == "*") {
            return Self { names: None };
        }
        let mut names: Vec<String> = LOOPBACK.iter().map(|&name| name.to_owned()).collect();
        if let Some(listen) = listen.filter(|address| !address.ip().is_unspecified()) {
            names.push(match listen {
                SocketAddr::V4(v4) => v4.ip().to_string(),
                SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            });
        }
        names.extend(
            configured
                .iter()
                .map(|name| split_authority(name.trim()).0.to_ascii_lowercase()),
        );
        names.sort();
        names.dedup();
        Self { names: Some(names) }
    }

    /// Whether `authority` (`name`, `name:port`, `[v6]:port`) names an allowed host.
    pub fn allows(&self, authority: &str) -> bool {
        let Some(names) = &self.names else {
            return true;
        };
        let host = split_authority(authority).0;
        names.iter().any(|name| name.eq_ignore_ascii_case(host))
    }
}

/// `host[:port]` split into the host (IPv6 kept in brackets) and the port, if any.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// The host and port a request was sent to: `Host`, else the URI's authority.
fn request_authority(request: &Request) -> Option<String> {
    match request.headers().get(header::HOST) {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    }
}

/// Whether `origin` (`scheme://host[:port]`) is the same host and port as `authority`, the
/// server being plain HTTP (port 80 when `Host` names none).
fn same_origin(origin: &str, authority: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (origin_host, origin_port) = split_authority(rest);
    let (host, port) = split_authority(authority);
    origin_host.eq_ignore_ascii_case(host)
        && origin_port.unwrap_or(default_port) == port.unwrap_or("80")
}

fn forbidden(code: &'static str, message: impl Into<String>) -> Response {
    ApiError::Forbidden {
        code,
        message: message.into(),
    }
    .into_response()
}

/// Whether the request may carry a body: a non-zero `Content-Length`, chunked, or a body
/// not known to be empty.
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|value| value.as_bytes() != b"0")
        || request.body().size_hint().upper() != Some(0)
}

/// The middleware: the rules of the module docs.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let authority = request_authority(&request);
    if let Some(authority) = &authority
        && !state.allowed_hosts().allows(authority)
    {
        return forbidden(
            "host_not_allowed",
            format!(
                "host {:?} is not served here; add it to server.allowed_hosts",
                crate::error::clip(authority)
            ),
        );
    }
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !writes {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return forbidden(
            "cross_origin",
            "writes from another site are refused (Sec-Fetch-Site)",
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if !authority
            .as_deref()
            .is_some_and(|authority| same_origin(&origin, authority))
        {
            return forbidden(
                "cross_origin",
                format!(
                    "writes from origin {:?} are refused: it is not this server's origin",
                    crate::error::clip(&origin)
                ),
            );
        }
    }
    let json = match headers.get(header::CONTENT_TYPE) {
        Some(value) => is_json_content_type(value),
        None => !has_body(&request),
    };
    if !json {
        return ApiError::UnsupportedMediaType.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_host_and_effective_port() {
        assert!(same_origin("http://localhost:8000", "localhost:8000"));
        assert!(same_origin("http://LOCALHOST", "localhost"));
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("http://[::1]:8000", "[::1]:8000"));
        assert!(!same_origin("http://localhost:3000", "localhost:8000"));
        assert!(!same_origin("https://localhost", "localhost"));
        assert!(!same_origin("null", "localhost:8000"));
        assert!(!same_origin("https://evil.example", "127.0.0.1:8000"));
    }

    #[test]
    fn configured_hosts_add_to_loopback_and_ignore_ports() {
        let hosts = AllowedHosts::new(&["Bulwark.internal:9000".into()], None);
        assert!(hosts.allows("bulwark.internal"));
        assert!(hosts.allows("BULWARK.internal:1"));
        assert!(hosts.allows("127.0.0.1:5"));
        assert!(!hosts.allows("bulwark.internal.evil.example"));
        let v6 = AllowedHosts::new(&[], "[::2]:80".parse().ok());
        assert!(v6.allows("[::2]:80"));
        assert!(!AllowedHosts::new(&[], "0.0.0.0:80".parse().ok()).allows("0.0.0.0"));
    }
}
