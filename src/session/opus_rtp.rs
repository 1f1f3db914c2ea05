//! Turns one listener's Opus packets into RTP packets (RFC 7587): one Opus packet per RTP
//! packet, 48 kHz timestamps from capture time, the marker bit on the first packet after a gap
//! (start of a talkspurt, after skipped silence).
//!
//! Free of I/O. Each viewer has its own [`OpusPacketizer`], because SSRC, payload type and
//! sequence numbers belong to one RTP stream.

use std::time::Duration;

use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp::{Header, Packet};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec};

use crate::audio::{AudioFrame, FRAME_DURATION, SAMPLE_RATE};

/// The `a=fmtp` line to register the Opus codec with (10 ms minimum packet time, in-band FEC).
pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";

/// The payload type browsers use for Opus; the negotiated one is read from the sender.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// The Opus codec to register on the media engine (`RtpCodecKind::Audio`) and to put in the
/// audio track's encoding: 48 kHz, 2 channels, [`OPUS_FMTP`], transport-wide congestion control
/// feedback.
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: SAMPLE_RATE,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![RTCPFeedback {
            typ: "transport-cc".to_owned(),
            parameter: String::new(),
        }],
    }
}

/// Per-viewer Opus RTP packetizer.
#[derive(Debug)]
pub struct OpusPacketizer {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp_base: u32,
    last_capture: Option<Duration>,
}

impl OpusPacketizer {
    /// A packetizer for one stream; random initial sequence number and timestamp (RFC 3550).
    pub fn new(ssrc: u32, payload_type: u8) -> Self {
        OpusPacketizer {
            ssrc,
            payload_type,
            sequence: rand::random(),
            timestamp_base: rand::random(),
            last_capture: None,
        }
    }

    /// RTP timestamp (48 kHz) of audio captured `capture_time` after the clock origin.
    pub fn timestamp(&self, capture_time: Duration) -> u32 {
        let ticks = capture_time.as_nanos() * u128::from(SAMPLE_RATE) / 1_000_000_000;
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// The RTP packet carrying `frame`.
    pub fn packetize(&mut self, frame: &AudioFrame) -> Packet {
        let contiguous = self
            .last_capture
            .is_some_and(|last| frame.timestamp.saturating_sub(last) < FRAME_DURATION * 3 / 2);
        self.last_capture = Some(frame.timestamp);
        let sequence_number = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        Packet {
            header: Header {
                version: 2,
                marker: !contiguous,
                payload_type: self.payload_type,
                sequence_number,
                timestamp: self.timestamp(frame.timestamp),
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: frame.data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ms: u64) -> AudioFrame {
        AudioFrame {
            data: bytes::Bytes::from_static(&[0xfc, 1, 2, 3]),
            timestamp: Duration::from_millis(ms),
            samples: 960,
        }
    }

    #[test]
    fn the_codec_is_opus_48k_stereo_with_fec() {
        let codec = opus_codec();
        assert_eq!(codec.mime_type.to_ascii_lowercase(), "audio/opus");
        assert_eq!((codec.clock_rate, codec.channels), (48_000, 2));
        assert!(codec.sdp_fmtp_line.contains("useinbandfec=1"));
    }

    #[test]
    fn contiguous_frames_step_960_and_gaps_are_marked() {
        let mut p = OpusPacketizer::new(7, 111);
        let a = p.packetize(&frame(1000));
        let b = p.packetize(&frame(1020));
        let c = p.packetize(&frame(3000));
        assert!(a.header.marker && !b.header.marker && c.header.marker);
        assert_eq!(b.header.timestamp.wrapping_sub(a.header.timestamp), 960);
        assert_eq!(
            c.header.timestamp.wrapping_sub(b.header.timestamp),
            1980 * 48
        );
        assert_eq!(
            b.header.sequence_number,
            a.header.sequence_number.wrapping_add(1)
        );
        assert_eq!((a.header.ssrc, a.header.payload_type), (7, 111));
        assert_eq!(&a.payload[..], &[0xfc, 1, 2, 3]);
    }
}
