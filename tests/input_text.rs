//! Text typed as key strokes (`tx`, input protocol version 2) against a real Xvfb, read back
//! by another X client: every character in order whatever the keymap lacks, Shift only
//! around shifted characters, nothing left down, cancellation, the backlog bound, and
//! view-only refusal (of clipboard images too).

use std::time::{Duration, Instant};

use serde_json::json;
use vnrit::input::typing::MAX_BACKLOG_CHARS;
use vnrit::input::InputError;
use x11rb::protocol::Event;

use super::input::{runtime, send, start, wait_for, Listener};

/// Every event the listener gets until `done` says the events so far are complete, for at
/// most `secs` seconds.
fn events_until(
    listener: &Listener,
    service: &vnrit::input::InputService,
    secs: u64,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut all = Vec::new();
    loop {
        all.extend(listener.events(service));
        if done(&all) || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(events: &[Event], press: bool) -> usize {
    events
        .iter()
        .filter(|e| match e {
            Event::KeyPress(_) => press,
            Event::KeyRelease(_) => !press,
            _ => false,
        })
        .count()
}

#[test]
fn typed_text_arrives_in_order_with_nothing_left_down() {
    let rt = runtime();
    let (display, service) = start(11, 320, 240);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    let mut out = s.outgoing();
    let first = wait_for(&rt, &mut out, "the server's version", |_| true);
    assert_eq!(
        first,
        vec![json!("v"), json!(3), json!(16 << 20)],
        "a page hears the version first"
    );
    // Latin with Shift, CJK, kana, Latin-1, Greek; a line break and a tab (typed as Return
    // and Tab, which the listener does not print).
    let text = "Hi, 中文输入 にほんご ÿé!\r\nΩ\tEnd";
    send(&mut s, &json!(["tx", text]).to_string());
    let want = "Hi, 中文输入 にほんご ÿé!ΩEnd";
    let events = events_until(&listener, &service, 10, |ev| listener.typed(ev) == want);
    assert_eq!(listener.typed(&events), want);
    assert_eq!(
        count(&events, true),
        count(&events, false),
        "every press released"
    );
    assert!(listener.keys_down().is_empty(), "no key left down");
    // Return and Tab were typed between the characters.
    let presses: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::KeyPress(k) => Some(k.detail),
            _ => None,
        })
        .collect();
    assert!(
        presses.len() >= want.chars().count() + 2,
        "{} presses",
        presses.len()
    );
}

#[test]
fn typing_is_cancelled_bounded_and_refused_to_view_only_viewers() {
    let (display, service) = start(12, 320, 240);
    let listener = Listener::new(&display);
    let mut s = service.session(true);
    // 2 s of typing, cancelled at once: far fewer characters arrive.
    send(&mut s, &json!(["tx", "a".repeat(500)]).to_string());
    std::thread::sleep(Duration::from_millis(100));
    send(&mut s, r#"["txc"]"#);
    service.sync().expect("sync");
    let events = events_until(&listener, &service, 1, |_| false);
    let typed = listener.typed(&events).len();
    assert!(
        (1..400).contains(&typed),
        "{typed} of 500 typed after cancelling"
    );
    assert!(listener.keys_down().is_empty(), "no key left down");
    // The backlog is bounded per viewer; cancelling frees it.
    let chunk = json!(["tx", "b".repeat(50_000)]).to_string();
    send(&mut s, &chunk);
    assert!(
        matches!(s.handle(chunk.as_bytes()), Err(InputError::TypingBacklog)),
        "over {MAX_BACKLOG_CHARS} characters waiting is refused"
    );
    send(&mut s, r#"["txc"]"#);
    service.sync().expect("sync");
    send(&mut s, &chunk);
    send(&mut s, r#"["txc"]"#);
    // A view-only viewer can neither type nor cancel.
    let mut viewer = service.session(false);
    for msg in [
        r#"["tx","x"]"#,
        r#"["txc"]"#,
        r#"["ci","image/png","iVBORw=="]"#,
        r#"["cbb",1,"text/plain",4]"#,
        r#"["cbp",1,0,"dmlldw=="]"#,
        r#"["cbe",1]"#,
    ] {
        assert!(
            matches!(viewer.handle(msg.as_bytes()), Err(InputError::ViewOnly)),
            "{msg} refused"
        );
    }
    assert!(viewer.handle(br#"["v",3]"#).is_ok());
    assert!(matches!(
        viewer.handle(br#"["v",4]"#),
        Err(InputError::Wire(_))
    ));
    service.sync().expect("sync");
    let later = events_until(&listener, &service, 1, |_| false);
    assert!(listener.keys_down().is_empty(), "no key left down");
    assert!(
        listener.typed(&later).len() < 200,
        "the cancelled chunk stopped"
    );
}
