//! HTTP-level access rules against the real binary: the generated default token, the redirect
//! that drops the token from the address bar, signed session cookies (good, expired, foreign,
//! tampered), the WebSocket origin check, the viewer limit, failed-attempt limiting, and a
//! good client still served after each refusal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use vnrit::server::auth::Role;
use vnrit::server::cookie::{now_unix, CookieKeys};

use crate::cli::{get, request, serve_display, session_cookie, status_code};

/// Opens a WebSocket upgrade on `/ws` and returns the status line's code and the open socket.
fn upgrade(port: u16, query: &str, origin: Option<&str>, cookie: Option<&str>) -> (u16, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}{cookie}\r\n"
    )
    .expect("write");
    // Read the response head a byte at a time: the server may send its first WebSocket frame
    // (the hello) in the same segment, and that must stay in the socket for the test to read.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (status_code(&String::from_utf8_lossy(&head)), s)
}

#[test]
fn default_token_is_generated_printed_and_required() {
    let (_display, server) = serve_display(2, &[]);
    let token = server
        .url
        .split("?token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no token in the printed URL {}", server.url))
        .to_string();
    assert!(token.len() >= 20, "a short token: {token}");
    let port = server.port();
    assert_eq!(get(port, "/", None).0, 401);
    assert_eq!(get(port, &format!("/?token={token}"), None).0, 200);
}

#[test]
fn navigation_with_token_sets_cookie_and_redirects_without_it() {
    // Long enough that the cookie's random signature cannot contain it by chance ("tok" did,
    // once in a few thousand runs).
    const TOKEN: &str = "navigation-token-7f3a";
    let (_display, server) = serve_display(3, &["--token", TOKEN, "--session-ttl", "2h"]);
    let port = server.port();
    let (status, text) = request(
        port,
        &format!("GET /?token={TOKEN}&x=1 HTTP/1.1\r\nAccept: text/html\r\n"),
    );
    assert_eq!(status, 303, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("location: /?x=1\r\n"), "{text}");
    assert!(
        lower.contains("; httponly; samesite=strict; path=/; max-age=7200\r\n"),
        "{text}"
    );
    let cookie = session_cookie(&text);
    assert!(cookie.starts_with("vnrit_session=c."), "{cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the cookie carries the token: {cookie}"
    );
    // The cookie alone now admits the page, stats and the socket.
    assert_eq!(get(port, "/", Some(&cookie)).0, 200);
    assert_eq!(get(port, "/api/stats", Some(&cookie)).0, 200);
    assert_eq!(upgrade(port, "", None, Some(&cookie)).0, 101);
    // The bare token, or the session under another name, does not.
    assert_eq!(
        get(port, "/", Some(&format!("vnrit_session={TOKEN}"))).0,
        401
    );
    assert_eq!(get(port, "/", Some(&format!("vnrit_token={TOKEN}"))).0, 401);
    let value = cookie.trim_start_matches("vnrit_session=");
    assert_eq!(get(port, "/", Some(&format!("other={value}"))).0, 401);
}

