//! Screen capture from an X11 server: whole-screen grabs in 32-bit BGRX, taken only when the
//! DAMAGE extension says something changed.
//!
//! A [`Capturer`] owns one X connection. It grabs the root window of the display's screen
//! either through MIT-SHM (the server writes into a shared memory segment, see [`shm`]) or,
//! when that is unavailable or fails (a display on another host, a server without MIT-SHM),
//! through plain `GetImage` (the pixels travel over the socket, see [`getimage`]).
//!
//! Change detection ([`damage`]) uses a DAMAGE object on the root window and `poll(2)` on the
//! connection's socket, so a still screen costs no CPU. The DAMAGE extension is required:
//! without it there is no cheap way to know when to grab, and [`Capturer::open`] fails with
//! [`CaptureError::MissingExtension`] rather than silently polling.
//!
//! A RandR resize of the screen is followed: the root window's `ConfigureNotify` (or, if a
//! grab fails first because the screen shrank, a `GetGeometry` round trip) gives the new
//! size, the next grab has it, and the MIT-SHM segment is re-made to fit.
//!
//! Limitations:
//! * Only 24/32-bit TrueColor screens in little-endian image byte order (every Xvfb and
//!   x86/ARM X server) are supported; others fail at open with [`CaptureError::UnsupportedFormat`].
//! * A grab waits for the server's reply without a timeout: a stopped (SIGSTOP) server blocks it.

pub mod damage;
pub mod getimage;
pub mod shm;

use std::os::fd::BorrowedFd;
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::errors::{ConnectError, ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageOrder, Screen, Setup, VisualClass, Window};
use x11rb::rust_connection::RustConnection;

use damage::DamageWatch;

/// One captured screen image: 32-bit BGRX (byte order B,G,R,X in memory, i.e. X11 ZPixmap
/// depth 24/32 on little-endian). The X byte carries no meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next (at least `width * 4`).
    pub stride: usize,
    /// `stride * height` bytes of pixel data, top row first.
    pub data: Vec<u8>,
}

impl Frame {
    /// The `[b, g, r, x]` bytes of the pixel at (`x`, `y`), or `None` outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = y as usize * self.stride + x as usize * 4;
        let px = self.data.get(at..at + 4)?;
        Some([px[0], px[1], px[2], px[3]])
    }
}

/// How [`Capturer`] reads pixels from the X server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureMethod {
    /// MIT-SHM when the server offers it and attaching a segment works, else GetImage.
    Auto,
    /// MIT-SHM shared memory (fast; only for a server on this machine).
    Shm,
    /// Core-protocol GetImage (slow, works everywhere including remote displays).
    GetImage,
}

/// A screen rectangle in pixels (damage bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DamageRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (> 0).
    pub width: u32,
    /// Height (> 0).
    pub height: u32,
}

/// Everything that can go wrong while capturing.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No connection could be made to the display.
    #[error("cannot connect to X display {display}: {source}; check that the X server is running and that --display (or $DISPLAY) names it")]
    Connect {
        /// The display name as given (or `$DISPLAY`).
        display: String,
        /// What x11rb reported.
        #[source]
        source: ConnectError,
    },
    /// The X server went away (it exited, crashed or closed our connection).
    #[error("lost the X server connection ({0}); the X server probably exited: restart it, or let vnrit start its own Xvfb")]
    Disconnected(String),
    /// A required X extension is absent.
    #[error("the X server lacks the {0} extension, which vnrit needs to capture the screen; use an X server that has it (Xvfb and Xorg do)")]
    MissingExtension(&'static str),
    /// MIT-SHM was requested explicitly but cannot be used.
    #[error("MIT-SHM capture is not possible: {0}; use the GetImage capture method instead")]
    ShmUnavailable(String),
    /// The screen's pixel format is not 32-bit BGRX.
    #[error("unsupported screen pixel format: {0}; run the X server at depth 24 (e.g. Xvfb -screen 0 1920x1080x24)")]
    UnsupportedFormat(String),
    /// The X server answered a request with an error.
    #[error("the X server refused a capture request: {0}")]
    Protocol(String),
    /// A system call failed.
    #[error("system error while capturing: {0}")]
    Io(#[from] std::io::Error),
}

/// What vnrit says when the X server at `display` went away. Whichever part notices first (the
/// display watcher, or a running video pipeline whose connection broke) reports it in these
/// words, so the exit message does not depend on which thread won the race.
pub fn lost_server(display: &str) -> String {
    format!(
        "lost the X server at {display}; start it again (or restart vnrit without --display for a virtual one)"
    )
}

impl CaptureError {
    /// Whether this error means the X server went away.
    pub fn is_lost_server(&self) -> bool {
        matches!(self, CaptureError::Disconnected(_))
    }
}

impl From<ConnectionError> for CaptureError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::IoError(io) => CaptureError::Disconnected(io.to_string()),
            other => CaptureError::Protocol(other.to_string()),
        }
    }
}

