//! One capture-and-encode pipeline per display and codec, shared by every viewer of that
//! codec.
//!
//! The [`Hub`] owns the pipelines' lives: the first [`Subscription`] to a codec starts its
//! pipeline on its own thread (see [`pipeline`]), the last one dropped stops it. A room with
//! H.264 and VP8 viewers runs two pipelines, each with its own capture (sharing one capture
//! would couple two encoders' pacing and rate control through one thread; a second capture
//! costs about 1 ms of CPU per 1080p frame). Encoded frames go out through a bounded
//! `tokio::sync::broadcast` ring, so a slow viewer can never stall the encoder or grow a queue:
//! it loses the oldest frames, then waits for the next keyframe, which it requests. Keyframe
//! requests from all viewers land in one flag and are coalesced by the pipeline.

mod coder;
mod pacer;
mod pipeline;
pub mod refine;
mod stats;
pub mod topoff;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

pub use stats::{CodecSnapshot, PipelineStats, StatsSnapshot, ENCODE_BUCKETS};

use crate::abr::{AdaptiveConfig, Viewers};
use crate::capture::CaptureMethod;
use crate::on_demand::{OnDemand, Running, StopSwitch};
use crate::video::{Codec, EncodedFrame};
use crate::wake::Wakeup;

/// Settings of the shared capture and encode pipeline.
#[derive(Debug, Clone)]
pub struct VideoConfig {
    /// Maximum frame rate.
    pub framerate: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Output height (0 = native).
    pub height: u32,
    /// Periodic keyframe interval, if any.
    pub idr_interval: Option<Duration>,
    /// Screen-reading method.
    pub capture: CaptureMethod,
    /// Adaptive bitrate (`None` = constant bitrate).
    pub adaptive: Option<AdaptiveConfig>,
    /// Hand-made lossless pictures for small changes and the refinement of still areas.
    pub lossless_updates: bool,
}

/// How many encoded frames a viewer may fall behind before it starts losing them.
const QUEUE_FRAMES: usize = 8;

/// One encoded frame as broadcast to the viewers.
#[derive(Debug)]
pub struct VideoFrame {
    /// The encoded picture (H.264 access unit or VP8 frame; `encoded.codec` says which).
    pub encoded: EncodedFrame,
    /// Capture time since the shared clock origin (drives RTP timestamps).
    pub timestamp: Duration,
    /// Running number of the frame within this pipeline run.
    pub seq: u64,
    /// A keep-alive that repeats the previous picture (nothing on screen changed).
    pub repeat: bool,
}

/// Knobs the viewers turn on the running pipeline.
#[derive(Debug)]
pub struct Control {
    stop: AtomicBool,
    keyframe: AtomicBool,
    bitrate_kbps: AtomicU32,
    /// Interrupts the pipeline's sleep for a keyframe request or a stop; `None` if the socket
    /// pair could not be made (the pipeline then polls in short slices).
    wake: Option<Wakeup>,
}

impl Default for Control {
    fn default() -> Self {
        let wake = Wakeup::new()
            .map_err(|e| {
                tracing::warn!("no wake-up socket for the video pipeline ({e}); it will poll")
            })
            .ok();
        Control {
            stop: AtomicBool::new(false),
            keyframe: AtomicBool::new(false),
            bitrate_kbps: AtomicU32::new(0),
            wake,
        }
    }
}

impl Control {
    fn wake(&self) {
        if let Some(w) = &self.wake {
            w.wake();
        }
    }

    /// Asks for an IDR on the next encoded frame (many requests coalesce into one).
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Release);
        self.wake();
    }

    fn take_keyframe_request(&self) -> bool {
        self.keyframe.swap(false, Ordering::AcqRel)
    }
}

