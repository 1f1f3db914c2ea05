//! Clipboard chunk streams (v3): contents too large for one message, as `cbb` (begin: type
//! and size), `cbp` (numbered base64 parts of at most [`CHUNK_BYTES`]) and `cbe` (end).
//!
//! [`Reassembler`] puts a stream from the page back together, enforcing the size limit
//! before buffering anything; [`Chunker`] turns a clipboard content for the page into the
//! stream's messages one at a time, so a 16 MiB content is never encoded whole.
//!
//! Pure: no clock, no X, no sockets.

use std::sync::Arc;

use super::{encode_clipboard, encode_image, IMAGE_PNG, MAX_IMAGE_BYTES, MAX_MESSAGE_BYTES};
use super::{MAX_CLIPBOARD_BYTES, TEXT_PLAIN};

/// Bytes of content in one `cbp` part (its base64, 60 000 bytes, fits in a message).
pub const CHUNK_BYTES: usize = 45_000;

/// What a clipboard content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipKind {
    /// UTF-8 text (`text/plain`).
    Text,
    /// A PNG image (`image/png`).
    Png,
}

impl ClipKind {
    /// The type name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ClipKind::Text => TEXT_PLAIN,
            ClipKind::Png => IMAGE_PNG,
        }
    }
}

/// One message of a chunk stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkMsg {
    /// `["cbb",id,type,size]`.
    Begin {
        /// The stream's number, chosen by the sender.
        id: u64,
        /// What it carries.
        kind: ClipKind,
        /// Its total size in bytes (at least 1).
        size: usize,
    },
    /// `["cbp",id,seq,base64]`, decoded (1 to [`CHUNK_BYTES`] bytes).
    Part {
        /// The stream's number.
        id: u64,
        /// The part's number, from 0.
        seq: u64,
        /// The part's bytes.
        data: Vec<u8>,
    },
    /// `["cbe",id]`.
    End {
        /// The stream's number.
        id: u64,
    },
}

/// A whole clipboard content: text (valid UTF-8) or a PNG image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipData {
    kind: ClipKind,
    bytes: Vec<u8>,
}

impl ClipData {
    /// Clipboard text.
    pub fn text(text: String) -> ClipData {
        ClipData {
            kind: ClipKind::Text,
            bytes: text.into_bytes(),
        }
    }

    /// A PNG image.
    pub fn png(png: Vec<u8>) -> ClipData {
        ClipData {
            kind: ClipKind::Png,
            bytes: png,
        }
    }

    /// What it is.
    pub fn kind(&self) -> ClipKind {
        self.kind
    }

    /// Its bytes (UTF-8 for text).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its bytes, taken out (UTF-8 for text).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The one `cb` / `ci` message carrying it, when it fits in one.
    pub fn small_message(&self) -> Option<String> {
        match self.kind {
            ClipKind::Text if self.bytes.len() <= MAX_CLIPBOARD_BYTES => {
                let text = std::str::from_utf8(&self.bytes).ok()?;
                let msg = encode_clipboard(text);
                (msg.len() <= MAX_MESSAGE_BYTES).then_some(msg)
            }
            ClipKind::Png if self.bytes.len() <= MAX_IMAGE_BYTES => Some(encode_image(&self.bytes)),
            _ => None,
        }
    }
}

/// Why a chunk stream from the page was refused (the whole stream is dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Its size is over the limit.
    #[error("clipboard of {size} bytes not sent: it is over the server's {max}-byte limit (--max-clipboard); copy less")]
    TooLarge {
        /// The size the page announced.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A part came out of order, or for a stream that is not the current one.
    #[error("clipboard transfer failed: part {seq} of stream {id} came out of order; copy again")]
    OutOfOrder {
        /// The stream.
        id: u64,
        /// The part's number.
        seq: u64,
    },
    /// The parts hold more bytes than announced, or fewer at the end.
    #[error("clipboard transfer failed: {got} bytes instead of the {size} announced; copy again")]
    WrongSize {
        /// Bytes received (so far).
        got: usize,
        /// Bytes announced.
        size: usize,
    },
    /// Text that is not UTF-8.
    #[error("clipboard transfer failed: the text is not UTF-8")]
    NotUtf8,
}