impl From<ReplyError> for CaptureError {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::ConnectionError(c) => c.into(),
            ReplyError::X11Error(x) => CaptureError::Protocol(format!(
                "{:?} error for request {}.{}",
                x.error_kind, x.major_opcode, x.minor_opcode
            )),
        }
    }
}

impl From<ReplyOrIdError> for CaptureError {
    fn from(e: ReplyOrIdError) -> Self {
        match e {
            ReplyOrIdError::ConnectionError(c) => c.into(),
            ReplyOrIdError::X11Error(x) => ReplyError::X11Error(x).into(),
            ReplyOrIdError::IdsExhausted => {
                CaptureError::Protocol("X resource ids exhausted".into())
            }
        }
    }
}

/// The pixel source in use.
enum Grabber {
    Shm(shm::ShmGrabber),
    GetImage,
}

/// Grabs the screen of one X display, and waits for it to change. `Send`: it may move to
/// (and live on) a pipeline thread.
pub struct Capturer {
    conn: RustConnection,
    /// The display name as given to [`Capturer::open`] (MIT-SHM checks it is local).
    display: Option<String>,
    root: Window,
    width: u16,
    height: u16,
    grabber: Grabber,
    damage: DamageWatch,
    frame: Frame,
}

impl Capturer {
    /// Connect to `display` (None = `$DISPLAY`). `Auto` picks MIT-SHM when offered, else
    /// GetImage. Sets up XDamage on the root window.
    pub fn open(display: Option<&str>, method: CaptureMethod) -> Result<Self, CaptureError> {
        let shown = display
            .map(str::to_owned)
            .or_else(|| std::env::var("DISPLAY").ok())
            .unwrap_or_else(|| "(none: $DISPLAY is not set)".to_owned());
        let (conn, screen_num) =
            x11rb::connect(display).map_err(|source| CaptureError::Connect {
                display: shown.clone(),
                source,
            })?;
        let setup = conn.setup();
        let screen = setup
            .roots
            .get(screen_num)
            .ok_or_else(|| CaptureError::Protocol(format!("screen {screen_num} does not exist")))?;
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        check_format(setup, screen)?;

        let damage = DamageWatch::new(&conn, root)?;
        let grabber = match method {
            CaptureMethod::GetImage => Grabber::GetImage,
            CaptureMethod::Shm => {
                Grabber::Shm(shm::ShmGrabber::new(&conn, display, width, height)?)
            }
            CaptureMethod::Auto => match shm::ShmGrabber::new(&conn, display, width, height) {
                Ok(g) => Grabber::Shm(g),
                Err(CaptureError::ShmUnavailable(why)) => {
                    tracing::info!("MIT-SHM unavailable ({why}); capturing with GetImage");
                    Grabber::GetImage
                }
                Err(e) => return Err(e),
            },
        };
        let capturer = Capturer {
            conn,
            display: display.map(str::to_owned),
            root,
            width,
            height,
            grabber,
            damage,
            frame: Frame {
                width: width.into(),
                height: height.into(),
                stride: usize::from(width) * 4,
                data: Vec::new(),
            },
        };
        tracing::info!(
            display = %shown,
            width,
            height,
            method = ?capturer.method(),
            "screen capture ready"
        );
        Ok(capturer)
    }

    /// The captured screen's size in pixels, `(width, height)`: the size at open, or after
    /// a resize, the size of the last grab.
    pub fn size(&self) -> (u32, u32) {
        (self.width.into(), self.height.into())
    }

    /// The method actually in use ([`CaptureMethod::Shm`] or [`CaptureMethod::GetImage`]).
    pub fn method(&self) -> CaptureMethod {
        match self.grabber {
            Grabber::Shm(_) => CaptureMethod::Shm,
            Grabber::GetImage => CaptureMethod::GetImage,
        }
    }

    /// Block up to `timeout` for screen damage, sleeping in `poll(2)` on the connection.
    /// Returns `Ok(true)` if anything changed since the last call to [`capture`](Self::capture)
    /// or `wait_for_damage` reported it, `Ok(false)` on timeout.
    pub fn wait_for_damage(&mut self, timeout: Duration) -> Result<bool, CaptureError> {
        self.damage.wait(&self.conn, timeout, None)
    }

    /// Like [`wait_for_damage`](Self::wait_for_damage), but also returns `Ok(false)` as soon
    /// as `wake` is readable, so another thread can cut the sleep short (the caller clears
    /// `wake`). A damage already pending is still reported first.
    pub fn wait_for_damage_or(
        &mut self,
        timeout: Duration,
        wake: BorrowedFd<'_>,
    ) -> Result<bool, CaptureError> {
        self.damage.wait(&self.conn, timeout, Some(wake))
    }

