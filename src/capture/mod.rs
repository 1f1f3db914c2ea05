//! STUB (replaced by the capture branch).
#![allow(missing_docs, unused)]
use std::time::Duration;
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub data: Vec<u8>,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureMethod {
    Auto,
    Shm,
    GetImage,
}
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("x")]
    X,
}
pub struct Capturer {
    f: Frame,
}
impl Capturer {
    pub fn open(display: Option<&str>, method: CaptureMethod) -> Result<Self, CaptureError> {
        todo!()
    }
    pub fn size(&self) -> (u32, u32) {
        todo!()
    }
    pub fn method(&self) -> CaptureMethod {
        todo!()
    }
    pub fn wait_for_damage(&mut self, timeout: Duration) -> Result<bool, CaptureError> {
        todo!()
    }
    pub fn capture(&mut self) -> Result<&Frame, CaptureError> {
        todo!()
    }
}
