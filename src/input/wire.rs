//! The input wire format, version 2: parsing what the page sends and encoding what the
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
//! | `["v",n]` | protocol version the page speaks, 1 or 2 (optional; other versions are refused) |
//! | `["kd",code,key]` | key down: `KeyboardEvent.code` and `KeyboardEvent.key` |
//! | `["ku",code,key]` | key up (the server releases what it pressed for `code`) |
//! | `["m",x,y]` | pointer to the normalised position `x`,`y` in `[0,1]` |
//! | `["mr",dx,dy]` | relative move (pointer lock), in frame widths/heights, each in `[-1,1]` |
//! | `["bd",b]` / `["bu",b]` | X button `b` down / up: 1 left, 2 middle, 3 right, 4-7 wheel, 8 back, 9 forward |
//! | `["w",dx,dy]` | wheel, in notches (fractions allowed; positive = down/right), each in `[-100,100]` |
//! | `["ra"]` | release every key and button this viewer holds (the page lost focus) |
//! | `["cb",text]` | set the X clipboard (CLIPBOARD and PRIMARY) to `text` |
//! | `["tx",text]` | (v2) type `text` as key strokes, character by character, in order (IME commits, soft keyboards, the type-text action) |
//! | `["txc"]` | (v2) cancel what this viewer's `tx` messages still have to type |
//! | `["ci","image/png",base64]` | (v2) set the X CLIPBOARD to a PNG image (at most [`MAX_IMAGE_BYTES`]) |
//!
//! Server to page:
//!
//! | message | meaning |
//! |---|---|
//! | `["cp",x,y]` | the X pointer is at the normalised position `x`,`y` |
//! | `["cs",serial,w,h,hotx,hoty,screen_w,screen_h,rgba]` | the cursor shape: `w`x`h` X pixels, hot spot, the X screen size (to scale the image like the video), and the pixels as base64 of straight-alpha RGBA |
//! | `["cb",text]` | the X clipboard now holds `text` |
//! | `["ci","image/png",base64]` | (v2) the X clipboard now holds this PNG image |
//! | `["err",message]` | something the user should see (clipboard too large, view-only) |
//! | `["v",n]` | (v2) the protocol version the server speaks, first message of every page; a page that never gets it talks to a version 1 server, which refuses `tx` |
//!
//! Limits: a message is at most [`MAX_MESSAGE_BYTES`]; `code` and `key` at most
//! [`MAX_KEY_FIELD`] bytes; clipboard text at most [`MAX_CLIPBOARD_BYTES`]; text to type at
//! most [`MAX_TYPE_BYTES`] per message (longer texts go in several messages).

use serde_json::Value;

/// The protocol version this server speaks (it also accepts pages that speak version 1).
pub const PROTOCOL_VERSION: u64 = 2;
/// The oldest page protocol version accepted.
pub const OLDEST_VERSION: u64 = 1;
/// The largest message accepted from a page, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// The largest `code` or `key` field accepted, in bytes.
pub const MAX_KEY_FIELD: usize = 32;
/// The largest clipboard text carried either way, in bytes of UTF-8.
pub const MAX_CLIPBOARD_BYTES: usize = 60_000;
/// The largest text to type in one `tx` message, in bytes of UTF-8.
pub const MAX_TYPE_BYTES: usize = 60_000;
/// The largest clipboard image carried either way in one message, in bytes (its base64 fits
/// in a message).
pub const MAX_IMAGE_BYTES: usize = 45_000;
/// The only clipboard image type carried.
pub const IMAGE_PNG: &str = "image/png";
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
        "clipboard text of {0} bytes is over the {MAX_CLIPBOARD_BYTES}-byte limit; copy less text"
    )]
    ClipboardTooLarge(usize),
    /// The page speaks another protocol version.
    #[error("the page speaks input protocol version {0}, this server versions {OLDEST_VERSION} to {PROTOCOL_VERSION}; reload the page")]
    Version(u64),
}

/// One parsed message from the page.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// The page's protocol version (already checked to be [`PROTOCOL_VERSION`]).
    Version,
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
    /// A PNG image for the X clipboard (the decoded bytes, at most [`MAX_IMAGE_BYTES`]).
    ClipboardImage(Vec<u8>),
}

