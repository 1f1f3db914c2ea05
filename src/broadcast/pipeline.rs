//! The pipeline thread: capture → convert/scale → encode → broadcast, paced by [`Pacer`].
//!
//! Runs on its own OS thread because every stage blocks (X11 round trips, SIMD conversion,
//! OpenH264). It sleeps in `wait_for_damage_or` while the screen is still, until damage, the
//! next keep-alive, or a keyframe request or stop raised on [`Control`]'s wake-up socket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::coder::{Coder, HandOutcome, Still};
use super::pacer::{Pacer, Step};
use super::VideoConfig;
use super::{Control, PipelineStats, VideoFrame};
use crate::abr::{Policy, PolicyConfig, Viewers};
use crate::capture::{CaptureError, Capturer, DamageRect};
use crate::on_demand::StopSwitch as _;
use crate::video::{EncodedFrame, VideoError};

/// Why the pipeline stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The screen could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Conversion or encoding failed.
    #[error(transparent)]
    Video(#[from] VideoError),
}

/// Everything the pipeline thread needs.
pub(super) struct Job {
    pub display: String,
    pub clock_origin: Instant,
    pub video: VideoConfig,
    pub control: Arc<Control>,
    pub tx: broadcast::Sender<Arc<VideoFrame>>,
    pub stats: Arc<PipelineStats>,
    pub links: Viewers,
}

/// The longest sleep without a wake-up socket, so stop and keyframe requests are noticed.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// How often the adaptive-bitrate policy looks at the viewers' estimates.
const ADAPT_EVERY: Duration = Duration::from_millis(200);

/// Runs until `control` says stop, or an error.
pub(super) fn run(job: Job) -> Result<(), PipelineError> {
    let mut pipeline = Pipeline::open(job)?;
    while !pipeline.control.stopped() {
        pipeline.keyframe_wanted |= pipeline.control.take_keyframe_request();
        pipeline.adapt(Instant::now());
        match pipeline
            .pacer
            .step(Instant::now(), pipeline.keyframe_wanted)
        {
            Step::Wait(timeout) => pipeline.wait(timeout)?,
            Step::Produce => pipeline.produce(Instant::now())?,
        }
    }
    tracing::info!("video pipeline stopped after {} frames", pipeline.out.seq);
    Ok(())
}

/// The pipeline thread's state: one method per thing that can happen in its loop.
struct Pipeline {
    cfg: VideoConfig,
    control: Arc<Control>,
    stats: Arc<PipelineStats>,
    links: Viewers,
    capturer: Capturer,
    coder: Coder,
    pacer: Pacer,
    /// Adaptive bitrate (`None`: constant bitrate), and when it last looked.
    policy: Option<Policy>,
    adapted_at: Instant,
    /// The encoder's target now, in kbit/s.
    bitrate: u32,
    /// A viewer waits for a keyframe (or hand-made pictures need an IDR to restart).
    keyframe_wanted: bool,
    out: Output,
}

impl Pipeline {
    /// Opens the display and makes the coder for its size.
    fn open(job: Job) -> Result<Self, PipelineError> {
        let Job {
            display: display_name,
            clock_origin,
            video: cfg,
            control,
            tx,
            stats,
            links,
        } = job;
        let capturer = Capturer::open(Some(&display_name), cfg.capture)?;
        let bitrate = control.bitrate_kbps.load(Ordering::Relaxed);
        let (src_w, src_h) = capturer.size();
        let coder = Coder::new(src_w, src_h, &cfg, bitrate)?;
        coder.publish_size(&stats);
        tracing::info!(
            "capturing {display_name} at {src_w}x{src_h} via {:?}, encoding {}x{} at up to {} fps, {bitrate} kbit/s",
            capturer.method(),
            coder.out_w,
            coder.out_h,
            cfg.framerate
        );
        stats.fps_target.store(cfg.framerate, Ordering::Relaxed);
        let policy = cfg.adaptive.map(|a| {
            Policy::new(PolicyConfig {
                min_kbps: a.min_kbps,
                max_kbps: cfg.bitrate_kbps,
                max_fps: cfg.framerate,
            })
        });
        Ok(Pipeline {
            pacer: Pacer::new(cfg.framerate),
            out: Output {
                tx,
                stats: stats.clone(),
                seq: 0,
                clock_origin,
            },
            cfg,
            control,
            stats,
            links,
            capturer,
            coder,
            policy,
            adapted_at: Instant::now(),
            bitrate,
            keyframe_wanted: false,
        })
    }

