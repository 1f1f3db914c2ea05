//! What an operator sees of the WHIP publisher: its state (connecting, streaming, retrying,
//! stopped), the endpoint with its secrets removed, the resource, counts of publishes and
//! failures, the last error and the media sent. The publisher task writes it; the HTTP server
//! reads it for `/api/stats` (`publish`) and `/metrics` (`vnrit_whip_*`).
//!
//! The rules live in [`Tracker`], which takes the time as an argument so tests can drive it;
//! [`PublishStatus`] is the shared handle (a mutex held for a few field writes at a time).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use url::Url;

use crate::lock::lock;
use crate::session::SessionStats;

/// Where the publisher is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishState {
    /// Offering, posting, or waiting for ICE/DTLS (also while a dropped link may come back).
    Connecting,
    /// The peer connection to the SFU is up and media flows.
    Streaming,
    /// The last attempt failed or the session was lost; the next one waits for the backoff.
    Retrying,
    /// Publishing ended (vnrit is shutting down, or the publisher could not start).
    Stopped,
}

impl PublishState {
    /// Every state, in the order `/metrics` lists them.
    pub const ALL: [PublishState; 4] = [
        PublishState::Connecting,
        PublishState::Streaming,
        PublishState::Retrying,
        PublishState::Stopped,
    ];

    /// The lowercase name used in `/api/stats` and as the `state` label in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishState::Connecting => "connecting",
            PublishState::Streaming => "streaming",
            PublishState::Retrying => "retrying",
            PublishState::Stopped => "stopped",
        }
    }
}

/// The publisher as `/api/stats` shows it under `publish`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishReport {
    /// Current state.
    pub state: PublishState,
    /// The `--whip` URL without user name, password, fragment or query values.
    pub endpoint: String,
    /// The session's resource (the answer's `Location`, redacted the same way), once known.
    pub resource: Option<String>,
    /// Publishes the server accepted (`POST` answered 201 or 200).
    pub publishes: u64,
    /// Publish attempts that failed plus sessions that were lost.
    pub failures: u64,
    /// Why the last attempt failed or the last session was lost (`null` if never).
    pub last_error: Option<String>,
    /// Milliseconds spent in the current state.
    pub since_ms: u64,
    /// RTP payload bytes sent to the SFU, over all sessions.
    pub bytes_sent: u64,
    /// Video frames sent to the SFU, over all sessions.
    pub frames_sent: u64,
    /// Opus packets sent to the SFU, over all sessions.
    pub audio_packets_sent: u64,
}

/// `url` as it may be shown to operators: no user name or password, no fragment, and every
/// query value (and bare query word) replaced by `redacted`, since WHIP services often carry a
/// stream key there. Parameter names stay, so the URL is still recognisable.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs without a host, which parse_whip_url refuses.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    if let Some(query) = url.query() {
        let hidden: Vec<String> = query
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((name, _)) => format!("{name}=redacted"),
                None => "redacted".to_string(),
            })
            .collect();
        shown.set_query((!hidden.is_empty()).then(|| hidden.join("&")).as_deref());
    }
    shown.to_string()
}

/// Media counters summed over sessions.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    bytes: u64,
    frames: u64,
    audio_packets: u64,
}

impl Sent {
    fn of(stats: &SessionStats) -> Self {
        Sent {
            bytes: stats.bytes_sent.load(Ordering::Relaxed),
            frames: stats.frames_sent.load(Ordering::Relaxed),
            audio_packets: stats.audio_packets_sent.load(Ordering::Relaxed),
        }
    }

    fn plus(self, other: Sent) -> Sent {
        Sent {
            bytes: self.bytes + other.bytes,
            frames: self.frames + other.frames,
            audio_packets: self.audio_packets + other.audio_packets,
        }
    }
}

/// The publisher's state machine. Every change takes `now`; once stopped, nothing changes.
#[derive(Debug)]
pub struct Tracker {
    state: PublishState,
    since: Instant,
    endpoint: String,
    resource: Option<String>,
    publishes: u64,
    failures: u64,
    last_error: Option<String>,
    /// Sent by sessions that ended.
    ended: Sent,
    /// The session of the current attempt.
    session: Option<Arc<SessionStats>>,
}

