//! Remote control against a real Xvfb, read back from the X server itself: an X client
//! window that receives the key, button and motion events the service injects, the server's
//! keymap and pointer state (nothing stuck), and the cursor the server reports. The
//! clipboard is in `input_clipboard.rs`, which shares the helpers here.

use std::time::{Duration, Instant};

use vnrit::display::VirtualDisplay;
use vnrit::input::keys::keysym_char;
use vnrit::input::{InputError, InputService, InputSession};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// A display number region private to this test process, apart from other test files.
pub(crate) fn first_display(slot: u32) -> u32 {
    300 + (std::process::id() % 500) + slot * 3
}

pub(crate) fn start(slot: u32, width: u32, height: u32) -> (VirtualDisplay, InputService) {
    start_with(slot, width, height, &vnrit::input::InputSettings::default())
}

pub(crate) fn start_with(
    slot: u32,
    width: u32,
    height: u32,
    settings: &vnrit::input::InputSettings,
) -> (VirtualDisplay, InputService) {
    let display = VirtualDisplay::start(width, height, first_display(slot))
        .unwrap_or_else(|e| panic!("Xvfb should start: {e}"));
    let service = InputService::start(display.name(), settings)
        .unwrap_or_else(|e| panic!("input service: {e}"));
    (display, service)
}

/// An X client with a full-screen window that has the focus and listens to input.
pub(crate) struct Listener {
    pub(crate) conn: RustConnection,
    pub(crate) root: Window,
}

impl Listener {
    pub(crate) fn new(display: &VirtualDisplay) -> Listener {
        let (conn, screen) = x11rb::connect(Some(display.name())).expect("listener connects");
        let s = &conn.setup().roots[screen];
        let (root, w, h) = (s.root, s.width_in_pixels, s.height_in_pixels);
        let win = conn.generate_id().expect("window id");
        let mask = EventMask::KEY_PRESS
            | EventMask::KEY_RELEASE
            | EventMask::BUTTON_PRESS
            | EventMask::BUTTON_RELEASE
            | EventMask::POINTER_MOTION;
        conn.create_window(
            0,
            win,
            root,
            0,
            0,
            w,
            h,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new().override_redirect(1).event_mask(mask),
        )
        .expect("create window");
        conn.map_window(win).expect("map");
        conn.sync().expect("sync");
        conn.set_input_focus(InputFocus::POINTER_ROOT, win, 0u32)
            .expect("focus");
        conn.sync().expect("sync");
        Listener { conn, root }
    }

    /// Every event that arrived once `service` has carried out its queue.
    pub(crate) fn events(&self, service: &InputService) -> Vec<Event> {
        service.sync().expect("service sync");
        self.conn.sync().expect("listener sync");
        let mut out = Vec::new();
        while let Some(ev) = self.conn.poll_for_event().expect("poll") {
            out.push(ev);
        }
        out
    }

    /// The text the key presses among `events` type, read with the server's current keymap
    /// (Shift picks column 1, AltGr/Mod5 column 4, as XKB does for these key types).
    pub(crate) fn typed(&self, events: &[Event]) -> String {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let map = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)
            .expect("mapping")
            .reply()
            .expect("mapping reply");
        let per = usize::from(map.keysyms_per_keycode);
        let mut text = String::new();
        for ev in events {
            let Event::KeyPress(k) = ev else { continue };
            let row = &map.keysyms[usize::from(k.detail - min) * per..][..per];
            let state = u16::from(k.state);
            let col = usize::from(state & 1 != 0) + if state & 0x80 != 0 { 4 } else { 0 };
            let ks = [col, col & 1, 0]
                .into_iter()
                .map(|c| row.get(c).copied().unwrap_or(0))
                .find(|&s| s != 0)
                .unwrap_or(0);
            if let Some(c) = keysym_char(ks) {
                text.push(c);
            }
        }
        text
    }

    /// Keycodes the server reports down.
    pub(crate) fn keys_down(&self) -> Vec<u8> {
        let keys = self
            .conn
            .query_keymap()
            .expect("keymap")
            .reply()
            .expect("reply")
            .keys;
        (0..256u32)
            .filter(|&kc| keys[(kc / 8) as usize] & (1 << (kc % 8)) != 0)
            .map(|kc| kc as u8)
            .collect()
    }

    /// Pointer position and the button bits (Button1Mask..Button5Mask) of its state.
    fn pointer(&self) -> (i16, i16, u16) {
        let p = self
            .conn
            .query_pointer(self.root)
            .expect("pointer")
            .reply()
            .expect("reply");
        (p.root_x, p.root_y, u16::from(p.mask) & 0x1f00)
    }
}

