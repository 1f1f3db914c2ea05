//! Token authentication for every route: `?token=` in the URL or the `vnrit_token` cookie.
//!
//! Tokens are compared in constant time. After a first success through the query string the
//! server sets an HttpOnly, SameSite=Strict cookie, so the page's own requests (scripts,
//! WebSocket, stats) need no token in their URLs.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Decides whether a request with this query and headers may come in.
pub fn check(expected: Option<&str>, query: Option<&str>, headers: &HeaderMap) -> Option<Proof> {
    let Some(expected) = expected else {
        return Some(Proof::Open);
    };
    if let Some(given) = query_token(query) {
        if token_matches(expected, &given) {
            return Some(Proof::Query);
        }
    }
    if let Some(given) = cookie_token(headers) {
        if token_matches(expected, &given) {
            return Some(Proof::Cookie);
        }
    }
    None
}

/// Axum middleware: 401 unless the request carries the token.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let proof = check(
        state.token.as_deref(),
        request.uri().query(),
        request.headers(),
    );
    match proof {
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::CACHE_CONTROL, "no-store")],
            "401 Unauthorized: this vnrit server needs a token; open the URL it printed, with ?token=...\n",
        )
            .into_response(),
        Some(Proof::Query) => {
            let mut response = next.run(request).await;
            if let Some(token) = &state.token {
                let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
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
        assert_eq!(check(None, None, &none), Some(Proof::Open));
        assert_eq!(check(Some("t1"), None, &none), None);
        assert_eq!(
            check(Some("t1"), Some("token=t1"), &none),
            Some(Proof::Query)
        );
        assert_eq!(
            check(Some("t1"), Some("a=b&token=t1"), &none),
            Some(Proof::Query)
        );
        assert_eq!(check(Some("t1"), Some("token=t2"), &none), None);
        assert_eq!(check(Some("t1"), Some("xtoken=t1"), &none), None);
        assert_eq!(
            check(Some("t1"), None, &cookies("a=b; vnrit_token=t1")),
            Some(Proof::Cookie)
        );
        assert_eq!(check(Some("t1"), None, &cookies("vnrit_token=t2")), None);
        // A wrong query token does not hide a good cookie.
        assert_eq!(
            check(Some("t1"), Some("token=bad"), &cookies("vnrit_token=t1")),
            Some(Proof::Cookie)
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(query_token(Some("token=a%2Db")), Some("a-b".into()));
        assert_eq!(query_token(Some("token=%")), Some("%".into()));
        assert_eq!(query_token(Some("token=%zz")), Some("%zz".into()));
        assert_eq!(query_token(Some("token=%4")), Some("%4".into()));
    }
}
