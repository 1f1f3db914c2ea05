//! What to code how, and when to refine: the pure decisions behind hand-made pictures
//! ([`crate::video::compose`]). No clock, no sockets: time and events come in as arguments.
//!
//! * **Route** a change: a small damage (at most [`RefineConfig::hand_max_mbs`] macroblocks)
//!   on a screen that is not in motion goes out as a hand-made picture (I_PCM: lossless,
//!   costs a copy); anything larger, or any change while the encoder has been busy within
//!   [`RefineConfig::motion_hold`], goes to OpenH264.
//! * **Remember** what OpenH264 coded (lossy) and what went out lossless since.
//! * **Refine** ("top-off"): once nothing changed for [`RefineConfig::settle`] (and, after
//!   motion, for [`RefineConfig::motion_hold`]), send the lossy macroblocks again losslessly,
//!   a slice of them per picture, so that no [`RefineConfig::window`] carries more than
//!   [`RefineConfig::burst_factor`] times the current target bitrate (the adaptive bitrate's,
//!   which the caller passes in) and no [`RefineConfig::long_window`] more than the target
//!   itself, counting every picture sent. A new change stops it at once (the settle time
//!   starts again); it resumes when the screen is still.
//!
//! Why both limits and the motion hold: with only the 200 ms burst cap, a scene that changes
//! five times a second (e2e/abr.test's plasma) was refined between every two pictures, so the
//! stream ran at twice the target for as long as the motion lasted; on a 1 Mbit/s link the
//! delay grew, the estimator lowered the target to its floor and the viewer went 6-9 s
//! without a picture. Refining only a still screen, at no more than the target on average,
//! keeps the stream inside what the estimator measured.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::video::compose::PCM_BYTES;
use crate::video::mbmap::MbMap;

/// Tuning of the decisions; [`Default`] is what the pipeline uses.
#[derive(Clone, Debug, PartialEq)]
pub struct RefineConfig {
    /// The largest change (in macroblocks) sent by hand.
    pub hand_max_mbs: u32,
    /// Small changes stay with the encoder this long after its last picture (motion).
    pub motion_hold: Duration,
    /// Refinement starts this long after the last change.
    pub settle: Duration,
    /// The sliding window of the rate limit.
    pub window: Duration,
    /// At most this many times the target bitrate in any window.
    pub burst_factor: u32,
    /// The sliding window of the sustained limit: at most the target bitrate over it.
    pub long_window: Duration,
    /// One refinement picture at most this often.
    pub step: Duration,
}

impl Default for RefineConfig {
    fn default() -> Self {
        RefineConfig {
            // Two full-width text lines at 1080p: ~90 kB, about 0.2 ms of copying.
            hand_max_mbs: 240,
            motion_hold: Duration::from_millis(250),
            settle: Duration::from_millis(100),
            window: Duration::from_millis(200),
            burst_factor: 2,
            long_window: Duration::from_secs(1),
            step: Duration::from_millis(50),
        }
    }
}

/// Who codes a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A hand-made picture (lossless macroblocks, the rest skipped).
    Hand,
    /// OpenH264.
    Library,
}

/// Bytes a hand-made picture costs per macroblock (samples plus a few bits of header).
const BYTES_PER_MB: u64 = PCM_BYTES as u64 + 4;

/// The decision state of one picture size.
#[derive(Debug)]
pub struct Planner {
    cfg: RefineConfig,
    /// Macroblocks last coded lossy by the encoder.
    lossy: MbMap,
    last_library: Option<Instant>,
    /// The encoder's picture before `last_library` (two close together mean motion).
    prev_library: Option<Instant>,
    last_change: Option<Instant>,
    last_refine: Option<Instant>,
    /// Bytes sent, with when, over the last window.
    sent: VecDeque<(Instant, u64)>,
}

impl Planner {
    /// A planner for pictures of `width` x `height`; nothing is lossy yet.
    pub fn new(cfg: RefineConfig, width: u32, height: u32) -> Self {
        Planner {
            cfg,
            lossy: MbMap::new(width, height),
            last_library: None,
            prev_library: None,
            last_change: None,
            last_refine: None,
            sent: VecDeque::new(),
        }
    }

