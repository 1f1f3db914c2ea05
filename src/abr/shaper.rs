//! Per-viewer frame dropping: serves a viewer whose link is slower than the shared stream.
//!
//! Pure: the caller passes the time, the viewer's bandwidth estimate and each frame's size.
//! The shaper models the viewer's send queue (the pacer in its interceptor chain drains it at
//! the estimate). While the modelled queue holds less than [`MAX_QUEUE`] of data, frames go
//! out. Beyond it the viewer *falls behind*: this and the following frames are skipped (an
//! H.264 P-frame cannot be decoded without the one before it), and once the queue has
//! drained to [`RESUME_QUEUE`] the viewer asks for a keyframe (at most once per
//! [`KEYFRAME_INTERVAL`], since a keyframe costs every viewer) and resumes on it.

use std::time::{Duration, Instant};

/// A frame is skipped when the viewer's queue already holds this much sending time.
pub const MAX_QUEUE: Duration = Duration::from_millis(1000);
/// A viewer that fell behind asks for a keyframe once its queue is down to this.
pub const RESUME_QUEUE: Duration = Duration::from_millis(200);
/// A viewer that fell behind asks for a keyframe at most this often.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
/// RTP, UDP and IP headers on top of the H.264 payload (about 5 %).
pub const OVERHEAD: f64 = 1.05;

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Skip it: the viewer is waiting for a keyframe.
    Skip,
    /// Skip it: the viewer just fell behind; wait for a keyframe from here on.
    FallBehind,
}

/// The modelled send queue of one viewer.
#[derive(Debug, Default, Clone)]
pub struct Shaper {
    backlog_bits: f64,
    last: Option<Instant>,
    rate_bps: f64,
    behind: bool,
    last_request: Option<Instant>,
}

