//! The portable grab: core-protocol `GetImage`, whose pixels travel over the X socket.
//! Slow at large sizes (the whole image is one reply) but works with any X server,
//! including one on another host.

use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, Window};
use x11rb::rust_connection::RustConnection;

use super::{CaptureError, Frame};

/// Grab `width` x `height` pixels of `root` from (0, 0) into `frame`. The reply's buffer
/// becomes the frame's data, so nothing is copied.
pub fn grab(
    conn: &RustConnection,
    root: Window,
    width: u16,
    height: u16,
    frame: &mut Frame,
) -> Result<(), CaptureError> {
    grab_at(conn, root, (0, 0), width, height, frame)
}

/// Like [`grab`], for the `width` x `height` rectangle whose top-left corner is `at`.
pub fn grab_at(
    conn: &RustConnection,
    root: Window,
    at: (i16, i16),
    width: u16,
    height: u16,
    frame: &mut Frame,
) -> Result<(), CaptureError> {
    let reply = conn
        .get_image(ImageFormat::Z_PIXMAP, root, at.0, at.1, width, height, !0)?
        .reply()?;
    let stride = usize::from(width) * 4;
    let needed = stride * usize::from(height);
    if reply.data.len() < needed {
        return Err(CaptureError::Protocol(format!(
            "GetImage returned {} bytes, expected {needed}",
            reply.data.len()
        )));
    }
    frame.width = width.into();
    frame.height = height.into();
    frame.stride = stride;
    frame.data = reply.data;
    frame.data.truncate(needed);
    Ok(())
}
