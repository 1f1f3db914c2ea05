//! Fuzz target: token and session-cookie parsing (`vnrit::server::auth::{query_token,
//! cookie_value, check}` and `vnrit::server::cookie::CookieKeys::verify`).
//!
//! The input is split on NUL bytes: the first part is the query string, the second an
//! Authorization header value, the rest are Cookie header values (those that `HeaderValue`
//! accepts). Nothing may panic; `check` may admit the request only if the query or the bearer
//! header really carries one of the two tokens or a cookie verifies; and no fuzzed cookie may
//! verify unless it is one the server issued.
#![no_main]

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vnrit::server::auth::{bearer, check, cookie_values, query_token, Credentials, Proof, Role};
use vnrit::server::cookie::CookieKeys;

const CONTROL: &str = "control-token";
const VIEW: &str = "view-token";
const NOW: u64 = 1_800_000_000;
const TTL: Duration = Duration::from_secs(3600);

fuzz_target!(|bytes: &[u8]| {
    let mut parts = bytes.split(|&b| b == 0);
    let query = parts.next().map(String::from_utf8_lossy);
    let query = query.as_deref();
    let mut headers = HeaderMap::new();
    // The second part is an Authorization header, the rest are cookies.
    if let Some(Ok(value)) = parts.next().map(HeaderValue::from_bytes) {
        headers.append(header::AUTHORIZATION, value);
    }
    for value in parts {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(header::COOKIE, value);
        }
    }
    let keys = CookieKeys::new(CONTROL, Some(VIEW), TTL);
    let issued = [keys.issue(Role::Control, NOW), keys.issue(Role::View, NOW)];
    let from_query = query_token(query);
    let creds = Credentials::new(Some(CONTROL), Some(VIEW), TTL);
    match check(&creds, query, &headers, NOW) {
        None => {}
        Some((Proof::Query, role)) => assert_eq!(from_query.as_deref(), Some(token(role))),
        Some((Proof::Cookie, role)) => {
            // Only a cookie this server signed, for that role, gets in.
            let value = cookie_values(&headers)
                .find(|v| keys.verify(v, NOW).is_ok())
                .expect("an admitted cookie verifies");
            let expected = match role {
                Role::Control => &issued[0],
                Role::View => &issued[1],
            };
            assert_eq!(Some(value), expected.as_deref());
        }
        Some((Proof::Bearer, role)) => assert_eq!(bearer(&headers), Some(token(role))),
        Some((Proof::Open, _)) => panic!("open access although a token is set"),
    }
    // Without a configured token everything is open, whatever the request says.
    let open = Credentials::new(None, None, TTL);
    assert_eq!(
        check(&open, query, &headers, NOW),
        Some((Proof::Open, Role::Control))
    );
});

fn token(role: Role) -> &'static str {
    match role {
        Role::Control => CONTROL,
        Role::View => VIEW,
    }
}
