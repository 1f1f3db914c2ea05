//! WHEP playback (draft-ietf-wish-whep): any WHEP player can watch the desktop, view-only.
//!
//! `POST /whep` takes the player's SDP offer (`Content-Type: application/sdp`) and answers
//! `201 Created` with the SDP answer, already carrying the server's ICE candidates (gathering
//! is awaited for at most [`GATHER_WAIT`]), a `Location: /whep/<id>` for the session (an
//! unguessable id) and the ICE servers as `Link` headers. `DELETE /whep/<id>` ends the session.
//! Trickle ICE (`PATCH`) is not offered: it gets `405` as the draft allows, and the server finds
//! the player's address from its connectivity checks. `OPTIONS` answers CORS preflights for the
//! server's own origin and `--allow-origin` ones.
//!
//! Auth is `Authorization: Bearer <token>` with the same tokens as the page (the full or the
//! view token; WHEP never gets control), and the same per-address failure limit. WHEP sessions
//! take `--max-viewers` slots, show in `/api/stats` and `/metrics`, and are reaped when ICE
//! fails, when they do not connect within the connect timeout, or at shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use tokio::sync::{mpsc, oneshot};

use super::access::origin_allowed;
use super::auth::{bearer, token_matches};
use super::AppState;
use crate::session::{IceServer, Session, SessionError, SessionEvent, SessionStats};
pub use life::WhepSessions;
use life::{wait_for_gathering, Reaper};

mod life;

/// Largest SDP offer accepted, in bytes.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// Longest wait for ICE gathering before answering with the candidates found so far.
pub const GATHER_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for a session to close on `DELETE`.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The media type of offers and answers.
const SDP: &str = "application/sdp";

/// Why a WHEP request was refused; each maps to the status code the draft asks for.
#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    /// No token, or a wrong one.
    #[error("401 Unauthorized: send the vnrit token (full or view token) as `Authorization: Bearer <token>`")]
    Unauthorized,
    /// This address sent too many wrong tokens.
    #[error("429 Too Many Requests: too many wrong tokens from this address; wait a minute")]
    TooManyFailures,
    /// A browser page from an origin that may not use this server.
    #[error("403 Forbidden: this page's origin may not use WHEP here; start vnrit with --allow-origin ORIGIN to allow it")]
    Origin,
    /// The body is not `application/sdp`.
    #[error("415 Unsupported Media Type: send the SDP offer with `Content-Type: application/sdp`")]
    MediaType,
    /// The offer is larger than [`MAX_OFFER_BYTES`].
    #[error("413 Payload Too Large: an SDP offer may be at most {MAX_OFFER_BYTES} bytes")]
    TooLarge,
    /// The offer is not usable SDP.
    #[error("400 Bad Request: {0}")]
    BadOffer(String),
    /// Every viewer slot is taken.
    #[error("503 Service Unavailable: too many viewers (the limit is {0}); try again later")]
    Full(usize),
    /// No session has this id (never existed, ended, or already deleted).
    #[error("404 Not Found: no WHEP session has this id; it may have ended already")]
    NotFound,
    /// Trickle ICE and ICE restarts are not supported.
    #[error("405 Method Not Allowed: this WHEP server does not take trickle ICE or ICE restarts; its answer already carries all candidates")]
    NoTrickle,
    /// The WebRTC stack failed for a reason that is not the client's.
    #[error("500 Internal Server Error: {0}; see the server log")]
    Internal(String),
}

impl WhepError {
    fn status(&self) -> StatusCode {
        match self {
            WhepError::Unauthorized => StatusCode::UNAUTHORIZED,
            WhepError::TooManyFailures => StatusCode::TOO_MANY_REQUESTS,
            WhepError::Origin => StatusCode::FORBIDDEN,
            WhepError::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WhepError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WhepError::BadOffer(_) => StatusCode::BAD_REQUEST,
            WhepError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            WhepError::NotFound => StatusCode::NOT_FOUND,
            WhepError::NoTrickle => StatusCode::METHOD_NOT_ALLOWED,
            WhepError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WhepError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            [(header::CACHE_CONTROL, "no-store")],
            format!("{self}\n"),
        )
            .into_response();
        let h = response.headers_mut();
        match self {
            WhepError::Unauthorized => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"vnrit\""),
                );
            }
            WhepError::TooManyFailures => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            WhepError::MediaType => {
                h.insert(ACCEPT_POST, HeaderValue::from_static(SDP));
            }
            WhepError::Full(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            WhepError::NoTrickle => {
                h.insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
            }
            _ => {}
        }
        response
    }
}

const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");

/// The WHEP routes, to merge into the server's router outside the cookie/query-token layer
/// (WHEP does its own bearer-token auth).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whep", post(create).options(preflight_endpoint))
        .route(
            "/whep/{id}",
            axum::routing::delete(remove)
                .patch(trickle)
                .options(preflight_resource),
        )
        .layer(Extension(Arc::new(WhepSessions::default())))
}

