//! How fast each viewer's pacer lets packets out, given its bandwidth estimate: one rule, used
//! by the session's congestion controller (`session::feedback`) and by the estimator's
//! simulation tests.

use super::estimator::DeliveryEstimator;

/// The pacer runs this much faster than the estimate while the link's capacity is known
/// (after congestion, near the rate where it happened). The encoder target (85 % of the
/// estimate) and the per-viewer shaper keep the average under the estimate, so the pacer only
/// spreads each frame's burst, and at this rate a large frame does not overrun a small router
/// buffer on a link the estimate has just measured.
pub const PACING_FACTOR: f64 = 1.2;
/// The pacer's factor while no congestion has been seen. The estimate then only grows while
/// the sender uses most of it, which screen content rarely does, so on a LAN it stays near its
/// start (`--bitrate` / 0.85) far under what the link carries: at 10x (47 Mbit/s with the
/// default 4000 kbit/s) a 150 KB keyframe leaves in 25 ms instead of 100 ms at 2.5x. A thin
/// link shows its limit within a second (the 1 Mbit/s e2e test settles in about 2 s either way),
/// and from then on [`PACING_FACTOR`] applies.
pub const OPEN_PACING_FACTOR: f64 = 10.0;
/// Most the pacer lets out at once after an idle spell (about three packets). Its default, a
/// tenth of a second at the pacing rate, would put the head of every large frame on the wire
/// at line rate after the quiet gap before it, and a router with a small buffer drops that.
pub const PACER_BURST_BITS: f64 = 30_000.0;
/// The pacer never runs slower than this, bit/s.
pub const PACING_FLOOR_BPS: f64 = 250_000.0;

/// The pacing rate for this estimator's state, bit/s.
pub fn pacing_rate_bps(estimator: &DeliveryEstimator) -> f64 {
    let factor = if estimator.capacity().is_some() {
        PACING_FACTOR
    } else {
        OPEN_PACING_FACTOR
    };
    (estimator.estimate() * factor).max(PACING_FLOOR_BPS)
}
