//! BGRX to I420 conversion (yuvutils-rs, SIMD), with an optional downscale in front.

use yuvutils_rs::{
    bgra_to_yuv420, BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

use super::frame::I420Frame;
use super::scale::Scaler;
use super::{VideoError, MAX_SOURCE_SIDE};

/// Converts (and when needed downscales) BGRX frames of one fixed size into I420 frames of
/// another fixed size. Reuses its buffers, so steady-state conversion does not allocate.
///
/// When the output is the source size, or the source cropped by at most one pixel per side
/// (odd screen sizes, see [`super::output_size`]), the top-left part is converted directly;
/// otherwise the frame is first resized with a convolution filter.
pub struct Converter {
    src_w: u32,
    src_h: u32,
    scaler: Option<Scaler>,
    frame: I420Frame,
    /// Scratch picture for [`Converter::convert_region`].
    region: I420Frame,
}

impl Converter {
    /// A converter from `src_w`x`src_h` BGRX to `out_w`x`out_h` I420.
    pub fn new(src_w: u32, src_h: u32, out_w: u32, out_h: u32) -> Result<Self, VideoError> {
        for (w, h) in [(src_w, src_h), (out_w, out_h)] {
            if w == 0 || h == 0 || w > MAX_SOURCE_SIDE || h > MAX_SOURCE_SIDE {
                return Err(VideoError::InvalidSize {
                    width: w,
                    height: h,
                    max: MAX_SOURCE_SIDE,
                });
            }
        }
        let crop_only =
            out_w <= src_w && out_h <= src_h && src_w - out_w <= 1 && src_h - out_h <= 1;
        let scaler = if crop_only {
            None
        } else {
            Some(Scaler::new(src_w, src_h, out_w, out_h)?)
        };
        tracing::debug!(
            src_w,
            src_h,
            out_w,
            out_h,
            scaled = scaler.is_some(),
            "colour converter ready"
        );
        Ok(Self {
            src_w,
            src_h,
            scaler,
            frame: I420Frame::black(out_w, out_h),
            region: I420Frame::black(2, 2),
        })
    }

    /// Source width and height.
    pub fn source_size(&self) -> (u32, u32) {
        (self.src_w, self.src_h)
    }

    /// Output width and height.
    pub fn output_size(&self) -> (u32, u32) {
        (self.frame.width, self.frame.height)
    }

    /// The most recent output (black before the first conversion); lets a keep-alive frame be
    /// re-encoded without grabbing the screen again.
    pub fn last(&self) -> &I420Frame {
        &self.frame
    }

    /// Converts one frame. `bgrx` holds rows of `stride` bytes in B,G,R,X byte order
    /// (X11 little-endian ZPixmap), at least `stride * src_h` bytes.
    pub fn convert(&mut self, bgrx: &[u8], stride: usize) -> Result<&I420Frame, VideoError> {
        let needed_stride = self.src_w as usize * 4;
        if stride < needed_stride {
            return Err(VideoError::StrideTooSmall {
                stride,
                width: self.src_w,
                needed: needed_stride,
            });
        }
        let needed = stride
            .checked_mul(self.src_h as usize)
            .ok_or(VideoError::BufferTooSmall {
                got: bgrx.len(),
                needed: usize::MAX,
            })?;
        if bgrx.len() < needed {
            return Err(VideoError::BufferTooSmall {
                got: bgrx.len(),
                needed,
            });
        }
        let (src, src_stride) = match self.scaler.as_mut() {
            Some(scaler) => (scaler.scale(bgrx, stride)?, self.frame.width as usize * 4),
            None => (bgrx, stride),
        };
        let stride32 = u32::try_from(src_stride).map_err(|_| VideoError::StrideTooSmall {
            stride: src_stride,
            width: self.src_w,
            needed: needed_stride,
        })?;
        bgrx_to_i420(src, stride32, &mut self.frame)?;
        Ok(&self.frame)
    }
}

impl Converter {
    /// Converts only the `w` x `h` rectangle at (`x`, `y`) of the source into the last
    /// output, from `bgrx` holding just that rectangle (rows of `stride` bytes). Returns
    /// `Ok(false)` and changes nothing when that cannot be done exactly: a scaled output, or
    /// a rectangle that is not on even coordinates inside the output (then convert it all).
    pub fn convert_region(
        &mut self,
        (x, y, w, h): (u32, u32, u32, u32),
        bgrx: &[u8],
        stride: usize,
    ) -> Result<bool, VideoError> {
        let (fw, fh) = (self.frame.width, self.frame.height);
        // Clip to the output (an odd screen size is cropped by one pixel).
        let (w, h) = (w.min(fw.saturating_sub(x)), h.min(fh.saturating_sub(y)));
        if self.scaler.is_some() || w == 0 || h == 0 || (x | y | w | h) % 2 != 0 {
            return Ok(false);
        }
        if stride < w as usize * 4 || bgrx.len() < stride * (h as usize - 1) + w as usize * 4 {
            return Err(VideoError::BufferTooSmall {
                got: bgrx.len(),
                needed: stride * h as usize,
            });
        }
        if (self.region.width, self.region.height) != (w, h) {
            self.region = I420Frame::black(w, h);
        }
        let stride32 = u32::try_from(stride).map_err(|_| VideoError::StrideTooSmall {
            stride,
            width: w,
            needed: w as usize * 4,
        })?;
        bgrx_to_i420(bgrx, stride32, &mut self.region)?;
        let (cw, _) = self.frame.chroma_size();
        let (x, y, w, h, fw, cw) = (
            x as usize,
            y as usize,
            w as usize,
            h as usize,
            fw as usize,
            cw as usize,
        );
        for row in 0..h {
            self.frame.y[(y + row) * fw + x..][..w].copy_from_slice(&self.region.y[row * w..][..w]);
        }
        let (rw, rh) = (w / 2, h / 2);
        for row in 0..rh {
            let at = (y / 2 + row) * cw + x / 2;
            self.frame.u[at..at + rw].copy_from_slice(&self.region.u[row * rw..][..rw]);
            self.frame.v[at..at + rw].copy_from_slice(&self.region.v[row * rw..][..rw]);
        }
        Ok(true)
    }
}

/// Converts the top-left `frame.width`x`frame.height` pixels of `bgrx` into `frame`.
fn bgrx_to_i420(bgrx: &[u8], stride: u32, frame: &mut I420Frame) -> Result<(), VideoError> {
    let (cw, _) = frame.chroma_size();
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut frame.y),
        y_stride: frame.width,
        u_plane: BufferStoreMut::Borrowed(&mut frame.u),
        u_stride: cw,
        v_plane: BufferStoreMut::Borrowed(&mut frame.v),
        v_stride: cw,
        width: frame.width,
        height: frame.height,
    };
    bgra_to_yuv420(
        &mut planar,
        bgrx,
        stride,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| VideoError::Conversion(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::Converter;
    use crate::video::I420Frame;

    /// Scalar BT.601 limited-range reference: per-pixel Y, and U/V averaged over the
    /// (up to) 2x2 block of pixels each chroma sample covers.
    fn reference(bgrx: &[u8], stride: usize, w: usize, h: usize) -> I420Frame {
        let px = |x: usize, y: usize| {
            let p = &bgrx[y * stride + x * 4..];
            (f64::from(p[2]), f64::from(p[1]), f64::from(p[0]))
        };
        let mut f = I420Frame::black(w as u32, h as u32);
        for y in 0..h {
            for x in 0..w {
                let (r, g, b) = px(x, y);
                let luma = 16.0 + 219.0 * (0.299 * r + 0.587 * g + 0.114 * b) / 255.0;
                f.y[y * w + x] = luma.round() as u8;
            }
        }
        let cw = w.div_ceil(2);
        for cy in 0..h.div_ceil(2) {
            for cx in 0..cw {
                let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
                for y in (cy * 2)..(cy * 2 + 2).min(h) {
                    for x in (cx * 2)..(cx * 2 + 2).min(w) {
                        let (r, g, b) = px(x, y);
                        su += 128.0 + 224.0 * (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255.0;
                        sv += 128.0 + 224.0 * (0.5 * r - 0.418688 * g - 0.081312 * b) / 255.0;
                        n += 1.0;
                    }
                }
                f.u[cy * cw + cx] = (su / n).round() as u8;
                f.v[cy * cw + cx] = (sv / n).round() as u8;
            }
        }
        f
    }

    fn assert_close(got: &I420Frame, want: &I420Frame, tol: u8) {
        assert_eq!((got.width, got.height), (want.width, want.height));
        for (name, g, w) in [
            ("Y", &got.y, &want.y),
            ("U", &got.u, &want.u),
            ("V", &got.v, &want.v),
        ] {
            assert_eq!(g.len(), w.len(), "{name} plane length");
            for (i, (a, b)) in g.iter().zip(w.iter()).enumerate() {
                assert!(a.abs_diff(*b) <= tol, "{name}[{i}]: got {a}, want {b}");
            }
        }
    }

    /// Small deterministic xorshift generator, so failures are reproducible.
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn a_converted_region_equals_the_same_area_of_a_whole_conversion() {
        let (w, h) = (96usize, 64usize);
        let before = noise(w * 4 * h, 1);
        let after = noise(w * 4 * h, 2);
        let mut whole = Converter::new(w as u32, h as u32, w as u32, h as u32).unwrap();
        let want = whole.convert(&after, w * 4).unwrap().clone();
        let mut part = Converter::new(w as u32, h as u32, w as u32, h as u32).unwrap();
        part.convert(&before, w * 4).unwrap();
        let (x, y, rw, rh) = (16usize, 32usize, 48usize, 32usize);
        let region: Vec<u8> = (0..rh)
            .flat_map(|r| after[(y + r) * w * 4 + x * 4..][..rw * 4].to_vec())
            .collect();
        let rect = (x as u32, y as u32, rw as u32, rh as u32);
        assert!(part.convert_region(rect, &region, rw * 4).unwrap());
        let got = part.last();
        for row in 0..h {
            for col in 0..w {
                let inside = (x..x + rw).contains(&col) && (y..y + rh).contains(&row);
                let i = row * w + col;
                if inside {
                    assert_eq!(got.y[i], want.y[i], "inside at {col},{row}");
                }
            }
        }
        let cw = w / 2;
        for row in y / 2..(y + rh) / 2 {
            for col in x / 2..(x + rw) / 2 {
                assert_eq!(got.u[row * cw + col], want.u[row * cw + col]);
                assert_eq!(got.v[row * cw + col], want.v[row * cw + col]);
            }
        }
        assert!(
            !part.convert_region((1, 0, 2, 2), &region, rw * 4).unwrap(),
            "odd x"
        );
    }

    #[test]
    fn random_images_match_the_scalar_reference() {
        for &(w, h, pad) in &[
            (64usize, 48usize, 0usize),
            (33, 17, 12),
            (1, 1, 0),
            (7, 3, 4),
            (640, 360, 0),
        ] {
            let stride = w * 4 + pad;
            let img = noise(stride * h, (w * 1000 + h) as u64);
            let mut c = Converter::new(w as u32, h as u32, w as u32, h as u32).unwrap();
            let got = c.convert(&img, stride).unwrap();
            assert_close(got, &reference(&img, stride, w, h), 2);
        }
    }

    #[test]
    fn solid_colours_match_the_scalar_reference() {
        let colours: [[u8; 4]; 8] = [
            [0, 0, 0, 0],
            [255, 255, 255, 0],
            [0, 0, 255, 0],
            [0, 255, 0, 0],
            [255, 0, 0, 0],
            [128, 128, 128, 255],
            [30, 140, 220, 7],
            [200, 10, 90, 0],
        ];
        for bgrx in colours {
            let (w, h) = (37, 21);
            let img: Vec<u8> = bgrx.iter().copied().cycle().take(w * h * 4).collect();
            let mut c = Converter::new(w as u32, h as u32, w as u32, h as u32).unwrap();
            let got = c.convert(&img, w * 4).unwrap();
            assert_close(got, &reference(&img, w * 4, w, h), 2);
        }
        // Known values: white is Y=235, black Y=16, pure red Y=81 U=90 V=240.
        let red: Vec<u8> = [0, 0, 255, 0]
            .iter()
            .copied()
            .cycle()
            .take(4 * 4 * 4)
            .collect();
        let mut c = Converter::new(4, 4, 4, 4).unwrap();
        let f = c.convert(&red, 16).unwrap();
        assert!(f.y.iter().all(|&v| v.abs_diff(81) <= 1), "{:?}", f.y);
        assert!(f.u.iter().all(|&v| v.abs_diff(90) <= 1), "{:?}", f.u);
        assert!(f.v.iter().all(|&v| v.abs_diff(240) <= 1), "{:?}", f.v);
    }

    #[test]
    fn odd_source_is_cropped_to_the_even_output() {
        let (w, h) = (35usize, 19usize);
        let stride = w * 4;
        let img = noise(stride * h, 99);
        let mut c = Converter::new(35, 19, 34, 18).unwrap();
        let got = c.convert(&img, stride).unwrap();
        assert_close(got, &reference(&img, stride, 34, 18), 2);
    }

    #[test]
    fn downscale_of_quadrants_keeps_their_colours() {
        // 1920x1080 with four solid quadrants, scaled to 1280x720.
        let quads = [
            [0u8, 0, 255, 0],
            [0, 255, 0, 0],
            [255, 0, 0, 0],
            [255, 255, 255, 0],
        ];
        let (w, h) = (1920usize, 1080usize);
        let mut img = vec![0u8; w * h * 4];
        for (i, p) in img.chunks_exact_mut(4).enumerate() {
            let (x, y) = (i % w, i / w);
            p.copy_from_slice(&quads[usize::from(x >= w / 2) + 2 * usize::from(y >= h / 2)]);
        }
        let mut c = Converter::new(1920, 1080, 1280, 720).unwrap();
        let got = c.convert(&img, w * 4).unwrap().clone();
        let solid = |q: [u8; 4]| -> I420Frame {
            let one: Vec<u8> = q.iter().copied().cycle().take(16).collect();
            reference(&one, 8, 2, 2)
        };
        for (qi, q) in quads.iter().enumerate() {
            let want = solid(*q);
            // Sample a point well inside the quadrant, in luma and chroma.
            let (x, y) = (320 + 640 * (qi % 2), 180 + 360 * (qi / 2));
            assert!(
                got.y[y * 1280 + x].abs_diff(want.y[0]) <= 2,
                "quadrant {qi} Y"
            );
            let (cx, cy) = (x / 2, y / 2);
            assert!(
                got.u[cy * 640 + cx].abs_diff(want.u[0]) <= 2,
                "quadrant {qi} U"
            );
            assert!(
                got.v[cy * 640 + cx].abs_diff(want.v[0]) <= 2,
                "quadrant {qi} V"
            );
        }
    }

    #[test]
    fn the_widest_screen_x_can_have_is_scaled_to_fit_the_encoder() {
        // Left half red, right half blue, 32767x64 (X11's widest), scaled to fit the encoder.
        let (w, h) = (crate::video::MAX_SOURCE_SIDE, 64u32);
        let (ow, oh) = crate::video::output_size(w, h, 0);
        assert!(ow <= crate::video::MAX_SIDE && oh >= 2, "{ow}x{oh}");
        let (red, blue) = ([0u8, 0, 255, 0], [255u8, 0, 0, 0]);
        let mut img = vec![0u8; w as usize * h as usize * 4];
        for (i, p) in img.chunks_exact_mut(4).enumerate() {
            p.copy_from_slice(if i % w as usize <= w as usize / 2 {
                &red
            } else {
                &blue
            });
        }
        let mut c = Converter::new(w, h, ow, oh).unwrap();
        let got = c.convert(&img, w as usize * 4).unwrap().clone();
        let solid = |q: [u8; 4]| reference(&q.repeat(4), 8, 2, 2);
        let row = ow as usize * (oh as usize / 2);
        assert!(got.y[row + 100].abs_diff(solid(red).y[0]) <= 2);
        assert!(got.y[row + ow as usize - 100].abs_diff(solid(blue).y[0]) <= 2);
        assert!(Converter::new(w + 1, h, ow, oh).is_err());
    }

    #[test]
    fn bad_buffers_are_errors_not_panics() {
        let mut c = Converter::new(16, 16, 16, 16).unwrap();
        assert!(c.convert(&[0; 16 * 4 * 15], 64).is_err());
        assert!(c.convert(&[0; 16 * 4 * 16], 60).is_err());
        assert!(Converter::new(0, 10, 10, 10).is_err());
        let mut s = Converter::new(16, 16, 8, 8).unwrap();
        assert!(s.convert(&[0; 66 * 15], 66).is_err());
        assert!(s.convert(&[0; 66 * 16], 66).is_ok());
    }
}
