//! The input wire format, version 3: parsing what the page sends and encoding what the
//! server sends back.
//!
//! Every message is one UTF-8 JSON array whose first element names its type. Arrays keep
//! messages short (a mouse move is about 20 bytes) while staying readable in a debugger.
//! The same text travels on the `input` data channel or, when that is not open, inside the
//! signalling WebSocket as `{"type":"input","data":"<the array as a string>"}`.
//!
//! Positions are normalised to the video frame: `0.0` is the left (top) edge of the picture
//! and `1.0` the right (bottom) edge, whatever size the stream is encoded at. The server maps
//! them onto the X screen, so `--height` downscaling needs nothing from the page; the page
//! subtracts letterbox bars itself before normalising.
//!
//! Page to server:
//!
//! | message | meaning |
//! |---|---|
//! | `["v",n]` | protocol version the page speaks, 1 to 3 (optional; other versions are refused) |
//! | `["kd",code,key]` | key down: `KeyboardEvent.code` and `KeyboardEvent.key` |
//! | `["ku",code,key]` | key up (the server releases what it pressed for `code`) |
//! | `["m",x,y]` | pointer to the normalised position `x`,`y` in `[0,1]` |
//! | `["mr",dx,dy]` | relative move (pointer lock), in frame widths/heights, each in `[-1,1]` |
//! | `["bd",b]` / `["bu",b]` | X button `b` down / up: 1 left, 2 middle, 3 right, 4-7 wheel, 8 back, 9 forward |
//! | `["w",dx,dy]` | wheel, in notches (fractions allowed; positive = down/right), each in `[-100,100]` |
//! | `["ra"]` | release every key and button this viewer holds (the page lost focus) |
//! | `["cb",text]` | set the X clipboard (CLIPBOARD and PRIMARY) to `text` (at most [`MAX_CLIPBOARD_BYTES`]) |
//! | `["tx",text]` | (v2) type `text` as key strokes, character by character, in order (IME commits, soft keyboards, the type-text action) |
//! | `["txc"]` | (v2) cancel what this viewer's `tx` messages still have to type |
//! | `["ci","image/png",base64]` | (v2) set the X CLIPBOARD to a PNG image (at most [`MAX_IMAGE_BYTES`]) |
//! | `["cbb",id,type,size]` | (v3) begin clipboard stream `id`: `size` bytes of `type` (`text/plain`, UTF-8, or `image/png`) follow in parts |
//! | `["cbp",id,seq,base64]` | (v3) part `seq` (0, 1, 2, ...) of stream `id`: at most [`CHUNK_BYTES`] bytes, base64 |
//! | `["cbe",id]` | (v3) end of stream `id`: its content goes to the X clipboard as `cb` / `ci` would |
//!
//! Server to page:
//!
//! | message | meaning |
//! |---|---|
//! | `["cp",x,y]` | the X pointer is at the normalised position `x`,`y` |
//! | `["cs",serial,w,h,hotx,hoty,screen_w,screen_h,rgba]` | the cursor shape: `w`x`h` X pixels, hot spot, the X screen size (to scale the image like the video), and the pixels as base64 of straight-alpha RGBA |
//! | `["cb",text]` | the X clipboard now holds `text` |
//! | `["ci","image/png",base64]` | (v2) the X clipboard now holds this PNG image |
//! | `["cbb",id,type,size]`, `["cbp",id,seq,base64]`, `["cbe",id]` | (v3) the X clipboard now holds this content, too large for `cb` / `ci`: a chunk stream as above |
//! | `["err",message]` | something the user should see (clipboard too large, view-only) |
//! | `["v",n,max]` | (v2) the protocol version the server speaks, first message of every page; (v3) `max` is the largest clipboard it carries either way (`--max-clipboard`); a page that never gets it talks to a version 1 server, which refuses `tx` |
//!
//! Chunk streams ([`chunk`]): contents too large for one message (`cb` over
//! [`MAX_CLIPBOARD_BYTES`], `ci` over [`MAX_IMAGE_BYTES`], or a message that would be over
//! [`MAX_MESSAGE_BYTES`]) go as a stream: `cbb` with the type and total size, the parts in
//! order, `cbe`. Each side has one stream in flight per viewer: a `cbb` cancels the stream
//! before it. The receiver refuses a stream whose size is over its limit at `cbb`, before
//! buffering anything, and one whose parts are out of order, exceed the size, or end short;
//! a refused or cancelled stream publishes nothing, and later parts of it are ignored. A page
//! sends chunk streams only to a server that said version 3 (an older server refuses `cbb`
//! as an unknown type); the server sends them only to pages that said version 3, and an
//! `err` instead to older pages.
//!
//! Limits: a message is at most [`MAX_MESSAGE_BYTES`]; `code` and `key` at most
//! [`MAX_KEY_FIELD`] bytes; clipboard text in one `cb` at most [`MAX_CLIPBOARD_BYTES`]; text to
//! type at most [`MAX_TYPE_BYTES`] per message (longer texts go in several messages); a chunk
//! stream at most `--max-clipboard` bytes (16 MiB by default, never over
//! [`MAX_STREAM_BYTES`]).

