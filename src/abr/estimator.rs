//! One viewer's bandwidth estimate from transport-wide feedback: what the link delivered,
//! whether a queue is standing in it, and how many packets it lost.
//!
//! Pure (the caller passes the time and each packet's fate), so the whole control law is
//! tested against a simulated bottleneck in this file. The session feeds it the packet
//! reports the viewer's TWCC feedback resolves (see `session::feedback`).
//!
//! Why not Google Congestion Control's trendline filter: screen content is bursty (a
//! full-screen change is one frame of 100+ kbit, then nearly nothing), and a small router buffer
//! (the tests cap a link with `tbf ... latency 50ms`) both turn every large frame into a delay
//! spike. A delay-gradient detector reads those spikes as overuse and, once it has driven the
//! rate to its floor, sends too little to ever see the link free again. This estimator instead
//! asks the two questions a person would:
//!
//! * **Is there a standing queue?** The smallest queuing delay (one-way delay above its
//!   10-second minimum) among the packets of the last [`STANDING_WINDOW`]. A burst queues
//!   and drains between frames, so its minimum stays near zero; a link that is overused never
//!   drains, so the minimum rises. Above [`QUEUE_HIGH`], or with more than [`LOSS_HIGH`] of the
//!   packets lost, the link is **congested**. A sender whose packets come in short bursts
//!   (a viewer whose frames are being dropped) spans too little of the window to show a
//!   standing queue; then a window in which *no* packet met a queue counts as clear, so such a
//!   viewer's estimate can still grow once its link has room again.
//! * **What can the link carry?** While a queue stands in it, the link is busy, so the
//!   spacing at which queued packets *arrive* is its rate (its capacity). Without such packets,
//!   the rate at which packets arrived over the last [`RATE_WINDOW`] (a congested link that
//!   carried little while the sender idled gets no more). On congestion the estimate drops to
//!   [`BETA`] of that rate (never up; with too few packets to measure a rate, by half the
//!   loss share), that rate is remembered as the link's
//!   capacity, and only packets sent after the decrease count from then on (those still
//!   queued were sent at the old rate and would say the same thing again).
//!
//! With no queue (under [`QUEUE_LOW`]) and little loss (under [`LOSS_LOW`]) the estimate
//! grows, but only while the sender uses at least [`MIN_USAGE`] of it (a still screen proves
//! nothing about the link): back to [`REGAIN_BELOW`] of the capacity last seen by
//! [`FAR_GROWTH`] per second, then slowly ([`NEAR_STEP`] of that capacity, at least
//! [`NEAR_STEP_MIN_BPS`], per second) near it, and by [`FAR_GROWTH`] per second again once it has passed it by
//! [`NEAR_BAND`], since then the link has changed. A clear link that *delivered* more than
//! the estimate, and more than [`CHANGED_ABOVE`] times the capacity last seen (or with none
//! seen), has changed too: the estimate takes that delivered rate at once. A viewer whose
//! frames are dropped for it sends little, in paced bursts, so without this its estimate took
//! 20-60 s to climb back once its link had room again. The estimate stays within the floor
//! and ceiling it was given.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Window over which the standing queue is measured.
pub const STANDING_WINDOW: Duration = Duration::from_millis(300);
/// A standing queue above this means congestion.
pub const QUEUE_HIGH: Duration = Duration::from_millis(20);
/// The estimate only grows while the standing queue is below this.
pub const QUEUE_LOW: Duration = Duration::from_millis(8);
/// Window over which loss, the delivered rate and the sent rate are measured.
pub const RATE_WINDOW: Duration = Duration::from_millis(500);
/// Loss above this share of the packets means congestion.
pub const LOSS_HIGH: f64 = 0.08;
/// The estimate only grows while loss is below this share.
pub const LOSS_LOW: f64 = 0.02;
/// On congestion the estimate becomes this share of the delivered rate.
pub const BETA: f64 = 0.85;
/// A packet that waited longer than this in the link found it busy.
pub const BUSY_QUEUE: Duration = Duration::from_millis(2);
/// Near the capacity last seen, the estimate grows by this share of it per second.
pub const NEAR_STEP: f64 = 0.05;
/// Near the capacity, the estimate grows by at least this many bit/s per second.
pub const NEAR_STEP_MIN_BPS: f64 = 25_000.0;
/// Under this share of the capacity last seen, the estimate grows by [`FAR_GROWTH`] (a
/// loss-driven decrease can leave it there).
pub const REGAIN_BELOW: f64 = 0.8;
/// "Near" means under this multiple of the capacity last seen.
pub const NEAR_BAND: f64 = 1.5;
/// A clear link that delivered more than this multiple of the capacity last seen has changed
/// (see [`DeliveryEstimator`]'s growth rules).
pub const CHANGED_ABOVE: f64 = 1.1;
/// Away from any known capacity, the estimate grows by this factor per second.
pub const FAR_GROWTH: f64 = 1.12;
/// The estimate only grows while the sender uses at least this share of it.
pub const MIN_USAGE: f64 = 0.65;
/// How long the lowest one-way delay is remembered as the path's base delay.
pub const BASE_WINDOW: Duration = Duration::from_secs(10);
/// Fewest packets for a decrease on loss alone (no rate measured).
const LOSS_ONLY_PACKETS: usize = 24;
/// Largest cut one loss-only decrease makes.
const LOSS_ONLY_FACTOR: f64 = 0.75;
/// Fewest packets in [`RATE_WINDOW`] for loss and rates to count.
const MIN_PACKETS: usize = 8;

