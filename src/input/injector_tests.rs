//! The X thread against a real Xvfb: an X protocol error costs one request, not remote
//! control.

use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::super::{Cmd, InputService, XRequest};
use crate::display::VirtualDisplay;

/// An X client whose full-screen window has the focus and hears key presses.
fn listener(display: &str) -> RustConnection {
    let (conn, screen) = x11rb::connect(Some(display)).expect("listener connects");
    let s = &conn.setup().roots[screen];
    let (root, w, h) = (s.root, s.width_in_pixels, s.height_in_pixels);
    let win = conn.generate_id().expect("window id");
    let aux = CreateWindowAux::new()
        .override_redirect(1)
        .event_mask(EventMask::KEY_PRESS);
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
        &aux,
    )
    .expect("create window");
    conn.map_window(win).expect("map");
    conn.sync().expect("sync");
    conn.set_input_focus(InputFocus::POINTER_ROOT, win, 0u32)
        .expect("focus");
    conn.sync().expect("sync");
    conn
}

#[test]
fn a_refused_request_leaves_remote_control_working() {
    let first = 700 + std::process::id() % 200;
    let display = VirtualDisplay::start(320, 240, first).expect("Xvfb should start");
    let service = InputService::start(display.name(), &crate::input::InputSettings::default())
        .expect("input service");
    let x = listener(display.name());

    // A request with a window that does not exist, on the X thread's connection and through
    // the same handling as its own requests: the server answers BadWindow.
    let (tx, refused) = std::sync::mpsc::channel();
    let request = XRequest(Box::new(move |conn: &RustConnection| {
        let answer = conn.get_window_attributes(0x7fff_fff0)?.reply();
        let _ = tx.send(matches!(
            answer,
            Err(x11rb::errors::ReplyError::X11Error(_))
        ));
        answer.map(drop)
    }));
    service.shared.send(Cmd::Request(request)).expect("queued");
    assert_eq!(
        refused.recv_timeout(Duration::from_secs(5)),
        Ok(true),
        "the X server refused the request"
    );
    service.sync().expect("the X thread still answers");
    assert!(
        service.is_running(),
        "a protocol error stopped remote control"
    );

    // A key typed after it arrives in X.
    let mut session = service.session(true);
    session.handle(br#"["kd","KeyA","a"]"#).expect("key down");
    session.handle(br#"["ku","KeyA","a"]"#).expect("key up");
    service.sync().expect("sync");
    let deadline = Instant::now() + Duration::from_secs(5);
    let pressed = loop {
        x.sync().expect("listener sync");
        if let Some(Event::KeyPress(k)) = x.poll_for_event().expect("poll") {
            break k.detail;
        }
        assert!(Instant::now() < deadline, "no key press reached X");
        std::thread::sleep(Duration::from_millis(10));
    };
    let map = x
        .get_keyboard_mapping(pressed, 1)
        .expect("request")
        .reply()
        .expect("keymap");
    assert_eq!(
        map.keysyms.first(),
        Some(&u32::from(b'a')),
        "the key typed is a"
    );
}
