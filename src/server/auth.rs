//! Token authentication for every route: `?token=` in the URL or the signed `vnrit_session`
//! cookie.
//!
//! Tokens are compared in constant time. After a first success through the query string the
//! server sets an HttpOnly, SameSite=Strict cookie that carries a signed, expiring proof of
//! the role rather than the token (see [`super::cookie`]), so the page's own requests
//! (scripts, WebSocket, stats) need no token in their URLs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

pub use super::access::Role;
use super::cookie::{now_unix, CookieKeys};
use super::AppState;
use crate::lock::lock;

/// Name of the session cookie.
pub const COOKIE: &str = "vnrit_session";

/// How a request proved it may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// No token is configured.
    Open,
    /// A valid session cookie.
    Cookie,
    /// The query string carried the token (set the cookie in the response).
    Query,
    /// An `Authorization: Bearer` header carried the token (tools such as Prometheus; no
    /// cookie is set).
    Bearer,
}

/// The secrets requests are checked against: the tokens and the cookie keys made from them.
#[derive(Debug)]
pub struct Credentials {
    token: Option<String>,
    view_token: Option<String>,
    cookies: Option<CookieKeys>,
}

impl Credentials {
    /// Credentials for the control `token` (`None` = open, `--no-auth`) and the optional
    /// view-only token; session cookies live `session_ttl`.
    pub fn new(token: Option<&str>, view_token: Option<&str>, session_ttl: Duration) -> Self {
        Credentials {
            token: token.map(str::to_owned),
            view_token: token.and(view_token).map(str::to_owned),
            cookies: token.map(|t| CookieKeys::new(t, view_token, session_ttl)),
        }
    }

    /// The cookie signer (`None` when open).
    pub fn cookies(&self) -> Option<&CookieKeys> {
        self.cookies.as_ref()
    }

    /// The role a presented token grants, if any. Both tokens are always compared, so timing
    /// does not tell which one matched.
    fn role_of(&self, given: &str) -> Option<Role> {
        let expected = self.token.as_deref()?;
        let control = token_matches(expected, given);
        let viewer = self
            .view_token
            .as_deref()
            .is_some_and(|v| token_matches(v, given));
        if control {
            Some(Role::Control)
        } else if viewer {
            Some(Role::View)
        } else {
            None
        }
    }
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

/// Every value of the `vnrit_session` cookie in the request, in order.
pub fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then_some(v)
        })
}

/// The `Authorization: Bearer` token, if any (the scheme is case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The first `vnrit_session` cookie value, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    cookie_values(headers).next().map(str::to_owned)
}

/// Decides whether a request with this query and headers may come in at Unix time `now`,
/// and with which role.
pub fn check(
    creds: &Credentials,
    query: Option<&str>,
    headers: &HeaderMap,
    now: u64,
) -> Option<(Proof, Role)> {
    let Some(keys) = creds.cookies() else {
        return Some((Proof::Open, Role::Control));
    };
    if let Some(role) = query_token(query).as_deref().and_then(|t| creds.role_of(t)) {
        return Some((Proof::Query, role));
    }
    if let Some(role) = bearer(headers).and_then(|t| creds.role_of(t)) {
        return Some((Proof::Bearer, role));
    }
    // A browser may hold a stale cookie next to a good one; a few are looked at.
    let mut refused = None;
    for value in cookie_values(headers).take(4) {
        match keys.verify(value, now) {
            Ok(role) => return Some((Proof::Cookie, role)),
            Err(err) => refused = Some(err),
        }
    }
    if let Some(err) = refused {
        tracing::debug!("refused a session cookie: {err}");
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
        lock(&self.failures)
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
    let unix_now = now_unix();
    let proof = check(
        &state.credentials,
        request.uri().query(),
        request.headers(),
        unix_now,
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
            let role = proof.map_or(Role::View, |(_, r)| r);
            let cookie = state.credentials.cookies().and_then(|keys| {
                let value = keys.issue(role, unix_now)?;
                let secure = if state.access.secure_cookie {
                    "; Secure"
                } else {
                    ""
                };
                HeaderValue::from_str(&format!(
                    "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                    keys.ttl().as_secs()
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

    const NOW: u64 = 1_800_000_000;

    fn cookies(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(v).unwrap());
        h
    }

    fn creds(token: &str, view: Option<&str>) -> Credentials {
        Credentials::new(Some(token), view, Duration::from_secs(3600))
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
        let open = Credentials::new(None, Some("ignored"), Duration::from_secs(60));
        assert_eq!(
            check(&open, None, &none, NOW),
            Some((Proof::Open, Role::Control))
        );
        let k = creds("t1", None);
        let good = k.cookies().unwrap().issue(Role::Control, NOW).unwrap();
        let c = |q, h: &HeaderMap| check(&k, q, h, NOW).map(|(p, _)| p);
        assert_eq!(c(None, &none), None);
        assert_eq!(c(Some("token=t1"), &none), Some(Proof::Query));
        assert_eq!(c(Some("a=b&token=t1"), &none), Some(Proof::Query));
        assert_eq!(c(Some("token=t2"), &none), None);
        assert_eq!(c(Some("xtoken=t1"), &none), None);
        assert_eq!(
            c(None, &cookies(&format!("a=b; vnrit_session={good}"))),
            Some(Proof::Cookie)
        );
        // The raw token is not a session cookie.
        assert_eq!(c(None, &cookies("vnrit_session=t1")), None);
        assert_eq!(c(None, &cookies(&format!("other={good}"))), None);
        // A stale cookie before a good one does not hide it.
        assert_eq!(
            c(
                None,
                &cookies(&format!("vnrit_session=old; vnrit_session={good}"))
            ),
            Some(Proof::Cookie)
        );
        // A wrong query token does not hide a good cookie.
        assert_eq!(
            c(
                Some("token=bad"),
                &cookies(&format!("vnrit_session={good}"))
            ),
            Some(Proof::Cookie)
        );
        // Once expired, the cookie is refused.
        let h = cookies(&format!("vnrit_session={good}"));
        assert_eq!(check(&k, None, &h, NOW + 3600), None);
    }

    #[test]
    fn bearer_header_admits_with_its_role() {
        let k = creds("ctl", Some("look"));
        let auth = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            check(&k, None, &h, NOW)
        };
        assert_eq!(auth("Bearer ctl"), Some((Proof::Bearer, Role::Control)));
        assert_eq!(auth("bearer  look "), Some((Proof::Bearer, Role::View)));
        assert_eq!(auth("Bearer wrong"), None);
        assert_eq!(auth("Basic ctl"), None);
        assert_eq!(auth("Bearer"), None);
    }

    #[test]
    fn view_token_gives_the_view_role() {
        let none = HeaderMap::new();
        let k = creds("ctl", Some("look"));
        let c = |q| check(&k, q, &none, NOW);
        assert_eq!(c(Some("token=ctl")), Some((Proof::Query, Role::Control)));
        assert_eq!(c(Some("token=look")), Some((Proof::Query, Role::View)));
        assert_eq!(c(Some("token=other")), None);
        let view = k.cookies().unwrap().issue(Role::View, NOW).unwrap();
        assert_eq!(
            check(&k, None, &cookies(&format!("vnrit_session={view}")), NOW),
            Some((Proof::Cookie, Role::View))
        );
        // Without a --token, a view token means nothing (everything is open anyway).
        let open = Credentials::new(None, Some("look"), Duration::from_secs(60));
        assert_eq!(
            check(&open, Some("token=look"), &none, NOW),
            Some((Proof::Open, Role::Control))
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