/// The fate of one sent packet, as the receiver's feedback told it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacketFate {
    /// When it left this endpoint (after any pacing).
    pub departure: Instant,
    /// When it arrived, on the receiver's clock; `None` if it was lost.
    pub arrival: Option<Duration>,
    /// Size on the wire, in bytes.
    pub size: usize,
}

/// What the estimator last concluded, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// Smallest queuing delay over [`STANDING_WINDOW`].
    pub standing_queue: Option<Duration>,
    /// Share of packets lost over [`RATE_WINDOW`].
    pub loss: Option<f64>,
    /// Rate the link delivered over [`RATE_WINDOW`], bit/s.
    pub delivered_bps: Option<f64>,
    /// Rate this endpoint sent over [`RATE_WINDOW`], bit/s.
    pub sent_bps: Option<f64>,
    /// Rate at which packets that found the link busy arrived: its capacity, bit/s.
    pub busy_bps: Option<f64>,
    /// Packets sent over [`RATE_WINDOW`] (since the last decrease).
    pub packets: usize,
}

/// The estimator's state.
#[derive(Debug, Clone)]
pub struct DeliveryEstimator {
    estimate: f64,
    floor: f64,
    ceiling: f64,
    epoch: Option<Instant>,
    /// (departure s, one-way delay s), increasing delays: a monotonic deque for the base.
    base: VecDeque<(f64, f64)>,
    /// (departure s, arrival s or None, bits) of the recent packets, in departure order.
    recent: VecDeque<(f64, Option<f64>, f64)>,
    /// Packets sent before this (epoch seconds) no longer count: the last decrease.
    fresh_from: f64,
    last_growth: Option<Instant>,
    capacity: Option<f64>,
    signals: Signals,
}

impl DeliveryEstimator {
    /// An estimator starting at `start` bit/s that never leaves `floor..=ceiling`.
    pub fn new(start: f64, floor: f64, ceiling: f64) -> Self {
        let floor = floor.max(1.0);
        let ceiling = ceiling.max(floor);
        DeliveryEstimator {
            estimate: start.clamp(floor, ceiling),
            floor,
            ceiling,
            epoch: None,
            base: VecDeque::new(),
            recent: VecDeque::new(),
            fresh_from: f64::NEG_INFINITY,
            last_growth: None,
            capacity: None,
            signals: Signals::default(),
        }
    }

    /// The current estimate, bit/s.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The capacity the link showed at its last congestion, bit/s, while the estimate is near it.
    pub fn capacity(&self) -> Option<f64> {
        self.capacity
    }

    /// What the last feedback showed.
    pub fn signals(&self) -> Signals {
        self.signals
    }

