//! The estimator against a simulated bottleneck: a FIFO link of a given rate with a small
//! buffer (like `tc ... tbf latency 50ms`), a sender that paces frames out at 1.2 times the
//! estimate, and a receiver that reports every packet's fate every 50 ms.

use super::*;

const PACKET_BITS: f64 = 1200.0 * 8.0;
const BASE_DELAY: f64 = 0.010;
const FEEDBACK_EVERY: f64 = 0.050;

/// A simulated path: sender pacer, bottleneck, receiver feedback.
struct Sim {
    t0: Instant,
    /// Bottleneck rate, bit/s.
    capacity: f64,
    /// Longest a packet may wait in the bottleneck before it is dropped.
    buffer: f64,
    link_free_at: f64,
    pacer_free_at: f64,
    /// (departure, arrival) of packets not yet reported.
    pending: VecDeque<(f64, Option<f64>)>,
    next_feedback: f64,
    /// Every packet sent: (departure, bits, arrived).
    log: Vec<(f64, f64, bool)>,
    est: DeliveryEstimator,
    /// Drop every n-th packet regardless of the queue (0 = never).
    drop_every: usize,
    /// The pacer sends this many times faster than the estimate.
    pacing: f64,
    /// Pace as the session does instead (`session::feedback`): faster until the link has
    /// shown its capacity, never under a floor.
    session_pacing: bool,
    sent_count: usize,
}

impl Sim {
    fn new(start: f64, capacity: f64, buffer: f64) -> Self {
        Sim {
            t0: Instant::now(),
            capacity,
            buffer,
            link_free_at: 0.0,
            pacer_free_at: 0.0,
            pending: VecDeque::new(),
            next_feedback: FEEDBACK_EVERY,
            log: Vec::new(),
            est: DeliveryEstimator::new(start, 100_000.0, 20_000_000.0),
            drop_every: 0,
            pacing: 1.2,
            session_pacing: false,
            sent_count: 0,
        }
    }

    fn at(&self, t: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(t)
    }

    /// Sends a frame of `bits` produced at time `t`, paced at `pacing` times the estimate.
    fn send_frame(&mut self, t: f64, bits: f64) {
        let pace = if self.session_pacing {
            crate::abr::pacing::pacing_rate_bps(&self.est)
        } else {
            self.pacing * self.est.estimate()
        };
        let mut left = bits;
        while left > 0.0 {
            let size = left.min(PACKET_BITS);
            left -= size;
            let depart = self.pacer_free_at.max(t);
            self.pacer_free_at = depart + size / pace;
            self.sent_count += 1;
            let forced = self.drop_every > 0 && self.sent_count.is_multiple_of(self.drop_every);
            let wait = (self.link_free_at - depart).max(0.0);
            let arrival = if forced || wait > self.buffer {
                None
            } else {
                self.link_free_at = depart.max(self.link_free_at) + size / self.capacity;
                Some(self.link_free_at + BASE_DELAY)
            };
            self.pending.push_back((depart, arrival));
            self.log.push((depart, size, arrival.is_some()));
        }
    }

    /// Delivers feedback up to time `t`: every packet whose fate is known by then.
    fn feedback_until(&mut self, t: f64) {
        while self.next_feedback <= t {
            let now = self.next_feedback;
            self.next_feedback += FEEDBACK_EVERY;
            let settled = now - BASE_DELAY - self.buffer - 0.02;
            let mut fates = Vec::new();
            while let Some(&(depart, arrival)) = self.pending.front() {
                let known = match arrival {
                    Some(a) => a <= now,
                    None => depart <= settled,
                };
                if !known {
                    break;
                }
                self.pending.pop_front();
                fates.push(PacketFate {
                    departure: self.at(depart),
                    arrival: arrival.map(Duration::from_secs_f64),
                    size: (PACKET_BITS / 8.0) as usize,
                });
            }
            let reported = now + BASE_DELAY;
            self.est.on_feedback(self.at(reported), &fates);
        }
    }

    /// Runs `secs` from `from`, at 30 frames/s; `frame(t, estimate)` gives each frame's bits.
    /// Returns the estimate sampled every 100 ms.
    fn run(
        &mut self,
        from: f64,
        secs: f64,
        mut frame: impl FnMut(f64, f64) -> f64,
    ) -> Vec<(f64, f64)> {
        let mut samples = Vec::new();
        let mut t = from;
        let mut next_sample = from;
        while t < from + secs {
            self.feedback_until(t);
            let bits = frame(t, self.est.estimate());
            self.send_frame(t, bits);
            if t >= next_sample {
                samples.push((t, self.est.estimate()));
                next_sample += 0.1;
            }
            t += 1.0 / 30.0;
        }
        samples
    }

