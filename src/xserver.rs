//! The one X connection vnrit holds from start to exit, and the bounded wait for a server that
//! is still starting.
//!
//! An X server started without `-noreset` (as `Xvfb :1` by hand, or many display managers'
//! servers) resets when its last client disconnects: it drops its state and, for a moment,
//! resets new connections ("Connection reset by peer"). vnrit's stages each open their own
//! connection (the capture probe, input, the pipeline), so before this existed all of them
//! could be closed at once during start-up. [`connect_waiting`] opens the first connection,
//! which the caller keeps until exit (the display watcher owns it), so the client count never
//! drops to zero while vnrit runs.
//!
//! A display whose lock file or socket exists but does not accept clients yet (a server still
//! starting, or in the middle of a reset) is retried for up to [`STARTING_WAIT`]; a display
//! with neither is retried for [`ABSENT_WAIT`] only (`Xvfb :1 & vnrit --display :1` races the
//! server's first line of start-up), so a wrong `--display` still fails quickly.

use std::path::Path;
use std::time::{Duration, Instant};

use x11rb::errors::ConnectError;
use x11rb::rust_connection::RustConnection;

/// How long a display that shows signs of a server (lock file or socket) is waited for.
pub const STARTING_WAIT: Duration = Duration::from_secs(10);
/// How long a display with no sign of a server is waited for.
pub const ABSENT_WAIT: Duration = Duration::from_secs(2);

/// Connecting to the X server failed, for good or after the wait.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the X server at {display}: {source}{}", waited_note(*.waited))]
pub struct XConnectError {
    /// The display name.
    pub display: String,
    /// How long we kept trying.
    pub waited: Duration,
    /// The last error.
    #[source]
    pub source: ConnectError,
}

fn waited_note(waited: Duration) -> String {
    if waited >= Duration::from_millis(500) {
        format!(" (tried for {:.0} s)", waited.as_secs_f64())
    } else {
        String::new()
    }
}

/// The local display number of a name such as `:1`, `:1.0` or `unix:1`; `None` for a remote
/// display (`host:1`) or a name that is not a display.
pub fn local_number(display: &str) -> Option<u32> {
    let rest = display
        .strip_prefix("unix:")
        .or_else(|| display.strip_prefix(':'))?;
    let number = rest.split('.').next()?;
    number.parse().ok()
}

/// Whether a server has left a trace of itself for `display` on this machine.
fn server_seen(display: &str) -> bool {
    local_number(display).is_some_and(|n| {
        Path::new(&format!("/tmp/.X{n}-lock")).exists()
            || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
    })
}

/// How long to keep trying, given whether a server has shown signs of life.
pub fn wait_budget(server_seen: bool) -> Duration {
    if server_seen {
        STARTING_WAIT
    } else {
        ABSENT_WAIT
    }
}

/// Whether another try can succeed where `err` failed (the server is starting or resetting),
/// as opposed to a wrong name, screen or credentials, which retrying cannot fix.
pub fn worth_retrying(err: &ConnectError) -> bool {
    matches!(
        err,
        ConnectError::IoError(_) | ConnectError::Incomplete { .. } | ConnectError::UnknownError
    )
}

/// Opens a connection to `display`, retrying (bounded, see the module doc) while the server is
/// starting or resetting. Keep the connection open for as long as vnrit runs.
pub fn connect_waiting(display: &str) -> Result<(RustConnection, usize), XConnectError> {
    let name = display;
    let start = Instant::now();
    let mut pause = Duration::from_millis(25);
    loop {
        let err = match x11rb::connect(Some(display)) {
            Ok(conn) => {
                if start.elapsed() > Duration::from_millis(100) {
                    tracing::info!(
                        "the X server at {} accepted clients after {:.1} s",
                        name,
                        start.elapsed().as_secs_f64()
                    );
                }
                return Ok(conn);
            }
            Err(err) => err,
        };
        let budget = wait_budget(server_seen(display));
        if !worth_retrying(&err) || start.elapsed() + pause > budget {
            return Err(XConnectError {
                display: display.to_string(),
                waited: start.elapsed(),
                source: err,
            });
        }
        tracing::debug!("the X server at {} is not ready yet: {err}", name);
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_numbers() {
        assert_eq!(local_number(":1"), Some(1));
        assert_eq!(local_number(":99.0"), Some(99));
        assert_eq!(local_number("unix:7"), Some(7));
        assert_eq!(local_number("host:1"), None);
        assert_eq!(local_number(":x"), None);
        assert_eq!(local_number(""), None);
    }

    #[test]
    fn a_server_in_sight_is_waited_for_longer() {
        assert!(wait_budget(true) > wait_budget(false));
        assert!(wait_budget(true) <= Duration::from_secs(10));
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let io = ConnectError::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(worth_retrying(&io));
        assert!(!worth_retrying(&ConnectError::InvalidScreen));
        assert!(!worth_retrying(&ConnectError::SetupAuthenticate(
            x11rb::protocol::xproto::SetupAuthenticate {
                status: 2,
                reason: b"no".to_vec()
            }
        )));
    }

    #[test]
    fn a_missing_display_fails_within_the_short_budget() {
        let t = Instant::now();
        let err = connect_waiting(":4071").expect_err("no server on :4071");
        assert!(t.elapsed() <= ABSENT_WAIT + Duration::from_millis(500));
        assert!(err.to_string().contains(":4071"), "{err}");
    }
}
