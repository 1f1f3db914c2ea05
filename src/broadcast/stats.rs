//! Counters of the shared pipeline, read by `/api/stats` and the benchmarks.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use crate::video::Codec;

/// Mean milliseconds per frame from a total in microseconds.
fn mean_ms(micros: u64, frames: u64) -> f64 {
    if frames == 0 {
        0.0
    } else {
        micros as f64 / frames as f64 / 1000.0
    }
}

/// One codec's share of the counters.
#[derive(Debug, Default)]
pub struct CodecCounters {
    /// Pipelines of this codec running now (0 or 1).
    pub encoders: AtomicUsize,
    /// Frames this codec's encoder produced.
    pub frames_encoded: AtomicU64,
    /// Of those, keyframes.
    pub keyframes: AtomicU64,
    /// Bytes produced.
    pub bytes_encoded: AtomicU64,
    /// Encode time in microseconds.
    pub encode_micros: AtomicU64,
    /// Current target bitrate in kbit/s.
    pub bitrate_kbps: AtomicU32,
}

/// Live counters, updated by the pipeline threads without locks. The totals count every
/// codec's pipeline; [`PipelineStats::codecs`] splits the main ones by codec.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Pipelines running now (0 to one per codec).
    pub encoders: AtomicUsize,
    /// Per codec, indexed by [`crate::video::Codec::index`].
    pub codecs: [CodecCounters; 2],
    /// Screen grabs made.
    pub frames_captured: AtomicU64,
    /// Frames the encoder produced.
    pub frames_encoded: AtomicU64,
    /// Of those, keyframes (IDR).
    pub keyframes: AtomicU64,
    /// Keyframe requests received from viewers (PLI/FIR, joins, resyncs).
    pub keyframe_requests: AtomicU64,
    /// Frames the encoder's rate control skipped.
    pub frames_skipped: AtomicU64,
    /// Keep-alive skip pictures sent on a still screen instead of encodes (not in
    /// `frames_encoded`).
    pub frames_repeated: AtomicU64,
    /// Frames lost by viewers that fell behind (summed over viewers).
    pub frames_dropped: AtomicU64,
    /// Small changes sent as hand-made pictures (lossless macroblocks, no encode).
    pub frames_hand: AtomicU64,
    /// Refinement pictures sent on a still screen (lossy areas made lossless).
    pub frames_refined: AtomicU64,
    /// Macroblocks coded lossy and not refined yet.
    pub refine_pending: AtomicU32,
    /// Bytes of video produced.
    pub bytes_encoded: AtomicU64,
    /// Total encode time in microseconds (with `frames_encoded`, the mean).
    pub encode_micros: AtomicU64,
    /// Width of the encoded stream.
    pub width: AtomicU32,
    /// Height of the encoded stream.
    pub height: AtomicU32,
    /// Encode-time histogram: counts per bucket of [`ENCODE_BUCKETS`] (and one for the rest).
    pub encode_histogram: [AtomicU64; ENCODE_BUCKETS.len() + 1],
    /// Current target bitrate in kbit/s (of the pipeline that set it last; see `codecs`).
    pub bitrate_kbps: AtomicU32,
    /// Current frame-rate cap (lowered by adaptive bitrate under pressure).
    pub fps_target: AtomicU32,
}

/// Upper bounds, in seconds, of the encode-time histogram buckets.
pub const ENCODE_BUCKETS: [f64; 8] = [0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1];

impl PipelineStats {
    /// Records one encode that took `seconds`.
    pub fn observe_encode(&self, seconds: f64) {
        let i = ENCODE_BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(ENCODE_BUCKETS.len());
        self.encode_histogram[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (Prometheus style), the last one being `+Inf`.
    pub fn encode_cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.encode_histogram
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect()
    }
}

/// One codec's counters at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct CodecSnapshot {
    /// `h264` or `vp8`.
    pub codec: Codec,
    /// Pipelines of this codec running now (0 or 1).
    pub encoders: usize,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Keyframes encoded.
    pub keyframes: u64,
    /// Bytes produced.
    pub bytes_encoded: u64,
    /// Mean encode time per frame in milliseconds.
    pub encode_ms_mean: f64,
    /// Current target bitrate, kbit/s.
    pub bitrate_kbps: u32,
}

/// A copy of [`PipelineStats`] at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// Pipelines running now (all codecs).
    pub encoders: usize,
    /// The same per codec, every codec listed.
    pub codecs: Vec<CodecSnapshot>,
    /// Screen grabs made.
    pub frames_captured: u64,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Keyframes encoded.
    pub keyframes: u64,
    /// Keyframe requests received.
    pub keyframe_requests: u64,
    /// Frames skipped by rate control.
    pub frames_skipped: u64,
    /// Keep-alive skip pictures sent instead of encodes.
    pub frames_repeated: u64,
    /// Frames lost by slow viewers.
    pub frames_dropped: u64,
    /// Small changes sent as hand-made pictures.
    pub frames_hand: u64,
    /// Refinement pictures sent on a still screen.
    pub frames_refined: u64,
    /// Macroblocks waiting for refinement.
    pub refine_pending: u32,
    /// Bytes of video produced.
    pub bytes_encoded: u64,
    /// Mean encode time per frame in milliseconds.
    pub encode_ms_mean: f64,
    /// Encoded width.
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// Current encoder target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Current frame-rate cap.
    pub fps_target: u32,
}

impl PipelineStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let frames_encoded = self.frames_encoded.load(Ordering::Relaxed);
        let micros = self.encode_micros.load(Ordering::Relaxed);
        StatsSnapshot {
            encoders: self.encoders.load(Ordering::Relaxed),
            codecs: Codec::ALL
                .iter()
                .map(|&codec| {
                    let c = &self.codecs[codec.index()];
                    let frames = c.frames_encoded.load(Ordering::Relaxed);
                    CodecSnapshot {
                        codec,
                        encoders: c.encoders.load(Ordering::Relaxed),
                        frames_encoded: frames,
                        keyframes: c.keyframes.load(Ordering::Relaxed),
                        bytes_encoded: c.bytes_encoded.load(Ordering::Relaxed),
                        encode_ms_mean: mean_ms(c.encode_micros.load(Ordering::Relaxed), frames),
                        bitrate_kbps: c.bitrate_kbps.load(Ordering::Relaxed),
                    }
                })
                .collect(),
            frames_captured: self.frames_captured.load(Ordering::Relaxed),
            frames_encoded,
            keyframes: self.keyframes.load(Ordering::Relaxed),
            keyframe_requests: self.keyframe_requests.load(Ordering::Relaxed),
            frames_skipped: self.frames_skipped.load(Ordering::Relaxed),
            frames_repeated: self.frames_repeated.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            frames_hand: self.frames_hand.load(Ordering::Relaxed),
            frames_refined: self.frames_refined.load(Ordering::Relaxed),
            refine_pending: self.refine_pending.load(Ordering::Relaxed),
            bytes_encoded: self.bytes_encoded.load(Ordering::Relaxed),
            encode_ms_mean: mean_ms(micros, frames_encoded),
            width: self.width.load(Ordering::Relaxed),
            height: self.height.load(Ordering::Relaxed),
            bitrate_kbps: self.bitrate_kbps.load(Ordering::Relaxed),
            fps_target: self.fps_target.load(Ordering::Relaxed),
        }
    }
}