    /// The bounding box of the damage reported since the last [`capture`](Self::capture),
    /// clipped to the screen; `None` if nothing changed (as far as events read so far show).
    pub fn damage_bounds(&self) -> Option<DamageRect> {
        self.damage.bounds(self.width, self.height)
    }

    /// Grab the whole screen now (this also clears pending damage). Returns the frame; its
    /// buffer is reused by the next call.
    pub fn capture(&mut self) -> Result<&Frame, CaptureError> {
        self.grab()?;
        if let Grabber::Shm(g) = &self.grabber {
            let (pixels, stride) = g.pixels();
            self.frame.width = self.width.into();
            self.frame.height = self.height.into();
            self.frame.stride = stride;
            self.frame.data.clear();
            self.frame.data.extend_from_slice(pixels);
        }
        Ok(&self.frame)
    }

    /// Clears the damage, follows a resize, and grabs into the segment (MIT-SHM) or `frame`.
    fn grab(&mut self) -> Result<(), CaptureError> {
        // Clear damage before grabbing: drawing after this point raises fresh damage, so no
        // change can slip between the grab and the next wait.
        self.damage.mark_captured(&self.conn)?;
        if let Some((width, height)) = self.damage.take_resize() {
            self.resize(width, height)?;
        }
        match self.fetch() {
            // A screen that shrank before its ConfigureNotify was read fails a grab of the
            // old size (BadMatch): ask the server for the size and, if it changed, retry.
            Err(CaptureError::Protocol(why)) => {
                let geometry = self.conn.get_geometry(self.root)?.reply()?;
                if (geometry.width, geometry.height) == (self.width, self.height) {
                    return Err(CaptureError::Protocol(why));
                }
                self.resize(geometry.width, geometry.height)?;
                self.fetch()
            }
            other => other,
        }
    }

    fn fetch(&mut self) -> Result<(), CaptureError> {
        match &mut self.grabber {
            Grabber::Shm(g) => g.fetch(&self.conn, self.root),
            Grabber::GetImage => getimage::grab(
                &self.conn,
                self.root,
                self.width,
                self.height,
                &mut self.frame,
            ),
        }
    }

    /// Adopts a new screen size: later grabs have it, and MIT-SHM gets a segment that fits
    /// (GetImage from now on if that fails, so the picture keeps coming).
    fn resize(&mut self, width: u16, height: u16) -> Result<(), CaptureError> {
        if (width, height) == (self.width, self.height) || width == 0 || height == 0 {
            return Ok(());
        }
        tracing::info!(
            from = %format_args!("{}x{}", self.width, self.height),
            to = %format_args!("{width}x{height}"),
            "the screen was resized"
        );
        if let Grabber::Shm(old) = &self.grabber {
            old.detach(&self.conn);
            self.grabber =
                match shm::ShmGrabber::new(&self.conn, self.display.as_deref(), width, height) {
                    Ok(g) => Grabber::Shm(g),
                    Err(CaptureError::ShmUnavailable(why)) => {
                        tracing::warn!(
                            "MIT-SHM unavailable after the resize ({why}); capturing with GetImage"
                        );
                        Grabber::GetImage
                    }
                    Err(e) => return Err(e),
                };
        }
        self.width = width;
        self.height = height;
        self.frame.width = width.into();
        self.frame.height = height.into();
        self.frame.stride = usize::from(width) * 4;
        self.frame.data.clear();
        Ok(())
    }
}

/// A whole-screen grab borrowed from the capturer without a copy (see
/// [`Capturer::capture_pixels`]): 32-bit BGRX rows like [`Frame`].
#[derive(Clone, Copy, Debug)]
pub struct Pixels<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next.
    pub stride: usize,
    /// `stride * height` bytes, top row first.
    pub data: &'a [u8],
}

impl Capturer {
    /// Grab the whole screen now, like [`capture`](Self::capture), but without copying the
    /// pixels out of the shared memory segment: the returned view points into it (MIT-SHM)
    /// or into the reply buffer (GetImage). It borrows the capturer, so no other grab can
    /// overwrite the pixels while they are read. Saves an 8 MB copy per 1080p frame.
    pub fn capture_pixels(&mut self) -> Result<Pixels<'_>, CaptureError> {
        self.grab()?;
        let (data, stride) = match &self.grabber {
            Grabber::Shm(g) => g.pixels(),
            Grabber::GetImage => (&self.frame.data[..], self.frame.stride),
        };
        Ok(Pixels {
            width: self.width.into(),
            height: self.height.into(),
            stride,
            data,
        })
    }
}

impl Capturer {
    /// The damage the last grab brought news of (`None`: unknown, e.g. the first grab; take
    /// it as the whole screen). Lets the caller tell the encoder's lossy areas apart.
    pub fn grabbed_damage(&self) -> Option<DamageRect> {
        self.damage.grabbed(self.width, self.height)
    }

