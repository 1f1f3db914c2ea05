//! One viewer: a WebRTC peer connection (webrtc-rs) fed from the shared video stream.
//!
//! This is the only module that touches WebRTC. The signalling layer gives it the browser's
//! offer and ICE candidates as plain strings and gets back an answer, local candidates and
//! state changes as [`SessionEvent`]s. Each session owns its own video track (one track per
//! connection: webrtc-rs delivers a shared track to one peer only), its own packetizer, and a
//! [`Subscription`] to the shared stream; closing the session releases all of them.

mod keyframe;
pub mod rtp;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};

use crate::audio::rtp::{opus_codec, OpusPacketizer, OPUS_PAYLOAD_TYPE};
use crate::audio::{AudioHub, AudioSubscription};
use crate::broadcast::{Hub, Subscription};

/// The H.264 format we offer: Constrained Baseline 3.1 with level asymmetry, so the browser
/// accepts streams above the offered level (1080p).
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// What can go wrong while setting up a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The browser's SDP could not be used.
    #[error("the offer was not accepted: {0}")]
    BadOffer(String),
    /// An ICE candidate from the browser was refused.
    #[error("the ICE candidate was not accepted: {0}")]
    BadCandidate(String),
    /// The WebRTC stack failed.
    #[error("WebRTC error: {0}")]
    WebRtc(#[from] webrtc::error::Error),
}

/// An ICE candidate as the browser's `RTCIceCandidate.toJSON()` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line.
    pub candidate: String,
    /// Media section id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Media section index.
    #[serde(
        default,
        rename = "sdpMLineIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    /// ICE username fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Connection state of a session, as shown in `/api/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Created, no offer yet.
    New,
    /// Negotiating / ICE checks.
    Connecting,
    /// Media flowing.
    Connected,
    /// Connectivity lost (may come back).
    Disconnected,
    /// ICE or DTLS failed.
    Failed,
    /// Closed.
    Closed,
}

impl PeerState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => PeerState::Connecting,
            2 => PeerState::Connected,
            3 => PeerState::Disconnected,
            4 => PeerState::Failed,
            5 => PeerState::Closed,
            _ => PeerState::New,
        }
    }
}

/// Something the signalling layer must pass on or act on.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A local ICE candidate for the browser; `None` = gathering finished.
    Candidate(Option<IceCandidate>),
    /// The connection state changed.
    State(PeerState),
    /// A message arrived on the `input` data channel.
    Input(bytes::Bytes),
}

/// The open `input` data channel, if any.
type InputChannel = Arc<std::sync::Mutex<Option<Arc<dyn DataChannel>>>>;

/// Per-viewer counters, shared with `/api/stats`.
#[derive(Debug)]
pub struct SessionStats {
    /// Session number.
    pub id: u64,
    state: AtomicU8,
    /// RTP payload bytes sent.
    pub bytes_sent: AtomicU64,
    /// Video frames sent.
    pub frames_sent: AtomicU64,
    /// Keyframe requests (PLI/FIR) received from this viewer.
    pub keyframe_requests: AtomicU64,
    /// Opus packets sent.
    pub audio_packets_sent: AtomicU64,
}

impl SessionStats {
    /// Fresh counters for session `id`.
    pub fn new(id: u64) -> Self {
        SessionStats {
            id,
            state: AtomicU8::new(0),
            bytes_sent: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            audio_packets_sent: AtomicU64::new(0),
        }
    }

    /// Current connection state.
    pub fn state(&self) -> PeerState {
        PeerState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn set_state(&self, state: PeerState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}

/// Network settings shared by all sessions.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// STUN URLs (empty = host candidates only).
    pub stun: Vec<String>,
    /// Address the server listens on; a specific one also pins the UDP sockets.
    pub bind: IpAddr,
}

struct Handler {
    events: mpsc::Sender<SessionEvent>,
    input: InputChannel,
    stats: Arc<SessionStats>,
    connected: tokio::sync::watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let candidate = IceCandidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                    username_fragment: init.username_fragment,
                };
                let _ = self
                    .events
                    .send(SessionEvent::Candidate(Some(candidate)))
                    .await;
            }
            Err(err) => tracing::debug!("local candidate not serialisable: {err}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = match state {
            RTCPeerConnectionState::Connecting => PeerState::Connecting,
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
            RTCPeerConnectionState::Failed => PeerState::Failed,
            RTCPeerConnectionState::Closed => PeerState::Closed,
            _ => PeerState::New,
        };
        tracing::debug!(session = self.stats.id, "peer state {state:?}");
        self.stats.set_state(state);
        let _ = self.connected.send(state == PeerState::Connected);
        let _ = self.events.send(SessionEvent::State(state)).await;
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let label = channel.label().await.unwrap_or_default();
        if label != "input" {
            tracing::debug!(session = self.stats.id, "ignoring data channel {label:?}");
            return;
        }
        set_channel(&self.input, Some(channel.clone()));
        let events = self.events.clone();
        let slot = self.input.clone();
        let id = self.stats.id;
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                match event {
                    DataChannelEvent::OnOpen => set_channel(&slot, Some(channel.clone())),
                    DataChannelEvent::OnMessage(msg) => {
                        let sent = events.send(SessionEvent::Input(msg.data.freeze())).await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
            tracing::debug!(session = id, "input data channel closed");
            set_channel(&slot, None);
        });
    }
}

