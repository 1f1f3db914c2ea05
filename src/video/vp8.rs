//! VP8 encoding with libvpx (through `env-libvpx-sys`), for viewers whose browser does not
//! decode H.264 (Debian's Firefox): real-time deadline, CBR at the adaptive-bitrate target,
//! error-resilient, no periodic keyframes (keyframes on request and at `--idr-interval`),
//! screen-content mode, and an optional active map that limits a frame to the macroblocks
//! that changed (see [`Vp8Encoder::encode_changed`]).
//!
//! Every `unsafe` block of the module is here: the encoder context and its configuration are
//! boxed (libvpx keeps pointers to them), the configuration is only ever filled by
//! `vpx_codec_enc_config_default` and then changed field by field, and images handed to
//! libvpx borrow the [`I420Frame`]'s planes only for the duration of one call.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_ulong};
use std::time::Duration;

use bytes::Bytes;
use vpx_sys as vpx;

use super::encoder::{EncodedFrame, EncoderSettings, MAX_BITRATE_KBPS, MIN_BITRATE_KBPS};
use super::frame::I420Frame;
use super::mbmap::MbMap;
use super::VideoError;

/// `VP8E_SET_CPUUSED`: the fastest real-time speed (FIELD-NOTES: cpu-used 16 is what
/// Chrome Remote Desktop runs; see docs/benchmarks.md for this encoder's figures).
const CPU_USED: c_int = 16;
/// The most the rate control lets a keyframe take, as a percentage of the per-frame budget
/// (a full-screen keyframe of text otherwise bursts for a second of bandwidth).
const MAX_INTRA_PCT: c_int = 900;
/// Quantiser range: libvpx's 0..=63 scale.
const MIN_Q: c_uint = 2;
const MAX_Q: c_uint = 56;

