//! Whether a peer is still alive: the one rule for browser viewers (`/ws`), WHEP players and
//! the WHIP publisher, free of I/O and clocks so it is tested directly.
//!
//! The owner of a session tells [`Liveness`] the peer's state changes with the current time
//! and gets back what to do; between changes it sleeps until [`Liveness::deadline`] and then
//! asks [`Liveness::expired`]. The rule:
//!
//! - a peer must be connected within `connect_within` of the start (or of the answer that
//!   restarted it); once connected, that deadline is gone for good;
//! - a peer that goes disconnected is [`Decision::Unreachable`] at once (let go of what it
//!   holds); with `reconnect_within` it must be connected again within that time, without it
//!   the session waits for ICE to fail;
//! - ICE or DTLS failure and closing end the session.

use std::time::{Duration, Instant};

use super::PeerState;

/// How long a peer may take; each user of [`Liveness`] has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessRules {
    /// From the start (or a restart) to the first "connected".
    pub connect_within: Duration,
    /// From a "disconnected" to "connected" again; `None`: until ICE itself gives up.
    pub reconnect_within: Option<Duration>,
}

/// What the owner of a session does after a state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changes.
    Carry,
    /// The peer is connected (`first`: for the first time in this session).
    Connected {
        /// No "connected" was seen before in this session.
        first: bool,
    },
    /// The peer stopped answering; it may come back. Release what it holds now.
    Unreachable,
    /// The session is over.
    End(End),
}

/// Why a session is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Not connected within `connect_within`.
    NeverConnected,
    /// Disconnected and not back within `reconnect_within`.
    StayedDisconnected,
    /// ICE or DTLS failed.
    Failed,
    /// The connection was closed.
    Closed,
}

/// One session's liveness.
#[derive(Debug, Clone)]
pub struct Liveness {
    rules: LivenessRules,
    /// Until the first "connected": when it must have come.
    connect_by: Option<Instant>,
    /// While disconnected (with `reconnect_within`): when it must be back.
    back_by: Option<Instant>,
    /// The first "connected".
    connected_at: Option<Instant>,
}

impl Liveness {
    /// A session started at `now`.
    pub fn new(rules: LivenessRules, now: Instant) -> Self {
        Liveness {
            rules,
            connect_by: Some(now + rules.connect_within),
            back_by: None,
            connected_at: None,
        }
    }

    /// Gives a peer not yet connected `connect_within` from `now` (a new offer was answered).
    pub fn restart(&mut self, now: Instant) {
        if self.connected_at.is_none() {
            self.connect_by = Some(now + self.rules.connect_within);
        }
    }

    /// The peer's connection went to `state` at `now`.
    pub fn changed(&mut self, state: PeerState, now: Instant) -> Decision {
        match state {
            PeerState::Connected => {
                self.connect_by = None;
                self.back_by = None;
                let first = self.connected_at.is_none();
                self.connected_at.get_or_insert(now);
                Decision::Connected { first }
            }
            PeerState::Disconnected => {
                self.back_by = self.rules.reconnect_within.map(|d| now + d);
                Decision::Unreachable
            }
            PeerState::Failed => Decision::End(End::Failed),
            PeerState::Closed => Decision::End(End::Closed),
            PeerState::New | PeerState::Connecting => Decision::Carry,
        }
    }

