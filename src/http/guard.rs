//! The HTTP gatekeeper: the execution token, and Host/Origin checks against DNS
//! rebinding, applied to every route but `/healthz` and the dashboard page.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::json_error;

/// Who may talk to the server.
pub struct Access {
    /// SHA-256 of the token, when one is required.
    token_digest: Option<[u8; 32]>,
    /// Host names (without port) accepted in `Host`; `*` accepts any.
    allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) accepted besides the server's own.
    allowed_origins: Vec<String>,
}

const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1", "[::1]"];

impl Access {
    pub fn new(token: Option<&str>, allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        hosts.extend(allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
        Self {
            token_digest: token.map(digest),
            allowed_hosts: hosts,
            allowed_origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn requires_token(&self) -> bool {
        self.token_digest.is_some()
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        self.allowed_hosts.iter().any(|h| h == "*" || *h == name)
    }

    /// Same-origin requests (the dashboard) and configured origins pass.
    fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.allowed_origins.iter().any(|o| *o == origin || o == "*") {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        authority.is_some_and(|a| a == host.to_ascii_lowercase())
    }

    /// Checks the token in `X-Execution-Token` or `Authorization: Bearer`, in constant time.
    pub fn token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token_digest else {
            return true;
        };
        let presented = headers
            .get("x-execution-token")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            });
        let Some(presented) = presented else { return false };
        let got = digest(presented.trim());
        // Compare digests so neither the length nor a prefix leaks through timing.
        got.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The host name of a `Host` value, without the port (`[::1]:80` → `[::1]`).
fn host_name(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.starts_with('[') {
        return host.split_once(']').map(|(h, _)| format!("{h}]")).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_owned(),
        _ => host,
    }
}

/// Paths served without a token: liveness, and the dashboard page (which asks for the token).
fn is_public(method: &http::Method, path: &str) -> bool {
    path == "/healthz" || (method == http::Method::GET && path == "/")
}

/// Query parameters that look like a credential.
fn query_has_token(query: &str) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
        matches!(
            key.as_str(),
            "token" | "execution_token" | "access_token" | "x-execution-token" | "auth"
        )
    })
}

pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/healthz" {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let Some(host) = host else {
        return json_error(StatusCode::BAD_REQUEST, "missing Host header", None);
    };
    if !access.host_allowed(&host) {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden host",
            Some(format!(
                "Host {host:?} is not allowed; start the server with --allowed-host {}",
                host_name(&host)
            )),
        );
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !access.origin_allowed(origin, &host) {
            return json_error(
                StatusCode::FORBIDDEN,
                "forbidden origin",
                Some(format!(
                    "Origin {origin:?} is not allowed; start the server with --allowed-origin to allow it"
                )),
            );
        }
    }
    if is_public(request.method(), &path) {
        return next.run(request).await;
    }
    if request.uri().query().is_some_and(query_has_token) {
        return unauthorized(
            "a token in the URL is refused (URLs end up in logs); send it in the X-Execution-Token or Authorization: Bearer header",
        );
    }
    if !access.token_ok(request.headers()) {
        return unauthorized(
            "missing or wrong execution token; send X-Execution-Token: <token> or Authorization: Bearer <token>",
        );
    }
    next.run(request).await
}

fn unauthorized(detail: &str) -> Response {
    let mut response = json_error(StatusCode::UNAUTHORIZED, "unauthorized", Some(detail.to_owned()));
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"execlayer\""),
    );
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins() {
        let access = Access::new(
            Some("secret-token"),
            &["mcp.example.com".into()],
            &["https://app.example".into()],
        );
        for ok in ["localhost:8765", "127.0.0.1", "[::1]:9", "MCP.example.com:443"] {
            assert!(access.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example", "127.0.0.1.evil.example:80", "localhost.evil:1"] {
            assert!(!access.host_allowed(bad), "{bad}");
        }
        assert!(access.origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765"));
        assert!(access.origin_allowed("https://app.example/", "127.0.0.1:8765"));
        assert!(!access.origin_allowed("http://evil.example", "127.0.0.1:8765"));
        assert!(!access.origin_allowed("null", "127.0.0.1:8765"));
    }

    #[test]
    fn tokens_by_either_header() {
        let access = Access::new(Some("secret-token"), &[], &[]);
        let mut h = HeaderMap::new();
        assert!(!access.token_ok(&h));
        h.insert("x-execution-token", "secret-token".parse().unwrap());
        assert!(access.token_ok(&h));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer secret-token".parse().unwrap());
        assert!(access.token_ok(&h));
        h.insert(header::AUTHORIZATION, "Bearer secret-tokeN".parse().unwrap());
        assert!(!access.token_ok(&h));
        assert!(query_has_token("a=1&token=x") && !query_has_token("sessionId=abc"));
    }
}
