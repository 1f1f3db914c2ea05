//! Adaptive bitrate: what each viewer's link can carry, and how the shared encoder follows.
//!
//! Five parts, four of them pure:
//!
//! * [`LinkStats`]: one viewer's bandwidth estimate (the [`estimator`] over TWCC feedback,
//!   fed by the session's interceptor chain), round-trip time and loss (from RTCP receiver
//!   reports). Lock-free; read by `/api/stats`, `/metrics`, the policy and the viewer's shaper.
//! * [`estimator`]: one viewer's estimate from the fate of each packet (delivered rate,
//!   standing queue, loss).
//! * [`policy`]: turns every viewer's estimate into one encoder target bitrate and frame rate,
//!   with hysteresis (fast decrease, slow increase), ignoring viewers far below the rest.
//! * [`pacing`]: how fast a viewer's pacer sends, from its estimate.
//! * [`shaper`]: per viewer, drops frames (then recovers on a keyframe) when that viewer's link
//!   cannot keep up with the shared stream, so one slow viewer never slows the others.
//!
//! [`Viewers`] is the registry the pipeline reads the estimates from.

pub mod estimator;
pub mod pacing;
pub mod policy;
pub mod shaper;

use crate::lock::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use policy::{Decision, Policy, PolicyConfig};
pub use shaper::{Shaper, Verdict};

/// Adaptive-bitrate settings (`--adaptive-bitrate`, `--min-bitrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveConfig {
    /// Lowest encoder target at the full frame rate, in kbit/s.
    pub min_kbps: u32,
}

impl AdaptiveConfig {
    /// Start, floor and ceiling (bit/s) of each viewer's bandwidth estimator, for an encoder
    /// capped at `max_kbps`: it starts where the encoder can use the full rate and may rise
    /// above the cap (so the cap, not the estimate, binds on a good link). The floor is far
    /// under `--min-bitrate`: under it the policy lowers the frame rate, and the estimator
    /// (see [`estimator`]) keeps probing from wherever it is, so a low floor cannot trap it.
    pub fn estimator_bounds(&self, max_kbps: u32) -> (f64, f64, f64) {
        let start = f64::from(max_kbps) * 1000.0 / policy::HEADROOM;
        let floor = (f64::from(self.min_kbps.min(max_kbps)) * 1000.0 / 4.0).max(ESTIMATE_FLOOR_BPS);
        (start, floor.min(start), 2.0 * start)
    }
}

/// The lowest floor a viewer's bandwidth estimate is given, bit/s.
pub const ESTIMATE_FLOOR_BPS: f64 = 50_000.0;

/// Sentinel for "not measured yet" in the atomics below.
const UNKNOWN: u64 = u64::MAX;

/// One viewer's link as measured: bandwidth estimate, RTT, loss, frames dropped for it.
#[derive(Debug)]
pub struct LinkStats {
    bwe_bps: AtomicU64,
    rtt_us: AtomicU64,
    loss_ppm: AtomicU64,
    frames_dropped: AtomicU64,
    starved: AtomicU64,
}

impl Default for LinkStats {
    fn default() -> Self {
        LinkStats {
            bwe_bps: AtomicU64::new(UNKNOWN),
            rtt_us: AtomicU64::new(UNKNOWN),
            loss_ppm: AtomicU64::new(UNKNOWN),
            frames_dropped: AtomicU64::new(0),
            starved: AtomicU64::new(0),
        }
    }
}

fn known(v: u64) -> Option<u64> {
    (v != UNKNOWN).then_some(v)
}

impl LinkStats {
    /// Records the congestion controller's current estimate in bit/s.
    pub fn set_bwe_bps(&self, bps: f64) {
        if bps.is_finite() && bps >= 0.0 {
            self.bwe_bps.store(bps as u64, Ordering::Relaxed);
        }
    }

    /// The bandwidth estimate in kbit/s (`None` without congestion control or before it ran).
    pub fn bwe_kbps(&self) -> Option<u32> {
        known(self.bwe_bps.load(Ordering::Relaxed)).map(|b| (b / 1000).min(u32::MAX as u64) as u32)
    }

    /// Records a round-trip time measured from a receiver report.
    pub fn set_rtt(&self, rtt: Duration) {
        self.rtt_us
            .store((rtt.as_micros() as u64).min(UNKNOWN - 1), Ordering::Relaxed);
    }

