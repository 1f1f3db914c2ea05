//! Fuzz target: token and cookie parsing (`vnrit::server::auth::{query_token, cookie_token,
//! check}`).
//!
//! The input is split on NUL bytes: the first part is the query string, the rest are Cookie
//! header values (those that `HeaderValue` accepts). Nothing may panic, and `check` may admit
//! the request only if the query or a cookie really carries one of the two tokens.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vnrit::server::auth::{check, cookie_token, query_token, Proof, Role};

const CONTROL: &str = "control-token";
const VIEW: &str = "view-token";

fuzz_target!(|bytes: &[u8]| {
    let mut parts = bytes.split(|&b| b == 0);
    let query = parts.next().map(String::from_utf8_lossy);
    let query = query.as_deref();
    let mut headers = HeaderMap::new();
    for value in parts {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(header::COOKIE, value);
        }
    }
    let from_query = query_token(query);
    let from_cookie = cookie_token(&headers);
    match check(Some(CONTROL), Some(VIEW), query, &headers) {
        None => {}
        Some((Proof::Query, role)) => assert_eq!(from_query.as_deref(), Some(token(role))),
        Some((Proof::Cookie, role)) => assert_eq!(from_cookie.as_deref(), Some(token(role))),
        Some((Proof::Open, _)) => panic!("open access although a token is set"),
    }
    // Without a configured token everything is open, whatever the request says.
    assert_eq!(
        check(None, None, query, &headers),
        Some((Proof::Open, Role::Control))
    );
});

fn token(role: Role) -> &'static str {
    match role {
        Role::Control => CONTROL,
        Role::View => VIEW,
    }
}