/// The client's address, when the server was started with connect info.
fn client_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Bearer-token check with the server's tokens and per-address failure limit.
fn authorize(state: &AppState, headers: &HeaderMap, ip: Option<IpAddr>) -> Result<(), WhepError> {
    let Some(expected) = state.access.token.as_deref() else {
        return Ok(());
    };
    let now = Instant::now();
    if ip.is_some_and(|ip| state.failures.blocked(ip, now)) {
        return Err(WhepError::TooManyFailures);
    }
    let given = bearer(headers).unwrap_or_default();
    // Both comparisons always run, so timing does not tell which token matched.
    let full = token_matches(expected, given);
    let view = state
        .access
        .view_token
        .as_deref()
        .is_some_and(|v| token_matches(v, given));
    if full || view {
        return Ok(());
    }
    if let Some(ip) = ip {
        state.failures.failed(ip, now);
    }
    Err(WhepError::Unauthorized)
}

/// The request's `Origin` when it may use this server (`Ok(None)` without one), else 403.
fn cors_origin(state: &AppState, headers: &HeaderMap) -> Result<Option<HeaderValue>, WhepError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    if origin_allowed(
        text(header::ORIGIN),
        text(header::HOST),
        &state.access.allow_origins,
    ) {
        Ok(Some(origin.clone()))
    } else {
        tracing::warn!(
            "refused a WHEP request from origin {:?}",
            text(header::ORIGIN)
        );
        Err(WhepError::Origin)
    }
}

fn add_cors(response: &mut Response, origin: Option<HeaderValue>) {
    let Some(origin) = origin else { return };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, Accept-Post"),
    );
}

/// Runs `inner`, turning its error into the matching response, with CORS headers for an
/// allowed origin (so a player on another page can read errors too).
async fn with_cors<F>(state: &AppState, headers: &HeaderMap, inner: F) -> Response
where
    F: std::future::Future<Output = Result<Response, WhepError>>,
{
    let origin = match cors_origin(state, headers) {
        Ok(origin) => origin,
        Err(err) => return err.into_response(),
    };
    let mut response = inner.await.unwrap_or_else(IntoResponse::into_response);
    add_cors(&mut response, origin);
    response
}

fn preflight(state: &AppState, headers: &HeaderMap, methods: &'static str) -> Response {
    let origin = match cors_origin(state, headers) {
        Ok(origin) => origin,
        Err(err) => return err.into_response(),
    };
    let mut response = (
        StatusCode::NO_CONTENT,
        [
            (ACCEPT_POST, SDP),
            (header::ACCESS_CONTROL_ALLOW_METHODS, methods),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response();
    add_cors(&mut response, origin);
    response
}

async fn preflight_endpoint(State(state): State<AppState>, headers: HeaderMap) -> Response {
    preflight(&state, &headers, "POST, OPTIONS")
}

async fn preflight_resource(State(state): State<AppState>, headers: HeaderMap) -> Response {
    preflight(&state, &headers, "DELETE, OPTIONS")
}

/// `Link` header values for `servers` (draft-ietf-wish-whep / RFC 9725 section 4.6).
pub fn link_headers(servers: &[IceServer]) -> Vec<String> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = Vec::new();
    for server in servers {
        for url in &server.urls {
            let mut link = format!("<{}>; rel=\"ice-server\"", url.replace(['<', '>'], ""));
            if let (Some(user), Some(pass)) = (&server.username, &server.credential) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote(user),
                    quote(pass)
                ));
            }
            out.push(link);
        }
    }
    out
}

/// A fresh, unguessable resource id (128 random bits, hex).
fn resource_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the `Content-Type` is `application/sdp` (parameters allowed).
fn is_sdp(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SDP))
}

/// Cheap checks before the WebRTC stack sees the offer, for clear messages.
fn check_offer(body: &[u8]) -> Result<String, WhepError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| WhepError::BadOffer("the SDP offer is not UTF-8 text".into()))?;
    if !text.trim_start().starts_with("v=0") {
        return Err(WhepError::BadOffer(
            "the body is not an SDP offer (it must start with `v=0`)".into(),
        ));
    }
    if !text.contains("\nm=video") && !text.contains("\nm=audio") {
        return Err(WhepError::BadOffer(
            "the SDP offer has no audio or video section (m=video / m=audio)".into(),
        ));
    }
    Ok(text.to_string())
}

async fn create(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<WhepSessions>>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    with_cors(&state, &headers, create_inner(&state, sessions, request)).await
}

