//! Building one peer connection: codecs, interceptors, ICE servers and sockets, and the event
//! handler that turns webrtc-rs callbacks into [`SessionEvent`]s.
//!
//! Everything network-facing about a session (which ICE servers, which local sockets) and
//! everything in the RTP/RTCP interceptor chain is decided here, so the offer/answer code in
//! `mod.rs` only deals with descriptions and tracks.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rtc::interceptor::{CongestionControlBuilder, PacerBuilder, Slot, TwccSenderBuilder};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfiguration, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    Registry, SettingEngine, SettingEngineBuilder,
};
use webrtc::runtime::{Runtime, TokioRuntime};

use super::ice::TurnAuth;
use super::opus_rtp::{opus_codec, OPUS_PAYLOAD_TYPE};
use super::ports::{PortLease, PortPool};
use super::timers::{CoarseTimers, TimerGrid};
use super::udp_mux::{MuxConnection, UdpMux};
use super::{
    feedback, keyframe, IceCandidate, InputChannel, PeerState, SessionError, SessionEvent,
};
use super::{SessionStats, H264_FMTP};
use crate::abr::LinkStats;
use crate::audio::mic::{MicPacket, MicTap};
use crate::lock::lock;

/// Network settings shared by all sessions.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// STUN URLs (empty = host candidates only).
    pub stun: Vec<String>,
    /// TURN URLs (`turn:` / `turns:`), all with the same credentials.
    pub turn: Vec<String>,
    /// Credentials for the TURN URLs.
    pub turn_auth: TurnAuth,
    /// Relay candidates only, on the server and (through the hello) on the page.
    pub relay_only: bool,
    /// Address the server listens on; a specific one also pins the ICE sockets.
    pub bind: IpAddr,
    /// Ports the ICE sockets may use (one per connection); `None` = ephemeral ports.
    pub ports: Option<PortPool>,
    /// ICE over TCP only (passive host candidates), no UDP sockets.
    pub tcp_only: bool,
    /// One shared UDP port for all connections (`--udp-port`), if set.
    pub mux: Option<UdpMux>,
}

impl NetworkConfig {
    /// Host candidates only, on ephemeral UDP ports of `bind`: the defaults.
    pub fn new(bind: IpAddr) -> Self {
        Self {
            stun: Vec::new(),
            turn: Vec::new(),
            turn_auth: TurnAuth::None,
            relay_only: false,
            bind,
            ports: None,
            tcp_only: false,
            mux: None,
        }
    }

    /// The `iceTransportPolicy` the page's `RTCPeerConnection` must use: `"relay"` with
    /// `--ice-relay-only`, otherwise `"all"`.
    pub fn ice_transport_policy(&self) -> &'static str {
        if self.relay_only {
            "relay"
        } else {
            "all"
        }
    }
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
    super::rtp::register_playout_delay(&mut media)?;
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
/// and, with adaptive bitrate, send-side congestion control (vnrit's estimator over TWCC,
/// with a pacer) whose estimate is published into `link`.
fn interceptors(
    media: &mut MediaEngine,
    link: &Arc<LinkStats>,
    estimator: Option<EstimatorBounds>,
) -> Result<Registry, SessionError> {
    // The defaults already negotiate transport-wide sequence numbers and transport-cc feedback.
    let mut registry = register_default_interceptors(Registry::new(), media)?;
    if let Some((start, floor, ceiling)) = estimator {
        let estimator = crate::abr::estimator::DeliveryEstimator::new(start, floor, ceiling);
        let cc = feedback::ReportingEstimator::new(estimator, link.clone());
        registry = registry
            .with(
                Slot::CongestionControl,
                CongestionControlBuilder::new(cc).build(),
            )
            .with(Slot::TwccSender, TwccSenderBuilder::new().build())
            // Paced from the start as the estimator will ask (the default is 1 Mbit/s), with a
            // queue bounded to about half a megabyte as a backstop.
            .with(
                Slot::Pacer,
                PacerBuilder::new()
                    .with_target_bitrate(start * crate::abr::pacing::OPEN_PACING_FACTOR)
                    .with_burst_bits(crate::abr::pacing::PACER_BURST_BITS)
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
    /// The ICE servers to use now, for the server and for its clients alike (the WS hello and
    /// WHEP `Link` headers). Shared-secret TURN credentials are computed fresh on every call.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if !self.stun.is_empty() {
            servers.push(IceServer {
                urls: self.stun.clone(),
                ..Default::default()
            });
        }
        if !self.turn.is_empty() {
            let creds = self.turn_auth.credentials(std::time::SystemTime::now());
            let (username, credential) = creds.unzip();
            servers.push(IceServer {
                urls: self.turn.clone(),
                username,
                credential,
            });
        }
        servers
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
    let policy = if net.relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    };
    RTCConfigurationBuilder::new()
        .with_ice_servers(servers)
        .with_ice_transport_policy(policy)
        .build()
}

