//! Turns one viewer's encoded frames into RTP packets: H.264 payloading (RFC 6184, STAP-A for
//! SPS/PPS, FU-A for large slices) or VP8 payloading (RFC 7741, with a 15-bit picture ID on
//! every packet), sequence numbers and 90 kHz timestamps from capture time.
//!
//! Free of I/O, so it is tested directly. Each viewer has its own [`VideoPacketizer`], because
//! SSRC, payload type, sequence numbers and picture IDs belong to one RTP stream.
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

use crate::video::Codec;

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
/// agrees to it (the negotiated id is then passed to [`VideoPacketizer::with_playout_delay`]).
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

/// How a frame is cut into payloads.
#[derive(Debug)]
enum Payloading {
    H264(H264Payloader),
    /// VP8, with the picture ID of the next frame.
    Vp8 {
        picture_id: u16,
    },
}

/// Per-viewer RTP packetizer for H.264 or VP8.
#[derive(Debug)]
pub struct VideoPacketizer {
    payloading: Payloading,
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp_base: u32,
    /// The negotiated one-byte extension id of playout-delay, if the browser agreed to it.
    playout_delay_id: Option<u8>,
}

/// The packetizer of the H.264 streams (the name it had before VP8).
pub type H264Packetizer = VideoPacketizer;

impl VideoPacketizer {
    /// An H.264 packetizer for one stream; random initial sequence number and timestamp
    /// (RFC 3550).
    pub fn new(ssrc: u32, payload_type: u8) -> Self {
        Self::for_codec(Codec::H264, ssrc, payload_type)
    }

    /// A packetizer of `codec` for one stream; random initial sequence number, timestamp and
    /// (VP8) picture ID.
    pub fn for_codec(codec: Codec, ssrc: u32, payload_type: u8) -> Self {
        VideoPacketizer {
            payloading: match codec {
                Codec::H264 => Payloading::H264(H264Payloader::default()),
                Codec::Vp8 => Payloading::Vp8 {
                    picture_id: rand::random::<u16>() & 0x7fff,
                },
            },
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

    /// The packets of one encoded picture (an H.264 access unit in Annex-B, or a VP8 frame).
    /// The last one carries the marker bit.
    pub fn packetize(
        &mut self,
        access_unit: &Bytes,
        capture_time: Duration,
    ) -> Result<Vec<Packet>, rtc::shared::error::Error> {
        let payloads = match &mut self.payloading {
            Payloading::H264(p) => p.payload(MAX_PAYLOAD, access_unit)?,
            Payloading::Vp8 { picture_id } => {
                let payloads = vp8_payloads(access_unit, *picture_id);
                *picture_id = (*picture_id + 1) & 0x7fff;
                payloads
            }
        };
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

/// Bytes of the VP8 payload descriptor we write: X, I with a 15-bit picture ID.
const VP8_DESCRIPTOR: usize = 4;

/// One VP8 frame as RTP payloads (RFC 7741 section 4.2): every packet starts with a payload
/// descriptor carrying the frame's 15-bit picture ID (so a receiver can tell a lost frame from
/// a lost packet); S is set on the first packet only, partition index 0 (the frame is sent as
/// one piece).
fn vp8_payloads(frame: &Bytes, picture_id: u16) -> Vec<Bytes> {
    let chunk = MAX_PAYLOAD - VP8_DESCRIPTOR;
    frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut out = Vec::with_capacity(VP8_DESCRIPTOR + part.len());
            // X=1 (extension byte follows), S on the first packet, PID 0.
            out.push(if i == 0 { 0x90 } else { 0x80 });
            // I=1: a picture ID follows.
            out.push(0x80);
            // M=1: 15 bits.
            out.push(0x80 | (picture_id >> 8) as u8 & 0x7f);
            out.push(picture_id as u8);
            out.extend_from_slice(part);
            Bytes::from(out)
        })
        .collect()
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
    fn vp8_frames_carry_a_descriptor_with_a_picture_id_that_counts_frames() {
        use rtc::rtp::codec::vp8::Vp8Packet;
        use rtc::rtp::packetizer::Depacketizer;

        let mut p = VideoPacketizer::for_codec(Codec::Vp8, 9, 96).with_playout_delay(Some(3));
        let frame = Bytes::from((0..5000).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
        let a = p.packetize(&frame, Duration::ZERO).unwrap();
        let b = p.packetize(&frame, Duration::from_millis(33)).unwrap();
        assert_eq!(a.len(), 5, "5000 bytes in 1184-byte pieces");
        let mut ids = Vec::new();
        let mut rebuilt = Vec::new();
        for (i, pkt) in a.iter().enumerate() {
            assert!(pkt.payload.len() <= MAX_PAYLOAD);
            assert_eq!(pkt.header.marker, i + 1 == a.len());
            assert!(
                pkt.header.get_extension(3).is_some(),
                "playout delay on VP8 too"
            );
            let mut d = Vp8Packet::default();
            rebuilt.extend_from_slice(&d.depacketize(&pkt.payload).unwrap());
            assert_eq!(d.s, u8::from(i == 0), "S on the first packet only");
            assert_eq!(d.i, 1);
            ids.push(d.picture_id);
        }
        assert_eq!(rebuilt, frame.to_vec(), "the frame comes back whole");
        assert!(
            ids.iter().all(|&id| id == ids[0]),
            "one picture ID per frame"
        );
        let mut d = Vp8Packet::default();
        d.depacketize(&b[0].payload).unwrap();
        assert_eq!(d.picture_id, (ids[0] + 1) & 0x7fff);
        // The ID wraps within 15 bits.
        let mut p = VideoPacketizer::for_codec(Codec::Vp8, 9, 96);
        p.payloading = Payloading::Vp8 { picture_id: 0x7fff };
        p.packetize(&frame, Duration::ZERO).unwrap();
        let next = p.packetize(&frame, Duration::ZERO).unwrap();
        let mut d = Vp8Packet::default();
        d.depacketize(&next[0].payload).unwrap();
        assert_eq!(d.picture_id, 0);
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
