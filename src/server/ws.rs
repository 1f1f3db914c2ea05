//! The `/ws` signalling socket: one WebSocket = one viewer session.
//!
//! The page sends its offer; the server answers at once and both sides trickle ICE candidates.
//! A negotiation that does not reach "connected" within the configured timeout is closed, and
//! whatever ends first (socket, peer, shutdown) ends the other, releasing the session.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::signal::{self, ClientMessage, IceServer, ServerMessage};
use super::AppState;
use crate::session::{PeerState, Session, SessionEvent, SessionStats};

/// Upgrades `/ws` to a signalling WebSocket.
pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(signal::MAX_MESSAGE_BYTES)
        .max_frame_size(signal::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(state, socket))
}

async fn serve(state: AppState, socket: WebSocket) {
    let id = state.next_session_id();
    let stats = Arc::new(SessionStats::new(id));
    state.register(stats.clone());
    tracing::info!(session = id, "viewer connected");
    run(&state, socket, stats).await;
    state.unregister(id);
    tracing::info!(session = id, "viewer left");
}

async fn run(state: &AppState, socket: WebSocket, stats: Arc<SessionStats>) {
    let id = stats.id;
    let (mut tx, mut rx) = socket.split();
    let send = |msg: ServerMessage| Message::Text(msg.to_json().into());

    let hello = ServerMessage::Hello {
        version: signal::PROTOCOL_VERSION,
        ice_servers: if state.net.stun.is_empty() {
            vec![]
        } else {
            vec![IceServer {
                urls: state.net.stun.clone(),
            }]
        },
    };
    if tx.send(send(hello)).await.is_err() {
        return;
    }

    let (events_tx, mut events) = mpsc::channel::<SessionEvent>(64);
    let mut session: Option<Session> = None;
    let mut shutdown = state.shutdown.clone();
    let connect_deadline = tokio::time::sleep(Duration::from_secs(3600 * 24 * 365));
    tokio::pin!(connect_deadline);
    let mut deadline_armed = false;
    let mut rejected = 0u32;

    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
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
                    SessionEvent::State(PeerState::Failed) => {
                        let _ = tx.send(send(ServerMessage::Error {
                            message: "the WebRTC connection failed".into(),
                        })).await;
                        break;
                    }
                    SessionEvent::State(PeerState::Closed) => break,
                    SessionEvent::State(_) => {}
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
                            match Session::answer(sdp, &state.hub, &state.net, stats.clone(), events_tx.clone()).await {
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
                    Ok(ClientMessage::Keyframe) => {
                        state.hub.request_keyframe();
                        None
                    }
                };
                if let Some(reply) = reply {
                    if tx.send(send(reply)).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    if let Some(mut session) = session {
        session.close().await;
    }
    let _ = tx.send(Message::Close(None)).await;
}
