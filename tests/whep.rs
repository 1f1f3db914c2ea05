//! WHEP playback against the real binary on a real Xvfb, with a third-party-style client
//! (`whep_client.rs`, built on the webrtc crate): the decoded picture shows the colour drawn on
//! the display and follows a change, DELETE ends the session and frees its slot, and every
//! refusal (401, 403, 404, 405, 413, 415, 400, 503) leaves the server serving the next client.
//! All traffic stays on 127.0.0.1: the server binds there and the client binds UDP there.

use std::process::Command;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

use crate::cli::serve_display;
use crate::whep_client::{http, HttpResponse, WhepClient};

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Fills the root window of `display` with `colour` (an X colour name or `#rrggbb`).
pub(crate) fn fill_root(display: &str, colour: &str) {
    let status = Command::new("xsetroot")
        .args(["-display", display, "-solid", colour])
        .status()
        .expect("xsetroot runs");
    assert!(status.success(), "xsetroot -solid {colour}");
}

/// The number of sessions in `/api/stats` (and whether one is connected).
fn stats_sessions(rt: &tokio::runtime::Runtime, port: u16, token: &str) -> (usize, bool) {
    let r = rt
        .block_on(http(
            port,
            "GET",
            &format!("/api/stats?token={token}"),
            &[],
            b"",
        ))
        .expect("stats");
    assert_eq!(r.status, 200, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).expect("stats JSON");
    let sessions = json["sessions"].as_array().cloned().unwrap_or_default();
    let connected = sessions.iter().any(|s| s["state"] == "connected");
    // WHEP players are listed in the presence as such, and never have control.
    let viewers = json["control"]["viewers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        viewers
            .iter()
            .all(|v| v["role"] == "whep" && v["control"] == false),
        "{}",
        r.body
    );
    // A connected WHEP session has been seated (before its 201).
    assert!(!connected || !viewers.is_empty(), "{}", r.body);
    (sessions.len(), connected)
}

/// Reassembles H.264 access units from RTP payloads and decodes them with OpenH264.
pub(crate) struct VideoSink {
    depacketizer: H264Packet,
    access_unit: Vec<u8>,
    decoder: Decoder,
}

impl VideoSink {
    pub(crate) fn new() -> Self {
        VideoSink {
            depacketizer: H264Packet::default(),
            access_unit: Vec::new(),
            decoder: Decoder::new().expect("openh264 decoder"),
        }
    }

    /// Feeds one packet; at the end of a frame, returns the decoded centre pixel (RGB).
    fn push(&mut self, payload: &bytes::Bytes, marker: bool) -> Option<[u8; 3]> {
        if let Ok(nals) = self.depacketizer.depacketize(payload) {
            self.access_unit.extend_from_slice(&nals);
        }
        if !marker || self.access_unit.is_empty() {
            return None;
        }
        let au = std::mem::take(&mut self.access_unit);
        let picture = self.decoder.decode(&au).ok().flatten()?;
        let (w, h) = picture.dimensions();
        let mut rgb = vec![0u8; w * h * 3];
        picture.write_rgb8(&mut rgb);
        let at = ((h / 2) * w + w / 2) * 3;
        Some([rgb[at], rgb[at + 1], rgb[at + 2]])
    }
}

pub(crate) fn near(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (i32::from(*g) - i32::from(w)).abs() <= 40)
}

/// Decodes frames from `packets` until the centre pixel is near `want`, at most `limit`;
/// returns the last decoded pixel and how many frames were decoded.
pub(crate) fn decode_until(
    rt: &tokio::runtime::Runtime,
    client: &WhepClient,
    packets: &mpsc::Receiver<(bytes::Bytes, bool)>,
    sink: &mut VideoSink,
    want: [u8; 3],
    limit: Duration,
) -> (Option<[u8; 3]>, u32) {
    let start = Instant::now();
    let mut last = None;
    let mut frames = 0;
    let mut last_pli = Instant::now();
    while start.elapsed() < limit {
        if let Ok((payload, marker)) = packets.recv_timeout(Duration::from_millis(200)) {
            if let Some(pixel) = sink.push(&payload, marker) {
                frames += 1;
                last = Some(pixel);
                if near(pixel, want) {
                    break;
                }
            }
        }
        // Nothing decodable yet (e.g. the first keyframe was lost): ask for one.
        if frames == 0 && last_pli.elapsed() > Duration::from_secs(1) {
            rt.block_on(client.request_keyframe());
            last_pli = Instant::now();
        }
    }
    (last, frames)
}