#[test]
fn expired_foreign_and_tampered_cookies_get_401() {
    let (_display, server) = serve_display(8, &["--token", "tok", "--view-token", "look"]);
    let port = server.port();
    let now = now_unix();
    let ttl = Duration::from_secs(12 * 3600);
    let mint = |token: &str, view: Option<&str>, role, at| {
        let value = CookieKeys::new(token, view, ttl)
            .issue(role, at)
            .expect("a role with a token");
        format!("vnrit_session={value}")
    };
    // A good one, as this server's keys would make it (they come from the token alone).
    let good = mint("tok", None, Role::Control, now);
    assert_eq!(get(port, "/api/stats", Some(&good)).0, 200, "good cookie");
    // Expired: signed right, issued 12 h and 1 s ago.
    let expired = mint("tok", None, Role::Control, now - ttl.as_secs() - 1);
    assert_eq!(get(port, "/api/stats", Some(&expired)).0, 401, "expired");
    // Foreign: signed by a server with another token.
    let foreign = mint("other", None, Role::Control, now);
    assert_eq!(get(port, "/api/stats", Some(&foreign)).0, 401, "foreign");
    // Longer-lived than this server issues (made by a server with a longer --session-ttl).
    let long = CookieKeys::new("tok", None, ttl * 30)
        .issue(Role::Control, now)
        .expect("control cookie");
    assert_eq!(
        get(port, "/api/stats", Some(&format!("vnrit_session={long}"))).0,
        401,
        "over the session lifetime"
    );

    // The view cookie the server hands out admits, but as a viewer only ...
    let (status, text) = get(port, "/api/stats?token=look", None);
    assert_eq!(status, 200, "{text}");
    let view = session_cookie(&text);
    assert!(view.starts_with("vnrit_session=v."), "{view}");
    assert_eq!(get(port, "/api/stats", Some(&view)).0, 200);
    let (code, mut socket) = upgrade(port, "", None, Some(&view));
    assert_eq!(code, 101);
    let hello = read_until(&mut socket, "\"hello\"");
    assert!(hello.contains("\"control\":false"), "{hello}");
    drop(socket);
    // ... and promoting it to control breaks its signature.
    let promoted = view.replacen("vnrit_session=v.", "vnrit_session=c.", 1);
    assert_eq!(
        get(port, "/api/stats", Some(&promoted)).0,
        401,
        "tampered role"
    );
    assert_eq!(upgrade(port, "", None, Some(&promoted)).0, 401);
    // A longer expiry breaks it too.
    let (head, mac) = good.rsplit_once('.').expect("a MAC");
    let (prefix, expiry) = head.rsplit_once('.').expect("an expiry");
    let stretched = format!(
        "{prefix}.{}.{mac}",
        expiry.parse::<u64>().unwrap_or(0) + 3600
    );
    assert_eq!(
        get(port, "/api/stats", Some(&stretched)).0,
        401,
        "tampered expiry"
    );
    // Refusals count as failed attempts, but a good client is still served.
    assert_eq!(get(port, "/api/stats", Some(&good)).0, 200);
}

/// Reads from a raw upgraded socket until `needle` shows up (bounded by the read timeout).
fn read_until(socket: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn websocket_origin_check_and_viewer_limit() {
    let (_display, server) = serve_display(
        4,
        &[
            "--token",
            "tok",
            "--max-viewers",
            "2",
            "--allow-origin",
            "https://proxy.example",
        ],
    );
    let port = server.port();
    let own = format!("http://127.0.0.1:{port}");

    assert_eq!(upgrade(port, "", Some(&own), None).0, 401, "no token");
    assert_eq!(
        upgrade(port, "?token=tok", Some("http://evil.example"), None).0,
        403
    );
    assert_eq!(upgrade(port, "?token=tok", Some("null"), None).0, 403);

    let (code, _first) = upgrade(port, "?token=tok", Some(&own), None);
    assert_eq!(code, 101, "own origin");
    let (_, text) = get(port, "/api/stats?token=tok", None);
    let cookie = session_cookie(&text);
    let (code, _second) = upgrade(port, "", Some("https://proxy.example"), Some(&cookie));
    assert_eq!(code, 101, "allowed origin with the cookie");
    let (code, _third) = upgrade(port, "?token=tok", Some(&own), None);
    assert_eq!(code, 503, "over --max-viewers");
    let (status, text) = get(port, "/api/stats", Some(&cookie));
    assert_eq!(status, 200, "still serving: {text}");
    drop((_first, _second));
    // The slots free up once those sockets are gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (code, _s) = upgrade(port, "?token=tok", Some(&own), None);
        if code == 101 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots never freed: {code}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn repeated_wrong_tokens_are_slowed_down_per_address() {
    let (_display, server) = serve_display(5, &["--token", "tok"]);
    let port = server.port();
    let mut codes = vec![];
    for i in 0..25 {
        codes.push(get(port, &format!("/?token=guess{i}"), None).0);
    }
    assert!(codes[..20].iter().all(|c| *c == 401), "{codes:?}");
    assert!(codes[20..].iter().all(|c| *c == 429), "{codes:?}");
    // Even the right token waits out the window from this address: guessing gains nothing.
    assert_eq!(get(port, "/?token=tok", None).0, 429);
}

#[test]
fn a_socket_that_never_offers_is_closed_after_the_connect_timeout() {
    let (_display, server) = serve_display(6, &["--token", "tok", "--connect-timeout", "1"]);
    let port = server.port();
    let (code, mut socket) = upgrade(port, "?token=tok", None, None);
    assert_eq!(code, 101);
    let started = std::time::Instant::now();
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(err) => panic!("the idle socket was not closed: {err}"),
        }
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("was not established within 1 s"), "{text}");
    let (status, _) = get(port, "/api/stats?token=tok", None);
    assert_eq!(status, 200);
}

