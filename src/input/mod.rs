//! Remote control: keyboard, mouse, cursor shape and clipboard between the pages and the
//! X server.
//!
//! One [`InputService`] per display owns a private X connection on its own thread. It injects
//! keys and buttons with XTest, keeps the keyboard mapping current (MappingNotify) and binds
//! spare keycodes for keysyms the layout lacks, follows the cursor (XFixes) and the pointer,
//! and owns the clipboard it was given. One [`InputSession`] per viewer turns that viewer's
//! raw messages ([`wire`] format) into commands for the service; a view-only session refuses
//! input, and a session's gate (see [`InputSession::set_gate`]) refuses it while another
//! viewer has control. Whatever a session holds down is released when it ends (dropped), when its page
//! reports losing focus, and on [`InputService::shutdown`], so no key or button stays stuck.
//!
//! Text to type (`tx`: IME commits, soft keyboards, the page's type-text action) is queued
//! per viewer and typed by the X thread at a steady rate ([`typing`]); a viewer may have at
//! most [`typing::MAX_BACKLOG_CHARS`] characters waiting.
//!
//! Messages for the pages (the server's protocol version, pointer position, cursor image,
//! clipboard text) come from [`InputSession::outgoing`], already encoded as [`wire`] text.

mod clipboard;
mod cursor;
mod injector;
mod keymap;
pub mod keys;
mod outgoing;
pub mod ratelimit;
pub mod settings;
pub mod typing;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::lock::lock;
use crate::wake::Wakeup;

pub use outgoing::OutgoingMessages;
pub(crate) use outgoing::{Outgoing, Publisher, Snapshot};
pub use settings::InputSettings;
pub use wire::{InputEvent, WireError};

/// Commands queued for the X thread beyond which input events are dropped.
const MAX_QUEUED: usize = 4096;
/// How long `shutdown` and `sync` wait for the X thread.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors of the input service.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// No connection to the X server.
    #[error("input: cannot connect to X display {display}: {source}; check --display and that the X server is running")]
    Connect {
        /// The display name.
        display: String,
        /// The cause.
        source: x11rb::errors::ConnectError,
    },
    /// The X server lacks an extension input needs.
    #[error("input: the X server has no {0} extension, which remote control needs")]
    MissingExtension(&'static str),
    /// An X request failed during start-up.
    #[error("input: X request failed: {0}")]
    X(String),
    /// A message from the page was refused.
    #[error("input message refused: {0}")]
    Wire(#[from] WireError),
    /// The viewer may only watch.
    #[error("input refused: this viewer has view-only access")]
    ViewOnly,
    /// Another viewer has control (the text says who and what to do).
    #[error("{0}")]
    NotInControl(String),
    /// The service has stopped (shut down, or the X server went away).
    #[error("input: the input service has stopped (X server gone or shutting down)")]
    Stopped,
    /// Too many commands are waiting for the X server.
    #[error("input: the X server is not keeping up; input event dropped")]
    Busy,
    /// This viewer sent more input than [`ratelimit::SUSTAINED_PER_SEC`] events a second.
    #[error("input: too many input events (over {} a second); some were dropped, releases of held keys and buttons still pass", ratelimit::SUSTAINED_PER_SEC)]
    RateLimited,
    /// This viewer already has [`typing::MAX_BACKLOG_CHARS`] characters waiting to be typed.
    #[error(
        "input: over {} characters are waiting to be typed; wait, or cancel the typing",
        typing::MAX_BACKLOG_CHARS
    )]
    TypingBacklog,
    /// A clipboard content from the page was refused (the page is always told).
    #[error("{0}")]
    Clipboard(String),
    /// The X thread could not be started.
    #[error("input: cannot start the input thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Commands for the X thread.
