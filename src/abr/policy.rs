//! The adaptive-bitrate policy: every viewer's bandwidth estimate in, one encoder target out.
//!
//! Pure (no I/O, no clock: the caller passes `now`), so every rule below is unit-tested.
//!
//! * **Binding estimate.** The lowest estimate among the viewers that are not far below the
//!   rest. A viewer whose estimate is under [`OUTLIER_RATIO`] of the median is left out: it is
//!   served by dropping frames for it alone (see [`super::shaper`]), not by lowering everyone's
//!   picture. One viewer alone is never left out.
//! * **Rate.** [`HEADROOM`] of the binding estimate (room for audio, RTP headers and encoder
//!   overshoot), clamped to `--bitrate` at the top.
//! * **Fast decrease, slow increase.** A rate more than [`DEAD_BAND`] below the current target
//!   is applied at once. An increase waits [`HOLD_AFTER_DECREASE`] after the last decrease,
//!   needs the rate to have stayed above the target by [`INCREASE_MARGIN`] for the whole of the
//!   last [`INCREASE_WINDOW`], and then climbs by at most [`INCREASE_STEP`] per
//!   [`INCREASE_INTERVAL`]. Between the two thresholds the target holds, and a noisy estimate
//!   settles near its low end instead of flapping.
//! * **Frame rate before quality.** `--min-bitrate` is the lowest rate at the full frame rate.
//!   Below it the frame rate falls in proportion (never under [`MIN_FPS`]) and the rate with
//!   it, so every frame keeps the bits it had at `--min-bitrate`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Share of the binding estimate the encoder may use.
pub const HEADROOM: f64 = 0.85;
/// A viewer below this share of the median estimate is served alone (frame dropping).
pub const OUTLIER_RATIO: f64 = 0.5;
/// Decreases smaller than this share of the target are ignored.
pub const DEAD_BAND: f64 = 0.05;
/// An increase needs the wanted rate to exceed the target by this share.
pub const INCREASE_MARGIN: f64 = 0.10;
/// No increase for this long after a decrease.
pub const HOLD_AFTER_DECREASE: Duration = Duration::from_secs(4);
/// An increase needs the wanted rate to stay high for this long.
pub const INCREASE_WINDOW: Duration = Duration::from_secs(2);
/// At most one increase step per this interval.
pub const INCREASE_INTERVAL: Duration = Duration::from_secs(1);
/// Largest factor one increase step may apply.
pub const INCREASE_STEP: f64 = 1.15;
/// Lowest frame rate the policy asks for.
pub const MIN_FPS: u32 = 5;

/// Limits the policy works within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `--min-bitrate`: lowest target at the full frame rate, kbit/s.
    pub min_kbps: u32,
    /// `--bitrate`: highest target, kbit/s.
    pub max_kbps: u32,
    /// `--framerate`: the full frame rate.
    pub max_fps: u32,
}

impl PolicyConfig {
    /// The lowest rate the policy sets: `min_kbps` scaled down to [`MIN_FPS`].
    pub fn floor_kbps(&self) -> u32 {
        let max_fps = self.max_fps.max(1);
        let min = self.min_kbps.min(self.max_kbps);
        if max_fps <= MIN_FPS {
            return min.max(1);
        }
        ((u64::from(min) * u64::from(MIN_FPS)).div_ceil(u64::from(max_fps)) as u32).max(1)
    }
}

/// What the encoder should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Encoder target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Frame rate cap.
    pub fps: u32,
}

/// The policy's state: the current target and when it last moved.
#[derive(Debug, Clone)]
pub struct Policy {
    cfg: PolicyConfig,
    rate_kbps: u32,
    last_decrease: Option<Instant>,
    last_increase: Option<Instant>,
    /// Wanted rates of the last [`INCREASE_WINDOW`], oldest first.
    recent: VecDeque<(Instant, f64)>,
    /// Since when `recent` has been collecting (reset by a decrease).
    observing_since: Option<Instant>,
}

/// Bound on the samples kept for the increase window (the pipeline updates 5 times a second).
const MAX_SAMPLES: usize = 256;

impl Policy {
    /// A policy starting at the full rate and frame rate.
    pub fn new(cfg: PolicyConfig) -> Self {
        Policy {
            cfg,
            rate_kbps: cfg.max_kbps.max(cfg.floor_kbps()),
            last_decrease: None,
            last_increase: None,
            recent: VecDeque::new(),
            observing_since: None,
        }
    }

    /// The current decision, without new input.
    pub fn decision(&self) -> Decision {
        let cfg = &self.cfg;
        let min = cfg.min_kbps.min(cfg.max_kbps);
        let fps = if self.rate_kbps >= min || min == 0 {
            cfg.max_fps
        } else {
            let scaled = (u64::from(cfg.max_fps) * u64::from(self.rate_kbps))
                .div_ceil(u64::from(min)) as u32;
            scaled.clamp(MIN_FPS.min(cfg.max_fps), cfg.max_fps)
        };
        Decision {
            bitrate_kbps: self.rate_kbps,
            fps: fps.max(1),
        }
    }

