//! Building one peer connection: codecs, interceptors, ICE servers and sockets, and the event
//! handler that turns webrtc-rs callbacks into [`SessionEvent`]s.
//!
//! Everything network-facing about a session (which ICE servers, which local sockets) and
//! everything in the RTP/RTCP interceptor chain is decided here, so the offer/answer code in
//! `mod.rs` only deals with descriptions and tracks.

use std::net::IpAddr;
use std::sync::Arc;

use rtc::interceptor::{CongestionControlBuilder, Gcc, PacerBuilder, Slot, TwccSenderBuilder};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfiguration, RTCConfigurationBuilder, RTCIceServer,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry, SettingEngine,
    SettingEngineBuilder,
};

use super::{
    feedback, keyframe, IceCandidate, InputChannel, PeerState, SessionError, SessionEvent,
};
use super::{SessionStats, H264_FMTP};
use crate::abr::LinkStats;
use crate::audio::rtp::{opus_codec, OPUS_PAYLOAD_TYPE};

/// Network settings shared by all sessions.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// STUN URLs (empty = host candidates only).
    pub stun: Vec<String>,
    /// Address the server listens on; a specific one also pins the UDP sockets.
    pub bind: IpAddr,
}

/// The H.264 codec every session sends, with the RTCP feedback it understands.
pub(super) fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
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
    }
}

/// The codecs a session may negotiate: H.264 video, and Opus when audio is on.
fn media_engine(with_audio: bool) -> Result<MediaEngine, SessionError> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: 102,
        },
        RtpCodecKind::Video,
    )?;
    if with_audio {
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )?;
    }
    Ok(media)
}

/// Most packets the pacer holds; later ones are dropped (NACK/PLI recover).
const PACER_QUEUE_PACKETS: usize = 512;

/// Start, floor and ceiling (bit/s) of a viewer's bandwidth estimator.
pub(super) type EstimatorBounds = (f64, f64, f64);

/// The RTP/RTCP interceptor chain: webrtc-rs defaults (NACK, reports, TWCC headers), the one
/// that hands PLI/FIR to the sender, the one that reads RTT and loss from receiver reports,
/// and, with adaptive bitrate, send-side congestion control (GCC over TWCC, with a pacer) whose
/// estimate is published into `link`.
fn interceptors(
    media: &mut MediaEngine,
    link: &Arc<LinkStats>,
    estimator: Option<EstimatorBounds>,
) -> Result<Registry, SessionError> {
    // The defaults already negotiate transport-wide sequence numbers and transport-cc feedback.
    let mut registry = register_default_interceptors(Registry::new(), media)?;
    if let Some((start, floor, ceiling)) = estimator {
        let gcc = feedback::ReportingEstimator::new(Gcc::new(start, floor, ceiling), link.clone());
        registry = registry
            .with(
                Slot::CongestionControl,
                CongestionControlBuilder::new(gcc).build(),
            )
            .with(Slot::TwccSender, TwccSenderBuilder::new().build())
            // Paced from the start as the estimator will ask (the default is 1 Mbit/s), with a
            // queue bounded to about half a megabyte as a backstop.
            .with(
                Slot::Pacer,
                PacerBuilder::new()
                    .with_target_bitrate(start * feedback::PACING_FACTOR)
                    .with_queue_limit(PACER_QUEUE_PACKETS)
                    .build(),
            );
    }
    Ok(registry
        // Between the report generators (10 000, 11 000) and the wire: sees SRs leave.
        .with(
            Slot::from(9_500),
            feedback::ReportWatcher::new(link.clone()),
        )
        .with(Slot::from(14_000), keyframe::KeyframeRequests::default()))
}

/// An ICE server (STUN or TURN) as both ends use it: the server's own connections, the page's
/// `RTCPeerConnection` configuration (`RTCIceServer` JSON) and WHEP `Link` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IceServer {
    /// STUN/TURN URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl NetworkConfig {
    /// The ICE servers to use now, for the server and for its clients alike.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        if self.stun.is_empty() {
            return vec![];
        }
        vec![IceServer {
            urls: self.stun.clone(),
            ..Default::default()
        }]
    }
}

/// ICE servers and policies for one connection.
fn ice_config(net: &NetworkConfig) -> RTCConfiguration {
    let servers = net
        .ice_servers()
        .into_iter()
        .map(|s| RTCIceServer {
            urls: s.urls,
            username: s.username.unwrap_or_default(),
            credential: s.credential.unwrap_or_default(),
        })
        .collect();
    RTCConfigurationBuilder::new()
        .with_ice_servers(servers)
        .build()
}

/// Transport-level settings (mDNS off: candidates carry plain addresses).
fn setting_engine(_net: &NetworkConfig) -> SettingEngine {
    SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build()
}

/// The local UDP sockets a connection binds (one ephemeral port per interface).
fn udp_addrs(net: &NetworkConfig) -> Vec<String> {
    if net.bind.is_unspecified() {
        vec!["0.0.0.0:0".to_string(), "127.0.0.1:0".to_string()]
    } else {
        vec![format!("{}:0", net.bind)]
    }
}

/// What [`build`] returns: the connection and the handles its event handler feeds.
pub(super) struct Peer {
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    /// The `input` data channel once the browser opens it.
    pub input: InputChannel,
    /// `true` while the connection is in the Connected state.
    pub connected: tokio::sync::watch::Receiver<bool>,
}

/// Builds one peer connection for `net`, reporting its events to `events`; `estimator` turns
/// on congestion control (adaptive bitrate).
pub(super) async fn build(
    net: &NetworkConfig,
    with_audio: bool,
    estimator: Option<EstimatorBounds>,
    stats: Arc<SessionStats>,
    events: mpsc::Sender<SessionEvent>,
) -> Result<Peer, SessionError> {
    let mut media = media_engine(with_audio)?;
    let registry = interceptors(&mut media, &stats.link, estimator)?;
    let (connected_tx, connected) = tokio::sync::watch::channel(false);
    let input: InputChannel = Arc::default();
    let handler = Arc::new(Handler {
        events,
        input: input.clone(),
        stats,
        connected: connected_tx,
    });
    let pc = PeerConnectionBuilder::new()
        .with_configuration(ice_config(net))
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine(net))
        .with_handler(handler)
        .with_udp_addrs(udp_addrs(net))
        .build()
        .await?;
    Ok(Peer {
        pc: Arc::new(pc),
        input,
        connected,
    })
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
