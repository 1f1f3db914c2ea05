//! Which screen size to set, and when: free of I/O and clocks, so it is tested directly.
//!
//! Pages ask for their size in device pixels (with their device pixel ratio); the service
//! tells the [`Policy`] each request with the current time and whether that viewer may control
//! the desktop (today: it holds the full token; later: it holds control), and asks it when and
//! what to apply. The rules:
//!
//! - a viewer that may not control is refused, and so is every request while resizing is off
//!   or after the display refused several sizes in a row;
//! - sizes are bounded by the largest size allowed (`--max-size`, and what the display can
//!   take) and by [`MIN_SIZE`], and rounded down to even numbers (H.264 4:2:0 needs them);
//! - the most recent request from a permitted viewer wins: a newer one replaces one still
//!   waiting;
//! - changes are spaced at least [`MIN_INTERVAL`] apart, so a page that floods requests (or a
//!   window dragged by its corner) costs the X server a few mode sets a second at most; the
//!   first change is applied at once;
//! - a size the display already has (with the same DPI) is not set again; a size the display
//!   refused is not tried again; after [`MAX_FAILURES`] refusals in a row the display is taken
//!   to refuse resizing altogether, and keeps its size.

use std::time::{Duration, Instant};

/// Changes are at least this far apart.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// The smallest screen set, in pixels (smaller windows get this and the page scales down).
pub const MIN_SIZE: (u32, u32) = (320, 240);
/// Refusals in a row after which the display is taken to refuse resizing.
pub const MAX_FAILURES: u32 = 3;
/// The device pixel ratios accepted.
pub const DPR_RANGE: (f64, f64) = (0.5, 4.0);
/// The X DPI of a device pixel ratio of 1.
pub const BASE_DPI: f64 = 96.0;

/// One viewer's request: its size in device pixels and its device pixel ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Width in device pixels.
    pub width: u32,
    /// Height in device pixels.
    pub height: u32,
    /// `window.devicePixelRatio`.
    pub dpr: f64,
}

/// What the display is set to: size in pixels and DPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Dots per inch (96 x the device pixel ratio, rounded).
    pub dpi: u32,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Resizing is off (`--resize off`, or `auto` on a display vnrit did not start).
    #[error("this server does not resize the desktop (see --resize)")]
    Off,
    /// The viewer may not control the desktop.
    #[error("only a viewer who controls the desktop may resize it")]
    NotPermitted,
    /// The display refused several sizes in a row.
    #[error("the X display refuses to change its size; the page scales the picture instead")]
    DisplayRefuses,
    /// The numbers make no sense.
    #[error("bad resize request: {0}")]
    Bad(&'static str),
}

/// The resize decision state of one display.
#[derive(Debug)]
pub struct Policy {
    enabled: bool,
    max: (u32, u32),
    /// What the display has now (as far as we know).
    current: Option<Target>,
    /// The request waiting to be applied, and which viewer made it.
    pending: Option<(u64, Target)>,
    /// What was handed out by [`Policy::due`] and not yet reported back.
    in_flight: bool,
    last_change: Option<Instant>,
    last_refused: Option<Target>,
    failures: u32,
}

impl Policy {
    /// A policy allowing sizes up to `max` (`--max-size` and the display's own limit), or
    /// refusing everything when `enabled` is false.
    pub fn new(enabled: bool, max: (u32, u32)) -> Policy {
        Policy {
            enabled,
            max: (even(max.0.max(MIN_SIZE.0)), even(max.1.max(MIN_SIZE.1))),
            current: None,
            pending: None,
            in_flight: false,
            last_change: None,
            last_refused: None,
            failures: 0,
        }
    }

    /// Whether requests can be taken at all (not off, display not refusing).
    pub fn active(&self) -> bool {
        self.enabled && self.failures < MAX_FAILURES
    }

    /// The largest size a request is bounded to.
    pub fn max(&self) -> (u32, u32) {
        self.max
    }

