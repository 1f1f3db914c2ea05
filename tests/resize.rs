//! Screen resizes (RandR) while capturing. Xvfb offers one fixed mode, so these tests run a
//! resizable nested X server, Xephyr, inside a private Xvfb, and resize it with `xrandr -s`
//! as a user's display settings would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vnrit::capture::{CaptureMethod, Capturer};
use vnrit::display::{self, VirtualDisplay};

/// Xephyr on its own display number, inside a host Xvfb; both stop on drop.
struct Nested {
    name: String,
    child: Child,
    _host: VirtualDisplay,
}

impl Nested {
    /// Starts a `width`x`height` Xephyr that RandR may resize (up to the host's size).
    fn start(slot: u32, width: u32, height: u32) -> Nested {
        let first = 100 + (std::process::id() % 700) + slot * 3;
        let host = VirtualDisplay::start(1600, 1200, first)
            .unwrap_or_else(|e| panic!("host Xvfb should start: {e}"));
        let number = (host.number() + 1..host.number() + 200)
            .find(|n| display::is_free(*n))
            .expect("a free display number");
        let name = format!(":{number}");
        let child = Command::new("Xephyr")
            .args([&name, "-screen", &format!("{width}x{height}x24")])
            .args(["-resizeable", "-ac", "-noreset", "-nolisten", "tcp"])
            .env("DISPLAY", host.name())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("Xephyr should start (apt install xserver-xephyr): {e}"));
        let nested = Nested {
            name,
            child,
            _host: host,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while x11rb::connect(Some(&nested.name)).is_err() {
            assert!(Instant::now() < deadline, "Xephyr never accepted a client");
            std::thread::sleep(Duration::from_millis(50));
        }
        nested
    }

    /// Runs an X client against the nested display and waits for it; panics if it fails.
    fn run(&self, cmd: &str, args: &[&str]) {
        let status = Command::new(cmd)
            .args(args)
            .env("DISPLAY", &self.name)
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{cmd} should run: {e}"));
        assert!(status.success(), "{cmd} {args:?} failed: {status}");
    }

    /// Paints the root window one colour (`#rrggbb`).
    fn paint(&self, colour: &str) {
        self.run("xsetroot", &["-solid", colour]);
    }

    /// Resizes the screen with RandR, as `xrandr -s WxH` (a mode Xephyr lists).
    fn resize(&self, width: u32, height: u32) {
        self.run("xrandr", &["-s", &format!("{width}x{height}")]);
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[b, g, r]` of a grab's pixel at (x, y).
fn bgr_at(cap: &mut Capturer, x: u32, y: u32) -> [u8; 3] {
    let frame = cap.capture().expect("capture");
    let px = frame
        .pixel(x, y)
        .unwrap_or_else(|| panic!("({x},{y}) outside {}x{}", frame.width, frame.height));
    [px[0], px[1], px[2]]
}

#[test]
fn capture_follows_the_screen_through_resizes_with_both_methods() {
    for (slot, method) in [(40, CaptureMethod::Shm), (41, CaptureMethod::GetImage)] {
        let x = Nested::start(slot, 1024, 768);
        let mut cap = Capturer::open(Some(&x.name), method)
            .unwrap_or_else(|e| panic!("{method:?} capturer should open on Xephyr: {e}"));
        assert_eq!(cap.method(), method);
        x.paint("#ff0000");
        assert_eq!(bgr_at(&mut cap, 1023, 767), [0, 0, 255], "{method:?}: red");

        // Smaller, then larger than at the start, then back.
        for (w, h, colour, bgr) in [
            (800, 600, "#00ff00", [0, 255, 0]),
            (1280, 1024, "#0000ff", [255, 0, 0]),
            (1024, 768, "#ffffff", [255, 255, 255]),
        ] {
            x.resize(w, h);
            x.paint(colour);
            assert!(
                cap.wait_for_damage(Duration::from_secs(5))
                    .expect("wait for damage"),
                "{method:?}: the resize and repaint raise damage"
            );
            let frame = cap.capture().expect("capture after a resize");
            assert_eq!(
                (frame.width, frame.height, frame.stride),
                (w, h, w as usize * 4),
                "{method:?}: the grab has the new size"
            );
            assert_eq!(frame.data.len(), (w * h * 4) as usize);
            assert_eq!(cap.size(), (w, h));
            // The far corner proves the whole new screen is read, not a corner of it.
            assert_eq!(bgr_at(&mut cap, w - 1, h - 1), bgr, "{method:?}: {colour}");
            let pixels = cap.capture_pixels().expect("in-place grab");
            assert_eq!((pixels.width, pixels.height), (w, h));
            assert_eq!(pixels.data.len(), (w * h * 4) as usize);
        }
        // A still screen after the resizes: no phantom damage.
        assert!(
            !cap.wait_for_damage(Duration::from_millis(300))
                .expect("wait"),
            "{method:?}: damage on a still screen"
        );
    }
}

#[test]
fn a_grab_right_after_a_shrink_has_the_new_size() {
    // No wait for damage between the resize and the grab: the grab itself must notice.
    let x = Nested::start(42, 1024, 768);
    let mut cap = Capturer::open(Some(&x.name), CaptureMethod::Shm).expect("open");
    cap.capture().expect("first grab");
    for (w, h) in [(640, 480), (320, 240), (1024, 768)] {
        x.resize(w, h);
        let frame = cap.capture().expect("grab right after the resize");
        assert_eq!((frame.width, frame.height), (w, h));
    }
}
