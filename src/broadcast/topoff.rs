//! VP8's answer to the H.264 path's refinement: which macroblocks the next encode may code
//! (an active map from the damage, kept across frames the rate control dropped), and when a
//! whole-picture encode is due to refine what the map left coarse. Free of I/O: time is an
//! argument, so it is tested directly.

use std::time::{Duration, Instant};

use crate::capture::DamageRect;
use crate::video::mbmap::MbMap;

/// How long after the first change-only frame (since the last whole picture) the whole picture
/// is encoded again, refining the areas a map kept out: short enough that text looks sharp
/// soon after typing, long enough that most frames of steady typing are coded with maps (a
/// whole 1080p picture costs about 7 ms of CPU, a mapped glyph about 3).
pub const TOPOFF_AFTER: Duration = Duration::from_millis(300);

/// Change tracking and top-off timing for one VP8 coder.
#[derive(Debug)]
pub struct Vp8Refine {
    /// Macroblocks changed since the last coded frame.
    pending: MbMap,
    /// Whether something changed that no rectangle describes (code everything).
    whole: bool,
    /// When a whole-picture encode is due (after frames coded with a map).
    topoff_at: Option<Instant>,
    /// The wall time and stream timestamp of the last encode.
    last: Option<(Instant, Duration)>,
}

impl Vp8Refine {
    /// Nothing coded yet, for a picture of `width`x`height`.
    pub fn new(width: u32, height: u32) -> Self {
        Vp8Refine {
            pending: MbMap::new(width, height),
            whole: true,
            topoff_at: None,
            last: None,
        }
    }

    /// Notes what the next encode must code: `damage` (screen coordinates of an unscaled
    /// picture), or `None` for "everything" (unknown damage, a scaled picture, a keep-alive).
    pub fn changed(&mut self, damage: Option<DamageRect>) {
        match damage {
            Some(d) => self.pending.add_rect(d),
            None => self.whole = true,
        }
    }

    /// The active map for the next encode: `None` codes the whole picture.
    pub fn map(&self) -> Option<&MbMap> {
        (!self.whole).then_some(&self.pending)
    }

    /// A frame was coded at `now` (stream time `timestamp`), with the map of [`Self::map`] or
    /// without one.
    pub fn coded(&mut self, now: Instant, timestamp: Duration, with_map: bool) {
        self.pending.clear();
        self.whole = false;
        // Not pushed back by later change frames: steady typing still gets a whole picture
        // every TOPOFF_AFTER.
        self.topoff_at = if with_map {
            Some(self.topoff_at.unwrap_or(now + TOPOFF_AFTER))
        } else {
            None
        };
        self.last = Some((now, timestamp));
    }

    /// When the next whole-picture refinement is due, if one is.
    pub fn next_topoff(&self) -> Option<Instant> {
        self.topoff_at
    }

    /// Asks for a whole-picture encode next (the one due now).
    pub fn top_off(&mut self) {
        self.whole = true;
    }

    /// The stream timestamp of a frame made at `now`, continuing the last encode's.
    pub fn timestamp_at(&self, now: Instant) -> Duration {
        match self.last {
            Some((at, ts)) => ts + now.saturating_duration_since(at),
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32) -> DamageRect {
        DamageRect {
            x,
            y,
            width: 8,
            height: 8,
        }
    }

    #[test]
    fn the_first_frame_is_whole_then_changes_are_mapped_and_accumulate() {
        let t0 = Instant::now();
        let mut r = Vp8Refine::new(64, 64);
        assert!(r.map().is_none(), "nothing coded yet: everything");
        r.coded(t0, Duration::ZERO, false);
        assert_eq!(r.next_topoff(), None, "a whole frame needs no top-off");
        r.changed(Some(rect(0, 0)));
        // The rate control dropped that frame: the next change adds to it.
        r.changed(Some(rect(40, 40)));
        assert_eq!(r.map().map(MbMap::count), Some(2));
        r.coded(t0, Duration::ZERO, true);
        assert_eq!(r.map().map(MbMap::count), Some(0));
        assert_eq!(r.next_topoff(), Some(t0 + TOPOFF_AFTER));
        // More change frames do not push the top-off back.
        r.changed(Some(rect(8, 8)));
        r.coded(t0 + Duration::from_millis(100), Duration::ZERO, true);
        assert_eq!(r.next_topoff(), Some(t0 + TOPOFF_AFTER));
    }

    #[test]
    fn unknown_damage_and_top_offs_code_everything_and_end_the_wait() {
        let t0 = Instant::now();
        let mut r = Vp8Refine::new(64, 64);
        r.coded(t0, Duration::ZERO, false);
        r.changed(Some(rect(0, 0)));
        r.changed(None);
        assert!(r.map().is_none());
        r.coded(t0, Duration::ZERO, true);
        r.top_off();
        assert!(r.map().is_none());
        r.coded(t0 + TOPOFF_AFTER, Duration::from_millis(300), false);
        assert_eq!(r.next_topoff(), None);
    }

    #[test]
    fn timestamps_continue_from_the_last_encode() {
        let t0 = Instant::now();
        let mut r = Vp8Refine::new(64, 64);
        assert_eq!(r.timestamp_at(t0), Duration::ZERO);
        r.coded(t0, Duration::from_secs(5), false);
        assert_eq!(
            r.timestamp_at(t0 + Duration::from_millis(250)),
            Duration::from_millis(5250)
        );
    }
}