fn set_channel(slot: &InputChannel, channel: Option<Arc<dyn DataChannel>>) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = channel;
}

/// One viewer's peer connection and media task.
pub struct Session {
    pc: Arc<dyn PeerConnection>,
    input: InputChannel,
    stats: Arc<SessionStats>,
    media: Option<JoinHandle<()>>,
    rtcp: Option<JoinHandle<()>>,
    audio: Option<JoinHandle<()>>,
}

impl Session {
    /// Answers the browser's `offer_sdp`: builds the peer connection with its own H.264 track,
    /// joins the shared stream, and returns the answer SDP at once (candidates trickle after
    /// through `events`; ICE gathering is never waited for).
    pub async fn answer(
        offer_sdp: String,
        hub: &Hub,
        audio_hub: Option<&AudioHub>,
        net: &NetworkConfig,
        stats: Arc<SessionStats>,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<(Session, String), SessionError> {
        let offer = RTCSessionDescription::offer(offer_sdp)
            .map_err(|e| SessionError::BadOffer(e.to_string()))?;

        let codec = RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: H264_FMTP.to_owned(),
            rtcp_feedback: ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"]
                .iter()
                .map(|fb| {
                    let (typ, parameter) = fb.split_once(' ').unwrap_or((fb, ""));
                    RTCPFeedback {
                        typ: typ.to_owned(),
                        parameter: parameter.to_owned(),
                    }
                })
                .collect(),
        };
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec.clone(),
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )?;
        rtp::register_playout_delay(&mut media)?;
        if audio_hub.is_some() {
            media.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: opus_codec(),
                    payload_type: OPUS_PAYLOAD_TYPE,
                },
                RtpCodecKind::Audio,
            )?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media)?
            .with(Slot::from(14_000), keyframe::KeyframeRequests::default());

        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(if net.stun.is_empty() {
                vec![]
            } else {
                vec![RTCIceServer {
                    urls: net.stun.clone(),
                    ..Default::default()
                }]
            })
            .build();

        let (connected_tx, connected_rx) = tokio::sync::watch::channel(false);
        let input: InputChannel = Arc::default();
        let handler = Arc::new(Handler {
            events,
            input: input.clone(),
            stats: stats.clone(),
            connected: connected_tx,
        });
        let udp_addrs = if net.bind.is_unspecified() {
            vec!["0.0.0.0:0".to_string(), "127.0.0.1:0".to_string()]
        } else {
            vec![format!("{}:0", net.bind)]
        };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(udp_addrs)
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        stats.set_state(PeerState::Connecting);

        let mut session = Session {
            pc: pc.clone(),
            input,
            stats: stats.clone(),
            media: None,
            rtcp: None,
            audio: None,
        };
        if let Err(err) = pc.set_remote_description(offer).await {
            session.close().await;
            return Err(SessionError::BadOffer(err.to_string()));
        }

        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "vnrit".to_owned(),
            "desktop".to_owned(),
            "desktop".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        )));
        // Same stream id as the video: the browser puts both in one sync group (lip sync).
        let audio_ssrc: u32 = rand::random();
        let audio_track = audio_hub.map(|_| {
            Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                "vnrit".to_owned(),
                "desktop-audio".to_owned(),
                "desktop-audio".to_owned(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(audio_ssrc),
                        ..Default::default()
                    },
                    codec: opus_codec(),
                    ..Default::default()
                }],
            )))
        });
        let answer = async {
            let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            let audio_sender = match &audio_track {
                Some(t) => Some(pc.add_track(t.clone() as Arc<dyn TrackLocal>).await?),
                None => None,
            };
            let answer = pc.create_answer(None).await?;
            pc.set_local_description(answer).await?;
            let video_parameters = sender.get_parameters().await?.rtp_parameters;
            let payload_type = video_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
                .ok_or_else(|| {
                    SessionError::BadOffer("the browser offered no usable H.264 video".into())
                })?;
            let playout_delay_id = rtp::negotiated_playout_delay(&video_parameters);
            let audio_payload_type = match &audio_sender {
                Some(sender) => sender
                    .get_parameters()
                    .await?
                    .rtp_parameters
                    .codecs
                    .first()
                    .map(|c| c.payload_type),
                None => None,
            };
            let sdp = pc
                .local_description()
                .await
                .map(|d| d.sdp)
                .ok_or_else(|| SessionError::BadOffer("no local description".into()))?;
            Ok::<_, SessionError>((payload_type, playout_delay_id, audio_payload_type, sdp))
        }
        .await;
        let (payload_type, playout_delay_id, audio_payload_type, sdp) = match answer {
            Ok(v) => v,
            Err(err) => {
                session.close().await;
                return Err(err);
            }
        };

        if let (Some(audio_hub), Some(track), Some(pt)) =
            (audio_hub, audio_track, audio_payload_type)
        {
            session.audio = Some(tokio::spawn(send_audio(
                track,
                OpusPacketizer::new(audio_ssrc, pt),
                audio_hub.subscribe(),
                connected_rx.clone(),
                stats.clone(),
            )));
        }
        let subscription = hub.subscribe();
        let (kf_tx, kf_rx) = mpsc::channel(4);
        session.rtcp = Some(tokio::spawn(read_rtcp(track.clone(), kf_tx, stats.clone())));
        session.media = Some(tokio::spawn(send_video(
            track,
            rtp::H264Packetizer::new(ssrc, payload_type).with_playout_delay(playout_delay_id),
            subscription,
            connected_rx,
            kf_rx,
            stats,
        )));
        Ok((session, sdp))
    }

    /// Adds a browser ICE candidate (trickle).
    pub async fn add_candidate(&self, candidate: IceCandidate) -> Result<(), SessionError> {
        if candidate.candidate.len() > 1024 {
            return Err(SessionError::BadCandidate("longer than 1024 bytes".into()));
        }
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: candidate.candidate,
                sdp_mid: candidate.sdp_mid,
                sdp_mline_index: candidate.sdp_mline_index,
                username_fragment: candidate.username_fragment,
                ..Default::default()
            })
            .await
            .map_err(|e| SessionError::BadCandidate(e.to_string()))
    }

    /// Sends an input-side message (cursor, clipboard) on the `input` data channel. Returns
    /// `false` when the channel is not open (the caller falls back to the WebSocket).
    pub async fn send_input(&self, text: &str) -> bool {
        let channel = self.input.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match channel {
            Some(channel) => channel.send_text(text).await.is_ok(),
            None => false,
        }
    }

    /// This session's counters.
    pub fn stats(&self) -> &Arc<SessionStats> {
        &self.stats
    }

    /// Closes the peer connection and stops its tasks (leaving the shared stream).
    pub async fn close(&mut self) {
        for task in [self.media.take(), self.rtcp.take(), self.audio.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
            let _ = task.await;
        }
        if let Err(err) = tokio::time::timeout(Duration::from_secs(2), self.pc.close()).await {
            tracing::warn!(
                session = self.stats.id,
                "closing the peer connection timed out: {err}"
            );
        }
        self.stats.set_state(PeerState::Closed);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for task in [self.media.take(), self.rtcp.take(), self.audio.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

/// Waits for keyframe requests (PLI/FIR) from the browser.
async fn read_rtcp(
    track: Arc<TrackLocalStaticRTP>,
    keyframes: mpsc::Sender<()>,
    stats: Arc<SessionStats>,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if packets
            .iter()
            .any(|p| keyframe::is_keyframe_request(p.as_ref()))
        {
            stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            // Full means a request is already pending: coalesced.
            let _ = keyframes.try_send(());
        }
    }
}

/// Sends the shared stream to this viewer until the stream ends or the task is aborted.
async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    mut packetizer: rtp::H264Packetizer,
    mut frames: Subscription,
    mut connected: tokio::sync::watch::Receiver<bool>,
    mut keyframe_requests: mpsc::Receiver<()>,
    stats: Arc<SessionStats>,
) {
    // Frames written before DTLS is up are lost; start at a fresh keyframe once connected.
    if connected.wait_for(|c| *c).await.is_err() {
        return;
    }
    frames.resync();
    let started = Instant::now();
    loop {
        let frame = tokio::select! {
            frame = frames.next() => match frame {
                Ok(frame) => frame,
                Err(_) => return,
            },
            Some(()) = keyframe_requests.recv() => {
                frames.request_keyframe();
                continue;
            }
        };
        let packets = match packetizer.packetize(&frame.encoded.data, frame.timestamp) {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(session = stats.id, "cannot packetize a frame: {err}");
                continue;
            }
        };
        let mut bytes = 0u64;
        for packet in packets {
            bytes += packet.payload.len() as u64;
            if let Err(err) = track.write_rtp(packet).await {
                tracing::debug!(
                    session = stats.id,
                    "RTP write failed, stopping video: {err}"
                );
                return;
            }
        }
        stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        if stats.frames_sent.load(Ordering::Relaxed) == 1 {
            tracing::info!(
                session = stats.id,
                "first frame sent {} ms after connecting",
                started.elapsed().as_millis()
            );
        }
    }
}

/// Sends the shared audio stream to this viewer until it ends or the task is aborted.
async fn send_audio(
    track: Arc<TrackLocalStaticRTP>,
    mut packetizer: OpusPacketizer,
    mut packets: AudioSubscription,
    mut connected: tokio::sync::watch::Receiver<bool>,
    stats: Arc<SessionStats>,
) {
    if connected.wait_for(|c| *c).await.is_err() {
        return;
    }
    while let Some(frame) = packets.next().await {
        let packet = packetizer.packetize(&frame);
        let bytes = packet.payload.len() as u64;
        if let Err(err) = track.write_rtp(packet).await {
            tracing::debug!(
                session = stats.id,
                "RTP write failed, stopping audio: {err}"
            );
            return;
        }
        stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        stats.audio_packets_sent.fetch_add(1, Ordering::Relaxed);
    }
}
