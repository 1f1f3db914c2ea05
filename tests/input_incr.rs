//! Large clipboard contents through the X selection's INCR protocol against a real Xvfb,
//! with xclip as the other X client: a page's chunk stream served INCR to several
//! requestors at once while one that stops reading is dropped, and an X client's INCR
//! transfer reaching the page as a chunk stream.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vnrit::display::VirtualDisplay;
use vnrit::input::wire::{self, chunk::Chunker, ClipData, InputEvent, Reassembler};
use vnrit::input::InputSettings;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, Property, WindowClass,
};
use x11rb::protocol::Event;

use super::input::{runtime, send, start_with};

/// About `bytes` bytes of text with multi-byte characters, different for each `tag`.
fn big_text(bytes: usize, tag: &str) -> String {
    let mut s = String::with_capacity(bytes + 100);
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!("{tag} {i}: héllo ✓ 中文 {}\n", "x".repeat(i % 61)));
        i += 1;
    }
    s
}

/// `xclip -o` of CLIPBOARD as UTF8_STRING, started now.
fn xclip_out(display: &VirtualDisplay) -> Child {
    Command::new("xclip")
        .args(["-o", "-selection", "clipboard", "-t", "UTF8_STRING"])
        .env("DISPLAY", display.name())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("xclip runs (apt-get install xclip)")
}

/// Waits for `child` at most `limit`, killing it after; its stdout.
fn output_within(mut child: Child, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut buf).map(|_| buf)
    });
    while child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "xclip did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().expect("reader").expect("read")
}

#[test]
fn a_large_page_clipboard_is_served_incr_to_several_requestors() {
    let (display, service) = start_with(21, 320, 240, &InputSettings::default());
    let mut session = service.session(true);
    send(&mut session, r#"["v",3]"#);
    let text = big_text(3 << 20, "page");
    for msg in Chunker::new(Arc::new(ClipData::text(text.clone())), 1) {
        send(&mut session, &msg);
    }
    service.sync().expect("sync");

    // A requestor that gets the INCR answer and never reads on.
    let (conn, screen) = x11rb::connect(Some(display.name())).expect("connect");
    let root = conn.setup().roots[screen].root;
    let window = conn.generate_id().expect("id");
    let aux = CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE);
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
        &aux,
    )
    .expect("window");
    let atom = |n: &[u8]| {
        conn.intern_atom(false, n)
            .expect("a")
            .reply()
            .expect("a")
            .atom
    };
    let (clipboard, utf8, incr, prop) = (
        atom(b"CLIPBOARD"),
        atom(b"UTF8_STRING"),
        atom(b"INCR"),
        atom(b"STALL"),
    );
    conn.convert_selection(window, clipboard, utf8, prop, 0u32)
        .expect("convert");
    conn.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no SelectionNotify within 5 s");
        match conn.poll_for_event().expect("poll") {
            Some(Event::SelectionNotify(n)) => {
                assert_eq!(n.property, prop, "the request is answered");
                break;
            }
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let head = conn
        .get_property(false, window, prop, AtomEnum::ANY, 0, 16)
        .expect("get")
        .reply()
        .expect("reply");
    assert_eq!(head.type_, incr, "a 3 MiB answer goes INCR");
    let announced: Vec<u32> = head.value32().expect("32-bit").collect();
    assert_eq!(announced, [text.len() as u32]);

    // Meanwhile three xclip readers at once get every byte.
    let started = Instant::now();
    let readers: Vec<Child> = (0..3).map(|_| xclip_out(&display)).collect();
    for r in readers {
        let got = output_within(r, Duration::from_secs(20));
        assert_eq!(got.len(), text.len());
        assert!(got == text.as_bytes(), "xclip read other bytes");
    }
    eprintln!(
        "3 xclip readers of {} bytes took {:?}",
        text.len(),
        started.elapsed()
    );

    // The staller, once its transfer timed out, gets no chunk for deleting the property.
    std::thread::sleep(Duration::from_millis(5500).saturating_sub(started.elapsed()));
    while conn.poll_for_event().expect("poll").is_some() {}
    conn.delete_property(window, prop).expect("delete");
    conn.flush().expect("flush");
    let quiet_until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < quiet_until {
        if let Some(Event::PropertyNotify(p)) = conn.poll_for_event().expect("poll") {
            assert!(
                p.state != Property::NEW_VALUE,
                "a dropped transfer wrote another chunk"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // And the clipboard still serves others.
    let got = output_within(xclip_out(&display), Duration::from_secs(20));
    assert!(got == text.as_bytes());
}

#[test]
fn a_large_x_clipboard_reaches_the_page_as_a_chunk_stream() {
    let rt = runtime();
    let (display, service) = start_with(22, 320, 240, &InputSettings::default());
    let mut session = service.session(true);
    send(&mut session, r#"["v",3]"#);
    let mut out = session.outgoing();
    let text = big_text(3 << 20, "xclient");
    let mut owner = Command::new("xclip")
        .args(["-quiet", "-selection", "clipboard", "-i"])
        .env("DISPLAY", display.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xclip runs");
    owner
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let mut chunks = Reassembler::new(16 << 20);
    let started = Instant::now();
    let got = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let msg = tokio::time::timeout_at(deadline, out.recv())
                .await
                .expect("the clipboard within 20 s")
                .expect("service running");
            if let Ok(InputEvent::Chunk(m)) = wire::parse(msg.as_bytes()) {
                if let Some(data) = chunks.push(m).expect("a sound stream") {
                    return data;
                }
            }
        }
    });
    eprintln!(
        "{} bytes from xclip reached the page in {:?}",
        text.len(),
        started.elapsed()
    );
    let _ = owner.kill();
    let _ = owner.wait();
    assert_eq!(got, ClipData::text(text));
}
