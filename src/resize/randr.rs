//! Setting the X screen's size and DPI: RandR modes, the CRTC, the screen's size in pixels and
//! millimetres, and `Xft.dpi` in the root window's `RESOURCE_MANAGER` property.
//!
//! A size the output does not list yet gets a mode of its own, named `vnrit-WxH`, created and
//! added to the output; the previous mode vnrit made is removed from the output and destroyed
//! once no longer in use, so modes never pile up (`vnrit-*` modes left by a vnrit that was
//! killed are cleared at start). Screen growth sets the screen size before the CRTC, shrinkage
//! after it, since the CRTC must always fit inside the screen. The physical size is set so that
//! `pixels x 25.4 / millimetres` is the requested DPI (what `xdpyinfo` reports and what toolkits
//! without `Xft.dpi` use); `Xft.dpi` is merged into the existing resources, as `xrdb -merge`
//! does, so every other resource stays.

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::randr::{self, ConnectionExt as _, Mode, ModeInfo, Output, SetConfig};
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, PropMode, Window};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::policy::{millimetres, Target};

/// Prefix of the names of the modes vnrit creates.
const MODE_PREFIX: &str = "vnrit-";
/// The largest RESOURCE_MANAGER read, in 32-bit units (256 KiB).
const MAX_RESOURCES: u32 = 65_536;

/// Why the screen could not be resized.
#[derive(Debug, thiserror::Error)]
pub enum RandrError {
    /// No connection to the X server.
    #[error("cannot connect to X display {display}: {reason}")]
    Connect {
        /// The display name.
        display: String,
        /// The cause.
        reason: String,
    },
    /// The server lacks RandR 1.2 or has no output to set.
    #[error("the X display cannot be resized: {0}")]
    Unsupported(String),
    /// A request failed.
    #[error("X request failed: {0}")]
    X(String),
}

impl From<x11rb::errors::ConnectionError> for RandrError {
    fn from(e: x11rb::errors::ConnectionError) -> Self {
        RandrError::X(e.to_string())
    }
}

impl From<x11rb::errors::ReplyError> for RandrError {
    fn from(e: x11rb::errors::ReplyError) -> Self {
        RandrError::X(e.to_string())
    }
}

impl From<x11rb::errors::ReplyOrIdError> for RandrError {
    fn from(e: x11rb::errors::ReplyOrIdError) -> Self {
        RandrError::X(e.to_string())
    }
}

/// The screen as it was before vnrit changed it.
#[derive(Debug, Clone, Copy)]
struct Original {
    mode: Mode,
    width: u16,
    height: u16,
    mm_width: u32,
    mm_height: u32,
}

/// One X connection that resizes screen 0's first output.
pub struct Screen {
    conn: RustConnection,
    root: Window,
    output: Output,
    crtc: randr::Crtc,
    /// The mode vnrit made that the CRTC uses now, if any.
    ours: Option<Mode>,
    original: Original,
    max: (u32, u32),
}

