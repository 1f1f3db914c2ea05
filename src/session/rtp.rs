//! Turns one viewer's encoded frames into RTP packets: H.264 payloading (RFC 6184, STAP-A for
//! SPS/PPS, FU-A for large slices), sequence numbers and 90 kHz timestamps from capture time.
//!
//! Free of I/O, so it is tested directly. Each viewer has its own [`H264Packetizer`], because
//! SSRC, payload type and sequence numbers belong to one RTP stream.
//!
//! When the browser agreed to the playout-delay header extension ([`PLAYOUT_DELAY_URI`]),
//! every packet carries min = max = 0: "render each frame as soon as it is decoded". Chromium
//! then skips its jitter buffer's extra delay, which is most of the receive-side latency of a
//! desktop stream sent over a LAN.

use std::time::Duration;

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;
use rtc::rtp::{Header, Packet};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpHeaderExtensionCapability, RTCRtpParameters, RtpCodecKind,
};
use webrtc::peer_connection::MediaEngine;

/// The RTP header extension that tells a WebRTC receiver how long it may buffer frames.
pub const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

/// The id the answer gave the playout-delay extension, if the browser offered it.
pub fn negotiated_playout_delay(parameters: &RTCRtpParameters) -> Option<u8> {
    parameters
        .header_extensions
        .iter()
        .find(|ext| ext.uri == PLAYOUT_DELAY_URI)
        .and_then(|ext| u8::try_from(ext.id).ok())
}

/// The playout-delay payload for min = max = 0 (two 12-bit values in 10 ms units).
const ZERO_PLAYOUT_DELAY: [u8; 3] = [0, 0, 0];

/// Offers the playout-delay extension for video, so an answer to a browser that offered it
/// agrees to it (the negotiated id is then passed to [`H264Packetizer::with_playout_delay`]).
pub fn register_playout_delay(media: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: PLAYOUT_DELAY_URI.to_owned(),
        },
        RtpCodecKind::Video,
        None,
    )
}

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
    /// The negotiated one-byte extension id of playout-delay, if the browser agreed to it.
    playout_delay_id: Option<u8>,
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
            playout_delay_id: None,
        }
    }

    /// Puts a zero playout delay (render at once) on every packet, under the negotiated
    /// one-byte header extension `id` (1..=14; other ids are ignored, as RFC 8285's one-byte
    /// form cannot carry them).
    pub fn with_playout_delay(mut self, id: Option<u8>) -> Self {
        self.playout_delay_id = id.filter(|id| (1..=14).contains(id));
        self
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
        let mut packets = Vec::with_capacity(count);
        for (i, payload) in payloads.into_iter().enumerate() {
            let sequence_number = self.sequence;
            self.sequence = self.sequence.wrapping_add(1);
            let mut header = Header {
                version: 2,
                marker: i + 1 == count,
                payload_type: self.payload_type,
                sequence_number,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            };
            if let Some(id) = self.playout_delay_id {
                header.extension = true;
                header.extension_profile = rtc::rtp::header::EXTENSION_PROFILE_ONE_BYTE;
                header.set_extension(id, Bytes::from_static(&ZERO_PLAYOUT_DELAY))?;
            }
            packets.push(Packet { header, payload });
        }
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
    fn playout_delay_zero_rides_on_every_packet_when_negotiated() {
        use rtc::rtp::extension::playout_delay_extension::PlayoutDelayExtension;
        use rtc::shared::marshal::{Marshal, Unmarshal};

        let mut p = H264Packetizer::new(7, 102).with_playout_delay(Some(6));
        let packets = p.packetize(&access_unit(5000), Duration::ZERO).unwrap();
        assert!(packets.len() > 1);
        for pkt in &packets {
            let mut raw = pkt
                .header
                .get_extension(6)
                .expect("extension 6 on every packet");
            let delay = PlayoutDelayExtension::unmarshal(&mut raw).unwrap();
            assert_eq!((delay.min_delay, delay.max_delay), (0, 0));
            // The packet survives a marshal/unmarshal round trip with the extension intact.
            let bytes = pkt.marshal().unwrap();
            let back = Packet::unmarshal(&mut bytes.clone()).unwrap();
            assert!(back.header.get_extension(6).is_some());
            assert_eq!(back.payload, pkt.payload);
        }
        let mut plain = H264Packetizer::new(7, 102).with_playout_delay(None);
        let packets = plain.packetize(&access_unit(100), Duration::ZERO).unwrap();
        assert!(packets.iter().all(|p| !p.header.extension));
        let mut out_of_range = H264Packetizer::new(7, 102).with_playout_delay(Some(15));
        let packets = out_of_range
            .packetize(&access_unit(100), Duration::ZERO)
            .unwrap();
        assert!(packets.iter().all(|p| !p.header.extension));
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