/// How often the server sends its own ICE consent check on its selected pair: webrtc-rs's
/// default, well inside the 5 s after which ICE calls a silent pair disconnected (and vnrit
/// releases the viewer's held keys).
///
/// The answers to these checks are often the only packets that pair receives. webrtc-rs keeps
/// the first pair the browser nominated and ignores a later nomination, while Chromium moves
/// to a better pair once it has measured them, and from then on sends its receiver reports and
/// its own checks there. Media still flows on the server's pair and plays, but at one check
/// every 5 s (this used to be 5 s, to save idle CPU) the pair went silent for just over 5 s
/// and the session fell to disconnected and back every 5 s, dropping held keys each time;
/// `e2e/ice-paths.test.mjs` shows it with a server reachable at two addresses.
const ICE_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(2);

/// Transport-level settings (mDNS off: candidates carry plain addresses, ICE consent checks
/// every [`ICE_KEEPALIVE`]).
fn setting_engine(_net: &NetworkConfig) -> SettingEngine {
    SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_timeouts(None, None, Some(ICE_KEEPALIVE))
        .build()
}

/// The local socket addresses a connection binds on `port` (0 = ephemeral): every interface
/// (webrtc-rs expands the wildcard, skipping loopback) plus loopback, or the one bound address.
fn local_addrs(net: &NetworkConfig, port: u16) -> Vec<String> {
    if net.bind.is_unspecified() {
        vec![format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}")]
    } else if net.bind.is_ipv6() {
        vec![format!("[{}]:{port}", net.bind)]
    } else {
        vec![format!("{}:{port}", net.bind)]
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
    /// The port of `--udp-ports` this connection holds, returned when the session drops it.
    pub port: Option<PortLease>,
    /// This connection's share of `--udp-port` (ufrag routing, candidate rewriting).
    pub mux: Option<Arc<MuxConnection>>,
    /// When this connection's timers are coarse; the media tasks report what they send.
    pub timers: Arc<TimerGrid>,
}

/// Builds one peer connection for `net`, reporting its events to `events`; `estimator` turns
/// on congestion control (adaptive bitrate). With `mic`, the browser's audio (its microphone)
/// is received and every packet pushed into the tap.
pub(super) async fn build(
    net: &NetworkConfig,
    with_audio: bool,
    estimator: Option<EstimatorBounds>,
    stats: Arc<SessionStats>,
    events: mpsc::Sender<SessionEvent>,
    mic: Option<MicTap>,
) -> Result<Peer, SessionError> {
    // Opus is negotiated for either direction.
    let with_audio = with_audio || mic.is_some();
    let link = stats.link.clone();
    let (connected_tx, connected) = tokio::sync::watch::channel(false);
    let input: InputChannel = Arc::default();
    let mux = match &net.mux {
        Some(mux) => Some(mux.connection(ice_server_addrs(net).await)),
        None => None,
    };
    // A connected viewer's timers tick on the shared coarse grid of `timers`; with adaptive
    // bitrate (whose pacer needs fine timers) only while no media flows.
    let timers = TimerGrid::new(estimator.is_some());
    let runtime = |mux: Option<&Arc<MuxConnection>>| -> Arc<dyn Runtime> {
        let inner: Arc<dyn Runtime> = match mux {
            Some(m) => m.runtime(),
            None => Arc::new(TokioRuntime),
        };
        CoarseTimers::new(inner, timers.clone())
    };
    let handler = Arc::new(Handler {
        events,
        input: input.clone(),
        stats,
        connected: connected_tx,
        mux: mux.clone(),
        timers: timers.clone(),
        mic,
    });
    let Some(pool) = &net.ports else {
        let mut builder = builder(net, with_audio, handler, 0, &link, estimator)?;
        builder = builder.with_runtime(runtime(mux.as_ref()));
        let pc = builder.build().await?;
        return Ok(Peer {
            pc: Arc::new(pc),
            input,
            connected,
            port: None,
            mux,
            timers,
        });
    };
    // One port of the range per connection: a port another program holds fails the build,
    // and the next one is tried.
    let mut taken = BTreeSet::new();
    let (first, last) = pool.range();
    loop {
        let lease = pool
            .lease(&taken)
            .ok_or(SessionError::PortsExhausted { first, last })?;
        let mut attempt = builder(
            net,
            with_audio,
            handler.clone(),
            lease.port(),
            &link,
            estimator,
        )?;
        attempt = attempt.with_runtime(runtime(None));
        let attempt = attempt.build().await;
        match attempt {
            Ok(pc) => {
                return Ok(Peer {
                    pc: Arc::new(pc),
                    input,
                    connected,
                    port: Some(lease),
                    mux: None,
                    timers,
                })
            }
            Err(err) => {
                tracing::debug!("port {} not usable: {err}", lease.port());
                taken.insert(lease.port());
            }
        }
    }
}

/// The socket addresses of the STUN/TURN servers (resolved now), which a `--udp-port`
/// connection reaches from its own socket rather than the shared port.
async fn ice_server_addrs(net: &NetworkConfig) -> HashSet<SocketAddr> {
    let mut out = HashSet::new();
    for url in net.stun.iter().chain(&net.turn) {
        let Some((_, rest)) = url.split_once(':') else {
            continue;
        };
        let hostport = rest.split('?').next().unwrap_or(rest);
        let default_port = if url.starts_with("turns:") || url.starts_with("stuns:") {
            5349
        } else {
            3478
        };
        let target = if hostport.ends_with(']') || !hostport.contains(':') {
            format!("{hostport}:{default_port}")
        } else {
            hostport.to_string()
        };
        match tokio::net::lookup_host(target).await {
            Ok(addrs) => out.extend(addrs),
            Err(err) => tracing::warn!("cannot resolve ICE server {url}: {err}"),
        }
    }
    out
}

/// A connection builder with every setting of `net`, its sockets on `port` (0 = ephemeral).
fn builder(
    net: &NetworkConfig,
    with_audio: bool,
    handler: Arc<Handler>,
    port: u16,
    link: &Arc<LinkStats>,
    estimator: Option<EstimatorBounds>,
) -> Result<PeerConnectionBuilder<String>, SessionError> {
    let mut media = media_engine(with_audio)?;
    let registry = interceptors(&mut media, link, estimator)?;
    let builder = PeerConnectionBuilder::new()
        .with_configuration(ice_config(net))
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine(net))
        .with_handler(handler);
    Ok(if net.tcp_only {
        builder
            .with_udp_addrs(Vec::new())
            .with_tcp_addrs(local_addrs(net, port))
    } else {
        builder.with_udp_addrs(local_addrs(net, port))
    })
}

