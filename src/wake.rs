//! Interrupting a blocking thread's sleep on its X connection.
//!
//! The video pipeline and the input thread each sleep in `poll(2)` on their X connection, so
//! a still screen and an idle pointer cost nothing. Other threads still need to reach them at
//! once: a keyframe request, a stop, a new input command. A [`Wakeup`] is one more file
//! descriptor in that poll: a connected pair of Unix datagram sockets from the standard
//! library (no `unsafe`, nothing to install). Waking sends one byte; the sleeper drains them.
//! [`wait_readable`] is the poll on both descriptors.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A readiness signal one thread raises and another sleeps on.
#[derive(Debug)]
pub struct Wakeup {
    tx: UnixDatagram,
    rx: UnixDatagram,
}

impl Wakeup {
    /// A new signal, not raised. Fails only if the process cannot make a socket pair (out of
    /// file descriptors).
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = UnixDatagram::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Wakeup { tx, rx })
    }

    /// Raises the signal. A full socket buffer means it is raised already.
    pub fn wake(&self) {
        let _ = self.tx.send(&[1]);
    }

    /// The descriptor that is readable while the signal is raised.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    /// Lowers the signal (reads every pending byte).
    pub fn clear(&self) {
        let mut buf = [0u8; 64];
        while matches!(self.rx.recv(&mut buf), Ok(n) if n > 0) {}
    }
}

/// What [`wait_readable`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// The source descriptor is readable or hung up (the next read says which).
    pub source: bool,
    /// The wake-up descriptor is readable.
    pub woken: bool,
}

/// Sleeps until `source` or `wake` is readable, or `timeout` passes (`None`: no limit).
///
/// A signal arriving during the sleep returns early with nothing ready, as a timeout would;
/// callers loop on their own deadline.
pub fn wait_readable(
    source: BorrowedFd<'_>,
    wake: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let ms = match timeout {
        // Round up, so a sub-millisecond remainder sleeps rather than spins.
        Some(t) => libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX),
        None => -1,
    };
    let pollfd = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [
        pollfd(source.as_raw_fd()),
        pollfd(wake.map_or(-1, |w| w.as_raw_fd())),
    ];
    // SAFETY: `fds` is an array of two initialised pollfds that lives across the call, and
    // its length is passed with it. Both descriptors are borrowed, so they stay open for the
    // call; a negative descriptor is ignored by poll.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::Interrupted => Ok(Ready::default()),
            _ => Err(err),
        };
    }
    Ok(Ready {
        source: fds[0].revents != 0,
        woken: fds[1].revents != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Option<Duration> = Some(Duration::ZERO);

    #[test]
    fn raised_until_cleared_and_many_wakes_coalesce() {
        let w = Wakeup::new().expect("socket pair");
        let woken = |w: &Wakeup| wait_readable(w.fd(), None, NOW).expect("poll").source;
        assert!(!woken(&w));
        for _ in 0..10_000 {
            w.wake(); // more than the socket buffer holds: never blocks
        }
        assert!(woken(&w));
        w.clear();
        assert!(!woken(&w), "cleared");
        w.wake();
        assert!(woken(&w));
    }

    #[test]
    fn says_which_descriptor_is_ready() {
        let source = Wakeup::new().expect("socket pair");
        let wake = Wakeup::new().expect("socket pair");
        let wait = |t| wait_readable(source.fd(), Some(wake.fd()), t).expect("poll");
        assert_eq!(wait(Some(Duration::from_millis(20))), Ready::default());
        wake.wake();
        assert_eq!(
            wait(None),
            Ready {
                source: false,
                woken: true
            }
        );
        source.wake();
        assert_eq!(
            wait(NOW),
            Ready {
                source: true,
                woken: true
            }
        );
        wake.clear();
        assert_eq!(
            wait(NOW),
            Ready {
                source: true,
                woken: false
            }
        );
        // Without a wake-up descriptor only the source counts.
        assert_eq!(
            wait_readable(source.fd(), None, NOW).expect("poll"),
            Ready {
                source: true,
                woken: false
            }
        );
    }
}