    /// Who should code a change of `damaged_mbs` macroblocks at `now`; `hand_possible` says
    /// whether a hand-made picture can be written at all right now.
    pub fn route(&self, now: Instant, damaged_mbs: u32, hand_possible: bool) -> Route {
        let moving = self
            .last_library
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.motion_hold);
        if hand_possible && damaged_mbs <= self.cfg.hand_max_mbs && !moving {
            Route::Hand
        } else {
            Route::Library
        }
    }

    /// Whether `mbs` macroblocks are few enough to send by hand (as a change, or carried along
    /// with a refinement picture).
    pub fn fits_by_hand(&self, mbs: u32) -> bool {
        mbs <= self.cfg.hand_max_mbs
    }

    /// The encoder coded a picture at `now` in which `mbs` changed (coded lossy).
    pub fn coded_by_library(&mut self, now: Instant, mbs: &MbMap) {
        self.lossy.union(mbs);
        self.prev_library = self.last_library;
        self.last_library = Some(now);
        self.last_change = Some(now);
    }

    /// A hand-made picture sent `mbs` losslessly at `now` because they changed.
    pub fn coded_by_hand(&mut self, now: Instant, mbs: &MbMap) {
        self.lossy.subtract(mbs);
        self.last_change = Some(now);
    }

    /// A refinement picture sent `mbs` losslessly at `now` (nothing changed on screen).
    pub fn refined(&mut self, now: Instant, mbs: &MbMap) {
        self.lossy.subtract(mbs);
        self.last_refine = Some(now);
    }

    /// `bytes` of video went out at `now` (every picture, to keep the rate limit honest).
    pub fn sent(&mut self, now: Instant, bytes: u64) {
        self.sent.push_back((now, bytes));
        self.forget(now);
    }

    /// How many macroblocks are waiting for refinement.
    pub fn pending(&self) -> u32 {
        self.lossy.count()
    }

    /// When the next refinement picture is due (`None`: nothing to refine).
    pub fn next_refine(&self, kbps: u32) -> Option<Instant> {
        if self.lossy.is_empty() {
            return None;
        }
        let mut at = self.still_from()?;
        if let Some(last) = self.last_refine {
            at = at.max(last + self.cfg.step);
        }
        // When both windows have room for at least one macroblock again.
        at = self.room_from(at, self.cfg.window, self.burst_allowance(kbps));
        at = self.room_from(at, self.cfg.long_window, self.sustained_allowance(kbps));
        Some(at)
    }

    /// When the screen counts as still: `settle` after the last change, and after motion (the
    /// encoder's last two pictures within `motion_hold`) `motion_hold` after the last picture.
    fn still_from(&self) -> Option<Instant> {
        let mut at = self.last_change? + self.cfg.settle;
        if let (Some(last), Some(prev)) = (self.last_library, self.prev_library) {
            if last.saturating_duration_since(prev) < self.cfg.motion_hold {
                at = at.max(last + self.cfg.motion_hold);
            }
        }
        Some(at)
    }

    /// The earliest time, not before `from`, at which the bytes sent within the `window`
    /// before it leave room for one macroblock under `allowance` (entries age out in order).
    fn room_from(&self, from: Instant, window: Duration, allowance: u64) -> Instant {
        let live = || self.sent.iter().filter(|(t, _)| *t + window > from);
        let mut used: u64 = live().map(|(_, b)| b).sum();
        let mut at = from;
        for (t, b) in live() {
            if used + BYTES_PER_MB <= allowance {
                break;
            }
            used -= b;
            at = at.max(*t + window);
        }
        at
    }

    /// The macroblocks to refine with one picture at `now` under a target of `kbps`, or
    /// `None` if nothing is due. Call [`refined`](Self::refined) once the picture went out.
    pub fn refine(&mut self, now: Instant, kbps: u32) -> Option<MbMap> {
        if self.next_refine(kbps).is_none_or(|at| now < at) {
            return None;
        }
        self.forget(now);
        let burst = self.burst_allowance(kbps);
        let sustained = self.sustained_allowance(kbps);
        let used_burst = self.used_since(now, self.cfg.window);
        let used_sustained = self.used_since(now, self.cfg.long_window);
        // Spread: one picture takes at most the share of a window that one step has.
        let steps = (self.cfg.window.as_micros() / self.cfg.step.as_micros().max(1)).max(1);
        let share = burst / steps as u64;
        let room = burst
            .saturating_sub(used_burst)
            .min(sustained.saturating_sub(used_sustained))
            .min(share.max(BYTES_PER_MB));
        let n = (room / BYTES_PER_MB) as u32;
        (n > 0).then(|| self.lossy.first(n))
    }

    /// Everything coded by the encoder since the start or an IDR is lossy: mark it all.
    pub fn all_lossy(&mut self, now: Instant) {
        self.lossy.fill();
        self.last_library = Some(now);
        self.last_change = Some(now);
    }

    /// Bytes allowed in one burst window: `burst_factor` times the target.
    fn burst_allowance(&self, kbps: u32) -> u64 {
        bytes_at(kbps, self.cfg.window) * u64::from(self.cfg.burst_factor)
    }

    /// Bytes allowed in one long window: the target itself.
    fn sustained_allowance(&self, kbps: u32) -> u64 {
        bytes_at(kbps, self.cfg.long_window)
    }

    /// Bytes sent within `window` before `now`.
    fn used_since(&self, now: Instant, window: Duration) -> u64 {
        self.sent
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) < window)
            .map(|(_, b)| b)
            .sum()
    }

    fn forget(&mut self, now: Instant) {
        let keep = self.cfg.window.max(self.cfg.long_window);
        while let Some(&(t, _)) = self.sent.front() {
            if now.saturating_duration_since(t) >= keep {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Bytes a rate of `kbps` carries in `window`.
fn bytes_at(kbps: u32, window: Duration) -> u64 {
    u64::from(kbps) * 1000 / 8 * window.as_millis() as u64 / 1000
}

#[cfg(test)]
#[path = "refine_tests.rs"]
mod tests;