fn err(
    ctx: Option<&mut vpx::vpx_codec_ctx_t>,
    what: &str,
    code: vpx::vpx_codec_err_t,
) -> VideoError {
    let detail = ctx
        .and_then(|c| {
            // SAFETY: `c` is an initialised context; libvpx returns a static or
            // context-owned NUL-terminated string (or null), read before any other call.
            let p = unsafe { vpx::vpx_codec_error_detail(c) };
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    VideoError::Encoder(format!("libvpx VP8 {what}: {code:?} {detail}"))
}

/// A libvpx VP8 encoder for one fixed frame size. `Send`: run it on the pipeline thread.
pub struct Vp8Encoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
    cfg: Box<vpx::vpx_codec_enc_cfg_t>,
    settings: EncoderSettings,
    bitrate_kbps: u32,
    keyframe_pending: bool,
    last_keyframe: Option<Duration>,
    /// Presentation time of the last frame fed, in ms (libvpx wants it to grow).
    last_pts: Option<i64>,
    /// One byte per macroblock for `VP8E_SET_ACTIVEMAP` (1 = code it).
    active: Vec<u8>,
    /// Whether the encoder's active map is set (anything but "all active").
    map_set: bool,
}

// SAFETY: the context and configuration are owned by this value alone (libvpx keeps no
// thread-local state for an encoder); moving it to another thread moves all of it.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    /// A real-time VP8 encoder for `settings` (see the module docs for the tuning).
    pub fn new(settings: EncoderSettings) -> Result<Self, VideoError> {
        let valid = |v: u32| (2..=super::MAX_SIDE).contains(&v) && v.is_multiple_of(2);
        if !valid(settings.width) || !valid(settings.height) {
            return Err(VideoError::InvalidSize {
                width: settings.width,
                height: settings.height,
                max: super::MAX_SIDE,
            });
        }
        let bitrate_kbps = settings
            .bitrate_kbps
            .clamp(MIN_BITRATE_KBPS, MAX_BITRATE_KBPS);
        let mut cfg = Box::new(default_config()?);
        cfg.g_w = settings.width;
        cfg.g_h = settings.height;
        cfg.g_timebase = vpx::vpx_rational { num: 1, den: 1000 };
        // One thread: libvpx's row-parallel VP8 encoder waits for its rows by spinning, and
        // on two busy cores a 1080p frame took 66 ms of CPU with two threads against 7 with
        // one (benches/codecs.rs, docs/benchmarks.md).
        cfg.g_threads = 1;
        cfg.g_error_resilient = vpx::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.g_lag_in_frames = 0;
        cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
        cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = bitrate_kbps;
        cfg.rc_min_quantizer = MIN_Q;
        cfg.rc_max_quantizer = MAX_Q;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_resize_allowed = 0;
        cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_DISABLED;
        // SAFETY: a zeroed context is what libvpx expects before init (all pointers null,
        // `err` 0 = VPX_CODEC_OK, a valid value of its enum).
        let mut ctx: Box<vpx::vpx_codec_ctx_t> =
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: both boxes live as long as the encoder (libvpx keeps the config pointer);
        // the ABI version is the one the bindings were made for.
        let code = unsafe {
            vpx::vpx_codec_enc_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_cx(),
                &*cfg,
                0,
                vpx::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if code != vpx::VPX_CODEC_OK {
            return Err(err(None, "init", code));
        }
        let mbs = settings.width.div_ceil(16) as usize * settings.height.div_ceil(16) as usize;
        let mut encoder = Vp8Encoder {
            ctx,
            cfg,
            settings,
            bitrate_kbps,
            keyframe_pending: true,
            last_keyframe: None,
            last_pts: None,
            active: vec![1; mbs],
            map_set: false,
        };
        encoder.control(vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED, CPU_USED)?;
        encoder.control(vpx::vp8e_enc_control_id::VP8E_SET_SCREEN_CONTENT_MODE, 1)?;
        encoder.control(vpx::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0)?;
        encoder.control(
            vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
            MAX_INTRA_PCT,
        )?;
        tracing::info!(
            width = encoder.settings.width,
            height = encoder.settings.height,
            kbps = bitrate_kbps,
            "VP8 encoder ready"
        );
        Ok(encoder)
    }

    fn control(&mut self, id: vpx::vp8e_enc_control_id, value: c_int) -> Result<(), VideoError> {
        // SAFETY: the context is initialised; these controls read one `int` argument.
        let code = unsafe { vpx::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        if code == vpx::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(err(Some(&mut self.ctx), &format!("control {id:?}"), code))
        }
    }

    /// The settings the encoder was built with (the bitrate there is the initial one).
    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// The current target bitrate in kbit/s.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps
    }

    /// Changes the CBR target (kbit/s, clamped like H.264's) without rebuilding the encoder.
    pub fn set_bitrate(&mut self, kbps: u32) {
        let kbps = kbps.clamp(MIN_BITRATE_KBPS, MAX_BITRATE_KBPS);
        if kbps == self.bitrate_kbps {
            return;
        }
        self.cfg.rc_target_bitrate = kbps;
        // SAFETY: the context is initialised and `cfg` is its own boxed configuration.
        let code = unsafe { vpx::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if code == vpx::VPX_CODEC_OK {
            self.bitrate_kbps = kbps;
        } else {
            self.cfg.rc_target_bitrate = self.bitrate_kbps;
            tracing::warn!(
                "libvpx refused {kbps} kbit/s ({code:?}); keeping {}",
                self.bitrate_kbps
            );
        }
    }

    /// Lets the rate control drop frames to hold the bitrate, or not (the default: adaptive
    /// bitrate lowers the frame rate itself).
    pub fn set_frame_skip(&mut self, on: bool) {
        self.cfg.rc_dropframe_thresh = if on { 30 } else { 0 };
        // SAFETY: as in `set_bitrate`.
        let code = unsafe { vpx::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if code != vpx::VPX_CODEC_OK {
            tracing::warn!("libvpx refused the frame-drop setting: {code:?}");
        }
    }

    /// Makes the next encode a keyframe.
    pub fn request_idr(&mut self) {
        self.keyframe_pending = true;
    }

    /// Encodes the whole picture (every macroblock may be coded, so areas coded coarsely
    /// before are refined). `None`: the rate control dropped the frame.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        timestamp: Duration,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        self.encode_changed(frame, timestamp, None)
    }

    /// Encodes `frame`, coding only the macroblocks of `changed` (when given and the frame is
    /// not a keyframe): the others are skipped at no cost, so a typed glyph costs a fraction
    /// of a whole-frame pass. Unchanged areas keep their quality; a later [`encode`]
    /// (Self::encode) refines them.
    pub fn encode_changed(
        &mut self,
        frame: &I420Frame,
        timestamp: Duration,
        changed: Option<&MbMap>,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        self.settings.check_frame(frame)?;
        if self.settings.keyframe_due(timestamp, self.last_keyframe) {
            self.keyframe_pending = true;
        }
        let map = changed.filter(|_| !self.keyframe_pending);
        self.set_active_map(map)?;
        let pts = i64::try_from(timestamp.as_millis()).unwrap_or(i64::MAX);
        let pts = match self.last_pts {
            Some(last) if pts <= last => last + 1,
            _ => pts,
        };
        self.last_pts = Some(pts);
        let flags = if self.keyframe_pending {
            vpx::VPX_EFLAG_FORCE_KF as vpx::vpx_enc_frame_flags_t
        } else {
            0
        };
        let duration = (1000.0 / self.settings.framerate.max(1.0)) as c_ulong;
        self.encode_raw(frame, pts, duration.max(1), flags)?;
        let Some((data, keyframe)) = self.collect() else {
            return Ok(None);
        };
        if keyframe {
            self.keyframe_pending = false;
            self.last_keyframe = Some(timestamp);
        }
        Ok(Some(EncodedFrame {
            data,
            keyframe,
            width: self.settings.width,
            height: self.settings.height,
            codec: super::Codec::Vp8,
        }))
    }

    /// Sets (or clears, with `None`) the active map for the next encode.
    fn set_active_map(&mut self, changed: Option<&MbMap>) -> Result<(), VideoError> {
        let cols = self.settings.width.div_ceil(16);
        let rows = self.settings.height.div_ceil(16);
        let Some(changed) = changed else {
            if !self.map_set {
                return Ok(());
            }
            self.active.fill(1);
            self.map_set = false;
            return self.apply_map(rows, cols, true);
        };
        if changed.size_in_mbs() != (cols, rows) {
            return Err(VideoError::Settings(format!(
                "a change map of {:?} macroblocks for a {cols}x{rows} picture",
                changed.size_in_mbs()
            )));
        }
        for (i, a) in self.active.iter_mut().enumerate() {
            *a = u8::from(changed.get(i as u32));
        }
        self.map_set = true;
        self.apply_map(rows, cols, false)
    }

    fn apply_map(&mut self, rows: u32, cols: u32, clear: bool) -> Result<(), VideoError> {
        let mut map = vpx::vpx_active_map {
            active_map: if clear {
                std::ptr::null_mut()
            } else {
                self.active.as_mut_ptr()
            },
            rows,
            cols,
        };
        // SAFETY: VP8E_SET_ACTIVEMAP takes a `vpx_active_map_t *`; libvpx copies
        // `rows * cols` bytes out of `active_map` (sized so in `new`) during the call, and a
        // null map switches the map off.
        let code = unsafe {
            vpx::vpx_codec_control_(
                &mut *self.ctx,
                vpx::vp8e_enc_control_id::VP8E_SET_ACTIVEMAP as c_int,
                &mut map as *mut vpx::vpx_active_map,
            )
        };
        if code == vpx::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(err(Some(&mut self.ctx), "active map", code))
        }
    }

    fn encode_raw(
        &mut self,
        frame: &I420Frame,
        pts: i64,
        duration: c_ulong,
        flags: vpx::vpx_enc_frame_flags_t,
    ) -> Result<(), VideoError> {
        let (w, h) = (frame.width, frame.height);
        let cw = frame.chroma_size().0 as c_int;
        // SAFETY: an all-zero image is a valid "no image" (null planes, enums 0 = valid
        // values); `vpx_img_wrap` fills format, sizes and shifts for I420 and points the
        // planes into `frame.y`, after which the chroma planes and strides are set to the
        // frame's own (tightly packed) ones. libvpx only reads the planes, during the call.
        let code = unsafe {
            let mut img: vpx::vpx_image_t = MaybeUninit::zeroed().assume_init();
            let wrapped = vpx::vpx_img_wrap(
                &mut img,
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                w,
                h,
                1,
                frame.y.as_ptr().cast_mut(),
            );
            if wrapped.is_null() {
                return Err(VideoError::Encoder(
                    "libvpx could not wrap the picture".into(),
                ));
            }
            img.planes[1] = frame.u.as_ptr().cast_mut();
            img.planes[2] = frame.v.as_ptr().cast_mut();
            img.stride = [w as c_int, cw, cw, 0];
            vpx::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                pts,
                duration,
                flags,
                c_ulong::from(vpx::VPX_DL_REALTIME),
            )
        };
        if code == vpx::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(err(Some(&mut self.ctx), "encode", code))
        }
    }

    /// The coded frame of the last encode (`None`: dropped) and whether it is a keyframe.
    fn collect(&mut self) -> Option<(Bytes, bool)> {
        let mut iter: vpx::vpx_codec_iter_t = std::ptr::null();
        let mut out = Vec::new();
        let mut keyframe = false;
        loop {
            // SAFETY: the context is initialised; the packet (and its buffer) stays valid
            // until the next call on the context, and is copied out before that.
            let pkt = unsafe { vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: non-null packets point into the context (see above).
            let pkt = unsafe { &*pkt };
            if pkt.kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: for a frame packet the `frame` member of the union is the live one, and
            // `buf` holds `sz` bytes.
            let (buf, flags) = unsafe {
                let f = pkt.data.frame;
                (
                    std::slice::from_raw_parts(f.buf.cast::<u8>(), f.sz as usize),
                    f.flags,
                )
            };
            out.extend_from_slice(buf);
            keyframe |= flags & vpx::VPX_FRAME_IS_KEY != 0;
        }
        (!out.is_empty()).then(|| (Bytes::from(out), keyframe))
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed once, here.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// libvpx's default VP8 encoder configuration.
fn default_config() -> Result<vpx::vpx_codec_enc_cfg_t, VideoError> {
    let mut cfg = MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::uninit();
    // SAFETY: `vpx_codec_enc_config_default` writes the whole structure on success, which is
    // the only case in which it is read.
    unsafe {
        let code = vpx::vpx_codec_enc_config_default(vpx::vpx_codec_vp8_cx(), cfg.as_mut_ptr(), 0);
        if code != vpx::VPX_CODEC_OK {
            return Err(err(None, "default configuration", code));
        }
        Ok(cfg.assume_init())
    }
}

/// A libvpx VP8 decoder, for tests and benchmarks (quality of what was sent).
pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// SAFETY: as for the encoder: the context is owned by this value alone.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    /// A single-threaded decoder.
    pub fn new() -> Result<Self, VideoError> {
        // SAFETY: a zeroed context before init, as for the encoder.
        let mut ctx: Box<vpx::vpx_codec_ctx_t> =
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        let cfg = vpx::vpx_codec_dec_cfg {
            threads: 1,
            w: 0,
            h: 0,
        };
        // SAFETY: libvpx copies the decoder configuration during init.
        let code = unsafe {
            vpx::vpx_codec_dec_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if code != vpx::VPX_CODEC_OK {
            return Err(err(None, "decoder init", code));
        }
        Ok(Vp8Decoder { ctx })
    }

    /// Decodes one frame into a packed I420 picture (`None`: nothing to show).
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420Frame>, VideoError> {
        let len = c_uint::try_from(data.len())
            .map_err(|_| VideoError::Encoder("VP8 frame too large".into()))?;
        // SAFETY: libvpx reads `len` bytes of `data` during the call.
        let code = unsafe {
            vpx::vpx_codec_decode(&mut *self.ctx, data.as_ptr(), len, std::ptr::null_mut(), 0)
        };
        if code != vpx::VPX_CODEC_OK {
            return Err(err(Some(&mut self.ctx), "decode", code));
        }
        let mut iter: vpx::vpx_codec_iter_t = std::ptr::null();
        // SAFETY: the image belongs to the decoder and stays valid until the next decode; it
        // is copied out row by row, within its planes' strides and sizes.
        unsafe {
            let img = vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
            if img.is_null() {
                return Ok(None);
            }
            let img = &*img;
            let (w, h) = (img.d_w, img.d_h);
            let mut out = I420Frame::black(w, h);
            let (cw, ch) = out.chroma_size();
            for (plane, (dst, pw, ph)) in [
                (&mut out.y, w, h),
                (&mut out.u, cw, ch),
                (&mut out.v, cw, ch),
            ]
            .into_iter()
            .enumerate()
            {
                let stride = img.stride[plane] as usize;
                for row in 0..ph as usize {
                    let src = std::slice::from_raw_parts(
                        img.planes[plane].add(row * stride),
                        pw as usize,
                    );
                    dst[row * pw as usize..(row + 1) * pw as usize].copy_from_slice(src);
                }
            }
            Ok(Some(out))
        }
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once here.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
#[path = "vp8_tests.rs"]
mod tests;
