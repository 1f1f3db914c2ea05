//! The `/ws` signalling socket: one WebSocket = one viewer session.
//!
//! The page sends its offer; the server answers at once and both sides trickle ICE candidates.
//! A negotiation that does not reach "connected" within the configured timeout is closed, and
//! whatever ends first (socket, peer, shutdown) ends the other, releasing the session.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::access::{origin_allowed, Role};
use super::presence;
use super::signal::{self, ClientMessage, ResizeOffer, ServerMessage};
use super::AppState;
use crate::audio::mic::{MicClaim, MicTap};
use crate::input::{wire, InputError, OutgoingMessages, WireError};
use crate::resize::policy::{Refusal, Request};
use crate::session::{PeerState, Session, SessionEvent, SessionStats};

/// Upgrades `/ws` to a signalling WebSocket, after the origin and viewer-limit checks.
pub async fn upgrade(
    State(state): State<AppState>,
    role: Option<Extension<Role>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let role = role.map(|Extension(r)| r).unwrap_or(Role::View);
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if !origin_allowed(
        header(header::ORIGIN),
        header(header::HOST),
        &state.access.allow_origins,
    ) {
        tracing::warn!(
            "refused a signalling connection from origin {:?}",
            header(header::ORIGIN)
        );
        return (
            StatusCode::FORBIDDEN,
            "403 Forbidden: this page's origin may not connect; start vnrit with --allow-origin ORIGIN to allow it\n",
        )
            .into_response();
    }
    let Some(slot) = state.take_slot() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "10")],
            format!(
                "503 Service Unavailable: too many viewers (the limit is {}); try again later\n",
                state.access.max_viewers
            ),
        )
            .into_response();
    };
    ws.max_message_size(signal::MAX_MESSAGE_BYTES)
        .max_frame_size(signal::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            serve(state, socket, role, query).await;
            drop(slot);
        })
}

async fn serve(state: AppState, socket: WebSocket, role: Role, query: Option<String>) {
    let id = state.next_session_id();
    let stats = Arc::new(SessionStats::new(id));
    state.register(stats.clone());
    tracing::info!(session = id, "viewer connected");
    run(&state, socket, stats, role, query.as_deref()).await;
    state.unregister(id);
    tracing::info!(session = id, "viewer left");
}

