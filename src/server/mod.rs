//! HTTP: the embedded page, the `/ws` signalling socket, `/api/stats` and the file transfer
//! (`/api/files`), all behind token auth, and the WHEP endpoint (`/whep`, bearer-token auth of its own).
//!
//! One route table ([`router`]); auth is a layer over all of it. The server takes a bound
//! listener, so tests can bind port 0.

pub mod access;
pub mod assets;
pub mod auth;
pub mod cookie;
pub mod files;
pub mod metrics;
mod presence;
pub mod signal;
pub mod tls;
pub mod whep;
mod ws;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;

use crate::audio::{AudioHub, AudioStats};
use crate::broadcast::{Hub, StatsSnapshot};
use crate::control::{ControlHub, ControlSettings, Presence};
use crate::input::InputService;
use crate::lock::lock;
use crate::publish::{PublishReport, PublishStatus};
use crate::resize::ResizeService;
use crate::session::{NetworkConfig, PeerState, SessionStats};

/// Access rules.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Required token (`None` = open, `--no-auth`).
    pub token: Option<String>,
    /// Token for view-only access.
    pub view_token: Option<String>,
    /// Origins besides the server's own that may open `/ws`.
    pub allow_origins: Vec<String>,
    /// Most signalling connections at once.
    pub max_viewers: usize,
    /// Mark the cookie `Secure` (served over TLS).
    pub secure_cookie: bool,
    /// Lifetime of the session cookie (zero = [`cookie::DEFAULT_TTL`]).
    pub session_ttl: Duration,
}

/// Shared state of the HTTP server. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The shared video stream.
    pub hub: Hub,
    /// The shared desktop audio (`None` with `--no-audio`).
    pub audio: Option<AudioHub>,
    /// Keyboard, mouse, cursor and clipboard (absent when the X server cannot inject input).
    pub input: Option<Arc<InputService>>,
    /// Who may come in.
    pub access: Arc<Access>,
    /// The tokens and cookie keys made from `access`.
    pub credentials: Arc<auth::Credentials>,
    /// ICE settings for sessions.
    pub net: NetworkConfig,
    /// Time a viewer has from offer to connected.
    pub connect_timeout: Duration,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The WHIP publisher's state (`None` without `--whip`); see [`AppState::with_publish`].
    pub publish: Option<PublishStatus>,
    /// Sets the screen to the pages' size (`None` when resizing is off); see
    /// [`AppState::with_resize`].
    pub resize: Option<Arc<ResizeService>>,
    /// Presence and who has control (see [`crate::control`]); ask
    /// [`ControlHub::may_control`] before acting on the desktop for a viewer.
    pub control: ControlHub,
    /// File transfer (`/api/files`); see [`AppState::with_files`].
    pub files: Arc<files::Files>,
    /// The one microphone viewers can send into the desktop (`vnrit-mic`).
    pub mic: crate::audio::mic::Microphone,
    sessions: Arc<Mutex<BTreeMap<u64, Arc<SessionStats>>>>,
    next_id: Arc<AtomicU64>,
    failures: Arc<auth::FailureLimiter>,
    slots: Arc<std::sync::atomic::AtomicUsize>,
    stop_reason: Arc<std::sync::OnceLock<String>>,
}

impl AppState {
    /// State for a server streaming `hub`.
    pub fn new(
        hub: Hub,
        audio: Option<AudioHub>,
        input: Option<Arc<InputService>>,
        access: Access,
        net: NetworkConfig,
        connect_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let ttl = if access.session_ttl.is_zero() {
            cookie::DEFAULT_TTL
        } else {
            access.session_ttl
        };
        let credentials =
            auth::Credentials::new(access.token.as_deref(), access.view_token.as_deref(), ttl);
        AppState {
            hub,
            audio,
            input,
            credentials: Arc::new(credentials),
            access: Arc::new(access),
            net,
            connect_timeout,
            shutdown,
            publish: None,
            resize: None,
            control: ControlHub::new(ControlSettings::default()),
            files: Arc::default(),
            mic: crate::audio::mic::Microphone::default(),
            sessions: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            failures: Arc::default(),
            slots: Arc::default(),
            stop_reason: Arc::default(),
        }
    }

    /// Shows the WHIP publisher's `status` in `/api/stats` and `/metrics`.
    pub fn with_publish(mut self, status: PublishStatus) -> Self {
        self.publish = Some(status);
        self
    }

    /// Lets pages that may control the desktop set its size through `resize`.
    pub fn with_resize(mut self, resize: Arc<ResizeService>) -> Self {
        self.resize = Some(resize);
        self
    }

    /// Control hand-over with these settings (default: exclusive, 60 s idle, no admin token).
    pub fn with_control(mut self, settings: ControlSettings) -> Self {
        self.control = ControlHub::new(settings);
        self
    }

