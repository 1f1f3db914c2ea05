//! The life of one WHEP session after its `201`: the registry of live sessions by resource id,
//! the bounded wait for ICE gathering before answering, and the task that owns the session
//! until DELETE, ICE failure, the connect timeout or shutdown, then releases all it holds
//! (peer connection, `/api/stats` entry, viewer slot).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::GATHER_WAIT;
use crate::lock::lock;
use crate::server::{AppState, SlotGuard};
use crate::session::liveness::{sleep_until, Decision, End, Liveness, LivenessRules};
use crate::session::{PeerState, Session, SessionEvent, SessionStats};

/// Asks a session's task to end; the task answers on the inner sender once it has closed.
pub(super) type StopSender = oneshot::Sender<oneshot::Sender<()>>;

/// The WHEP sessions alive now, by their resource id.
#[derive(Default)]
pub struct WhepSessions {
    map: Mutex<HashMap<String, StopSender>>,
}

impl WhepSessions {
    pub(super) fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, StopSender>> {
        lock(&self.map)
    }

    /// Number of WHEP sessions alive.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no WHEP session is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Waits (at most [`GATHER_WAIT`]) for the end of ICE gathering; returns connection states seen
/// meanwhile, for the session task to act on.
pub(super) async fn wait_for_gathering(
    events: &mut mpsc::Receiver<SessionEvent>,
    id: u64,
) -> Vec<PeerState> {
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + GATHER_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(SessionEvent::Candidate(None))) => break,
            Ok(Some(SessionEvent::State(state))) => states.push(state),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    session = id,
                    "ICE gathering did not finish within {GATHER_WAIT:?}; answering with the candidates found so far"
                );
                break;
            }
        }
    }
    states
}

/// Owns one WHEP session until it ends, then releases everything it holds.
pub(super) struct Reaper {
    pub(super) state: AppState,
    pub(super) sessions: Arc<WhepSessions>,
    pub(super) id: String,
    pub(super) stats: Arc<SessionStats>,
    pub(super) _slot: SlotGuard,
    /// Its place in the presence list (as a WHEP player); leaves when the reaper ends.
    pub(super) _seat: crate::control::Seat,
}

impl Reaper {
    /// Runs until the session ends, then releases it.
    pub(super) async fn run(
        self,
        mut session: Session,
        mut events: mpsc::Receiver<SessionEvent>,
        early: Vec<PeerState>,
        mut stop: oneshot::Receiver<oneshot::Sender<()>>,
    ) {
        let n = self.stats.id;
        let timeout = self.state.connect_timeout;
        let mut shutdown = self.state.shutdown.clone();
        // Connected within the timeout, and back within it after a disconnect.
        let rules = LivenessRules {
            connect_within: timeout,
            reconnect_within: Some(timeout),
        };
        let mut liveness = Liveness::new(rules, Instant::now());
        let mut reply = None;
        let mut pending = early.into_iter();
        loop {
            let event = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                () = sleep_until(liveness.deadline()) => {
                    let Some(end) = liveness.expired(Instant::now()) else { continue };
                    let what = if end == End::NeverConnected { "did not connect" } else { "did not come back" };
                    tracing::warn!(session = n, "WHEP viewer {what} within {timeout:?}; ending its session");
                    break;
                }
                asked = &mut stop => {
                    reply = asked.ok();
                    break;
                }
                event = async {
                    match pending.next() {
                        Some(state) => Some(SessionEvent::State(state)),
                        None => events.recv().await,
                    }
                } => event,
            };
            match event {
                None => break,
                Some(SessionEvent::State(state)) => match liveness.changed(state, Instant::now()) {
                    Decision::End(end) => {
                        if end == End::Failed {
                            tracing::warn!(session = n, "WHEP viewer's connection failed");
                        }
                        break;
                    }
                    // A disconnected player may come back; if it does not in time, it ends.
                    Decision::Carry | Decision::Connected { .. } | Decision::Unreachable => {}
                },
                Some(_) => {}
            }
        }
        session.close().await;
        self.sessions.map().remove(&self.id);
        self.state.unregister(n);
        tracing::info!(session = n, "WHEP viewer left");
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }
}
