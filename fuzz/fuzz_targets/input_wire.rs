//! Fuzz target: the input wire parser (`vnrit::input::wire::parse`) on arbitrary bytes.
//!
//! Any bytes must give `Ok` or `Err`, never a panic; what is accepted must respect the
//! documented limits (key fields, clipboard size, text to type, normalised positions,
//! buttons, clipboard chunk sizes and parts).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnrit::input::wire::{
    parse, ChunkMsg, InputEvent, CHUNK_BYTES, MAX_CLIPBOARD_BYTES, MAX_IMAGE_BYTES,
    MAX_KEY_FIELD, MAX_STREAM_BYTES, MAX_TYPE_BYTES,
};

fuzz_target!(|bytes: &[u8]| {
    let Ok(event) = parse(bytes) else { return };
    match event {
        InputEvent::KeyDown { code, key } => {
            assert!(code.len() <= MAX_KEY_FIELD && key.len() <= MAX_KEY_FIELD);
        }
        InputEvent::KeyUp { code } => assert!(code.len() <= MAX_KEY_FIELD),
        InputEvent::Move { x, y } => {
            assert!((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y));
        }
        InputEvent::MoveBy { dx, dy } => {
            assert!((-1.0..=1.0).contains(&dx) && (-1.0..=1.0).contains(&dy));
        }
        InputEvent::ButtonDown(b) | InputEvent::ButtonUp(b) => assert!((1..=9).contains(&b)),
        InputEvent::Wheel { dx, dy } => assert!(dx.is_finite() && dy.is_finite()),
        InputEvent::Clipboard(text) => assert!(text.len() <= MAX_CLIPBOARD_BYTES),
        InputEvent::TypeText(text) => assert!(!text.is_empty() && text.len() <= MAX_TYPE_BYTES),
        InputEvent::ClipboardImage(png) => assert!(!png.is_empty() && png.len() <= MAX_IMAGE_BYTES),
        InputEvent::Chunk(ChunkMsg::Begin { size, .. }) => {
            assert!(size > 0 && size <= MAX_STREAM_BYTES);
        }
        InputEvent::Chunk(ChunkMsg::Part { data, .. }) => {
            assert!(!data.is_empty() && data.len() <= CHUNK_BYTES);
        }
        InputEvent::Chunk(ChunkMsg::End { .. }) => {}
        InputEvent::Version(v) => assert!((1..=3).contains(&v)),
        InputEvent::ReleaseAll | InputEvent::CancelTyping => {}
    }
});
