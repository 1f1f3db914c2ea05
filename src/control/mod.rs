//! Who may drive the desktop when several people watch it: presence (names and roles of
//! everyone connected) and control (one controller at a time with `--control exclusive`, the
//! default; everyone with `--control shared`).
//!
//! The rules live in [`machine`], a pure state machine with time passed in. [`ControlHub`]
//! wraps it for the server: one per server, shared by every viewer's [`Seat`], publishing
//! each change as a [`Presence`] snapshot on a watch channel and waking itself when a
//! reconnect reservation runs out. [`ControlHub::may_control`] is the one place that answers
//! "may this viewer control now": every feature that acts on the desktop for a viewer (keys,
//! pointer, clipboard, text input, uploads, resize requests) asks it.

pub mod machine;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::lock::lock;
use machine::ControlState;
pub use machine::{Action, Handover, Mode, Presence, Refusal, Role, ViewerId, ViewerInfo};

/// A controller's input after this long without any is published (the other pages restart
/// their idle countdown); input in a steady stream is not.
const RESUME_AFTER: Duration = Duration::from_secs(1);

/// `--control`, `--control-idle` and `--admin-token`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlSettings {
    /// Who drives the desktop: `exclusive` (one controller at a time, the others watch and
    /// may ask for control) or `shared` (every full-token viewer at once).
    #[arg(long = "control", value_enum, default_value_t = Mode::Exclusive, value_name = "MODE")]
    pub mode: Mode,
    /// Seconds without input after which another viewer may take control, e.g.
    /// `--control-idle 30` (1-86400).
    #[arg(long = "control-idle", default_value = "60", value_parser = parse_idle, value_name = "SECONDS")]
    pub idle: Duration,
    /// Operator token: a full-token viewer who gives it takes control at once, e.g.
    /// `--admin-token s3cret` (env VNRIT_ADMIN_TOKEN).
    #[arg(long = "admin-token", env = "VNRIT_ADMIN_TOKEN", value_parser = parse_admin_token, value_name = "TOKEN")]
    pub admin_token: Option<String>,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            mode: Mode::Exclusive,
            idle: Duration::from_secs(60),
            admin_token: None,
        }
    }
}

fn parse_idle(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(n @ 1..=86_400) => Ok(Duration::from_secs(n)),
        _ => Err(format!("{s:?} is not a number of seconds from 1 to 86400")),
    }
}

fn parse_admin_token(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the admin token must be 1 to 256 characters without spaces".into());
    }
    Ok(s.to_string())
}

#[derive(Debug)]
struct Inner {
    state: Mutex<ControlState>,
    presence: watch::Sender<Arc<Presence>>,
    settings: ControlSettings,
    refused: AtomicU64,
    handovers: AtomicU64,
}

/// The control state of one server (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlHub {
    inner: Arc<Inner>,
}

impl ControlHub {
    /// Nobody connected yet.
    pub fn new(settings: ControlSettings) -> ControlHub {
        let now = Instant::now();
        let state = ControlState::new(settings.mode, settings.idle, now);
        let (presence, _) = watch::channel(Arc::new(state.presence(now)));
        ControlHub {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                presence,
                settings,
                refused: AtomicU64::new(0),
                handovers: AtomicU64::new(0),
            }),
        }
    }

    /// The settings this hub runs with.
    pub fn settings(&self) -> &ControlSettings {
        &self.inner.settings
    }

    /// A viewer arrives; it leaves when the returned [`Seat`] drops.
    pub fn join(&self, id: ViewerId, name: Option<&str>, role: Role, key: Option<String>) -> Seat {
        self.apply(|s, now| s.join(id, name, role, key, now));
        Seat {
            hub: self.clone(),
            id,
        }
    }

    /// Whether viewer `id` may act on the desktop now (keys, pointer, clipboard, text,
    /// uploads, resize). Ask this at the moment of acting: control can move at any time.
    pub fn may_control(&self, id: ViewerId) -> bool {
        self.lock().may_control(id)
    }

    /// An input event from `id`: `Ok` if it may go to X (and counts as the controller's
    /// activity), otherwise the refusal to show, counted in [`ControlHub::refused_total`].
    pub fn input(&self, id: ViewerId) -> Result<(), Refusal> {
        let now = Instant::now();
        let (result, resumed) = {
            let mut state = self.lock();
            let idle = state.controller_idle(now);
            let result = state.input(id, now);
            let resumed = result.is_ok()
                && state.controller() == Some(id)
                && idle.is_some_and(|d| d >= RESUME_AFTER);
            (result, resumed.then(|| state.presence(now)))
        };
        if result.is_err() {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(presence) = resumed {
            // The others' "take control" countdowns start again.
            self.inner.presence.send_replace(Arc::new(presence));
        }
        result
    }

    /// The current presence (also what the watch channel last carried, with a fresh idle time).
    pub fn presence(&self) -> Presence {
        self.lock().presence(Instant::now())
    }

    /// Every change of presence or control from now on (the current one marked as unseen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Presence>> {
        let mut rx = self.inner.presence.subscribe();
        rx.mark_changed();
        rx
    }

    /// Input events refused because the viewer did not have control, since start.
    pub fn refused_total(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Times control changed hands (including to and from nobody), since start.
    pub fn handovers_total(&self) -> u64 {
        self.inner.handovers.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, ControlState> {
        lock(&self.inner.state)
    }

    /// Runs one step of the machine, publishes the new presence, and arms the timer for the
    /// next deadline (a reconnect reservation running out).
    fn apply<R: HandoverOf>(&self, step: impl FnOnce(&mut ControlState, Instant) -> R) -> R {
        let now = Instant::now();
        let (result, presence, deadline) = {
            let mut state = self.lock();
            let result = step(&mut state, now);
            (result, state.presence(now), state.next_deadline())
        };
        self.publish(result.handover(), presence, deadline);
        result
    }

    /// A reservation may have run out.
    fn tick(&self) {
        let now = Instant::now();
        let (handover, presence, deadline) = {
            let mut state = self.lock();
            let handover = state.tick(now);
            (handover, state.presence(now), state.next_deadline())
        };
        self.publish(handover, presence, deadline);
    }

    fn publish(&self, handover: Option<Handover>, presence: Presence, deadline: Option<Instant>) {
        if let Some(h) = handover {
            self.inner.handovers.fetch_add(1, Ordering::Relaxed);
            tracing::info!(from = ?h.from, to = ?h.to, "control changed hands");
        }
        self.inner.presence.send_replace(Arc::new(presence));
        if let (Some(deadline), Ok(rt)) = (deadline, tokio::runtime::Handle::try_current()) {
            let hub = self.clone();
            rt.spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                hub.tick();
            });
        }
    }
}