impl Tracker {
    /// A publisher for `endpoint` that is about to make its first attempt.
    pub fn new(endpoint: &Url, now: Instant) -> Self {
        Tracker {
            state: PublishState::Connecting,
            since: now,
            endpoint: redact(endpoint),
            resource: None,
            publishes: 0,
            failures: 0,
            last_error: None,
            ended: Sent::default(),
            session: None,
        }
    }

    fn set(&mut self, state: PublishState, now: Instant) {
        if self.state != state {
            self.state = state;
            self.since = now;
        }
    }

    /// Adds what the current session sent to the totals and forgets it.
    fn end_session(&mut self) {
        if let Some(stats) = self.session.take() {
            self.ended = self.ended.plus(Sent::of(&stats));
        }
    }

    /// A new attempt starts, sending through the session counted by `stats`.
    pub fn attempt(&mut self, stats: Arc<SessionStats>, now: Instant) {
        if self.state == PublishState::Stopped {
            return;
        }
        self.end_session();
        self.session = Some(stats);
        self.resource = None;
        self.set(PublishState::Connecting, now);
    }

    /// The server accepted the offer; `resource` is the session's URL, if it sent one.
    pub fn published(&mut self, resource: Option<&Url>) {
        if self.state == PublishState::Stopped {
            return;
        }
        self.publishes += 1;
        self.resource = resource.map(redact);
    }

    /// The peer connection is up.
    pub fn connected(&mut self, now: Instant) {
        if self.state == PublishState::Connecting {
            self.set(PublishState::Streaming, now);
        }
    }

    /// The peer connection dropped and may come back within the grace time.
    pub fn interrupted(&mut self, now: Instant) {
        if self.state == PublishState::Streaming {
            self.set(PublishState::Connecting, now);
        }
    }

    /// The attempt failed or the session was lost for `why`; the next attempt waits.
    pub fn failed(&mut self, why: String, now: Instant) {
        if self.state == PublishState::Stopped {
            return;
        }
        self.end_session();
        self.failures += 1;
        self.last_error = Some(why);
        self.resource = None;
        self.set(PublishState::Retrying, now);
    }

    /// Publishing ended for good; `why` is recorded when it ended by an error.
    pub fn stopped(&mut self, why: Option<String>, now: Instant) {
        if self.state == PublishState::Stopped {
            return;
        }
        self.end_session();
        if why.is_some() {
            self.last_error = why;
        }
        self.resource = None;
        self.set(PublishState::Stopped, now);
    }

    /// The report at time `now`.
    pub fn report(&self, now: Instant) -> PublishReport {
        let sent = self
            .ended
            .plus(self.session.as_deref().map(Sent::of).unwrap_or_default());
        PublishReport {
            state: self.state,
            endpoint: self.endpoint.clone(),
            resource: self.resource.clone(),
            publishes: self.publishes,
            failures: self.failures,
            last_error: self.last_error.clone(),
            since_ms: u64::try_from(now.saturating_duration_since(self.since).as_millis())
                .unwrap_or(u64::MAX),
            bytes_sent: sent.bytes,
            frames_sent: sent.frames,
            audio_packets_sent: sent.audio_packets,
        }
    }
}

/// The shared handle: the publisher task changes it, the HTTP server reads it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PublishStatus(Arc<Mutex<Tracker>>);

impl PublishStatus {
    /// The status of a publisher for `endpoint`, before its first attempt.
    pub fn new(endpoint: &Url) -> Self {
        PublishStatus(Arc::new(Mutex::new(Tracker::new(endpoint, Instant::now()))))
    }

