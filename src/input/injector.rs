//! The X thread: one connection that injects input with XTest, tracks what each session
//! holds, follows keyboard mapping changes, and hosts the cursor and clipboard watchers.
//!
//! The thread sleeps in `poll(2)` on two descriptors, the X connection and a socket the
//! sessions write a byte to after queueing a command, so it wakes for either. Only while
//! pages are watching the cursor does it also wake on a timer, to notice pointer warps
//! (XWarpPointer, e.g. `xdotool mousemove`), which produce no raw motion event: every 250 ms
//! for 5 s after any input or X event (programs mostly warp in answer to input), every second
//! on an idle desktop. While text waits to be typed ([`Typist`]), it also wakes when the
//! next character is due.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd as _;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::errors::{ConnectionError, ReplyError};
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Keycode, Mapping, Window,
    BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT,
    MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::{xtest, Event};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::clipboard::Clipboard;
use super::cursor::CursorWatch;
use super::keymap::Keymap;
use super::keys::{self, sym, KeyAction};
use super::typing::{Stroke, Typist};
use super::{Cmd, InputError, InputEvent, Outgoing, Publisher, Shared};
use crate::wake::{wait_readable, Ready};

/// How often the pointer position is checked while pages watch and the desktop is busy.
const WARP_CHECK: Duration = Duration::from_millis(250);
/// The same after [`BUSY_FOR`] without input or X events.
const WARP_CHECK_IDLE: Duration = Duration::from_secs(1);
/// How long after the last input or X event the desktop counts as busy.
const BUSY_FOR: Duration = Duration::from_secs(5);
/// Wheel clicks sent for one message, at most.
const MAX_WHEEL_CLICKS: u32 = 20;

/// What one session holds and accumulates.
#[derive(Debug, Default)]
struct SessionState {
    /// `KeyboardEvent.code` -> the keycode pressed for it.
    keys: HashMap<String, Keycode>,
    buttons: HashSet<u8>,
    wheel: (f64, f64),
    rel: (f64, f64),
}

/// The X side of the input service.
pub(crate) struct Injector {
    conn: RustConnection,
    root: Window,
    width: u16,
    height: u16,
    keymap: Keymap,
    sessions: HashMap<u64, SessionState>,
    shared: Arc<Shared>,
    publish: Publisher,
    cursor: CursorWatch,
    clipboard: Clipboard,
    typist: Typist,
}

fn x_err(e: impl std::fmt::Display) -> InputError {
    InputError::X(e.to_string())
}

