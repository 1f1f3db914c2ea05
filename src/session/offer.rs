//! The offering side of a session (vnrit calls out, e.g. a WHIP publish to an SFU): vnrit
//! creates a send-only offer with its H.264 (and Opus) track, the remote end answers.
//!
//! [`Session::offer`] builds the connection exactly as for a browser viewer (same codecs,
//! interceptors, ICE servers and sockets) and returns a [`PendingOffer`]; once the answer
//! arrives, [`PendingOffer::accept_answer`] applies it and starts feeding the shared streams,
//! which makes the remote end one more subscriber of the one encode.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::RTCSessionDescription;

use super::timers::TimerGrid;
use super::{media, peer, PeerState, Session, SessionError, SessionEvent, SessionStats};
use crate::audio::AudioHub;
use crate::broadcast::Hub;
use crate::video::Codec;

/// An offer that waits for its answer: the connection exists, ICE is gathering, no media yet.
pub struct PendingOffer {
    session: Session,
    tracks: media::MediaTracks,
    connected: watch::Receiver<bool>,
    timers: Arc<TimerGrid>,
}

impl Session {
    /// Builds a connection with send-only video (and audio when `with_audio`), creates the
    /// offer and sets it as the local description. Returns the pending session and the offer
    /// SDP as first created (candidates follow as [`SessionEvent::Candidate`] on `events`,
    /// `None` once gathering is complete; [`PendingOffer::local_sdp`] then includes them).
    pub async fn offer(
        with_audio: bool,
        net: &peer::NetworkConfig,
        stats: Arc<SessionStats>,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<(PendingOffer, String), SessionError> {
        // What vnrit publishes (WHIP) stays H.264.
        let peer = peer::build(
            net,
            Codec::H264,
            with_audio,
            None,
            stats.clone(),
            events,
            None,
        )
        .await?;
        stats.set_state(PeerState::Connecting);
        let mut pending = PendingOffer {
            session: Session {
                pc: peer.pc,
                input: peer.input,
                stats,
                tasks: Vec::new(),
                _port: peer.port,
                _mux: peer.mux.clone(),
            },
            tracks: media::MediaTracks::new(Codec::H264, with_audio),
            connected: peer.connected,
            timers: peer.timers,
        };
        let pc = pending.session.pc.clone();
        let offered = async {
            pending.tracks.add_sendonly_to(&pc).await?;
            let offer = pc.create_offer(None).await?;
            pc.set_local_description(offer).await?;
            let sdp = pc
                .local_description()
                .await
                .map(|d| d.sdp)
                .ok_or_else(|| SessionError::BadOffer("no local description".into()))?;
            Ok(match &peer.mux {
                Some(mux) => {
                    // Before the offer leaves: the SFU's first check names this ufrag.
                    for line in sdp.lines() {
                        if let Some(ufrag) = line.strip_prefix("a=ice-ufrag:") {
                            mux.register_ufrag(ufrag.trim());
                        }
                    }
                    mux.rewrite_sdp(&sdp)
                }
                None => sdp,
            })
        }
        .await;
        match offered {
            Ok(sdp) => Ok((pending, sdp)),
            Err(err) => {
                pending.session.close().await;
                Err(err)
            }
        }
    }
}

impl PendingOffer {
    /// The local description now, with every candidate gathered so far.
    pub async fn local_sdp(&self) -> Option<String> {
        let sdp = self.session.pc.local_description().await.map(|d| d.sdp)?;
        Some(match &self.session._mux {
            Some(mux) => mux.rewrite_sdp(&sdp),
            None => sdp,
        })
    }

    /// Applies the remote `answer_sdp` and starts sending the shared video (and audio, when
    /// the answer accepted it). On error the connection is closed.
    pub async fn accept_answer(
        self,
        answer_sdp: String,
        hub: &Hub,
        audio_hub: Option<&AudioHub>,
    ) -> Result<Session, SessionError> {
        let PendingOffer {
            mut session,
            tracks,
            connected,
            timers,
        } = self;
        let applied = async {
            let answer = RTCSessionDescription::answer(answer_sdp)
                .map_err(|e| SessionError::BadAnswer(e.to_string()))?;
            session
                .pc
                .set_remote_description(answer)
                .await
                .map_err(|e| SessionError::BadAnswer(e.to_string()))?;
            tracks
                .start(hub, audio_hub, connected, timers, session.stats.clone())
                .await
                .map_err(|e| match e {
                    SessionError::BadOffer(msg) => SessionError::BadAnswer(msg),
                    other => other,
                })
        }
        .await;
        match applied {
            Ok(tasks) => {
                session.tasks = tasks;
                Ok(session)
            }
            Err(err) => {
                session.close().await;
                Err(err)
            }
        }
    }

    /// Gives up on the offer and closes the connection.
    pub async fn close(mut self) {
        self.session.close().await;
    }
}
