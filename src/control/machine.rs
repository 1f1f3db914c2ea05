//! The control hand-over rules as a pure state machine: who is connected, who has the
//! keyboard and mouse, who asked for them, and what each request, give, release, take, join,
//! leave, input event and tick of time changes. No sockets and no clock: every call takes
//! `now`, and the caller acts on what it returns (release the previous controller's keys,
//! tell the pages). See `docs/input.md` ("Who has control") for the rules in prose.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A viewer, by its session number.
pub type ViewerId = u64;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// How long a controller who left (a page reload) keeps its claim to control.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(5);

/// Whether one viewer or all full-token viewers drive the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every full-token viewer's input goes to X at once (vnrit before control existed).
    Shared,
    /// One controller at a time; the others watch and may ask.
    Exclusive,
}

/// What a viewer may do, from how it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Full token: may hold control.
    Control,
    /// View token: never controls.
    ViewOnly,
    /// A WHEP player: watches, has no input at all.
    Whep,
}

/// A control action asked for by a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask for control (granted at once when nobody has it).
    Request,
    /// The controller hands control to this viewer.
    Give(ViewerId),
    /// The controller lets go.
    Release,
    /// Take control: allowed when the controller has been idle long enough, or at once with
    /// the operator token (`admin`).
    Take {
        /// The operator token was given and matched.
        admin: bool,
    },
}

/// Why an action or an input event was refused; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// View-only viewers and WHEP players never control.
    #[error("this viewer has view-only access and can never take control")]
    ViewOnly,
    /// `--control shared`: nothing to hand over.
    #[error("control is shared (--control shared): every full-access viewer controls at once")]
    Shared,
    /// Only the controller may give or release.
    #[error("only the viewer who has control can give it away or release it")]
    NotController,
    /// The viewer to give control to is not (or no longer) connected, or may not control.
    #[error("viewer {0} is not connected (or is view-only); control stays where it was")]
    NoSuchViewer(ViewerId),
    /// Taking needs the controller idle for the configured time, or the operator token.
    #[error("{name} has control and was active {idle_s} s ago; it can be taken after {limit_s} s of inactivity (or with the operator token)")]
    Busy {
        /// The controller's name.
        name: String,
        /// Whole seconds since its last input.
        idle_s: u64,
        /// The idle limit in seconds.
        limit_s: u64,
    },
    /// Input from a viewer who does not have control.
    #[error("input refused: {0} has control; ask for it with \u{201c}Request control\u{201d}")]
    NotInControl(String),
    /// A display name that is empty, too long or has control characters.
    #[error("a name must be 1 to {MAX_NAME_CHARS} characters, without control characters")]
    BadName,
}

/// A change of controller: release what `from` holds, tell everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover {
    /// The previous controller, if any.
    pub from: Option<ViewerId>,
    /// The new controller, if any.
    pub to: Option<ViewerId>,
}

#[derive(Debug, Clone)]
struct Viewer {
    name: String,
    role: Role,
    key: Option<String>,
    /// Order of this viewer's pending request, if it asked for control.
    requested: Option<u64>,
}

/// A controller who left and may come back (same `key`) before `until`.
#[derive(Debug, Clone)]
struct Reservation {
    key: String,
    name: String,
    until: Instant,
}

/// One viewer as the pages and `/api/stats` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewerInfo {
    /// Session number.
    pub id: ViewerId,
    /// Display name.
    pub name: String,
    /// `control`, `view-only` or `whep`.
    pub role: Role,
    /// Has control now (in shared mode: may control).
    pub control: bool,
    /// Asked for control and waits.
    pub requesting: bool,
}

/// Who is there and who has control, as sent to the pages (`{"type":"presence"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Presence {
    /// `shared` or `exclusive`.
    pub mode: Mode,
    /// The controller's session number (`null`: nobody; always `null` when shared).
    pub controller: Option<ViewerId>,
    /// Milliseconds since the controller's last input (or since it got control).
    pub idle_ms: u64,
    /// `--control-idle` in milliseconds: after this long idle, others may take control.
    pub idle_limit_ms: u64,
    /// Name of a controller who left and may still come back within a few seconds.
    pub reserved_for: Option<String>,
    /// Everyone connected, in joining order.
    pub viewers: Vec<ViewerInfo>,
}

/// The state machine (see the module docs).
#[derive(Debug)]
pub struct ControlState {
    mode: Mode,
    idle_limit: Duration,
    viewers: BTreeMap<ViewerId, Viewer>,
    controller: Option<ViewerId>,
    /// Last input of the controller, or when it got control.
    active_at: Instant,
    reserved: Option<Reservation>,
    next_request: u64,
    grace: Duration,
}