async fn run(
    state: &AppState,
    socket: WebSocket,
    stats: Arc<SessionStats>,
    role: Role,
    query: Option<&str>,
) {
    let id = stats.id;
    let mut input = state
        .input
        .as_ref()
        .map(|service| service.session(role == Role::Control));
    // Seated after the input session exists (its gate asks the seat) and dropped after it.
    let seat = presence::join(state, id, role, query, input.as_mut());
    let mut feed = presence::Feed::new(state, id);
    let mut outgoing = input.as_ref().map(|i| i.outgoing());
    let (mut tx, mut rx) = socket.split();
    let send = |msg: ServerMessage| Message::Text(msg.to_json().into());

    let mic_refusal = mic_refusal(state, role).await;
    // The browser's audio is received only when this viewer may send its microphone.
    let mic_tap = mic_refusal.is_none().then(MicTap::default);
    let mut mic_claim: Option<MicClaim> = None;
    let hello = ServerMessage::Hello {
        version: signal::PROTOCOL_VERSION,
        ice_servers: state.net.ice_servers(),
        ice_transport_policy: state.net.ice_transport_policy(),
        control: role == Role::Control && state.input.is_some(),
        resize: resize_offer(state, role),
        display: state.hub.display().to_string(),
        mic: mic_refusal.is_none(),
        mic_reason: mic_refusal,
    };
    if tx.send(send(hello)).await.is_err() {
        return;
    }

    let (events_tx, mut events) = mpsc::channel::<SessionEvent>(64);
    let mut session: Option<Session> = None;
    let mut shutdown = state.shutdown.clone();
    // A socket must send its offer and connect within the timeout, or it is closed: idle
    // sockets hold a viewer slot.
    let connect_deadline = tokio::time::sleep(state.connect_timeout);
    tokio::pin!(connect_deadline);
    let mut deadline_armed = true;
    let mut rejected = 0u32;
    let mut notices = Notices::default();
    let mut closed = false;

    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                // Tell the page why, so it can show it (a close reason is at most 123 bytes).
                let reason: String = state.stop_reason().unwrap_or("vnrit stopped").chars().take(120).collect();
                let _ = tx.send(Message::Close(Some(CloseFrame { code: close_code::AWAY, reason: reason.into() }))).await;
                closed = true;
                break;
            }
            () = &mut connect_deadline, if deadline_armed => {
                tracing::warn!(session = id, "viewer did not connect within {:?}; closing", state.connect_timeout);
                let _ = tx.send(send(ServerMessage::Error {
                    message: format!("the connection was not established within {} s; check that UDP can reach the server (or configure --stun)", state.connect_timeout.as_secs()),
                })).await;
                break;
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    SessionEvent::Candidate(candidate) => {
                        if tx.send(send(ServerMessage::Candidate { candidate })).await.is_err() {
                            break;
                        }
                    }
                    SessionEvent::State(PeerState::Connected) => deadline_armed = false,
                    SessionEvent::State(PeerState::Disconnected) => {
                        // No ICE answer for 5 s: let go of held keys now rather than when ICE
                        // gives up (about 25 s later) and the session is reaped.
                        if let Some(input) = input.as_mut() {
                            if input.release_all().is_ok() {
                                tracing::info!(session = id, "viewer unreachable; released its keys and buttons");
                            }
                        }
                    }
                    SessionEvent::State(PeerState::Failed) => {
                        let _ = tx.send(send(ServerMessage::Error {
                            message: "the WebRTC connection failed".into(),
                        })).await;
                        break;
                    }
                    SessionEvent::State(PeerState::Closed) => break,
                    SessionEvent::State(_) => {}
                    SessionEvent::Input(data) => {
                        let Some(input) = input.as_mut() else { continue };
                        // Refusals are logged (rate-limited) by the input session itself.
                        let notice = input.handle(&data).err().and_then(|err| notices.refused(err, &stats));
                        if let Some(notice) = notice {
                            if tx.send(send(notice)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            update = feed.next() => {
                if update.lost_control {
                    // Control moved on: whatever this viewer held is let go now.
                    if let Some(input) = input.as_mut() {
                        if input.release_all().is_ok() {
                            tracing::info!(session = id, "lost control; released its keys and buttons");
                        }
                    }
                }
                if update.has_control {
                    notices.not_in_control = false;
                }
                if tx.send(send(update.message)).await.is_err() {
                    break;
                }
            }
            text = next_outgoing(&mut outgoing, session.as_ref()) => {
                let Some(text) = text else {
                    // The input service stopped: nothing more will come.
                    outgoing = None;
                    continue;
                };
                let via_channel = match &session {
                    Some(s) => s.send_input(&text).await,
                    None => false,
                };
                if !via_channel && tx.send(send(ServerMessage::Input { data: text.to_string() })).await.is_err() {
                    break;
                }
            }
            msg = rx.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(Message::Binary(_))) => {
                        let _ = tx.send(send(ServerMessage::Error { message: "binary messages are not part of the protocol; send JSON text".into() })).await;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => {
                        tracing::debug!(session = id, "websocket error: {err}");
                        break;
                    }
                };
                let reply = match signal::parse(text.as_str()) {
                    Err(err) => {
                        rejected += 1;
                        if rejected <= 3 || rejected.is_power_of_two() {
                            tracing::warn!(session = id, "refused a signalling message ({rejected} so far): {err}");
                        }
                        Some(ServerMessage::Error { message: err.to_string() })
                    }
                    Ok(ClientMessage::Offer { sdp }) => {
                        if session.is_some() {
                            Some(ServerMessage::Error { message: "this connection already has a session; open a new WebSocket to renegotiate".into() })
                        } else {
                            match Session::answer(sdp, &state.hub, state.audio.as_ref(), &state.net, stats.clone(), events_tx.clone(), mic_tap.clone()).await {
                                Ok((s, answer)) => {
                                    session = Some(s);
                                    connect_deadline.as_mut().reset(tokio::time::Instant::now() + state.connect_timeout);
                                    deadline_armed = true;
                                    Some(ServerMessage::Answer { sdp: answer })
                                }
                                Err(err) => {
                                    tracing::warn!(session = id, "{err}");
                                    Some(ServerMessage::Error { message: err.to_string() })
                                }
                            }
                        }
                    }
                    Ok(ClientMessage::Candidate { candidate: Some(candidate) }) => match &session {
                        None => Some(ServerMessage::Error { message: "send the offer before ICE candidates".into() }),
                        Some(s) => s.add_candidate(candidate).await.err().map(|err| ServerMessage::Error { message: err.to_string() }),
                    },
                    Ok(ClientMessage::Candidate { candidate: None }) => None,
                    Ok(ClientMessage::Input { data }) => match input.as_mut() {
                        Some(input) => input.handle(data.as_bytes()).err().and_then(|err| notices.refused(err, &stats)),
                        None => Some(ServerMessage::Error { message: "remote control is not available on this server".into() }),
                    },
                    Ok(ClientMessage::Resize { v, width, height, dpr }) => {
                        let req = Request { width, height, dpr };
                        resize_request(state, id, role, v, req, &mut notices)
                    }
                    Ok(ClientMessage::Keyframe) => {
                        state.hub.request_keyframe();
                        None
                    }
                    Ok(ClientMessage::Name { name }) => presence::rename(&seat, &name),
                    Ok(ClientMessage::Control { action, to, admin }) => {
                        presence::act(state, &seat, action, to, admin.as_deref())
                    }
                    Ok(ClientMessage::Mic { on }) => Some(switch_mic(state, id, on, mic_tap.as_ref(), &mut mic_claim).await),
                };
                if let Some(reply) = reply {
                    if tx.send(send(reply)).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    // Releases every key and button this viewer held, its microphone, then leaves the
    // control hub.
    drop(input);
    drop(mic_claim);
    if let Some(resize) = &state.resize {
        resize.viewer_left(id);
    }
    drop(seat);
    if let Some(mut session) = session {
        session.close().await;
    }
    if !closed {
        let _ = tx.send(Message::Close(None)).await;
    }
}

/// What the hello offers about resizing: present when the server resizes and this viewer may
/// ask (today: it has the full token; the service decides again on every request).
fn resize_offer(state: &AppState, role: Role) -> Option<ResizeOffer> {
    let resize = state.resize.as_ref().filter(|_| role == Role::Control)?;
    let (max_width, max_height) = resize.max();
    Some(ResizeOffer {
        version: signal::RESIZE_VERSION,
        max_width,
        max_height,
    })
}

/// Hands a page's size to the resize service; the reply for the page if it was refused.
fn resize_request(
    state: &AppState,
    id: u64,
    role: Role,
    version: u32,
    req: Request,
    notices: &mut Notices,
) -> Option<ServerMessage> {
    let result = match (&state.resize, version) {
        (_, v) if v != signal::RESIZE_VERSION => Err(format!(
            "resize message version {v} is not supported (this server takes version {})",
            signal::RESIZE_VERSION
        )),
        (None, _) => Err(Refusal::Off.to_string()),
        // Only whoever controls the desktop sets its size; a full-token page without control
        // asks too (it cannot know), and is ignored quietly: it asks again when given control.
        (Some(_), _) if role == Role::Control && !state.control.may_control(id) => {
            tracing::debug!(
                session = id,
                "resize request from a viewer without control ignored"
            );
            return None;
        }
        (Some(resize), _) => resize
            .request(id, role == Role::Control, req)
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(target) => {
            tracing::debug!(session = id, ?target, "viewer asked for its size");
            None
        }
        Err(message) => {
            let first = !std::mem::replace(&mut notices.resize_refused, true);
            if first {
                tracing::info!(session = id, "refused a resize request: {message}");
            }
            first.then_some(ServerMessage::Error { message })
        }
    }
}

/// Whether a viewer with `role` may ever use the microphone (a full-token viewer); whether it
/// has control now is asked when it turns the microphone on.
fn controlling(role: Role) -> bool {
    role == Role::Control
}

/// Why this viewer cannot send its microphone (`None`: it can): not controlling, or no
/// PulseAudio on the server.
async fn mic_refusal(state: &AppState, role: Role) -> Option<String> {
    if !controlling(role) {
        return Some("view-only viewers cannot use the microphone".into());
    }
    let mic = state.mic.clone();
    // A server address that does not answer must not hold up the hello.
    let probe = tokio::task::spawn_blocking(move || mic.probe());
    match tokio::time::timeout(std::time::Duration::from_secs(1), probe).await {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(_))) | Err(_) => Some("no PulseAudio on the server for a microphone".into()),
        Ok(Err(err)) => Some(err.to_string()),
    }
}

/// Turns the viewer's microphone on (claiming the server's one microphone) or off; the answer
/// for the page says what it is now.
async fn switch_mic(
    state: &AppState,
    id: u64,
    on: bool,
    tap: Option<&MicTap>,
    claim: &mut Option<MicClaim>,
) -> ServerMessage {
    let refused = |reason: String| ServerMessage::Mic {
        on: false,
        reason: Some(reason),
    };
    if !on {
        if claim.take().is_some() {
            tracing::info!(session = id, "microphone off");
        }
        return ServerMessage::Mic {
            on: false,
            reason: None,
        };
    }
    if claim.is_some() {
        return ServerMessage::Mic {
            on: true,
            reason: None,
        };
    }
    // With control hand-over (--control exclusive) only the viewer in control speaks into
    // the desktop, as only it types.
    if !state.control.may_control(id) {
        return refused(
            "only the viewer in control can use the microphone; ask for control".into(),
        );
    }
    let Some(tap) = tap.cloned() else {
        return refused("this viewer cannot use the microphone".into());
    };
    let mic = state.mic.clone();
    match tokio::task::spawn_blocking(move || mic.claim(id, &tap)).await {
        Ok(Ok(c)) => {
            tracing::info!(session = id, "microphone on");
            *claim = Some(c);
            ServerMessage::Mic {
                on: true,
                reason: None,
            }
        }
        Ok(Err(err)) => refused(err.to_string()),
        Err(err) => refused(err.to_string()),
    }
}

/// Input refusals the page has been told about: each kind once per session, since a
/// view-only page's every mouse move, or every event of a flood, would repeat it.
#[derive(Debug, Default)]
struct Notices {
    view_only: bool,
    rate_limited: bool,
    /// Resize refusals (view-only, resizing off, a display that refuses), told once.
    resize_refused: bool,
    /// Told that another viewer has control (again after it had control itself).
    not_in_control: bool,
}

impl Notices {
    /// Counts a dropped event in `stats`, and returns the notice for the page the first time a
    /// kind of refusal happens.
    fn refused(&mut self, err: InputError, stats: &SessionStats) -> Option<ServerMessage> {
        // The user just tried to copy something: always told, in the input stream (the page
        // shows it with the clipboard).
        let clipboard = match &err {
            InputError::Clipboard(message) => Some(message.clone()),
            InputError::Wire(e @ WireError::ClipboardTooLarge(_)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(message) = clipboard {
            return Some(ServerMessage::Input {
                data: wire::encode_error(&message),
            });
        }
        let first = match err {
            InputError::RateLimited | InputError::Busy => {
                stats.input_dropped.fetch_add(1, Ordering::Relaxed);
                !std::mem::replace(&mut self.rate_limited, true)
            }
            InputError::ViewOnly => !std::mem::replace(&mut self.view_only, true),
            InputError::NotInControl(_) => {
                stats.input_refused.fetch_add(1, Ordering::Relaxed);
                !std::mem::replace(&mut self.not_in_control, true)
            }
            _ => false,
        };
        first.then(|| ServerMessage::Error {
            message: err.to_string(),
        })
    }
}

/// The next message for the page from the input service, once the data channel has room
/// for it (a large clipboard paces itself to the link); pending forever without a service.
async fn next_outgoing(
    outgoing: &mut Option<OutgoingMessages>,
    session: Option<&Session>,
) -> Option<Arc<str>> {
    let Some(o) = outgoing else {
        return std::future::pending().await;
    };
    if let Some(s) = session {
        s.input_ready().await;
    }
    o.recv().await
}
