//! Messages for the pages: the broadcast the X thread publishes on ([`Publisher`]), and each
//! page's stream of wire text ([`OutgoingMessages`]).
//!
//! A clipboard content is broadcast once, shared ([`Arc`]), whatever its size; each page's
//! stream turns it into one `cb` / `ci` message when it fits, else into a chunk stream made
//! one message at a time ([`wire::chunk::Chunker`]), interleaved with cursor updates. A newer
//! clipboard cancels the stream in flight. Pages older than [`wire::CHUNK_VERSION`] get an
//! `err` instead of a content too large for one message.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::wire::{self, chunk::Chunker, ClipData};
use super::Shared;
use crate::lock::lock;

/// What is broadcast to the pages.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// An encoded message.
    Text(Arc<str>),
    /// A clipboard content, encoded per page.
    Clip(Arc<ClipData>),
}

/// A message for the pages.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    payload: Payload,
    /// Clipboard content goes to controlling viewers only.
    clipboard: bool,
}

/// What a newly joined page must be told first.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    shape: Option<Arc<str>>,
    pointer: Option<Arc<str>>,
}

impl Snapshot {
    fn messages(&self) -> impl Iterator<Item = Arc<str>> + '_ {
        self.shape.iter().chain(self.pointer.iter()).cloned()
    }
}

/// How the X thread reaches the pages: a broadcast of encoded messages plus the snapshot a
/// newly joined page starts from.
#[derive(Debug)]
pub(crate) struct Publisher {
    out: broadcast::Sender<Outgoing>,
    shared: Arc<Shared>,
    screen: Cell<(u16, u16)>,
}

impl Publisher {
    pub(crate) fn new(out: broadcast::Sender<Outgoing>, shared: Arc<Shared>) -> Publisher {
        Publisher {
            out,
            shared,
            screen: Cell::new((1, 1)),
        }
    }

    /// Whether any page is listening (the service's own template receiver aside).
    pub(crate) fn watched(&self) -> bool {
        self.out.receiver_count() > 1
    }

    /// The X screen size in pixels.
    pub(crate) fn screen(&self) -> (u16, u16) {
        self.screen.get()
    }

    pub(crate) fn set_screen(&self, width: u16, height: u16) {
        self.screen.set((width, height));
    }

    fn send(&self, payload: Payload, clipboard: bool) {
        // No receivers is not an error: nobody is watching.
        let _ = self.out.send(Outgoing { payload, clipboard });
    }

    /// A new cursor image (also kept for pages that join later).
    pub(crate) fn shape(&self, text: Arc<str>) {
        lock(&self.shared.snapshot).shape = Some(Arc::clone(&text));
        self.send(Payload::Text(text), false);
    }

    /// A new pointer position (also kept for pages that join later).
    pub(crate) fn pointer(&self, text: Arc<str>) {
        lock(&self.shared.snapshot).pointer = Some(Arc::clone(&text));
        self.send(Payload::Text(text), false);
    }

    /// A clipboard problem (`err`), for controlling viewers only.
    pub(crate) fn clipboard_error(&self, message: &str) {
        self.send(Payload::Text(wire::encode_error(message).into()), true);
    }

    /// New X clipboard content, for controlling viewers only.
    pub(crate) fn clipboard(&self, data: ClipData) {
        self.send(Payload::Clip(Arc::new(data)), true);
    }
}

/// The stream of [`wire`] text messages for one page (see
/// [`InputSession::outgoing`](super::InputSession::outgoing)).
#[derive(Debug)]
pub struct OutgoingMessages {
    rx: broadcast::Receiver<Outgoing>,
    shared: Arc<Shared>,
    pending: VecDeque<Arc<str>>,
    /// The clipboard chunk stream in flight.
    stream: Option<Chunker>,
    next_stream: u64,
    clipboard: bool,
    /// The protocol version the page said it speaks (1 until it says).
    page_version: Arc<AtomicU64>,
}

impl OutgoingMessages {
    pub(crate) fn new(
        shared: Arc<Shared>,
        first: Vec<Arc<str>>,
        clipboard: bool,
        page_version: Arc<AtomicU64>,
    ) -> OutgoingMessages {
        OutgoingMessages {
            rx: shared.out.resubscribe(),
            shared,
            pending: first.into(),
            stream: None,
            next_stream: 1,
            clipboard,
            page_version,
        }
    }

    pub(crate) fn snapshot(shared: &Shared) -> Vec<Arc<str>> {
        lock(&shared.snapshot).messages().collect()
    }

    /// The next message to send to the page; `None` once the service has stopped.
    /// Cancel-safe: a message is never lost when the future is dropped unfinished.
    pub async fn recv(&mut self) -> Option<Arc<str>> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            // Whatever else is new goes between the parts of a clipboard stream.
            if self.stream.is_some() {
                match self.rx.try_recv() {
                    Ok(m) => self.take(m),
                    Err(broadcast::error::TryRecvError::Empty) => {
                        if let Some(part) = self.stream.as_mut().and_then(Iterator::next) {
                            return Some(part.into());
                        }
                        self.stream = None;
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_)) => self.lagged(),
                    Err(broadcast::error::TryRecvError::Closed) => return None,
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(m) => self.take(m),
                Err(broadcast::error::RecvError::Lagged(_)) => self.lagged(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Too slow a page: skip to the present.
    fn lagged(&mut self) {
        self.pending = Self::snapshot(&self.shared).into();
    }

    /// Queues what a broadcast message means for this page.
    fn take(&mut self, m: Outgoing) {
        if m.clipboard && !self.clipboard {
            return;
        }
        match m.payload {
            Payload::Text(text) => self.pending.push_back(text),
            Payload::Clip(data) => {
                // A newer clipboard cancels the stream in flight (the page drops it on `cbb`).
                self.stream = None;
                if let Some(msg) = data.small_message() {
                    self.pending.push_back(msg.into());
                } else if self.page_version.load(Ordering::Acquire) >= wire::CHUNK_VERSION {
                    self.stream = Some(Chunker::new(data, self.next_stream));
                    self.next_stream += 1;
                } else {
                    let message = format!(
                        "The remote clipboard holds {} bytes, too many for this page, which is older than the server: reload it.",
                        data.bytes().len()
                    );
                    self.pending.push_back(wire::encode_error(&message).into());
                }
            }
        }
    }
}
