//! Parsing messages from the page (see the table in the module above).

use serde_json::Value;

use super::chunk::{ChunkMsg, ClipKind};
use super::*;

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
                Ok(InputEvent::Version(v))
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
        "cbb" | "cbp" | "cbe" => Ok(InputEvent::Chunk(chunk_msg(kind, &f)?)),
        "ci" => clip_image(&f).map(InputEvent::ClipboardImage),
        other => {
            let mut name: String = other.chars().take(16).collect();
            if other.len() > name.len() {
                name.push('…');
            }
            Err(WireError::UnknownType(name))
        }
    }
}

/// `["ci","image/png",base64]`: the decoded PNG.
fn clip_image(f: &Fields<'_>) -> Result<Vec<u8>, WireError> {
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
    Ok(png)
}

/// `cbb`, `cbp` or `cbe` (the caller matched `kind`).
fn chunk_msg(kind: &str, f: &Fields<'_>) -> Result<ChunkMsg, WireError> {
    use base64::Engine as _;
    match kind {
        "cbb" => {
            let id = f.uint("cbb", 1, "id")?;
            let kind = match f.text("cbb", 2, "type")? {
                TEXT_PLAIN => ClipKind::Text,
                IMAGE_PNG => ClipKind::Png,
                _ => return Err(Fields::bad("cbb", "type", "not text/plain or image/png")),
            };
            let size = f.uint("cbb", 3, "size")?;
            if size == 0 || size > MAX_STREAM_BYTES as u64 {
                return Err(Fields::bad("cbb", "size", "0 or over 256 MiB"));
            }
            Ok(ChunkMsg::Begin {
                id,
                kind,
                size: size as usize,
            })
        }
        "cbp" => {
            let id = f.uint("cbp", 1, "id")?;
            let seq = f.uint("cbp", 2, "seq")?;
            let b64 = f.text("cbp", 3, "data")?;
            if b64.len() > CHUNK_BYTES.div_ceil(3) * 4 {
                return Err(Fields::bad("cbp", "data", "over the 45000-byte part limit"));
            }
            let data = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| Fields::bad("cbp", "data", "not base64"))?;
            if data.is_empty() {
                return Err(Fields::bad("cbp", "data", "empty"));
            }
            Ok(ChunkMsg::Part { id, seq, data })
        }
        _ => Ok(ChunkMsg::End {
            id: f.uint("cbe", 1, "id")?,
        }),
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
