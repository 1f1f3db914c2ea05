//! One `/ws` viewer's session: the loop ([`run`]) waits for the next event and hands it to
//! one small method of [`Viewer`] (shutdown, connect timeout, WebRTC event, presence
//! snapshot, message of the input service, WebSocket message), which says whether the loop
//! goes on; then the replies to the page's signalling messages.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::mic::{mic_refusal, switch_mic};
use crate::audio::mic::{MicClaim, MicTap};
use crate::control::Seat;
use crate::input::{wire, InputError, InputSession, OutgoingMessages, WireError};
use crate::resize::policy::{Refusal, Request};
use crate::server::access::Role;
use crate::server::presence;
use crate::server::signal::{self, ClientMessage, ResizeOffer, ServerMessage};
use crate::server::AppState;
use crate::session::liveness::{sleep_until, Decision, End, Liveness, LivenessRules};
use crate::session::{PeerState, Session, SessionEvent, SessionStats};

/// Runs one viewer's session until the socket, the peer or vnrit ends it.
pub(super) async fn run(
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
    let (tx, mut rx) = socket.split();
    let mic_refusal = mic_refusal(state, role).await;
    let (events_tx, mut events) = mpsc::channel::<SessionEvent>(64);
    let mut viewer = Viewer {
        state,
        id,
        role,
        stats,
        input,
        seat,
        tx,
        events_tx,
        session: None,
        // The browser's audio is received only when this viewer may send its microphone.
        mic_tap: mic_refusal.is_none().then(MicTap::default),
        mic_claim: None,
        // A socket must send its offer and connect within the timeout, or it is closed: idle
        // sockets hold a viewer slot. Once connected, ICE decides when the viewer is gone.
        liveness: Liveness::new(
            LivenessRules {
                connect_within: state.connect_timeout,
                reconnect_within: None,
            },
            Instant::now(),
        ),
        rejected: 0,
        offer_refused: false,
        notices: Notices::default(),
        closed: false,
    };
    if viewer.hello(mic_refusal).await.is_continue() {
        let mut shutdown = state.shutdown.clone();
        loop {
            let flow = tokio::select! {
                _ = shutdown.changed() => viewer.on_shutdown().await,
                () = sleep_until(viewer.liveness.deadline()) => viewer.on_deadline().await,
                event = events.recv() => viewer.on_event(event).await,
                update = feed.next() => viewer.on_presence(update).await,
                text = next_outgoing(&mut outgoing, viewer.session.as_ref()) => match text {
                    Some(text) => viewer.on_outgoing(text).await,
                    None => {
                        // The input service stopped: nothing more will come.
                        outgoing = None;
                        Flow::Continue(())
                    }
                },
                msg = rx.next() => viewer.on_socket(msg).await,
            };
            if flow.is_break() {
                break;
            }
        }
    }
    viewer.finish().await;
}

/// Whether the session loop goes on.
type Flow = ControlFlow<()>;

/// One `/ws` viewer: what the session loop acts on, one method per event.
struct Viewer<'a> {
    state: &'a AppState,
    id: u64,
    role: Role,
    stats: Arc<SessionStats>,
    input: Option<InputSession>,
    seat: Seat,
    tx: SplitSink<WebSocket, Message>,
    /// Given to the WebRTC session for its events.
    events_tx: mpsc::Sender<SessionEvent>,
    session: Option<Session>,
    mic_tap: Option<MicTap>,
    mic_claim: Option<MicClaim>,
    /// Whether the peer is still alive.
    liveness: Liveness,
    /// Signalling messages refused so far (for the rate of warnings).
    rejected: u32,
    /// The offer was refused: its reason is the page's one error, and candidates already on
    /// their way are dropped quietly rather than answered with a misleading second one.
    offer_refused: bool,
    notices: Notices,
    /// A close frame was sent already.
    closed: bool,
}

