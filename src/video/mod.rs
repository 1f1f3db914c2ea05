//! STUB
#![allow(missing_docs, unused)]
use std::time::Duration;
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("x")]
    X,
}
pub struct I420Frame {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}
pub fn output_size(src_w: u32, src_h: u32, height: u32) -> (u32, u32) {
    todo!()
}
pub struct Converter {
    f: I420Frame,
}
impl Converter {
    pub fn new(src_w: u32, src_h: u32, out_w: u32, out_h: u32) -> Result<Self, VideoError> {
        todo!()
    }
    pub fn convert(&mut self, bgrx: &[u8], stride: usize) -> Result<&I420Frame, VideoError> {
        todo!()
    }
}
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub framerate: f32,
    pub bitrate_kbps: u32,
    pub idr_interval: Option<Duration>,
}
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    pub data: bytes::Bytes,
    pub keyframe: bool,
    pub width: u32,
    pub height: u32,
}
pub struct H264Encoder {}
impl H264Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, VideoError> {
        todo!()
    }
    pub fn set_bitrate(&mut self, kbps: u32) {}
    pub fn bitrate_kbps(&self) -> u32 {
        0
    }
    pub fn request_idr(&mut self) {}
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        timestamp: Duration,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        todo!()
    }
}