#[derive(Debug)]
pub(crate) enum Cmd {
    Event {
        session: u64,
        event: InputEvent,
    },
    /// Text to type; `reserved` characters were counted into the session's `backlog`.
    Type {
        session: u64,
        text: String,
        reserved: usize,
        backlog: Arc<AtomicUsize>,
    },
    EndSession(u64),
    Sync(mpsc::Sender<()>),
    Shutdown(mpsc::Sender<()>),
    /// A test's own request, made on the X thread's connection and its failure handled like
    /// the thread's own requests'.
    #[cfg(test)]
    Request(XRequest),
}

/// A request a test makes on the X thread's connection.
#[cfg(test)]
pub(crate) struct XRequest(pub Box<XRequestFn>);

#[cfg(test)]
type XRequestFn = dyn FnOnce(&x11rb::rust_connection::RustConnection) -> Result<(), x11rb::errors::ReplyError>
    + Send;

#[cfg(test)]
impl std::fmt::Debug for XRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XRequest")
    }
}

/// State shared by the service, its sessions and the X thread.
#[derive(Debug)]
pub(crate) struct Shared {
    tx: Mutex<mpsc::Sender<Cmd>>,
    wake: Wakeup,
    queued: AtomicUsize,
    alive: AtomicBool,
    next_session: AtomicU64,
    dropped: AtomicU64,
    out: broadcast::Receiver<Outgoing>,
    snapshot: Mutex<Snapshot>,
    /// `--max-clipboard`.
    max_clipboard: usize,
}

impl Shared {
    fn send(&self, cmd: Cmd) -> Result<(), InputError> {
        self.send_bounded(cmd, true)
    }

    /// Queues `cmd`; with `bounded`, an input event finds the queue full and is refused with
    /// [`InputError::Busy`] (releases of held keys are sent unbounded, so nothing sticks).
    fn send_bounded(&self, cmd: Cmd, bounded: bool) -> Result<(), InputError> {
        if !self.alive.load(Ordering::Acquire) {
            return Err(InputError::Stopped);
        }
        let is_event = matches!(cmd, Cmd::Event { .. } | Cmd::Type { .. });
        if bounded && is_event && self.queued.load(Ordering::Acquire) >= MAX_QUEUED {
            if let Cmd::Type {
                reserved, backlog, ..
            } = &cmd
            {
                backlog.fetch_sub(*reserved, Ordering::AcqRel);
            }
            return Err(InputError::Busy);
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if lock(&self.tx).send(cmd).is_err() {
            return Err(InputError::Stopped);
        }
        self.wake();
        Ok(())
    }

    /// Wake the X thread (it re-reads who is watching on every round).
    fn wake(&self) {
        self.wake.wake();
    }

    fn ask(&self, make: impl FnOnce(mpsc::Sender<()>) -> Cmd) -> Result<(), InputError> {
        let (tx, rx) = mpsc::channel();
        self.send(make(tx))?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| InputError::Stopped)
    }
}

/// Remote control of one X display (see the module docs).
#[derive(Debug)]
pub struct InputService {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl InputService {
    /// Connect to `display` (e.g. ":1") and start the X thread.
    pub fn start(display: &str, settings: &InputSettings) -> Result<InputService, InputError> {
        let (tx, rx) = mpsc::channel();
        let (out_tx, out_rx) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            tx: Mutex::new(tx),
            wake: Wakeup::new().map_err(InputError::Thread)?,
            queued: AtomicUsize::new(0),
            alive: AtomicBool::new(true),
            next_session: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
            out: out_rx,
            snapshot: Mutex::new(Snapshot::default()),
            max_clipboard: settings.max_clipboard,
        });
        let injector = injector::Injector::connect(display, Arc::clone(&shared), out_tx)?;
        let thread = std::thread::Builder::new()
            .name("vnrit-input".into())
            .spawn(move || injector.run(rx))
            .map_err(InputError::Thread)?;
        Ok(InputService {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A session for one viewer; `can_control` false makes it view-only.
    pub fn session(&self, can_control: bool) -> InputSession {
        InputSession {
            id: self.shared.next_session.fetch_add(1, Ordering::Relaxed),
            can_control,
            shared: Arc::clone(&self.shared),
            log: RateLimitedLog::default(),
            limiter: ratelimit::InputLimiter::new(Instant::now()),
            gate: None,
            typing: Arc::new(AtomicUsize::new(0)),
            page_version: Arc::new(AtomicU64::new(1)),
            chunks: wire::Reassembler::new(self.shared.max_clipboard),
        }
    }

    /// Input events dropped so far, by the per-viewer rate limit or a full queue, over all
    /// sessions since start.
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Wait until the X server has carried out everything queued so far.
    pub fn sync(&self) -> Result<(), InputError> {
        self.shared.ask(Cmd::Sync)
    }

    /// Release every key and button held by any session, give back spare keycodes, and stop
    /// the X thread. Safe to call more than once; call it on SIGINT/SIGTERM/SIGHUP.
    pub fn shutdown(&self) {
        if self.shared.ask(Cmd::Shutdown).is_err() {
            tracing::debug!("input: service already stopped");
        }
        self.shared.alive.store(false, Ordering::Release);
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("input: the X thread panicked");
            }
        }
    }