    /// Every [`ADAPT_EVERY`], lets the adaptive-bitrate policy set the target and frame rate.
    fn adapt(&mut self, now: Instant) {
        let Some(policy) = self.policy.as_mut() else {
            return;
        };
        if now.duration_since(self.adapted_at) < ADAPT_EVERY {
            return;
        }
        self.adapted_at = now;
        let decision = policy.update(now, &self.links.estimates());
        self.control
            .bitrate_kbps
            .store(decision.bitrate_kbps, Ordering::Relaxed);
        if self.stats.fps_target.swap(decision.fps, Ordering::Relaxed) != decision.fps {
            tracing::debug!("frame rate cap now {} fps", decision.fps);
            self.pacer.set_fps(decision.fps);
        }
    }

    /// Nothing to produce yet: sends a refinement picture if one is due, else sleeps until
    /// damage, the end of `timeout` or the next refinement (keyframe requests and stops
    /// interrupt the sleep).
    fn wait(&mut self, timeout: Duration) -> Result<(), PipelineError> {
        let now = Instant::now();
        let mut timeout = timeout;
        if !self.pacer.dirty() {
            let kbps = self.control.bitrate_kbps.load(Ordering::Relaxed);
            match self.coder.next_refine(kbps) {
                Some(at) if at <= now => {
                    if let Some((data, _)) = self.coder.still_picture(now, kbps, false) {
                        self.stats.frames_refined.fetch_add(1, Ordering::Relaxed);
                        // In the background, like a keep-alive: the viewers' timers stay idle.
                        self.send(now, data, Kind::Quiet);
                        return Ok(());
                    }
                    if self.coder.needs_reference() {
                        // Refinement waits for the encoder's next reference picture.
                        self.pacer.damaged();
                        return Ok(());
                    }
                }
                Some(at) => timeout = timeout.min(at - now),
                None => {}
            }
        }
        // Keyframe requests and stops raise `control.wake`; without it (no socket pair) the
        // wait is cut into slices so they are still noticed.
        let damaged = match &self.control.wake {
            Some(wake) => {
                let damaged = self.capturer.wait_for_damage_or(timeout, wake.fd())?;
                wake.clear();
                damaged
            }
            None => self.capturer.wait_for_damage(timeout.min(POLL_SLICE))?,
        };
        if damaged {
            self.pacer.damaged();
        }
        Ok(())
    }