    /// Takes the viewers' current estimates (kbit/s; viewers without one left out) at `now`
    /// and returns what the encoder should do. With no estimates the target holds.
    pub fn update(&mut self, now: Instant, estimates: &[u32]) -> Decision {
        let Some(binding) = binding_estimate(estimates) else {
            return self.decision();
        };
        let wanted = (f64::from(binding) * HEADROOM).clamp(
            f64::from(self.cfg.floor_kbps()),
            f64::from(self.cfg.max_kbps),
        );
        let current = f64::from(self.rate_kbps);
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let observing_since = *self.observing_since.get_or_insert(now);
        if wanted < current * (1.0 - DEAD_BAND) {
            self.rate_kbps = wanted.round() as u32;
            self.last_decrease = Some(now);
            self.recent.clear();
            self.observing_since = Some(now);
            return self.decision();
        }
        self.recent.push_back((now, wanted));
        while self.recent.len() > MAX_SAMPLES
            || self
                .recent
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > INCREASE_WINDOW)
        {
            self.recent.pop_front();
        }
        let sustained = self
            .recent
            .iter()
            .map(|(_, w)| *w)
            .fold(f64::INFINITY, f64::min);
        let max = f64::from(self.cfg.max_kbps);
        let higher =
            sustained > current * (1.0 + INCREASE_MARGIN) || (sustained >= max && current < max);
        if higher
            && now.saturating_duration_since(observing_since) >= INCREASE_WINDOW
            && since(self.last_decrease).is_none_or(|d| d >= HOLD_AFTER_DECREASE)
            && since(self.last_increase).is_none_or(|d| d >= INCREASE_INTERVAL)
        {
            let step = (current * INCREASE_STEP).max(current + 1.0);
            self.rate_kbps = sustained.min(step).floor() as u32;
            self.last_increase = Some(now);
        }
        self.decision()
    }
}

/// The estimate the shared encoder must fit: the lowest one among viewers that are not far
/// below the median (a lone viewer always counts). `None` without estimates.
pub fn binding_estimate(estimates: &[u32]) -> Option<u32> {
    let mut sorted = estimates.to_vec();
    sorted.sort_unstable();
    let median = f64::from(*sorted.get(sorted.len() / 2)?);
    sorted
        .into_iter()
        .find(|e| f64::from(*e) >= median * OUTLIER_RATIO)
}