#[test]
fn whep_player_decodes_the_desktop_and_delete_ends_the_session() {
    let (display, server) = serve_display(20, &["--token", "full-tok", "--view-token", "view-tok"]);
    let port = server.port();
    fill_root(display.name(), "#ff0000");
    let rt = runtime();

    let (tx, packets) = mpsc::channel();
    let audio = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let audio_seen = audio.clone();
    let on_packet: crate::whep_client::OnPacket = Arc::new(move |kind, packet| match kind {
        RtpCodecKind::Video => {
            let _ = tx.send((packet.payload.clone(), packet.header.marker));
        }
        _ => {
            audio_seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // The view token is enough: WHEP is view-only.
    let mut client = rt
        .block_on(WhepClient::connect(port, "view-tok", on_packet))
        .unwrap_or_else(|e| panic!("WHEP POST: {e}"));

    let r = &client.response;
    assert_eq!(r.header("content-type"), Some("application/sdp"), "{r:?}");
    let id = client.resource.strip_prefix("/whep/").unwrap_or_default();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "Location {:?}",
        client.resource
    );
    // Not trickled: the answer carries the server's candidates, all on loopback.
    let candidates: Vec<&str> = r
        .body
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(
        !candidates.is_empty(),
        "no candidates in the answer:\n{}",
        r.body
    );
    assert!(
        candidates.iter().all(|c| c.contains(" 127.0.0.1 ")),
        "{candidates:?}"
    );
    assert!(
        rt.block_on(client.wait_connected(Duration::from_secs(15))),
        "the WHEP client did not connect"
    );
    // The client's side can report connected a moment before the server's: poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (sessions, connected) = loop {
        let (sessions, connected) = stats_sessions(&rt, port, "full-tok");
        if connected || Instant::now() > deadline {
            break (sessions, connected);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sessions, 1);
    assert!(
        connected,
        "/api/stats does not show the WHEP viewer connected within 10 s"
    );

    let metrics = rt
        .block_on(http(port, "GET", "/metrics?token=full-tok", &[], b""))
        .expect("metrics");
    assert_eq!(metrics.status, 200);
    for line in ["vnrit_sessions 1", "vnrit_viewers 1"] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "/metrics lacks {line:?}:\n{}",
            metrics.body
        );
    }

    let mut sink = VideoSink::new();
    let red = [255, 0, 0];
    let (pixel, frames) = decode_until(
        &rt,
        &client,
        &packets,
        &mut sink,
        red,
        Duration::from_secs(20),
    );
    assert!(frames > 0, "no frame decoded");
    assert!(
        pixel.is_some_and(|p| near(p, red)),
        "centre pixel {pixel:?}, want red"
    );

    // The picture follows the desktop.
    fill_root(display.name(), "#0000ff");
    let blue = [0, 0, 255];
    let (pixel, _) = decode_until(
        &rt,
        &client,
        &packets,
        &mut sink,
        blue,
        Duration::from_secs(20),
    );
    assert!(
        pixel.is_some_and(|p| near(p, blue)),
        "centre pixel {pixel:?}, want blue"
    );

    let status = rt.block_on(client.delete());
    assert_eq!(status, 200, "DELETE");
    // DELETE answers once the session is closed.
    assert_eq!(stats_sessions(&rt, port, "full-tok").0, 0);
    drop(display);
}

fn post_offer(
    rt: &tokio::runtime::Runtime,
    port: u16,
    headers: &[&str],
    body: &[u8],
) -> HttpResponse {
    let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
    rt.block_on(http(port, "POST", "/whep", &headers, body))
        .expect("HTTP")
}

