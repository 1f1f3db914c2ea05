//! Quality downscaling of BGRX frames (fast_image_resize convolution, SIMD).
//!
//! The X byte is carried along as if it were a colour channel: it is never used as alpha,
//! so a screen whose X byte is 0 does not turn black. Rows with padding are first copied
//! into a packed buffer: a crop box would let the filter read the padding bytes.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::VideoError;

/// The filter used for downscaling. Catmull-Rom keeps text edges crisper than bilinear
/// at a small extra cost (see `cargo bench --bench video`).
const FILTER: FilterType = FilterType::CatmullRom;

/// Resizes BGRX frames of one fixed source size to one fixed output size.
pub struct Scaler {
    resizer: Resizer,
    options: ResizeOptions,
    src_w: u32,
    src_h: u32,
    /// Packed copy of the source, used only when rows carry padding.
    packed: Vec<u8>,
    dst: Image<'static>,
}

impl Scaler {
    /// A scaler from `src_w`x`src_h` to `out_w`x`out_h` (all non-zero).
    pub fn new(src_w: u32, src_h: u32, out_w: u32, out_h: u32) -> Result<Self, VideoError> {
        for (w, h) in [(src_w, src_h), (out_w, out_h)] {
            if w == 0 || h == 0 {
                return Err(VideoError::InvalidSize {
                    width: w,
                    height: h,
                    max: super::MAX_SIDE,
                });
            }
        }
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FILTER))
            .use_alpha(false);
        Ok(Self {
            resizer: Resizer::new(),
            options,
            src_w,
            src_h,
            packed: Vec::new(),
            dst: Image::new(out_w, out_h, PixelType::U8x4),
        })
    }

    /// Scales one frame; `bgrx` has rows of `stride` bytes and at least `stride * src_h`
    /// bytes. Returns the scaled frame, tightly packed (`out_w * 4` bytes per row).
    pub fn scale(&mut self, bgrx: &[u8], stride: usize) -> Result<&[u8], VideoError> {
        let row = self.src_w as usize * 4;
        if stride < row {
            return Err(VideoError::StrideTooSmall {
                stride,
                width: self.src_w,
                needed: row,
            });
        }
        let needed = stride * (self.src_h as usize - 1) + row;
        if bgrx.len() < needed {
            return Err(VideoError::BufferTooSmall {
                got: bgrx.len(),
                needed,
            });
        }
        let packed: &[u8] = if stride == row {
            &bgrx[..row * self.src_h as usize]
        } else {
            self.packed.clear();
            for r in 0..self.src_h as usize {
                self.packed
                    .extend_from_slice(&bgrx[r * stride..r * stride + row]);
            }
            &self.packed
        };
        let src = ImageRef::new(self.src_w, self.src_h, packed, PixelType::U8x4)
            .map_err(|e| VideoError::Scale(e.to_string()))?;
        self.resizer
            .resize(&src, &mut self.dst, &self.options)
            .map_err(|e| VideoError::Scale(e.to_string()))?;
        Ok(self.dst.buffer())
    }
}

#[cfg(test)]
mod tests {
    use super::Scaler;

    fn solid(w: usize, h: usize, stride: usize, px: [u8; 4]) -> Vec<u8> {
        let mut v = vec![0u8; stride * h];
        for row in v.chunks_exact_mut(stride) {
            for p in row[..w * 4].chunks_exact_mut(4) {
                p.copy_from_slice(&px);
            }
        }
        v
    }

    #[test]
    fn solid_colour_stays_the_same_colour_and_padding_is_ignored() {
        // Row padding filled with white must not leak into the picture.
        let (w, h, stride) = (300, 200, 300 * 4 + 64);
        let mut img = solid(w, h, stride, [10, 200, 60, 0]);
        for row in img.chunks_exact_mut(stride) {
            row[w * 4..].fill(255);
        }
        let mut s = Scaler::new(300, 200, 120, 80).unwrap();
        let out = s.scale(&img, stride).unwrap();
        assert_eq!(out.len(), 120 * 80 * 4);
        for p in out.chunks_exact(4) {
            for c in 0..3 {
                assert!(p[c].abs_diff([10, 200, 60][c]) <= 1, "pixel {p:?}");
            }
        }
    }

    #[test]
    fn wide_stripes_keep_their_colours_away_from_edges() {
        // Four vertical stripes of 60 columns each, scaled by 1/2 horizontally and vertically.
        let colours = [
            [255, 0, 0, 0],
            [0, 255, 0, 0],
            [0, 0, 255, 0],
            [255, 255, 255, 0],
        ];
        let (w, h) = (240, 100);
        let mut img = vec![0u8; w * h * 4];
        for (i, p) in img.chunks_exact_mut(4).enumerate() {
            p.copy_from_slice(&colours[(i % w) / 60]);
        }
        let mut s = Scaler::new(240, 100, 120, 50).unwrap();
        let out = s.scale(&img, w * 4).unwrap();
        for y in 0..50 {
            for (stripe, colour) in colours.iter().enumerate() {
                // Column in the middle of the stripe (30 output columns per stripe).
                let x = stripe * 30 + 15;
                let p = &out[(y * 120 + x) * 4..][..3];
                for c in 0..3 {
                    assert!(
                        p[c].abs_diff(colour[c]) <= 1,
                        "stripe {stripe} row {y}: {p:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_buffers_and_strides_are_refused() {
        let mut s = Scaler::new(10, 10, 4, 4).unwrap();
        assert!(s.scale(&[0; 36 * 10], 36).is_err());
        assert!(s.scale(&[0; 40 * 9], 40).is_err());
        assert!(s.scale(&[0; 42 * 10], 42).is_ok());
    }
}
