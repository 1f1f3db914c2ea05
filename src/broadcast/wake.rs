//! Interrupting the pipeline thread's sleep: a keyframe request, a stop or a new viewer wakes
//! it at once, so a still screen does not need a polling slice to notice them.
//!
//! The pipeline sleeps in `poll(2)` on the X connection ([`crate::capture::Capturer`]); a
//! [`Wakeup`] adds one more file descriptor to that poll, a connected pair of Unix datagram
//! sockets from the standard library (no `unsafe`, nothing to install). Waking sends one byte;
//! the sleeper drains them.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;

/// A readiness signal one thread raises and another sleeps on.
#[derive(Debug)]
pub struct Wakeup {
    /// The (sending, receiving) ends; `None` if the sockets could not be made (the pipeline
    /// then falls back to short polling slices).
    pair: Option<(UnixDatagram, UnixDatagram)>,
}

impl Wakeup {
    /// A new signal, not raised.
    pub fn new() -> Self {
        let pair = UnixDatagram::pair().and_then(|(tx, rx)| {
            tx.set_nonblocking(true)?;
            rx.set_nonblocking(true)?;
            Ok((tx, rx))
        });
        match pair {
            Ok(pair) => Wakeup { pair: Some(pair) },
            Err(err) => {
                tracing::warn!("no wake-up socket for the video pipeline ({err}); it will poll");
                Wakeup { pair: None }
            }
        }
    }

    /// Raises the signal. A full socket buffer means it is raised already.
    pub fn wake(&self) {
        if let Some((tx, _)) = &self.pair {
            let _ = tx.send(&[1]);
        }
    }

    /// The descriptor that is readable while the signal is raised, if there is one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.pair.as_ref().map(|(_, rx)| rx.as_fd())
    }

    /// Lowers the signal (reads every pending byte).
    pub fn clear(&self) {
        if let Some((_, rx)) = &self.pair {
            let mut buf = [0u8; 64];
            while matches!(rx.recv(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

impl Default for Wakeup {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: BorrowedFd<'_>) -> bool {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack, a descriptor that outlives the call, no wait.
        unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
    }

    #[test]
    fn raised_until_cleared_and_many_wakes_coalesce() {
        let w = Wakeup::new();
        let fd = w.fd().expect("socket pair");
        assert!(!readable(fd));
        for _ in 0..10_000 {
            w.wake(); // more than the socket buffer holds: never blocks
        }
        assert!(readable(fd));
        w.clear();
        assert!(!readable(fd), "cleared");
        w.wake();
        assert!(readable(fd));
    }
}
