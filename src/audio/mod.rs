//! Desktop audio: one PulseAudio capture and one Opus encoder, shared by every viewer.
//!
//! The [`AudioHub`] mirrors [`crate::broadcast::Hub`]: the first [`AudioSubscription`] starts the
//! pipeline on its own thread (`vnrit-audio`), the last one dropped stops it, and Opus packets go
//! out through a bounded `tokio::sync::broadcast` ring so a slow viewer loses old packets instead
//! of stalling anyone. The thread records the monitor of the default sink (or a named source) as
//! 48 kHz stereo S16 with blocking reads (`pulse`), cuts it into 20 ms frames, stamps each with
//! its capture time on the caller's clock (the same origin as video, for lip sync) and encodes it
//! (`encoder`); silent frames are skipped, so a quiet desktop sends nothing. Each viewer's
//! session turns the packets into RTP with its own `OpusPacketizer` (`session::opus_rtp`).
//!
//! Audio never takes the process down: with no server, a server that goes away or a source that
//! disappears, the thread logs one warning, keeps retrying (1 s doubling to 10 s) and resumes by
//! itself; viewers simply get no packets meanwhile.

mod encoder;
pub mod mic;
mod pulse;
mod stats;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::lock::lock;
use crate::on_demand::{OnDemand, Running, StopSwitch};

pub use encoder::EncodeError;
pub use pulse::PulseError;
pub use stats::AudioStats;

/// Sample rate of capture, encoding and the RTP clock.
pub const SAMPLE_RATE: u32 = 48_000;
/// Channels captured and encoded.
pub const CHANNELS: u32 = 2;
/// Samples per channel in one frame (20 ms at 48 kHz).
pub const FRAME_SAMPLES: u32 = SAMPLE_RATE / 50;
/// Duration of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// Default Opus bitrate.
pub const DEFAULT_BITRATE_BPS: u32 = 96_000;

/// How many packets (20 ms each) a listener may fall behind before it loses the oldest.
const QUEUE_FRAMES: usize = 25;

/// Which PulseAudio source to record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AudioSource {
    /// The monitor of the server's default sink: what the desktop plays.
    #[default]
    DefaultMonitor,
    /// A source by name (`pactl list short sources`).
    Named(String),
}

/// How the audio pipeline is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// What to record.
    pub source: AudioSource,
    /// PulseAudio server address (`unix:/path`, `/path`, `tcp:host:port`); `None` finds it the
    /// usual way ($PULSE_SERVER, $XDG_RUNTIME_DIR/pulse/native, /run/user/UID/pulse/native).
    pub server: Option<String>,
    /// Opus bitrate in bit/s (clamped to 6-510 kbit/s).
    pub bitrate_bps: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            source: AudioSource::DefaultMonitor,
            server: None,
            bitrate_bps: DEFAULT_BITRATE_BPS,
        }
    }
}

impl AudioConfig {
    /// The PulseAudio server address that programs vnrit starts should play to: the one vnrit
    /// records from (the first candidate whose socket exists, or a TCP address), if any.
    pub fn server_for_clients(&self) -> Option<String> {
        pulse::server_candidates(self.server.as_deref())
            .into_iter()
            .find(|address| {
                let path = address.strip_prefix("unix:").unwrap_or(address);
                !path.starts_with('/') || std::path::Path::new(path).exists()
            })
    }
}

/// One encoded 20 ms frame as broadcast to the listeners.
#[derive(Debug)]
pub struct AudioFrame {
    /// One Opus packet (48 kHz stereo).
    pub data: bytes::Bytes,
    /// Capture time of the frame's first sample since the hub's clock origin (shared with video):
    /// the RTP timestamp is `timestamp * 48000` (plus the session's random offset).
    pub timestamp: Duration,
    /// Samples per channel in the packet (960 for 20 ms).
    pub samples: u32,
}

/// The stop flag and the means to wake the thread: from its backoff wait (condvar) or from a
/// blocking socket read (shutting the socket down).
#[derive(Default)]
struct Control {
    stop: Mutex<bool>,
    wake: Condvar,
    interrupt: Mutex<Option<pulse::Conn>>,
}

impl StopSwitch for Control {
    fn stopped(&self) -> bool {
        *lock(&self.stop)
    }

    fn stop(&self) {
        *lock(&self.stop) = true;
        self.wake.notify_all();
        if let Some(conn) = lock(&self.interrupt).as_ref() {
            conn.shutdown();
        }
    }
}