    /// When [`Self::expired`] should be asked next (`None`: only a state change can end it).
    pub fn deadline(&self) -> Option<Instant> {
        match (self.connect_by, self.back_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the session is over at `now` for want of a state change.
    pub fn expired(&self, now: Instant) -> Option<End> {
        if self.connect_by.is_some_and(|t| now >= t) {
            Some(End::NeverConnected)
        } else if self.back_by.is_some_and(|t| now >= t) {
            Some(End::StayedDisconnected)
        } else {
            None
        }
    }

    /// When the peer was first connected, if it was.
    pub fn connected_at(&self) -> Option<Instant> {
        self.connected_at
    }
}

/// Sleeps until `deadline` ([`Liveness::deadline`]); forever without one.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// `/ws`: 30 s to connect (from the answer), no grace of its own after a disconnect.
    fn browser() -> LivenessRules {
        LivenessRules {
            connect_within: 30 * S,
            reconnect_within: None,
        }
    }

    /// WHEP: the connect timeout, and the same time to come back.
    fn whep() -> LivenessRules {
        LivenessRules {
            connect_within: 30 * S,
            reconnect_within: Some(30 * S),
        }
    }

    /// WHIP publisher: the connect timeout, and 8 s to come back.
    fn publisher() -> LivenessRules {
        LivenessRules {
            connect_within: 30 * S,
            reconnect_within: Some(8 * S),
        }
    }

    #[test]
    fn a_peer_that_never_connects_ends_at_the_connect_deadline() {
        let t0 = Instant::now();
        for rules in [browser(), whep(), publisher()] {
            let mut l = Liveness::new(rules, t0);
            assert_eq!(l.changed(PeerState::Connecting, t0 + S), Decision::Carry);
            assert_eq!(l.deadline(), Some(t0 + 30 * S));
            assert_eq!(l.expired(t0 + 29 * S), None);
            assert_eq!(l.expired(t0 + 30 * S), Some(End::NeverConnected));
        }
    }

    #[test]
    fn browser_answer_restarts_the_connect_deadline() {
        let t0 = Instant::now();
        let mut l = Liveness::new(browser(), t0);
        l.restart(t0 + 20 * S);
        assert_eq!(l.deadline(), Some(t0 + 50 * S));
        assert_eq!(l.expired(t0 + 40 * S), None);
        assert_eq!(l.expired(t0 + 50 * S), Some(End::NeverConnected));
    }

    #[test]
    fn connecting_clears_the_connect_deadline_for_good() {
        let t0 = Instant::now();
        for rules in [browser(), whep(), publisher()] {
            let mut l = Liveness::new(rules, t0);
            assert_eq!(
                l.changed(PeerState::Connected, t0 + S),
                Decision::Connected { first: true }
            );
            assert_eq!(l.deadline(), None);
            assert_eq!(l.expired(t0 + 3600 * S), None);
            l.restart(t0 + 2 * S);
            assert_eq!(
                l.deadline(),
                None,
                "a restart after connecting changes nothing"
            );
            assert_eq!(l.connected_at(), Some(t0 + S));
        }
    }

    #[test]
    fn browser_disconnect_releases_and_waits_for_ice() {
        let t0 = Instant::now();
        let mut l = Liveness::new(browser(), t0);
        l.changed(PeerState::Connected, t0);
        assert_eq!(
            l.changed(PeerState::Disconnected, t0 + 5 * S),
            Decision::Unreachable
        );
        assert_eq!(l.deadline(), None, "no deadline of its own: ICE decides");
        assert_eq!(l.expired(t0 + 3600 * S), None);
        assert_eq!(
            l.changed(PeerState::Failed, t0 + 30 * S),
            Decision::End(End::Failed)
        );
    }

    #[test]
    fn whep_player_ends_when_it_stays_disconnected() {
        let t0 = Instant::now();
        let mut l = Liveness::new(whep(), t0);
        l.changed(PeerState::Connected, t0 + S);
        assert_eq!(
            l.changed(PeerState::Disconnected, t0 + 10 * S),
            Decision::Unreachable
        );
        assert_eq!(l.deadline(), Some(t0 + 40 * S));
        assert_eq!(l.expired(t0 + 39 * S), None);
        assert_eq!(l.expired(t0 + 40 * S), Some(End::StayedDisconnected));
    }

    #[test]
    fn whep_player_that_comes_back_stays() {
        let t0 = Instant::now();
        let mut l = Liveness::new(whep(), t0);
        l.changed(PeerState::Connected, t0);
        l.changed(PeerState::Disconnected, t0 + 10 * S);
        assert_eq!(
            l.changed(PeerState::Connected, t0 + 20 * S),
            Decision::Connected { first: false }
        );
        assert_eq!(l.deadline(), None);
        assert_eq!(l.expired(t0 + 3600 * S), None);
        assert_eq!(l.connected_at(), Some(t0), "the first connect is kept");
    }

    #[test]
    fn publisher_gets_eight_seconds_to_come_back() {
        let t0 = Instant::now();
        let mut l = Liveness::new(publisher(), t0);
        l.changed(PeerState::Connected, t0 + 2 * S);
        l.changed(PeerState::Disconnected, t0 + 100 * S);
        assert_eq!(l.deadline(), Some(t0 + 108 * S));
        // Another "disconnected" restarts the grace from then.
        l.changed(PeerState::Disconnected, t0 + 104 * S);
        assert_eq!(l.expired(t0 + 108 * S), None);
        assert_eq!(l.expired(t0 + 112 * S), Some(End::StayedDisconnected));
    }

    #[test]
    fn a_disconnect_before_connecting_keeps_the_connect_deadline() {
        let t0 = Instant::now();
        let mut l = Liveness::new(publisher(), t0);
        l.changed(PeerState::Disconnected, t0 + 25 * S);
        assert_eq!(l.deadline(), Some(t0 + 30 * S), "the earlier deadline wins");
        assert_eq!(l.expired(t0 + 30 * S), Some(End::NeverConnected));
    }

    #[test]
    fn failure_and_close_end_at_once() {
        let t0 = Instant::now();
        for rules in [browser(), whep(), publisher()] {
            let mut l = Liveness::new(rules, t0);
            assert_eq!(l.changed(PeerState::Failed, t0), Decision::End(End::Failed));
            let mut l = Liveness::new(rules, t0);
            l.changed(PeerState::Connected, t0);
            assert_eq!(l.changed(PeerState::Closed, t0), Decision::End(End::Closed));
        }
    }
}
