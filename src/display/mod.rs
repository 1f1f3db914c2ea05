//! A private virtual display (Xvfb) for when the user names no X server.
//!
//! [`VirtualDisplay::start`] runs `Xvfb :N -screen 0 WxHx24 -noreset -nolisten tcp` on the
//! first free display number from a given one, waits until it accepts clients, and owns the
//! process: dropping the handle (or [`VirtualDisplay::stop`]) ends it with SIGTERM, then
//! SIGKILL after a second, and clears a lock file left behind by a killed server.
//!
//! Xvfb is ready when its lock file names our child's pid and a client can connect; checking
//! the pid means a server that won a race for the same number is never mistaken for ours
//! (the loser exits, and the next number is tried). `-displayfd` is not used: with it Xvfb
//! writes no lock file, so other programs could not see the number is taken. Xvfb's stderr is
//! forwarded to `tracing` at debug level.
//!
//! The Xvfb is not tied to this process's life by the kernel: if the process is SIGKILLed,
//! the server stays behind.

use crate::lock::lock;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod welcome;

/// How long Xvfb gets to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many display numbers past `first` are considered.
const SEARCH_SPAN: u32 = 64;
/// How many Xvfb launches are tried (a launch fails when another server grabs the number).
const MAX_LAUNCHES: u32 = 8;
/// How long a stopped Xvfb gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Errors from starting or drawing on a virtual display.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The `Xvfb` program is not installed.
    #[error("Xvfb not found: install it (apt-get install xvfb) or pass --display :N for an existing X server")]
    XvfbNotFound,
    /// The requested screen size is outside what X allows.
    #[error("invalid virtual screen size {width}x{height}: each side must be 1 to 32767 pixels")]
    BadSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// Xvfb could not be launched.
    #[error("could not run Xvfb: {0}")]
    Spawn(#[source] std::io::Error),
    /// Every candidate display number was taken or failed.
    #[error("no Xvfb could start on displays :{first} to :{last} ({detail}); remove stale /tmp/.X*-lock files or pass --display :N")]
    NoFreeDisplay {
        /// First number tried.
        first: u32,
        /// Last number considered.
        last: u32,
        /// Xvfb's last words, if any.
        detail: String,
    },
    /// Xvfb exited during start-up for a reason other than a taken display number.
    #[error("Xvfb on :{number} exited during start-up: {detail}")]
    Exited {
        /// The display number.
        number: u32,
        /// What Xvfb printed.
        detail: String,
    },
    /// Xvfb started but did not accept clients in time.
    #[error("Xvfb on :{number} did not become ready within {secs} s ({detail}); the machine may be overloaded")]
    NotReady {
        /// The display number.
        number: u32,
        /// The timeout in seconds.
        secs: u64,
        /// What Xvfb printed.
        detail: String,
    },
    /// Drawing on the display failed.
    #[error("cannot draw on display {display}: {reason}")]
    Paint {
        /// The display name.
        display: String,
        /// What went wrong.
        reason: String,
    },
}

/// A running Xvfb owned by this process. Drop kills it.
pub struct VirtualDisplay {
    child: Option<Child>,
    number: u32,
    name: String,
    width: u32,
    height: u32,
}

/// The last lines Xvfb wrote to stderr.
type LogTail = Arc<Mutex<VecDeque<String>>>;

/// The outcome of one Xvfb launch.
enum Launch {
    Ready(Box<VirtualDisplay>),
    /// The number was taken (e.g. by a server that started meanwhile); try the next one.
    Busy(String),
}

impl VirtualDisplay {
    /// Start `Xvfb :N -screen 0 {w}x{h}x24 -noreset -nolisten tcp` on the first free N >= `first`
    /// (free = no /tmp/.X{N}-lock and no /tmp/.X11-unix/X{N}); waits (bounded, ~5 s) until a
    /// client can connect.
    pub fn start(width: u32, height: u32, first: u32) -> Result<Self, DisplayError> {
        Self::start_with_args(width, height, first, &[])
    }

    /// Like [`start`](Self::start), with extra Xvfb arguments appended (for example
    /// `["-extension", "MIT-SHM"]` to run a server without shared memory).
    pub fn start_with_args(
        width: u32,
        height: u32,
        first: u32,
        extra: &[&str],
    ) -> Result<Self, DisplayError> {
        if !(1..=32767).contains(&width) || !(1..=32767).contains(&height) {
            return Err(DisplayError::BadSize { width, height });
        }
        let last = first.saturating_add(SEARCH_SPAN - 1);
        let mut launches = 0;
        let mut detail = String::from("every number was in use");
        for number in first..=last {
            if !is_free(number) {
                continue;
            }
            if launches == MAX_LAUNCHES {
                break;
            }
            launches += 1;
            match launch(number, width, height, extra)? {
                Launch::Ready(display) => return Ok(*display),
                Launch::Busy(why) => {
                    tracing::debug!(number, %why, "Xvfb could not take this display number");
                    detail = why;
                }
            }
        }
        Err(DisplayError::NoFreeDisplay {
            first,
            last,
            detail,
        })
    }

