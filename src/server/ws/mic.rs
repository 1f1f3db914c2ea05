//! A `/ws` viewer's microphone: whether it may have one, and turning it on and off.

use crate::audio::mic::{MicClaim, MicTap};
use crate::server::access::Role;
use crate::server::signal::ServerMessage;
use crate::server::AppState;

/// Whether a viewer with `role` may ever use the microphone (a full-token viewer); whether it
/// has control now is asked when it turns the microphone on.
fn controlling(role: Role) -> bool {
    role == Role::Control
}

/// Why this viewer cannot send its microphone (`None`: it can): not controlling, or no
/// PulseAudio on the server.
pub(super) async fn mic_refusal(state: &AppState, role: Role) -> Option<String> {
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
pub(super) async fn switch_mic(
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
