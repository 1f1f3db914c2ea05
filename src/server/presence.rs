//! The signalling socket's side of presence and control: joining with the name and reconnect
//! key the page put in the `/ws` query, carrying out `name` and `control` messages, and
//! following the [`ControlHub`]'s presence snapshots for one viewer (sending them to its page
//! and noticing when it lost control, so its held keys and buttons are released).

use std::sync::Arc;

use tokio::sync::watch;

use super::access::Role;
use super::auth;
use super::signal::{ControlAction, ServerMessage, CONTROL_VERSION};
use super::AppState;
use crate::control::{self, Action, Presence, Refusal, Seat};
use crate::input::InputSession;

/// Longest reconnect key accepted in the `/ws` query.
const MAX_KEY_CHARS: usize = 64;

/// The `name` and `key` parameters of the `/ws` query (either may be absent or invalid, then
/// `None`: the viewer is "viewer N" and keeps no control across a reload).
pub(super) fn join_params(query: Option<&str>) -> (Option<String>, Option<String>) {
    let (mut name, mut key) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "name" => name = control::machine::clean_name(&v).ok(),
            "key"
                if (8..=MAX_KEY_CHARS).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                key = Some(v.into_owned());
            }
            _ => {}
        }
    }
    (name, key)
}

/// Seats a `/ws` viewer and, if it has an input session, makes every control event of that
/// session ask the control hub first.
pub(super) fn join(
    state: &AppState,
    id: u64,
    role: Role,
    query: Option<&str>,
    input: Option<&mut InputSession>,
) -> Seat {
    let (name, key) = join_params(query);
    let role = match role {
        Role::Control => control::Role::Control,
        Role::View => control::Role::ViewOnly,
    };
    let seat = state.control.join(id, name.as_deref(), role, key);
    if let Some(input) = input {
        let hub = state.control.clone();
        input.set_gate(Box::new(move || hub.input(id).map_err(|e| e.to_string())));
    }
    seat
}

/// Carries out a `name` message; the reply, if any, is an error for the page.
pub(super) fn rename(seat: &Seat, name: &str) -> Option<ServerMessage> {
    seat.rename(name).err().map(refusal)
}

/// Carries out a `control` message; the reply, if any, is an error for the page.
pub(super) fn act(
    state: &AppState,
    seat: &Seat,
    action: ControlAction,
    to: Option<u64>,
    admin: Option<&str>,
) -> Option<ServerMessage> {
    let action = match action {
        ControlAction::Request => Action::Request,
        ControlAction::Release => Action::Release,
        ControlAction::Give => match to {
            Some(to) => Action::Give(to),
            None => return Some(error("a give needs \"to\": the viewer's number")),
        },
        ControlAction::Take => {
            let admin = match (admin, state.control.settings().admin_token.as_deref()) {
                (None, _) => false,
                (Some(given), Some(expected)) if auth::token_matches(expected, given) => true,
                (Some(_), _) => {
                    tracing::warn!(
                        session = seat.id(),
                        "refused a take with a wrong operator token"
                    );
                    return Some(error(
                        "wrong operator token (or the server has no --admin-token)",
                    ));
                }
            };
            Action::Take { admin }
        }
    };
    seat.act(action).err().map(refusal)
}

fn refusal(r: Refusal) -> ServerMessage {
    error(&r.to_string())
}

fn error(message: &str) -> ServerMessage {
    ServerMessage::Error {
        message: message.to_string(),
    }
}

/// One viewer's view of the presence snapshots.
#[derive(Debug)]
pub(super) struct Feed {
    id: u64,
    rx: Option<watch::Receiver<Arc<Presence>>>,
    had_control: bool,
}

/// What a new presence snapshot means for one viewer.
#[derive(Debug)]
pub(super) struct Update {
    /// The message for its page.
    pub message: ServerMessage,
    /// It had control and now does not: release what it holds.
    pub lost_control: bool,
    /// It has control (now).
    pub has_control: bool,
}

impl Feed {
    pub(super) fn new(state: &AppState, id: u64) -> Feed {
        Feed {
            id,
            rx: Some(state.control.subscribe()),
            had_control: false,
        }
    }

    /// The next snapshot for this viewer; pending forever once the hub is gone.
    pub(super) async fn next(&mut self) -> Update {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        if rx.changed().await.is_err() {
            self.rx = None;
            return std::future::pending().await;
        }
        let presence = rx.borrow_and_update().clone();
        let has_control = presence
            .viewers
            .iter()
            .any(|v| v.id == self.id && v.control);
        let lost_control = std::mem::replace(&mut self.had_control, has_control) && !has_control;
        Update {
            message: ServerMessage::Presence {
                v: CONTROL_VERSION,
                you: self.id,
                presence: (*presence).clone(),
            },
            lost_control,
            has_control,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::join_params;

    #[test]
    fn query_gives_name_and_key() {
        assert_eq!(
            join_params(Some("token=t&name=Ann%20B&key=abcdEFGH12_-")),
            (Some("Ann B".into()), Some("abcdEFGH12_-".into()))
        );
        assert_eq!(join_params(None), (None, None));
        assert_eq!(join_params(Some("name=&key=short")), (None, None));
        assert_eq!(
            join_params(Some("name=%01x&key=has%20space1")),
            (None, None)
        );
        let long = format!("name={}&key={}", "n".repeat(33), "k".repeat(65));
        assert_eq!(join_params(Some(&long)), (None, None));
    }
}
