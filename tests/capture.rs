//! Screen capture and virtual display against real Xvfb servers: exact pixels through both
//! grab methods, damage-driven waiting (including its CPU cost), server loss, missing
//! extensions, and Xvfb clean-up.

use std::time::{Duration, Instant};

use vnrit::capture::{CaptureError, CaptureMethod, Capturer, DamageRect, Frame};
use vnrit::display::{self, VirtualDisplay};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, Gcontext, Rectangle, Window,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// A display number region private to this test process; `slot` spreads the tests apart.
fn first_display(slot: u32) -> u32 {
    100 + (std::process::id() % 700) + slot * 3
}

fn start(slot: u32, width: u32, height: u32) -> VirtualDisplay {
    match VirtualDisplay::start(width, height, first_display(slot)) {
        Ok(d) => d,
        Err(e) => panic!("Xvfb should start: {e}"),
    }
}

/// A second client that draws on the root window (or a child) with solid colours.
struct Painter {
    conn: RustConnection,
    root: Window,
    gc: Gcontext,
}

impl Painter {
    fn new(display: &VirtualDisplay) -> Painter {
        let (conn, screen) = x11rb::connect(Some(display.name())).expect("painter connects");
        let root = conn.setup().roots[screen].root;
        let gc = conn.generate_id().expect("gc id");
        conn.create_gc(gc, root, &CreateGCAux::new().graphics_exposures(0))
            .expect("create gc");
        Painter { conn, root, gc }
    }

    /// Fill a rectangle of `window` with 0xRRGGBB and wait until the server has done it.
    fn fill_in(&self, window: Window, rgb: u32, x: i16, y: i16, w: u16, h: u16) {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(rgb))
            .expect("change gc");
        let r = Rectangle {
            x,
            y,
            width: w,
            height: h,
        };
        self.conn
            .poly_fill_rectangle(window, self.gc, &[r])
            .expect("fill");
        self.conn.sync().expect("sync");
    }

    fn fill(&self, rgb: u32, x: i16, y: i16, w: u16, h: u16) {
        self.fill_in(self.root, rgb, x, y, w, h);
    }

    /// Create and map a child window of the root with a solid background.
    fn child_window(&self, rgb: u32, x: i16, y: i16, w: u16, h: u16) -> Window {
        let win = self.conn.generate_id().expect("window id");
        self.conn
            .create_window(
                0, // copy depth from parent
                win,
                self.root,
                x,
                y,
                w,
                h,
                0,
                WindowClass::INPUT_OUTPUT,
                0, // copy visual from parent
                &CreateWindowAux::new()
                    .background_pixel(rgb)
                    .override_redirect(1),
            )
            .expect("create window");
        self.conn.map_window(win).expect("map");
        self.conn.sync().expect("sync");
        win
    }
}

/// The `[b, g, r]` bytes expected for 0xRRGGBB.
fn bgr(rgb: u32) -> [u8; 3] {
    [rgb as u8, (rgb >> 8) as u8, (rgb >> 16) as u8]
}

fn assert_pixel(frame: &Frame, x: u32, y: u32, rgb: u32, what: &str) {
    let px = frame
        .pixel(x, y)
        .unwrap_or_else(|| panic!("({x},{y}) outside the frame"));
    assert_eq!(
        &px[..3],
        &bgr(rgb),
        "{what}: pixel ({x},{y}) should be {rgb:06x}"
    );
}

const BACKGROUND: u32 = 0x20_30_40;
/// (colour, x, y, w, h) drawn by [`draw_scene`].
const SCENE: [(u32, i16, i16, u16, u16); 4] = [
    (0xff_00_00, 10, 10, 50, 40),
    (0x00_ff_00, 100, 20, 60, 60),
    (0x00_00_ff, 200, 100, 80, 50),
    (0x12_34_56, 30, 150, 100, 60),
];

fn draw_scene(p: &Painter, width: u16, height: u16) {
    p.fill(BACKGROUND, 0, 0, width, height);
    for (rgb, x, y, w, h) in SCENE {
        p.fill(rgb, x, y, w, h);
    }
}