pub(crate) fn send(session: &mut InputSession, msg: &str) {
    session
        .handle(msg.as_bytes())
        .unwrap_or_else(|e| panic!("{msg} should be accepted: {e}"));
}

/// Press and release one key as a browser reports it.
fn tap(session: &mut InputSession, code: &str, key: &str) {
    send(session, &format!(r#"["kd","{code}","{key}"]"#));
    send(session, &format!(r#"["ku","{code}","{key}"]"#));
}

fn with_key(
    session: &mut InputSession,
    code: &str,
    key: &str,
    inner: impl FnOnce(&mut InputSession),
) {
    send(session, &format!(r#"["kd","{code}","{key}"]"#));
    inner(session);
    send(session, &format!(r#"["ku","{code}","{key}"]"#));
}

#[test]
fn typed_text_arrives_exactly_with_shift_altgr_and_foreign_letters() {
    let (display, service) = start(0, 320, 240);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    // A US keyboard: "Hi, 2!" with Shift held by the user for H and !.
    with_key(&mut s, "ShiftLeft", "Shift", |s| tap(s, "KeyH", "H"));
    tap(&mut s, "KeyI", "i");
    tap(&mut s, "Comma", ",");
    tap(&mut s, "Space", " ");
    tap(&mut s, "Digit2", "2");
    with_key(&mut s, "ShiftRight", "Shift", |s| tap(s, "Digit1", "!"));
    // A German keyboard: z on the US "Y" key, ö, AltGr+Q = @, AltGr+E = €, Shift+ß = ?.
    tap(&mut s, "KeyY", "z");
    tap(&mut s, "Semicolon", "ö");
    with_key(&mut s, "AltRight", "AltGraph", |s| {
        tap(s, "KeyQ", "@");
        tap(s, "KeyE", "€");
    });
    with_key(&mut s, "ShiftLeft", "Shift", |s| tap(s, "Minus", "?"));
    // A dead key then the composed letter, and Cyrillic.
    tap(&mut s, "BracketLeft", "Dead");
    tap(&mut s, "KeyE", "é");
    tap(&mut s, "KeyF", "а");
    tap(&mut s, "Enter", "Enter");
    let events = listener.events(&service);
    assert_eq!(listener.typed(&events), "Hi, 2!zö@€?éа");
    let presses = events
        .iter()
        .filter(|e| matches!(e, Event::KeyPress(_)))
        .count();
    let releases = events
        .iter()
        .filter(|e| matches!(e, Event::KeyRelease(_)))
        .count();
    assert_eq!(presses, releases, "every press has its release");
    assert!(listener.keys_down().is_empty(), "no key left down");
}

#[test]
fn shortcuts_carry_their_modifiers() {
    let (display, service) = start(1, 320, 240);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    with_key(&mut s, "ControlLeft", "Control", |s| {
        with_key(s, "AltLeft", "Alt", |s| tap(s, "KeyT", "t"));
        // Ctrl+C typed on a Russian layout is still Ctrl+C.
        tap(s, "KeyC", "с");
    });
    let events = listener.events(&service);
    let presses: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::KeyPress(k) => Some(k),
            _ => None,
        })
        .collect();
    assert_eq!(presses.len(), 4, "Control, Alt, T, C: {presses:?}");
    let t = presses[2];
    assert_eq!(
        u16::from(t.state) & 0x0c,
        0x0c,
        "T pressed with Control and Mod1"
    );
    let c = presses[3];
    assert_eq!(
        u16::from(c.state) & 0x0c,
        0x04,
        "C pressed with Control only"
    );
    assert_eq!(
        listener.typed(&events[events.len() - 2..]),
        "",
        "only releases left"
    );
    let typed_c = listener.typed(&[Event::KeyPress(*c)]);
    assert_eq!(typed_c, "c", "the physical C key, not Cyrillic");
}

#[test]
fn click_lands_on_the_expected_pixel_with_downscaling() {
    // X screen 1280x720 streamed at 640x360 (--height 360): the page normalises video
    // pixel (100, 50), centre of the pixel, to the frame.
    let (display, service) = start(2, 1280, 720);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    let (vw, vh) = (640.0, 360.0);
    let (vx, vy) = (100.0, 50.0);
    let (nx, ny) = ((vx + 0.5) / vw, (vy + 0.5) / vh);
    send(&mut s, &format!(r#"["m",{nx},{ny}]"#));
    send(&mut s, r#"["bd",1]"#);
    send(&mut s, r#"["bu",1]"#);
    let events = listener.events(&service);
    let press = events
        .iter()
        .find_map(|e| match e {
            Event::ButtonPress(b) => Some(*b),
            _ => None,
        })
        .expect("a button press arrives");
    assert_eq!(press.detail, 1);
    assert_eq!(
        (press.root_x, press.root_y),
        (201, 101),
        "video (100,50) x2 + centre"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ButtonRelease(b) if b.detail == 1)));
    // The corners stay on screen.
    send(&mut s, r#"["m",1,1]"#);
    let _ = listener.events(&service);
    assert_eq!(listener.pointer().0, 1279);
    assert_eq!(listener.pointer().1, 719);
}

#[test]
fn buttons_relative_motion_and_smooth_wheel() {
    let (display, service) = start(3, 400, 300);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    send(&mut s, r#"["m",0.5,0.5]"#);
    for b in [1, 2, 3, 8, 9] {
        send(&mut s, &format!(r#"["bd",{b}]"#));
        send(&mut s, &format!(r#"["bu",{b}]"#));
    }
    // Smooth scrolling: three 0.4-notch deltas make one notch down, then a direction
    // change drops the remainder: one notch up. Horizontal: 2.5 notches right = 2 clicks.
    for _ in 0..3 {
        send(&mut s, r#"["w",0,0.4]"#);
    }
    send(&mut s, r#"["w",0,-1]"#);
    send(&mut s, r#"["w",2.5,0]"#);
    // Relative moves, exact in binary: 1/256 of 400 px = 1.5625 px and 1/512 of 300 px =
    // 0.5859375 px per step; ten steps move 15.625 and 5.859375 px, fractions carried over.
    for _ in 0..10 {
        send(&mut s, r#"["mr",0.00390625,0.001953125]"#);
    }
    let events = listener.events(&service);
    let pressed: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::ButtonPress(b) => Some(b.detail),
            _ => None,
        })
        .collect();
    assert_eq!(pressed, vec![1, 2, 3, 8, 9, 5, 4, 7, 7]);
    let (x, y, buttons) = listener.pointer();
    assert_eq!((x, y), (215, 155), "whole pixels of the accumulated motion");
    assert_eq!(buttons, 0, "no button left down");
}

#[test]
fn nothing_stays_down_when_a_session_ends_mid_press() {
    let (display, service) = start(4, 320, 240);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    let mut other = service.session(true);
    send(&mut s, r#"["kd","ShiftLeft","Shift"]"#);
    send(&mut s, r#"["kd","KeyA","A"]"#);
    send(&mut s, r#"["kd","KeyF","ж"]"#); // on a spare keycode
    send(&mut s, r#"["bd",1]"#);
    send(&mut s, r#"["bd",3]"#);
    send(&mut other, r#"["kd","KeyB","b"]"#);
    let _ = listener.events(&service);
    assert_eq!(listener.keys_down().len(), 4, "Shift, A, ж and B are down");
    assert_eq!(
        listener.pointer().2,
        0x0100 | 0x0400,
        "buttons 1 and 3 are down"
    );
    drop(s);
    let _ = listener.events(&service);
    assert_eq!(
        listener.keys_down().len(),
        1,
        "only the other viewer's B stays down"
    );
    assert_eq!(listener.pointer().2, 0, "no button down");
    // The page losing focus releases the rest.
    send(&mut other, r#"["ra"]"#);
    let _ = listener.events(&service);
    assert!(listener.keys_down().is_empty());
}

#[test]
fn shutdown_releases_everything_and_gives_spare_keycodes_back() {
    let (display, service) = start(5, 320, 240);
    let listener = Listener::new(&display);
    let mut a = service.session(true);
    let mut b = service.session(true);
    send(&mut a, r#"["kd","ControlLeft","Control"]"#);
    send(&mut b, r#"["kd","KeyQ","ю"]"#);
    send(&mut b, r#"["bd",2]"#);
    let events = listener.events(&service);
    let spare = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::KeyPress(k) => Some(k.detail),
            _ => None,
        })
        .expect("ю pressed");
    assert_eq!(listener.keys_down().len(), 2);
    service.shutdown();
    assert!(listener.keys_down().is_empty(), "keys released on shutdown");
    assert_eq!(listener.pointer().2, 0, "button released on shutdown");
    let row = listener
        .conn
        .get_keyboard_mapping(spare, 1)
        .expect("mapping")
        .reply()
        .expect("reply");
    assert!(row.keysyms.iter().all(|&k| k == 0), "spare keycode unbound");
    assert!(matches!(
        a.handle(br#"["kd","KeyA","a"]"#),
        Err(InputError::Stopped)
    ));
    assert!(!service.is_running());
}

#[test]
fn view_only_sessions_cannot_control() {
    let (display, service) = start(6, 320, 240);
    let listener = Listener::new(&display);
    let mut viewer = service.session(false);
    for msg in [
        r#"["kd","KeyA","a"]"#,
        r#"["m",0.1,0.1]"#,
        r#"["bd",1]"#,
        r#"["cb","x"]"#,
    ] {
        assert!(
            matches!(viewer.handle(msg.as_bytes()), Err(InputError::ViewOnly)),
            "{msg} refused"
        );
    }
    assert!(viewer.handle(br#"["v",1]"#).is_ok(), "version is fine");
    let mut controller = service.session(true);
    send(&mut controller, r#"["m",0.5,0.5]"#);
    let events = listener.events(&service);
    let inputs = events
        .iter()
        .filter(|e| !matches!(e, Event::MotionNotify(_)))
        .count();
    assert_eq!(inputs, 0, "nothing but the controller's motion: {events:?}");
    assert_eq!(listener.pointer().0, 160);
}

#[test]
fn bad_messages_are_refused_and_the_session_goes_on() {
    let (display, service) = start(7, 320, 240);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    for bad in [
        &b"not json"[..],
        br#"["zz",1]"#,
        br#"["m",2,0]"#,
        br#"["bd",12]"#,
        b"\xff\xfe",
    ] {
        assert!(matches!(s.handle(bad), Err(InputError::Wire(_))));
    }
    tap(&mut s, "KeyK", "k");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut typed = String::new();
    while typed.is_empty() && Instant::now() < deadline {
        typed = listener.typed(&listener.events(&service));
    }
    assert_eq!(typed, "k");
}

/// Messages for a page until one satisfies `pred`, for at most five seconds.
pub(crate) fn wait_for(
    rt: &tokio::runtime::Runtime,
    out: &mut vnrit::input::OutgoingMessages,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let msg = tokio::time::timeout_at(deadline, out.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 5 s"))
                .unwrap_or_else(|| panic!("service stopped before {what}"));
            let v: Vec<serde_json::Value> =
                serde_json::from_str(&msg).unwrap_or_else(|e| panic!("bad JSON {msg}: {e}"));
            if pred(&v) {
                return v;
            }
        }
    })
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

#[test]
fn cursor_shape_and_position_reach_the_page() {
    use x11rb::protocol::xproto::ChangeWindowAttributesAux;
    let rt = runtime();
    let (display, service) = start(8, 400, 200);
    let listener = Listener::new(&display);
    let session = service.session(false);
    let mut out = session.outgoing();
    // A new page first learns the current shape and position.
    let shape = wait_for(&rt, &mut out, "cursor shape", |m| m[0] == "cs");
    assert_eq!(shape.len(), 9);
    let (w, h) = (
        shape[2].as_u64().unwrap_or(0),
        shape[3].as_u64().unwrap_or(0),
    );
    assert!(w > 0 && h > 0, "a real image: {w}x{h}");
    assert_eq!(
        (shape[6].as_u64(), shape[7].as_u64()),
        (Some(400), Some(200))
    );
    let rgba = shape[8].as_str().unwrap_or_default();
    assert_eq!(
        rgba.len() as u64,
        (w * h * 4).div_ceil(3) * 4,
        "base64 of w*h RGBA"
    );
    wait_for(&rt, &mut out, "initial position", |m| m[0] == "cp");
    // Another client moves the pointer with XTest: the page hears where it went.
    x11rb::protocol::xtest::fake_input(&listener.conn, 6, 0, 0, listener.root, 300, 50, 0)
        .expect("fake motion");
    listener.conn.sync().expect("sync");
    let cp = wait_for(&rt, &mut out, "pointer at (300,50)", |m| {
        m[0] == "cp" && m[1].as_f64() == Some(0.75) && m[2].as_f64() == Some(0.25)
    });
    assert_eq!(cp.len(), 3);
    // A warp (XWarpPointer, as `xdotool mousemove` does) makes no raw motion; the page still
    // hears of it from the periodic check.
    listener
        .conn
        .warp_pointer(x11rb::NONE, listener.root, 0, 0, 0, 0, 100, 150)
        .expect("warp");
    listener.conn.sync().expect("sync");
    wait_for(&rt, &mut out, "pointer warped to (100,150)", |m| {
        m[0] == "cp" && m[1].as_f64() == Some(0.25) && m[2].as_f64() == Some(0.75)
    });
    // A window with a hand cursor under the pointer: a new shape with another serial.
    let font = listener.conn.generate_id().expect("id");
    listener.conn.open_font(font, b"cursor").expect("font");
    let hand = listener.conn.generate_id().expect("id");
    listener
        .conn
        .create_glyph_cursor(hand, font, font, 60, 61, 0, 0, 0, 0xffff, 0xffff, 0xffff)
        .expect("cursor");
    let windows = listener
        .conn
        .query_tree(listener.root)
        .expect("tree")
        .reply()
        .expect("reply");
    let win = *windows.children.last().expect("the listener window");
    listener
        .conn
        .change_window_attributes(win, &ChangeWindowAttributesAux::new().cursor(hand))
        .expect("set cursor");
    listener.conn.sync().expect("sync");
    let serial = shape[1].as_u64();
    let hand_shape = wait_for(&rt, &mut out, "hand cursor", |m| {
        m[0] == "cs" && m[1].as_u64() != serial
    });
    assert_ne!(hand_shape[8], shape[8], "a different image");
    drop(listener);
    drop(display);
}
