//! The clipboard between pages and X against a real Xvfb, as another X client sees it:
//! reading the selections the service owns, and owning CLIPBOARD for the service to read.

use std::time::{Duration, Instant};

use vnrit::display::VirtualDisplay;
use vnrit::input::InputError;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::input::{runtime, send, start, start_with, wait_for, Listener};

/// Another X client using the clipboard the ordinary way.
struct ClipClient {
    conn: RustConnection,
    window: Window,
    clipboard: u32,
    utf8: u32,
}

impl ClipClient {
    fn new(display: &VirtualDisplay) -> ClipClient {
        let (conn, screen) = x11rb::connect(Some(display.name())).expect("clip client connects");
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id().expect("id");
        conn.create_window(
            0,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new(),
        )
        .expect("window");
        let atom = |n: &[u8]| {
            conn.intern_atom(false, n)
                .expect("atom")
                .reply()
                .expect("atom")
                .atom
        };
        let (clipboard, utf8) = (atom(b"CLIPBOARD"), atom(b"UTF8_STRING"));
        conn.sync().expect("sync");
        ClipClient {
            conn,
            window,
            clipboard,
            utf8,
        }
    }

    /// Ask for `selection` as `target`; `(type, bytes)` or None when refused.
    fn read(&self, selection: u32, target: u32) -> Option<(u32, Vec<u8>)> {
        let prop = self.clipboard; // any atom works as the property name
        self.conn
            .convert_selection(self.window, selection, target, prop, 0u32)
            .expect("convert");
        self.conn.flush().expect("flush");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline, "no SelectionNotify within 5 s");
            let Some(ev) = self.conn.poll_for_event().expect("poll") else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let Event::SelectionNotify(n) = ev else {
                continue;
            };
            if n.property == x11rb::NONE {
                return None;
            }
            let r = self
                .conn
                .get_property(true, self.window, prop, 0u32, 0, 1 << 20)
                .expect("get")
                .reply()
                .expect("get reply");
            return Some((r.type_, r.value));
        }
    }

    /// Own CLIPBOARD with `text` and answer UTF8_STRING requests on a thread until `stop`.
    fn own(
        self,
        text: Vec<u8>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        use std::sync::atomic::Ordering;
        use x11rb::protocol::xproto::{PropMode, SelectionNotifyEvent, SELECTION_NOTIFY_EVENT};
        use x11rb::wrapper::ConnectionExt as _;
        self.conn
            .set_selection_owner(self.window, self.clipboard, 0u32)
            .expect("own");
        self.conn.flush().expect("flush");
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                let Some(ev) = self.conn.poll_for_event().expect("poll") else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Event::SelectionRequest(r) = ev else {
                    continue;
                };
                let ok = r.target == self.utf8;
                if ok {
                    self.conn
                        .change_property8(
                            PropMode::REPLACE,
                            r.requestor,
                            r.property,
                            self.utf8,
                            &text,
                        )
                        .expect("property");
                }
                let reply = SelectionNotifyEvent {
                    response_type: SELECTION_NOTIFY_EVENT,
                    sequence: 0,
                    time: r.time,
                    requestor: r.requestor,
                    selection: r.selection,
                    target: r.target,
                    property: if ok { r.property } else { x11rb::NONE },
                };
                self.conn
                    .send_event(false, r.requestor, EventMask::NO_EVENT, reply)
                    .expect("notify");
                self.conn.flush().expect("flush");
            }
        })
    }
}

#[test]
fn clipboard_from_the_page_reaches_x_clients() {
    let (display, service) = start(9, 320, 240);
    let reader = ClipClient::new(&display);
    let mut s = service.session(true);
    let text = "Grüße, 日本語 ✓ \"quoted\"";
    send(&mut s, &serde_json::json!(["cb", text]).to_string());
    service.sync().expect("sync");
    for selection in [
        reader.clipboard,
        u32::from(x11rb::protocol::xproto::AtomEnum::PRIMARY),
    ] {
        let (ty, bytes) = reader
            .read(selection, reader.utf8)
            .expect("UTF8_STRING served");
        assert_eq!(ty, reader.utf8);
        assert_eq!(String::from_utf8(bytes).expect("UTF-8"), text);
    }
    let string = u32::from(x11rb::protocol::xproto::AtomEnum::STRING);
    let (_, latin1) = reader
        .read(reader.clipboard, string)
        .expect("STRING served");
    assert_eq!(latin1, b"Gr\xfc\xdfe, ??? ? \"quoted\"".to_vec());
    let targets_atom = reader
        .conn
        .intern_atom(false, b"TARGETS")
        .expect("a")
        .reply()
        .expect("a")
        .atom;
    let (_, targets) = reader
        .read(reader.clipboard, targets_atom)
        .expect("TARGETS served");
    let atoms: Vec<u32> = targets
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(
        atoms.contains(&reader.utf8) && atoms.contains(&string),
        "{atoms:?}"
    );
    // A view-only viewer cannot set it.
    let mut viewer = service.session(false);
    assert!(matches!(
        viewer.handle(br#"["cb","nope"]"#),
        Err(InputError::ViewOnly)
    ));
}

#[test]
fn clipboard_from_x_reaches_controlling_pages_only() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = runtime();
    let settings = vnrit::input::InputSettings {
        max_clipboard: 65_536,
    };
    let (display, service) = start_with(10, 320, 240, &settings);
    let controller = service.session(true);
    let viewer = service.session(false);
    let mut out = controller.outgoing();
    let mut viewer_out = viewer.outgoing();
    let text = "ünïcødé ✓ from X";
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let owner = ClipClient::new(&display).own(text.as_bytes().to_vec(), stop.clone());
    let cb = wait_for(&rt, &mut out, "clipboard text", |m| m[0] == "cb");
    assert_eq!(cb[1], text);
    stop.store(true, Ordering::Release);
    owner.join().expect("owner thread");
    // The viewer's stream goes on to the next pointer position without the clipboard.
    let mover = Listener::new(&display);
    x11rb::protocol::xtest::fake_input(&mover.conn, 6, 0, 0, mover.root, 10, 10, 0).expect("move");
    mover.conn.sync().expect("sync");
    let next = wait_for(&rt, &mut viewer_out, "a position after the copy", |m| {
        m[0] == "cb" || (m[0] == "cp" && m[1].as_f64() == Some(10.0 / 320.0))
    });
    assert_eq!(next[0], "cp", "view-only pages get no clipboard");

    // Too much text: a clear message instead.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let big = vec![b'x'; 70_000];
    let owner = ClipClient::new(&display).own(big, stop.clone());
    let err = wait_for(&rt, &mut out, "too-large message", |m| {
        m[0] == "err" || m[0] == "cb"
    });
    stop.store(true, Ordering::Release);
    owner.join().expect("owner thread");
    assert_eq!(err[0], "err");
    let msg = err[1].as_str().unwrap_or_default();
    assert!(
        msg.contains("70000 bytes") && msg.contains("limit"),
        "{msg}"
    );
}