/// Check corners, centre and the pixels just outside every rectangle of the scene.
fn assert_scene(frame: &Frame, method: &str) {
    assert_eq!((frame.width, frame.height), (320, 240), "{method}: size");
    assert_eq!(frame.stride, 320 * 4, "{method}: stride");
    assert_eq!(frame.data.len(), 320 * 4 * 240, "{method}: data length");
    for (rgb, x, y, w, h) in SCENE {
        let (x0, y0) = (x as u32, y as u32);
        let (x1, y1) = (x0 + u32::from(w) - 1, y0 + u32::from(h) - 1);
        for (px, py) in [
            (x0, y0),
            (x1, y0),
            (x0, y1),
            (x1, y1),
            ((x0 + x1) / 2, (y0 + y1) / 2),
        ] {
            assert_pixel(frame, px, py, rgb, method);
        }
        assert_pixel(frame, x0 - 1, y0, BACKGROUND, method);
        assert_pixel(frame, x1 + 1, y1, BACKGROUND, method);
        assert_pixel(frame, x0, y1 + 1, BACKGROUND, method);
    }
    assert_pixel(frame, 319, 239, BACKGROUND, method);
}

fn open(display: &VirtualDisplay, method: CaptureMethod) -> Capturer {
    Capturer::open(Some(display.name()), method)
        .unwrap_or_else(|e| panic!("capturer ({method:?}) should open: {e}"))
}

#[test]
fn shm_and_getimage_return_exactly_the_drawn_pixels() {
    let display = start(0, 320, 240);
    let painter = Painter::new(&display);
    draw_scene(&painter, 320, 240);

    let mut shm = open(&display, CaptureMethod::Shm);
    assert_eq!(shm.method(), CaptureMethod::Shm);
    assert_eq!(shm.size(), (320, 240));
    let shm_frame = shm.capture().expect("SHM capture").clone();
    assert_scene(&shm_frame, "SHM");

    let mut get = open(&display, CaptureMethod::GetImage);
    assert_eq!(get.method(), CaptureMethod::GetImage);
    let get_frame = get.capture().expect("GetImage capture").clone();
    assert_scene(&get_frame, "GetImage");

    assert!(shm_frame == get_frame, "SHM and GetImage frames differ");

    // Buffers are reused, and a second grab sees new drawing.
    painter.fill(0xab_cd_ef, 0, 0, 5, 5);
    let again = shm.capture().expect("second SHM capture");
    assert_pixel(again, 2, 2, 0xab_cd_ef, "SHM after redraw");
    assert_pixel(again, 20, 20, 0xff_00_00, "SHM after redraw");

    // The copy-free grab sees the same pixels, through both methods.
    for (cap, what) in [(&mut shm, "SHM in place"), (&mut get, "GetImage in place")] {
        let pixels = cap.capture_pixels().expect("in-place capture");
        let view = Frame {
            width: pixels.width,
            height: pixels.height,
            stride: pixels.stride,
            data: pixels.data.to_vec(),
        };
        assert_pixel(&view, 2, 2, 0xab_cd_ef, what);
        assert_pixel(&view, 20, 20, 0xff_00_00, what);
    }
}

#[test]
fn auto_prefers_shm_and_falls_back_to_getimage_without_it() {
    let display = start(1, 320, 240);
    assert_eq!(
        open(&display, CaptureMethod::Auto).method(),
        CaptureMethod::Shm
    );

    let no_shm =
        VirtualDisplay::start_with_args(320, 240, first_display(2), &["-extension", "MIT-SHM"])
            .expect("Xvfb without MIT-SHM starts");
    let painter = Painter::new(&no_shm);
    draw_scene(&painter, 320, 240);
    let mut auto = open(&no_shm, CaptureMethod::Auto);
    assert_eq!(auto.method(), CaptureMethod::GetImage);
    assert_scene(
        auto.capture().expect("fallback capture"),
        "Auto without MIT-SHM",
    );
    match Capturer::open(Some(no_shm.name()), CaptureMethod::Shm) {
        Err(e @ CaptureError::ShmUnavailable(_)) => {
            assert!(e.to_string().contains("MIT-SHM"), "message: {e}")
        }
        Err(e) => panic!("expected ShmUnavailable, got {e}"),
        Ok(_) => panic!("forcing SHM on a server without MIT-SHM must fail"),
    }
}

#[test]
fn missing_damage_extension_is_reported_by_name() {
    let display =
        VirtualDisplay::start_with_args(320, 240, first_display(3), &["-extension", "DAMAGE"])
            .expect("Xvfb without DAMAGE starts");
    match Capturer::open(Some(display.name()), CaptureMethod::Auto) {
        Err(e @ CaptureError::MissingExtension("DAMAGE")) => {
            assert!(e.to_string().contains("DAMAGE extension"), "message: {e}")
        }
        Err(e) => panic!("expected MissingExtension(DAMAGE), got {e}"),
        Ok(_) => panic!("capture without DAMAGE must not open"),
    }
}

