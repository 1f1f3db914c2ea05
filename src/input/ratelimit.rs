//! Per-viewer input rate limit: a token bucket that drops a flood of input events while
//! never dropping the release of a key or button the viewer holds, so nothing can stick.
//!
//! Pure (no X, no clock of its own): the caller passes `now`, which keeps it unit-testable.
//!
//! Rates: a viewer may send [`SUSTAINED_PER_SEC`] events per second on average, in bursts of
//! up to [`BURST`]. A 1000 Hz gaming mouse produces at most 1000 moves a second (the page
//! sends at most one per browser event), a fast typist about 20 key events a second, and a
//! free-spinning wheel a few hundred; together they stay under 1500 a second, so honest use
//! never trips the limit, while a flooding page is held to a rate the X thread carries out in
//! a few milliseconds a second and cannot starve the other viewers of the shared input queue.

use std::collections::HashSet;
use std::time::Instant;

use super::InputEvent;

/// Events per second a viewer may send on average.
pub const SUSTAINED_PER_SEC: f64 = 1500.0;
/// Events a viewer may send at once after a quiet spell.
pub const BURST: f64 = 3000.0;
/// Most distinct keys tracked as held per viewer (a keyboard has fewer than 256 keycodes).
const MAX_HELD_KEYS: usize = 256;

/// A token bucket: [`TokenBucket::take`] succeeds while tokens are left; they refill at a
/// constant rate up to the burst size.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens a second, holding at most `burst`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: pass it on.
    Pass,
    /// It releases something this viewer holds: pass it on whatever the rate, and past any
    /// queue bound.
    Release,
    /// Over the rate: drop it.
    Drop,
}

/// One viewer's limiter: the bucket plus the keys and buttons the viewer holds down, so their
/// releases always pass.
#[derive(Debug, Clone)]
pub struct InputLimiter {
    bucket: TokenBucket,
    keys: HashSet<String>,
    buttons: u16,
}

impl InputLimiter {
    /// A limiter with the default rates ([`SUSTAINED_PER_SEC`], [`BURST`]).
    pub fn new(now: Instant) -> Self {
        Self::with_rate(SUSTAINED_PER_SEC, BURST, now)
    }

    /// A limiter with other rates (tests, benchmarks).
    pub fn with_rate(rate: f64, burst: f64, now: Instant) -> Self {
        InputLimiter {
            bucket: TokenBucket::new(rate, burst, now),
            keys: HashSet::new(),
            buttons: 0,
        }
    }

    /// Decides about `event` arriving at `now`, and records what it presses or releases when
    /// it passes.
    pub fn admit(&mut self, event: &InputEvent, now: Instant) -> Verdict {
        // Releases take a token too (they are events), but pass without one.
        let token = self.bucket.take(now);
        let verdict = if self.releases_held(event) {
            Verdict::Release
        } else if token {
            Verdict::Pass
        } else {
            Verdict::Drop
        };
        if verdict != Verdict::Drop {
            self.track(event);
        }
        verdict
    }

    /// Whether `event` lets go of something this viewer holds down.
    fn releases_held(&self, event: &InputEvent) -> bool {
        match event {
            InputEvent::KeyUp { code } => self.keys.contains(code),
            InputEvent::ButtonUp(b) => self.buttons & button_bit(*b) != 0,
            InputEvent::ReleaseAll => !self.keys.is_empty() || self.buttons != 0,
            _ => false,
        }
    }

    fn track(&mut self, event: &InputEvent) {
        match event {
            InputEvent::KeyDown { code, .. } if self.keys.len() < MAX_HELD_KEYS => {
                self.keys.insert(code.clone());
            }
            InputEvent::KeyUp { code } => {
                self.keys.remove(code);
            }
            InputEvent::ButtonDown(b) => self.buttons |= button_bit(*b),
            InputEvent::ButtonUp(b) => self.buttons &= !button_bit(*b),
            InputEvent::ReleaseAll => {
                self.keys.clear();
                self.buttons = 0;
            }
            _ => {}
        }
    }

    /// Whether this viewer holds any key or button down (as far as passed events tell).
    pub fn holds_anything(&self) -> bool {
        !self.keys.is_empty() || self.buttons != 0
    }
}