impl Injector {
    /// Connect, check XTest, read the keymap and subscribe to the events we follow.
    pub(crate) fn connect(
        display: &str,
        shared: Arc<Shared>,
        out: broadcast::Sender<Outgoing>,
    ) -> Result<Injector, InputError> {
        let (conn, screen) =
            x11rb::connect(Some(display)).map_err(|source| InputError::Connect {
                display: display.to_owned(),
                source,
            })?;
        if conn
            .extension_information(xtest::X11_EXTENSION_NAME)
            .map_err(x_err)?
            .is_none()
        {
            return Err(InputError::MissingExtension("XTEST"));
        }
        xtest::get_version(&conn, 2, 2)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        let s = conn
            .setup()
            .roots
            .get(screen)
            .ok_or_else(|| InputError::X(format!("screen {screen} does not exist")))?;
        let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )
        .map_err(x_err)?;
        let keymap = Keymap::load(&conn).map_err(x_err)?;
        let publish = Publisher::new(out, Arc::clone(&shared));
        publish.set_screen(width, height);
        let mut cursor = CursorWatch::start(&conn, root).map_err(x_err)?;
        cursor.shape(&conn, None, &publish).map_err(x_err)?;
        let clipboard = Clipboard::start(&conn, root, shared.max_clipboard).map_err(x_err)?;
        conn.sync().map_err(x_err)?;
        Ok(Injector {
            conn,
            root,
            width,
            height,
            keymap,
            sessions: HashMap::new(),
            shared,
            publish,
            cursor,
            clipboard,
            typist: Typist::default(),
        })
    }

    /// The thread body: wait, carry out commands, follow events, until shutdown or the X
    /// server goes away.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let result = self.serve(&rx);
        self.shared.alive.store(false, Ordering::Release);
        match result {
            Ok(()) => tracing::debug!("input: X thread stopped"),
            Err(e) => tracing::error!("input: lost the X server ({e}); remote control stopped"),
        }
        // Answer anyone still waiting so they do not time out.
        while let Ok(cmd) = rx.try_recv() {
            if let Cmd::Sync(done) | Cmd::Shutdown(done) = cmd {
                let _ = done.send(());
            }
        }
    }

    fn serve(&mut self, rx: &mpsc::Receiver<Cmd>) -> Result<(), ConnectionError> {
        let mut busy_since = Instant::now();
        loop {
            while let Ok(cmd) = rx.try_recv() {
                busy_since = Instant::now();
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                match cmd {
                    Cmd::Event { session, event } => go_on(self.event(session, event))?,
                    Cmd::Type {
                        session,
                        text,
                        reserved,
                        backlog,
                    } => self
                        .typist
                        .push(session, &text, reserved, backlog, Instant::now()),
                    Cmd::EndSession(session) => go_on(self.end_session(session))?,
                    Cmd::Sync(done) => {
                        go_on(self.conn.sync())?;
                        let _ = done.send(());
                    }
                    #[cfg(test)]
                    Cmd::Request(request) => go_on((request.0)(&self.conn))?,
                    Cmd::Shutdown(done) => {
                        go_on(self.release_everything())?;
                        let _ = done.send(());
                        return Ok(());
                    }
                }
            }
            for (session, stroke) in self.typist.due(Instant::now()) {
                go_on(self.type_stroke(session, stroke))?;
            }
            // Round trips made while handling events may queue more events: drain until
            // nothing is left, so poll() below never sleeps on buffered events.
            loop {
                while let Some(ev) = self.conn.poll_for_event()? {
                    busy_since = Instant::now();
                    go_on(self.x_event(ev))?;
                }
                if !self.cursor.flush(&self.conn, &self.publish)? {
                    break;
                }
            }
            self.conn.flush()?;
            // While pages watch, a slow check catches pointer warps (no raw motion for those).
            let warp_check = match self.publish.watched() {
                false => None,
                true if busy_since.elapsed() < BUSY_FOR => Some(WARP_CHECK),
                true => Some(WARP_CHECK_IDLE),
            };
            let now = Instant::now();
            self.clipboard.expire(&self.conn, now, &self.publish)?;
            let next_stroke = self.typist.deadline();
            let timeout = [next_stroke, self.clipboard.deadline()]
                .into_iter()
                .flatten()
                .map(|at| at.saturating_duration_since(now))
                .chain(warp_check)
                .min();
            let wake = &self.shared.wake;
            let ready = wait_readable(self.conn.stream().as_fd(), Some(wake.fd()), timeout)?;
            if ready == Ready::default() {
                self.cursor.check_position();
            }
            wake.clear();
        }
    }

    fn x_event(&mut self, ev: Event) -> Result<(), ReplyError> {
        match ev {
            Event::MappingNotify(m) if m.request == Mapping::KEYBOARD => {
                self.keymap.reload(&self.conn)?;
            }
            // A request sent without waiting for its answer was refused (e.g. a property
            // written for a clipboard requestor whose window is gone).
            Event::Error(e) => tracing::debug!(
                "input: X refused request {}.{}: {:?}",
                e.major_opcode,
                e.minor_opcode,
                e.error_kind
            ),
            Event::ConfigureNotify(c) if c.window == self.root => {
                self.width = c.width;
                self.height = c.height;
                self.publish.set_screen(c.width, c.height);
            }
            ev => {
                let mine = self.cursor.on_event(&self.conn, &ev, &self.publish)?;
                if !mine {
                    self.clipboard.on_event(&self.conn, &ev, &self.publish)?;
                }
            }
        }
        Ok(())
    }

    fn held_keycodes(&self) -> HashSet<Keycode> {
        self.sessions
            .values()
            .flat_map(|s| s.keys.values().copied())
            .collect()
    }

    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), ReplyError> {
        xtest::fake_input(&self.conn, kind, detail, 0, self.root, x, y, 0)?;
        Ok(())
    }

    fn event(&mut self, id: u64, event: InputEvent) -> Result<(), ReplyError> {
        match event {
            InputEvent::KeyDown { code, key } => self.key_down(id, code, &key),
            InputEvent::KeyUp { code } => {
                let Some(kc) = self
                    .sessions
                    .get_mut(&id)
                    .and_then(|s| s.keys.remove(&code))
                else {
                    return Ok(());
                };
                if !self.held_keycodes().contains(&kc) {
                    self.fake(KEY_RELEASE_EVENT, kc, 0, 0)?;
                }
                Ok(())
            }
            InputEvent::Move { x, y } => {
                let px = scale(x, self.width);
                let py = scale(y, self.height);
                self.fake(MOTION_NOTIFY_EVENT, 0, px, py)
            }
            InputEvent::MoveBy { dx, dy } => {
                let (w, h) = (f64::from(self.width), f64::from(self.height));
                let s = self.sessions.entry(id).or_default();
                s.rel.0 += dx * w;
                s.rel.1 += dy * h;
                let (mx, my) = (s.rel.0.trunc(), s.rel.1.trunc());
                s.rel.0 -= mx;
                s.rel.1 -= my;
                if mx != 0.0 || my != 0.0 {
                    self.fake(MOTION_NOTIFY_EVENT, 1, mx as i16, my as i16)?;
                }
                Ok(())
            }
            InputEvent::ButtonDown(b) => {
                let newly = self.sessions.entry(id).or_default().buttons.insert(b);
                if newly {
                    self.fake(BUTTON_PRESS_EVENT, b, 0, 0)?;
                }
                Ok(())
            }
            InputEvent::ButtonUp(b) => {
                let had = self.sessions.entry(id).or_default().buttons.remove(&b);
                if had && !self.sessions.values().any(|s| s.buttons.contains(&b)) {
                    self.fake(BUTTON_RELEASE_EVENT, b, 0, 0)?;
                }
                Ok(())
            }
            InputEvent::Wheel { dx, dy } => self.wheel(id, dx, dy),
            InputEvent::ReleaseAll => self.release_session(id),
            InputEvent::Clipboard(text) => Ok(self.clipboard.set(&self.conn, text)?),
            InputEvent::ClipboardImage(png) => Ok(self.clipboard.set_image(&self.conn, png)?),
            InputEvent::CancelTyping => {
                let n = self.typist.cancel(id);
                tracing::debug!(
                    session = id,
                    "input: typing cancelled, {n} characters dropped"
                );
                Ok(())
            }
            // Sessions send text as `Cmd::Type`, with its backlog count.
            InputEvent::TypeText(_) | InputEvent::Version(_) => Ok(()),
            // Sessions reassemble chunk streams and send the whole content.
            InputEvent::Chunk(_) => Ok(()),
        }
    }

    fn key_down(&mut self, id: u64, code: String, key: &str) -> Result<(), ReplyError> {
        let state = self.sessions.entry(id).or_default();
        if state.keys.contains_key(&code) {
            // The browser's own repeat: X repeats held keys itself.
            return Ok(());
        }
        let shortcut = state.keys.values().any(|&kc| {
            matches!(
                self.keymap.keysym_at(kc, 0),
                sym::CONTROL_L
                    | sym::CONTROL_R
                    | sym::ALT_L
                    | sym::ALT_R
                    | sym::SUPER_L
                    | sym::SUPER_R
            )
        });
        let ks = match keys::keysym_for(&code, key, shortcut) {
            Some(KeyAction::Keysym(ks)) => ks,
            Some(KeyAction::Ignore) => return Ok(()),
            None => {
                tracing::debug!(code, key, "input: no keysym for this key; ignored");
                return Ok(());
            }
        };
        let held = self.held_keycodes();
        let Some(kc) = self.keymap.keycode_for(&self.conn, ks, &held)? else {
            tracing::warn!(keysym = ks, "input: no keycode free to type this key");
            return Ok(());
        };
        self.fake(KEY_PRESS_EVENT, kc, 0, 0)?;
        self.sessions.entry(id).or_default().keys.insert(code, kc);
        Ok(())
    }

    /// Type one character of queued text: press and release its key (with Shift around it
    /// when it is on the shifted level), so nothing stays down.
    fn type_stroke(&mut self, id: u64, stroke: Stroke) -> Result<(), ReplyError> {
        let ks = match stroke {
            Stroke::Return => 0xff0d,
            Stroke::Tab => 0xff09,
            Stroke::Char(c) => keys::char_keysym(c),
        };
        let held = self.held_keycodes();
        let Some((kc, shift)) = self.keymap.stroke_for(&self.conn, ks, &held)? else {
            tracing::warn!(
                session = id,
                keysym = ks,
                "input: no keycode free to type this character"
            );
            return Ok(());
        };
        if let Some(shift) = shift {
            self.fake(KEY_PRESS_EVENT, shift, 0, 0)?;
        }
        self.fake(KEY_PRESS_EVENT, kc, 0, 0)?;
        self.fake(KEY_RELEASE_EVENT, kc, 0, 0)?;
        if let Some(shift) = shift {
            self.fake(KEY_RELEASE_EVENT, shift, 0, 0)?;
        }
        Ok(())
    }

    fn wheel(&mut self, id: u64, dx: f64, dy: f64) -> Result<(), ReplyError> {
        let s = self.sessions.entry(id).or_default();
        // A change of direction forgets the remainder of the other direction.
        if s.wheel.0 * dx < 0.0 {
            s.wheel.0 = 0.0;
        }
        if s.wheel.1 * dy < 0.0 {
            s.wheel.1 = 0.0;
        }
        s.wheel.0 += dx;
        s.wheel.1 += dy;
        let (cx, cy) = (s.wheel.0.trunc(), s.wheel.1.trunc());
        s.wheel.0 -= cx;
        s.wheel.1 -= cy;
        for (count, neg, pos) in [(cy, 4u8, 5u8), (cx, 6, 7)] {
            let button = if count < 0.0 { neg } else { pos };
            let n = (count.abs() as u32).min(MAX_WHEEL_CLICKS);
            for _ in 0..n {
                self.fake(BUTTON_PRESS_EVENT, button, 0, 0)?;
                self.fake(BUTTON_RELEASE_EVENT, button, 0, 0)?;
            }
        }
        Ok(())
    }

    /// Release what session `id` holds and nobody else does; keep its entry.
    fn release_session(&mut self, id: u64) -> Result<(), ReplyError> {
        let Some(mut state) = self.sessions.remove(&id) else {
            return Ok(());
        };
        let keys: Vec<Keycode> = state.keys.drain().map(|(_, kc)| kc).collect();
        let buttons: Vec<u8> = state.buttons.drain().collect();
        let others_keys = self.held_keycodes();
        // Modifiers last, so a shortcut is not completed by a release order.
        let mut keys = keys;
        keys.sort_by_key(|&kc| keys::is_modifier(self.keymap.keysym_at(kc, 0)));
        keys.dedup();
        for kc in keys {
            if !others_keys.contains(&kc) {
                self.fake(KEY_RELEASE_EVENT, kc, 0, 0)?;
            }
        }
        for b in buttons {
            if !self.sessions.values().any(|s| s.buttons.contains(&b)) {
                self.fake(BUTTON_RELEASE_EVENT, b, 0, 0)?;
            }
        }
        self.sessions.insert(id, state);
        Ok(())
    }

    fn end_session(&mut self, id: u64) -> Result<(), ReplyError> {
        self.typist.cancel(id);
        self.release_session(id)?;
        self.sessions.remove(&id);
        Ok(())
    }

    fn release_everything(&mut self) -> Result<(), ReplyError> {
        self.typist.cancel_all();
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.end_session(id)?;
        }
        self.keymap.unbind_all(&self.conn)?;
        self.conn.sync()
    }
}

