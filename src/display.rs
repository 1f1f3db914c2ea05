//! STUB
#![allow(missing_docs, unused)]
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("x")]
    X,
}
pub struct VirtualDisplay {}
impl VirtualDisplay {
    pub fn start(width: u32, height: u32, first: u32) -> Result<Self, DisplayError> {
        todo!()
    }
    pub fn name(&self) -> &str {
        todo!()
    }
    pub fn paint_welcome(&self) -> Result<(), DisplayError> {
        todo!()
    }
    pub fn stop(&mut self) {}
}