impl StopSwitch for Control {
    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// One codec's pipeline: its life and the links of its viewers (its adaptive bitrate).
struct Pipe {
    worker: OnDemand<Control, VideoFrame>,
    links: Viewers,
}

struct Inner {
    display: String,
    clock_origin: Instant,
    video: VideoConfig,
    stats: Arc<PipelineStats>,
    fatal: mpsc::UnboundedSender<String>,
    /// Indexed by [`Codec::index`].
    pipes: [Pipe; 2],
}

impl Inner {
    fn pipe(&self, codec: Codec) -> &Pipe {
        &self.pipes[codec.index()]
    }
}

/// Starts, shares and stops the video pipeline of one display. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// A hub for `display`. Frame timestamps count from `clock_origin` (shared with audio, for
    /// lip sync). A pipeline error that cannot be recovered from (the X server went away, the
    /// encoder failed) is sent as a one-line message on `fatal`.
    pub fn new(
        display: String,
        video: VideoConfig,
        clock_origin: Instant,
        fatal: mpsc::UnboundedSender<String>,
    ) -> Self {
        Hub {
            inner: Arc::new(Inner {
                display,
                clock_origin,
                video,
                stats: Arc::new(PipelineStats::default()),
                fatal,
                pipes: Codec::ALL.map(|codec| Pipe {
                    worker: OnDemand::new(match codec {
                        Codec::H264 => "H.264 video",
                        Codec::Vp8 => "VP8 video",
                    }),
                    links: Viewers::default(),
                }),
            }),
        }
    }

    /// The X display this hub streams, e.g. `:99`.
    pub fn display(&self) -> &str {
        &self.inner.display
    }

    /// Joins the `codec` stream as a viewer: starts its pipeline if it is not running and
    /// asks for a keyframe so the newcomer can start decoding at once.
    pub fn subscribe(&self, codec: Codec) -> Subscription {
        let worker = &self.inner.pipe(codec).worker;
        let (rx, control) = match worker.join(|| self.start_pipeline(codec)) {
            Some(joined) => joined,
            None => {
                // Shut down: a subscription that never yields a frame.
                let (tx, rx) = broadcast::channel(1);
                drop(tx);
                (rx, Arc::new(Control::default()))
            }
        };
        control.request_keyframe();
        Subscription {
            rx,
            control,
            hub: self.clone(),
            codec,
            want_keyframe: true,
        }
    }

    fn start_pipeline(&self, codec: Codec) -> Running<Control, VideoFrame> {
        let control = Arc::new(Control::default());
        control
            .bitrate_kbps
            .store(self.inner.video.bitrate_kbps, Ordering::Relaxed);
        let (tx, _) = broadcast::channel(QUEUE_FRAMES);
        let job = pipeline::Job {
            display: self.inner.display.clone(),
            clock_origin: self.inner.clock_origin,
            video: self.inner.video.clone(),
            control: control.clone(),
            tx: tx.clone(),
            stats: self.inner.stats.clone(),
            links: self.inner.pipe(codec).links.clone(),
            codec,
        };
        let fatal = self.inner.fatal.clone();
        let display = self.inner.display.clone();
        let stats = self.inner.stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vnrit-{}", codec.label()))
            .spawn(move || {
                stats.encoders.fetch_add(1, Ordering::Relaxed);
                let per_codec = &stats.codecs[codec.index()];
                per_codec.encoders.fetch_add(1, Ordering::Relaxed);
                let result = pipeline::run(job);
                per_codec.encoders.fetch_sub(1, Ordering::Relaxed);
                stats.encoders.fetch_sub(1, Ordering::Relaxed);
                // The frame buffers and the encoder (tens of MB at 1080p) are gone: give the
                // memory back to the system, so an idle server is small again.
                release_free_memory();
                if let Err(err) = result {
                    tracing::error!("{codec} video pipeline stopped: {err}");
                    let _ = fatal.send(match &err {
                        pipeline::PipelineError::Capture(e) if e.is_lost_server() => {
                            crate::capture::lost_server(&display)
                        }
                        _ => err.to_string(),
                    });
                }
            });
        let thread = match thread {
            Ok(handle) => Some(handle),
            Err(err) => {
                let _ = self
                    .inner
                    .fatal
                    .send(format!("cannot start the video thread: {err}"));
                None
            }
        };
        Running {
            control,
            tx,
            thread,
        }
    }

