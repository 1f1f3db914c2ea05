//! WHEP negotiates the codec like the page does: a player that offers only VP8 (as Debian's
//! Firefox would) gets VP8, decodes the desktop's colour and a change through libvpx, and
//! `/api/stats` and `/metrics` say so; a player that offers neither codec gets a 400 that
//! names both sides' codecs.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use vnrit::video::Vp8Decoder;

use crate::cli::serve_display;
use crate::whep::{fill_root, runtime};
use crate::whep_client::{http, Offers, WhepClient};

/// Reassembles VP8 frames from RTP payloads and decodes them with libvpx.
struct Vp8Sink {
    frame: Vec<u8>,
    decoder: Vp8Decoder,
}

impl Vp8Sink {
    /// Feeds one packet; at the end of a frame, returns the decoded centre pixel (Y, U, V).
    fn push(&mut self, payload: &bytes::Bytes, marker: bool) -> Option<[u8; 3]> {
        let mut header = Vp8Packet::default();
        let Ok(data) = header.depacketize(payload) else {
            self.frame.clear();
            return None;
        };
        if header.s == 1 && header.pid == 0 {
            self.frame.clear();
        }
        self.frame.extend_from_slice(&data);
        if !marker {
            return None;
        }
        let frame = std::mem::take(&mut self.frame);
        let picture = self.decoder.decode(&frame).ok().flatten()?;
        let (w, h) = (picture.width as usize, picture.height as usize);
        let (cw, _) = picture.chroma_size();
        let c = (h / 4) * cw as usize + w / 4;
        Some([picture.y[(h / 2) * w + w / 2], picture.u[c], picture.v[c]])
    }
}

/// BT.601 limited range, as the converter writes.
const RED: [u8; 3] = [81, 90, 240];
const BLUE: [u8; 3] = [41, 240, 110];

fn near(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (i32::from(*g) - i32::from(w)).abs() <= 20)
}

/// Decodes until the centre pixel is near `want` (at most `limit`), asking for a keyframe
/// while nothing decodes.
fn decode_until(
    rt: &tokio::runtime::Runtime,
    client: &WhepClient,
    packets: &mpsc::Receiver<(bytes::Bytes, bool)>,
    sink: &mut Vp8Sink,
    want: [u8; 3],
    limit: Duration,
) -> Option<[u8; 3]> {
    let start = Instant::now();
    let mut last = None;
    let mut last_pli = Instant::now();
    while start.elapsed() < limit {
        if let Ok((payload, marker)) = packets.recv_timeout(Duration::from_millis(200)) {
            if let Some(pixel) = sink.push(&payload, marker) {
                last = Some(pixel);
                if near(pixel, want) {
                    break;
                }
            }
        }
        if last.is_none() && last_pli.elapsed() > Duration::from_secs(1) {
            rt.block_on(client.request_keyframe());
            last_pli = Instant::now();
        }
    }
    last
}

#[test]
fn a_vp8_only_whep_player_gets_vp8_and_decodes_the_desktop() {
    let (display, server) = serve_display(33, &["--token", "tok"]);
    let port = server.port();
    fill_root(display.name(), "#ff0000");
    let rt = runtime();
    let (tx, packets) = mpsc::channel();
    let on_packet: crate::whep_client::OnPacket = Arc::new(move |kind, packet| {
        if kind == RtpCodecKind::Video {
            let _ = tx.send((packet.payload.clone(), packet.header.marker));
        }
    });
    let mut client = rt
        .block_on(WhepClient::connect_offering(
            port,
            "tok",
            on_packet,
            Offers::Vp8,
        ))
        .unwrap_or_else(|e| panic!("WHEP POST: {e}"));
    let answer = &client.response.body;
    assert!(answer.contains(" VP8/90000"), "{answer}");
    assert!(!answer.contains("H264"), "{answer}");
    assert!(
        rt.block_on(client.wait_connected(Duration::from_secs(15))),
        "the WHEP client did not connect"
    );

    let mut sink = Vp8Sink {
        frame: Vec::new(),
        decoder: Vp8Decoder::new().expect("libvpx decoder"),
    };
    let got = decode_until(
        &rt,
        &client,
        &packets,
        &mut sink,
        RED,
        Duration::from_secs(20),
    );
    assert!(
        got.is_some_and(|p| near(p, RED)),
        "centre {got:?}, want red {RED:?}"
    );
    fill_root(display.name(), "#0000ff");
    let got = decode_until(
        &rt,
        &client,
        &packets,
        &mut sink,
        BLUE,
        Duration::from_secs(20),
    );
    assert!(
        got.is_some_and(|p| near(p, BLUE)),
        "centre {got:?}, want blue {BLUE:?}"
    );

    let stats = rt
        .block_on(http(port, "GET", "/api/stats?token=tok", &[], b""))
        .expect("stats");
    let v: serde_json::Value = serde_json::from_str(&stats.body).expect("JSON");
    assert_eq!(v["sessions"][0]["codec"], "vp8", "{}", stats.body);
    let encoders: Vec<(String, u64)> = v["codecs"]
        .as_array()
        .expect("codecs")
        .iter()
        .map(|c| {
            (
                c["codec"].as_str().unwrap_or("").to_owned(),
                c["encoders"].as_u64().unwrap_or(9),
            )
        })
        .collect();
    assert_eq!(
        encoders,
        vec![("h264".to_owned(), 0), ("vp8".to_owned(), 1)],
        "{}",
        stats.body
    );
    let metrics = rt
        .block_on(http(port, "GET", "/metrics?token=tok", &[], b""))
        .expect("metrics");
    for line in [
        "vnrit_codec_encoders{codec=\"vp8\"} 1",
        "vnrit_codec_encoders{codec=\"h264\"} 0",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "no {line}:\n{}",
            metrics.body
        );
    }
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l.starts_with("vnrit_session_codec{") && l.contains("codec=\"vp8\"} 1")),
        "{}",
        metrics.body
    );
    assert_eq!(rt.block_on(client.delete()), 200);
    drop(display);
}

#[test]
fn a_whep_offer_without_a_common_codec_is_refused_with_both_lists() {
    let (_display, server) = serve_display(34, &["--token", "tok"]);
    let offer = include_str!("../src/session/testdata/firefox-esr-offer.sdp")
        .lines()
        .filter(|l| !l.contains(" VP8/"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>();
    let rt = runtime();
    let r = rt
        .block_on(http(
            server.port(),
            "POST",
            "/whep",
            &[
                "Content-Type: application/sdp".to_string(),
                "Authorization: Bearer tok".to_string(),
            ],
            offer.as_bytes(),
        ))
        .expect("POST");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains(
            "no common video codec: your browser offers VP9/AV1; this server sends H.264 and VP8"
        ),
        "{}",
        r.body
    );
}