impl Screen {
    /// Connects to `display` and finds the output to resize (the primary one, else the
    /// first connected one with a CRTC).
    pub fn open(display: &str) -> Result<Screen, RandrError> {
        let (conn, screen_num) =
            x11rb::connect(Some(display)).map_err(|e| RandrError::Connect {
                display: display.to_string(),
                reason: e.to_string(),
            })?;
        if conn
            .extension_information(randr::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(RandrError::Unsupported("no RandR extension".into()));
        }
        let version = conn.randr_query_version(1, 2)?.reply()?;
        if (version.major_version, version.minor_version) < (1, 2) {
            return Err(RandrError::Unsupported(format!(
                "RandR {}.{} (1.2 needed)",
                version.major_version, version.minor_version
            )));
        }
        let screen = conn
            .setup()
            .roots
            .get(screen_num)
            .ok_or_else(|| RandrError::Unsupported("no such screen".into()))?;
        let (root, mm_width, mm_height) = (
            screen.root,
            u32::from(screen.width_in_millimeters),
            u32::from(screen.height_in_millimeters),
        );
        let range = conn.randr_get_screen_size_range(root)?.reply()?;
        let res = conn.randr_get_screen_resources_current(root)?.reply()?;
        let primary = conn.randr_get_output_primary(root)?.reply()?.output;
        let mut chosen = None;
        for &output in std::iter::once(&primary)
            .filter(|o| **o != 0)
            .chain(res.outputs.iter())
        {
            let info = conn
                .randr_get_output_info(output, res.config_timestamp)?
                .reply()?;
            if info.crtc != 0 && info.connection == randr::Connection::CONNECTED {
                chosen = Some((output, info.crtc));
                break;
            }
        }
        let (output, crtc) =
            chosen.ok_or_else(|| RandrError::Unsupported("no active output".into()))?;
        let crtc_info = conn
            .randr_get_crtc_info(crtc, res.config_timestamp)?
            .reply()?;
        let geometry = conn.get_geometry(root)?.reply()?;
        let mut screen = Screen {
            conn,
            root,
            output,
            crtc,
            ours: None,
            original: Original {
                mode: crtc_info.mode,
                width: geometry.width,
                height: geometry.height,
                mm_width,
                mm_height,
            },
            max: (u32::from(range.max_width), u32::from(range.max_height)),
        };
        screen.clear_stale_modes(crtc_info.mode)?;
        Ok(screen)
    }

    /// The largest size the display takes.
    pub fn max(&self) -> (u32, u32) {
        self.max
    }

    /// The size and DPI the screen had when opened.
    pub fn original(&self) -> Target {
        let o = self.original;
        let dpi = if o.mm_width > 0 {
            (f64::from(o.width) * 25.4 / f64::from(o.mm_width)).round() as u32
        } else {
            96
        };
        Target {
            width: u32::from(o.width),
            height: u32::from(o.height),
            dpi,
        }
    }

    /// Sets the screen to `target`: size through RandR, DPI through the physical size and
    /// `Xft.dpi`.
    pub fn apply(&mut self, target: Target) -> Result<(), RandrError> {
        let (w, h) = (size16(target.width)?, size16(target.height)?);
        let mm = (
            millimetres(target.width, target.dpi),
            millimetres(target.height, target.dpi),
        );
        let res = self
            .conn
            .randr_get_screen_resources_current(self.root)?
            .reply()?;
        let out = self
            .conn
            .randr_get_output_info(self.output, res.config_timestamp)?
            .reply()?;
        let (mode, made) = match find_mode(&res, &out.modes, w, h) {
            Some(mode) => (mode, is_ours(&res, mode)),
            None => (self.create_mode(w, h)?, true),
        };
        if !out.modes.contains(&mode) {
            self.conn
                .randr_add_output_mode(self.output, mode)?
                .check()?;
        }
        self.set(mode, w, h, mm, res.config_timestamp)?;
        self.set_dpi(target.dpi)?;
        // The mode made for the previous size goes once the CRTC no longer uses it.
        if let Some(old) = std::mem::replace(&mut self.ours, made.then_some(mode)) {
            if old != mode {
                self.drop_mode(old);
            }
        }
        self.conn.sync()?;
        Ok(())
    }

    /// Puts the screen back as it was when opened (size, mode, physical size) and removes the
    /// mode vnrit made. DPI resources stay as last set.
    pub fn restore(&mut self) -> Result<(), RandrError> {
        let o = self.original;
        let res = self
            .conn
            .randr_get_screen_resources_current(self.root)?
            .reply()?;
        if o.mode != 0 {
            self.set(
                o.mode,
                o.width,
                o.height,
                (o.mm_width, o.mm_height),
                res.config_timestamp,
            )?;
        }
        if let Some(old) = self.ours.take() {
            self.drop_mode(old);
        }
        self.conn.sync()?;
        Ok(())
    }