    /// The display has `target` now (at start, or after someone else changed it).
    pub fn set_current(&mut self, target: Target) {
        self.current = Some(target);
    }

    /// What the display has now, as far as the policy knows.
    pub fn current(&self) -> Option<Target> {
        self.current
    }

    /// The screen size and DPI `req` asks for, bounded and rounded.
    pub fn target_for(&self, req: Request) -> Result<Target, Refusal> {
        if !req.dpr.is_finite() || req.dpr < DPR_RANGE.0 || req.dpr > DPR_RANGE.1 {
            return Err(Refusal::Bad("devicePixelRatio must be from 0.5 to 4"));
        }
        if req.width == 0 || req.height == 0 {
            return Err(Refusal::Bad("width and height must be positive"));
        }
        let bound = |v: u32, lo: u32, hi: u32| even(v.clamp(lo, hi));
        Ok(Target {
            width: bound(req.width, MIN_SIZE.0, self.max.0),
            height: bound(req.height, MIN_SIZE.1, self.max.1),
            dpi: (BASE_DPI * req.dpr).round() as u32,
        })
    }

    /// Viewer `viewer` asks for `req`; `may_control` says whether it may control the desktop.
    /// Ok means it is applied (when [`Policy::due`] says so) unless a newer request replaces it.
    pub fn request(
        &mut self,
        viewer: u64,
        may_control: bool,
        req: Request,
    ) -> Result<Target, Refusal> {
        if !self.enabled {
            return Err(Refusal::Off);
        }
        if !may_control {
            return Err(Refusal::NotPermitted);
        }
        if self.failures >= MAX_FAILURES {
            return Err(Refusal::DisplayRefuses);
        }
        let target = self.target_for(req)?;
        self.pending = Some((viewer, target));
        Ok(target)
    }

    /// The viewer left: a request of its own still waiting is dropped.
    pub fn viewer_left(&mut self, viewer: u64) {
        if matches!(self.pending, Some((v, _)) if v == viewer) {
            self.pending = None;
        }
    }

    /// The viewer lost the right to control: the same as leaving, for its waiting request.
    pub fn control_lost(&mut self, viewer: u64) {
        self.viewer_left(viewer);
    }

    /// What to apply at `now`, if anything is due. Once this returns a target, report the
    /// outcome with [`Policy::applied`] before asking again.
    pub fn due(&mut self, now: Instant) -> Option<Target> {
        if self.in_flight || !self.active() {
            return None;
        }
        let (_, target) = self.pending?;
        if Some(target) == self.current || Some(target) == self.last_refused {
            self.pending = None;
            return None;
        }
        if let Some(last) = self.last_change {
            if now < last + MIN_INTERVAL {
                return None;
            }
        }
        self.pending = None;
        self.in_flight = true;
        Some(target)
    }

    /// How long from `now` until [`Policy::due`] may have something; `None` = nothing waits.
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        if self.in_flight || !self.active() {
            return None;
        }
        self.pending?;
        Some(match self.last_change {
            Some(last) => (last + MIN_INTERVAL).saturating_duration_since(now),
            None => Duration::ZERO,
        })
    }

    /// The outcome of applying `target` (handed out by [`Policy::due`]) at `now`.
    pub fn applied(&mut self, now: Instant, target: Target, ok: bool) {
        self.in_flight = false;
        self.last_change = Some(now);
        if ok {
            self.current = Some(target);
            self.failures = 0;
            self.last_refused = None;
        } else {
            self.failures += 1;
            self.last_refused = Some(target);
        }
    }
}

/// `v` rounded down to an even number.
fn even(v: u32) -> u32 {
    v & !1
}

