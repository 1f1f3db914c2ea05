//! vnrit against an X server that resets when its last client leaves (Xvfb without
//! `-noreset`, as people start it by hand): twenty starts in a row all serve, and a server that
//! is still starting when vnrit starts is waited for.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vnrit::display::is_free;

use crate::cli::{first_display, get, Server};

/// `Xvfb :N` as a user starts it: no `-noreset`. Killed on drop.
struct PlainXvfb {
    child: Child,
    name: String,
}

impl PlainXvfb {
    /// Starts it on the first free number from `first`; does not wait for it to be ready.
    fn spawn(first: u32) -> PlainXvfb {
        let number = (first..first + 64)
            .find(|n| is_free(*n))
            .expect("a free display");
        let name = format!(":{number}");
        let child = Command::new("Xvfb")
            .args([&name, "-screen", "0", "320x240x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs");
        PlainXvfb { child, name }
    }

    /// Waits (bounded) until a client can connect, and disconnects at once.
    fn wait_ready(&self) {
        let t = Instant::now();
        while x11rb::connect(Some(&self.name)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "Xvfb never came up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PlainXvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_on(display: &str) -> Server {
    Server::start(&[
        "--display",
        display,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-audio",
        "--token",
        "tok",
    ])
}

#[test]
fn twenty_starts_against_an_xvfb_without_noreset_all_serve() {
    let xvfb = PlainXvfb::spawn(first_display(50));
    xvfb.wait_ready();
    for round in 1..=20 {
        // Each stop leaves the server without clients, so it resets just as the next start
        // connects: the case that failed with "Connection reset by peer".
        let mut server = start_on(&xvfb.name);
        let (status, text) = get(server.port(), "/api/stats?token=tok", None);
        assert_eq!(status, 200, "round {round}: {text}");
        let (_, code) = server.terminate();
        assert_eq!(code, Some(0), "round {round}: exit code after SIGTERM");
    }
    assert!(
        matches!(
            Command::new("xdpyinfo")
                .args(["-display", &xvfb.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
            Ok(s) if s.success()
        ),
        "the X server itself survived"
    );
}

#[test]
fn a_server_still_starting_is_waited_for() {
    // vnrit first, the X server a moment later (as `Xvfb :N & vnrit --display :N` can race).
    let number = (first_display(54)..first_display(54) + 64)
        .find(|n| is_free(*n))
        .expect("a free display");
    let name = format!(":{number}");
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        PlainXvfb::spawn(number)
    });
    let mut server = start_on(&name);
    let xvfb = starter.join().expect("Xvfb started");
    assert_eq!(xvfb.name, name);
    let (status, _) = get(server.port(), "/api/stats?token=tok", None);
    assert_eq!(status, 200);
    let (_, code) = server.terminate();
    assert_eq!(code, Some(0));
}
