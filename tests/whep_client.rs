//! A small WHEP client (draft-ietf-wish-whep) on the webrtc crate, independent of vnrit's own
//! code: it offers to receive one H.264 video and one Opus audio stream, POSTs the offer with a
//! bearer token over plain HTTP/1.1 to 127.0.0.1, applies the answer, and hands every received
//! RTP packet to a callback. Used by `tests/whep.rs` and by `examples/whep_receivers.rs`
//! (included there with `#[path]`), so both speak to the server exactly as a third-party
//! player would.

#![allow(dead_code)] // Each includer uses a different part.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder,
};

/// What the callback gets: the stream kind and one RTP packet.
pub type OnPacket = Arc<dyn Fn(RtpCodecKind, &rtc::rtp::Packet) + Send + Sync>;

/// The received video track and its SSRC, once it arrived (for keyframe requests).
type VideoTrack = Arc<Mutex<Option<(Arc<dyn TrackRemote>, u32)>>>;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lower case).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close`; `extra` are header lines
/// without CRLF.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    extra: &[String],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    // A refused body may be left unread by the server: ignore write errors past the head.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no complete HTTP response within 15 s"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // Chunked bodies (error texts from axum are not chunked; the SDP answer has a length).
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A connected (or connecting) WHEP viewer.
pub struct WhepClient {
    pc: Arc<dyn PeerConnection>,
    /// The session's resource path from `Location`.
    pub resource: String,
    /// The `201` response (answer, `Link` headers).
    pub response: HttpResponse,
    /// `true` once the connection is in the Connected state.
    pub connected: watch::Receiver<bool>,
    video: VideoTrack,
    port: u16,
    token: String,
}

/// Why a WHEP session could not be set up.
#[derive(Debug)]
pub enum WhepFailure {
    /// The server refused the offer.
    Refused(HttpResponse),
    /// Something local failed.
    Local(String),
}

impl std::fmt::Display for WhepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WhepFailure::Refused(r) => write!(f, "the server answered {}: {}", r.status, r.body),
            WhepFailure::Local(e) => write!(f, "{e}"),
        }
    }
}

fn local(e: impl std::fmt::Display) -> WhepFailure {
    WhepFailure::Local(e.to_string())
}

struct Handler {
    gathered: watch::Sender<bool>,
    connected: watch::Sender<bool>,
    on_packet: OnPacket,
    video: VideoTrack,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self
            .connected
            .send(state == RTCPeerConnectionState::Connected);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        if kind == RtpCodecKind::Video {
            let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
            *self.video.lock().unwrap_or_else(|p| p.into_inner()) = Some((track.clone(), ssrc));
        }
        let on_packet = self.on_packet.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    on_packet(kind, &packet);
                }
            }
        });
    }
}

/// The video codec a test player offers (only that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offers {
    /// H.264 Constrained Baseline, like a browser with H.264.
    H264,
    /// VP8 only, like Debian's Firefox.
    Vp8,
}

fn codecs(offers: Offers) -> Result<MediaEngine, WhepFailure> {
    let mut media = MediaEngine::default();
    let (mime_type, fmtp, payload_type) = match offers {
        Offers::H264 => (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
        ),
        Offers::Vp8 => (MIME_TYPE_VP8, "", 96),
    };
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: mime_type.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: fmtp.to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type,
            },
            RtpCodecKind::Video,
        )
        .map_err(local)?;
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(local)?;
    Ok(media)
}

/// A peer connection with recvonly video and audio transceivers, and its gathered offer.
struct Offerer {
    pc: Arc<dyn PeerConnection>,
    connected: watch::Receiver<bool>,
    video: VideoTrack,
    offer: String,
}

impl Offerer {
    async fn new(on_packet: OnPacket, offers: Offers) -> Result<Self, WhepFailure> {
        let mut media = codecs(offers)?;
        let registry = register_default_interceptors(Registry::new(), &mut media).map_err(local)?;
        let (gathered_tx, mut gathered) = watch::channel(false);
        let (connected_tx, connected) = watch::channel(false);
        let video = Arc::new(Mutex::new(None));
        let handler = Arc::new(Handler {
            gathered: gathered_tx,
            connected: connected_tx,
            on_packet,
            video: video.clone(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                    .build(),
            )
            .with_handler(handler)
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await
            .map_err(local)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .map_err(local)?;
        }
        let offer = pc.create_offer(None).await.map_err(local)?;
        pc.set_local_description(offer).await.map_err(local)?;
        // Non-trickle: the offer carries every candidate.
        let _ = tokio::time::timeout(Duration::from_secs(5), gathered.wait_for(|g| *g)).await;
        let offer = pc
            .local_description()
            .await
            .ok_or_else(|| local("no local description"))?
            .sdp;
        Ok(Offerer {
            pc,
            connected,
            video,
            offer,
        })
    }
}

/// A valid offer whose peer connection is already closed: a player that vanished right after
/// its POST, for reaping tests.
pub async fn abandoned_offer() -> Result<String, WhepFailure> {
    let offerer = Offerer::new(Arc::new(|_, _| {}), Offers::H264).await?;
    let _ = offerer.pc.close().await;
    Ok(offerer.offer)
}

impl WhepClient {
    /// Offers recvonly video + audio to `http://127.0.0.1:{port}/whep` with `token` as bearer
    /// token; `on_packet` sees every RTP packet received. Binds UDP on 127.0.0.1 only.
    pub async fn connect(port: u16, token: &str, on_packet: OnPacket) -> Result<Self, WhepFailure> {
        Self::connect_with(port, token, on_packet, true, Offers::H264).await
    }

    /// Like [`WhepClient::connect`], offering only the video codec `offers`.
    pub async fn connect_offering(
        port: u16,
        token: &str,
        on_packet: OnPacket,
        offers: Offers,
    ) -> Result<Self, WhepFailure> {
        Self::connect_with(port, token, on_packet, true, offers).await
    }

    /// Like [`WhepClient::connect`], but the offer goes without any candidate, as from a player
    /// that POSTs at once and would trickle later: the server must find the player from its
    /// connectivity checks alone.
    pub async fn connect_without_candidates(
        port: u16,
        token: &str,
        on_packet: OnPacket,
    ) -> Result<Self, WhepFailure> {
        Self::connect_with(port, token, on_packet, false, Offers::H264).await
    }

    async fn connect_with(
        port: u16,
        token: &str,
        on_packet: OnPacket,
        with_candidates: bool,
        offers: Offers,
    ) -> Result<Self, WhepFailure> {
        let Offerer {
            pc,
            connected,
            video,
            mut offer,
        } = Offerer::new(on_packet, offers).await?;
        if !with_candidates {
            offer = offer
                .split_inclusive('\n')
                .filter(|l| !l.starts_with("a=candidate:") && !l.starts_with("a=end-of-candidates"))
                .collect();
        }
        let response = http(
            port,
            "POST",
            "/whep",
            &[
                "Content-Type: application/sdp".to_string(),
                format!("Authorization: Bearer {token}"),
            ],
            offer.as_bytes(),
        )
        .await
        .map_err(local)?;
        if response.status != 201 {
            let _ = pc.close().await;
            return Err(WhepFailure::Refused(response));
        }
        let resource = response.header("location").unwrap_or_default().to_string();
        let answer = RTCSessionDescription::answer(response.body.clone()).map_err(local)?;
        if let Err(e) = pc.set_remote_description(answer).await {
            let _ = pc.close().await;
            return Err(local(e));
        }
        Ok(WhepClient {
            pc,
            resource,
            response,
            connected,
            video,
            port,
            token: token.to_string(),
        })
    }

    /// Waits until the connection is up, at most `limit`.
    pub async fn wait_connected(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.connected.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Asks the server for a keyframe (RTCP PLI on the video stream).
    pub async fn request_keyframe(&self) {
        let video = self.video.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((track, ssrc)) = video {
            let _ = track
                .write_rtcp(vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                })])
                .await;
        }
    }

    /// Ends the session: `DELETE` on its resource, then closes the connection. Returns the
    /// DELETE's status code.
    pub async fn delete(self) -> u16 {
        let status = http(
            self.port,
            "DELETE",
            &self.resource,
            &[format!("Authorization: Bearer {}", self.token)],
            b"",
        )
        .await
        .map(|r| r.status)
        .unwrap_or(0);
        let _ = self.pc.close().await;
        status
    }
}