    /// The last round-trip time in milliseconds, once one was measured.
    pub fn rtt_ms(&self) -> Option<f64> {
        known(self.rtt_us.load(Ordering::Relaxed)).map(|us| us as f64 / 1000.0)
    }

    /// Records the fraction of packets lost (0..=1) from a receiver report.
    pub fn set_loss(&self, fraction: f64) {
        let ppm = (fraction.clamp(0.0, 1.0) * 1e6).round() as u64;
        self.loss_ppm.store(ppm, Ordering::Relaxed);
    }

    /// The fraction of packets the viewer reported lost (0..=1), once it reported.
    pub fn loss(&self) -> Option<f64> {
        known(self.loss_ppm.load(Ordering::Relaxed)).map(|ppm| ppm as f64 / 1e6)
    }

    /// Counts one frame not sent to this viewer because its link could not carry it.
    pub fn note_dropped(&self) {
        self.frames_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames not sent to this viewer because its link could not carry them.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped.load(Ordering::Relaxed)
    }

    /// Counts one episode in which this viewer fell behind and waited for a keyframe.
    pub fn note_starved(&self) {
        self.starved.fetch_add(1, Ordering::Relaxed);
    }

    /// Episodes in which this viewer fell behind and waited for a keyframe.
    pub fn starved(&self) -> u64 {
        self.starved.load(Ordering::Relaxed)
    }
}

/// The viewers whose estimates steer the shared encoder. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Viewers {
    inner: Arc<Mutex<ViewersInner>>,
}

#[derive(Debug, Default)]
struct ViewersInner {
    next: u64,
    links: BTreeMap<u64, Weak<LinkStats>>,
}

impl Viewers {
    fn lock(&self) -> std::sync::MutexGuard<'_, ViewersInner> {
        lock(&self.inner)
    }

    /// Adds a viewer's link; it counts until the returned guard is dropped.
    pub fn join(&self, link: &Arc<LinkStats>) -> ViewerGuard {
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.links.insert(id, Arc::downgrade(link));
        ViewerGuard {
            viewers: self.clone(),
            id,
        }
    }

    /// The current estimates (kbit/s) of the viewers that have one.
    pub fn estimates(&self) -> Vec<u32> {
        let mut inner = self.lock();
        inner.links.retain(|_, link| link.strong_count() > 0);
        inner
            .links
            .values()
            .filter_map(|link| link.upgrade()?.bwe_kbps())
            .collect()
    }

    /// Number of viewers registered.
    pub fn len(&self) -> usize {
        self.lock().links.len()
    }

    /// Whether no viewer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a viewer in [`Viewers`]; dropping it removes the viewer.
#[derive(Debug)]
pub struct ViewerGuard {
    viewers: Viewers,
    id: u64,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.viewers.lock().links.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_stats_start_unknown_and_round_trip() {
        let link = LinkStats::default();
        assert_eq!(link.bwe_kbps(), None);
        assert_eq!(link.rtt_ms(), None);
        assert_eq!(link.loss(), None);
        link.set_bwe_bps(1_234_567.0);
        link.set_rtt(Duration::from_micros(12_500));
        link.set_loss(0.25);
        assert_eq!(link.bwe_kbps(), Some(1234));
        assert_eq!(link.rtt_ms(), Some(12.5));
        assert_eq!(link.loss(), Some(0.25));
        link.set_loss(7.0);
        assert_eq!(link.loss(), Some(1.0), "loss is clamped to a fraction");
        link.set_bwe_bps(f64::NAN);
        assert_eq!(link.bwe_kbps(), Some(1234), "a NaN estimate is ignored");
    }

    #[test]
    fn viewers_leave_with_their_guard_or_their_link() {
        let viewers = Viewers::default();
        let a = Arc::new(LinkStats::default());
        let b = Arc::new(LinkStats::default());
        a.set_bwe_bps(2_000_000.0);
        b.set_bwe_bps(500_000.0);
        let ga = viewers.join(&a);
        let _gb = viewers.join(&b);
        let unknown = Arc::new(LinkStats::default());
        let _gu = viewers.join(&unknown);
        let mut est = viewers.estimates();
        est.sort_unstable();
        assert_eq!(
            est,
            vec![500, 2000],
            "viewers without an estimate do not count"
        );
        drop(ga);
        assert_eq!(viewers.estimates(), vec![500]);
        drop(b);
        assert!(viewers.estimates().is_empty());
        assert_eq!(viewers.len(), 1, "only the unknown one is left");
    }
}
