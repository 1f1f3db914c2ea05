//! The `/ws` signalling socket: one WebSocket = one viewer session.
//!
//! The page sends its offer; the server answers at once and both sides trickle ICE candidates.
//! A negotiation that does not reach "connected" within the configured timeout is closed, and
//! whatever ends first (socket, peer, shutdown) ends the other, releasing the session.

use std::sync::Arc;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::access::{origin_allowed, Role};
use super::signal;
use super::AppState;
use crate::session::SessionStats;

mod mic;
mod viewer;

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
    viewer::run(&state, socket, stats, role, query.as_deref()).await;
    state.unregister(id);
    tracing::info!(session = id, "viewer left");
}
