//! Property tests of the parsers that read untrusted input: the signalling parser
//! (`server::signal::parse`), the input wire parser (`input::wire::parse`) and the token and
//! cookie parsing (`server::auth::{query_token, cookie_value, check}`, `server::cookie`).
//!
//! Each parser must never panic on arbitrary text or bytes, and messages built from their
//! parts must parse back to those parts. The cargo-fuzz targets in `fuzz/` explore the same
//! parsers for longer (see `scripts/fuzz.sh`).

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::json;
use vnrit::input::typing::{Stroke, Typist};
use vnrit::input::wire::{
    self, InputEvent, WireError, MAX_CLIPBOARD_BYTES, MAX_KEY_FIELD, MAX_TYPE_BYTES,
};
use vnrit::server::auth::{check, cookie_value, query_token, Credentials, Proof, Role, COOKIE};
use vnrit::server::cookie::CookieKeys;
use vnrit::server::signal::{self, ClientMessage, SignalError, MAX_MESSAGE_BYTES};

/// Text made of the characters JSON messages of both protocols are built from, so random
/// strings often get deep into the parsers instead of failing at the first byte.
fn jsonish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just("\""),
            Just(":"),
            Just(","),
            Just("\\"),
            Just("\"type\""),
            Just("\"offer\""),
            Just("\"sdp\""),
            Just("\"candidate\""),
            Just("\"input\""),
            Just("\"data\""),
            Just("\"kd\""),
            Just("\"m\""),
            Just("\"cb\""),
            Just("null"),
            Just("1e308"),
            Just("-0.5"),
            Just("18446744073709551616"),
            Just("\\u0000"),
            Just("\\ud800"),
            Just("é"),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// The longest prefix of `s` that fits in `max` bytes, cut at a character boundary.
fn truncate_bytes(mut s: String, max: usize) -> String {
    while s.len() > max {
        s.pop();
    }
    s
}

/// A token as `--token` accepts it: letters, digits and `-._~`.
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~-]{1,40}"
}

/// A cookie other than the vnrit one: `name=value`.
fn other_cookie() -> impl Strategy<Value = String> {
    ("[A-Za-z0-9_]{1,12}", "[A-Za-z0-9_.%~-]{0,20}")
        .prop_filter("not the vnrit cookie", |(name, _)| name != COOKIE)
        .prop_map(|(name, value)| format!("{name}={value}"))
}