impl InputEvent {
    /// Whether this message acts on the desktop (refused for view-only viewers).
    pub fn is_control(&self) -> bool {
        !matches!(self, InputEvent::Version | InputEvent::ReleaseAll)
    }
}

/// Parse one message from the page. Never panics, whatever the bytes.
pub fn parse(msg: &[u8]) -> Result<InputEvent, WireError> {
    if msg.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(msg.len()));
    }
    let items: Vec<Value> = serde_json::from_slice(msg).map_err(|_| WireError::NotAnArray)?;
    let kind = items
        .first()
        .and_then(Value::as_str)
        .ok_or(WireError::NotAnArray)?;
    let f = Fields { items: &items };
    match kind {
        "v" => {
            let v = f.uint("v", 1, "version")?;
            if (OLDEST_VERSION..=PROTOCOL_VERSION).contains(&v) {
                Ok(InputEvent::Version)
            } else {
                Err(WireError::Version(v))
            }
        }
        "kd" => Ok(InputEvent::KeyDown {
            code: f.key_text("kd", 1, "code")?,
            key: f.key_text("kd", 2, "key")?,
        }),
        "ku" => Ok(InputEvent::KeyUp {
            code: f.key_text("ku", 1, "code")?,
        }),
        "m" => Ok(InputEvent::Move {
            x: f.num("m", 1, "x", 0.0, 1.0)?,
            y: f.num("m", 2, "y", 0.0, 1.0)?,
        }),
        "mr" => Ok(InputEvent::MoveBy {
            dx: f.num("mr", 1, "dx", -1.0, 1.0)?,
            dy: f.num("mr", 2, "dy", -1.0, 1.0)?,
        }),
        "bd" => Ok(InputEvent::ButtonDown(f.button("bd")?)),
        "bu" => Ok(InputEvent::ButtonUp(f.button("bu")?)),
        "w" => Ok(InputEvent::Wheel {
            dx: f.num("w", 1, "dx", -MAX_WHEEL, MAX_WHEEL)?,
            dy: f.num("w", 2, "dy", -MAX_WHEEL, MAX_WHEEL)?,
        }),
        "ra" => Ok(InputEvent::ReleaseAll),
        "cb" => {
            let text = f.text("cb", 1, "text")?;
            if text.len() > MAX_CLIPBOARD_BYTES {
                return Err(WireError::ClipboardTooLarge(text.len()));
            }
            Ok(InputEvent::Clipboard(text.to_owned()))
        }
        "tx" => {
            let text = f.text("tx", 1, "text")?;
            if text.is_empty() {
                return Err(Fields::bad("tx", "text", "empty"));
            }
            if text.len() > MAX_TYPE_BYTES {
                return Err(Fields::bad(
                    "tx",
                    "text",
                    "over the 60000-byte limit of one message",
                ));
            }
            Ok(InputEvent::TypeText(text.to_owned()))
        }
        "txc" => Ok(InputEvent::CancelTyping),
        "ci" => {
            use base64::Engine as _;
            if f.text("ci", 1, "type")? != IMAGE_PNG {
                return Err(Fields::bad("ci", "type", "not image/png"));
            }
            let b64 = f.text("ci", 2, "data")?;
            if b64.len() > MAX_IMAGE_BYTES.div_ceil(3) * 4 {
                return Err(Fields::bad("ci", "data", "over the 45000-byte image limit"));
            }
            let png = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| Fields::bad("ci", "data", "not base64"))?;
            if png.is_empty() || png.len() > MAX_IMAGE_BYTES {
                return Err(Fields::bad(
                    "ci",
                    "data",
                    "empty or over the 45000-byte image limit",
                ));
            }
            Ok(InputEvent::ClipboardImage(png))
        }
        other => {
            let mut name: String = other.chars().take(16).collect();
            if other.len() > name.len() {
                name.push('…');
            }
            Err(WireError::UnknownType(name))
        }
    }
}

/// Field access with range checks.
struct Fields<'a> {
    items: &'a [Value],
}

