//! Token authentication for every route: `?token=` in the URL or the `vnrit_token` cookie.
//!
//! Tokens are compared in constant time. After a first success through the query string the
//! server sets an HttpOnly, SameSite=Strict cookie, so the page's own requests (scripts,
//! WebSocket, stats) need no token in their URLs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::AppState;

/// Name of the session cookie.
pub const COOKIE: &str = "vnrit_token";

/// How a request proved it may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// No token is configured.
    Open,
    /// The cookie carried the token.
    Cookie,
    /// The query string carried the token (set the cookie in the response).
    Query,
}

/// What an admitted client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Watch and control (keyboard, mouse, clipboard).
    Control,
    /// Watch only.
    View,
}

/// Constant-time token comparison.
pub fn token_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The `token` query parameter, if any.
pub fn query_token(query: Option<&str>) -> Option<String> {
    let query = query?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `vnrit_token` cookie, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        })
}

/// Decides whether a request with this query and headers may come in, and with which role.
/// `view` is the optional view-only token.
pub fn check(
    expected: Option<&str>,
    view: Option<&str>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<(Proof, Role)> {
    let Some(expected) = expected else {
        return Some((Proof::Open, Role::Control));
    };
    let role_of = |given: &str| {
        // Both comparisons always run, so timing does not tell which token matched.
        let control = token_matches(expected, given);
        let viewer = view.is_some_and(|v| token_matches(v, given));
        if control {
            Some(Role::Control)
        } else if viewer {
            Some(Role::View)
        } else {
            None
        }
    };
    if let Some(role) = query_token(query).as_deref().and_then(role_of) {
        return Some((Proof::Query, role));
    }
    if let Some(role) = cookie_token(headers).as_deref().and_then(role_of) {
        return Some((Proof::Cookie, role));
    }
    None
}

/// Failed attempts one address may make per [`FAIL_WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 20;
/// Window of the failed-attempt counter.
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);

/// Counts failed token checks per client address, to slow down guessing.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` has used up its failed attempts at `now`.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.map().get(&ip).is_some_and(|(since, n)| {
            now.duration_since(*since) < FAIL_WINDOW && *n >= MAX_FAILURES
        })
    }

    /// Records one failed attempt of `ip` at `now`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.map();
        if map.len() >= 4096 {
            map.retain(|_, (since, _)| now.duration_since(*since) < FAIL_WINDOW);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= FAIL_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// The request URI without its `token` query parameter.
pub fn without_token(uri: &Uri) -> String {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
        .collect();
    if rest.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    }
}

/// Axum middleware: 401 unless the request carries the token; 429 after too many failures.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let now = Instant::now();
    if let Some(ip) = ip {
        if state.failures.blocked(ip, now) {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "60")],
                "429 Too Many Requests: too many wrong tokens from this address; wait a minute\n",
            )
                .into_response();
        }
    }
    let mut request = request;
    let proof = check(
        state.access.token.as_deref(),
        state.access.view_token.as_deref(),
        request.uri().query(),
        request.headers(),
    );
    if let Some((_, role)) = proof {
        request.extensions_mut().insert(role);
    }
    match proof.map(|(p, _)| p) {
        None => {
            if let Some(ip) = ip {
                state.failures.failed(ip, now);
            }
            (
                StatusCode::UNAUTHORIZED,
                [(header::CACHE_CONTROL, "no-store")],
                "401 Unauthorized: this vnrit server needs a token; open the URL it printed, with ?token=...\n",
            )
                .into_response()
        }
        Some(Proof::Query) => {
            let token = query_token(request.uri().query());
            let cookie = token.as_ref().and_then(|token| {
                let secure = if state.access.secure_cookie {
                    "; Secure"
                } else {
                    ""
                };
                HeaderValue::from_str(&format!(
                    "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"
                ))
                .ok()
            });
            // A page visit: set the cookie and drop the token from the address bar and history.
            let navigation = request.method() == Method::GET
                && request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"));
            let mut response = if navigation {
                Redirect::to(&without_token(request.uri())).into_response()
            } else {
                next.run(request).await
            };
            if let Some(cookie) = cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn constant_time_compare() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "ab"));
        assert!(!token_matches("abc", ""));
    }

    #[test]
    fn query_and_cookie() {
        let none = HeaderMap::new();
        let c = |q, h: &HeaderMap| check(Some("t1"), None, q, h).map(|(p, _)| p);
        assert_eq!(
            check(None, None, None, &none),
            Some((Proof::Open, Role::Control))
        );
        assert_eq!(c(None, &none), None);
        assert_eq!(c(Some("token=t1"), &none), Some(Proof::Query));
        assert_eq!(c(Some("a=b&token=t1"), &none), Some(Proof::Query));
        assert_eq!(c(Some("token=t2"), &none), None);
        assert_eq!(c(Some("xtoken=t1"), &none), None);
        assert_eq!(
            c(None, &cookies("a=b; vnrit_token=t1")),
            Some(Proof::Cookie)
        );
        assert_eq!(c(None, &cookies("vnrit_token=t2")), None);
        // A wrong query token does not hide a good cookie.
        assert_eq!(
            c(Some("token=bad"), &cookies("vnrit_token=t1")),
            Some(Proof::Cookie)
        );
    }

    #[test]
    fn view_token_gives_the_view_role() {
        let none = HeaderMap::new();
        let c = |q| check(Some("ctl"), Some("look"), q, &none);
        assert_eq!(c(Some("token=ctl")), Some((Proof::Query, Role::Control)));
        assert_eq!(c(Some("token=look")), Some((Proof::Query, Role::View)));
        assert_eq!(c(Some("token=other")), None);
        assert_eq!(
            check(
                Some("ctl"),
                Some("look"),
                None,
                &cookies("vnrit_token=look")
            ),
            Some((Proof::Cookie, Role::View))
        );
    }

    #[test]
    fn token_is_removed_from_the_redirect() {
        let uri: Uri = "/?token=abc".parse().unwrap();
        assert_eq!(without_token(&uri), "/");
        let uri: Uri = "/index.html?a=1&token=abc&b=2".parse().unwrap();
        assert_eq!(without_token(&uri), "/index.html?a=1&b=2");
    }

    #[test]
    fn failures_are_limited_per_address_and_window() {
        let limiter = FailureLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(!limiter.blocked(a, t0));
            limiter.failed(a, t0);
        }
        assert!(limiter.blocked(a, t0));
        assert!(!limiter.blocked(b, t0), "other addresses are not affected");
        assert!(!limiter.blocked(a, t0 + FAIL_WINDOW), "the window expires");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(query_token(Some("token=a%2Db")), Some("a-b".into()));
        assert_eq!(query_token(Some("token=%")), Some("%".into()));
        assert_eq!(query_token(Some("token=%zz")), Some("%zz".into()));
        assert_eq!(query_token(Some("token=%4")), Some("%4".into()));
    }
}