    /// Bits sent per second over `[from, to)`.
    fn sent_rate(&self, from: f64, to: f64) -> f64 {
        let bits: f64 = self
            .log
            .iter()
            .filter(|(d, _, _)| *d >= from && *d < to)
            .map(|(_, b, _)| *b)
            .sum();
        bits / (to - from)
    }

    /// Share of the packets sent in `[from, to)` that were lost.
    fn loss(&self, from: f64, to: f64) -> f64 {
        let window: Vec<_> = self
            .log
            .iter()
            .filter(|(d, _, _)| *d >= from && *d < to)
            .collect();
        window.iter().filter(|(_, _, ok)| !ok).count() as f64 / window.len().max(1) as f64
    }
}

/// An encoder that uses 85 % of the estimate, evenly over frames.
fn follows(_t: f64, estimate: f64) -> f64 {
    0.85 * estimate / 30.0
}

#[test]
fn settles_under_a_capped_link_and_stays_there() {
    let mut sim = Sim::new(4_700_000.0, 1_000_000.0, 0.050);
    let samples = sim.run(0.0, 20.0, follows);
    let settled = samples
        .iter()
        .find(|(_, e)| *e < 1_000_000.0)
        .expect("the estimate fell under the capacity");
    assert!(settled.0 < 3.0, "settled only at {:.1} s", settled.0);
    // Measured as the e2e test does: over 3-second windows.
    for second in 4..18 {
        let s = f64::from(second);
        let rate = sim.sent_rate(s, s + 3.0);
        assert!(
            rate < 1_000_000.0,
            "sent {rate:.0} bit/s from second {second}"
        );
        assert!(
            rate > 550_000.0,
            "only {rate:.0} bit/s from second {second}"
        );
    }
    assert!(sim.loss(4.0, 20.0) < 0.02, "loss {}", sim.loss(4.0, 20.0));
    let low = samples
        .iter()
        .filter(|(t, _)| *t > 4.0)
        .map(|(_, e)| *e)
        .fold(f64::INFINITY, f64::min);
    assert!(low > 600_000.0, "the estimate sank to {low:.0} bit/s");
}

#[test]
fn climbs_again_when_the_cap_is_lifted() {
    let mut sim = Sim::new(4_700_000.0, 1_000_000.0, 0.050);
    sim.run(0.0, 15.0, follows);
    assert!(sim.est.estimate() < 1_200_000.0);
    sim.capacity = 20_000_000.0;
    let samples = sim.run(15.0, 25.0, follows);
    let recovered = samples
        .iter()
        .find(|(_, e)| *e > 3_000_000.0)
        .expect("the estimate climbed past 3 Mbit/s");
    assert!(
        recovered.0 < 15.0 + 20.0,
        "climbed only at {:.1} s",
        recovered.0
    );
    assert!(sim.loss(15.0, 40.0) < 0.01);
}

#[test]
fn bursts_that_drain_between_frames_are_not_congestion() {
    // A full-screen change every 200 ms (one big frame, then almost nothing) at 85 % of the
    // estimate on average, on a link with room for it: the queue each burst builds drains
    // before the next, so the estimate must not fall.
    let mut sim = Sim::new(1_500_000.0, 2_500_000.0, 0.100);
    // Ceiling under the link, so the average always fits and only the bursts queue.
    sim.est = DeliveryEstimator::new(1_500_000.0, 100_000.0, 2_200_000.0);
    let samples = sim.run(0.0, 20.0, |t, est| {
        let phase = (t * 30.0).round() as u64 % 6;
        if phase == 0 {
            0.85 * est * 0.2
        } else {
            2_000.0
        }
    });
    let low = samples
        .iter()
        .map(|(_, e)| *e)
        .fold(f64::INFINITY, f64::min);
    assert!(low >= 1_500_000.0, "the estimate fell to {low:.0} bit/s");
    assert_eq!(sim.loss(0.0, 20.0), 0.0);
    assert_eq!(
        sim.est.estimate(),
        2_200_000.0,
        "used and clear: it grew to the ceiling"
    );
}

/// A viewer whose frames are mostly dropped for it: one frame every half second, paced out at
/// 10x the estimate (as before a link has shown its capacity), so each burst lasts ~40 ms.
fn shaped(t: f64, estimate: f64) -> f64 {
    if ((t * 30.0).round() as u64).is_multiple_of(15) {
        0.85 * estimate * 0.5
    } else {
        0.0
    }
}

