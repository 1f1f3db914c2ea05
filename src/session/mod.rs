//! One viewer: a WebRTC peer connection (webrtc-rs) fed from the shared video stream.
//!
//! This is the only module that touches WebRTC. The signalling layer gives it the browser's
//! offer and ICE candidates as plain strings and gets back an answer, local candidates and
//! state changes as [`SessionEvent`]s. Each session owns its own video track (one track per
//! connection: webrtc-rs delivers a shared track to one peer only), its own packetizer, and a
//! [`Subscription`] to the shared stream; closing the session releases all of them.
//! [`Session::offer`] is the other direction (vnrit offers, e.g. a WHIP publish to an SFU).

pub mod codecs;
pub(crate) mod feedback;
pub mod ice;
mod keyframe;
pub mod liveness;
mod media;
mod offer;
pub mod opus_rtp;
mod peer;
pub mod ports;
pub mod rtp;
mod timers;
pub mod udp_mux;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};

use crate::abr::LinkStats;
use crate::audio::mic::MicTap;
use crate::audio::AudioHub;
use crate::broadcast::Hub;
use crate::lock::lock;
use crate::video::Codec;
pub use codecs::NoCodec;
pub use offer::PendingOffer;
pub use peer::{IceServer, NetworkConfig};

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
    /// The offer has no video codec this server sends (or no video at all).
    #[error("{0}")]
    NoCodec(#[from] NoCodec),
    /// The remote answer to our offer could not be used.
    #[error("the answer was not accepted: {0}")]
    BadAnswer(String),
    /// An ICE candidate from the browser was refused.
    #[error("the ICE candidate was not accepted: {0}")]
    BadCandidate(String),
    /// The WebRTC stack failed.
    #[error("WebRTC error: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// Every port of `--udp-ports` is taken by other viewers (or other programs).
    #[error("all ports of --udp-ports {first}-{last} are in use; widen the range or wait for a viewer to leave")]
    PortsExhausted {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
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
#[repr(u8)]
pub enum PeerState {
    /// Created, no offer yet.
    New = 0,
    /// Negotiating / ICE checks.
    Connecting = 1,
    /// Media flowing.
    Connected = 2,
    /// Connectivity lost (may come back).
    Disconnected = 3,
    /// ICE or DTLS failed.
    Failed = 4,
    /// Closed.
    Closed = 5,
}

impl PeerState {
    /// Every state, in the order of their values.
    pub const ALL: [PeerState; 6] = [
        PeerState::New,
        PeerState::Connecting,
        PeerState::Connected,
        PeerState::Disconnected,
        PeerState::Failed,
        PeerState::Closed,
    ];

    /// The state stored as `state as u8` (the explicit discriminants above).
    fn from_u8(v: u8) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| *s as u8 == v)
            .unwrap_or(PeerState::New)
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
/// Unsent bytes on the `input` channel beyond which [`Session::input_ready`] waits.
pub const INPUT_BACKLOG: usize = 1 << 20;

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
    /// Input events of this viewer dropped (over the rate limit, or the input queue full).
    pub input_dropped: AtomicU64,
    /// Input events refused because another viewer had control.
    pub input_refused: AtomicU64,
    /// Times the connection went from connected to disconnected (ICE heard nothing from the
    /// viewer for 5 s). A healthy viewer stays at 0; a count that keeps growing while the
    /// picture plays is a path problem worth a look.
    pub disconnects: AtomicU64,
    /// The viewer's link: bandwidth estimate, RTT, loss, frames dropped for it.
    pub link: Arc<LinkStats>,
    /// The video codec it gets: 0 = none yet, else [`Codec::index`] + 1.
    codec: AtomicU8,
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
            input_dropped: AtomicU64::new(0),
            input_refused: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            link: Arc::default(),
            codec: AtomicU8::new(0),
        }
    }

    /// The video codec this viewer gets (`None` before its offer was answered).
    pub fn codec(&self) -> Option<Codec> {
        let v = usize::from(self.codec.load(Ordering::Relaxed));
        v.checked_sub(1).and_then(|i| Codec::ALL.get(i).copied())
    }

    fn set_codec(&self, codec: Codec) {
        // At most two codecs: the index fits a byte.
        self.codec.store(codec.index() as u8 + 1, Ordering::Relaxed);
    }

    /// Current connection state.
    pub fn state(&self) -> PeerState {
        PeerState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Records a new connection state, counting each fall from connected to disconnected.
    fn set_state(&self, state: PeerState) {
        let old = PeerState::from_u8(self.state.swap(state as u8, Ordering::Relaxed));
        if old == PeerState::Connected && state == PeerState::Disconnected {
            self.disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One viewer's peer connection and media tasks.
pub struct Session {
    pc: Arc<dyn PeerConnection>,
    input: InputChannel,
    stats: Arc<SessionStats>,
    tasks: media::MediaTasks,
    /// The `--udp-ports` port this session holds (released when the session is dropped).
    _port: Option<ports::PortLease>,
    /// This session's routes on the `--udp-port` shared port (removed when dropped).
    _mux: Option<Arc<udp_mux::MuxConnection>>,
}

impl Session {
    /// Answers the browser's `offer_sdp`: picks the video codec from it (H.264 where offered,
    /// else VP8; [`SessionError::NoCodec`] names both sides' codecs when there is none in
    /// common), builds the peer connection with its own track of that codec, joins that
    /// codec's shared stream, and returns the answer SDP at once (candidates trickle after
    /// through `events`; ICE gathering is never waited for). With `mic`, audio the browser
    /// sends (its microphone) is accepted and pushed into the tap.
    pub async fn answer(
        offer_sdp: String,
        hub: &Hub,
        audio_hub: Option<&AudioHub>,
        net: &NetworkConfig,
        stats: Arc<SessionStats>,
        events: mpsc::Sender<SessionEvent>,
        mic: Option<MicTap>,
    ) -> Result<(Session, String), SessionError> {
        let codec = codecs::choose(&offer_sdp)?;
        let offer = RTCSessionDescription::offer(offer_sdp)
            .map_err(|e| SessionError::BadOffer(e.to_string()))?;
        let estimator = hub
            .adaptive()
            .map(|a| a.estimator_bounds(hub.max_bitrate_kbps()));
        let peer = peer::build(
            net,
            codec,
            audio_hub.is_some(),
            estimator,
            stats.clone(),
            events,
            mic,
        )
        .await?;
        stats.set_state(PeerState::Connecting);
        let mut session = Session {
            pc: peer.pc.clone(),
            input: peer.input,
            stats: stats.clone(),
            tasks: Vec::new(),
            _port: peer.port,
            _mux: peer.mux.clone(),
        };
        if let Err(err) = session.pc.set_remote_description(offer).await {
            session.close().await;
            return Err(SessionError::BadOffer(err.to_string()));
        }
        let pc = peer.pc;
        let negotiated = async {
            let mut tracks = media::MediaTracks::new(codec, audio_hub.is_some());
            tracks.add_to(&pc).await?;
            let answer = pc.create_answer(None).await?;
            pc.set_local_description(answer).await?;
            let mut sdp = pc
                .local_description()
                .await
                .map(|d| d.sdp)
                .ok_or_else(|| SessionError::BadOffer("no local description".into()))?;
            if let Some(mux) = &peer.mux {
                // Before the answer leaves: the browser's first check names this ufrag.
                for line in sdp.lines() {
                    if let Some(ufrag) = line.strip_prefix("a=ice-ufrag:") {
                        mux.register_ufrag(ufrag.trim());
                    }
                }
                sdp = mux.rewrite_sdp(&sdp);
            }
            let tasks = tracks
                .start(hub, audio_hub, peer.connected, peer.timers, stats.clone())
                .await?;
            Ok::<_, SessionError>((tasks, sdp))
        }
        .await;
        match negotiated {
            Ok((tasks, sdp)) => {
                session.tasks = tasks;
                Ok((session, sdp))
            }
            Err(err) => {
                session.close().await;
                Err(err)
            }
        }
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
        let channel = lock(&self.input).clone();
        match channel {
            Some(channel) => channel.send_text(text).await.is_ok(),
            None => false,
        }
    }

    /// Waits until the `input` channel has room for more: its unsent bytes under
    /// [`INPUT_BACKLOG`], so a large clipboard stream paces itself to the link instead of
    /// queueing megabytes. Returns at once without an open channel. Cancel-safe.
    pub async fn input_ready(&self) {
        loop {
            let channel = lock(&self.input).clone();
            let Some(channel) = channel else { return };
            match channel.outstanding_bytes().await {
                Ok(n) if n >= INPUT_BACKLOG => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                _ => return,
            }
        }
    }

    /// The local description as it stands now, with every local ICE candidate gathered so far
    /// (for answers sent in one piece, such as WHEP's, after [`SessionEvent::Candidate`]`(None)`).
    pub async fn local_description(&self) -> Option<String> {
        self.pc.local_description().await.map(|d| d.sdp)
    }

    /// This session's counters.
    pub fn stats(&self) -> &Arc<SessionStats> {
        &self.stats
    }

    /// Closes the peer connection and stops its tasks (leaving the shared stream).
    pub async fn close(&mut self) {
        for task in self.tasks.drain(..) {
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
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_fall_from_connected_to_disconnected() {
        let stats = SessionStats::new(1);
        // Disconnected before ever connecting (a failed negotiation) is not a fall.
        stats.set_state(PeerState::Connecting);
        stats.set_state(PeerState::Disconnected);
        assert_eq!(stats.disconnects.load(Ordering::Relaxed), 0);
        for _ in 0..2 {
            stats.set_state(PeerState::Connected);
            stats.set_state(PeerState::Disconnected);
        }
        // Repeating a state is not a new fall.
        stats.set_state(PeerState::Disconnected);
        stats.set_state(PeerState::Failed);
        assert_eq!(stats.disconnects.load(Ordering::Relaxed), 2);
        assert_eq!(stats.state(), PeerState::Failed);
    }

    #[test]
    fn every_state_survives_the_atomic_round_trip() {
        let stats = SessionStats::new(1);
        for state in PeerState::ALL {
            stats.set_state(state);
            assert_eq!(stats.state(), state);
        }
    }
}
