//! Fuzz target: the signalling parser (`vnrit::server::signal::parse`) on arbitrary text.
//!
//! Any UTF-8 input must give `Ok` or `Err`, never a panic; an accepted message must also
//! be within the size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnrit::server::signal::{parse, MAX_MESSAGE_BYTES};

fuzz_target!(|text: &str| {
    if parse(text).is_ok() {
        assert!(
            text.len() <= MAX_MESSAGE_BYTES,
            "accepted an oversized message"
        );
    }
});