#[test]
fn short_bursts_on_a_free_link_still_grow_the_estimate() {
    // Too short to show a standing queue, but no packet met one: the link has room.
    let mut sim = Sim::new(800_000.0, 20_000_000.0, 0.050);
    sim.pacing = 10.0;
    sim.run(0.0, 20.0, shaped);
    assert!(
        sim.est.estimate() > 2_000_000.0,
        "stalled at {:.0} bit/s",
        sim.est.estimate()
    );
    assert_eq!(sim.loss(0.0, 20.0), 0.0);

    // The same bursts into a 1 Mbit/s link queue (and overflow it): no growth.
    let mut sim = Sim::new(800_000.0, 1_000_000.0, 0.050);
    sim.pacing = 10.0;
    let samples = sim.run(0.0, 20.0, shaped);
    let high = samples.iter().map(|(_, e)| *e).fold(0.0, f64::max);
    assert!(high <= 800_000.0, "grew to {high:.0} bit/s on a full link");
}

#[test]
fn a_still_screen_neither_raises_nor_lowers_the_estimate() {
    let mut sim = Sim::new(2_000_000.0, 10_000_000.0, 0.050);
    let samples = sim.run(0.0, 20.0, |_, _| 1_000.0);
    assert!(
        samples.iter().all(|(_, e)| *e == 2_000_000.0),
        "an idle sender proves nothing about the link"
    );
}

#[test]
fn loss_without_a_queue_lowers_the_estimate() {
    let mut sim = Sim::new(2_000_000.0, 10_000_000.0, 0.050);
    sim.drop_every = 5; // 20 % loss
    sim.run(0.0, 5.0, follows);
    assert!(
        sim.est.estimate() < 1_000_000.0,
        "estimate {:.0} under 20 % loss",
        sim.est.estimate()
    );
}

#[test]
fn stays_within_floor_and_ceiling() {
    let mut e = DeliveryEstimator::new(50.0, 100_000.0, 200_000.0);
    assert_eq!(e.estimate(), 100_000.0, "start clamped to the floor");
    let t0 = Instant::now();
    // Everything lost: congestion, but never under the floor.
    let fates: Vec<_> = (0..50)
        .map(|i| PacketFate {
            departure: t0 + Duration::from_millis(i * 10),
            arrival: None,
            size: 1200,
        })
        .collect();
    e.on_feedback(t0 + Duration::from_secs(1), &fates);
    assert_eq!(e.estimate(), 100_000.0);
    e.on_feedback(t0 + Duration::from_secs(2), &[]);
    assert_eq!(e.estimate(), 100_000.0, "empty feedback is no news");
}

/// The e2e slow-viewer scene: a viewer behind a capped link watches a scene of 5 frames/s,
/// each a 54 KB keyframe (about 2.2 Mbit/s), through its own shaper, which drops what the
/// estimate cannot carry. Returns the frame source for [`Sim::run`] (30 ticks/s).
fn plasma_through_a_shaper(t0: Instant) -> impl FnMut(f64, f64) -> f64 {
    let mut shaper = crate::abr::Shaper::new();
    move |t, estimate| {
        let tick = (t * 30.0).round() as u64;
        if !tick.is_multiple_of(6) {
            return 0.0;
        }
        let now = t0 + Duration::from_secs_f64(t);
        match shaper.offer(now, Some(estimate), 54_000, true) {
            crate::abr::Verdict::Send => 54_000.0 * 8.0,
            _ => 0.0,
        }
    }
}

#[test]
fn a_shaped_viewer_recovers_quickly_once_its_link_clears() {
    let mut sim = Sim::new(4_700_000.0, 1_000_000.0, 0.050);
    sim.session_pacing = true;
    let t0 = sim.t0;
    let capped = sim.run(0.0, 25.0, plasma_through_a_shaper(t0));
    let low = capped.last().map_or(0.0, |(_, e)| *e);
    assert!(low < 1_000_000.0, "under the cap the estimate is {low:.0}");
    sim.capacity = 20_000_000.0;
    let samples = sim.run(25.0, 60.0, plasma_through_a_shaper(t0));
    for (t, e) in samples.iter().step_by(10) {
        eprintln!("{t:5.1} s: {:6.0} kbit/s", e / 1000.0);
    }
    // What the whole scene needs, with headers, and the shaper's 1 s of queue to spare.
    let needed = 54_000.0 * 8.0 * 5.0 * 1.05;
    let back = samples
        .iter()
        .find(|(_, e)| *e >= needed)
        .map(|(t, _)| t - 25.0)
        .expect("the estimate came back");
    assert!(
        back < 10.0,
        "back to {needed:.0} bit/s only after {back:.1} s"
    );
    assert!(sim.loss(25.0, 85.0) < 0.01);
}