/// Checks and trims a display name.
pub fn clean_name(name: &str) -> Result<String, Refusal> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Refusal::BadName);
    }
    Ok(name.to_string())
}

impl ControlState {
    /// Nobody connected yet.
    pub fn new(mode: Mode, idle_limit: Duration, now: Instant) -> ControlState {
        ControlState {
            mode,
            idle_limit,
            viewers: BTreeMap::new(),
            controller: None,
            active_at: now,
            reserved: None,
            next_request: 0,
            grace: RECONNECT_GRACE,
        }
    }

    /// How long a controller who left keeps its claim ([`RECONNECT_GRACE`] unless set).
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// The mode this runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The controller now (always `None` when shared).
    pub fn controller(&self) -> Option<ViewerId> {
        self.controller
    }

    /// A viewer arrives. `name`: its chosen name (`None` or invalid: "viewer N"); `key`: the
    /// page's reconnect key, which gets a reserved control back after a reload. A second
    /// join of a viewer already present is ignored.
    pub fn join(
        &mut self,
        id: ViewerId,
        name: Option<&str>,
        role: Role,
        key: Option<String>,
        now: Instant,
    ) -> Option<Handover> {
        let name = name
            .and_then(|n| clean_name(n).ok())
            .unwrap_or_else(|| format!("viewer {id}"));
        if self.viewers.contains_key(&id) {
            return None;
        }
        self.viewers.insert(
            id,
            Viewer {
                name,
                role,
                key: key.clone(),
                requested: None,
            },
        );
        self.expire(now);
        if self.mode == Mode::Shared || role != Role::Control || self.controller.is_some() {
            return None;
        }
        let returning = matches!((&self.reserved, &key), (Some(r), Some(k)) if &r.key == k);
        if returning || self.full_viewers() == 1 {
            return Some(self.grant(id, now));
        }
        self.settle(now, true)
    }

    /// A viewer is gone (socket closed, WHEP session ended).
    pub fn leave(&mut self, id: ViewerId, now: Instant) -> Option<Handover> {
        let viewer = self.viewers.remove(&id)?;
        if self.controller != Some(id) {
            return None;
        }
        self.controller = None;
        let left = Handover {
            from: Some(id),
            to: None,
        };
        if let Some(key) = viewer.key {
            // The reloaded page may already be here (its new socket came before the old one
            // closed): it gets control straight back.
            let back = self
                .viewers
                .iter()
                .find(|(_, v)| v.role == Role::Control && v.key.as_deref() == Some(key.as_str()));
            if let Some((&back, _)) = back {
                return Some(Handover {
                    from: Some(id),
                    ..self.grant(back, now)
                });
            }
            self.reserved = Some(Reservation {
                key,
                name: viewer.name,
                until: now + self.grace,
            });
        }
        let next = self.settle(now, true);
        Some(next.map_or(left, |h| Handover {
            from: Some(id),
            ..h
        }))
    }

    /// Time passes: a reservation may expire and control go to whoever waits for it.
    pub fn tick(&mut self, now: Instant) -> Option<Handover> {
        self.expire(now);
        self.settle(now, true)
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.reserved.as_ref().map(|r| r.until)
    }

    /// A viewer changes its display name.
    pub fn rename(&mut self, id: ViewerId, name: &str) -> Result<(), Refusal> {
        let name = clean_name(name)?;
        if let Some(v) = self.viewers.get_mut(&id) {
            v.name = name;
        }
        Ok(())
    }

    /// How long the controller has been idle (no input since it got control), if there is one.
    pub fn controller_idle(&self, now: Instant) -> Option<Duration> {
        self.controller
            .map(|_| now.saturating_duration_since(self.active_at))
    }

    /// Whether `id` may send input now ("may this viewer control now").
    pub fn may_control(&self, id: ViewerId) -> bool {
        match self.mode {
            Mode::Shared => self.role(id) == Some(Role::Control),
            Mode::Exclusive => self.controller == Some(id),
        }
    }

    /// An input event from `id`: allowed (and counted as activity) or refused.
    pub fn input(&mut self, id: ViewerId, now: Instant) -> Result<(), Refusal> {
        if self.may_control(id) {
            if self.controller == Some(id) {
                self.active_at = now;
            }
            return Ok(());
        }
        if self.role(id) != Some(Role::Control) {
            return Err(Refusal::ViewOnly);
        }
        let holder = match (self.controller, &self.reserved) {
            (Some(c), _) => self.name(c),
            (None, Some(r)) => format!("{} (reconnecting)", r.name),
            (None, None) => "nobody".to_string(),
        };
        Err(Refusal::NotInControl(holder))
    }

