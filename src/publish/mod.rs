//! WHIP publishing (RFC 9725): `--whip URL` pushes the shared video and audio to a WHIP
//! ingest (an SFU such as Janus) so it can fan the desktop out to any number of viewers.
//!
//! The publisher is one more subscriber of the shared encode, exactly like a browser viewer.
//! It owns the HTTP side only; the WebRTC side is [`crate::session::Session::offer`]. Its life:
//! offer → wait (bounded) for ICE gathering → `POST` the offer → `201` + `Location` + answer →
//! stream; candidates found after the POST are trickled with `PATCH`. When ICE fails, the
//! connection stays disconnected, or the SFU closes it, the old resource is deleted and the
//! desktop is published again with backoff (1 s doubling to 30 s). On shutdown the resource is
//! `DELETE`d (bounded). Its state, for `/api/stats` and `/metrics`, is kept in a
//! [`PublishStatus`] the HTTP server reads.

mod http;
mod status;
mod trickle;

use std::time::{Duration, Instant};

use hyper::Method;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::audio::AudioHub;
use crate::broadcast::Hub;
use crate::session::liveness::{sleep_until, Decision, End, Liveness, LivenessRules};
use crate::session::{
    NetworkConfig, PeerState, PendingOffer, Session, SessionError, SessionEvent, SessionStats,
};
pub use http::HttpError;
pub use status::{redact, PublishReport, PublishState, PublishStatus};

/// Longest wait for ICE gathering before the offer is posted with what was gathered.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// Limit on every WHIP HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit on the `DELETE` sent at shutdown (and before re-publishing).
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a disconnected session may take to come back before it is published again.
const DISCONNECT_GRACE: Duration = Duration::from_secs(8);
/// First and largest pause between publish attempts.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Session id used in logs for the WHIP connection (browser sessions count from 1).
const WHIP_SESSION_ID: u64 = 0;

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// The WHIP endpoint URL.
    pub url: Url,
    /// Bearer token, if the endpoint needs one.
    pub token: Option<String>,
    /// Time allowed from the answer to a connected peer.
    pub connect_timeout: Duration,
}

/// Why one publish attempt did not work (each message says what to do).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The request could not be made.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// 401.
    #[error("the WHIP server refused the credentials (401 Unauthorized): check --whip-token")]
    Unauthorized,
    /// 403 (some servers, e.g. simple-whip-server, also use it for a wrong token).
    #[error("the WHIP server refused the publish (403 Forbidden: {0}): check --whip-token, and that the endpoint has no other publisher")]
    Forbidden(String),
    /// 404 (the endpoint as [`redact`] shows it).
    #[error("there is no WHIP endpoint at {0} (404 Not Found): check --whip (the endpoint may need to be created first)")]
    NotFound(String),
    /// Another 4xx.
    #[error("the WHIP server rejected the offer ({status}): {body}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// 5xx.
    #[error("the WHIP server failed ({status}): {body}; it will be retried")]
    ServerError {
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// A status WHIP does not use for a publish.
    #[error(
        "the WHIP server answered {0} instead of 201 Created; check that --whip is a WHIP endpoint"
    )]
    Unexpected(u16),
    /// The local WebRTC side failed, or the answer was unusable.
    #[error("{0}")]
    Session(#[from] SessionError),
}