impl Shaper {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn drain(&mut self, now: Instant, rate_bps: Option<f64>) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.backlog_bits = (self.backlog_bits - elapsed * self.rate_bps).max(0.0);
        }
        self.last = Some(now);
        if let Some(rate) = rate_bps.filter(|r| r.is_finite() && *r > 0.0) {
            self.rate_bps = rate;
        }
    }

    fn queue_secs(&self) -> f64 {
        if self.rate_bps > 0.0 {
            self.backlog_bits / self.rate_bps
        } else {
            0.0
        }
    }

    /// The modelled queue, as sending time at the current estimate.
    pub fn queue(&self) -> Duration {
        Duration::from_secs_f64(self.queue_secs().min(3600.0))
    }

    /// Whether the viewer fell behind and waits for a keyframe.
    pub fn behind(&self) -> bool {
        self.behind
    }

    /// Decides about a frame of `bytes` at `now`, given the viewer's estimate in bit/s
    /// (`None`: no estimate, nothing is shaped).
    pub fn offer(
        &mut self,
        now: Instant,
        rate_bps: Option<f64>,
        bytes: usize,
        keyframe: bool,
    ) -> Verdict {
        self.drain(now, rate_bps);
        if self.rate_bps <= 0.0 {
            self.behind = false;
            return Verdict::Send;
        }
        if self.queue_secs() > MAX_QUEUE.as_secs_f64() {
            if self.behind {
                return Verdict::Skip;
            }
            self.behind = true;
            return Verdict::FallBehind;
        }
        if self.behind && !keyframe {
            return Verdict::Skip;
        }
        self.behind = false;
        self.backlog_bits += bytes as f64 * 8.0 * OVERHEAD;
        Verdict::Send
    }

    /// Whether a viewer that fell behind should ask for a keyframe now (its queue drained
    /// and it did not ask within [`KEYFRAME_INTERVAL`]). Counts as asking when `true`.
    pub fn keyframe_due(&mut self, now: Instant, rate_bps: Option<f64>) -> bool {
        self.drain(now, rate_bps);
        let due = self.behind
            && self.queue_secs() <= RESUME_QUEUE.as_secs_f64()
            && self
                .last_request
                .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_INTERVAL);
        if due {
            self.last_request = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// 30 fps of `frame` bytes, keyframe every `gop` frames, for `secs`; returns the verdicts.
    fn run(shaper: &mut Shaper, rate: f64, frame: usize, secs: u64) -> Vec<Verdict> {
        let t0 = Instant::now();
        (0..secs * 30)
            .map(|i| shaper.offer(ms(t0, i * 1000 / 30), Some(rate), frame, i == 0))
            .collect()
    }

    #[test]
    fn a_stream_under_the_estimate_is_never_dropped() {
        let mut s = Shaper::new();
        // 1 Mbit/s estimate, 30 fps × 3 kB ≈ 756 kbit/s with overhead.
        let v = run(&mut s, 1_000_000.0, 3000, 60);
        assert!(v.iter().all(|v| *v == Verdict::Send));
        assert!(s.queue() < Duration::from_millis(50), "{:?}", s.queue());
    }

    #[test]
    fn a_large_keyframe_goes_out_on_an_empty_queue() {
        let t0 = Instant::now();
        let mut s = Shaper::new();
        // 250 kB keyframe at 1 Mbit/s: 2 s of sending, but the queue was empty.
        assert_eq!(s.offer(t0, Some(1e6), 250_000, true), Verdict::Send);
        assert!(s.queue() > Duration::from_secs(2));
    }

    #[test]
    fn a_stream_over_the_estimate_falls_behind_then_recovers_on_a_keyframe() {
        let t0 = Instant::now();
        let mut s = Shaper::new();
        let rate = Some(500_000.0);
        // 30 fps × 4 kB ≈ 1 Mbit/s into a 500 kbit/s link.
        let mut first_drop = None;
        for i in 0..60u64 {
            let v = s.offer(ms(t0, i * 33), rate, 4000, i == 0);
            if v != Verdict::Send {
                assert_eq!(v, Verdict::FallBehind, "the first skip says so");
                first_drop = Some(i);
                break;
            }
        }
        let first = first_drop.expect("it falls behind");
        assert!(
            (25..60).contains(&first),
            "after about 1 s of excess: frame {first}"
        );
        assert!(s.behind());
        // P-frames are skipped and no keyframe is asked for until the queue drains.
        let t = ms(t0, first * 33 + 33);
        assert_eq!(s.offer(t, rate, 4000, false), Verdict::Skip);
        assert!(!s.keyframe_due(t, rate));
        let drained = ms(t0, first * 33 + 1000);
        assert!(
            s.keyframe_due(drained, rate),
            "queue drained: ask for a keyframe"
        );
        assert!(!s.keyframe_due(drained, rate), "only once per interval");
        assert_eq!(s.offer(drained, rate, 4000, false), Verdict::Skip);
        assert_eq!(s.offer(drained, rate, 20_000, true), Verdict::Send);
        assert!(!s.behind());
        assert_eq!(s.offer(drained, rate, 4000, false), Verdict::Send);
        // Asked again only after the interval.
        let later = drained + KEYFRAME_INTERVAL;
        s.behind = true;
        assert!(s.keyframe_due(later + Duration::from_secs(1), rate));
    }

    #[test]
    fn a_keyframe_on_a_full_queue_is_skipped_too() {
        let t0 = Instant::now();
        let mut s = Shaper::new();
        assert_eq!(s.offer(t0, Some(1e6), 200_000, true), Verdict::Send);
        assert_eq!(s.offer(t0, Some(1e6), 10_000, true), Verdict::FallBehind);
        assert_eq!(s.offer(t0, Some(1e6), 10_000, true), Verdict::Skip);
    }

    #[test]
    fn without_an_estimate_nothing_is_shaped() {
        let mut s = Shaper::new();
        let t0 = Instant::now();
        for i in 0..100 {
            assert_eq!(s.offer(ms(t0, i), None, 1_000_000, false), Verdict::Send);
        }
        assert!(!s.keyframe_due(ms(t0, 200), None));
    }

    #[test]
    fn the_estimate_rising_drains_the_queue_faster() {
        let t0 = Instant::now();
        let mut s = Shaper::new();
        s.offer(t0, Some(100_000.0), 100_000, true); // 8.4 s at 100 kbit/s
        assert_eq!(
            s.offer(ms(t0, 500), Some(100_000.0), 1000, false),
            Verdict::FallBehind
        );
        // At 10 Mbit/s the remaining ~7.9 Mbit drain in under a second.
        s.offer(ms(t0, 600), Some(10_000_000.0), 0, false);
        assert!(s.keyframe_due(ms(t0, 1500), Some(10_000_000.0)));
    }
}
