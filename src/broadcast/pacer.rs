//! When to grab and encode the next frame: free of I/O and clocks, so it is tested directly.
//!
//! The pipeline tells the [`Pacer`] what happened (damage seen, frame sent) with the current
//! time, and asks it what to do next: wait for damage (at most until the next keep-alive; stop
//! and keyframe requests interrupt the wait), or produce a frame now. A still screen produces one
//! keep-alive frame per [`KEEPALIVE`], a busy one at most the configured frame rate.

use std::time::{Duration, Instant};

/// A still screen is re-sent this often, so browsers never see the stream stop (Chromium asks
/// for a keyframe after 3 s without a decodable frame). After the first picture the pipeline
/// sends a skip picture ([`crate::video::skip`]) rather than running the encoder.
pub const KEEPALIVE: Duration = Duration::from_secs(2);

/// What the pipeline should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait up to this long for screen damage.
    Wait(Duration),
    /// Grab, convert and encode a frame now.
    Produce,
}

/// Frame-rate limiter driven by damage, keyframe requests and a keep-alive.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    last_sent: Option<Instant>,
    dirty: bool,
}

impl Pacer {
    /// A pacer for at most `fps` frames per second.
    pub fn new(fps: u32) -> Self {
        Pacer {
            interval: Duration::from_secs(1) / fps.max(1),
            last_sent: None,
            dirty: true,
        }
    }

    /// Changes the frame-rate cap to `fps`.
    pub fn set_fps(&mut self, fps: u32) {
        self.interval = Duration::from_secs(1) / fps.max(1);
    }

    /// The screen changed.
    pub fn damaged(&mut self) {
        self.dirty = true;
    }

    /// Whether the screen changed since the last frame (or no frame was produced yet).
    pub fn dirty(&self) -> bool {
        self.dirty || self.last_sent.is_none()
    }

    /// A frame went out at `now`.
    pub fn produced(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.dirty = false;
    }

    /// What to do at `now`, given whether a viewer is waiting for a keyframe.
    pub fn step(&self, now: Instant, keyframe_wanted: bool) -> Step {
        let Some(last) = self.last_sent else {
            return Step::Produce;
        };
        let keepalive_at = last + KEEPALIVE;
        let due = self.dirty || keyframe_wanted || now >= keepalive_at;
        if !due {
            return Step::Wait(keepalive_at.saturating_duration_since(now));
        }
        let allowed_at = last + self.interval;
        if now < allowed_at {
            return Step::Wait(allowed_at.saturating_duration_since(now));
        }
        Step::Produce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_frame_is_immediate() {
        let p = Pacer::new(30);
        assert_eq!(p.step(Instant::now(), false), Step::Produce);
    }

    #[test]
    fn still_screen_waits_in_bounded_slices_then_keeps_alive() {
        let t0 = Instant::now();
        let mut p = Pacer::new(30);
        p.produced(t0);
        assert_eq!(p.step(t0, false), Step::Wait(KEEPALIVE));
        assert_eq!(
            p.step(t0 + KEEPALIVE - Duration::from_millis(10), false),
            Step::Wait(Duration::from_millis(10))
        );
        assert_eq!(p.step(t0 + KEEPALIVE, false), Step::Produce);
    }

    #[test]
    fn damage_is_rate_limited_to_the_frame_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(20); // 50 ms per frame
        p.produced(t0);
        p.damaged();
        assert_eq!(
            p.step(t0 + Duration::from_millis(20), false),
            Step::Wait(Duration::from_millis(30))
        );
        assert_eq!(p.step(t0 + Duration::from_millis(50), false), Step::Produce);
    }

    #[test]
    fn keyframe_request_produces_without_damage() {
        let t0 = Instant::now();
        let mut p = Pacer::new(30);
        p.produced(t0);
        assert!(matches!(
            p.step(t0 + Duration::from_millis(40), false),
            Step::Wait(_)
        ));
        assert_eq!(p.step(t0 + Duration::from_millis(40), true), Step::Produce);
    }

    #[test]
    fn keepalive_frames_are_not_dirty() {
        let t0 = Instant::now();
        let mut p = Pacer::new(30);
        assert!(p.dirty());
        p.produced(t0);
        assert!(!p.dirty());
        assert_eq!(p.step(t0 + KEEPALIVE, false), Step::Produce);
        assert!(!p.dirty(), "a keep-alive re-encodes the last frame");
        p.damaged();
        assert!(p.dirty());
    }

    #[test]
    fn producing_clears_damage() {
        let t0 = Instant::now();
        let mut p = Pacer::new(30);
        p.damaged();
        p.produced(t0);
        assert!(matches!(
            p.step(t0 + Duration::from_millis(100), false),
            Step::Wait(_)
        ));
    }
}