    /// The CRTC to `mode` and the screen to `w`x`h` (`mm` millimetres), in an order that keeps
    /// the CRTC inside the screen.
    fn set(
        &self,
        mode: Mode,
        w: u16,
        h: u16,
        mm: (u32, u32),
        config_timestamp: u32,
    ) -> Result<(), RandrError> {
        let now = self.conn.get_geometry(self.root)?.reply()?;
        if w > now.width || h > now.height {
            self.conn
                .randr_set_screen_size(self.root, w.max(now.width), h.max(now.height), mm.0, mm.1)?
                .check()?;
        }
        let reply = self
            .conn
            .randr_set_crtc_config(
                self.crtc,
                x11rb::CURRENT_TIME,
                config_timestamp,
                0,
                0,
                mode,
                randr::Rotation::ROTATE0,
                &[self.output],
            )?
            .reply()?;
        if reply.status != SetConfig::SUCCESS {
            return Err(RandrError::X(format!(
                "setting the CRTC to {w}x{h} answered {:?}",
                reply.status
            )));
        }
        self.conn
            .randr_set_screen_size(self.root, w, h, mm.0, mm.1)?
            .check()?;
        Ok(())
    }

    fn create_mode(&self, w: u16, h: u16) -> Result<Mode, RandrError> {
        let name = format!("{MODE_PREFIX}{w}x{h}");
        let info = ModeInfo {
            id: 0,
            width: w,
            height: h,
            // 60 Hz; a virtual screen ignores the timings, a real one checks them.
            dot_clock: u32::from(w) * u32::from(h) * 60,
            hsync_start: w,
            hsync_end: w,
            htotal: w,
            hskew: 0,
            vsync_start: h,
            vsync_end: h,
            vtotal: h,
            name_len: name.len() as u16,
            mode_flags: 0u32.into(),
        };
        Ok(self
            .conn
            .randr_create_mode(self.root, info, name.as_bytes())?
            .reply()?
            .mode)
    }

    /// Removes `mode` from the output and destroys it; errors are logged, not fatal.
    fn drop_mode(&self, mode: Mode) {
        let r = self
            .conn
            .randr_delete_output_mode(self.output, mode)
            .map_err(RandrError::from)
            .and_then(|c| c.check().map_err(RandrError::from))
            .and_then(|()| self.conn.randr_destroy_mode(mode).map_err(RandrError::from))
            .and_then(|c| c.check().map_err(RandrError::from));
        if let Err(err) = r {
            tracing::debug!("could not remove RandR mode {mode}: {err}");
        }
    }

    /// Removes `vnrit-*` modes a killed vnrit left behind (not the one in use).
    fn clear_stale_modes(&mut self, in_use: Mode) -> Result<(), RandrError> {
        let res = self
            .conn
            .randr_get_screen_resources_current(self.root)?
            .reply()?;
        for m in &res.modes {
            if !is_ours(&res, m.id) {
                continue;
            }
            if m.id == in_use {
                self.ours = Some(m.id);
            } else {
                self.drop_mode(m.id);
            }
        }
        Ok(())
    }

    /// Sets `Xft.dpi` in the root window's RESOURCE_MANAGER, keeping every other resource.
    fn set_dpi(&self, dpi: u32) -> Result<(), RandrError> {
        let reply = self
            .conn
            .get_property(
                false,
                self.root,
                AtomEnum::RESOURCE_MANAGER,
                AtomEnum::STRING,
                0,
                MAX_RESOURCES,
            )?
            .reply()?;
        let old = String::from_utf8_lossy(&reply.value);
        let merged = merge_resource(&old, "Xft.dpi", &dpi.to_string());
        self.conn
            .change_property8(
                PropMode::REPLACE,
                self.root,
                AtomEnum::RESOURCE_MANAGER,
                AtomEnum::STRING,
                merged.as_bytes(),
            )?
            .check()?;
        Ok(())
    }
}