/// Whether `estimate` is far enough below the others' that its viewer is served alone.
pub fn is_outlier(estimate: u32, estimates: &[u32]) -> bool {
    binding_estimate(estimates).is_some_and(|b| estimate < b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: PolicyConfig = PolicyConfig {
        min_kbps: 300,
        max_kbps: 4000,
        max_fps: 30,
    };

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn starts_at_full_rate_and_holds_without_estimates() {
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        let full = Decision {
            bitrate_kbps: 4000,
            fps: 30,
        };
        assert_eq!(p.decision(), full);
        assert_eq!(p.update(at(t0, 100), &[]), full);
        p.update(at(t0, 200), &[1000]);
        let low = p.decision();
        assert_eq!(p.update(at(t0, 60_000), &[]), low, "no viewers: no change");
    }

    #[test]
    fn decrease_is_immediate() {
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        let d = p.update(t0, &[1000]);
        assert_eq!(d.bitrate_kbps, 850, "85 % of the estimate at once");
        assert_eq!(d.fps, 30);
        let d = p.update(at(t0, 200), &[600]);
        assert_eq!(d.bitrate_kbps, 510, "a second drop right after the first");
    }

    #[test]
    fn increase_waits_then_climbs_slowly_to_the_cap() {
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        p.update(t0, &[1000]);
        // The link is back at once, but the target holds for the hold time.
        for ms in (200..4000).step_by(200) {
            assert_eq!(
                p.update(at(t0, ms), &[10_000]).bitrate_kbps,
                850,
                "at {ms} ms"
            );
        }
        let mut last = 850;
        let mut last_change = None;
        let mut reached = None;
        for ms in (4000..30_000).step_by(100) {
            let now = at(t0, ms);
            let rate = p.update(now, &[10_000]).bitrate_kbps;
            if rate != last {
                assert!(
                    f64::from(rate) <= f64::from(last) * INCREASE_STEP + 0.5,
                    "step {last} -> {rate} too large"
                );
                if let Some(prev) = last_change {
                    assert!(now - prev >= INCREASE_INTERVAL, "steps too close");
                }
                last_change = Some(now);
                last = rate;
            }
            if rate == 4000 && reached.is_none() {
                reached = Some(ms);
            }
        }
        let reached = reached.expect("the cap is reached");
        assert!(
            (12_000..20_000).contains(&reached),
            "reached at {reached} ms"
        );
    }

    #[test]
    fn small_changes_do_not_move_the_target() {
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        p.update(t0, &[2000]);
        assert_eq!(p.decision().bitrate_kbps, 1700);
        // ±5 % around 2000 kbit/s for a minute: the target never moves.
        let mut seed = 7u64;
        for i in 0..600u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (seed >> 33) % 200; // 0..200
            let est = 1950 + noise as u32 - 50;
            let d = p.update(at(t0, 5000 + i * 100), &[est]);
            assert_eq!(d.bitrate_kbps, 1700, "moved at step {i} (estimate {est})");
        }
    }

    #[test]
    fn a_noisy_estimate_changes_the_target_rarely() {
        // ±20 % noise around 1500: the target may settle once or twice, never flap.
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        let mut seed = 42u64;
        let mut changes = 0;
        let mut last = p.decision().bitrate_kbps;
        for i in 0..3000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let est = 1200 + ((seed >> 33) % 600) as u32;
            let rate = p.update(at(t0, i * 100), &[est]).bitrate_kbps;
            if rate != last {
                changes += 1;
                last = rate;
            }
        }
        // 300 s of noise: at most one change per hold period, and in practice far fewer.
        assert!(changes <= 20, "{changes} changes in 300 s");
        assert!((1020..=1530).contains(&last), "settled at {last}");
    }

    #[test]
    fn targets_stay_within_limits() {
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        let mut seed = 1u64;
        for i in 0..5000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 60) as usize % 4;
            let ests: Vec<u32> = (0..n)
                .map(|k| ((seed >> (k * 13)) % 20_000) as u32)
                .collect();
            let d = p.update(at(t0, i * 50), &ests);
            assert!(d.bitrate_kbps >= CFG.floor_kbps() && d.bitrate_kbps <= 4000);
            assert!((MIN_FPS..=30).contains(&d.fps), "{d:?}");
        }
        let d = Policy::new(CFG).update(t0, &[u32::MAX]);
        assert_eq!(d.bitrate_kbps, 4000);
        let d = Policy::new(CFG).update(t0, &[0]);
        assert_eq!(d.bitrate_kbps, CFG.floor_kbps());
        assert_eq!(d.fps, MIN_FPS);
    }

    #[test]
    fn frame_rate_falls_below_the_minimum_rate_and_comes_back() {
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        let d = p.update(t0, &[400]);
        assert_eq!(
            d,
            Decision {
                bitrate_kbps: 340,
                fps: 30
            },
            "above min: full fps"
        );
        let d = p.update(at(t0, 100), &[200]);
        assert_eq!(d.bitrate_kbps, 170);
        assert_eq!(d.fps, 17, "30 fps × 170/300, rounded up");
        let d = p.update(at(t0, 200), &[10]);
        assert_eq!(d.fps, MIN_FPS);
        assert_eq!(d.bitrate_kbps, 50, "min × 5/30");
        let mut last = d;
        for ms in (300..40_000).step_by(100) {
            last = p.update(at(t0, ms), &[5000]);
        }
        assert_eq!(
            last,
            Decision {
                bitrate_kbps: 4000,
                fps: 30
            }
        );
    }

    #[test]
    fn a_viewer_far_below_the_others_does_not_drag_them_down() {
        assert_eq!(binding_estimate(&[300, 4000, 4500]), Some(4000));
        assert_eq!(binding_estimate(&[4500, 300]), Some(4500));
        assert_eq!(binding_estimate(&[300]), Some(300), "alone it counts");
        assert_eq!(binding_estimate(&[2500, 4000]), Some(2500), "not far below");
        assert_eq!(binding_estimate(&[]), None);
        assert!(is_outlier(300, &[300, 4000, 4500]));
        assert!(!is_outlier(4000, &[300, 4000, 4500]));
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        let d = p.update(t0, &[4500, 300, 4200]);
        assert_eq!(d.bitrate_kbps, 3570, "follows the 4200 viewer");
        assert_eq!(d.fps, 30);
    }

    #[test]
    fn a_viewer_in_the_middle_of_the_pack_still_binds() {
        let t0 = Instant::now();
        let mut p = Policy::new(CFG);
        let d = p.update(t0, &[2200, 4000, 3000]);
        assert_eq!(
            d.bitrate_kbps, 1870,
            "2200 is above half the median: it binds"
        );
    }

    #[test]
    fn degenerate_configs_are_safe() {
        let cfg = PolicyConfig {
            min_kbps: 5000,
            max_kbps: 1000,
            max_fps: 3,
        };
        let t0 = Instant::now();
        let mut p = Policy::new(cfg);
        let d = p.update(t0, &[1]);
        assert!(d.bitrate_kbps >= 1 && d.bitrate_kbps <= 1000, "{d:?}");
        assert!(d.fps >= 1 && d.fps <= 3, "{d:?}");
        let d = p.update(at(t0, 60_000), &[100_000]);
        assert!(d.bitrate_kbps <= 1000);
    }
}