    /// Whether the service still runs (false after shutdown or when the X server is gone).
    pub fn is_running(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }
}

impl Drop for InputService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One viewer's input (see the module docs). Dropping it releases what it holds.
#[derive(Debug)]
pub struct InputSession {
    id: u64,
    can_control: bool,
    shared: Arc<Shared>,
    log: RateLimitedLog,
    limiter: ratelimit::InputLimiter,
    /// Characters of this viewer's text still waiting to be typed.
    typing: Arc<AtomicUsize>,
    gate: Option<GateFn>,
    /// The protocol version the page said it speaks (1 until it says).
    page_version: Arc<AtomicU64>,
    /// This viewer's clipboard chunk stream in flight.
    chunks: wire::Reassembler,
}

/// Asked before every control event: `Err(why)` refuses it (see [`InputSession::set_gate`]).
pub type Gate = Box<dyn FnMut() -> Result<(), String> + Send>;

struct GateFn(Gate);

impl std::fmt::Debug for GateFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl InputSession {
    /// Handle one raw message from the page (data channel `input`, or the `data` of a
    /// WebSocket `{"type":"input"}` message). Refused messages are logged here, at most a
    /// few lines per ten seconds per session, so callers may ignore the error.
    pub fn handle(&mut self, msg: &[u8]) -> Result<(), InputError> {
        let result = self.dispatch(msg);
        if let Err(e) = &result {
            self.log.note(self.id, e);
        }
        result
    }

