//! `xheld`: prints which keys and pointer buttons an X server reports held down, as one line
//! of JSON: `{"keys":[38,50],"buttons":[1]}` (keycodes from QueryKeymap, buttons 1-5 from
//! QueryPointer). The e2e tests use it to check that no viewer left anything stuck.
//!
//! `cargo run --release --example xheld -- :N` (or with `$DISPLAY` set).

use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt;

fn main() {
    let display = std::env::args().nth(1);
    if let Err(err) = run(display.as_deref()) {
        eprintln!("xheld: {err}");
        std::process::exit(1);
    }
}

fn run(display: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let (conn, screen) = x11rb::connect(display)?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .ok_or("the X server reported no such screen")?
        .root;
    let map = conn.query_keymap()?.reply()?.keys;
    let keys: Vec<String> = (0..256usize)
        .filter(|&kc| map[kc / 8] & (1 << (kc % 8)) != 0)
        .map(|kc| kc.to_string())
        .collect();
    let mask = u16::from(conn.query_pointer(root)?.reply()?.mask);
    // Button1Mask is bit 8, ..., Button5Mask bit 12.
    let buttons: Vec<String> = (1..=5u16)
        .filter(|b| mask & (1 << (7 + b)) != 0)
        .map(|b| b.to_string())
        .collect();
    println!(
        "{{\"keys\":[{}],\"buttons\":[{}]}}",
        keys.join(","),
        buttons.join(",")
    );
    Ok(())
}
