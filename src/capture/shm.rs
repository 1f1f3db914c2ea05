//! The fast grab: MIT-SHM. The X server writes the screen into a System V shared memory
//! segment that this process has mapped, and the pixels are read straight from there.
//!
//! [`ShmSegment`] owns the segment: it is created with mode 0600, marked for removal
//! (`IPC_RMID`) as soon as the X server has attached it, and detached on drop, so it cannot
//! outlive the process even if the process is killed.

use std::io;
use std::ptr::NonNull;

use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::ReplyError;
use x11rb::protocol::shm::{self, ConnectionExt as _, Seg};
use x11rb::protocol::xproto::{ImageFormat, Window};
use x11rb::rust_connection::RustConnection;
use x11rb::x11_utils::X11Error;

use super::CaptureError;

/// A System V shared memory segment mapped into this process.
pub struct ShmSegment {
    id: libc::c_int,
    addr: NonNull<u8>,
    len: usize,
    removed: bool,
}

// SAFETY: the mapping belongs to the whole process, not to the creating thread, and the
// struct is its only owner, so moving it to another thread is sound.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    /// Create a private segment of `len` bytes (mode 0600) and map it.
    pub fn create(len: usize) -> io::Result<Self> {
        // SAFETY: shmget takes only plain integers and touches no memory of ours.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `id` names the segment just created; a null address lets the kernel pick
        // where to map it, so no existing mapping is disturbed.
        let raw = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if raw as isize == -1 {
            let err = io::Error::last_os_error();
            // SAFETY: removing the segment we created (and never mapped); no memory involved.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(err);
        }
        let Some(addr) = NonNull::new(raw.cast::<u8>()) else {
            // SAFETY: as above; shmat never maps at null, this is only defensive.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(io::Error::other("shmat returned a null address"));
        };
        Ok(ShmSegment {
            id,
            addr,
            len,
            removed: false,
        })
    }

    /// The kernel's id of the segment (what the X server attaches).
    pub fn id(&self) -> libc::c_int {
        self.id
    }

    /// Mark the segment for removal: it lives on while attached (here and in the X server)
    /// and disappears when the last user detaches. Idempotent.
    pub fn mark_removed(&mut self) {
        if !self.removed {
            // SAFETY: IPC_RMID on our own segment id with no buffer argument.
            unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
            self.removed = true;
        }
    }

    /// The segment's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `addr` maps `len` bytes for as long as `self` lives. The X server writes to
        // the segment only while a ShmGetImage request is in flight, and the grabber waits
        // for that request's reply (holding `&mut self`) before anyone reads these bytes.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr(), self.len) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        self.mark_removed();
        // SAFETY: `addr` came from shmat and is detached exactly once, here; no slice of it
        // can outlive `self`.
        unsafe { libc::shmdt(self.addr.as_ptr().cast()) };
    }
}

/// Grabs the root window through a shared memory segment attached to the X server.
pub struct ShmGrabber {
    seg: ShmSegment,
    xid: Seg,
    width: u16,
    height: u16,
}

impl ShmGrabber {
    /// Set up MIT-SHM for `width` x `height` grabs. Fails with
    /// [`CaptureError::ShmUnavailable`] when the server lacks MIT-SHM, the display is on
    /// another host, or the server cannot attach the segment.
    pub fn new(
        conn: &RustConnection,
        display: Option<&str>,
        width: u16,
        height: u16,
    ) -> Result<Self, CaptureError> {
        if conn
            .extension_information(shm::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(CaptureError::ShmUnavailable(
                "the X server does not offer MIT-SHM".into(),
            ));
        }
        if let Some(host) = remote_host(display) {
            // A server elsewhere would attach ITS segment with this id, never ours.
            return Err(CaptureError::ShmUnavailable(format!(
                "the display is on host {host:?}, shared memory works only on this machine"
            )));
        }
        conn.shm_query_version()?.reply()?;
        let len = usize::from(width) * usize::from(height) * 4;
        let mut seg = ShmSegment::create(len.max(4)).map_err(|e| {
            CaptureError::ShmUnavailable(format!("cannot create a shared memory segment: {e}"))
        })?;
        let xid = conn.generate_id()?;
        let shmid = u32::try_from(seg.id())
            .map_err(|_| CaptureError::ShmUnavailable("negative segment id".into()))?;
        match conn.shm_attach(xid, shmid, false)?.check() {
            Ok(()) => {}
            Err(ReplyError::X11Error(e)) => {
                return Err(CaptureError::ShmUnavailable(format!(
                    "the X server could not attach the segment ({})",
                    describe(&e)
                )))
            }
            Err(ReplyError::ConnectionError(e)) => return Err(e.into()),
        }
        seg.mark_removed();
        Ok(ShmGrabber {
            seg,
            xid,
            width,
            height,
        })
    }

