//! Counters of the shared pipeline, read by `/api/stats` and the benchmarks.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

/// Live counters, updated by the pipeline thread without locks.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Pipelines running now (0 or 1 per display).
    pub encoders: AtomicUsize,
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
    /// Bytes of H.264 produced.
    pub bytes_encoded: AtomicU64,
    /// Total encode time in microseconds (with `frames_encoded`, the mean).
    pub encode_micros: AtomicU64,
    /// Width of the encoded stream.
    pub width: AtomicU32,
    /// Height of the encoded stream.
    pub height: AtomicU32,
    /// Encode-time histogram: counts per bucket of [`ENCODE_BUCKETS`] (and one for the rest).
    pub encode_histogram: [AtomicU64; ENCODE_BUCKETS.len() + 1],
    /// Current target bitrate in kbit/s.
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

/// A copy of [`PipelineStats`] at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// Pipelines running now.
    pub encoders: usize,
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
    /// Bytes of H.264 produced.
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
            encode_ms_mean: if frames_encoded == 0 {
                0.0
            } else {
                micros as f64 / frames_encoded as f64 / 1000.0
            },
            width: self.width.load(Ordering::Relaxed),
            height: self.height.load(Ordering::Relaxed),
            bitrate_kbps: self.bitrate_kbps.load(Ordering::Relaxed),
            fps_target: self.fps_target.load(Ordering::Relaxed),
        }
    }
}