    /// Takes the fates of packets the receiver just reported (in send order) at `now`.
    pub fn on_feedback(&mut self, now: Instant, fates: &[PacketFate]) {
        if fates.is_empty() {
            return;
        }
        let epoch = *self.epoch.get_or_insert(fates[0].departure);
        for fate in fates {
            let departed = fate
                .departure
                .saturating_duration_since(epoch)
                .as_secs_f64();
            let arrived = fate.arrival.map(|a| a.as_secs_f64());
            if let Some(arrived) = arrived {
                let delay = arrived - departed;
                while self.base.back().is_some_and(|(_, d)| *d >= delay) {
                    self.base.pop_back();
                }
                self.base.push_back((departed, delay));
            }
            self.recent
                .push_back((departed, arrived, fate.size as f64 * 8.0));
        }
        let newest = self.recent.back().map_or(0.0, |(d, _, _)| *d);
        let keep = RATE_WINDOW.max(STANDING_WINDOW).as_secs_f64();
        while self
            .recent
            .front()
            .is_some_and(|(d, _, _)| *d < newest - keep)
        {
            self.recent.pop_front();
        }
        while self
            .base
            .front()
            .is_some_and(|(d, _)| *d < newest - BASE_WINDOW.as_secs_f64())
            && self.base.len() > 1
        {
            self.base.pop_front();
        }
        self.signals = self.measure(newest);
        self.steer(now);
    }