/// A size as X takes it.
fn size16(v: u32) -> Result<u16, RandrError> {
    u16::try_from(v).map_err(|_| RandrError::X(format!("size {v} is out of X's range")))
}

/// The name of mode `id` in the resources' name list.
fn name_of(res: &randr::GetScreenResourcesCurrentReply, id: Mode) -> Option<&[u8]> {
    let mut at = 0usize;
    for m in &res.modes {
        let end = at + usize::from(m.name_len);
        if m.id == id {
            return res.names.get(at..end);
        }
        at = end;
    }
    None
}

/// Whether mode `id` is one vnrit made (its name starts with [`MODE_PREFIX`]).
fn is_ours(res: &randr::GetScreenResourcesCurrentReply, id: Mode) -> bool {
    name_of(res, id).is_some_and(|n| n.starts_with(MODE_PREFIX.as_bytes()))
}

/// A mode of exactly `w`x`h`: one the output lists already, else a `vnrit-` mode that exists.
fn find_mode(
    res: &randr::GetScreenResourcesCurrentReply,
    listed: &[Mode],
    w: u16,
    h: u16,
) -> Option<Mode> {
    let sized = |m: &&ModeInfo| m.width == w && m.height == h;
    res.modes
        .iter()
        .filter(sized)
        .find(|m| listed.contains(&m.id))
        .or_else(|| res.modes.iter().filter(sized).find(|m| is_ours(res, m.id)))
        .map(|m| m.id)
}

/// `db` (an X resource database as text) with `name` set to `value`: the entry replaced where
/// it was, or added at the end; every other entry, comment and continued line kept.
pub fn merge_resource(db: &str, name: &str, value: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut found = false;
    let mut entry = String::new();
    for line in db.split('\n') {
        entry.push_str(line);
        // A line ending in an odd number of backslashes continues on the next one.
        if line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1 {
            entry.push('\n');
            continue;
        }
        let done = std::mem::take(&mut entry);
        if done.trim().is_empty() {
            continue;
        }
        if resource_name(&done) == Some(name) {
            if !found {
                out.push(format!("{name}:\t{value}"));
                found = true;
            }
            continue;
        }
        out.push(done);
    }
    if !entry.trim().is_empty() {
        out.push(entry);
    }
    if !found {
        out.push(format!("{name}:\t{value}"));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The resource name of one entry (`name: value`); `None` for comments and directives.
fn resource_name(entry: &str) -> Option<&str> {
    let t = entry.trim_start();
    if t.starts_with('!') || t.starts_with('#') {
        return None;
    }
    t.split_once(':').map(|(k, _)| k.trim())
}

#[cfg(test)]
mod tests {
    use super::merge_resource;

    #[test]
    fn merge_adds_to_an_empty_database() {
        assert_eq!(merge_resource("", "Xft.dpi", "192"), "Xft.dpi:\t192\n");
    }

    #[test]
    fn merge_replaces_in_place_and_keeps_the_rest() {
        let db = "*background:\tgrey\nXft.dpi:\t96\n! a comment\nXTerm*faceName:\tMono\n";
        assert_eq!(
            merge_resource(db, "Xft.dpi", "192"),
            "*background:\tgrey\nXft.dpi:\t192\n! a comment\nXTerm*faceName:\tMono\n"
        );
    }

    #[test]
    fn merge_keeps_continued_lines_and_drops_duplicates() {
        let db = "a.b: one \\\n  two\nXft.dpi : 120\nXft.dpi: 144\nc: d";
        assert_eq!(
            merge_resource(db, "Xft.dpi", "96"),
            "a.b: one \\\n  two\nXft.dpi:\t96\nc: d\n"
        );
        // A resource whose name merely contains the key is another resource.
        assert_eq!(
            merge_resource("*Xft.dpi: 1\n", "Xft.dpi", "96"),
            "*Xft.dpi: 1\nXft.dpi:\t96\n"
        );
    }
}
