//! Which video codec a stream is in, and the one encoder type the pipeline holds for either.

use std::time::Duration;

use serde::Serialize;

use super::encoder::{EncodedFrame, EncoderSettings, H264Encoder};
use super::frame::I420Frame;
use super::mbmap::MbMap;
use super::vp8::Vp8Encoder;
use super::VideoError;

/// A video codec vnrit sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// H.264 Constrained Baseline (OpenH264), with the hand-made pictures.
    H264,
    /// VP8 (libvpx), for browsers without H.264 (Debian's Firefox).
    Vp8,
}

impl Codec {
    /// Every codec, in order of preference.
    pub const ALL: [Codec; 2] = [Codec::H264, Codec::Vp8];

    /// The name people read: "H.264", "VP8".
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H.264",
            Codec::Vp8 => "VP8",
        }
    }

    /// The label in stats and metrics: "h264", "vp8".
    pub fn label(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Vp8 => "vp8",
        }
    }

    /// Position in [`Codec::ALL`] (for per-codec arrays).
    pub fn index(self) -> usize {
        match self {
            Codec::H264 => 0,
            Codec::Vp8 => 1,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The encoder of one pipeline: OpenH264 or libvpx VP8, behind the calls the pipeline makes.
pub enum VideoEncoder {
    /// OpenH264.
    H264(Box<H264Encoder>),
    /// libvpx VP8.
    Vp8(Vp8Encoder),
}

impl VideoEncoder {
    /// An encoder of `codec` for `settings`.
    pub fn new(codec: Codec, settings: EncoderSettings) -> Result<Self, VideoError> {
        Ok(match codec {
            Codec::H264 => VideoEncoder::H264(Box::new(H264Encoder::new(settings)?)),
            Codec::Vp8 => VideoEncoder::Vp8(Vp8Encoder::new(settings)?),
        })
    }

    /// Which codec this is.
    pub fn codec(&self) -> Codec {
        match self {
            VideoEncoder::H264(_) => Codec::H264,
            VideoEncoder::Vp8(_) => Codec::Vp8,
        }
    }

    /// Changes the target bitrate (kbit/s).
    pub fn set_bitrate(&mut self, kbps: u32) {
        match self {
            VideoEncoder::H264(e) => e.set_bitrate(kbps),
            VideoEncoder::Vp8(e) => e.set_bitrate(kbps),
        }
    }

    /// Lets the rate control skip frames, or not.
    pub fn set_frame_skip(&mut self, on: bool) {
        match self {
            VideoEncoder::H264(e) => e.set_frame_skip(on),
            VideoEncoder::Vp8(e) => e.set_frame_skip(on),
        }
    }

    /// Makes the next encode a keyframe.
    pub fn request_idr(&mut self) {
        match self {
            VideoEncoder::H264(e) => e.request_idr(),
            VideoEncoder::Vp8(e) => e.request_idr(),
        }
    }

    /// Encodes `frame`. `changed` (VP8 only; H.264 codes what differs by itself): the
    /// macroblocks that changed since the previous frame, so only they are coded; `None`
    /// codes the whole picture, refining what earlier frames left coarse.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        timestamp: Duration,
        changed: Option<&MbMap>,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        match self {
            VideoEncoder::H264(e) => e.encode(frame, timestamp),
            VideoEncoder::Vp8(e) => e.encode_changed(frame, timestamp, changed),
        }
    }
}