    fn measure(&self, newest: f64) -> Signals {
        let base = self.base.front().map(|(_, d)| *d);
        let queued = |d: f64, a: Option<f64>| Some(a? - d - base?);
        let fresh = |from: f64| {
            let from = from.max(self.fresh_from);
            self.recent.iter().filter(move |(d, _, _)| *d >= from)
        };
        // Standing queue: the smallest queuing delay of packets spanning most of the window.
        let standing: Vec<(f64, f64)> = fresh(newest - STANDING_WINDOW.as_secs_f64())
            .filter_map(|(d, a, _)| Some((*d, queued(*d, *a)?)))
            .collect();
        let spans =
            |v: &[(f64, f64)]| v.last().map_or(0.0, |l| l.0) - v.first().map_or(0.0, |f| f.0);
        let queues = standing.iter().map(|(_, q)| *q);
        let (min, max) = queues.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), q| {
            (lo.min(q), hi.max(q))
        });
        let standing_queue = if standing.len() < 3 {
            None
        } else if spans(&standing) >= STANDING_WINDOW.as_secs_f64() / 2.0 {
            Some(Duration::from_secs_f64(min.max(0.0)))
        } else {
            // Bursts too short to show a standing queue: clear only if no packet met a queue
            // (the largest delay is reported, so this never reads as congestion).
            (max < QUEUE_LOW.as_secs_f64()).then(|| Duration::from_secs_f64(max.max(0.0)))
        };
        let window: Vec<_> = fresh(newest - RATE_WINDOW.as_secs_f64()).collect();
        // Right after a decrease, wait until the packets sent since span half a window: the
        // first few still meet the queue the old rate left behind.
        let matured = newest - self.fresh_from >= RATE_WINDOW.as_secs_f64() / 2.0;
        if window.len() < MIN_PACKETS || !matured {
            return Signals {
                standing_queue,
                ..Signals::default()
            };
        }
        let lost = window.iter().filter(|(_, a, _)| a.is_none()).count();
        let loss = lost as f64 / window.len() as f64;
        let first_sent = window.first().map_or(newest, |(d, _, _)| *d);
        let span = |secs: f64| secs.max(RATE_WINDOW.as_secs_f64() / 4.0);
        let sent_bits: f64 = window.iter().map(|(_, _, b)| *b).sum();
        // Delivered rate, from the packets that arrived (in arrival order: a FIFO link keeps
        // the send order).
        let arrived: Vec<(f64, f64)> = window
            .iter()
            .filter_map(|(_, a, b)| Some((a.as_ref().copied()?, *b)))
            .collect();
        let (first, last) = match (arrived.first(), arrived.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => (0.0, 0.0),
        };
        // A handful of packets over a few milliseconds says nothing about a rate.
        let enough =
            arrived.len() >= MIN_PACKETS && last - first >= RATE_WINDOW.as_secs_f64() / 4.0;
        let delivered_bps = enough.then(|| {
            // The first packet's bits arrived at the window's start, not within it.
            let bits: f64 = arrived.iter().skip(1).map(|(_, b)| *b).sum();
            bits / span(last - first)
        });
        let busy = BUSY_QUEUE.as_secs_f64();
        let (mut busy_bits, mut busy_time, mut pairs) = (0.0, 0.0, 0);
        // Only packets sent one after the other that both arrived: a lost packet between
        // them took link time that the survivors' spacing would otherwise be charged with.
        for pair in window.windows(2) {
            let ((_, Some(prev), _), (sent, Some(cur), bits)) = (*pair[0], *pair[1]) else {
                continue;
            };
            if queued(sent, Some(cur)).is_some_and(|q| q > busy) && cur >= prev {
                busy_bits += bits;
                busy_time += cur - prev;
                pairs += 1;
            }
        }
        let busy_bps = (pairs >= 5 && busy_time >= 0.010).then(|| busy_bits / busy_time);
        Signals {
            standing_queue,
            loss: Some(loss),
            delivered_bps,
            sent_bps: Some(sent_bits / span(newest - first_sent)),
            busy_bps,
            packets: window.len(),
        }
    }

    fn steer(&mut self, now: Instant) {
        let s = self.signals;
        let queue = s.standing_queue.unwrap_or_default();
        let loss = s.loss.unwrap_or(0.0);
        let since = self
            .last_growth
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64())
            .min(0.5);
        self.last_growth = Some(now);
        if queue > QUEUE_HIGH || loss > LOSS_HIGH {
            // What the link carried is the measure; only without one does loss alone scale
            // the estimate down (compounding that while old packets drain would sink it).
            let basis = s.busy_bps.or(s.delivered_bps);
            let lowered = match basis {
                Some(basis) => {
                    self.capacity = Some(basis);
                    BETA * basis
                }
                // One lost burst among a handful of packets is not worth halving for.
                None if s.packets < LOSS_ONLY_PACKETS => return,
                None => self.estimate * (1.0 - loss / 2.0).max(LOSS_ONLY_FACTOR),
            };
            self.estimate = lowered.clamp(self.floor, self.estimate);
            if let Some(epoch) = self.epoch {
                self.fresh_from = now.saturating_duration_since(epoch).as_secs_f64();
            }
            return;
        }
        let clear = s.standing_queue.is_some_and(|q| q < QUEUE_LOW) && loss < LOSS_LOW;
        // What a clear link delivered, it can carry. Once that is well above the capacity
        // last seen (or none was seen), the link has changed: the estimate takes the rate at
        // once instead of finding it by slow growth. This matters for a viewer whose frames
        // are being dropped for it: it sends in bursts, and its estimate would otherwise
        // need tens of seconds to climb back to the shared stream's rate.
        if let Some(delivered) = s.delivered_bps.filter(|d| clear && *d > self.estimate) {
            if self.capacity.is_none_or(|c| delivered > c * CHANGED_ABOVE) {
                self.capacity = None;
                self.estimate = delivered.min(self.ceiling);
                return;
            }
        }
        let used = s
            .sent_bps
            .is_some_and(|sent| sent >= MIN_USAGE * self.estimate);
        if !clear || !used {
            return;
        }
        let grown = match self.capacity {
            // Well under what the link carried: back up to it quickly.
            Some(c) if self.estimate < c * REGAIN_BELOW => {
                (self.estimate * FAR_GROWTH.powf(since)).min(c * REGAIN_BELOW)
            }
            Some(c) if self.estimate < c * NEAR_BAND => {
                self.estimate + (NEAR_STEP * c).max(NEAR_STEP_MIN_BPS) * since
            }
            _ => {
                self.capacity = None;
                self.estimate * FAR_GROWTH.powf(since)
            }
        };
        self.estimate = grown.clamp(self.floor, self.ceiling);
    }
}

#[cfg(test)]
#[path = "estimator_tests.rs"]
mod tests;
