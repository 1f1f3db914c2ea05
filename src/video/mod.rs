//! Turns captured BGRX screen frames into an H.264 or a VP8 stream.
//!
//! The stage has three steps, each in its own file:
//!
//! * [`convert`]: BGRX to planar I420 (BT.601, limited range) with SIMD ([`Converter`]),
//!   optionally after a quality downscale done by [`scale`].
//! * [`scale`]: BGRX downscaling with a convolution filter (fast_image_resize).
//! * [`encoder`]: OpenH264 in screen-content real-time mode, Constrained Baseline, with
//!   run-time bitrate changes, IDR on request and SPS/PPS in front of every IDR ([`H264Encoder`]).
//!
//! * [`vp8`]: libvpx VP8 in real-time screen-content mode, for browsers without H.264
//!   ([`Vp8Encoder`]); [`codec`] names the codecs and holds either encoder ([`VideoEncoder`]).
//!
//! [`skip`] writes all-skipped P pictures that repeat the last picture without an encode
//! (cheap keep-alives on a still screen).
//!
//! [`output_size`] decides the encoded size from the screen size and `--height`.

pub mod codec;
pub mod compose;
pub mod convert;
pub mod encoder;
pub mod frame;
pub mod mbmap;
pub mod nal;
pub mod scale;
pub mod skip;
pub mod vp8;

pub use codec::{Codec, VideoEncoder};
pub use convert::Converter;
pub use encoder::{EncodedFrame, EncoderSettings, H264Encoder};
pub use frame::I420Frame;
pub use vp8::{Vp8Decoder, Vp8Encoder};

/// Errors of the video stage (conversion, scaling, encoding).
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// A width or height is zero or larger than the stage supports.
    #[error(
        "invalid video size {width}x{height}: both sides must be between 1 and {max} pixels \
         (use --height to scale a very large screen down)"
    )]
    InvalidSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Largest side accepted.
        max: u32,
    },
    /// The BGRX row stride cannot hold one row of the source width.
    #[error(
        "BGRX stride of {stride} bytes is too small for {width} pixels per row \
         (needs at least {needed}); the capture and the converter disagree about the screen size"
    )]
    StrideTooSmall {
        /// Given stride in bytes.
        stride: usize,
        /// Source width in pixels.
        width: u32,
        /// Smallest valid stride.
        needed: usize,
    },
    /// The BGRX buffer is shorter than `stride * height`.
    #[error(
        "BGRX buffer holds {got} bytes but {needed} are needed (stride x height); \
         the capture and the converter disagree about the screen size"
    )]
    BufferTooSmall {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The colour conversion library refused the frame.
    #[error("colour conversion failed: {0}")]
    Conversion(String),
    /// The scaler refused the frame.
    #[error("downscaling failed: {0}")]
    Scale(String),
    /// A frame handed to the encoder does not have the size the encoder was built for.
    #[error(
        "frame of {got_w}x{got_h} given to an encoder built for {want_w}x{want_h}; \
         rebuild the encoder when the screen size changes"
    )]
    FrameSizeMismatch {
        /// Frame width.
        got_w: u32,
        /// Frame height.
        got_h: u32,
        /// Encoder width.
        want_w: u32,
        /// Encoder height.
        want_h: u32,
    },
    /// An I420 frame whose planes do not match its width and height.
    #[error("malformed I420 frame: {0}")]
    MalformedFrame(String),
    /// Invalid encoder settings.
    #[error("invalid encoder settings: {0}")]
    Settings(String),
    /// OpenH264 reported an error.
    #[error(
        "H.264 encoder (OpenH264) failed: {0}; try a smaller --height or a lower bitrate, \
         and check that the size is even and at most 3840x2160"
    )]
    Encoder(String),
}

/// Largest side the video stage accepts (OpenH264's limit).
pub const MAX_SIDE: u32 = 3840;

/// Largest screen side the video stage takes in: X11's own limit (coordinates are signed
/// 16-bit), so any screen an X server can have is scaled down to fit [`MAX_SIDE`].
pub const MAX_SOURCE_SIDE: u32 = 32767;

/// Most pixels in one encoded picture: those of 3840x2160, so that every picture fits the
/// frame size of H.264 level 5.1 (36 864 macroblocks), which browsers decode.
pub const MAX_PIXELS: u32 = 3840 * 2160;

/// The size `--height height` asks for from a source of `src_w`x`src_h` (0 = native),
/// before the encoder's limits: see [`output_size`].
///
/// Keeps the aspect ratio, never upscales, and makes both sides even by rounding down
/// (H.264 4:2:0 needs even sizes); the result is at least 2x2. A native odd size is
/// cropped by one pixel rather than scaled.
pub fn requested_size(src_w: u32, src_h: u32, height: u32) -> (u32, u32) {
    if height == 0 || height >= src_h || src_w == 0 || src_h == 0 {
        (even(src_w), even(src_h))
    } else {
        let h = even(height);
        (even(width_for(src_w, src_h, h).min(src_w)), h)
    }
}