    /// A frame is due: a still picture (keep-alive, refinement), a hand-made picture of a
    /// small change, or an encoded one.
    fn produce(&mut self, now: Instant) -> Result<(), PipelineError> {
        let kbps = self.control.bitrate_kbps.load(Ordering::Relaxed);
        if !self.pacer.dirty() && !self.keyframe_wanted {
            if let Some((data, still)) = self.coder.still_picture(now, kbps, true) {
                let (counter, kind) = match still {
                    Still::KeepAlive => (&self.stats.frames_repeated, Kind::Quiet),
                    Still::Refined => (&self.stats.frames_refined, Kind::Picture),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.send(now, data, kind);
                return Ok(());
            }
        }
        let mut converted = false;
        if self.pacer.dirty() && !self.keyframe_wanted {
            match self.coder.hand_change(&mut self.capturer, now)? {
                HandOutcome::Sent(data) => {
                    self.stats.frames_captured.fetch_add(1, Ordering::Relaxed);
                    self.stats.frames_hand.fetch_add(1, Ordering::Relaxed);
                    self.send(now, data, Kind::Picture);
                    return Ok(());
                }
                HandOutcome::Converted => converted = true,
                HandOutcome::NotTaken => {}
            }
        }
        let damage = if converted {
            self.capturer.grabbed_damage()
        } else if self.pacer.dirty() {
            self.grab()?
        } else {
            // Keep-alive or keyframe on a still screen: the last picture is current.
            None
        };
        self.encode(now, kbps, damage)
    }

    /// Grabs the screen and converts it (straight out of the shared memory segment: no copy),
    /// following a resize; returns the grab's damage.
    fn grab(&mut self) -> Result<Option<DamageRect>, PipelineError> {
        let pixels = self.capturer.capture_pixels()?;
        self.stats.frames_captured.fetch_add(1, Ordering::Relaxed);
        if (pixels.width, pixels.height) != self.coder.converter.source_size() {
            // The screen was resized: new sizes, a new encoder (its first frame is an IDR
            // with the new parameter sets, which browsers follow).
            self.coder = Coder::new(pixels.width, pixels.height, &self.cfg, self.bitrate)?;
            self.coder.publish_size(&self.stats);
            tracing::info!(
                "screen now {}x{}, encoding {}x{}",
                pixels.width,
                pixels.height,
                self.coder.out_w,
                self.coder.out_h
            );
        }
        self.coder.converter.convert(pixels.data, pixels.stride)?;
        Ok(self.capturer.grabbed_damage())
    }

    /// Encodes the converter's last picture at `kbps` and sends it.
    fn encode(
        &mut self,
        now: Instant,
        kbps: u32,
        damage: Option<DamageRect>,
    ) -> Result<(), PipelineError> {
        if kbps != self.bitrate {
            tracing::debug!("encoder target {} -> {kbps} kbit/s", self.bitrate);
            self.coder.encoder.set_bitrate(kbps);
            self.bitrate = kbps;
        }
        self.stats.bitrate_kbps.store(kbps, Ordering::Relaxed);
        if std::mem::take(&mut self.keyframe_wanted) {
            self.coder.encoder.request_idr();
        }
        let timestamp = now.duration_since(self.out.clock_origin);
        let t = Instant::now();
        let encoded = self
            .coder
            .encoder
            .encode(self.coder.converter.last(), timestamp)?;
        let took = t.elapsed();
        self.stats
            .encode_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.stats.observe_encode(took.as_secs_f64());
        let Some(encoded) = encoded else {
            // Rate control skipped it: try again next interval so the screen's last state
            // always reaches the viewers.
            self.stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
            self.pacer.produced(now);
            self.pacer.damaged();
            return Ok(());
        };
        let (data, understood) = self.coder.after_encode(now, &encoded, damage);
        if !understood {
            // Hand-made pictures stop until an IDR restarts the renumbering.
            self.keyframe_wanted = true;
        }
        self.stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
        let kind = if encoded.keyframe {
            self.stats.keyframes.fetch_add(1, Ordering::Relaxed);
            Kind::Keyframe
        } else {
            Kind::Picture
        };
        self.send(now, data, kind);
        Ok(())
    }

    /// Sends one picture made at `now`: the one place a frame is built and counted.
    fn send(&mut self, now: Instant, data: Vec<u8>, kind: Kind) {
        self.pacer.produced(now);
        self.coder.planner.sent(now, data.len() as u64);
        self.out.publish(&self.coder, now, data, kind);
    }
}

/// What a picture is, for the frame that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An encoded keyframe (IDR).
    Keyframe,
    /// Any other picture: encoded, hand-made, or a refinement sent when a frame was due.
    Picture,
    /// A keep-alive, or a refinement between frames: marked [`VideoFrame::repeat`], so it
    /// does not count as media for the viewers' timers.
    Quiet,
}

/// Where the pipeline's pictures go: the broadcast ring, with the stats.
struct Output {
    tx: broadcast::Sender<Arc<VideoFrame>>,
    stats: Arc<PipelineStats>,
    seq: u64,
    clock_origin: Instant,
}

impl Output {
    /// Puts one access unit made at `now` in the ring (no receivers between viewers is fine:
    /// the frame is simply not needed).
    fn publish(&mut self, coder: &Coder, now: Instant, data: Vec<u8>, kind: Kind) {
        self.stats
            .bytes_encoded
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.stats
            .refine_pending
            .store(coder.planner.pending(), Ordering::Relaxed);
        self.seq += 1;
        let _ = self.tx.send(Arc::new(VideoFrame {
            encoded: EncodedFrame {
                data: data.into(),
                keyframe: kind == Kind::Keyframe,
                width: coder.out_w,
                height: coder.out_h,
            },
            timestamp: now.duration_since(self.clock_origin),
            seq: self.seq,
            repeat: kind == Kind::Quiet,
        }));
    }
}