fn cookie_headers(values: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_str(v) {
            headers.append(header::COOKIE, v);
        }
    }
    headers
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // ---- signalling ----

    #[test]
    fn signal_never_panics(text in any::<String>(), jsonish in jsonish()) {
        let _ = signal::parse(&text);
        let _ = signal::parse(&jsonish);
    }

    #[test]
    fn signal_offer_round_trips(sdp in any::<String>()) {
        let text = json!({"type": "offer", "sdp": sdp}).to_string();
        prop_assert_eq!(signal::parse(&text), Ok(ClientMessage::Offer { sdp }));
    }

    #[test]
    fn signal_input_round_trips(data in any::<String>()) {
        let text = json!({"type": "input", "data": data}).to_string();
        prop_assert_eq!(signal::parse(&text), Ok(ClientMessage::Input { data }));
    }

    #[test]
    fn signal_candidate_round_trips(
        line in any::<String>(),
        mid in proptest::option::of(any::<String>()),
        index in proptest::option::of(any::<u16>()),
        ufrag in proptest::option::of(any::<String>()),
    ) {
        let text = json!({"type": "candidate", "candidate": {
            "candidate": line, "sdpMid": mid, "sdpMLineIndex": index, "usernameFragment": ufrag,
        }})
        .to_string();
        let parsed = signal::parse(&text);
        let Ok(ClientMessage::Candidate { candidate: Some(c) }) = parsed else {
            return Err(TestCaseError::fail(format!("{text} gave {parsed:?}")));
        };
        prop_assert_eq!(c.candidate, line);
        prop_assert_eq!(c.sdp_mid, mid);
        prop_assert_eq!(c.sdp_mline_index, index);
        prop_assert_eq!(c.username_fragment, ufrag);
    }

    #[test]
    fn signal_refuses_oversized(extra in 1usize..4096, fill in "[a-z]") {
        let sdp = fill.repeat(MAX_MESSAGE_BYTES + extra);
        let text = json!({"type": "offer", "sdp": sdp}).to_string();
        prop_assert_eq!(signal::parse(&text), Err(SignalError::TooLarge(text.len())));
    }

    // ---- input wire ----

    #[test]
    fn wire_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        jsonish in jsonish(),
    ) {
        let _ = wire::parse(&bytes);
        let _ = wire::parse(jsonish.as_bytes());
        let _ = wire::parse(format!("[{jsonish}]").as_bytes());
    }

    #[test]
    fn wire_key_messages_round_trip(code in any::<String>(), key in any::<String>()) {
        let code = truncate_bytes(code, MAX_KEY_FIELD);
        let key = truncate_bytes(key, MAX_KEY_FIELD);
        let down = json!(["kd", code, key]).to_string();
        prop_assert_eq!(
            wire::parse(down.as_bytes()),
            Ok(InputEvent::KeyDown { code: code.clone(), key })
        );
        let up = json!(["ku", code]).to_string();
        prop_assert_eq!(wire::parse(up.as_bytes()), Ok(InputEvent::KeyUp { code }));
    }

    #[test]
    fn wire_refuses_long_key_fields(code in "[A-Za-z]{33,80}") {
        let down = json!(["kd", code, "a"]).to_string();
        let refused = matches!(
            wire::parse(down.as_bytes()),
            Err(WireError::BadField { field: "code", .. })
        );
        prop_assert!(refused);
    }

    #[test]
    fn wire_positions_in_range_parse(x in 0.0f64..=1.0, y in 0.0f64..=1.0) {
        let text = json!(["m", x, y]).to_string();
        let parsed = wire::parse(text.as_bytes());
        let Ok(InputEvent::Move { x: px, y: py }) = parsed else {
            return Err(TestCaseError::fail(format!("{text} gave {parsed:?}")));
        };
        prop_assert!(close(px, x) && close(py, y), "{text} gave {px},{py}");
    }

    #[test]
    fn wire_positions_out_of_range_refused(x in prop_oneof![-1e9f64..-1e-6, 1.000001f64..1e9]) {
        let text = json!(["m", x, 0.5]).to_string();
        let refused = matches!(wire::parse(text.as_bytes()), Err(WireError::BadField { .. }));
        prop_assert!(refused, "{} accepted", text);
    }

    #[test]
    fn wire_buttons(b in any::<u64>()) {
        let text = json!(["bd", b]).to_string();
        match wire::parse(text.as_bytes()) {
            Ok(InputEvent::ButtonDown(got)) => prop_assert!((1..=9).contains(&b) && u64::from(got) == b),
            other => prop_assert!(!(1..=9).contains(&b), "{} gave {:?}", text, other),
        }
    }

    #[test]
    fn wire_clipboard_round_trips(text in any::<String>()) {
        let msg = json!(["cb", text]).to_string();
        prop_assert_eq!(wire::parse(msg.as_bytes()), Ok(InputEvent::Clipboard(text)));
    }

    #[test]
    fn wire_clipboard_over_limit_refused(extra in 1usize..2048) {
        let text = "x".repeat(MAX_CLIPBOARD_BYTES + extra);
        let msg = json!(["cb", text]).to_string();
        prop_assert_eq!(
            wire::parse(msg.as_bytes()),
            Err(WireError::ClipboardTooLarge(text.len()))
        );
    }

    #[test]
    fn wire_type_text_round_trips(text in any::<String>()) {
        let msg = json!(["tx", text]).to_string();
        let parsed = wire::parse(msg.as_bytes());
        if text.is_empty() || text.len() > MAX_TYPE_BYTES {
            prop_assert!(matches!(parsed, Err(WireError::BadField { .. })), "{:?}", parsed);
        } else {
            prop_assert_eq!(parsed, Ok(InputEvent::TypeText(text)));
        }
    }

    #[test]
    fn wire_type_text_over_limit_refused(extra in 1usize..2048, c in "[a-zé中😀]") {
        let text = c.repeat((MAX_TYPE_BYTES + extra) / c.len() + 1);
        let msg = json!(["tx", text]).to_string();
        prop_assert!(wire::parse(msg.as_bytes()).is_err());
    }

    #[test]
    fn wire_clipboard_image_round_trips(png in proptest::collection::vec(any::<u8>(), 1..2048)) {
        let msg = wire::encode_image(&png);
        prop_assert_eq!(wire::parse(msg.as_bytes()), Ok(InputEvent::ClipboardImage(png)));
    }

    /// Whatever text is queued, the typist types exactly its characters (line breaks folded
    /// to one Return, tabs kept, other control characters dropped), in order, at most
    /// `MAX_CATCH_UP` per wake-up, and gives the whole backlog back.
    #[test]
    fn typist_types_exactly_the_text(text in any::<String>(), late_ms in 0u64..50) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let want: String = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .chars()
            .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
            .collect();
        let n = text.chars().count();
        let backlog = Arc::new(AtomicUsize::new(n));
        let mut t = Typist::default();
        let mut now = Instant::now();
        t.push(9, &text, n, Arc::clone(&backlog), now);
        let mut got = String::new();
        while let Some(at) = t.deadline() {
            now = at.max(now) + Duration::from_millis(late_ms);
            let due = t.due(now);
            prop_assert!(due.len() <= vnrit::input::typing::MAX_CATCH_UP);
            for (_, s) in due {
                got.push(match s {
                    Stroke::Char(c) => c,
                    Stroke::Return => '\n',
                    Stroke::Tab => '\t',
                });
            }
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(backlog.load(Ordering::Acquire), 0);
    }

    // ---- token and cookie ----

    #[test]
    fn auth_never_panics(query in any::<String>(), cookies in proptest::collection::vec(any::<String>(), 0..4)) {
        let headers = cookie_headers(&cookies);
        let _ = query_token(Some(&query));
        let _ = cookie_value(&headers);
        let _ = check(&creds("t", Some("v")), Some(&query), &headers, NOW);
        for c in &cookies {
            let _ = keys("t", Some("v")).verify(c, NOW);
        }
    }

    #[test]
    fn auth_cookie_found_among_others(
        token in token(),
        before in proptest::collection::vec(other_cookie(), 0..5),
        after in proptest::collection::vec(other_cookie(), 0..5),
        compact in any::<bool>(),
        headers_before in 0usize..3,
        age in 0u64..TTL,
    ) {
        let c = creds(&token, None);
        let value = c.cookies().and_then(|k| k.issue(Role::Control, NOW - age)).expect("issued");
        let sep = if compact { ";" } else { "; " };
        let mine = format!("{COOKIE}={value}");
        let line = before.iter().chain([&mine]).chain(&after).cloned().collect::<Vec<_>>().join(sep);
        // Some unrelated Cookie headers first (HTTP/2 sends one header per cookie).
        let mut values: Vec<String> = before.iter().take(headers_before).cloned().collect();
        values.push(line);
        let headers = cookie_headers(&values);
        prop_assert_eq!(cookie_value(&headers), Some(value.clone()));
        prop_assert_eq!(check(&c, None, &headers, NOW), Some((Proof::Cookie, Role::Control)));
        // The same cookie once its lifetime is over.
        prop_assert_eq!(check(&c, None, &headers, NOW - age + TTL), None);
    }

    #[test]
    fn auth_query_found_among_others(
        token in token(),
        before in proptest::collection::vec("[a-z]{1,8}=[a-z0-9]{0,8}", 0..4),
        after in proptest::collection::vec("[a-z]{1,8}=[a-z0-9]{0,8}", 0..4),
    ) {
        let before: Vec<String> = before.into_iter().filter(|kv| !kv.starts_with("token=")).collect();
        let query = before
            .iter()
            .cloned()
            .chain([format!("token={token}")])
            .chain(after)
            .collect::<Vec<_>>()
            .join("&");
        prop_assert_eq!(query_token(Some(&query)), Some(token.clone()));
        prop_assert_eq!(
            check(&creds(&token, None), Some(&query), &HeaderMap::new(), NOW),
            Some((Proof::Query, Role::Control))
        );
    }

    #[test]
    fn auth_view_token_only_views(control in token(), view in token(), in_cookie in any::<bool>()) {
        prop_assume!(control != view);
        let c = creds(&control, Some(&view));
        let (query, headers) = if in_cookie {
            let value = c.cookies().and_then(|k| k.issue(Role::View, NOW)).expect("issued");
            (None, cookie_headers(&[format!("{COOKIE}={value}")]))
        } else {
            (Some(format!("token={view}")), HeaderMap::new())
        };
        let (_, role) = check(&c, query.as_deref(), &headers, NOW)
            .ok_or_else(|| TestCaseError::fail("the view token was refused"))?;
        prop_assert_eq!(role, Role::View);
    }

    #[test]
    fn auth_wrong_token_never_accepted(
        control in token(),
        view in proptest::option::of(token()),
        given in token(),
        others in proptest::collection::vec(other_cookie(), 0..3),
    ) {
        prop_assume!(given != control && view.as_deref() != Some(given.as_str()));
        let c = creds(&control, view.as_deref());
        let query = format!("token={given}");
        // The bare token as a cookie, and a session signed for the wrong token.
        let forged = keys(&given, Some(&given)).issue(Role::Control, NOW).expect("issued");
        let mut cookies = others;
        cookies.push(format!("{COOKIE}={given}"));
        cookies.push(format!("{COOKIE}={forged}"));
        let headers = cookie_headers(&[cookies.join("; ")]);
        prop_assert_eq!(check(&c, Some(&query), &headers, NOW), None);
        prop_assert_eq!(check(&c, None, &headers, NOW), None);
        prop_assert_eq!(check(&c, Some(&query), &HeaderMap::new(), NOW), None);
    }

    #[test]
    fn auth_tampered_cookie_never_accepted(
        token in token(),
        view in token(),
        view_role in any::<bool>(),
        at in any::<prop::sample::Index>(),
        with in any::<char>(),
    ) {
        let k = keys(&token, Some(&view));
        let role = if view_role { Role::View } else { Role::Control };
        let good = k.issue(role, NOW).expect("issued");
        let mut chars: Vec<char> = good.chars().collect();
        let i = at.index(chars.len());
        prop_assume!(chars[i] != with);
        chars[i] = with;
        let changed: String = chars.into_iter().collect();
        prop_assert!(k.verify(&changed, NOW).is_err(), "{} accepted", changed);
    }

    #[test]
    fn auth_admits_only_a_real_token(
        control in token(),
        view in token(),
        query in any::<String>(),
        cookies in proptest::collection::vec(any::<String>(), 0..3),
    ) {
        // Whatever the request holds, admission means the query parsed to a token or a cookie
        // verified.
        let c = creds(&control, Some(&view));
        let headers = cookie_headers(&cookies);
        let real = |t: Option<String>| t.as_deref() == Some(control.as_str()) || t.as_deref() == Some(view.as_str());
        match check(&c, Some(&query), &headers, NOW) {
            None => {}
            Some((Proof::Query, _)) => prop_assert!(real(query_token(Some(&query)))),
            Some((Proof::Cookie, _)) => prop_assert!(false, "random bytes made a valid session: {:?}", cookies),
            Some((Proof::Open, _)) => prop_assert!(false, "open although a token is set"),
            Some((Proof::Bearer, _)) => prop_assert!(false, "no Authorization header was sent"),
        }
    }
}

/// A fixed "now" for the cookie properties (Unix seconds).
const NOW: u64 = 1_800_000_000;
/// The session lifetime the properties use, in seconds.
const TTL: u64 = 3600;

fn creds(token: &str, view: Option<&str>) -> Credentials {
    Credentials::new(Some(token), view, Duration::from_secs(TTL))
}

fn keys(token: &str, view: Option<&str>) -> CookieKeys {
    CookieKeys::new(token, view, Duration::from_secs(TTL))
}
