//! Encoding messages for the page (see the table in the module above).

use serde_json::Value;

use super::{IMAGE_PNG, PROTOCOL_VERSION};

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

/// `["v",n,max]`: the protocol version this server speaks and the largest clipboard it
/// carries, the first message for every page.
pub fn encode_version(max_clipboard: usize) -> String {
    format!("[\"v\",{PROTOCOL_VERSION},{max_clipboard}]")
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