/// A minimal browser-like offer: receive-only H.264 video, trickle ICE.
const OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:tEsT\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 3A:96:6D:57:B2:C2:C7:61:A0:46:3E:1C:97:39:D3:F7:0A:88:A0:B1:EC:03:FB:10:A5:5E:C9:71:55:D4:8E:F1\r\n\
a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

fn scrape(port: u16) -> prometheus_parse::Scrape {
    crate::cli::metrics(port).0
}

fn value(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    crate::cli::sample(scrape, name, None)
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_while_streaming() {
    let (_display, server) = serve_display(7, &["--token", "tok", "--no-audio"]);
    let port = server.port();
    assert_eq!(get(port, "/metrics", None).0, 401);
    // A Prometheus-style scrape: the token as `Authorization: Bearer`, no cookie is set.
    let bearer = |token: &str, path: &str| {
        crate::cli::request(
            port,
            &format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"),
        )
    };
    let (status, text) = bearer("tok", "/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("vnrit_viewers "), "{text}");
    assert!(!text.to_ascii_lowercase().contains("set-cookie"), "{text}");
    let (status, text) = bearer("tok", "/api/stats");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"viewers\""), "{text}");
    assert_eq!(bearer("wrong", "/metrics").0, 401);
    let idle = scrape(port);
    assert_eq!(value(&idle, "vnrit_viewers"), 0.0);
    assert_eq!(value(&idle, "vnrit_frames_encoded_total"), 0.0);
    assert_eq!(value(&idle, "vnrit_frames_repeated_total"), 0.0);

    // One viewer that negotiates (its media never connects, but the shared stream starts).
    let url = format!("ws://127.0.0.1:{port}/ws?token=tok");
    let (mut ws, _) = tungstenite::connect(url.as_str()).expect("websocket");
    let hello = ws.read().expect("hello");
    assert!(hello.to_string().contains("\"hello\""), "{hello}");
    let offer = serde_json::json!({"type": "offer", "sdp": OFFER}).to_string();
    ws.send(tungstenite::Message::text(offer))
        .expect("send offer");
    let answer = loop {
        let msg = ws.read().expect("answer").to_string();
        if msg.contains("\"answer\"") || msg.contains("\"error\"") {
            break msg;
        }
    };
    assert!(
        answer.contains("\"answer\"") && answer.contains("H264"),
        "{answer}"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let s = scrape(port);
        if value(&s, "vnrit_frames_encoded_total") > 0.0 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no frames encoded");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(value(&busy, "vnrit_viewers"), 1.0);
    assert_eq!(value(&busy, "vnrit_encoders"), 1.0);
    assert!(value(&busy, "vnrit_keyframes_total") >= 1.0);
    assert!(
        value(&busy, "vnrit_encode_seconds") >= 1.0,
        "histogram count"
    );
    assert!(value(&busy, "vnrit_bitrate_target_bps") > 0.0);
    assert!(busy
        .samples
        .iter()
        .any(|s| s.metric == "vnrit_session_bytes_sent_total"));

    drop(ws);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while value(&scrape(port), "vnrit_viewers") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the viewer never left"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