/// Output size for a source of `src_w`x`src_h` with `--height height` (0 = native): the
/// [`requested_size`], unless that is larger than the encoder takes (a side over
/// [`MAX_SIDE`] or more than [`MAX_PIXELS`], e.g. two 2560x1440 monitors side by side); then
/// it is scaled down to fit, keeping the aspect ratio, so the screen streams without
/// `--height`.
pub fn output_size(src_w: u32, src_h: u32, height: u32) -> (u32, u32) {
    let (w, h) = requested_size(src_w, src_h, height);
    let (fw, fh) = (f64::from(w), f64::from(h));
    let fit = (f64::from(MAX_SIDE) / fw)
        .min(f64::from(MAX_SIDE) / fh)
        .min((f64::from(MAX_PIXELS) / (fw * fh)).sqrt());
    if fit >= 1.0 {
        return (w, h);
    }
    // Both casts are of values under MAX_SIDE (fit < 1).
    let h = even((fh * fit).floor() as u32);
    let w = even(width_for(src_w, src_h, h).min((fw * fit).floor() as u32));
    (w, h)
}

/// `v` rounded down to even, at least 2.
fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

/// The width that keeps `src_w`:`src_h` at height `h`, rounded to the nearest pixel.
fn width_for(src_w: u32, src_h: u32, h: u32) -> u32 {
    let w = (u64::from(src_w) * u64::from(h) + u64::from(src_h) / 2) / u64::from(src_h.max(1));
    u32::try_from(w).unwrap_or(src_w)
}

#[cfg(test)]
mod tests {
    use super::{output_size, MAX_PIXELS, MAX_SIDE};

    #[test]
    fn native_size_is_kept() {
        assert_eq!(output_size(1920, 1080, 0), (1920, 1080));
        assert_eq!(output_size(1920, 1080, 1080), (1920, 1080));
    }

    #[test]
    fn downscale_keeps_aspect_ratio() {
        assert_eq!(output_size(1920, 1080, 720), (1280, 720));
        assert_eq!(output_size(1920, 1080, 480), (852, 480));
        assert_eq!(output_size(1366, 768, 720), (1280, 720));
        assert_eq!(output_size(2560, 1440, 1080), (1920, 1080));
    }

    #[test]
    fn odd_sizes_round_down_to_even() {
        assert_eq!(output_size(1921, 1081, 0), (1920, 1080));
        assert_eq!(output_size(1001, 601, 0), (1000, 600));
        // Odd requested height.
        assert_eq!(output_size(1920, 1080, 721), (1280, 720));
        // Odd requested height 333 -> 332, width 1000 * 332 / 600 = 553.3 -> 553 -> 552.
        assert_eq!(output_size(1000, 600, 333), (552, 332));
    }

    #[test]
    fn never_upscales() {
        assert_eq!(output_size(1280, 720, 1080), (1280, 720));
        assert_eq!(output_size(800, 600, 4000), (800, 600));
    }

    #[test]
    fn screens_larger_than_the_encoder_takes_are_scaled_down_to_fit() {
        // Two 2560x1440 monitors side by side: the width limit.
        assert_eq!(output_size(5120, 1440, 0), (3840, 1080));
        // 8K: both limits.
        assert_eq!(output_size(7680, 4320, 0), (3840, 2160));
        // A square 3840x3840: the pixel limit (3840 * 0.75 = 2880).
        assert_eq!(output_size(3840, 3840, 0), (2880, 2880));
        // Portrait 4K is exactly at both limits: kept.
        assert_eq!(output_size(2160, 3840, 0), (2160, 3840));
        // --height first, then the limit: 7680x2160 at 1440 would be 5120 wide.
        assert_eq!(output_size(7680, 2160, 1440), (3840, 1080));
        for (w, h) in [
            (5120, 1440),
            (7680, 4320),
            (3840, 3840),
            (6000, 1001),
            (15360, 480),
            (32767, 64),
            (32767, 32767),
        ] {
            let (ow, oh) = output_size(w, h, 0);
            assert!(
                ow <= MAX_SIDE && oh <= MAX_SIDE && ow * oh <= MAX_PIXELS,
                "{w}x{h} -> {ow}x{oh}"
            );
            assert!(ow % 2 == 0 && oh % 2 == 0, "{w}x{h} -> {ow}x{oh}");
            let (a, b) = (f64::from(w) / f64::from(h), f64::from(ow) / f64::from(oh));
            assert!(
                (a - b).abs() / a < 0.01,
                "{w}x{h} -> {ow}x{oh}: aspect {a:.3} vs {b:.3}"
            );
        }
    }

    #[test]
    fn minimum_is_two_by_two() {
        assert_eq!(output_size(1000, 1000, 1), (2, 2));
        assert_eq!(output_size(1920, 1080, 1), (4, 2));
        assert_eq!(output_size(1, 1, 0), (2, 2));
        assert_eq!(output_size(3, 1000, 10), (2, 10));
    }
}
