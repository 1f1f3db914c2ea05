//! Turns one viewer's encoded frames into RTP packets: H.264 payloading (RFC 6184, STAP-A for
//! SPS/PPS, FU-A for large slices), sequence numbers and 90 kHz timestamps from capture time.
//!
//! Free of I/O, so it is tested directly. Each viewer has its own [`H264Packetizer`], because
//! SSRC, payload type and sequence numbers belong to one RTP stream.

use std::time::Duration;

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;
use rtc::rtp::{Header, Packet};

/// Largest RTP payload we produce; keeps packets under a 1280-byte path MTU with headers,
/// SRTP and TURN overhead.
pub const MAX_PAYLOAD: usize = 1188;

/// The H.264 RTP clock rate.
const CLOCK_RATE: u64 = 90_000;

/// Per-viewer H.264 RTP packetizer.
#[derive(Debug)]
pub struct H264Packetizer {
    payloader: H264Payloader,
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp_base: u32,
}

impl H264Packetizer {
    /// A packetizer for one stream; random initial sequence number and timestamp (RFC 3550).
    pub fn new(ssrc: u32, payload_type: u8) -> Self {
        H264Packetizer {
            payloader: H264Payloader::default(),
            ssrc,
            payload_type,
            sequence: rand::random(),
            timestamp_base: rand::random(),
        }
    }

    /// RTP timestamp for a frame captured `capture_time` after the pipeline started.
    pub fn timestamp(&self, capture_time: Duration) -> u32 {
        let ticks = capture_time.as_micros() as u64 * CLOCK_RATE / 1_000_000;
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// The packets of one access unit (Annex-B). The last one carries the marker bit.
    pub fn packetize(
        &mut self,
        access_unit: &Bytes,
        capture_time: Duration,
    ) -> Result<Vec<Packet>, rtc::shared::error::Error> {
        let payloads = self.payloader.payload(MAX_PAYLOAD, access_unit)?;
        let timestamp = self.timestamp(capture_time);
        let count = payloads.len();
        let packets = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let sequence_number = self.sequence;
                self.sequence = self.sequence.wrapping_add(1);
                Packet {
                    header: Header {
                        version: 2,
                        marker: i + 1 == count,
                        payload_type: self.payload_type,
                        sequence_number,
                        timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect();
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access_unit(idr_len: usize) -> Bytes {
        let mut au = vec![0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xaa]; // SPS
        au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]); // PPS
        au.extend_from_slice(&[0, 0, 0, 1, 0x65]); // IDR slice header byte
        au.extend((0..idr_len).map(|i| (i % 251) as u8 | 1));
        Bytes::from(au)
    }

    #[test]
    fn packets_fit_the_mtu_and_only_the_last_is_marked() {
        let mut p = H264Packetizer::new(1234, 102);
        let packets = p.packetize(&access_unit(10_000), Duration::ZERO).unwrap();
        assert!(
            packets.len() >= 9,
            "10 kB must be fragmented: {}",
            packets.len()
        );
        for (i, pkt) in packets.iter().enumerate() {
            assert!(pkt.payload.len() <= MAX_PAYLOAD);
            assert_eq!(pkt.header.marker, i + 1 == packets.len());
            assert_eq!(pkt.header.ssrc, 1234);
            assert_eq!(pkt.header.payload_type, 102);
        }
        // SPS and PPS travel together in the first packet (STAP-A, type 24).
        assert_eq!(packets[0].payload[0] & 0x1f, 24);
    }

    #[test]
    fn sequence_numbers_are_consecutive_across_frames() {
        let mut p = H264Packetizer::new(1, 96);
        let a = p.packetize(&access_unit(3000), Duration::ZERO).unwrap();
        let b = p
            .packetize(&access_unit(3000), Duration::from_millis(33))
            .unwrap();
        let seqs: Vec<u16> = a
            .iter()
            .chain(&b)
            .map(|p| p.header.sequence_number)
            .collect();
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1));
        }
    }

    #[test]
    fn timestamps_follow_capture_time_at_90khz() {
        let mut p = H264Packetizer::new(1, 96);
        let a = p
            .packetize(&access_unit(100), Duration::from_millis(100))
            .unwrap();
        let b = p
            .packetize(&access_unit(100), Duration::from_millis(1100))
            .unwrap();
        let diff = b[0].header.timestamp.wrapping_sub(a[0].header.timestamp);
        assert_eq!(diff, 90_000);
        assert!(a
            .iter()
            .all(|pk| pk.header.timestamp == a[0].header.timestamp));
    }
}
