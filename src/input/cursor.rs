//! Following the X cursor for the pages: its image (XFixes cursor notify + GetCursorImage,
//! cached by serial) and the pointer position (XInput 2 raw motion on the root window, then
//! one QueryPointer per batch of events), so nothing runs while the pointer rests.
//!
//! Raw motion comes from every device, XTest included, but not from XWarpPointer; while pages
//! watch, the X thread also checks the position (every 250 ms while busy, every second when
//! idle) to pick up warps.

use std::collections::HashMap;
use std::sync::Arc;

use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError};
use x11rb::protocol::xproto::{ConnectionExt as _, Window};
use x11rb::protocol::{xfixes, xinput, Event};

use super::wire::{self, CursorShape};
use super::Publisher;

/// Cursor images larger than this many pixels are not sent (the page shows its own arrow).
const MAX_CURSOR_PIXELS: usize = 96 * 96;
/// Cursor images kept, by serial.
const CACHE: usize = 32;

/// The cursor watcher's state.
#[derive(Debug)]
pub(crate) struct CursorWatch {
    root: Window,
    shapes: bool,
    serial: u32,
    cache: HashMap<u32, Arc<str>>,
    position: Option<(i16, i16)>,
    moved: bool,
}

impl CursorWatch {
    /// Subscribe to cursor changes and raw motion; a missing extension disables that part.
    pub(crate) fn start(conn: &impl Connection, root: Window) -> Result<CursorWatch, ReplyError> {
        let shapes = conn
            .extension_information(xfixes::X11_EXTENSION_NAME)?
            .is_some();
        if shapes {
            xfixes::query_version(conn, 5, 0)?.reply()?;
            xfixes::select_cursor_input(conn, root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)?;
        } else {
            tracing::warn!("input: no XFIXES extension; the page shows its own cursor");
        }
        if conn
            .extension_information(xinput::X11_EXTENSION_NAME)?
            .is_some()
        {
            xinput::xi_query_version(conn, 2, 2)?.reply()?;
            let all_master = u16::from(u8::from(xinput::Device::ALL_MASTER));
            xinput::xi_select_events(
                conn,
                root,
                &[xinput::EventMask {
                    deviceid: all_master,
                    mask: vec![xinput::XIEventMask::RAW_MOTION],
                }],
            )?;
        } else {
            tracing::warn!(
                "input: no XInputExtension; pointer position follows shape changes only"
            );
        }
        Ok(CursorWatch {
            root,
            shapes,
            serial: 0,
            cache: HashMap::new(),
            position: None,
            moved: true,
        })
    }

    /// Note an X event; returns whether it was one of ours.
    pub(crate) fn on_event(
        &mut self,
        conn: &impl Connection,
        ev: &Event,
        publish: &Publisher,
    ) -> Result<bool, ReplyError> {
        match ev {
            Event::XinputRawMotion(_) => self.moved = true,
            Event::XfixesCursorNotify(n) => {
                self.moved = true;
                self.shape(conn, Some(n.cursor_serial), publish)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Fetch and publish the current image unless `serial` is already known.
    pub(crate) fn shape(
        &mut self,
        conn: &impl Connection,
        serial: Option<u32>,
        publish: &Publisher,
    ) -> Result<(), ReplyError> {
        if !self.shapes || (serial.is_some() && serial == Some(self.serial)) {
            return Ok(());
        }
        if let Some(text) = serial.and_then(|s| self.cache.get(&s)) {
            publish.shape(Arc::clone(text));
            self.serial = serial.unwrap_or_default();
            return Ok(());
        }
        let img = xfixes::get_cursor_image(conn)?.reply()?;
        let (w, h) = (usize::from(img.width), usize::from(img.height));
        let shape = if w * h <= MAX_CURSOR_PIXELS && img.cursor_image.len() >= w * h {
            CursorShape {
                serial: img.cursor_serial,
                width: img.width,
                height: img.height,
                hot_x: img.xhot,
                hot_y: img.yhot,
                argb: img.cursor_image,
            }
        } else {
            CursorShape {
                serial: img.cursor_serial,
                width: 0,
                height: 0,
                hot_x: 0,
                hot_y: 0,
                argb: Vec::new(),
            }
        };
        let (sw, sh) = publish.screen();
        let text: Arc<str> = wire::encode_cursor(&shape, sw, sh).into();
        if self.cache.len() >= CACHE {
            self.cache.clear();
        }
        self.cache.insert(img.cursor_serial, Arc::clone(&text));
        self.serial = img.cursor_serial;
        publish.shape(text);
        Ok(())
    }

    /// Look at the pointer position at the next [`CursorWatch::flush`] (a periodic check).
    pub(crate) fn check_position(&mut self) {
        self.moved = true;
    }

    /// After a batch of events: if the pointer may have moved, publish where it is now.
    /// Returns whether it asked the server (so more events may have been read).
    pub(crate) fn flush(
        &mut self,
        conn: &impl Connection,
        publish: &Publisher,
    ) -> Result<bool, ConnectionError> {
        if !self.moved {
            return Ok(false);
        }
        self.moved = false;
        let p = match conn.query_pointer(self.root)?.reply() {
            Ok(p) => p,
            Err(ReplyError::ConnectionError(e)) => return Err(e),
            Err(ReplyError::X11Error(e)) => {
                tracing::debug!("input: QueryPointer failed: {:?}", e.error_kind);
                return Ok(true);
            }
        };
        let pos = (p.root_x, p.root_y);
        if self.position != Some(pos) {
            self.position = Some(pos);
            let (sw, sh) = publish.screen();
            let x = f64::from(pos.0) / f64::from(sw.max(1));
            let y = f64::from(pos.1) / f64::from(sh.max(1));
            publish.pointer(wire::encode_pointer(x, y).into());
        }
        Ok(true)
    }
}