/// The stream being received.
#[derive(Debug)]
struct Stream {
    id: u64,
    kind: ClipKind,
    size: usize,
    next_seq: u64,
    buf: Vec<u8>,
}

/// Puts one viewer's chunk streams back together (see the module docs).
#[derive(Debug)]
pub struct Reassembler {
    max: usize,
    current: Option<Stream>,
}

impl Reassembler {
    /// A reassembler taking streams of at most `max` bytes.
    pub fn new(max: usize) -> Reassembler {
        Reassembler { max, current: None }
    }

    /// Bytes buffered for the stream in flight.
    pub fn buffered(&self) -> usize {
        self.current.as_ref().map_or(0, |s| s.buf.len())
    }

    /// Takes one message: `Ok(Some(content))` when a stream is complete, `Ok(None)` while
    /// one is in flight (and for parts of a stream dropped earlier), `Err` when the stream is
    /// refused (it is dropped; its later parts are ignored).
    pub fn push(&mut self, msg: ChunkMsg) -> Result<Option<ClipData>, ChunkError> {
        match msg {
            ChunkMsg::Begin { id, kind, size } => {
                // A new stream cancels the one in flight.
                self.current = None;
                if size > self.max {
                    return Err(ChunkError::TooLarge {
                        size,
                        max: self.max,
                    });
                }
                self.current = Some(Stream {
                    id,
                    kind,
                    size,
                    next_seq: 0,
                    buf: Vec::with_capacity(size),
                });
                Ok(None)
            }
            ChunkMsg::Part { id, seq, data } => {
                let Some(s) = self.current.as_mut().filter(|s| s.id == id) else {
                    return Ok(None);
                };
                if seq != s.next_seq {
                    self.current = None;
                    return Err(ChunkError::OutOfOrder { id, seq });
                }
                let got = s.buf.len() + data.len();
                if got > s.size {
                    let size = s.size;
                    self.current = None;
                    return Err(ChunkError::WrongSize { got, size });
                }
                s.buf.extend_from_slice(&data);
                s.next_seq += 1;
                Ok(None)
            }
            ChunkMsg::End { id } => {
                let Some(s) = self.current.take_if(|s| s.id == id) else {
                    return Ok(None);
                };
                if s.buf.len() != s.size {
                    return Err(ChunkError::WrongSize {
                        got: s.buf.len(),
                        size: s.size,
                    });
                }
                match s.kind {
                    ClipKind::Text => String::from_utf8(s.buf)
                        .map(|t| Some(ClipData::text(t)))
                        .map_err(|_| ChunkError::NotUtf8),
                    ClipKind::Png => Ok(Some(ClipData::png(s.buf))),
                }
            }
        }
    }
}

/// The messages carrying one content to a page, made one at a time: `cbb`, the parts, `cbe`.
#[derive(Debug)]
pub struct Chunker {
    data: Arc<ClipData>,
    id: u64,
    /// Parts sent so far; `None` before `cbb`.
    seq: Option<u64>,
    done: bool,
}

impl Chunker {
    /// A stream numbered `id` carrying `data`.
    pub fn new(data: Arc<ClipData>, id: u64) -> Chunker {
        Chunker {
            data,
            id,
            seq: None,
            done: false,
        }
    }
}

impl Iterator for Chunker {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        use base64::Engine as _;
        if self.done {
            return None;
        }
        let id = self.id;
        let Some(seq) = self.seq else {
            self.seq = Some(0);
            let (kind, size) = (self.data.kind.name(), self.data.bytes.len());
            return Some(format!("[\"cbb\",{id},\"{kind}\",{size}]"));
        };
        let start = usize::try_from(seq)
            .unwrap_or(usize::MAX)
            .saturating_mul(CHUNK_BYTES);
        let Some(part) = self.data.bytes.get(start..).filter(|p| !p.is_empty()) else {
            self.done = true;
            return Some(format!("[\"cbe\",{id}]"));
        };
        let part = &part[..part.len().min(CHUNK_BYTES)];
        self.seq = Some(seq + 1);
        let b64 = base64::engine::general_purpose::STANDARD.encode(part);
        Some(format!("[\"cbp\",{id},{seq},\"{b64}\"]"))
    }
}

#[cfg(test)]
mod tests;