#[test]
fn whep_refusals_are_clear_and_the_server_keeps_serving() {
    let (_display, server) =
        // A STUN server that never answers: its Link header is sent, and the answer does not
        // wait for its gathering longer than the server's bound.
        serve_display(
            21,
            &["--token", "tok", "--max-viewers", "1", "--no-audio", "--stun", "stun:127.0.0.1:9"],
        );
    let port = server.port();
    let rt = runtime();
    let offer =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n";
    let sdp = "Content-Type: application/sdp";

    let r = post_offer(&rt, port, &[sdp], offer.as_bytes());
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{r:?}"
    );
    let r = post_offer(
        &rt,
        port,
        &[sdp, "Authorization: Bearer nope"],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 401, "{r:?}");
    // The page's query token is not WHEP's way in.
    let r = rt
        .block_on(http(
            port,
            "POST",
            "/whep?token=tok",
            &[sdp.into()],
            offer.as_bytes(),
        ))
        .expect("HTTP");
    assert_eq!(r.status, 401, "{r:?}");

    let auth = "Authorization: Bearer tok";
    let r = post_offer(
        &rt,
        port,
        &[auth, "Content-Type: text/plain"],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 415, "{r:?}");
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    let big = vec![b'a'; 70 * 1024];
    let r = post_offer(&rt, port, &[auth, sdp], &big);
    assert_eq!(r.status, 413, "{r:?}");
    let r = post_offer(&rt, port, &[auth, sdp], b"hello");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("v=0"), "{r:?}");
    // Looks like SDP but the WebRTC stack refuses it (no ICE credentials, no fingerprint).
    let r = post_offer(&rt, port, &[auth, sdp], offer.as_bytes());
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("offer"), "{r:?}");

    let r = rt
        .block_on(http(
            port,
            "DELETE",
            "/whep/0123456789abcdef0123456789abcdef",
            &[auth.into()],
            b"",
        ))
        .expect("HTTP");
    assert_eq!(r.status, 404, "{r:?}");
    let r = rt
        .block_on(http(
            port,
            "DELETE",
            "/whep/0123456789abcdef0123456789abcdef",
            &[],
            b"",
        ))
        .expect("HTTP");
    assert_eq!(r.status, 401, "DELETE needs the token too: {r:?}");
    let r = rt
        .block_on(http(
            port,
            "PATCH",
            "/whep/0123",
            &[
                auth.into(),
                "Content-Type: application/trickle-ice-sdpfrag".into(),
            ],
            b"a=end-of-candidates\r\n",
        ))
        .expect("HTTP");
    assert_eq!(r.status, 405, "{r:?}");

    // CORS preflight: own origin yes (with Accept-Post), a foreign one no.
    let own = format!("Origin: http://127.0.0.1:{port}");
    let r = rt
        .block_on(http(
            port,
            "OPTIONS",
            "/whep",
            &[own.clone(), "Access-Control-Request-Method: POST".into()],
            b"",
        ))
        .expect("HTTP");
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(own.trim_start_matches("Origin: "))
    );
    let r = rt
        .block_on(http(
            port,
            "OPTIONS",
            "/whep",
            &["Origin: http://evil.example".into()],
            b"",
        ))
        .expect("HTTP");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.header("access-control-allow-origin").is_none());

    // With every refusal behind it, a good client gets in and takes the only slot...
    let noop: crate::whep_client::OnPacket = Arc::new(|_, _| {});
    let posted = Instant::now();
    let mut first = rt
        .block_on(WhepClient::connect(port, "tok", noop.clone()))
        .unwrap_or_else(|e| panic!("first WHEP viewer: {e}"));
    assert!(
        posted.elapsed() < Duration::from_secs(8),
        "the answer waited {:?} for ICE gathering",
        posted.elapsed()
    );
    let links: Vec<&str> = first.response.all("link").collect();
    assert_eq!(
        links,
        ["<stun:127.0.0.1:9>; rel=\"ice-server\""],
        "{:?}",
        first.response
    );
    assert!(rt.block_on(first.wait_connected(Duration::from_secs(15))));
    // ...so the next one is told the server is full,
    match rt.block_on(WhepClient::connect(port, "tok", noop.clone())) {
        Err(crate::whep_client::WhepFailure::Refused(r)) => {
            assert_eq!(r.status, 503, "{r:?}");
            assert!(r.header("retry-after").is_some());
        }
        Err(e) => panic!("second viewer: {e}"),
        Ok(_) => panic!("a second viewer got in past --max-viewers 1"),
    }
    // ...and gets in once the first leaves.
    assert_eq!(rt.block_on(first.delete()), 200);
    let mut second = rt
        .block_on(WhepClient::connect(port, "tok", noop))
        .unwrap_or_else(|e| panic!("viewer after DELETE: {e}"));
    assert!(rt.block_on(second.wait_connected(Duration::from_secs(15))));
    assert_eq!(stats_sessions(&rt, port, "tok").0, 1);
    assert_eq!(rt.block_on(second.delete()), 200);
}

#[test]
fn a_whep_session_that_never_connects_is_reaped() {
    let (_display, server) = serve_display(
        22,
        &["--token", "tok", "--connect-timeout", "2", "--no-audio"],
    );
    let port = server.port();
    let rt = runtime();
    let offer = rt
        .block_on(crate::whep_client::abandoned_offer())
        .unwrap_or_else(|e| panic!("offer: {e}"));
    let r = post_offer(
        &rt,
        port,
        &["Content-Type: application/sdp", "Authorization: Bearer tok"],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let resource = r.header("location").unwrap_or_default().to_string();
    assert_eq!(stats_sessions(&rt, port, "tok").0, 1);
    let start = Instant::now();
    while stats_sessions(&rt, port, "tok").0 > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the abandoned WHEP session was never reaped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = rt
        .block_on(http(
            port,
            "DELETE",
            &resource,
            &["Authorization: Bearer tok".into()],
            b"",
        ))
        .expect("HTTP");
    assert_eq!(r.status, 404, "a reaped session's resource is gone: {r:?}");
}

#[test]
fn a_player_whose_offer_has_no_candidates_still_connects() {
    let (_display, server) = serve_display(23, &["--token", "tok", "--no-audio"]);
    let port = server.port();
    let rt = runtime();
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = frames.clone();
    let on_packet: crate::whep_client::OnPacket = Arc::new(move |kind, packet| {
        if kind == RtpCodecKind::Video && packet.header.marker {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut client = rt
        .block_on(WhepClient::connect_without_candidates(
            port, "tok", on_packet,
        ))
        .unwrap_or_else(|e| panic!("WHEP POST: {e}"));
    assert!(
        rt.block_on(client.wait_connected(Duration::from_secs(15))),
        "a player that sent no candidates did not connect"
    );
    let start = Instant::now();
    while frames.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no video frame arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rt.block_on(client.delete()), 200);
}
