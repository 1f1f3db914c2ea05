//! Unit tests of the routing and refinement decisions (no clock, no sockets).

use std::time::{Duration, Instant};

use super::{Planner, RefineConfig, Route, BYTES_PER_MB};
use crate::capture::DamageRect;
use crate::video::mbmap::MbMap;

fn ms(t0: Instant, n: u64) -> Instant {
    t0 + Duration::from_millis(n)
}

fn rows(w: u32, h: u32, rows: u32) -> MbMap {
    let mut m = MbMap::new(w, h);
    m.add_rect(DamageRect {
        x: 0,
        y: 0,
        width: w,
        height: rows * 16,
    });
    m
}

/// The most bytes any `window` starting at a logged picture holds.
fn most_in_window(log: &[(Instant, u64)], window: Duration) -> u64 {
    (0..log.len())
        .map(|i| {
            let start = log[i].0;
            log[i..]
                .iter()
                .take_while(|(t, _)| *t < start + window)
                .map(|(_, b)| b)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn small_changes_go_by_hand_unless_the_screen_is_moving() {
    let t0 = Instant::now();
    let mut p = Planner::new(RefineConfig::default(), 1920, 1080);
    assert_eq!(p.route(t0, 4, true), Route::Hand, "a glyph");
    assert_eq!(
        p.route(t0, 4, false),
        Route::Library,
        "hand pictures blocked"
    );
    assert_eq!(p.route(t0, 120, true), Route::Hand, "one text line");
    assert_eq!(p.route(t0, 816, true), Route::Library, "10 % of the screen");
    p.coded_by_library(t0, &rows(1920, 1080, 20));
    assert_eq!(p.route(ms(t0, 100), 4, true), Route::Library, "in motion");
    assert_eq!(p.route(ms(t0, 300), 4, true), Route::Hand, "motion over");
}

#[test]
fn refinement_waits_for_a_still_screen_and_stays_under_both_rate_limits() {
    let t0 = Instant::now();
    let kbps = 4000;
    let mut p = Planner::new(RefineConfig::default(), 1920, 1080);
    assert_eq!(p.next_refine(kbps), None, "nothing lossy yet");
    let scrolled = rows(1920, 1080, 30); // 3600 macroblocks, 44 % of the screen
    p.coded_by_library(t0, &scrolled);
    p.sent(t0, 60_000);
    assert!(p.refine(ms(t0, 50), kbps).is_none(), "not settled");
    let mut now = ms(t0, 100);
    let mut log: Vec<(Instant, u64)> = vec![(t0, 60_000)];
    let mut pictures = 0;
    while p.pending() > 0 {
        let at = p.next_refine(kbps).expect("refinement pending");
        now = now.max(at);
        let mbs = p.refine(now, kbps).expect("due when next_refine says");
        assert!(mbs.count() > 0);
        let bytes = u64::from(mbs.count()) * BYTES_PER_MB;
        p.sent(now, bytes);
        p.refined(now, &mbs);
        log.push((now, bytes));
        pictures += 1;
        assert!(pictures < 1000);
    }
    // Any 200 ms window: at most 2x 4 Mbit/s = 200 kB.
    let burst = most_in_window(&log, Duration::from_millis(200));
    assert!(burst <= 200_000, "{burst} bytes in 200 ms");
    // Any 1 s window: at most the target, 4 Mbit/s = 500 kB (the first picture included).
    let sustained = most_in_window(&log, Duration::from_secs(1));
    assert!(sustained <= 500_000, "{sustained} bytes in 1 s");
    let took = now - t0;
    assert!(
        took < Duration::from_millis(3200),
        "3600 macroblocks (1.4 MB) at 4 Mbit/s take about 2.9 s, took {took:?}"
    );
    assert!(pictures >= 6, "spread over {pictures} pictures");
    assert_eq!(p.next_refine(kbps), None, "done: costs nothing");
}

#[test]
fn a_change_stops_refinement_and_a_lower_estimate_slows_it() {
    let t0 = Instant::now();
    let mut p = Planner::new(RefineConfig::default(), 1920, 1080);
    p.all_lossy(t0);
    let first = p.refine(ms(t0, 100), 4000).expect("due");
    p.sent(ms(t0, 100), u64::from(first.count()) * BYTES_PER_MB);
    p.refined(ms(t0, 100), &first);
    // A change: nothing for `settle`, whatever the budget.
    p.coded_by_hand(ms(t0, 120), &rows(1920, 1080, 1));
    assert!(p.refine(ms(t0, 150), 4000).is_none());
    assert!(p.refine(ms(t0, 200), 4000).is_none());
    assert!(p.refine(ms(t0, 221), 4000).is_some());
    // At 500 kbit/s one picture carries an eighth of what it does at 4 Mbit/s.
    let mut q = Planner::new(RefineConfig::default(), 1920, 1080);
    q.all_lossy(t0);
    let slow = q.refine(ms(t0, 100), 500).expect("due").count();
    let mut r = Planner::new(RefineConfig::default(), 1920, 1080);
    r.all_lossy(t0);
    let fast = r.refine(ms(t0, 100), 4000).expect("due").count();
    assert!(slow * 7 <= fast && slow > 0, "{slow} vs {fast}");
}

#[test]
fn steady_motion_is_not_refined_between_pictures() {
    // e2e/abr.test's plasma: a whole-screen picture from the encoder every 200 ms. Refining
    // between them doubled the stream and starved a 1 Mbit/s link.
    let t0 = Instant::now();
    let mut p = Planner::new(RefineConfig::default(), 1280, 720);
    let screen = rows(1280, 720, 45);
    for frame in 0..25u64 {
        let at = ms(t0, frame * 200);
        p.coded_by_library(at, &screen);
        p.sent(at, 20_000);
        if frame == 0 {
            continue; // one picture alone is a change, not motion: it may be refined
        }
        for probe in [110, 150, 199] {
            assert!(
                p.refine(ms(at, probe), 1000).is_none(),
                "refined {probe} ms after picture {frame}"
            );
        }
    }
    // The motion stops at 4.8 s: refinement begins `motion_hold` later, not `settle`.
    let last = ms(t0, 4800);
    assert!(p.refine(ms(last, 200), 1000).is_none());
    assert!(p.refine(ms(last, 250), 1000).is_some());
}

#[test]
fn the_encoder_share_counts_against_the_sustained_limit() {
    // A still screen after one big picture that used the whole second's budget: refinement
    // waits until that picture leaves the 1 s window.
    let t0 = Instant::now();
    let kbps = 1000; // 125 kB per second
    let mut p = Planner::new(RefineConfig::default(), 1280, 720);
    p.all_lossy(t0);
    p.sent(t0, 125_000);
    assert_eq!(p.next_refine(kbps), Some(ms(t0, 1000)));
    assert!(p.refine(ms(t0, 999), kbps).is_none());
    let mbs = p.refine(ms(t0, 1000), kbps).expect("room again");
    // One step's share of the burst window: 2 x 25 kB / 4.
    assert_eq!(u64::from(mbs.count()), 12_500 / BYTES_PER_MB);
}
