//! Programs vnrit starts on the display, as a user sees them: `vnrit -- COMMAND` (its window on
//! the display, its output in vnrit's log, its exit status as vnrit's), `--keep-running`, a
//! command that does not exist, the default session on vnrit's own display (a window manager
//! and a terminal, found through the window list), `--session`, and no process left behind
//! after SIGTERM or even SIGKILL of vnrit.

use std::process::Command;
use std::time::{Duration, Instant};

use vnrit::display::VirtualDisplay;
use vnrit::launch::child::group_alive;

use crate::cli::{first_display, get, vnrit, Server};

/// Every stderr line the server printed so far, kept across calls.
struct Log {
    lines: Vec<String>,
}

impl Log {
    fn new() -> Log {
        Log { lines: Vec::new() }
    }

    /// Waits (bounded) for a line containing `needle`; returns it.
    fn wait_for(&mut self, server: &Server, needle: &str, timeout: Duration) -> String {
        let t = Instant::now();
        loop {
            self.lines.extend(server.stderr_lines());
            if let Some(line) = self.lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                t.elapsed() < timeout,
                "no log line with {needle:?} within {timeout:?}: {:#?}",
                self.lines
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The pid in a "started NAME on :N (pid P): ..." log line.
fn pid_of(line: &str) -> i32 {
    line.split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// Runs an X client on `display` (bounded to 5 s); its stdout, or None when it failed.
fn xclient(display: &str, cmd: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(cmd);
    child.args(args).env("DISPLAY", display);
    let out = child.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `probe` every 50 ms until it is true, at most `timeout`.
fn wait_until(what: &str, timeout: Duration, mut probe: impl FnMut() -> bool) {
    let t = Instant::now();
    while !probe() {
        assert!(t.elapsed() < timeout, "{what} not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) for the server process to exit; its exit code.
fn exit_code(server: &mut Server, timeout: Duration) -> Option<i32> {
    let t = Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return status.code();
        }
        assert!(t.elapsed() < timeout, "vnrit still runs after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An XTerm window on `display`, per xdotool.
fn has_xterm(display: &str) -> bool {
    xclient(display, "xdotool", &["search", "--class", "XTerm"])
        .is_some_and(|out| !out.trim().is_empty())
}

fn serve_with(display: &VirtualDisplay, extra: &[&str]) -> Server {
    let mut args = vec![
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-audio",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn a_command_runs_on_the_display_logs_its_output_and_gives_vnrit_its_status() {
    let display = VirtualDisplay::start(640, 480, first_display(40)).expect("Xvfb");
    // xterm itself always exits 0, so the status comes from the shell around it.
    let mut server = serve_with(
        &display,
        &[
            "--",
            "sh",
            "-c",
            "echo ready; xterm -e sleep 3; echo done >&2; exit 3",
        ],
    );
    let mut log = Log::new();
    // The program's output, line by line, with its name as the prefix.
    log.wait_for(
        &server,
        "vnrit::launch::output: [sh] ready",
        Duration::from_secs(10),
    );
    wait_until("the XTerm window", Duration::from_secs(10), || {
        has_xterm(display.name())
    });
    assert_eq!(exit_code(&mut server, Duration::from_secs(15)), Some(3));
    log.wait_for(&server, "[sh] done", Duration::from_secs(1));
    assert!(
        !has_xterm(display.name()),
        "the window outlived its program"
    );
}

#[test]
fn keep_running_serves_on_after_the_command() {
    let display = VirtualDisplay::start(320, 240, first_display(41)).expect("Xvfb");
    let mut server = serve_with(
        &display,
        &[
            "--keep-running",
            "--token",
            "tok",
            "--",
            "sh",
            "-c",
            "exit 5",
        ],
    );
    let mut log = Log::new();
    log.wait_for(&server, "exited with status 5", Duration::from_secs(10));
    let (status, _) = get(server.port(), "/api/stats?token=tok", None);
    assert_eq!(status, 200, "still serving");
    assert!(matches!(server.child.try_wait(), Ok(None)));
    let (_, code) = server.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn a_command_that_does_not_exist_is_one_line_and_exit_127() {
    let display = VirtualDisplay::start(320, 240, first_display(42)).expect("Xvfb");
    let out = vnrit()
        .args([
            "--display",
            display.name(),
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-audio",
            "--",
            "vnrit-no-such-program",
            "--flag",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("vnrit: cannot run `vnrit-no-such-program`") && last.contains("PATH"),
        "{err}"
    );
}

#[test]
fn the_default_session_has_a_window_manager_and_a_terminal_gone_after_sigterm() {
    let mut server = Server::start(&[
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-audio",
        "--virtual-size",
        "800x600",
    ]);
    let mut log = Log::new();
    let line = log.wait_for(&server, "started virtual display :", Duration::from_secs(5));
    let display = line
        .split("started virtual display ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .expect("display name");
    let wm = pid_of(&log.wait_for(&server, "started openbox", Duration::from_secs(5)));
    let term = pid_of(&log.wait_for(&server, "started xterm", Duration::from_secs(5)));

    // The window manager announces itself on the root window; the terminal has a window.
    wait_until("_NET_SUPPORTING_WM_CHECK", Duration::from_secs(10), || {
        xclient(&display, "xprop", &["-root", "_NET_SUPPORTING_WM_CHECK"])
            .is_some_and(|out| out.contains("window id #"))
    });
    wait_until("the XTerm window", Duration::from_secs(10), || {
        has_xterm(&display)
    });
    assert!(group_alive(wm) && group_alive(term));

    let (took, code) = server.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    wait_until(
        "the session's processes to go",
        Duration::from_secs(3),
        || !group_alive(wm) && !group_alive(term),
    );
}

#[test]
fn a_session_command_replaces_the_default_and_stops_with_vnrit() {
    let mut server = Server::start(&[
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-audio",
        "--virtual-size",
        "320x240",
        "--session",
        "echo custom session on $DISPLAY; sleep 600 & exec sleep 601",
    ]);
    let mut log = Log::new();
    let session = pid_of(&log.wait_for(&server, "started session", Duration::from_secs(5)));
    let line = log.wait_for(
        &server,
        "[session] custom session on :",
        Duration::from_secs(5),
    );
    assert!(!line.contains("$DISPLAY"), "{line}");
    assert!(
        !log.lines.iter().any(|l| l.contains("started openbox")),
        "the default session started as well: {:#?}",
        log.lines
    );
    assert!(group_alive(session));
    let (_, code) = server.terminate();
    assert_eq!(code, Some(0));
    // Both sleeps, the backgrounded one too, were in the session's process group.
    wait_until(
        "the session's processes to go",
        Duration::from_secs(3),
        || !group_alive(session),
    );
}

#[test]
fn the_command_is_stopped_even_when_vnrit_is_killed() {
    let display = VirtualDisplay::start(320, 240, first_display(43)).expect("Xvfb");
    let mut server = serve_with(&display, &["--", "sleep", "600"]);
    let mut log = Log::new();
    let pid = pid_of(&log.wait_for(&server, "started sleep", Duration::from_secs(5)));
    assert!(group_alive(pid));
    server.child.kill().expect("SIGKILL vnrit");
    let _ = server.child.wait();
    wait_until("the orphaned command to go", Duration::from_secs(3), || {
        !group_alive(pid)
    });
}