impl Viewer<'_> {
    /// Sends `msg` to the page; breaks the loop when the socket is gone.
    async fn send(&mut self, msg: ServerMessage) -> Flow {
        match self.tx.send(Message::Text(msg.to_json().into())).await {
            Ok(()) => Flow::Continue(()),
            Err(_) => Flow::Break(()),
        }
    }

    /// The server's first message.
    async fn hello(&mut self, mic_refusal: Option<String>) -> Flow {
        let state = self.state;
        let hello = ServerMessage::Hello {
            version: signal::PROTOCOL_VERSION,
            ice_servers: state.net.ice_servers(),
            ice_transport_policy: state.net.ice_transport_policy(),
            control: self.role == Role::Control && state.input.is_some(),
            resize: resize_offer(state, self.role),
            display: state.hub.display().to_string(),
            mic: mic_refusal.is_none(),
            mic_reason: mic_refusal,
        };
        self.send(hello).await
    }

    /// vnrit stops: tells the page why, so it can show it.
    async fn on_shutdown(&mut self) -> Flow {
        // A close reason is at most 123 bytes.
        let reason: String = self
            .state
            .stop_reason()
            .unwrap_or("vnrit stopped")
            .chars()
            .take(120)
            .collect();
        let close = CloseFrame {
            code: close_code::AWAY,
            reason: reason.into(),
        };
        let _ = self.tx.send(Message::Close(Some(close))).await;
        self.closed = true;
        Flow::Break(())
    }

    /// A liveness deadline passed: the viewer did not connect in time.
    async fn on_deadline(&mut self) -> Flow {
        match self.liveness.expired(Instant::now()) {
            None => return Flow::Continue(()),
            Some(End::NeverConnected) => {}
            Some(_) => return Flow::Break(()),
        }
        let timeout = self.state.connect_timeout;
        tracing::warn!(
            session = self.id,
            "viewer did not connect within {timeout:?}; closing"
        );
        let message = format!("the connection was not established within {} s; check that UDP can reach the server (or configure --stun)", timeout.as_secs());
        let _ = self.send(ServerMessage::Error { message }).await;
        Flow::Break(())
    }

    /// An event of the WebRTC session: a local candidate, a state change, an input message.
    async fn on_event(&mut self, event: Option<SessionEvent>) -> Flow {
        match event {
            None => Flow::Break(()),
            Some(SessionEvent::Candidate(candidate)) => {
                self.send(ServerMessage::Candidate { candidate }).await
            }
            Some(SessionEvent::State(state)) => self.on_state(state).await,
            Some(SessionEvent::Input(data)) => match self.handle_input(&data) {
                Some(notice) => self.send(notice).await,
                None => Flow::Continue(()),
            },
        }
    }

    /// The peer connection's state changed.
    async fn on_state(&mut self, state: PeerState) -> Flow {
        match self.liveness.changed(state, Instant::now()) {
            Decision::Carry | Decision::Connected { .. } => Flow::Continue(()),
            Decision::Unreachable => {
                // No ICE answer for 5 s: let go of held keys now rather than when ICE gives up
                // (about 25 s later) and the session is reaped.
                self.release_input("viewer unreachable");
                Flow::Continue(())
            }
            Decision::End(End::Failed) => {
                let message = "the WebRTC connection failed".into();
                let _ = self.send(ServerMessage::Error { message }).await;
                Flow::Break(())
            }
            Decision::End(_) => Flow::Break(()),
        }
    }

    /// Releases every key and button this viewer holds, saying `why` in the log.
    fn release_input(&mut self, why: &str) {
        if let Some(input) = self.input.as_mut() {
            if input.release_all().is_ok() {
                tracing::info!(session = self.id, "{why}; released its keys and buttons");
            }
        }
    }

    /// One input message from the page (data channel or WebSocket); the notice for the page
    /// the first time a kind of refusal happens. Refusals are logged (rate-limited) by the
    /// input session itself.
    fn handle_input(&mut self, data: &[u8]) -> Option<ServerMessage> {
        let input = self.input.as_mut()?;
        let err = input.handle(data).err()?;
        self.notices.refused(err, &self.stats)
    }

    /// A new presence snapshot.
    async fn on_presence(&mut self, update: presence::Update) -> Flow {
        if update.lost_control {
            // Control moved on: whatever this viewer held is let go now.
            self.release_input("lost control");
        }
        if update.has_control {
            self.notices.not_in_control = false;
        }
        self.send(update.message).await
    }

    /// A message of the input service for the page: on the data channel when it is open,
    /// else inside the WebSocket.
    async fn on_outgoing(&mut self, text: Arc<str>) -> Flow {
        let via_channel = match &self.session {
            Some(s) => s.send_input(&text).await,
            None => false,
        };
        if via_channel {
            return Flow::Continue(());
        }
        let data = text.to_string();
        self.send(ServerMessage::Input { data }).await
    }

    /// A WebSocket message from the page.
    async fn on_socket(&mut self, msg: Option<Result<Message, axum::Error>>) -> Flow {
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Flow::Break(()),
            Some(Ok(Message::Binary(_))) => {
                let message = "binary messages are not part of the protocol; send JSON text";
                let _ = self
                    .send(ServerMessage::Error {
                        message: message.into(),
                    })
                    .await;
                return Flow::Continue(());
            }
            Some(Ok(_)) => return Flow::Continue(()),
            Some(Err(err)) => {
                tracing::debug!(session = self.id, "websocket error: {err}");
                return Flow::Break(());
            }
        };
        let reply = match signal::parse(text.as_str()) {
            Ok(msg) => self.reply(msg).await,
            Err(err) => {
                self.rejected += 1;
                let rejected = self.rejected;
                if rejected <= 3 || rejected.is_power_of_two() {
                    tracing::warn!(
                        session = self.id,
                        "refused a signalling message ({rejected} so far): {err}"
                    );
                }
                Some(ServerMessage::Error {
                    message: err.to_string(),
                })
            }
        };
        match reply {
            Some(reply) => self.send(reply).await,
            None => Flow::Continue(()),
        }
    }

    /// Acts on one signalling message; the reply for the page, if any.
    async fn reply(&mut self, msg: ClientMessage) -> Option<ServerMessage> {
        let error = |message: &str| {
            Some(ServerMessage::Error {
                message: message.into(),
            })
        };
        match msg {
            ClientMessage::Offer { sdp } => Some(self.offer(sdp).await),
            ClientMessage::Candidate {
                candidate: Some(candidate),
            } => match &self.session {
                None if self.offer_refused => {
                    tracing::debug!(session = self.id, "ICE candidate after a refused offer");
                    None
                }
                None => error("send the offer before ICE candidates"),
                Some(s) => s
                    .add_candidate(candidate)
                    .await
                    .err()
                    .map(|err| ServerMessage::Error {
                        message: err.to_string(),
                    }),
            },
            ClientMessage::Candidate { candidate: None } => None,
            ClientMessage::Input { data } => match self.input {
                Some(_) => self.handle_input(data.as_bytes()),
                None => error("remote control is not available on this server"),
            },
            ClientMessage::Resize {
                v,
                width,
                height,
                dpr,
            } => {
                let req = Request { width, height, dpr };
                resize_request(self.state, self.id, self.role, v, req, &mut self.notices)
            }
            ClientMessage::Keyframe => {
                self.state.hub.request_keyframe();
                None
            }
            ClientMessage::Name { name } => presence::rename(&self.seat, &name),
            ClientMessage::Control { action, to, admin } => {
                presence::act(self.state, &self.seat, action, to, admin.as_deref())
            }
            ClientMessage::Mic { on } => {
                let tap = self.mic_tap.as_ref();
                Some(switch_mic(self.state, self.id, on, tap, &mut self.mic_claim).await)
            }
        }
    }

    /// The page's offer: answers it with a new WebRTC session (one per socket).
    async fn offer(&mut self, sdp: String) -> ServerMessage {
        if self.session.is_some() {
            return ServerMessage::Error {
                message:
                    "this connection already has a session; open a new WebSocket to renegotiate"
                        .into(),
            };
        }
        let state = self.state;
        let answered = Session::answer(
            sdp,
            &state.hub,
            state.audio.as_ref(),
            &state.net,
            self.stats.clone(),
            self.events_tx.clone(),
            self.mic_tap.clone(),
        )
        .await;
        match answered {
            Ok((session, answer)) => {
                self.session = Some(session);
                self.liveness.restart(Instant::now());
                ServerMessage::Answer { sdp: answer }
            }
            Err(err) => {
                tracing::warn!(session = self.id, "{err}");
                self.offer_refused = true;
                ServerMessage::Error {
                    message: err.to_string(),
                }
            }
        }
    }

    /// Releases every key and button this viewer held, its microphone, its place for
    /// resizing, its seat, then its session, and closes the socket.
    async fn finish(self) {
        let Viewer {
            state,
            id,
            input,
            seat,
            mut tx,
            session,
            mic_claim,
            closed,
            ..
        } = self;
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