    /// A control action by `id`.
    pub fn act(
        &mut self,
        id: ViewerId,
        action: Action,
        now: Instant,
    ) -> Result<Option<Handover>, Refusal> {
        if self.mode == Mode::Shared {
            return Err(Refusal::Shared);
        }
        if self.role(id) != Some(Role::Control) {
            return Err(Refusal::ViewOnly);
        }
        self.expire(now);
        let is_controller = self.controller == Some(id);
        match action {
            _ if is_controller && matches!(action, Action::Request | Action::Take { .. }) => {
                Ok(None)
            }
            Action::Request | Action::Take { .. } if self.controller.is_none() => {
                Ok(Some(self.grant(id, now)))
            }
            Action::Request => {
                let order = self.next_request;
                self.next_request += 1;
                if let Some(v) = self.viewers.get_mut(&id) {
                    v.requested.get_or_insert(order);
                }
                Ok(None)
            }
            Action::Take { admin } => {
                let idle = now.saturating_duration_since(self.active_at);
                if admin || idle >= self.idle_limit {
                    return Ok(Some(self.grant(id, now)));
                }
                Err(Refusal::Busy {
                    name: self.controller.map(|c| self.name(c)).unwrap_or_default(),
                    idle_s: idle.as_secs(),
                    limit_s: self.idle_limit.as_secs(),
                })
            }
            Action::Give(_) | Action::Release if !is_controller => Err(Refusal::NotController),
            Action::Give(to) if to == id => Ok(None),
            Action::Give(to) => match self.role(to) {
                Some(Role::Control) => Ok(Some(self.grant(to, now))),
                _ => Err(Refusal::NoSuchViewer(to)),
            },
            Action::Release => {
                self.controller = None;
                let released = Handover {
                    from: Some(id),
                    to: None,
                };
                let next = self.settle(now, false);
                Ok(Some(next.map_or(released, |h| Handover {
                    from: Some(id),
                    ..h
                })))
            }
        }
    }

    /// Who is there and who controls, for the pages.
    pub fn presence(&self, now: Instant) -> Presence {
        let viewers = self
            .viewers
            .iter()
            .map(|(&id, v)| ViewerInfo {
                id,
                name: v.name.clone(),
                role: v.role,
                control: self.may_control(id),
                requesting: v.requested.is_some(),
            })
            .collect();
        let idle = now.saturating_duration_since(self.active_at);
        Presence {
            mode: self.mode,
            controller: self.controller,
            idle_ms: if self.controller.is_some() {
                millis(idle)
            } else {
                0
            },
            idle_limit_ms: millis(self.idle_limit),
            reserved_for: self.reserved.as_ref().map(|r| r.name.clone()),
            viewers,
        }
    }

    /// The display name of `id` ("viewer N" if unknown).
    pub fn name(&self, id: ViewerId) -> String {
        self.viewers
            .get(&id)
            .map_or_else(|| format!("viewer {id}"), |v| v.name.clone())
    }

    fn role(&self, id: ViewerId) -> Option<Role> {
        self.viewers.get(&id).map(|v| v.role)
    }

    fn full_viewers(&self) -> usize {
        self.viewers
            .values()
            .filter(|v| v.role == Role::Control)
            .count()
    }

    fn expire(&mut self, now: Instant) {
        if self.reserved.as_ref().is_some_and(|r| now >= r.until) {
            self.reserved = None;
        }
    }

    /// With nobody in control and no reservation: the earliest requester gets control, else
    /// (with `sole`) the only full-access viewer, if there is exactly one.
    fn settle(&mut self, now: Instant, sole: bool) -> Option<Handover> {
        if self.mode == Mode::Shared || self.controller.is_some() || self.reserved.is_some() {
            return None;
        }
        let earliest = self
            .viewers
            .iter()
            .filter_map(|(&id, v)| v.requested.map(|order| (order, id)))
            .min()
            .map(|(_, id)| id);
        let only = || {
            let mut full = self.viewers.iter().filter(|(_, v)| v.role == Role::Control);
            match (full.next(), full.next()) {
                (Some((&id, _)), None) => Some(id),
                _ => None,
            }
        };
        let next = earliest.or_else(|| if sole { only() } else { None })?;
        Some(self.grant(next, now))
    }

    fn grant(&mut self, to: ViewerId, now: Instant) -> Handover {
        let from = self.controller.replace(to);
        self.active_at = now;
        self.reserved = None;
        if let Some(v) = self.viewers.get_mut(&to) {
            v.requested = None;
        }
        Handover { from, to: Some(to) }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