    /// Uploads and downloads go to and come from the folders of `config`.
    pub fn with_files(mut self, config: files::FilesConfig) -> Self {
        self.files = Arc::new(files::Files::new(config));
        self
    }

    /// Records why the server is stopping (first call wins), before `shutdown` flips; every
    /// page is told in the close frame of its signalling socket (at most 120 bytes are sent).
    pub fn set_stop_reason(&self, reason: impl Into<String>) {
        let _ = self.stop_reason.set(reason.into());
    }

    /// Why the server is stopping, as given to [`AppState::set_stop_reason`].
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.get().map(String::as_str)
    }

    fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<SessionStats>>> {
        lock(&self.sessions)
    }

    fn register(&self, stats: Arc<SessionStats>) {
        self.sessions().insert(stats.id, stats);
    }

    fn unregister(&self, id: u64) {
        self.sessions().remove(&id);
    }

    /// Takes one of the `--max-viewers` slots, or `None` when all are taken. The slot is
    /// given back when the guard drops (the socket ended, or the upgrade never happened).
    fn take_slot(&self) -> Option<SlotGuard> {
        let taken = self.slots.fetch_add(1, Ordering::AcqRel);
        if taken >= self.access.max_viewers {
            self.slots.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SlotGuard(self.slots.clone()))
    }

    /// Number of signalling connections open now.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }
}

/// A taken viewer slot; see [`AppState::take_slot`].
struct SlotGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One viewer in `/api/stats`.
#[derive(Debug, Serialize)]
pub struct SessionReport {
    /// Session number.
    pub id: u64,
    /// Connection state.
    pub state: PeerState,
    /// RTP payload bytes sent.
    pub bytes_sent: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// PLI/FIR received.
    pub keyframe_requests: u64,
    /// Opus packets sent.
    pub audio_packets_sent: u64,
    /// Input events dropped (rate limit or full input queue).
    pub input_dropped: u64,
    /// Input events refused because another viewer had control.
    pub input_refused: u64,
    /// Times the connection went from connected to disconnected.
    pub disconnects: u64,
    /// Round-trip time from RTCP receiver reports, ms (`null` until measured).
    pub rtt_ms: Option<f64>,
    /// Fraction of packets lost (0..1) per the last receiver report (`null` until reported).
    pub loss: Option<f64>,
    /// Bandwidth estimate (over TWCC feedback), kbit/s (`null` without adaptive bitrate).
    pub bwe_kbps: Option<u32>,
    /// Frames not sent to this viewer because its link could not carry them.
    pub frames_dropped: u64,
}

/// The body of `/api/stats`.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    /// Viewers subscribed to the stream.
    pub viewers: usize,
    /// Pipeline counters (flattened).
    #[serde(flatten)]
    pub pipeline: StatsSnapshot,
    /// One entry per signalling connection.
    pub sessions: Vec<SessionReport>,
    /// The audio stage (`null` with `--no-audio`).
    pub audio: Option<AudioStats>,
    /// The WHIP publisher (`null` without `--whip`).
    pub publish: Option<PublishReport>,
    /// Who is connected (names, roles) and who has control.
    pub control: Presence,
}

async fn stats(State(state): State<AppState>) -> impl IntoResponse {
    let sessions = state
        .sessions()
        .values()
        .map(|s| SessionReport {
            id: s.id,
            state: s.state(),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            keyframe_requests: s.keyframe_requests.load(Ordering::Relaxed),
            audio_packets_sent: s.audio_packets_sent.load(Ordering::Relaxed),
            input_dropped: s.input_dropped.load(Ordering::Relaxed),
            input_refused: s.input_refused.load(Ordering::Relaxed),
            disconnects: s.disconnects.load(Ordering::Relaxed),
            rtt_ms: s.link.rtt_ms(),
            loss: s.link.loss(),
            bwe_kbps: s.link.bwe_kbps(),
            frames_dropped: s.link.frames_dropped(),
        })
        .collect();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(StatsReport {
            viewers: state.hub.viewers(),
            pipeline: state.hub.stats(),
            sessions,
            audio: state.audio.as_ref().map(|a| a.stats()),
            publish: state.publish.as_ref().map(PublishStatus::report),
            control: state.control.presence(),
        }),
    )
}

/// The route table, with token auth over every route (WHEP checks its bearer token itself).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics::handler))
        .merge(files::routes())
        .fallback(get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .merge(whep::routes())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Serves until `shutdown` flips to true; over HTTPS when `tls` is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) -> std::io::Result<()> {
    let mut shutdown = state.shutdown.clone();
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|s| *s).await;
                })
                .await
        }
        Some(config) => {
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                let _ = shutdown.wait_for(|s| *s).await;
                stopper.graceful_shutdown(Some(Duration::from_millis(500)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, config)?
                .handle(handle)
                .serve(app)
                .await
        }
    }
}