impl Control {
    /// Sleeps up to `wait` unless stopped first; true when stopped.
    fn wait_stopped(&self, wait: Duration) -> bool {
        let guard = lock(&self.stop);
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, wait, |stopped| !*stopped)
            // Poisoned or not, as every lock (crate::lock).
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    /// Registers the socket that [`Control::stop`] must shut to unblock a read; false (and the
    /// socket shut at once) when a stop came first.
    fn arm(&self, conn: pulse::Conn) -> bool {
        let mut slot = lock(&self.interrupt);
        if self.stopped() {
            conn.shutdown();
            return false;
        }
        *slot = Some(conn);
        true
    }

    fn disarm(&self) {
        *lock(&self.interrupt) = None;
    }
}

struct Inner {
    config: AudioConfig,
    clock_origin: Instant,
    counters: Arc<stats::AudioCounters>,
    worker: OnDemand<Control, AudioFrame>,
}

/// Starts, shares and stops the audio pipeline. Cheap to clone.
#[derive(Clone)]
pub struct AudioHub {
    inner: Arc<Inner>,
}

impl AudioHub {
    /// A hub recording per `config`; frame timestamps count from `clock_origin` (pass the same
    /// origin as video so the two stay in sync). Nothing runs until the first subscription.
    pub fn new(config: AudioConfig, clock_origin: Instant) -> AudioHub {
        AudioHub {
            inner: Arc::new(Inner {
                config,
                clock_origin,
                counters: Arc::new(stats::AudioCounters::default()),
                worker: OnDemand::new("audio"),
            }),
        }
    }

    /// Joins the audio stream: starts the pipeline if it is not running. Never fails; without a
    /// PulseAudio server the subscription just waits for packets until one appears.
    pub fn subscribe(&self) -> AudioSubscription {
        let rx = match self.inner.worker.join(|| self.start()) {
            Some((rx, _)) => rx,
            None => {
                // Shut down: a subscription that ends at once.
                let (tx, rx) = broadcast::channel(1);
                drop(tx);
                rx
            }
        };
        AudioSubscription {
            rx,
            hub: self.clone(),
        }
    }

    fn start(&self) -> Running<Control, AudioFrame> {
        let control = Arc::new(Control::default());
        let (tx, _) = broadcast::channel(QUEUE_FRAMES);
        let job = worker::Job {
            config: self.inner.config.clone(),
            clock_origin: self.inner.clock_origin,
            control: control.clone(),
            tx: tx.clone(),
            counters: self.inner.counters.clone(),
        };
        let counters = self.inner.counters.clone();
        counters.threads.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("vnrit-audio".into())
            .spawn(move || {
                worker::run(job);
                counters.threads.fetch_sub(1, Ordering::Relaxed);
            });
        let thread = match spawned {
            Ok(handle) => Some(handle),
            Err(err) => {
                tracing::warn!("audio disabled: cannot start the audio thread: {err}");
                self.inner.counters.threads.fetch_sub(1, Ordering::Relaxed);
                self.inner
                    .counters
                    .set_error(format!("cannot start the audio thread: {err}"));
                None
            }
        };
        Running {
            control,
            tx,
            thread,
        }
    }

    /// Number of subscriptions alive now.
    pub fn listeners(&self) -> usize {
        self.inner.worker.subscribers()
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> AudioStats {
        self.inner.counters.snapshot()
    }

    /// Stops the pipeline for good (later subscriptions end at once) and waits up to `wait` for
    /// its thread to finish. The thread wakes at once from a read or a backoff wait.
    pub fn shutdown(&self, wait: Duration) {
        self.inner.worker.shutdown(wait);
    }
}

/// One listener's place in the audio stream. Dropping it leaves the stream.
pub struct AudioSubscription {
    rx: broadcast::Receiver<Arc<AudioFrame>>,
    hub: AudioHub,
}

impl AudioSubscription {
    /// The next Opus packet, or `None` once the hub has shut down. Packets lost because this
    /// listener fell behind are skipped (and counted); Opus conceals the gap.
    pub async fn next(&mut self) -> Option<Arc<AudioFrame>> {
        loop {
            match self.rx.recv().await {
                Ok(frame) => return Some(frame),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.hub
                        .inner
                        .counters
                        .frames_dropped
                        .fetch_add(missed, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for AudioSubscription {
    fn drop(&mut self) {
        self.hub.inner.worker.leave();
    }
}