impl Fields<'_> {
    fn bad(kind: &'static str, field: &'static str, reason: &'static str) -> WireError {
        WireError::BadField {
            kind,
            field,
            reason,
        }
    }

    fn text(&self, kind: &'static str, i: usize, field: &'static str) -> Result<&str, WireError> {
        self.items
            .get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| Self::bad(kind, field, "missing or not a string"))
    }

    fn key_text(
        &self,
        kind: &'static str,
        i: usize,
        field: &'static str,
    ) -> Result<String, WireError> {
        let s = self.text(kind, i, field)?;
        if s.len() > MAX_KEY_FIELD {
            return Err(Self::bad(kind, field, "too long"));
        }
        Ok(s.to_owned())
    }

    fn num(
        &self,
        kind: &'static str,
        i: usize,
        field: &'static str,
        min: f64,
        max: f64,
    ) -> Result<f64, WireError> {
        let v = self
            .items
            .get(i)
            .and_then(Value::as_f64)
            .ok_or_else(|| Self::bad(kind, field, "missing or not a number"))?;
        if !(min..=max).contains(&v) {
            return Err(Self::bad(kind, field, "out of range"));
        }
        Ok(v)
    }

    fn uint(&self, kind: &'static str, i: usize, field: &'static str) -> Result<u64, WireError> {
        self.items
            .get(i)
            .and_then(Value::as_u64)
            .ok_or_else(|| Self::bad(kind, field, "missing or not a whole number"))
    }

    fn button(&self, kind: &'static str) -> Result<u8, WireError> {
        match self.uint(kind, 1, "button")? {
            b @ 1..=9 => Ok(b as u8),
            _ => Err(Self::bad(kind, "button", "not an X button 1 to 9")),
        }
    }
}

/// `["cp",x,y]`: the pointer at a normalised position.
pub fn encode_pointer(x: f64, y: f64) -> String {
    format!("[\"cp\",{:.5},{:.5}]", x.clamp(0.0, 1.0), y.clamp(0.0, 1.0))
}

/// A cursor image as the X server reports it.
#[derive(Debug, Clone)]
pub struct CursorShape {
    /// XFixes cursor serial (changes with the image).
    pub serial: u32,
    /// Width in X pixels.
    pub width: u16,
    /// Height in X pixels.
    pub height: u16,
    /// Hot spot, from the left.
    pub hot_x: u16,
    /// Hot spot, from the top.
    pub hot_y: u16,
    /// Premultiplied ARGB pixels, one `u32` each, row by row (XFixes' format).
    pub argb: Vec<u32>,
}

/// `["cs",...]`: the cursor shape, with the X screen size so the page can scale it.
pub fn encode_cursor(shape: &CursorShape, screen_w: u16, screen_h: u16) -> String {
    use base64::Engine as _;
    let mut rgba = Vec::with_capacity(shape.argb.len() * 4);
    for &p in &shape.argb {
        let a = (p >> 24) & 0xff;
        // Transparent pixels (a == 0) are black.
        let un = |c: u32| -> u8 {
            (c * 255 + a / 2)
                .checked_div(a)
                .map_or(0, |v| v.min(255) as u8)
        };
        rgba.extend_from_slice(&[
            un((p >> 16) & 0xff),
            un((p >> 8) & 0xff),
            un(p & 0xff),
            a as u8,
        ]);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&rgba);
    format!(
        "[\"cs\",{},{},{},{},{},{},{},\"{}\"]",
        shape.serial, shape.width, shape.height, shape.hot_x, shape.hot_y, screen_w, screen_h, b64
    )
}

/// `["cb",text]`: clipboard text for the page.
pub fn encode_clipboard(text: &str) -> String {
    Value::Array(vec![Value::from("cb"), Value::from(text)]).to_string()
}

/// `["v",n]`: the protocol version this server speaks, the first message for every page.
pub fn encode_version() -> String {
    format!("[\"v\",{PROTOCOL_VERSION}]")
}

/// `["ci","image/png",base64]`: a clipboard image for the page.
pub fn encode_image(png: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    format!("[\"ci\",\"{IMAGE_PNG}\",\"{b64}\"]")
}

