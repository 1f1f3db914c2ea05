//! What the viewer's RTCP says about its link, published into the session's [`LinkStats`].
//!
//! * [`ReportingEstimator`] is the congestion controller webrtc-rs keeps inside the
//!   interceptor chain: it hands the fate of every packet the viewer's transport-wide feedback
//!   resolved to vnrit's [`DeliveryEstimator`] (pure, in `abr::estimator`), publishes the
//!   estimate after every update (the chain offers no getter), and paces at a multiple of it.
//! * [`ReportWatcher`] is an interceptor between the sender-report generator and the wire. It
//!   remembers when each outgoing sender report (SR) left and, for every reception report
//!   about our video stream, records the loss fraction and the round-trip time
//!   (arrival − SR departure − the receiver's delay since that SR, RFC 3550 §6.4.1).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    BandwidthEstimator, EstimatorStats, Interceptor, Packet, PacketReport, StreamInfo, TaggedPacket,
};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::abr::estimator::{DeliveryEstimator, PacketFate};
use crate::abr::pacing::pacing_rate_bps;
use crate::abr::LinkStats;

/// Drives a [`DeliveryEstimator`] from the chain's packet reports, publishes its estimate into
/// [`LinkStats`], and hands the chain (the pacer) the rate `abr::pacing` derives from it.
pub struct ReportingEstimator {
    inner: DeliveryEstimator,
    link: Arc<LinkStats>,
    fates: Vec<PacketFate>,
}

impl ReportingEstimator {
    /// Wraps `inner`, publishing to `link` (the initial estimate at once).
    pub fn new(inner: DeliveryEstimator, link: Arc<LinkStats>) -> Self {
        link.set_bwe_bps(inner.estimate());
        ReportingEstimator {
            inner,
            link,
            fates: Vec::new(),
        }
    }
}

impl BandwidthEstimator for ReportingEstimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.fates.clear();
        self.fates.extend(reports.iter().map(|r| PacketFate {
            departure: r.departure,
            arrival: if r.arrived { r.arrival } else { None },
            size: r.size,
        }));
        let before = self.inner.estimate();
        self.inner.on_feedback(now, &self.fates);
        let after = self.inner.estimate();
        if (after - before).abs() >= 1000.0 {
            let s = self.inner.signals();
            tracing::trace!(
                "bandwidth estimate {:.0} -> {:.0} kbit/s (queue {:?}, loss {:?}, delivered {:?})",
                before / 1000.0,
                after / 1000.0,
                s.standing_queue,
                s.loss,
                s.delivered_bps.map(|b| (b / 1000.0).round())
            );
        }
        self.link.set_bwe_bps(after);
    }

    fn target_bitrate(&self) -> f64 {
        pacing_rate_bps(&self.inner)
    }

    fn stats(&self) -> EstimatorStats {
        let mut stats = EstimatorStats::default();
        stats.delay_based_bitrate = Some(self.inner.estimate());
        stats.packet_loss = self.inner.signals().loss;
        stats
    }
}

/// How many recent sender reports are remembered for RTT matching.
const SR_HISTORY: usize = 16;

/// The "middle 32 bits" of a 64-bit NTP timestamp, as receiver reports echo them (LSR).
fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// The round-trip time a reception report implies, given when the SR it echoes left.
fn round_trip(arrived: Instant, sr_sent: Instant, delay_since_sr: u32) -> Option<Duration> {
    let held = Duration::from_secs_f64(f64::from(delay_since_sr) / 65536.0);
    arrived.checked_duration_since(sr_sent)?.checked_sub(held)
}

/// The interceptor; register it between the report generators and the pacer.
pub struct ReportWatcher {
    link: Arc<LinkStats>,
    video_ssrcs: HashSet<u32>,
    sent: VecDeque<(u32, u32, Instant)>,
    inbound: VecDeque<TaggedPacket>,
    outbound: VecDeque<TaggedPacket>,
}

impl ReportWatcher {
    /// A watcher publishing to `link`.
    pub fn new(link: Arc<LinkStats>) -> Self {
        ReportWatcher {
            link,
            video_ssrcs: HashSet::new(),
            sent: VecDeque::with_capacity(SR_HISTORY),
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
        }
    }

    fn reception(&mut self, arrived: Instant, report: &ReceptionReport) {
        if !self.video_ssrcs.contains(&report.ssrc) {
            return;
        }
        self.link.set_loss(f64::from(report.fraction_lost) / 256.0);
        if report.last_sender_report == 0 {
            return; // no SR received yet by the viewer
        }
        let sent = self
            .sent
            .iter()
            .rev()
            .find(|(ssrc, lsr, _)| *ssrc == report.ssrc && *lsr == report.last_sender_report);
        if let Some(rtt) = sent.and_then(|(_, _, at)| round_trip(arrived, *at, report.delay)) {
            self.link.set_rtt(rtt);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ReportWatcher {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                let any = packet.as_any();
                let reports = if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                    &rr.reports
                } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                    &sr.reports
                } else {
                    continue;
                };
                for report in reports {
                    self.reception(msg.now, report);
                }
            }
        }
        self.inbound.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.inbound.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for sr in packets
                .iter()
                .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
            {
                if self.sent.len() == SR_HISTORY {
                    self.sent.pop_front();
                }
                self.sent
                    .push_back((sr.ssrc, ntp_middle(sr.ntp_time), msg.now));
            }
        }
        self.outbound.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.outbound.pop_front()
    }
}

impl Interceptor for ReportWatcher {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("video/") {
            self.video_ssrcs.insert(info.ssrc);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.video_ssrcs.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_middle_bits_are_what_lsr_echoes() {
        assert_eq!(ntp_middle(0x1234_5678_9abc_def0), 0x5678_9abc);
    }

    #[test]
    fn round_trip_subtracts_the_receivers_hold_time() {
        let t0 = Instant::now();
        let arrived = t0 + Duration::from_millis(130);
        // Held 100 ms (6553.6 units of 1/65536 s): 30 ms on the wire both ways.
        let rtt = round_trip(arrived, t0, 6554).expect("a round trip");
        assert!((rtt.as_secs_f64() - 0.030).abs() < 0.001, "{rtt:?}");
        assert_eq!(round_trip(t0, arrived, 0), None, "arrived before sent");
        assert_eq!(
            round_trip(arrived, t0, 65536),
            None,
            "held longer than the trip"
        );
    }
}