    /// The tracker, also after a panic in another holder (its fields stay consistent).
    pub(super) fn lock(&self) -> MutexGuard<'_, Tracker> {
        lock(&self.0)
    }

    /// The report as of now.
    pub fn report(&self) -> PublishReport {
        self.lock().report(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn redaction_removes_credentials_query_values_and_fragment() {
        let r = |s| redact(&url(s));
        assert_eq!(
            r("https://user:pw@sfu.example.org:8443/whip/endpoint/desk?token=s3cret&room=7#x"),
            "https://sfu.example.org:8443/whip/endpoint/desk?token=redacted&room=redacted"
        );
        assert_eq!(
            r("http://127.0.0.1:7080/whip/endpoint/lab"),
            "http://127.0.0.1:7080/whip/endpoint/lab"
        );
        assert_eq!(
            r("https://sfu.example.org/whip?STREAMKEY123&a="),
            "https://sfu.example.org/whip?redacted&a=redacted"
        );
        assert_eq!(
            r("https://key@sfu.example.org/whip?"),
            "https://sfu.example.org/whip"
        );
        for shown in [
            r("https://user:pw@h/w?token=s3cret"),
            r("https://h/w?s3cret"),
        ] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("pw"),
                "{shown}"
            );
        }
    }

    #[test]
    fn states_follow_a_publish_a_loss_and_a_stop() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut t = Tracker::new(&url("https://u:p@sfu/whip?k=v"), t0);
        let r = t.report(at(5));
        assert_eq!(
            (r.state, r.publishes, r.failures, r.since_ms),
            (PublishState::Connecting, 0, 0, 5)
        );
        assert_eq!(r.endpoint, "https://sfu/whip?k=redacted");
        assert_eq!(r.last_error, None);

        let first = Arc::new(SessionStats::new(0));
        t.attempt(first.clone(), at(10));
        t.published(Some(&url("https://sfu/resource/1?secret=x")));
        t.connected(at(100));
        first.bytes_sent.store(1000, Ordering::Relaxed);
        first.audio_packets_sent.store(50, Ordering::Relaxed);
        let r = t.report(at(300));
        assert_eq!(
            (r.state, r.publishes, r.since_ms),
            (PublishState::Streaming, 1, 200)
        );
        assert_eq!(
            r.resource.as_deref(),
            Some("https://sfu/resource/1?secret=redacted")
        );
        assert_eq!((r.bytes_sent, r.audio_packets_sent), (1000, 50));

        // A second Connected (ICE came back) does not restart the clock.
        t.connected(at(400));
        assert_eq!(t.report(at(500)).since_ms, 400);
        t.interrupted(at(600));
        assert_eq!(t.report(t0).state, PublishState::Connecting);
        t.connected(at(700));
        assert_eq!(t.report(t0).state, PublishState::Streaming);

        t.failed("the SFU closed the connection".into(), at(1000));
        let r = t.report(at(1000));
        assert_eq!(
            (r.state, r.failures, r.since_ms),
            (PublishState::Retrying, 1, 0)
        );
        assert_eq!(r.resource, None);
        assert_eq!(
            r.last_error.as_deref(),
            Some("the SFU closed the connection")
        );

        // The next session adds to the totals of the one that ended.
        let second = Arc::new(SessionStats::new(0));
        t.attempt(second.clone(), at(2000));
        second.bytes_sent.store(10, Ordering::Relaxed);
        assert_eq!(t.report(at(2000)).bytes_sent, 1010);
        t.published(None);
        t.connected(at(2100));
        let r = t.report(at(2100));
        assert_eq!(
            (r.state, r.publishes, r.failures),
            (PublishState::Streaming, 2, 1)
        );
        assert_eq!(
            r.last_error.as_deref(),
            Some("the SFU closed the connection")
        );

        t.stopped(None, at(3000));
        // Nothing moves a stopped publisher.
        t.attempt(Arc::new(SessionStats::new(0)), at(3100));
        t.published(None);
        t.connected(at(3200));
        t.failed("late".into(), at(3300));
        let r = t.report(at(3500));
        assert_eq!(
            (r.state, r.publishes, r.failures, r.since_ms),
            (PublishState::Stopped, 2, 1, 500)
        );
        assert_eq!(r.bytes_sent, 1010);
        assert_eq!(
            r.last_error.as_deref(),
            Some("the SFU closed the connection")
        );
    }

    #[test]
    fn refusals_count_as_failures_and_only_connecting_becomes_streaming() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&url("http://127.0.0.1:7080/whip/endpoint/lab"), t0);
        for i in 1..=3 {
            t.attempt(Arc::new(SessionStats::new(0)), t0);
            t.failed(format!("403 Forbidden #{i}"), t0);
            // A late Connected from a closed session does not count as streaming.
            t.connected(t0);
            assert_eq!(t.report(t0).state, PublishState::Retrying);
        }
        let r = t.report(t0);
        assert_eq!((r.publishes, r.failures), (0, 3));
        assert_eq!(r.last_error.as_deref(), Some("403 Forbidden #3"));
        t.stopped(Some("cannot set up TLS".into()), t0);
        assert_eq!(
            t.report(t0).last_error.as_deref(),
            Some("cannot set up TLS")
        );
        let json = serde_json::to_value(t.report(t0)).unwrap();
        assert_eq!(json["state"], "stopped");
        assert_eq!(json["resource"], serde_json::Value::Null);
    }
}