/// `["err",message]`: a message the page shows to the user.
pub fn encode_error(message: &str) -> String {
    Value::Array(vec![Value::from("err"), Value::from(message)]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<InputEvent, WireError> {
        parse(s.as_bytes())
    }

    #[test]
    fn parses_every_type() {
        assert_eq!(p(r#"["v",1]"#), Ok(InputEvent::Version));
        assert_eq!(p(r#"["v",2]"#), Ok(InputEvent::Version));
        assert_eq!(
            p(r#"["tx","中文输入\n"]"#),
            Ok(InputEvent::TypeText("中文输入\n".into()))
        );
        assert_eq!(p(r#"["txc"]"#), Ok(InputEvent::CancelTyping));
        assert_eq!(
            p(r#"["ci","image/png","iVBORw=="]"#),
            Ok(InputEvent::ClipboardImage(vec![0x89, b'P', b'N', b'G']))
        );
        assert_eq!(
            encode_image(&[0x89, b'P', b'N', b'G']),
            r#"["ci","image/png","iVBORw=="]"#
        );
        for bad in [
            r#"["ci","image/gif","iVBORw=="]"#,
            r#"["ci","image/png","***"]"#,
            r#"["ci","image/png",""]"#,
            r#"["ci","image/png"]"#,
        ] {
            assert!(matches!(p(bad), Err(WireError::BadField { .. })), "{bad}");
        }
        assert_eq!(
            p(r#"["kd","KeyA","a"]"#),
            Ok(InputEvent::KeyDown {
                code: "KeyA".into(),
                key: "a".into()
            })
        );
        assert_eq!(
            p(r#"["ku","KeyA","a"]"#),
            Ok(InputEvent::KeyUp {
                code: "KeyA".into()
            })
        );
        assert_eq!(
            p(r#"["m",0.25,1]"#),
            Ok(InputEvent::Move { x: 0.25, y: 1.0 })
        );
        assert_eq!(
            p(r#"["mr",-0.01,0.5]"#),
            Ok(InputEvent::MoveBy { dx: -0.01, dy: 0.5 })
        );
        assert_eq!(p(r#"["bd",9]"#), Ok(InputEvent::ButtonDown(9)));
        assert_eq!(p(r#"["bu",1]"#), Ok(InputEvent::ButtonUp(1)));
        assert_eq!(
            p(r#"["w",0,-1.5]"#),
            Ok(InputEvent::Wheel { dx: 0.0, dy: -1.5 })
        );
        assert_eq!(p(r#"["ra"]"#), Ok(InputEvent::ReleaseAll));
        assert_eq!(
            p(r#"["cb","héllo ✓"]"#),
            Ok(InputEvent::Clipboard("héllo ✓".into()))
        );
    }

    #[test]
    fn refuses_bad_messages() {
        assert_eq!(p(r#"["v",3]"#), Err(WireError::Version(3)));
        assert_eq!(p(r#"["v",0]"#), Err(WireError::Version(0)));
        assert!(matches!(p(r#"["tx",""]"#), Err(WireError::BadField { .. })));
        assert!(matches!(p(r#"["tx",5]"#), Err(WireError::BadField { .. })));
        let long = format!(r#"["tx","{}"]"#, "x".repeat(MAX_TYPE_BYTES + 1));
        assert!(matches!(p(&long), Err(WireError::BadField { .. })));
        assert!(matches!(p(r#"["zz"]"#), Err(WireError::UnknownType(_))));
        assert_eq!(p(r#"{"t":"m"}"#), Err(WireError::NotAnArray));
        assert_eq!(p(r#"[1,2]"#), Err(WireError::NotAnArray));
        assert_eq!(p(""), Err(WireError::NotAnArray));
        assert!(matches!(
            p(r#"["m",1.5,0]"#),
            Err(WireError::BadField { .. })
        ));
        assert!(matches!(
            p(r#"["m",-0.1,0]"#),
            Err(WireError::BadField { .. })
        ));
        assert!(matches!(
            p(r#"["m","1",0]"#),
            Err(WireError::BadField { .. })
        ));
        assert!(matches!(p(r#"["m",0.5]"#), Err(WireError::BadField { .. })));
        assert!(matches!(p(r#"["bd",0]"#), Err(WireError::BadField { .. })));
        assert!(matches!(p(r#"["bd",10]"#), Err(WireError::BadField { .. })));
        assert!(matches!(
            p(r#"["bd",1.5]"#),
            Err(WireError::BadField { .. })
        ));
        assert!(matches!(
            p(r#"["w",0,1e9]"#),
            Err(WireError::BadField { .. })
        ));
        let long = format!(r#"["kd","{}","a"]"#, "K".repeat(MAX_KEY_FIELD + 1));
        assert!(matches!(p(&long), Err(WireError::BadField { .. })));
        let clip = format!(r#"["cb","{}"]"#, "x".repeat(MAX_CLIPBOARD_BYTES + 1));
        assert_eq!(
            p(&clip),
            Err(WireError::ClipboardTooLarge(MAX_CLIPBOARD_BYTES + 1))
        );
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            parse(&huge),
            Err(WireError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        let unknown = format!(r#"["{}"]"#, "q".repeat(100));
        match p(&unknown) {
            Err(WireError::UnknownType(name)) => assert!(name.chars().count() <= 17),
            other => panic!("expected UnknownType, got {other:?}"),
        }
    }

    /// Random bytes and random mutations of valid messages: the parser must return, never
    /// panic, and anything it accepts must respect the limits.
    #[test]
    fn fuzz_never_panics() {
        let seeds: [&[u8]; 10] = [
            br#"["kd","KeyA","a"]"#,
            br#"["m",0.5,0.5]"#,
            br#"["mr",-0.1,0.2]"#,
            br#"["bd",3]"#,
            br#"["w",0.25,-3]"#,
            br#"["cb","x\u00e9y"]"#,
            br#"["v",1]"#,
            br#"[[[[["ra"]]]]]"#,
            br#"["tx","\u4e2d\u6587 ok"]"#,
            br#"["txc"]"#,
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"[]{},.:\"\\-+e0123456789 kdmrbuwvcaxyz\x00\xff\xc3\xa9";
        for round in 0..40_000 {
            let mut msg: Vec<u8> = if round % 4 == 0 {
                (0..(next() % 64)).map(|_| next() as u8).collect()
            } else {
                seeds[(next() % seeds.len() as u64) as usize].to_vec()
            };
            for _ in 0..(next() % 6) {
                let at = if msg.is_empty() {
                    0
                } else {
                    (next() % msg.len() as u64) as usize
                };
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 if !msg.is_empty() => msg[at] = c,
                    1 if !msg.is_empty() => {
                        msg.remove(at);
                    }
                    _ => msg.insert(at, c),
                }
            }
            match parse(&msg) {
                Ok(InputEvent::Move { x, y }) => {
                    assert!((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y))
                }
                Ok(InputEvent::ButtonDown(b) | InputEvent::ButtonUp(b)) => {
                    assert!((1..=9).contains(&b))
                }
                Ok(InputEvent::KeyDown { code, key }) => {
                    assert!(code.len() <= MAX_KEY_FIELD && key.len() <= MAX_KEY_FIELD)
                }
                Ok(InputEvent::TypeText(text)) => {
                    assert!(!text.is_empty() && text.len() <= MAX_TYPE_BYTES)
                }
                _ => {}
            }
        }
    }

    #[test]
    fn encodes_server_messages() {
        assert_eq!(encode_pointer(0.5, 2.0), r#"["cp",0.50000,1.00000]"#);
        assert_eq!(encode_clipboard("a\"b"), r#"["cb","a\"b"]"#);
        assert_eq!(encode_error("no"), r#"["err","no"]"#);
        assert_eq!(encode_version(), r#"["v",2]"#);
        let shape = CursorShape {
            serial: 7,
            width: 1,
            height: 1,
            hot_x: 0,
            hot_y: 0,
            // Half-transparent premultiplied white: 0x80 alpha, 0x80 colour.
            argb: vec![0x8080_8080],
        };
        // Straight RGBA ff ff ff 80 in base64 is "////gA==".
        assert_eq!(
            encode_cursor(&shape, 640, 480),
            r#"["cs",7,1,1,0,0,640,480,"////gA=="]"#
        );
    }
}