    /// The X display name, e.g. `":99"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The display number N of `:N`.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The screen size given at start, `(width, height)`.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The Xvfb process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Paint a welcome desktop (gradient, grid, a window-like card, coloured discs and a line
    /// of text) as the root window's background, so a viewer sees a desktop, not black. As a
    /// background it survives windows being moved or closed over it.
    pub fn paint_welcome(&self) -> Result<(), DisplayError> {
        let fail = |reason: String| DisplayError::Paint {
            display: self.name.clone(),
            reason,
        };
        let (conn, screen_num) =
            x11rb::connect(Some(&self.name)).map_err(|e| fail(e.to_string()))?;
        welcome::paint(&conn, screen_num, &self.name).map_err(|e| fail(e.to_string()))
    }

    /// Stop the server: SIGTERM, wait up to a second, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) takes plain integers. `pid` is our child and not yet reaped
            // (we still hold the Child), so it cannot name an unrelated, recycled process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_GRACE;
        let mut exited = false;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !exited {
            tracing::warn!(display = %self.name, "Xvfb ignored SIGTERM; killing it");
            let _ = child.kill();
            let _ = child.wait();
            remove_stale_files(self.number, child.id());
        }
        tracing::debug!(display = %self.name, "Xvfb stopped");
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock_path(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{number}-lock"))
}

fn socket_path(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{number}"))
}

/// Whether X display `:number` looks free on this machine: no `/tmp/.X{number}-lock` lock
/// file and no `/tmp/.X11-unix/X{number}` socket.
pub fn is_free(number: u32) -> bool {
    !lock_path(number).exists() && !socket_path(number).exists()
}

/// The pid written in the display's lock file, if there is one.
fn lock_owner(number: u32) -> Option<u32> {
    std::fs::read_to_string(lock_path(number))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
}

/// After a SIGKILL Xvfb leaves its lock file and socket; remove them if the lock is `pid`'s.
fn remove_stale_files(number: u32, pid: u32) {
    if lock_owner(number) == Some(pid) {
        let _ = std::fs::remove_file(lock_path(number));
        let _ = std::fs::remove_file(socket_path(number));
    }
}

/// Run one Xvfb on `number` and wait until it accepts clients.
fn launch(number: u32, width: u32, height: u32, extra: &[&str]) -> Result<Launch, DisplayError> {
    let mut child = Command::new("Xvfb")
        .arg(format!(":{number}"))
        .args(["-screen", "0", &format!("{width}x{height}x24")])
        .args(["-noreset", "-nolisten", "tcp"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => DisplayError::XvfbNotFound,
            _ => DisplayError::Spawn(e),
        })?;
    let pid = child.id();
    let name = format!(":{number}");
    let tail: LogTail = Arc::default();
    // Disconnects when the stderr reader has seen Xvfb's last line.
    let (stderr_done_tx, stderr_done) = mpsc::channel::<()>();
    if let Some(stderr) = child.stderr.take() {
        let tail = Arc::clone(&tail);
        let name = name.clone();
        std::thread::spawn(move || {
            forward_stderr(stderr, &name, &tail);
            drop(stderr_done_tx);
        });
    }
    let mut server = VirtualDisplay {
        child: Some(child),
        number,
        name,
        width,
        height,
    };
    let log = |tail: &LogTail| lock(tail).iter().cloned().collect::<Vec<_>>().join(" | ");
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_error = String::from("it never accepted a client");
    loop {
        let exited = match server.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => false,
            Some(Ok(Some(_))) | Some(Err(_)) | None => true,
        };
        if exited {
            server.child = None;
            // Let the reader collect Xvfb's last words (bounded: it ends at EOF).
            let _ = stderr_done.recv_timeout(Duration::from_millis(500));
            let detail = log(&tail);
            if is_number_taken(&detail) {
                return Ok(Launch::Busy(detail));
            }
            return Err(DisplayError::Exited { number, detail });
        }
        // Our server holds the number once the lock file names its pid; only then can a
        // successful connection be to it rather than to a server that won a race.
        if lock_owner(number) == Some(pid) {
            match x11rb::connect(Some(&server.name)) {
                Ok(_) => break,
                Err(e) => last_error = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            server.stop();
            let detail = format!("{last_error}; Xvfb said: {}", log(&tail));
            return Err(DisplayError::NotReady {
                number,
                secs: READY_TIMEOUT.as_secs(),
                detail,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(display = %server.name, width, height, "started Xvfb");
    Ok(Launch::Ready(Box::new(server)))
}

/// Whether Xvfb's complaint means another server holds the display number.
fn is_number_taken(log: &str) -> bool {
    [
        "already active",
        "lock",
        "Address already in use",
        "MakeAllCOTSServerListeners",
    ]
    .iter()
    .any(|m| log.contains(m))
}

fn forward_stderr(stderr: std::process::ChildStderr, name: &str, tail: &LogTail) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let line = line.trim().to_owned();
        if line.is_empty() {
            continue;
        }
        tracing::debug!(display = %name, "Xvfb: {line}");
        let mut t = lock(tail);
        if t.len() == 8 {
            t.pop_front();
        }
        t.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_impossible_sizes() {
        assert!(matches!(
            VirtualDisplay::start(0, 100, 500),
            Err(DisplayError::BadSize { .. })
        ));
        assert!(matches!(
            VirtualDisplay::start(100, 40000, 500),
            Err(DisplayError::BadSize { .. })
        ));
    }
}