#[test]
fn wait_for_damage_sleeps_on_a_still_screen_and_wakes_on_drawing() {
    let display = start(4, 320, 240);
    let painter = Painter::new(&display);
    draw_scene(&painter, 320, 240);
    let mut cap = open(&display, CaptureMethod::Auto);
    cap.capture().expect("capture");

    let t = Instant::now();
    assert!(!cap
        .wait_for_damage(Duration::from_millis(300))
        .expect("wait"));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "returned early: {:?}",
        t.elapsed()
    );
    assert_eq!(cap.damage_bounds(), None);

    painter.fill(0xff_ff_00, 40, 60, 30, 20);
    let t = Instant::now();
    assert!(
        cap.wait_for_damage(Duration::from_secs(5)).expect("wait"),
        "drawing must be seen"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "damage took {:?}",
        t.elapsed()
    );
    assert_eq!(
        cap.damage_bounds(),
        Some(DamageRect {
            x: 40,
            y: 60,
            width: 30,
            height: 20
        })
    );
    // Reported once: the same change does not wake the next wait.
    assert!(!cap
        .wait_for_damage(Duration::from_millis(200))
        .expect("wait"));

    // Changes between a report and the capture are in the frame; the capture clears them.
    painter.fill(0x00_ff_ff, 0, 0, 4, 4);
    assert!(cap.wait_for_damage(Duration::from_secs(5)).expect("wait"));
    let frame = cap.capture().expect("capture");
    assert_pixel(frame, 1, 1, 0x00_ff_ff, "after damage");
    assert_pixel(frame, 50, 70, 0xff_ff_00, "after damage");
    assert_eq!(cap.damage_bounds(), None);
    assert!(!cap
        .wait_for_damage(Duration::from_millis(200))
        .expect("wait"));
}

#[test]
fn drawing_inside_a_child_window_counts_as_damage() {
    let display = start(5, 320, 240);
    let painter = Painter::new(&display);
    let child = painter.child_window(0x44_44_44, 100, 100, 80, 60);
    let mut cap = open(&display, CaptureMethod::Auto);
    cap.capture().expect("capture");
    assert!(!cap
        .wait_for_damage(Duration::from_millis(200))
        .expect("wait"));

    painter.fill_in(child, 0xff_80_00, 10, 10, 20, 20);
    assert!(cap.wait_for_damage(Duration::from_secs(5)).expect("wait"));
    assert_eq!(
        cap.damage_bounds(),
        Some(DamageRect {
            x: 110,
            y: 110,
            width: 20,
            height: 20
        })
    );
    assert_pixel(
        cap.capture().expect("capture"),
        115,
        115,
        0xff_80_00,
        "child window",
    );
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn waiting_on_a_still_screen_uses_almost_no_cpu() {
    let display = start(6, 640, 480);
    display.paint_welcome().expect("paint");
    let mut cap = open(&display, CaptureMethod::Auto);
    cap.capture().expect("capture");

    let (wall, cpu) = (Instant::now(), thread_cpu_time());
    let changed = cap.wait_for_damage(Duration::from_secs(1)).expect("wait");
    let (wall, cpu) = (wall.elapsed(), thread_cpu_time() - cpu);
    assert!(!changed, "nothing drew, yet damage was reported");
    assert!(wall >= Duration::from_secs(1), "returned after {wall:?}");
    assert!(
        cpu < Duration::from_millis(50),
        "a 1 s idle wait cost {cpu:?} of CPU"
    );
}

#[test]
fn welcome_screen_is_a_colourful_desktop_that_survives_windows() {
    let display = start(7, 640, 480);
    display.paint_welcome().expect("paint");
    let mut shm = open(&display, CaptureMethod::Shm);
    let before = shm.capture().expect("capture").clone();

    let mut colours = std::collections::HashSet::new();
    let mut black = 0;
    let mut samples = 0;
    for y in (0..480).step_by(8) {
        for x in (0..640).step_by(8) {
            let px = before.pixel(x, y).expect("inside");
            colours.insert([px[0], px[1], px[2]]);
            black += usize::from(px[..3] == [0, 0, 0]);
            samples += 1;
        }
    }
    assert!(
        colours.len() >= 20,
        "only {} distinct colours",
        colours.len()
    );
    assert!(
        black * 20 < samples,
        "{black} of {samples} samples are black"
    );

    // Both grab methods agree on rich content too.
    let mut get = open(&display, CaptureMethod::GetImage);
    assert!(
        *get.capture().expect("capture") == before,
        "SHM and GetImage differ"
    );

    // The picture is the root background: a window that comes and goes leaves no hole.
    let painter = Painter::new(&display);
    let win = painter.child_window(0xff_00_ff, 50, 50, 200, 150);
    assert_pixel(
        shm.capture().expect("capture"),
        60,
        60,
        0xff_00_ff,
        "window",
    );
    painter.conn.destroy_window(win).expect("destroy");
    painter.conn.sync().expect("sync");
    assert!(
        *shm.capture().expect("capture") == before,
        "the background was not restored"
    );
}

#[test]
fn losing_the_x_server_is_an_error_not_a_panic() {
    let mut display = start(8, 320, 240);
    let mut grabbing = open(&display, CaptureMethod::Shm);
    let mut waiting = open(&display, CaptureMethod::GetImage);
    display.stop();

    for (what, result) in [
        ("capture", grabbing.capture().map(|_| ())),
        (
            "wait",
            waiting.wait_for_damage(Duration::from_secs(5)).map(|_| ()),
        ),
    ] {
        match result {
            Err(e @ CaptureError::Disconnected(_)) => assert!(
                e.to_string().starts_with("lost the X server connection"),
                "{what}: {e}"
            ),
            Err(e) => panic!("{what}: expected Disconnected, got {e}"),
            Ok(()) => panic!("{what} succeeded on a dead server"),
        }
    }
}

#[test]
fn dropping_the_display_kills_xvfb_and_removes_its_files() {
    let display = start(9, 320, 240);
    let number = display.number();
    assert_eq!(display.name(), format!(":{number}"));
    let pid = display.pid().expect("running");
    let lock = format!("/tmp/.X{number}-lock");
    let socket = format!("/tmp/.X11-unix/X{number}");
    let owner = std::fs::read_to_string(&lock).expect("Xvfb writes its lock file");
    assert_eq!(owner.trim().parse::<u32>().ok(), Some(pid));
    assert!(std::path::Path::new(&socket).exists());

    drop(display);
    assert!(
        !std::path::Path::new(&lock).exists(),
        "lock file left behind"
    );
    assert!(
        !std::path::Path::new(&socket).exists(),
        "socket left behind"
    );
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "Xvfb {pid} still runs");
}