/// A normalised coordinate to a pixel on a side of `size` pixels.
fn scale(v: f64, size: u16) -> i16 {
    let max = f64::from(size.saturating_sub(1));
    (v * f64::from(size)).floor().clamp(0.0, max) as i16
}

/// What a failed step of the X thread means: a lost connection stops it (returned); a
/// request the X server refused (an X protocol error: a window gone, a keymap changed under
/// a request) costs only that step, and remote control goes on for everyone.
fn go_on(step: Result<(), ReplyError>) -> Result<(), ConnectionError> {
    match step {
        Ok(()) => Ok(()),
        Err(ReplyError::ConnectionError(lost)) => Err(lost),
        Err(ReplyError::X11Error(e)) => {
            tracing::warn!(
                "input: X refused request {}.{} ({:?}); going on",
                e.major_opcode,
                e.minor_opcode,
                e.error_kind
            );
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "injector_tests.rs"]
mod x_tests;

#[cfg(test)]
mod tests {
    use super::scale;

    #[test]
    fn normalised_positions_cover_the_screen() {
        assert_eq!(scale(0.0, 1920), 0);
        assert_eq!(scale(1.0, 1920), 1919);
        assert_eq!(scale(0.5, 1920), 960);
        assert_eq!(scale(0.99999, 1080), 1079);
    }
}