    /// Grab the whole root window into the segment; [`pixels`](Self::pixels) then reads it.
    pub fn fetch(&mut self, conn: &RustConnection, root: Window) -> Result<(), CaptureError> {
        self.fetch_at(conn, root, (0, 0), self.width, self.height)
    }

    /// Grab the `w` x `h` rectangle at `at` (inside the screen) into the start of the
    /// segment, rows of `w * 4` bytes; [`pixels_of`](Self::pixels_of) then reads it.
    pub fn fetch_at(
        &mut self,
        conn: &RustConnection,
        root: Window,
        at: (i16, i16),
        w: u16,
        h: u16,
    ) -> Result<(), CaptureError> {
        let format = u8::from(ImageFormat::Z_PIXMAP);
        let reply = conn
            .shm_get_image(root, at.0, at.1, w, h, !0, format, self.xid, 0)?
            .reply()?;
        let needed = usize::from(w) * 4 * usize::from(h);
        let written = usize::try_from(reply.size).unwrap_or(usize::MAX);
        if written < needed || self.seg.as_slice().len() < needed {
            return Err(CaptureError::Protocol(format!(
                "ShmGetImage wrote {written} bytes, expected {needed}"
            )));
        }
        Ok(())
    }

    /// The pixels of the last [`fetch`](Self::fetch), where the X server wrote them, with the
    /// row stride. The slice borrows the grabber, so the next fetch (the only thing that
    /// makes the server write to the segment) cannot happen while it is read.
    pub fn pixels(&self) -> (&[u8], usize) {
        let stride = self.stride();
        let needed = stride * usize::from(self.height);
        let segment = self.seg.as_slice();
        (&segment[..needed.min(segment.len())], stride)
    }

    /// The pixels of a [`fetch_at`](Self::fetch_at) of a `w` x `h` rectangle, with the stride.
    pub fn pixels_of(&self, w: u16, h: u16) -> (&[u8], usize) {
        let stride = usize::from(w) * 4;
        let needed = stride * usize::from(h);
        let segment = self.seg.as_slice();
        (&segment[..needed.min(segment.len())], stride)
    }

    fn stride(&self) -> usize {
        usize::from(self.width) * 4
    }

    /// Ask the X server to detach the segment (best effort; closing the connection does it too).
    pub fn detach(&self, conn: &RustConnection) {
        if let Ok(cookie) = conn.shm_detach(self.xid) {
            cookie.ignore_error();
        }
        let _ = conn.flush();
    }
}

/// The host part of a display name that points at another machine, if any.
/// `:0` and `/path/to/socket` are local; `host:0` (even `localhost:0`, which may be
/// an SSH-forwarded display) is treated as remote.
fn remote_host(display: Option<&str>) -> Option<String> {
    let parsed = x11rb::reexports::x11rb_protocol::parse_display::parse_display(display).ok()?;
    if parsed.host.is_empty() || parsed.protocol.as_deref() == Some("unix") {
        None
    } else {
        Some(parsed.host)
    }
}

fn describe(e: &X11Error) -> String {
    format!("{:?}", e.error_kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_is_writable_and_removed_at_once() {
        let mut seg = ShmSegment::create(4096).expect("shmget should work on Linux");
        assert_eq!(seg.as_slice().len(), 4096);
        seg.mark_removed();
        let mut info = std::mem::MaybeUninit::<libc::shmid_ds>::uninit();
        // SAFETY: IPC_STAT fills the shmid_ds we pass; the id is our live segment.
        let rc = unsafe { libc::shmctl(seg.id(), libc::IPC_STAT, info.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: shmctl returned 0, so it filled the struct.
        let info = unsafe { info.assume_init() };
        assert_eq!(info.shm_perm.mode & 0o777, 0o600);
        assert_ne!(
            info.shm_perm.mode & 0o1000,
            0,
            "SHM_DEST (marked for removal) must be set"
        );
    }

    #[test]
    fn local_and_remote_display_names() {
        assert_eq!(remote_host(Some(":3")), None);
        assert_eq!(remote_host(Some(":3.0")), None);
        assert_eq!(remote_host(Some("otherbox:0")), Some("otherbox".into()));
        assert_eq!(remote_host(Some("localhost:10")), Some("localhost".into()));
    }
}
