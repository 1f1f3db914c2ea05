//! The pipeline thread: capture → convert/scale → encode → broadcast, paced by [`Pacer`].
//!
//! Runs on its own OS thread because every stage blocks (X11 round trips, SIMD conversion,
//! OpenH264). It sleeps in `wait_for_damage_or` while the screen is still, until damage, the
//! next keep-alive, or a keyframe request or stop raised on [`Control`]'s wake-up socket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast;

use super::coder::{Coder, HandOutcome, Still};
use super::pacer::{Pacer, Step};
use super::VideoConfig;
use super::{Control, PipelineStats, VideoFrame};
use crate::abr::{Policy, PolicyConfig, Viewers};
use crate::capture::{CaptureError, Capturer};
use crate::on_demand::StopSwitch as _;
use crate::video::{Codec, EncodedFrame, VideoError};

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
    /// The codec this pipeline encodes.
    pub codec: Codec,
}

/// The longest sleep without a wake-up socket, so stop and keyframe requests are noticed.
const POLL_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// How often the adaptive-bitrate policy looks at the viewers' estimates.
const ADAPT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs until `control` says stop, or an error.
pub(super) fn run(job: Job) -> Result<(), PipelineError> {
    let Job {
        display: display_name,
        clock_origin,
        video: cfg,
        control,
        tx,
        stats,
        links,
        codec,
    } = job;
    let mut capturer = Capturer::open(Some(&display_name), cfg.capture)?;
    let mut bitrate = control.bitrate_kbps.load(Ordering::Relaxed);
    let (src_w, src_h) = capturer.size();
    let mut coder = Coder::new(src_w, src_h, &cfg, bitrate, codec)?;
    coder.publish_size(&stats);
    tracing::info!(
        "capturing {} at {src_w}x{src_h} via {:?}, encoding {codec} {}x{} at up to {} fps, {bitrate} kbit/s",
        display_name,
        capturer.method(),
        coder.out_w,
        coder.out_h,
        cfg.framerate
    );

    let mut pacer = Pacer::new(cfg.framerate);
    stats.fps_target.store(cfg.framerate, Ordering::Relaxed);
    let mut policy = cfg.adaptive.map(|a| {
        Policy::new(PolicyConfig {
            min_kbps: a.min_kbps,
            max_kbps: cfg.bitrate_kbps,
            max_fps: cfg.framerate,
        })
    });
    let mut adapted_at = Instant::now();
    let mut out = Output {
        tx,
        stats: stats.clone(),
        seq: 0,
        clock_origin,
    };
    let mut keyframe_wanted = false;
    while !control.stopped() {
        keyframe_wanted |= control.take_keyframe_request();
        if let Some(policy) = policy.as_mut() {
            let now = Instant::now();
            if now.duration_since(adapted_at) >= ADAPT_EVERY {
                adapted_at = now;
                let decision = policy.update(now, &links.estimates());
                control
                    .bitrate_kbps
                    .store(decision.bitrate_kbps, Ordering::Relaxed);
                if stats.fps_target.swap(decision.fps, Ordering::Relaxed) != decision.fps {
                    tracing::debug!("frame rate cap now {} fps", decision.fps);
                    pacer.set_fps(decision.fps);
                }
            }
        }
        match pacer.step(Instant::now(), keyframe_wanted) {
            Step::Wait(timeout) => {
                let now = Instant::now();
                let mut timeout = timeout;
                if !pacer.dirty() {
                    let kbps = control.bitrate_kbps.load(Ordering::Relaxed);
                    if let Some(at) = coder.next_refine(kbps) {
                        if at <= now {
                            if let Some((data, _)) = coder.still_picture(now, kbps, false) {
                                stats.frames_refined.fetch_add(1, Ordering::Relaxed);
                                out.send(&mut coder, &mut pacer, now, data, true);
                                continue;
                            }
                        } else {
                            timeout = timeout.min(at - now);
                        }
                    }
                }
                // Keyframe requests and stops raise `control.wake`; without it (no socket
                // pair) the wait is cut into slices so they are still noticed.
                let damaged = match &control.wake {
                    Some(wake) => {
                        let damaged = capturer.wait_for_damage_or(timeout, wake.fd())?;
                        wake.clear();
                        damaged
                    }
                    None => capturer.wait_for_damage(timeout.min(POLL_SLICE))?,
                };
                if damaged {
                    pacer.damaged();
                }
            }
            Step::Produce => {
                let now = Instant::now();
                let kbps = control.bitrate_kbps.load(Ordering::Relaxed);
                if !pacer.dirty() && !keyframe_wanted {
                    if let Some((data, kind)) = coder.still_picture(now, kbps, true) {
                        let counter = match kind {
                            Still::KeepAlive => &stats.frames_repeated,
                            Still::Refined => &stats.frames_refined,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        out.send(&mut coder, &mut pacer, now, data, kind == Still::KeepAlive);
                        continue;
                    }
                }
                let mut converted = false;
                if pacer.dirty() && !keyframe_wanted {
                    match coder.hand_change(&mut capturer, now)? {
                        HandOutcome::Sent(data) => {
                            stats.frames_captured.fetch_add(1, Ordering::Relaxed);
                            stats.frames_hand.fetch_add(1, Ordering::Relaxed);
                            out.send(&mut coder, &mut pacer, now, data, false);
                            continue;
                        }
                        HandOutcome::Converted => converted = true,
                        HandOutcome::NotTaken => {}
                    }
                }
                let mut damage = None;
                if converted {
                    damage = capturer.grabbed_damage();
                } else if pacer.dirty() {
                    // Converted straight out of the shared memory segment: no copy.
                    let pixels = capturer.capture_pixels()?;
                    stats.frames_captured.fetch_add(1, Ordering::Relaxed);
                    if (pixels.width, pixels.height) != coder.converter.source_size() {
                        // The screen was resized: new sizes, a new encoder (its first frame
                        // is an IDR with the new parameter sets, which browsers follow).
                        coder = Coder::new(pixels.width, pixels.height, &cfg, bitrate, codec)?;
                        coder.publish_size(&stats);
                        tracing::info!(
                            "screen now {}x{}, encoding {}x{}",
                            pixels.width,
                            pixels.height,
                            coder.out_w,
                            coder.out_h
                        );
                    }
                    coder.converter.convert(pixels.data, pixels.stride)?;
                    damage = capturer.grabbed_damage();
                }
                // Otherwise a keep-alive or keyframe on a still screen: the converter's last
                // picture is current.
                if kbps != bitrate {
                    tracing::debug!("encoder target {bitrate} -> {kbps} kbit/s");
                    coder.encoder.set_bitrate(kbps);
                    bitrate = kbps;
                }
                stats.bitrate_kbps.store(bitrate, Ordering::Relaxed);
                let per_codec = &stats.codecs[codec.index()];
                per_codec.bitrate_kbps.store(bitrate, Ordering::Relaxed);
                if keyframe_wanted {
                    coder.encoder.request_idr();
                    keyframe_wanted = false;
                }
                let timestamp = now.duration_since(clock_origin);
                let t = Instant::now();
                let encoded = coder.encode(now, timestamp, damage)?;
                let took = t.elapsed();
                for micros in [&stats.encode_micros, &per_codec.encode_micros] {
                    micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
                }
                stats.observe_encode(took.as_secs_f64());
                pacer.produced(now);
                let Some(encoded) = encoded else {
                    // Rate control skipped it: try again next interval so the screen's last
                    // state always reaches the viewers.
                    stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
                    pacer.damaged();
                    continue;
                };
                let (data, understood) = coder.after_encode(now, &encoded, damage);
                if !understood {
                    // Hand-made pictures stop until an IDR restarts the renumbering.
                    keyframe_wanted = true;
                }
                stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
                per_codec.frames_encoded.fetch_add(1, Ordering::Relaxed);
                if encoded.keyframe {
                    stats.keyframes.fetch_add(1, Ordering::Relaxed);
                    per_codec.keyframes.fetch_add(1, Ordering::Relaxed);
                }
                coder.planner.sent(now, data.len() as u64);
                out.publish(&coder, timestamp, data, encoded.keyframe, false);
            }
        }
    }
    tracing::info!("video pipeline stopped after {} frames", out.seq);
    Ok(())
}

/// Where the pipeline's pictures go: the broadcast ring, with the stats.
struct Output {
    tx: broadcast::Sender<Arc<VideoFrame>>,
    stats: Arc<PipelineStats>,
    seq: u64,
    clock_origin: Instant,
}

impl Output {
    /// Sends a picture made without the encoder (hand-made or keep-alive) at `now`.
    fn send(
        &mut self,
        coder: &mut Coder,
        pacer: &mut Pacer,
        now: Instant,
        data: Vec<u8>,
        repeat: bool,
    ) {
        pacer.produced(now);
        coder.planner.sent(now, data.len() as u64);
        let timestamp = now.duration_since(self.clock_origin);
        self.publish(coder, timestamp, data, false, repeat);
    }

    /// Puts one access unit in the ring (no receivers between viewers is fine: the frame is
    /// simply not needed).
    fn publish(
        &mut self,
        coder: &Coder,
        timestamp: std::time::Duration,
        data: Vec<u8>,
        keyframe: bool,
        repeat: bool,
    ) {
        let codec = coder.encoder.codec();
        for bytes in [
            &self.stats.bytes_encoded,
            &self.stats.codecs[codec.index()].bytes_encoded,
        ] {
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        self.stats
            .refine_pending
            .store(coder.planner.pending(), Ordering::Relaxed);
        self.seq += 1;
        let _ = self.tx.send(Arc::new(VideoFrame {
            encoded: EncodedFrame {
                data: data.into(),
                keyframe,
                width: coder.out_w,
                height: coder.out_h,
                codec,
            },
            timestamp,
            seq: self.seq,
            repeat,
        }));
    }
}
