//! HTTP-level access rules against the real binary: the generated default token, the redirect
//! that drops the token from the address bar, cookies, the WebSocket origin check, the viewer
//! limit, failed-attempt limiting, and a good client still served after each refusal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use vnrit::display::VirtualDisplay;

use crate::cli::{first_display, get, request, Server};

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
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, s)
}

#[test]
fn default_token_is_generated_printed_and_required() {
    let display = VirtualDisplay::start(320, 240, first_display(2)).expect("Xvfb");
    let server = Server::start(&[
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ]);
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
    let display = VirtualDisplay::start(320, 240, first_display(3)).expect("Xvfb");
    let server = Server::start(&[
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        "tok",
    ]);
    let port = server.port();
    let (status, text) = request(
        port,
        "GET /?token=tok&x=1 HTTP/1.1\r\nAccept: text/html\r\n",
    );
    assert_eq!(status, 303, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("location: /?x=1\r\n"), "{text}");
    assert!(
        lower.contains("set-cookie: vnrit_token=tok; httponly; samesite=strict; path=/"),
        "{text}"
    );
    // The cookie alone now admits the page, stats and the socket.
    assert_eq!(get(port, "/", Some("vnrit_token=tok")).0, 200);
    assert_eq!(get(port, "/api/stats", Some("vnrit_token=tok")).0, 200);
    // A foreign or stale cookie does not.
    assert_eq!(get(port, "/", Some("vnrit_token=old")).0, 401);
    assert_eq!(get(port, "/", Some("other=tok")).0, 401);
}

#[test]
fn websocket_origin_check_and_viewer_limit() {
    let display = VirtualDisplay::start(320, 240, first_display(4)).expect("Xvfb");
    let server = Server::start(&[
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        "tok",
        "--max-viewers",
        "2",
        "--allow-origin",
        "https://proxy.example",
    ]);
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
    let (code, _second) = upgrade(
        port,
        "",
        Some("https://proxy.example"),
        Some("vnrit_token=tok"),
    );
    assert_eq!(code, 101, "allowed origin with the cookie");
    let (code, _third) = upgrade(port, "?token=tok", Some(&own), None);
    assert_eq!(code, 503, "over --max-viewers");
    let (status, text) = get(port, "/api/stats", Some("vnrit_token=tok"));
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
    let display = VirtualDisplay::start(320, 240, first_display(5)).expect("Xvfb");
    let server = Server::start(&[
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        "tok",
    ]);
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
    let display = VirtualDisplay::start(320, 240, first_display(6)).expect("Xvfb");
    let server = Server::start(&[
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        "tok",
        "--connect-timeout",
        "1",
    ]);
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
    let (status, _) = get(port, "/api/stats", Some("vnrit_token=tok"));
    assert_eq!(status, 200);
}