/// The physical size in millimetres that makes `px` pixels come out at `dpi`.
pub fn millimetres(px: u32, dpi: u32) -> u32 {
    let mm = f64::from(px) * 25.4 / f64::from(dpi.max(1));
    (mm.round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(width: u32, height: u32, dpr: f64) -> Request {
        Request { width, height, dpr }
    }

    fn t(width: u32, height: u32, dpi: u32) -> Target {
        Target { width, height, dpi }
    }

    #[test]
    fn first_request_applies_at_once_rounded_and_bounded() {
        let now = Instant::now();
        let mut p = Policy::new(true, (3840, 2160));
        assert_eq!(
            p.request(1, true, req(1281, 721, 1.0)),
            Ok(t(1280, 720, 96))
        );
        assert_eq!(p.next_wake(now), Some(Duration::ZERO));
        assert_eq!(p.due(now), Some(t(1280, 720, 96)));
        assert_eq!(p.due(now), None, "nothing twice while in flight");
        p.applied(now, t(1280, 720, 96), true);
        assert_eq!(p.current(), Some(t(1280, 720, 96)));
        assert_eq!(p.next_wake(now), None);

        assert_eq!(p.target_for(req(9000, 9000, 2.0)), Ok(t(3840, 2160, 192)));
        assert_eq!(p.target_for(req(10, 10, 1.0)), Ok(t(320, 240, 96)));
        assert_eq!(p.target_for(req(1366, 768, 1.25)), Ok(t(1366, 768, 120)));
        let odd_max = Policy::new(true, (1921, 1081));
        assert_eq!(
            odd_max.target_for(req(5000, 5000, 1.0)),
            Ok(t(1920, 1080, 96))
        );
    }

    #[test]
    fn who_may_resize() {
        let now = Instant::now();
        let mut off = Policy::new(false, (3840, 2160));
        assert_eq!(off.request(1, true, req(800, 600, 1.0)), Err(Refusal::Off));
        assert_eq!(off.due(now), None);
        let mut p = Policy::new(true, (3840, 2160));
        assert_eq!(
            p.request(2, false, req(800, 600, 1.0)),
            Err(Refusal::NotPermitted)
        );
        assert_eq!(p.due(now), None, "a view-only request never applies");
    }

    #[test]
    fn bad_numbers_are_refused() {
        let now = Instant::now();
        let mut p = Policy::new(true, (3840, 2160));
        for bad in [
            req(0, 600, 1.0),
            req(800, 0, 1.0),
            req(800, 600, f64::NAN),
            req(800, 600, f64::INFINITY),
            req(800, 600, 0.1),
            req(800, 600, 9.0),
        ] {
            assert!(
                matches!(p.request(1, true, bad), Err(Refusal::Bad(_))),
                "{bad:?}"
            );
        }
        assert_eq!(p.due(now), None);
    }

    #[test]
    fn most_recent_request_wins_and_changes_are_spaced() {
        let t0 = Instant::now();
        let mut p = Policy::new(true, (3840, 2160));
        p.request(1, true, req(1280, 720, 1.0)).unwrap();
        let first = p.due(t0).unwrap();
        p.applied(t0, first, true);
        // Two viewers ask within the interval: the later one wins, after the interval.
        let t1 = t0 + Duration::from_millis(50);
        p.request(1, true, req(1024, 768, 1.0)).unwrap();
        p.request(2, true, req(800, 600, 1.0)).unwrap();
        assert_eq!(p.due(t1), None);
        assert_eq!(p.next_wake(t1), Some(Duration::from_millis(200)));
        let t2 = t0 + MIN_INTERVAL;
        assert_eq!(p.due(t2), Some(t(800, 600, 96)));
        p.applied(t2, t(800, 600, 96), true);
        // The same size again is not set again.
        p.request(1, true, req(800, 600, 1.0)).unwrap();
        assert_eq!(p.due(t2 + Duration::from_secs(1)), None);
        assert_eq!(p.next_wake(t2 + Duration::from_secs(1)), None);
        // The same size at another DPI is.
        p.request(1, true, req(800, 600, 2.0)).unwrap();
        assert_eq!(p.due(t2 + Duration::from_secs(1)), Some(t(800, 600, 192)));
    }

    #[test]
    fn a_flood_costs_at_most_four_changes_a_second() {
        let t0 = Instant::now();
        let mut p = Policy::new(true, (3840, 2160));
        let mut changes = 0;
        for ms in 0..1000u32 {
            let now = t0 + Duration::from_millis(u64::from(ms));
            let _ = p.request(7, true, req(640 + 2 * ms, 480, 1.0));
            if let Some(target) = p.due(now) {
                changes += 1;
                p.applied(now, target, true);
            }
        }
        assert_eq!(changes, 4);
    }

    #[test]
    fn a_departed_or_demoted_viewer_request_is_dropped() {
        let t0 = Instant::now();
        let mut p = Policy::new(true, (3840, 2160));
        p.request(1, true, req(1280, 720, 1.0)).unwrap();
        let first = p.due(t0).unwrap();
        p.applied(t0, first, true);
        p.request(1, true, req(1024, 768, 1.0)).unwrap();
        p.viewer_left(2);
        assert!(
            p.next_wake(t0).is_some(),
            "another viewer leaving changes nothing"
        );
        p.viewer_left(1);
        assert_eq!(p.due(t0 + Duration::from_secs(1)), None);
        p.request(3, true, req(1024, 768, 1.0)).unwrap();
        p.control_lost(3);
        assert_eq!(p.due(t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_refusing_display_keeps_its_size() {
        let t0 = Instant::now();
        let mut p = Policy::new(true, (3840, 2160));
        p.set_current(t(1920, 1080, 96));
        let mut now = t0;
        for (i, w) in [1280u32, 1024, 800].iter().enumerate() {
            p.request(1, true, req(*w, 600, 1.0)).unwrap();
            let target = p.due(now).expect("due");
            p.applied(now, target, false);
            // The refused size is not retried.
            now += MIN_INTERVAL;
            if i < 2 {
                p.request(1, true, req(*w, 600, 1.0)).unwrap();
                assert_eq!(p.due(now), None);
            }
        }
        assert!(!p.active());
        assert_eq!(
            p.request(1, true, req(640, 480, 1.0)),
            Err(Refusal::DisplayRefuses)
        );
        assert_eq!(p.current(), Some(t(1920, 1080, 96)));
    }

    #[test]
    fn one_success_clears_the_failures() {
        let t0 = Instant::now();
        let mut p = Policy::new(true, (3840, 2160));
        p.request(1, true, req(1280, 720, 1.0)).unwrap();
        let a = p.due(t0).unwrap();
        p.applied(t0, a, false);
        let t1 = t0 + MIN_INTERVAL;
        p.request(1, true, req(1024, 768, 1.0)).unwrap();
        let b = p.due(t1).unwrap();
        p.applied(t1, b, true);
        let t2 = t1 + MIN_INTERVAL;
        p.request(1, true, req(1280, 720, 1.0)).unwrap();
        assert_eq!(p.due(t2), Some(a), "tried again once another size worked");
    }

    #[test]
    fn physical_size_gives_the_dpi() {
        assert_eq!(millimetres(1280, 192), 169);
        assert_eq!(millimetres(1920, 96), 508);
        // xdpyinfo: px * 25.4 / mm, rounded.
        let dpi = |px: u32, mm: u32| (f64::from(px) * 25.4 / f64::from(mm)).round() as u32;
        for (px, d) in [
            (1280u32, 192u32),
            (800, 192),
            (1024, 96),
            (2560, 144),
            (1366, 120),
        ] {
            assert_eq!(dpi(px, millimetres(px, d)), d, "{px} px at {d} dpi");
        }
        // Whole millimetres limit the precision on small, very dense screens: within 1 %.
        for px in [320u32, 1280, 3840] {
            let got = dpi(px, millimetres(px, 384));
            assert!(got.abs_diff(384) <= 4, "{px} px at 384 dpi gave {got}");
        }
    }
}
