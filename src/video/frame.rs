//! The planar I420 picture that flows from the converter into the encoder.

use super::VideoError;

/// Planar I420 (YUV 4:2:0, BT.601 limited range as browsers assume for H.264 without VUI),
/// tightly packed: `y` holds `width*height` bytes, `u` and `v` hold
/// `((width+1)/2)*((height+1)/2)` bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Luma plane, `width` bytes per row.
    pub y: Vec<u8>,
    /// Cb plane, `(width+1)/2` bytes per row.
    pub u: Vec<u8>,
    /// Cr plane, `(width+1)/2` bytes per row.
    pub v: Vec<u8>,
}

impl I420Frame {
    /// A black frame (Y=16, U=V=128) of the given size.
    pub fn black(width: u32, height: u32) -> Self {
        let (cw, ch) = Self::chroma_size_of(width, height);
        Self {
            width,
            height,
            y: vec![16; width as usize * height as usize],
            u: vec![128; cw as usize * ch as usize],
            v: vec![128; cw as usize * ch as usize],
        }
    }

    /// Width and height of each chroma plane for a picture of `width`x`height`.
    pub fn chroma_size_of(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// Width and height of this frame's chroma planes.
    pub fn chroma_size(&self) -> (u32, u32) {
        Self::chroma_size_of(self.width, self.height)
    }

    /// Checks that the plane lengths match the width and height.
    pub fn validate(&self) -> Result<(), VideoError> {
        let (cw, ch) = self.chroma_size();
        let luma = self.width as usize * self.height as usize;
        let chroma = cw as usize * ch as usize;
        if self.width == 0 || self.height == 0 {
            return Err(VideoError::MalformedFrame(format!(
                "size {}x{} has a zero side",
                self.width, self.height
            )));
        }
        if self.y.len() != luma || self.u.len() != chroma || self.v.len() != chroma {
            return Err(VideoError::MalformedFrame(format!(
                "{}x{} needs planes of {luma}/{chroma}/{chroma} bytes, got {}/{}/{}",
                self.width,
                self.height,
                self.y.len(),
                self.u.len(),
                self.v.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::I420Frame;

    #[test]
    fn black_frame_has_packed_planes_and_validates() {
        let f = I420Frame::black(5, 3);
        assert_eq!((f.y.len(), f.u.len(), f.v.len()), (15, 6, 6));
        assert!(f.validate().is_ok());
        let mut bad = f.clone();
        bad.u.pop();
        assert!(bad.validate().is_err());
    }
}
