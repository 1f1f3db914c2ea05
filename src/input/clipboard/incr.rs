//! The bookkeeping of the X selection's INCR protocol (ICCCM 2.7.2), both ways. Pure: the
//! caller does the X requests and passes the time.
//!
//! Receiving ([`Receive`]): the owner answers with a property of type INCR (a lower bound of
//! the size); the requestor deletes it, and each time the owner writes the next chunk
//! (PropertyNotify NewValue) reads and deletes it, until a zero-length chunk ends the
//! transfer. Over the size limit, the rest is drained (deleted unread) so the owner finishes,
//! and nothing is kept.
//!
//! Sending ([`Send`]): the owner writes an INCR property with the size, then, each time the
//! requestor deletes the property (PropertyNotify Delete), the next chunk, and finally a
//! zero-length one.
//!
//! Either way a transfer that makes no progress for [`STEP_TIMEOUT`] is dropped.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a transfer may wait for the other side's next step.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest property written in one piece; larger contents go INCR. One ChangeProperty of
/// many MiB holds the X server (every client) while it copies, and Xlib clients use this
/// size too; a server whose maximum request is smaller lowers it (see [`chunk_size`]).
const INCR_CHUNK: usize = 256 << 10;
/// Room for the ChangeProperty request's own fields.
const REQUEST_MARGIN: usize = 1024;

/// The chunk size for a server taking requests of at most `max_request_bytes`.
pub(crate) fn chunk_size(max_request_bytes: usize) -> usize {
    max_request_bytes
        .saturating_sub(REQUEST_MARGIN)
        .clamp(4096, INCR_CHUNK)
}

/// What one received chunk means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// Wait for the next chunk.
    More,
    /// The zero-length chunk: the whole content.
    Done(Vec<u8>),
    /// The content just went over the limit (`total` bytes so far): tell the user, drain the
    /// rest.
    TooLarge(usize),
    /// The zero-length chunk after draining: nothing to publish.
    Drained,
}

/// A selection arriving in INCR chunks.
#[derive(Debug)]
pub(crate) struct Receive {
    buf: Vec<u8>,
    max: usize,
    /// Bytes seen once over the limit (then nothing more is kept).
    over: Option<usize>,
    deadline: Instant,
    /// The property type of the chunks (UTF8_STRING, STRING, image/png).
    pub(crate) kind: u32,
}

impl Receive {
    /// A transfer announced as at least `announced` bytes, kept up to `max`.
    pub(crate) fn new(announced: usize, max: usize, now: Instant) -> Receive {
        Receive {
            buf: Vec::with_capacity(announced.min(max)),
            max,
            over: (announced > max).then_some(announced),
            deadline: now + STEP_TIMEOUT,
            kind: 0,
        }
    }

    /// Bytes known so far when over the limit (draining), else `None`.
    pub(crate) fn over(&self) -> Option<usize> {
        self.over
    }

    /// A chunk of `len` bytes was deleted unread while draining; whether it was the last.
    pub(crate) fn drained(&mut self, len: usize, now: Instant) -> bool {
        self.deadline = now + STEP_TIMEOUT;
        self.over = Some(self.over.unwrap_or(0) + len);
        len == 0
    }

    /// The next chunk (already read and deleted).
    pub(crate) fn chunk(&mut self, data: &[u8], now: Instant) -> Got {
        self.deadline = now + STEP_TIMEOUT;
        if data.is_empty() {
            return match self.over {
                Some(_) => Got::Drained,
                None => Got::Done(std::mem::take(&mut self.buf)),
            };
        }
        if let Some(n) = self.over.as_mut() {
            *n += data.len();
            return Got::More;
        }
        let total = self.buf.len() + data.len();
        if total > self.max {
            self.over = Some(total);
            self.buf = Vec::new();
            return Got::TooLarge(total);
        }
        self.buf.extend_from_slice(data);
        Got::More
    }

    /// A chunk of `len` bytes that was not read (larger than the limit on its own).
    pub(crate) fn skip(&mut self, len: usize, now: Instant) -> Got {
        self.deadline = now + STEP_TIMEOUT;
        if let Some(n) = self.over.as_mut() {
            *n += len;
            return Got::More;
        }
        let total = self.buf.len() + len;
        self.over = Some(total);
        self.buf = Vec::new();
        Got::TooLarge(total)
    }