/// Results of machine steps that may carry a change of controller.
trait HandoverOf {
    fn handover(&self) -> Option<Handover>;
}

impl HandoverOf for Option<Handover> {
    fn handover(&self) -> Option<Handover> {
        *self
    }
}

impl HandoverOf for Result<Option<Handover>, Refusal> {
    fn handover(&self) -> Option<Handover> {
        self.as_ref().ok().copied().flatten()
    }
}

impl HandoverOf for Result<(), Refusal> {
    fn handover(&self) -> Option<Handover> {
        None
    }
}

/// One viewer's place in the [`ControlHub`]; dropping it is the viewer leaving.
#[derive(Debug)]
pub struct Seat {
    hub: ControlHub,
    id: ViewerId,
}

impl Seat {
    /// This viewer's session number.
    pub fn id(&self) -> ViewerId {
        self.id
    }

    /// The hub this seat is in.
    pub fn hub(&self) -> &ControlHub {
        &self.hub
    }

    /// Whether this viewer may act on the desktop now.
    pub fn may_control(&self) -> bool {
        self.hub.may_control(self.id)
    }

    /// Request, give, release or take control.
    pub fn act(&self, action: Action) -> Result<(), Refusal> {
        self.hub
            .apply(|s, now| s.act(self.id, action, now))
            .map(|_| ())
    }

    /// A new display name.
    pub fn rename(&self, name: &str) -> Result<(), Refusal> {
        self.hub.apply(|s, _| s.rename(self.id, name))
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let id = self.id;
        self.hub.apply(|s, now| s.leave(id, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hub_publishes_changes_and_expires_reservations() {
        let hub = ControlHub::new(ControlSettings::default());
        hub.lock().set_grace(Duration::from_millis(100));
        let mut rx = hub.subscribe();
        let a = hub.join(1, Some("Ann"), Role::Control, Some("ka".into()));
        let b = hub.join(2, None, Role::Control, Some("kb".into()));
        let c = hub.join(3, None, Role::Control, None);
        assert!(hub.may_control(1) && !hub.may_control(2));
        assert_eq!(rx.borrow_and_update().viewers.len(), 3);
        assert_eq!(hub.input(2), Err(Refusal::NotInControl("Ann".into())));
        assert_eq!(hub.refused_total(), 1);
        c.act(Action::Request).unwrap();
        drop(a);
        assert_eq!(hub.presence().reserved_for.as_deref(), Some("Ann"));
        // The reservation runs out on its own timer and the waiting request is granted.
        for _ in 0..100 {
            if hub.may_control(3) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(hub.may_control(3), "{:?}", hub.presence());
        assert_eq!(hub.presence().reserved_for, None);
        assert_eq!(b.act(Action::Give(3)), Err(Refusal::NotController));
        assert_eq!(hub.handovers_total(), 3);
    }

    #[test]
    fn flags_parse() {
        assert_eq!(parse_idle("2"), Ok(Duration::from_secs(2)));
        assert!(parse_idle("0").is_err() && parse_idle("x").is_err());
        assert!(parse_admin_token("a b").is_err() && parse_admin_token("").is_err());
    }
}