async fn create_inner(
    state: &AppState,
    sessions: Arc<WhepSessions>,
    request: Request,
) -> Result<Response, WhepError> {
    authorize(state, request.headers(), client_ip(&request))?;
    if !is_sdp(request.headers()) {
        return Err(WhepError::MediaType);
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_OFFER_BYTES)
        .await
        .map_err(|_| WhepError::TooLarge)?;
    let offer = check_offer(&body)?;
    let slot = state
        .take_slot()
        .ok_or(WhepError::Full(state.access.max_viewers))?;

    let stats = Arc::new(SessionStats::new(state.next_session_id()));
    let (events_tx, mut events) = mpsc::channel::<SessionEvent>(64);
    state.register(stats.clone());
    let answered = Session::answer(
        offer,
        &state.hub,
        state.audio.as_ref(),
        &state.net,
        stats.clone(),
        events_tx,
        None,
    )
    .await;
    let mut session = match answered {
        Ok((session, _)) => session,
        Err(err) => {
            state.unregister(stats.id);
            tracing::warn!(session = stats.id, "WHEP offer refused: {err}");
            return Err(match err {
                SessionError::WebRtc(e) => WhepError::Internal(e.to_string()),
                other => WhepError::BadOffer(other.to_string()),
            });
        }
    };
    let early = wait_for_gathering(&mut events, stats.id).await;
    let Some(answer) = session.local_description().await else {
        session.close().await;
        state.unregister(stats.id);
        return Err(WhepError::Internal(
            "no local description after the answer".into(),
        ));
    };

    let id = resource_id();
    let (stop_tx, stop_rx) = oneshot::channel();
    sessions.map().insert(id.clone(), stop_tx);
    tracing::info!(session = stats.id, "WHEP viewer connected");
    let name = format!("WHEP player {}", stats.id);
    let seat = state
        .control
        .join(stats.id, Some(&name), crate::control::Role::Whep, None);
    let task = Reaper {
        _seat: seat,
        state: state.clone(),
        sessions,
        id: id.clone(),
        stats,
        _slot: slot,
    };
    tokio::spawn(task.run(session, events, early, stop_rx));

    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_string()),
            (header::LOCATION, format!("/whep/{id}")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        answer,
    )
        .into_response();
    for link in link_headers(&state.net.ice_servers()) {
        match HeaderValue::from_str(&link) {
            Ok(v) => {
                response.headers_mut().append(header::LINK, v);
            }
            Err(_) => tracing::warn!("an ICE server URL cannot go in a Link header: {link:?}"),
        }
    }
    Ok(response)
}

async fn remove(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<WhepSessions>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (headers, ip) = (request.headers().clone(), client_ip(&request));
    drop(request);
    with_cors(&state, &headers, async {
        authorize(&state, &headers, ip)?;
        let stop = sessions.map().remove(&id).ok_or(WhepError::NotFound)?;
        let (done_tx, done) = oneshot::channel();
        if stop.send(done_tx).is_ok() {
            // The session is closed (and its viewer slot free) when this returns.
            let _ = tokio::time::timeout(CLOSE_WAIT, done).await;
        }
        Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response())
    })
    .await
}

async fn trickle(
    State(state): State<AppState>,
    Path(_id): Path<String>,
    request: Request,
) -> Response {
    let (headers, ip) = (request.headers().clone(), client_ip(&request));
    drop(request);
    with_cors(&state, &headers, async {
        authorize(&state, &headers, ip)?;
        Err::<Response, _>(WhepError::NoTrickle)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_turn_credentials_quoted() {
        let servers = vec![
            IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                ..Default::default()
            },
            IceServer {
                urls: vec!["turn:t.example.org?transport=udp".into()],
                username: Some("u\"1".into()),
                credential: Some("p\\w".into()),
            },
        ];
        assert_eq!(
            link_headers(&servers),
            vec![
                "<stun:stun.example.org:3478>; rel=\"ice-server\"".to_string(),
                "<turn:t.example.org?transport=udp>; rel=\"ice-server\"; username=\"u\\\"1\"; credential=\"p\\\\w\"; credential-type=\"password\"".to_string(),
            ]
        );
    }

    #[test]
    fn bearer_and_content_type_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        assert!(!is_sdp(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/SDP; charset=utf-8"),
        );
        assert!(is_sdp(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_sdp(&h));
    }

    #[test]
    fn offers_are_checked_for_shape() {
        assert!(matches!(check_offer(b"hello"), Err(WhepError::BadOffer(_))));
        assert!(matches!(
            check_offer(&[0xff, 0xfe]),
            Err(WhepError::BadOffer(_))
        ));
        assert!(matches!(
            check_offer(b"v=0\r\ns=-\r\n"),
            Err(WhepError::BadOffer(_))
        ));
        assert!(check_offer(b"v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n").is_ok());
        assert_eq!(resource_id().len(), 32);
        assert_ne!(resource_id(), resource_id());
    }
}