    /// The damage reported so far (reading any events that arrived), without grabbing;
    /// `None` when nothing is known to have changed or a resize is pending (then grab the
    /// whole screen).
    pub fn pending_damage(&mut self) -> Result<Option<DamageRect>, CaptureError> {
        let (bounds, resized) = self.damage.peek(&self.conn, self.width, self.height)?;
        Ok(if resized { None } else { bounds })
    }

    /// Grabs only the damaged area, widened to multiples of `align` pixels and clipped to
    /// the screen (this clears the pending damage, as a whole-screen grab does). Returns the
    /// area and its pixels (rows of `width * 4` bytes), or `None` without grabbing when the
    /// damage is unknown, a resize is pending, or the capture method cannot grab parts.
    pub fn capture_damage(
        &mut self,
        align: u32,
    ) -> Result<Option<(DamageRect, Pixels<'_>)>, CaptureError> {
        if self.pending_damage()?.is_none() {
            return Ok(None);
        }
        self.damage.mark_captured(&self.conn)?;
        let Some(d) = self.damage.grabbed(self.width, self.height) else {
            return Ok(None);
        };
        let align = align.max(1);
        let (sw, sh) = (u32::from(self.width), u32::from(self.height));
        let (x0, y0) = (d.x / align * align, d.y / align * align);
        let x1 = (d.x + d.width)
            .div_ceil(align)
            .saturating_mul(align)
            .min(sw);
        let y1 = (d.y + d.height)
            .div_ceil(align)
            .saturating_mul(align)
            .min(sh);
        let rect = DamageRect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        };
        // Within the screen (at most 65535 on each side), so the casts are lossless.
        let at = (x0 as i16, y0 as i16);
        let (w, h) = (rect.width as u16, rect.height as u16);
        let (data, stride) = match &mut self.grabber {
            Grabber::Shm(g) => {
                g.fetch_at(&self.conn, self.root, at, w, h)?;
                g.pixels_of(w, h)
            }
            Grabber::GetImage => {
                getimage::grab_at(&self.conn, self.root, at, w, h, &mut self.frame)?;
                (&self.frame.data[..], self.frame.stride)
            }
        };
        Ok(Some((
            rect,
            Pixels {
                width: rect.width,
                height: rect.height,
                stride,
                data,
            },
        )))
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        if let Grabber::Shm(g) = &self.grabber {
            g.detach(&self.conn);
        }
        self.damage.destroy(&self.conn);
        // Best effort: the server frees everything of ours when the connection closes anyway.
        let _ = self.conn.flush();
    }
}

/// Check that ZPixmap images of the root window come out as 32-bit little-endian BGRX.
fn check_format(setup: &Setup, screen: &Screen) -> Result<(), CaptureError> {
    let depth = screen.root_depth;
    if depth != 24 && depth != 32 {
        return Err(CaptureError::UnsupportedFormat(format!(
            "screen depth is {depth}"
        )));
    }
    let bpp = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == depth)
        .map(|f| f.bits_per_pixel)
        .unwrap_or(0);
    if bpp != 32 {
        return Err(CaptureError::UnsupportedFormat(format!(
            "depth {depth} is stored at {bpp} bits per pixel, not 32"
        )));
    }
    if setup.image_byte_order != ImageOrder::LSB_FIRST {
        return Err(CaptureError::UnsupportedFormat(
            "the server sends images most-significant byte first".into(),
        ));
    }
    let visual = screen
        .allowed_depths
        .iter()
        .flat_map(|d| d.visuals.iter())
        .find(|v| v.visual_id == screen.root_visual);
    match visual {
        Some(v)
            if v.class == VisualClass::TRUE_COLOR
                && v.red_mask == 0x00ff_0000
                && v.green_mask == 0x0000_ff00
                && v.blue_mask == 0x0000_00ff =>
        {
            Ok(())
        }
        Some(v) => Err(CaptureError::UnsupportedFormat(format!(
            "root visual is {:?} with masks r={:#x} g={:#x} b={:#x}",
            v.class, v.red_mask, v.green_mask, v.blue_mask
        ))),
        None => Err(CaptureError::UnsupportedFormat(
            "the root visual is not listed by the server".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capturer_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Capturer>();
    }

    #[test]
    fn pixel_reads_bgrx_and_rejects_outside() {
        let frame = Frame {
            width: 2,
            height: 1,
            stride: 8,
            data: vec![1, 2, 3, 0, 4, 5, 6, 0],
        };
        assert_eq!(frame.pixel(1, 0), Some([4, 5, 6, 0]));
        assert_eq!(frame.pixel(2, 0), None);
        assert_eq!(frame.pixel(0, 1), None);
    }
}