#[test]
fn opening_a_display_that_does_not_exist_says_so() {
    let number = (first_display(10)..first_display(10) + 200)
        .find(|n| display::is_free(*n))
        .expect("a free display number");
    let name = format!(":{number}");
    match Capturer::open(Some(&name), CaptureMethod::Auto) {
        Err(e @ CaptureError::Connect { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&name), "message lacks the display: {msg}");
            assert!(
                msg.contains("X server is running"),
                "message gives no hint: {msg}"
            );
        }
        Err(e) => panic!("expected a Connect error, got {e}"),
        Ok(_) => panic!("opened a display that does not exist"),
    }
}

#[test]
fn displays_started_at_once_from_the_same_number_get_different_numbers() {
    let first = first_display(11);
    let handles: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || VirtualDisplay::start(160, 120, first)))
        .collect();
    let displays: Vec<VirtualDisplay> = handles
        .into_iter()
        .map(|h| match h.join() {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => panic!("a racing start failed: {e}"),
            Err(_) => panic!("a racing start panicked"),
        })
        .collect();
    let mut numbers: Vec<u32> = displays.iter().map(VirtualDisplay::number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 3, "two displays share a number: {numbers:?}");
    for d in &displays {
        // Each handle reaches its own server: the lock names its pid, and a client gets in.
        let lock = std::fs::read_to_string(format!("/tmp/.X{}-lock", d.number())).expect("lock");
        assert_eq!(lock.trim().parse::<u32>().ok(), d.pid());
        open(d, CaptureMethod::Auto);
    }
}

#[test]
fn a_wake_up_cuts_the_damage_wait_short_but_damage_comes_first() {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    let display = start(14, 320, 240);
    let painter = Painter::new(&display);
    let mut cap = open(&display, CaptureMethod::Auto);
    cap.capture().expect("capture");
    let (tx, rx) = UnixDatagram::pair().expect("socket pair");

    // Another thread wakes the sleeper after 200 ms of a 5 s wait on a still screen.
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        tx.send(&[1]).expect("wake");
        tx
    });
    let t = Instant::now();
    let damaged = cap
        .wait_for_damage_or(Duration::from_secs(5), rx.as_fd())
        .expect("wait");
    let took = t.elapsed();
    assert!(!damaged, "nothing was drawn");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "woken after {took:?}"
    );
    let tx = waker.join().expect("waker thread");

    // Still raised (nobody drained it) and the screen changed: the damage is reported.
    painter.fill(0x00_ff_00, 10, 10, 20, 20);
    std::thread::sleep(Duration::from_millis(100));
    assert!(cap
        .wait_for_damage_or(Duration::from_secs(5), rx.as_fd())
        .expect("wait"));
    drop(tx);
}