    fn dispatch(&mut self, msg: &[u8]) -> Result<(), InputError> {
        let event = wire::parse(msg)?;
        if event.is_control() && !self.can_control {
            return Err(InputError::ViewOnly);
        }
        if event.is_control() {
            if let Some(GateFn(gate)) = self.gate.as_mut() {
                gate().map_err(InputError::NotInControl)?;
            }
        }
        let event = match event {
            InputEvent::Version(v) => {
                self.page_version.store(v, Ordering::Release);
                return Ok(());
            }
            // Parts are not rate-counted (a 16 MiB stream is 373 of them); their total is
            // bounded by --max-clipboard, and only a whole content reaches the X thread.
            InputEvent::Chunk(msg) => match self.chunks.push(msg) {
                Ok(None) => return Ok(()),
                Ok(Some(data)) => clip_event(data),
                Err(e) => return Err(InputError::Clipboard(e.to_string())),
            },
            InputEvent::Clipboard(text) if text.len() > self.shared.max_clipboard => {
                return Err(InputError::Clipboard(
                    wire::ChunkError::TooLarge {
                        size: text.len(),
                        max: self.shared.max_clipboard,
                    }
                    .to_string(),
                ))
            }
            event => event,
        };
        let verdict = self.limiter.admit(&event, Instant::now());
        if verdict == ratelimit::Verdict::Drop {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(InputError::RateLimited);
        }
        let cmd = match event {
            InputEvent::TypeText(text) => self.typing_cmd(text)?,
            event => Cmd::Event {
                session: self.id,
                event,
            },
        };
        let sent = self
            .shared
            .send_bounded(cmd, verdict != ratelimit::Verdict::Release);
        if matches!(sent, Err(InputError::Busy)) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// The command typing `text`, once it fits in this viewer's typing backlog.
    fn typing_cmd(&self, text: String) -> Result<Cmd, InputError> {
        let n = text.chars().count();
        self.typing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b + n <= typing::MAX_BACKLOG_CHARS).then_some(b + n)
            })
            .map_err(|_| InputError::TypingBacklog)?;
        Ok(Cmd::Type {
            session: self.id,
            text,
            reserved: n,
            backlog: Arc::clone(&self.typing),
        })
    }

    /// Releases every key and button this viewer holds, as if its page had lost focus; for
    /// when its connection drops out (it may come back, but nothing should stay pressed
    /// meanwhile). Never rate-limited.
    pub fn release_all(&mut self) -> Result<(), InputError> {
        if !self.limiter.holds_anything() {
            return Ok(());
        }
        self.limiter.admit(&InputEvent::ReleaseAll, Instant::now());
        self.shared.send_bounded(
            Cmd::Event {
                session: self.id,
                event: InputEvent::ReleaseAll,
            },
            false,
        )
    }

    /// Makes every control event (keys, pointer, clipboard) ask `gate` first, e.g. "does this
    /// viewer have control now"; a refused event never reaches X and is not rate-counted.
    pub fn set_gate(&mut self, gate: Gate) {
        self.gate = Some(GateFn(gate));
    }

    /// Whether this viewer may control the desktop (its token; see also the gate).
    pub fn can_control(&self) -> bool {
        self.can_control
    }

    /// Messages for this viewer's page: the protocol version and the current cursor first,
    /// then every change. Clipboard contents go to controlling viewers only.
    pub fn outgoing(&self) -> OutgoingMessages {
        let first = std::iter::once(Arc::from(wire::encode_version(self.shared.max_clipboard)))
            .chain(OutgoingMessages::snapshot(&self.shared))
            .collect();
        let out = OutgoingMessages::new(
            Arc::clone(&self.shared),
            first,
            self.can_control,
            Arc::clone(&self.page_version),
        );
        // The X thread may be asleep with nobody watching: let it start the pointer checks.
        self.shared.wake();
        out
    }
}

/// The event setting the X clipboard to a content a chunk stream brought.
fn clip_event(data: wire::ClipData) -> InputEvent {
    match data.kind() {
        wire::ClipKind::Text => match String::from_utf8(data.into_bytes()) {
            Ok(text) => InputEvent::Clipboard(text),
            // The reassembler checked it; never here.
            Err(e) => InputEvent::Clipboard(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
        wire::ClipKind::Png => InputEvent::ClipboardImage(data.into_bytes()),
    }
}

impl Drop for InputSession {
    fn drop(&mut self) {
        // If the service stopped, it released everything already.
        let _ = self.shared.send(Cmd::EndSession(self.id));
    }
}

/// At most [`RateLimitedLog::BURST`] warnings per window, then a count of what was dropped.
#[derive(Debug)]
struct RateLimitedLog {
    window: Instant,
    count: u32,
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        RateLimitedLog {
            window: Instant::now(),
            count: 0,
        }
    }
}

impl RateLimitedLog {
    const BURST: u32 = 3;
    const WINDOW: Duration = Duration::from_secs(10);

    fn note(&mut self, session: u64, err: &InputError) {
        if self.window.elapsed() >= Self::WINDOW {
            if self.count > Self::BURST {
                tracing::warn!(
                    session,
                    "input: {} more refused messages",
                    self.count - Self::BURST
                );
            }
            self.window = Instant::now();
            self.count = 0;
        }
        self.count += 1;
        if self.count <= Self::BURST {
            tracing::warn!(session, "{err}");
        }
    }
}