struct Handler {
    mux: Option<Arc<MuxConnection>>,
    events: mpsc::Sender<SessionEvent>,
    input: InputChannel,
    stats: Arc<SessionStats>,
    connected: tokio::sync::watch::Sender<bool>,
    /// When the connection's timers tick on the coarse grid.
    timers: Arc<TimerGrid>,
    /// Where the browser's microphone packets go (`None`: not received).
    mic: Option<MicTap>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let candidate = IceCandidate {
                    candidate: match &self.mux {
                        Some(mux) => mux.rewrite_candidate(&init.candidate),
                        None => init.candidate,
                    },
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

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(SessionEvent::Candidate(None)).await;
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
        self.timers.set_connected(state == PeerState::Connected);
        let _ = self.connected.send(state == PeerState::Connected);
        let _ = self.events.send(SessionEvent::State(state)).await;
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(tap) = self.mic.clone() else { return };
        if track.kind().await != RtpCodecKind::Audio {
            return;
        }
        let id = self.stats.id;
        tracing::debug!(session = id, "the browser's audio track arrived");
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => tap.push(MicPacket {
                        sequence: packet.header.sequence_number,
                        payload: packet.payload,
                    }),
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
            tracing::debug!(session = id, "the browser's audio track ended");
        });
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
        let timers = self.timers.clone();
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                match event {
                    DataChannelEvent::OnOpen => set_channel(&slot, Some(channel.clone())),
                    DataChannelEvent::OnMessage(msg) => {
                        timers.input_received();
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
    *lock(slot) = channel;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_carry_stun_and_turn_with_credentials() {
        let mut net = NetworkConfig::new(IpAddr::from([127, 0, 0, 1]));
        assert!(net.ice_servers().is_empty());
        net.stun = vec!["stun:s.example.org:3478".into()];
        net.turn = vec!["turn:t.example.org:3478".into()];
        assert_eq!(
            net.ice_servers()[1].username,
            None,
            "no TURN credentials given"
        );
        net.turn_auth = TurnAuth::Static {
            user: "u".into(),
            password: "p".into(),
        };
        let servers = net.ice_servers();
        assert_eq!(servers[0].urls, net.stun);
        assert_eq!(servers[1].urls, net.turn);
        assert_eq!(servers[1].username.as_deref(), Some("u"));
        assert_eq!(servers[1].credential.as_deref(), Some("p"));
        net.turn_auth = TurnAuth::Secret("0123456789".into());
        let turn = &net.ice_servers()[1];
        let user = turn.username.as_deref().unwrap_or_default();
        assert!(user.ends_with(":vnrit"), "{user}");
        assert_ne!(turn.credential.as_deref(), Some("0123456789"));
        assert_eq!(net.ice_transport_policy(), "all");
        net.relay_only = true;
        assert_eq!(net.ice_transport_policy(), "relay");
    }
}
