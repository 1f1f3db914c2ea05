//! Change detection with the X DAMAGE extension: a bounding-box damage object on the root
//! window, read by sleeping in `poll(2)` on the connection's socket (no busy polling).
//! The same event stream carries the root window's `ConfigureNotify`, which says the screen
//! changed size (a RandR resize); it counts as damage, and [`DamageWatch::take_resize`]
//! hands the new size to the capturer.
//!
//! Damage is cleared on the server (`DamageSubtract`) whenever it is reported, so the next
//! drawing raises a fresh event. Each clear is a request with a sequence number; an event
//! carries the sequence number of the last request of ours the server had handled when it
//! sent the event, so events from before a clear are recognised and not reported twice.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::damage::{self, ConnectionExt as _, Damage, ReportLevel};
use x11rb::protocol::xfixes::Region;
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Rectangle, Window,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::NONE;

use super::{CaptureError, DamageRect};

/// Damage tracking state for one root window.
pub struct DamageWatch {
    damage: Damage,
    root: Window,
    /// The screen size from the latest root `ConfigureNotify` not yet taken.
    resized: Option<(u16, u16)>,
    /// Damage arrived that has not been reported yet.
    pending: bool,
    /// Sequence number of the last clear: events older than this were already reported.
    reported_seq: u64,
    /// Sequence number of the clear made by the last capture.
    captured_seq: u64,
    /// Union of damaged areas since the last capture: (x0, y0, x1, y1), exclusive ends.
    bounds: Option<(i32, i32, i32, i32)>,
    /// `bounds` as they were at the last capture (what that grab brought news of).
    grabbed: Option<(i32, i32, i32, i32)>,
}

impl DamageWatch {
    /// Create a damage object on `root` and listen for its size changes. Fails with
    /// [`CaptureError::MissingExtension`] when the server lacks DAMAGE.
    pub fn new(conn: &RustConnection, root: Window) -> Result<Self, CaptureError> {
        if conn
            .extension_information(damage::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(CaptureError::MissingExtension("DAMAGE"));
        }
        // The server requires a version handshake before any other DAMAGE request.
        conn.damage_query_version(1, 1)?.reply()?;
        let id = conn.generate_id()?;
        conn.damage_create(id, root, ReportLevel::BOUNDING_BOX)?
            .check()?;
        // Other clients may select events on the root too: each client has its own mask.
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )?
        .check()?;
        Ok(DamageWatch {
            damage: id,
            root,
            resized: None,
            pending: false,
            reported_seq: 0,
            captured_seq: 0,
            bounds: None,
            grabbed: None,
        })
    }

    /// Wait up to `timeout` for unreported damage, or until `wake` (if given) is readable;
    /// see [`super::Capturer::wait_for_damage_or`].
    pub fn wait(
        &mut self,
        conn: &RustConnection,
        timeout: Duration,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<bool, CaptureError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Events may already sit in x11rb's buffer, where poll(2) cannot see them.
            self.drain(conn)?;
            if self.pending {
                self.clear(conn)?;
                conn.flush()?;
                return Ok(true);
            }
            conn.flush()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let ready =
                crate::wake::wait_readable(conn.stream().as_fd(), wake, Some(deadline - now))?;
            if ready.woken {
                // Woken: the caller has something else to look at first.
                return Ok(false);
            }
            // Readable or hung up: the next drain reads the events, or reports the lost
            // connection as an error.
        }
    }

    /// Called right before a grab: everything seen so far counts as captured.
    pub fn mark_captured(&mut self, conn: &RustConnection) -> Result<(), CaptureError> {
        self.drain(conn)?;
        self.clear(conn)?;
        self.captured_seq = self.reported_seq;
        self.grabbed = self.bounds.take();
        Ok(())
    }

    /// Reads the events that arrived, without clearing anything: the damage bounds so far
    /// (clipped to `width` x `height`) and whether a resize is pending.
    pub fn peek(
        &mut self,
        conn: &RustConnection,
        width: u16,
        height: u16,
    ) -> Result<(Option<DamageRect>, bool), CaptureError> {
        self.drain(conn)?;
        Ok((self.bounds(width, height), self.resized.is_some()))
    }

    /// The damage the last capture brought news of, clipped to `width` x `height`; `None`
    /// when it is not known (the first grab: take it as the whole screen).
    pub fn grabbed(&self, width: u16, height: u16) -> Option<DamageRect> {
        clip(self.grabbed?, width, height)
    }

    /// The union of damage since the last capture, clipped to `width` x `height`.
    pub fn bounds(&self, width: u16, height: u16) -> Option<DamageRect> {
        clip(self.bounds?, width, height)
    }

    /// The screen's new size, `(width, height)`, if the root window was resized since the
    /// last call (as far as events read so far show).
    pub fn take_resize(&mut self) -> Option<(u16, u16)> {
        self.resized.take()
    }

    /// Free the damage object on the server (best effort).
    pub fn destroy(&self, conn: &RustConnection) {
        if let Ok(cookie) = conn.damage_destroy(self.damage) {
            cookie.ignore_error();
        }
    }

    /// Clear the server-side damage and forget the pending flag.
    fn clear(&mut self, conn: &RustConnection) -> Result<(), CaptureError> {
        let region: Region = NONE;
        let cookie = conn.damage_subtract(self.damage, region, region)?;
        self.reported_seq = cookie.sequence_number();
        // Errors for this request, should any come, arrive as events and are logged by drain.
        drop(cookie);
        self.pending = false;
        Ok(())
    }

    /// Read every event that has arrived, without blocking.
    fn drain(&mut self, conn: &RustConnection) -> Result<(), CaptureError> {
        while let Some((event, seq)) = conn.poll_for_event_with_sequence()? {
            match event {
                Event::DamageNotify(ev) if ev.damage == self.damage => {
                    if seq >= self.captured_seq {
                        self.add_area(ev.area);
                    }
                    if seq >= self.reported_seq {
                        self.pending = true;
                    }
                }
                Event::ConfigureNotify(c) if c.window == self.root => {
                    // A new size: everything on screen is new to the viewers.
                    self.resized = Some((c.width, c.height));
                    self.bounds = Some((0, 0, c.width.into(), c.height.into()));
                    self.pending = true;
                }
                Event::Error(e) => {
                    tracing::warn!(error = ?e.error_kind, major = e.major_opcode, "X error on the capture connection");
                }
                other => tracing::trace!(?other, "ignored X event"),
            }
        }
        Ok(())
    }

    fn add_area(&mut self, r: Rectangle) {
        let (x0, y0) = (i32::from(r.x), i32::from(r.y));
        let (x1, y1) = (x0 + i32::from(r.width), y0 + i32::from(r.height));
        self.bounds = Some(match self.bounds {
            None => (x0, y0, x1, y1),
            Some((a, b, c, d)) => (a.min(x0), b.min(y0), c.max(x1), d.max(y1)),
        });
    }
}

/// `(x0, y0, x1, y1)` clipped to `width` x `height`, as a rectangle (`None` if empty).
fn clip(b: (i32, i32, i32, i32), width: u16, height: u16) -> Option<DamageRect> {
    let (x0, y0, x1, y1) = b;
    let (x0, y0) = (x0.max(0), y0.max(0));
    let (x1, y1) = (x1.min(width.into()), y1.min(height.into()));
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    // All four are within 0..=65535 here, so the casts are lossless.
    Some(DamageRect {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
    })
}
