//! Input flooding against the real binary: a page that sends input far over the per-viewer
//! rate limit through the WebSocket fallback has the excess dropped and counted (`/api/stats`,
//! `/metrics`), hears about it once, cannot drop the release of a key it holds, and does not
//! stop the server from serving others.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use x11rb::protocol::xproto::ConnectionExt;

use crate::cli::{sample, serve_display};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// Keycodes the X server on `display` reports held down.
fn keys_down(display: &str) -> Vec<usize> {
    let (conn, _) = x11rb::connect(Some(display)).expect("connect to Xvfb");
    let map = conn
        .query_keymap()
        .expect("keymap")
        .reply()
        .expect("reply")
        .keys;
    (0..256)
        .filter(|kc| map[kc / 8] & (1 << (kc % 8)) != 0)
        .collect()
}

/// Polls `probe` every 50 ms until it is true, for at most `limit`.
fn wait(limit: Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn input(data: &str) -> Message {
    Message::text(serde_json::json!({"type": "input", "data": data}).to_string())
}

/// Sends `n` pointer moves as fast as the socket takes them.
fn flood(ws: &mut Socket, n: usize) {
    for i in 0..n {
        let x = (i % 1000) as f64 / 1000.0;
        ws.write(input(&format!("[\"m\",{x},0.5]"))).expect("write");
        if i % 500 == 0 {
            ws.flush().expect("flush");
        }
    }
    ws.flush().expect("flush");
}

/// A message that always gets a known error back: marks a point in the reply stream.
fn marker() -> Message {
    Message::text(
        r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0"}}"#,
    )
}

/// Reads replies until the marker's error; returns the rate-limit notices seen on the way.
fn notices_until_marker(ws: &mut Socket) -> usize {
    let mut notices = 0;
    loop {
        let text = match ws.read().expect("the server kept the socket open") {
            Message::Text(t) => t.to_string(),
            _ => continue,
        };
        if text.contains("send the offer before ICE candidates") {
            return notices;
        }
        if text.contains("\"error\"") && text.contains("too many input events") {
            notices += 1;
        }
    }
}

fn stats(port: u16) -> serde_json::Value {
    let body = crate::cli::get_ok(port, "/api/stats?token=tok");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn dropped(port: u16) -> u64 {
    stats(port)["sessions"][0]["input_dropped"]
        .as_u64()
        .expect("input_dropped in /api/stats")
}

#[test]
fn an_input_flood_is_dropped_counted_and_told_once_and_releases_still_pass() {
    let (display, server) = serve_display(9, &["--token", "tok", "--no-audio"]);
    let port = server.port();
    let url = format!("ws://127.0.0.1:{port}/ws?token=tok");
    let (mut ws, _) = tungstenite::connect(url.as_str()).expect("websocket");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    }
    let hello = ws.read().expect("hello").to_string();
    assert!(hello.contains("\"control\":true"), "{hello}");
    assert_eq!(keys_down(display.name()), Vec::<usize>::new());

    // Hold a key, then flood far past the burst.
    ws.send(input(r#"["kd","KeyA","a"]"#)).expect("send");
    wait(Duration::from_secs(5), "KeyA down in X", || {
        !keys_down(display.name()).is_empty()
    });
    flood(&mut ws, 30_000);
    // The bucket is empty now, but the release of the held key must get through.
    ws.send(input(r#"["ku","KeyA","a"]"#)).expect("send");
    ws.send(marker()).expect("send");
    assert_eq!(notices_until_marker(&mut ws), 1, "one notice for the flood");
    wait(Duration::from_secs(5), "KeyA released in X", || {
        keys_down(display.name()).is_empty()
    });
    let first = dropped(port);
    assert!(first >= 10_000, "only {first} of 30000 dropped");

    // A second flood is counted but not told again.
    flood(&mut ws, 20_000);
    ws.send(marker()).expect("send");
    assert_eq!(notices_until_marker(&mut ws), 0, "told only once");
    let second = dropped(port);
    assert!(second > first, "{second} after {first}");

    // The counter is in /metrics too, and the server still serves another viewer.
    let (scrape, metrics) = crate::cli::metrics(port);
    let total = sample(&scrape, "vnrit_input_dropped_total", None);
    assert!(total >= second as f64, "{total} < {second}");
    let session = stats(port)["sessions"][0]["id"].to_string();
    assert_eq!(
        sample(
            &scrape,
            "vnrit_session_input_dropped_total",
            Some(("session", session.as_str()))
        ),
        second as f64,
        "{metrics}"
    );
    let (mut other, _) = tungstenite::connect(url.as_str()).expect("a second viewer");
    assert!(other.read().expect("hello").to_string().contains("hello"));
    drop(other);
    drop(ws);
}