    /// When it is dropped unless the owner makes progress.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// The next write of an INCR send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write these bytes of the content.
    Write(Range<usize>),
    /// Write the zero-length property that ends the transfer (then forget it).
    Finish,
}

/// A selection being sent to one requestor in INCR chunks.
#[derive(Debug)]
pub(crate) struct Send {
    data: Arc<Vec<u8>>,
    chunk: usize,
    offset: usize,
    deadline: Instant,
    /// The property type to write the chunks with.
    pub(crate) kind: u32,
}

impl Send {
    /// Sending `data` as `kind` in chunks of `chunk` bytes (the INCR property is written).
    pub(crate) fn new(data: Arc<Vec<u8>>, kind: u32, chunk: usize, now: Instant) -> Send {
        Send {
            data,
            chunk: chunk.max(1),
            offset: 0,
            deadline: now + STEP_TIMEOUT,
            kind,
        }
    }

    /// The content being sent.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    /// The requestor deleted the property: what to write next.
    pub(crate) fn deleted(&mut self, now: Instant) -> Step {
        self.deadline = now + STEP_TIMEOUT;
        if self.offset >= self.data.len() {
            return Step::Finish;
        }
        let end = (self.offset + self.chunk).min(self.data.len());
        let range = self.offset..end;
        self.offset = end;
        Step::Write(range)
    }

    /// When it is dropped unless the requestor makes progress.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiving_collects_until_the_empty_chunk() {
        let t = Instant::now();
        let mut r = Receive::new(10, 100, t);
        assert_eq!(r.chunk(b"hello ", t), Got::More);
        assert_eq!(r.chunk(b"world", t), Got::More);
        assert_eq!(r.chunk(b"", t), Got::Done(b"hello world".to_vec()));
    }

    #[test]
    fn receiving_over_the_limit_keeps_nothing_and_drains() {
        let t = Instant::now();
        let mut r = Receive::new(4, 10, t);
        assert_eq!(r.chunk(b"123456", t), Got::More);
        assert_eq!(r.chunk(b"789012", t), Got::TooLarge(12));
        assert_eq!(r.over(), Some(12));
        assert_eq!(r.chunk(b"345", t), Got::More);
        assert_eq!(r.chunk(b"", t), Got::Drained);
        let mut r = Receive::new(4, 10, t);
        assert_eq!(r.chunk(b"12", t), Got::More);
        assert_eq!(r.skip(100, t), Got::TooLarge(102));
        assert_eq!(r.skip(100, t), Got::More);
        assert_eq!(r.chunk(b"", t), Got::Drained);
        // Announced over the limit: draining from the start.
        let mut r = Receive::new(11, 10, t);
        assert_eq!(r.over(), Some(11));
        assert!(!r.drained(5, t));
        assert!(r.drained(0, t));
    }

    #[test]
    fn each_step_moves_the_deadline() {
        let t = Instant::now();
        let mut r = Receive::new(1, 10, t);
        assert_eq!(r.deadline(), t + STEP_TIMEOUT);
        let later = t + Duration::from_secs(3);
        r.chunk(b"a", later);
        assert_eq!(r.deadline(), later + STEP_TIMEOUT);
        let mut s = Send::new(Arc::new(vec![0; 3]), 0, 2, t);
        s.deleted(later);
        assert_eq!(s.deadline(), later + STEP_TIMEOUT);
    }

    #[test]
    fn sending_walks_the_content_then_finishes() {
        let t = Instant::now();
        let mut s = Send::new(Arc::new((0..10).collect()), 7, 4, t);
        assert_eq!(s.deleted(t), Step::Write(0..4));
        assert_eq!(s.deleted(t), Step::Write(4..8));
        assert_eq!(s.deleted(t), Step::Write(8..10));
        assert_eq!(s.deleted(t), Step::Finish);
        assert_eq!(s.data().len(), 10);
    }

    #[test]
    fn chunk_size_follows_the_server() {
        assert_eq!(chunk_size(16 << 20), 256 << 10);
        assert_eq!(chunk_size(65_535 * 4), 65_535 * 4 - 1024);
        assert_eq!(chunk_size(0), 4096);
    }
}