    /// Adaptive-bitrate settings, when the encoder follows the viewers' links.
    pub fn adaptive(&self) -> Option<AdaptiveConfig> {
        self.inner.video.adaptive
    }

    /// The configured (highest) bitrate, kbit/s.
    pub fn max_bitrate_kbps(&self) -> u32 {
        self.inner.video.bitrate_kbps
    }

    /// The links of the `codec` stream's viewers, which its adaptive-bitrate policy reads.
    pub fn links(&self, codec: Codec) -> &Viewers {
        &self.inner.pipe(codec).links
    }

    /// Asks every running pipeline for a keyframe.
    pub fn request_keyframe(&self) {
        for pipe in &self.inner.pipes {
            if let Some(control) = pipe.worker.control() {
                self.inner
                    .stats
                    .keyframe_requests
                    .fetch_add(1, Ordering::Relaxed);
                control.request_keyframe();
            }
        }
    }

    /// Number of viewers subscribed now, over all codecs.
    pub fn viewers(&self) -> usize {
        self.inner
            .pipes
            .iter()
            .map(|p| p.worker.subscribers())
            .sum()
    }

    /// Number of viewers of `codec` subscribed now.
    pub fn viewers_of(&self, codec: Codec) -> usize {
        self.inner.pipe(codec).worker.subscribers()
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The live counters themselves (for histograms).
    pub fn counters(&self) -> &PipelineStats {
        &self.inner.stats
    }

    /// Stops the pipeline for good and waits (bounded) for its thread to finish.
    pub fn shutdown(&self, wait: Duration) {
        for pipe in &self.inner.pipes {
            pipe.worker.shutdown(wait);
        }
    }
}

/// Returns freed heap memory to the operating system (glibc keeps it otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and shrinks the allocator's own free lists; it takes no
    // pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Why [`Subscription::next`] returned no frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The pipeline stopped (shutdown or a fatal error).
    PipelineStopped,
}

/// One viewer's place in the stream. Dropping it leaves the stream.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<VideoFrame>>,
    control: Arc<Control>,
    hub: Hub,
    codec: Codec,
    want_keyframe: bool,
}

impl Subscription {
    /// The codec of this stream.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The next frame this viewer should send. After joining, after falling behind, or after
    /// [`Subscription::resync`], frames are skipped until a keyframe arrives (which is
    /// requested), so the decoder always starts on an IDR.
    pub async fn next(&mut self) -> Result<Arc<VideoFrame>, Ended> {
        loop {
            match self.rx.recv().await {
                Ok(frame) => {
                    if self.want_keyframe && !frame.encoded.keyframe {
                        continue;
                    }
                    self.want_keyframe = false;
                    return Ok(frame);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!("viewer fell {missed} frames behind; waiting for a keyframe");
                    self.hub
                        .inner
                        .stats
                        .frames_dropped
                        .fetch_add(missed, Ordering::Relaxed);
                    self.resync();
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Ended::PipelineStopped),
            }
        }
    }

    /// Drops whatever is queued and waits for a fresh keyframe (which it requests).
    pub fn resync(&mut self) {
        self.rx = self.rx.resubscribe();
        self.want_keyframe = true;
        self.control.request_keyframe();
    }

    /// Drops whatever is queued and skips frames until the next keyframe, without asking for
    /// one (a viewer whose link fell behind asks later, once it has drained).
    pub fn skip_to_keyframe(&mut self) {
        self.rx = self.rx.resubscribe();
        self.want_keyframe = true;
    }

    /// Asks the pipeline for a keyframe (PLI/FIR from the viewer's decoder).
    pub fn request_keyframe(&self) {
        self.hub
            .inner
            .stats
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        self.control.request_keyframe();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.inner.pipe(self.codec).worker.leave();
    }
}