/// Checks a `--whip` value: an absolute http:// or https:// URL with a host.
pub fn parse_whip_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| {
        format!("`{s}` is not a URL ({e}); use e.g. https://sfu.example.org/whip/endpoint/desk")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{s}` is not an http:// or https:// URL with a host; use e.g. https://sfu.example.org/whip/endpoint/desk"
        ));
    }
    Ok(url)
}

/// Starts the publisher: it publishes, keeps the session alive, re-publishes with backoff, and
/// on `shutdown` deletes the WHIP resource and ends. Returns its task and the status it keeps
/// up to date (for `/api/stats` and `/metrics`).
pub fn spawn(
    config: WhipConfig,
    hub: Hub,
    audio: Option<AudioHub>,
    net: NetworkConfig,
    shutdown: watch::Receiver<bool>,
) -> (JoinHandle<()>, PublishStatus) {
    let status = PublishStatus::new(&config.url);
    let report = status.clone();
    let task = tokio::spawn(async move {
        let why = run(config, hub, audio, net, shutdown, &status).await;
        status.lock().stopped(why, Instant::now());
    });
    (task, report)
}

/// Resolves once shutdown is asked for (or its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// How one publish ended.
enum Outcome {
    /// Shutdown was asked for; the resource is deleted.
    Shutdown,
    /// The session worked for `streamed` and was then lost for `reason`.
    Lost { reason: String, streamed: Duration },
}

/// Publishes until shutdown; returns why it gave up early, if it did.
async fn run(
    config: WhipConfig,
    hub: Hub,
    audio: Option<AudioHub>,
    net: NetworkConfig,
    mut shutdown: watch::Receiver<bool>,
    status: &PublishStatus,
) -> Option<String> {
    let client = match http::Client::new(REQUEST_TIMEOUT) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!("WHIP publishing is off: {err}");
            return Some(err.to_string());
        }
    };
    let shown = redact(&config.url);
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 0u64;
    loop {
        if *shutdown.borrow() {
            return None;
        }
        attempt += 1;
        let publisher = Publisher {
            config: &config,
            shown: &shown,
            client: &client,
            hub: &hub,
            audio: audio.as_ref(),
            net: &net,
            status,
        };
        let why = match publisher.publish_once(&mut shutdown).await {
            Ok(Outcome::Shutdown) => return None,
            Ok(Outcome::Lost { reason, streamed }) => {
                if streamed > BACKOFF_MAX {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(
                    "WHIP session to {shown} lost ({reason}) after {} s; publishing again in {} s",
                    streamed.as_secs(),
                    backoff.as_secs()
                );
                reason
            }
            Err(err) => {
                tracing::warn!(
                    "WHIP publish to {shown} failed (attempt {attempt}): {err}; retrying in {} s",
                    backoff.as_secs()
                );
                err.to_string()
            }
        };
        status.lock().failed(why, Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopping(&mut shutdown) => return None,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Maps the status of the answer to a publish to the error that tells the user what to do.
fn check_status(status: u16, body: &str, url: &Url) -> Result<(), PublishError> {
    let body_start = || body.chars().take(200).collect::<String>();
    match status {
        200 | 201 => Ok(()),
        401 => Err(PublishError::Unauthorized),
        403 => Err(PublishError::Forbidden(body_start())),
        404 => Err(PublishError::NotFound(redact(url))),
        400..=499 => Err(PublishError::Rejected {
            status,
            body: body_start(),
        }),
        500..=599 => Err(PublishError::ServerError {
            status,
            body: body_start(),
        }),
        other => Err(PublishError::Unexpected(other)),
    }
}

/// The session's resource URL: `location` resolved against the endpoint `url`.
fn resource_url(url: &Url, location: Option<&str>) -> Result<Url, String> {
    let location = location.ok_or("the WHIP server sent no Location")?;
    let resource = url
        .join(location.trim())
        .map_err(|e| format!("the WHIP server sent an unusable Location `{location}` ({e})"))?;
    if matches!(resource.scheme(), "http" | "https") {
        Ok(resource)
    } else {
        Err(format!(
            "the WHIP server sent a Location that is not http(s): `{location}`"
        ))
    }
}

/// What one publish attempt needs.
struct Publisher<'a> {
    config: &'a WhipConfig,
    /// The endpoint as logs and stats show it ([`redact`]).
    shown: &'a str,
    client: &'a http::Client,
    hub: &'a Hub,
    audio: Option<&'a AudioHub>,
    net: &'a NetworkConfig,
    status: &'a PublishStatus,
}

impl Publisher<'_> {
    /// Publishes once and runs the session until it is lost or shutdown is asked for.
    async fn publish_once(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Outcome, PublishError> {
        let stats = std::sync::Arc::new(SessionStats::new(WHIP_SESSION_ID));
        self.status.lock().attempt(stats.clone(), Instant::now());
        let (events_tx, mut events) = mpsc::channel(64);
        let (pending, _) =
            Session::offer(self.audio.is_some(), self.net, stats.clone(), events_tx).await?;
        // Post the offer with the candidates gathered so far (all of them, usually).
        let deadline = tokio::time::sleep(GATHER_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(SessionEvent::Candidate(None)) | None => break,
                    Some(_) => {}
                },
                _ = &mut deadline => {
                    tracing::debug!("ICE gathering not complete after {GATHER_TIMEOUT:?}; posting the offer, later candidates are trickled");
                    break;
                }
                _ = stopping(shutdown) => {
                    pending.close().await;
                    return Ok(Outcome::Shutdown);
                }
            }
        }
        let Some(offer) = pending.local_sdp().await else {
            pending.close().await;
            return Err(SessionError::BadOffer("no local description".into()).into());
        };
        tracing::debug!("WHIP offer:\n{offer}");
        let (answer, resource) = match self.post(&offer).await {
            Ok(posted) => posted,
            Err(err) => {
                pending.close().await;
                return Err(err);
            }
        };
        tracing::debug!("WHIP answer:\n{answer}");
        self.status.lock().published(resource.as_ref());
        let mut session = match self.accept(pending, answer).await {
            Ok(session) => session,
            Err(err) => {
                self.delete(resource.as_ref()).await;
                return Err(err);
            }
        };
        tracing::info!(
            "WHIP: published to {} (resource {}); connecting",
            self.shown,
            resource.as_ref().map_or("unknown".into(), redact)
        );
        let mut trickle = trickle::Trickle::new(&offer);
        let outcome = self
            .watch(&mut events, &mut trickle, resource.as_ref(), shutdown)
            .await;
        // Tell the SFU first (it frees the endpoint for the next publish), then hang up.
        self.delete(resource.as_ref()).await;
        session.close().await;
        Ok(outcome)
    }

    /// `POST`s the offer; returns the answer SDP and the resource URL.
    async fn post(&self, offer: &str) -> Result<(String, Option<Url>), PublishError> {
        let url = &self.config.url;
        let response = self
            .client
            .send(
                Method::POST,
                url,
                self.config.token.as_deref(),
                Some(("application/sdp", offer.to_string())),
            )
            .await?;
        check_status(response.status, &response.body, url)?;
        if response.status == 200 {
            tracing::warn!("the WHIP server answered 200 instead of 201 Created; going on");
        }
        let resource = match resource_url(url, response.location.as_deref()) {
            Ok(resource) => Some(resource),
            Err(why) => {
                tracing::warn!("{why}; vnrit cannot DELETE the session at the end");
                None
            }
        };
        if !response
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/sdp"))
        {
            tracing::debug!(
                "WHIP answer has Content-Type {:?}; reading it as SDP",
                response.content_type
            );
        }
        Ok((response.body.clone(), resource))
    }

    /// Applies the answer, with advice when the SFU did not take H.264.
    async fn accept(&self, pending: PendingOffer, answer: String) -> Result<Session, PublishError> {
        pending
            .accept_answer(answer, self.hub, self.audio)
            .await
            .map_err(|err| match err {
                SessionError::BadAnswer(msg) => SessionError::BadAnswer(format!(
                    "{msg} (the SFU must accept H.264; for a Janus VideoRoom create the room with videocodec \"h264\")"
                ))
                .into(),
                other => other.into(),
            })
    }

    /// Runs the published session until it is lost or shutdown is asked for.
    async fn watch(
        &self,
        events: &mut mpsc::Receiver<SessionEvent>,
        trickle: &mut trickle::Trickle,
        resource: Option<&Url>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let started = Instant::now();
        // Connected within the connect timeout, and back within DISCONNECT_GRACE.
        let rules = LivenessRules {
            connect_within: self.config.connect_timeout,
            reconnect_within: Some(DISCONNECT_GRACE),
        };
        let mut liveness = Liveness::new(rules, started);
        let lost = |reason: &str, liveness: &Liveness| Outcome::Lost {
            reason: reason.to_string(),
            streamed: liveness
                .connected_at()
                .map_or(Duration::ZERO, |t| t.elapsed()),
        };
        loop {
            let end = tokio::select! {
                _ = stopping(shutdown) => {
                    tracing::info!("WHIP: ending the session at {}", self.shown);
                    return Outcome::Shutdown;
                }
                () = sleep_until(liveness.deadline()) => liveness.expired(Instant::now()),
                event = events.recv() => match event {
                    None => return lost("the connection ended", &liveness),
                    Some(SessionEvent::State(state)) => self.changed(&mut liveness, state, started),
                    Some(SessionEvent::Candidate(candidate)) => {
                        if let (Some(resource), Some(body)) = (resource, trickle.fragment(candidate.as_ref())) {
                            self.patch(resource, body, trickle).await;
                        }
                        None
                    }
                    Some(_) => None,
                },
            };
            let reason = match end {
                None => continue,
                Some(End::NeverConnected) => format!(
                    "ICE did not connect within {} s",
                    self.config.connect_timeout.as_secs()
                ),
                Some(End::StayedDisconnected) => "the connection stayed disconnected".into(),
                Some(End::Failed) => "ICE or DTLS failed".into(),
                Some(End::Closed) => "the SFU closed the connection".into(),
            };
            return lost(&reason, &liveness);
        }
    }

    /// The connection to the SFU went to `state`; why the session is over, if it is.
    fn changed(&self, liveness: &mut Liveness, state: PeerState, started: Instant) -> Option<End> {
        match liveness.changed(state, Instant::now()) {
            Decision::Connected { first } => {
                self.status.lock().connected(Instant::now());
                if first {
                    tracing::info!(
                        "WHIP: streaming to {} (connected in {} ms)",
                        self.shown,
                        started.elapsed().as_millis()
                    );
                }
                None
            }
            Decision::Unreachable => {
                tracing::info!(
                    "WHIP: connection to the SFU interrupted; waiting up to {} s",
                    DISCONNECT_GRACE.as_secs()
                );
                self.status.lock().interrupted(Instant::now());
                None
            }
            Decision::Carry => None,
            Decision::End(end) => Some(end),
        }
    }

    /// Trickles one candidate fragment; turns trickling off when the server does not do it.
    async fn patch(&self, resource: &Url, body: String, trickle: &mut trickle::Trickle) {
        let sent = self
            .client
            .send(
                Method::PATCH,
                resource,
                self.config.token.as_deref(),
                Some(("application/trickle-ice-sdpfrag", body)),
            )
            .await;
        match sent {
            Ok(r) if (200..300).contains(&r.status) => {}
            Ok(r) => {
                tracing::debug!(
                    "WHIP server answered {} to a trickled candidate; not trickling",
                    r.status
                );
                trickle.disable();
            }
            Err(err) => tracing::debug!("trickling a candidate failed: {err}"),
        }
    }

    /// `DELETE`s the resource, bounded; failures are logged (the SFU may be gone already).
    async fn delete(&self, resource: Option<&Url>) {
        let Some(resource) = resource else { return };
        let shown = redact(resource);
        let sent = tokio::time::timeout(
            DELETE_TIMEOUT,
            self.client
                .send(Method::DELETE, resource, self.config.token.as_deref(), None),
        )
        .await;
        match sent {
            Ok(Ok(r)) if (200..300).contains(&r.status) => {
                tracing::info!("WHIP: deleted {shown}");
            }
            Ok(Ok(r)) => tracing::info!("WHIP: DELETE {shown} answered {}", r.status),
            Ok(Err(err)) => tracing::info!("WHIP: could not DELETE {shown}: {err}"),
            Err(_) => tracing::info!(
                "WHIP: DELETE {shown} got no answer within {} s",
                DELETE_TIMEOUT.as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Url {
        Url::parse("http://127.0.0.1:7080/whip/endpoint/lab").unwrap()
    }

    #[test]
    fn location_is_resolved_against_the_endpoint() {
        let url = endpoint();
        let r = |l| resource_url(&url, l).map(|u| u.to_string());
        assert_eq!(
            r(Some("/whip/resource/lab")).unwrap(),
            "http://127.0.0.1:7080/whip/resource/lab"
        );
        assert_eq!(
            r(Some("resource/abc")).unwrap(),
            "http://127.0.0.1:7080/whip/endpoint/resource/abc"
        );
        assert_eq!(
            r(Some("https://other.example/res/1")).unwrap(),
            "https://other.example/res/1"
        );
        assert!(r(None).unwrap_err().contains("no Location"));
        assert!(r(Some("javascript:alert(1)")).is_err());
    }

    #[test]
    fn statuses_give_one_clear_message_each() {
        let url = endpoint();
        assert!(check_status(201, "", &url).is_ok());
        assert!(check_status(200, "", &url).is_ok());
        let msg = |s| {
            check_status(s, "Endpoint ID already in use", &url)
                .unwrap_err()
                .to_string()
        };
        assert!(msg(401).contains("check --whip-token"), "{}", msg(401));
        assert!(msg(403).contains("check --whip-token") && msg(403).contains("already in use"));
        assert!(msg(404).contains("check --whip") && msg(404).contains("/whip/endpoint/lab"));
        assert!(msg(415).contains("415") && msg(415).contains("already in use"));
        assert!(msg(503).contains("503") && msg(503).contains("retried"));
        assert!(msg(302).contains("instead of 201"));
    }

    #[test]
    fn whip_urls_are_checked() {
        assert!(parse_whip_url("https://sfu.example.org/whip/endpoint/desk").is_ok());
        for bad in [
            "ftp://x/whip",
            "not a url",
            "/whip/endpoint/desk",
            "http://",
        ] {
            assert!(parse_whip_url(bad).is_err(), "{bad}");
        }
    }
}