pub mod chunk;
mod encode;
mod parse;

pub use chunk::{ChunkError, ChunkMsg, ClipData, ClipKind, Reassembler, CHUNK_BYTES};
pub use encode::{
    encode_clipboard, encode_cursor, encode_error, encode_image, encode_pointer, encode_version,
    CursorShape,
};
pub use parse::parse;

/// The protocol version this server speaks (it also accepts pages that speak 1 or 2).
pub const PROTOCOL_VERSION: u64 = 3;
/// The oldest page protocol version accepted.
pub const OLDEST_VERSION: u64 = 1;
/// The first version with chunk streams.
pub const CHUNK_VERSION: u64 = 3;
/// The largest message accepted from a page, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// The largest `code` or `key` field accepted, in bytes.
pub const MAX_KEY_FIELD: usize = 32;
/// The largest clipboard text carried in one `cb` message, in bytes of UTF-8.
pub const MAX_CLIPBOARD_BYTES: usize = 60_000;
/// The largest text to type in one `tx` message, in bytes of UTF-8.
pub const MAX_TYPE_BYTES: usize = 60_000;
/// The largest clipboard image carried in one `ci` message, in bytes (its base64 fits in a
/// message).
pub const MAX_IMAGE_BYTES: usize = 45_000;
/// The largest chunk stream any server takes, whatever `--max-clipboard` says.
pub const MAX_STREAM_BYTES: usize = 256 << 20;
/// The only clipboard image type carried.
pub const IMAGE_PNG: &str = "image/png";
/// The type name of clipboard text in chunk streams (always UTF-8).
pub const TEXT_PLAIN: &str = "text/plain";
/// The largest wheel movement in one message, in notches.
const MAX_WHEEL: f64 = 100.0;

/// Why a message from the page was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("input message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a JSON array with a type string first.
    #[error("input message is not a JSON array starting with a type string")]
    NotAnArray,
    /// The type string is not one this version knows.
    #[error("unknown input message type {0:?}; the page may be newer than the server")]
    UnknownType(String),
    /// A field is missing, of the wrong kind, or out of range.
    #[error("bad field {field} in input message {kind:?}: {reason}")]
    BadField {
        /// The message type.
        kind: &'static str,
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Clipboard text is over [`MAX_CLIPBOARD_BYTES`].
    #[error(
        "clipboard text of {0} bytes is over the {MAX_CLIPBOARD_BYTES}-byte limit of one message; this page is older than the server: reload it"
    )]
    ClipboardTooLarge(usize),
    /// The page speaks another protocol version.
    #[error("the page speaks input protocol version {0}, this server versions {OLDEST_VERSION} to {PROTOCOL_VERSION}; reload the page")]
    Version(u64),
}

/// One parsed message from the page.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// The page's protocol version (already checked to be one this server speaks).
    Version(u64),
    /// A key went down.
    KeyDown {
        /// `KeyboardEvent.code`: the physical key.
        code: String,
        /// `KeyboardEvent.key`: what it means on the page's layout.
        key: String,
    },
    /// A key went up.
    KeyUp {
        /// `KeyboardEvent.code` of the key.
        code: String,
    },
    /// Absolute pointer position, normalised to `[0,1]`.
    Move {
        /// Horizontal position.
        x: f64,
        /// Vertical position.
        y: f64,
    },
    /// Relative pointer motion in frame widths and heights.
    MoveBy {
        /// Horizontal motion.
        dx: f64,
        /// Vertical motion.
        dy: f64,
    },
    /// An X button went down (1..=9).
    ButtonDown(u8),
    /// An X button went up (1..=9).
    ButtonUp(u8),
    /// Wheel motion in notches.
    Wheel {
        /// Horizontal notches (positive = right).
        dx: f64,
        /// Vertical notches (positive = down).
        dy: f64,
    },
    /// Release everything this viewer holds.
    ReleaseAll,
    /// New clipboard text from the page.
    Clipboard(String),
    /// Text to type as key strokes (never empty, at most [`MAX_TYPE_BYTES`]).
    TypeText(String),
    /// Stop typing what earlier [`InputEvent::TypeText`] messages queued.
    CancelTyping,
    /// A PNG image for the X clipboard (the decoded bytes; at most [`MAX_IMAGE_BYTES`] from
    /// one `ci` message, at most `--max-clipboard` from a chunk stream).
    ClipboardImage(Vec<u8>),
    /// One message of a clipboard chunk stream (v3), for the session's [`Reassembler`].
    Chunk(ChunkMsg),
}

impl InputEvent {
    /// Whether this message acts on the desktop (refused for view-only viewers).
    pub fn is_control(&self) -> bool {
        !matches!(self, InputEvent::Version(_) | InputEvent::ReleaseAll)
    }
}

#[cfg(test)]
mod tests;
