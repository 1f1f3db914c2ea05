//! The pipeline thread: capture → convert/scale → encode → broadcast, paced by [`Pacer`].
//!
//! Runs on its own OS thread because every stage blocks (X11 round trips, SIMD conversion,
//! OpenH264). It sleeps in `wait_for_damage_or` while the screen is still, until damage, the
//! next keep-alive, or a keyframe request or stop raised on [`Control`]'s wake-up socket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast;

use super::pacer::{Pacer, Step};
use super::VideoConfig;
use super::{Control, PipelineStats, VideoFrame};
use crate::abr::{Policy, PolicyConfig, Viewers};
use crate::capture::{CaptureError, Capturer};
use crate::on_demand::StopSwitch as _;
use crate::video::skip::SkipFrames;
use crate::video::{self, Converter, EncodedFrame, EncoderSettings, H264Encoder, VideoError};

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
    } = job;
    let mut capturer = Capturer::open(Some(&display_name), cfg.capture)?;
    let mut bitrate = control.bitrate_kbps.load(Ordering::Relaxed);
    let (src_w, src_h) = capturer.size();
    let mut coder = Coder::new(src_w, src_h, &cfg, bitrate)?;
    coder.publish_size(&stats);
    tracing::info!(
        "capturing {} at {src_w}x{src_h} via {:?}, encoding {}x{} at up to {} fps, {bitrate} kbit/s",
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
    let mut seq = 0u64;
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
                if !pacer.dirty() && !keyframe_wanted {
                    if let Ok(data) = coder.skips.picture() {
                        pacer.produced(now);
                        stats.frames_repeated.fetch_add(1, Ordering::Relaxed);
                        stats
                            .bytes_encoded
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        seq += 1;
                        let _ = tx.send(Arc::new(VideoFrame {
                            encoded: EncodedFrame {
                                data: data.into(),
                                keyframe: false,
                                width: coder.out_w,
                                height: coder.out_h,
                            },
                            timestamp: now.duration_since(clock_origin),
                            seq,
                            repeat: true,
                        }));
                        continue;
                    }
                }
                let i420 = if pacer.dirty() {
                    // Converted straight out of the shared memory segment: no copy.
                    let pixels = capturer.capture_pixels()?;
                    stats.frames_captured.fetch_add(1, Ordering::Relaxed);
                    if (pixels.width, pixels.height) != coder.converter.source_size() {
                        // The screen was resized: new sizes, a new encoder (its first frame
                        // is an IDR with the new parameter sets, which browsers follow).
                        coder = Coder::new(pixels.width, pixels.height, &cfg, bitrate)?;
                        coder.publish_size(&stats);
                        tracing::info!(
                            "screen now {}x{}, encoding {}x{}",
                            pixels.width,
                            pixels.height,
                            coder.out_w,
                            coder.out_h
                        );
                    }
                    coder.converter.convert(pixels.data, pixels.stride)?
                } else {
                    // Keep-alive or keyframe on a still screen: the last picture is current.
                    coder.converter.last()
                };
                let wanted = control.bitrate_kbps.load(Ordering::Relaxed);
                if wanted != bitrate {
                    tracing::debug!("encoder target {bitrate} -> {wanted} kbit/s");
                    coder.encoder.set_bitrate(wanted);
                    bitrate = wanted;
                }
                stats.bitrate_kbps.store(bitrate, Ordering::Relaxed);
                if keyframe_wanted {
                    coder.encoder.request_idr();
                    keyframe_wanted = false;
                }
                let timestamp = now.duration_since(clock_origin);
                let t = Instant::now();
                let encoded = coder.encoder.encode(i420, timestamp)?;
                let took = t.elapsed();
                stats
                    .encode_micros
                    .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
                stats.observe_encode(took.as_secs_f64());
                pacer.produced(now);
                let Some(encoded) = encoded else {
                    // Rate control skipped it: try again next interval so the screen's last
                    // state always reaches the viewers.
                    stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
                    pacer.damaged();
                    continue;
                };
                coder.skips.observe(&encoded.data);
                stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
                stats
                    .bytes_encoded
                    .fetch_add(encoded.data.len() as u64, Ordering::Relaxed);
                if encoded.keyframe {
                    stats.keyframes.fetch_add(1, Ordering::Relaxed);
                }
                seq += 1;
                // No receivers (between viewers) is fine: the frame is simply not needed.
                let _ = tx.send(Arc::new(VideoFrame {
                    encoded,
                    timestamp,
                    seq,
                    repeat: false,
                }));
            }
        }
    }
    tracing::info!("video pipeline stopped after {seq} frames");
    Ok(())
}

/// The stages that depend on the screen size: conversion (and scaling), the encoder, and
/// the keep-alive pictures that repeat its output. Made anew when the screen is resized.
struct Coder {
    converter: Converter,
    encoder: H264Encoder,
    /// Keep-alives on a still screen repeat the last picture without running OpenH264.
    skips: SkipFrames,
    out_w: u32,
    out_h: u32,
}

impl Coder {
    fn new(
        src_w: u32,
        src_h: u32,
        cfg: &VideoConfig,
        bitrate_kbps: u32,
    ) -> Result<Self, VideoError> {
        let (out_w, out_h) = video::output_size(src_w, src_h, cfg.height);
        if (out_w, out_h) != video::requested_size(src_w, src_h, cfg.height) {
            tracing::info!(
                "the screen ({src_w}x{src_h}) is larger than the encoder takes (sides up to {}, \
                 pictures up to 3840x2160 pixels): scaling it down to {out_w}x{out_h}",
                video::MAX_SIDE
            );
        }
        let converter = Converter::new(src_w, src_h, out_w, out_h)?;
        let mut encoder = H264Encoder::new(EncoderSettings {
            width: out_w,
            height: out_h,
            framerate: cfg.framerate as f32,
            bitrate_kbps,
            idr_interval: cfg.idr_interval,
        })?;
        // With adaptive bitrate the policy lowers the frame rate evenly when bits are short;
        // OpenH264's own skipping would instead freeze a changing screen for seconds.
        encoder.set_frame_skip(cfg.adaptive.is_none());
        Ok(Coder {
            converter,
            encoder,
            skips: SkipFrames::new(),
            out_w,
            out_h,
        })
    }

    /// Shows the size this coder encodes at in the pipeline's stats (`/api/stats`).
    fn publish_size(&self, stats: &PipelineStats) {
        stats.width.store(self.out_w, Ordering::Relaxed);
        stats.height.store(self.out_h, Ordering::Relaxed);
    }
}