fn button_bit(button: u8) -> u16 {
    1u16.checked_shl(u32::from(button)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key_down(code: &str) -> InputEvent {
        InputEvent::KeyDown {
            code: code.into(),
            key: "a".into(),
        }
    }

    fn key_up(code: &str) -> InputEvent {
        InputEvent::KeyUp { code: code.into() }
    }

    const MOVE: InputEvent = InputEvent::Move { x: 0.5, y: 0.5 };

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 10.0, t0);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10);
        // 50 ms at 100/s = 5 more.
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!((0..20).filter(|_| b.take(t1)).count(), 5);
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.take(t2)).count(), 10);
        // Time going backwards (not monotonic input) adds nothing.
        assert!(!b.take(t0));
    }

    #[test]
    fn a_1000_hz_mouse_with_fast_typing_never_trips_the_default_limit() {
        let t0 = Instant::now();
        let mut l = InputLimiter::new(t0);
        // Ten seconds of 1000 moves a second, plus a key pressed and released every 25 ms,
        // plus 200 wheel notches a second.
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            assert_eq!(l.admit(&MOVE, now), Verdict::Pass, "move at {ms} ms");
            if ms % 25 == 0 {
                assert_eq!(l.admit(&key_down("KeyA"), now), Verdict::Pass);
                assert_eq!(l.admit(&key_up("KeyA"), now), Verdict::Release);
            }
            if ms % 5 == 0 {
                let wheel = InputEvent::Wheel { dx: 0.0, dy: 1.0 };
                assert_eq!(l.admit(&wheel, now), Verdict::Pass, "wheel at {ms} ms");
            }
        }
    }

    #[test]
    fn a_flood_is_cut_to_the_rate() {
        let t0 = Instant::now();
        let mut l = InputLimiter::with_rate(1000.0, 2000.0, t0);
        // 100 000 events within one second: the burst plus one second of the rate pass.
        let passed = (0..100_000u64)
            .filter(|i| {
                let now = t0 + Duration::from_micros(i * 10);
                l.admit(&MOVE, now) == Verdict::Pass
            })
            .count();
        assert!((2900..=3001).contains(&passed), "{passed} passed");
    }

    #[test]
    fn releases_of_held_keys_and_buttons_always_pass() {
        let t0 = Instant::now();
        let mut l = InputLimiter::with_rate(1.0, 3.0, t0);
        assert_eq!(l.admit(&key_down("ShiftLeft"), t0), Verdict::Pass);
        assert_eq!(l.admit(&InputEvent::ButtonDown(1), t0), Verdict::Pass);
        assert_eq!(l.admit(&key_down("KeyQ"), t0), Verdict::Pass);
        assert!(l.holds_anything());
        // The bucket is empty: presses and moves are dropped.
        assert_eq!(l.admit(&key_down("KeyB"), t0), Verdict::Drop);
        assert_eq!(l.admit(&MOVE, t0), Verdict::Drop);
        assert_eq!(l.admit(&InputEvent::ButtonDown(3), t0), Verdict::Drop);
        // Releases of what is held pass; of what is not held (or dropped) they do not.
        assert_eq!(l.admit(&key_up("KeyB"), t0), Verdict::Drop);
        assert_eq!(l.admit(&InputEvent::ButtonUp(3), t0), Verdict::Drop);
        assert_eq!(l.admit(&key_up("ShiftLeft"), t0), Verdict::Release);
        assert_eq!(l.admit(&key_up("ShiftLeft"), t0), Verdict::Drop, "once");
        assert_eq!(l.admit(&InputEvent::ButtonUp(1), t0), Verdict::Release);
        assert_eq!(l.admit(&InputEvent::ReleaseAll, t0), Verdict::Release);
        assert!(!l.holds_anything());
        assert_eq!(l.admit(&InputEvent::ReleaseAll, t0), Verdict::Drop);
    }

    #[test]
    fn odd_button_numbers_do_not_overflow() {
        let t0 = Instant::now();
        let mut l = InputLimiter::with_rate(1.0, 1.0, t0);
        assert_eq!(l.admit(&InputEvent::ButtonDown(200), t0), Verdict::Pass);
        assert!(!l.holds_anything());
    }
}
