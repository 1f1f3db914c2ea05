//! H.264 encoding with OpenH264: screen-content real-time mode, Constrained Baseline,
//! bitrate rate control, IDR on request or on a timer, SPS/PPS in front of every IDR.

use std::os::raw::c_void;
use std::time::Duration;

use bytes::Bytes;
use openh264::encoder::{
    BitRate, ColorPrimaries, Complexity, Encoder, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, Level, MatrixCoefficients, Profile, RateControlMode, SpsPpsStrategy,
    TransferCharacteristics, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};
pub use openh264_sys2::SEncParamExt;
use openh264_sys2::{
    SBitrateInfo, CONSTANT_ID, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE,
    ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, INCREASING_ID, SPATIAL_LAYER_0, SPATIAL_LAYER_ALL,
};

use super::frame::I420Frame;
use super::nal::{split_annex_b, NAL_IDR, NAL_PPS, NAL_SPS};
use super::VideoError;

/// Lowest target bitrate accepted by [`H264Encoder::set_bitrate`], in kbit/s.
pub const MIN_BITRATE_KBPS: u32 = 50;
/// Highest target bitrate accepted by [`H264Encoder::set_bitrate`], in kbit/s.
pub const MAX_BITRATE_KBPS: u32 = 100_000;
/// The peak bitrate the rate control may reach, as a multiple of the target.
const PEAK_FACTOR: u32 = 2;
/// Temporal layers in the coded stream (see `screen_tuning`).
const TEMPORAL_LAYERS: i32 = 2;

/// What the encoder is built for.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderSettings {
    /// Frame width in pixels (even).
    pub width: u32,
    /// Frame height in pixels (even).
    pub height: u32,
    /// Highest frame rate that will be fed, in frames per second.
    pub framerate: f32,
    /// Initial target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Force an IDR when this much capture time has passed since the last one (`None`: only
    /// the first frame and [`H264Encoder::request_idr`] give IDRs).
    pub idr_interval: Option<Duration>,
}

impl EncoderSettings {
    /// Checks that `frame` is a valid picture of the size this encoder was built for.
    pub fn check_frame(&self, frame: &I420Frame) -> Result<(), VideoError> {
        frame.validate()?;
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(VideoError::FrameSizeMismatch {
                got_w: frame.width,
                got_h: frame.height,
                want_w: self.width,
                want_h: self.height,
            });
        }
        Ok(())
    }

    /// Whether `--idr-interval` asks for a keyframe at `timestamp`, the last one being at `last`.
    pub fn keyframe_due(&self, timestamp: Duration, last: Option<Duration>) -> bool {
        matches!((self.idr_interval, last), (Some(interval), Some(last)) if timestamp.saturating_sub(last) >= interval)
    }
}

/// One encoded picture. H.264: an access unit, Annex-B (`00 00 00 01` start codes), every
/// keyframe with SPS and PPS in front of the IDR slice. VP8: one frame as libvpx wrote it.
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    /// The access unit.
    pub data: Bytes,
    /// Whether this is an IDR (a decoder can start here).
    pub keyframe: bool,
    /// Encoded width.
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// The codec of `data`.
    pub codec: super::Codec,
}

/// An OpenH264 encoder for one fixed frame size. `Send`: run it on the pipeline thread.
pub struct H264Encoder {
    settings: EncoderSettings,
    level: Level,
    encoder: Encoder,
    /// OpenH264 initialises itself on the first encode; run-time options only work after.
    initialized: bool,
    bitrate_kbps: u32,
    idr_pending: bool,
    /// Whether the rate control may skip frames (see [`H264Encoder::set_frame_skip`]).
    frame_skip: bool,
    last_idr: Option<Duration>,
    /// The last SPS and PPS seen (with start codes), to put in front of an IDR that lacks them.
    parameter_sets: Vec<u8>,
    out: Vec<u8>,
}

impl H264Encoder {
    /// OpenH264 in screen-content real-time mode, Constrained Baseline (profile_idc 66 with
    /// constraint_set1), bitrate rate control with frame skipping (a skipped frame is simply
    /// not coded, the stream stays decodable), no B-frames, no deblocking, two temporal
    /// layers (every second frame is a non-reference frame), and two slices on two threads
    /// when the machine has two cores (see `screen_tuning`). The level
    /// in the SPS covers the frame size at the frame rate (level 4.0 for 1080p30).
    pub fn new(settings: EncoderSettings) -> Result<Self, VideoError> {
        let valid_side = |v: u32| v >= 2 && v.is_multiple_of(2) && v <= super::MAX_SIDE;
        if !valid_side(settings.width)
            || !valid_side(settings.height)
            || settings.width.min(settings.height) > 2160
        {
            return Err(VideoError::InvalidSize {
                width: settings.width,
                height: settings.height,
                max: super::MAX_SIDE,
            });
        }
        if !(settings.framerate.is_finite()
            && settings.framerate >= 1.0
            && settings.framerate <= 240.0)
        {
            return Err(VideoError::Settings(format!(
                "frame rate {} is outside 1..=240 fps",
                settings.framerate
            )));
        }
        let bitrate_kbps = settings
            .bitrate_kbps
            .clamp(MIN_BITRATE_KBPS, MAX_BITRATE_KBPS);
        let level = level_for(settings.width, settings.height, settings.framerate);
        let encoder = build(level, settings.framerate, bitrate_kbps)?;
        tracing::info!(
            width = settings.width,
            height = settings.height,
            fps = settings.framerate,
            kbps = bitrate_kbps,
            ?level,
            "H.264 encoder ready"
        );
        Ok(Self {
            settings,
            level,
            encoder,
            initialized: false,
            bitrate_kbps,
            idr_pending: true,
            frame_skip: true,
            last_idr: None,
            parameter_sets: Vec::new(),
            out: Vec::new(),
        })
    }

    /// The settings the encoder was built with (the bitrate there is the initial one).
    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Changes the target bitrate (kbit/s, clamped to
    /// [`MIN_BITRATE_KBPS`]..=[`MAX_BITRATE_KBPS`]) without rebuilding the encoder.
    pub fn set_bitrate(&mut self, kbps: u32) {
        let kbps = kbps.clamp(MIN_BITRATE_KBPS, MAX_BITRATE_KBPS);
        if kbps == self.bitrate_kbps {
            return;
        }
        if !self.initialized {
            // Nothing encoded yet: a fresh, uninitialised OpenH264 instance is cheap.
            match build(self.level, self.settings.framerate, kbps) {
                Ok(encoder) => {
                    self.encoder = encoder;
                    self.bitrate_kbps = kbps;
                }
                Err(e) => tracing::warn!("keeping {} kbit/s: {e}", self.bitrate_kbps),
            }
            return;
        }
        // OpenH264 refuses a target above the peak, so raise the peak first when going up
        // and lower it last when going down.
        let result = if kbps > self.bitrate_kbps {
            self.set_peak(kbps).and_then(|()| self.set_target(kbps))
        } else {
            self.set_target(kbps).and_then(|()| self.set_peak(kbps))
        };
        match result {
            Ok(()) => {
                tracing::debug!(
                    from = self.bitrate_kbps,
                    to = kbps,
                    "encoder bitrate changed"
                );
                self.bitrate_kbps = kbps;
            }
            Err(code) => tracing::warn!(
                kbps,
                code,
                "OpenH264 refused the bitrate change; keeping {} kbit/s",
                self.bitrate_kbps
            ),
        }
    }

    /// Lets OpenH264's rate control skip frames to hold the bitrate (the default), or not.
    /// Without skipping, a frame that needs more bits than the target allows is coded at a
    /// higher quantiser instead: the picture gets coarser but keeps moving, which is what
    /// adaptive bitrate wants (its policy lowers the frame rate itself, evenly).
    pub fn set_frame_skip(&mut self, on: bool) {
        if on == self.frame_skip {
            return;
        }
        self.frame_skip = on;
        if !self.initialized {
            return; // applied with the tuning on the first frame
        }
        let mut value = on;
        // SAFETY: the encoder is initialised; for RC_FRAME_SKIP OpenH264 reads exactly one
        // C++ `bool` (one byte, as Rust's) through the pointer, which outlives the call.
        let code = unsafe {
            self.encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_RC_FRAME_SKIP,
                (&raw mut value).cast::<c_void>(),
            )
        };
        if code != 0 {
            tracing::warn!(code, on, "OpenH264 refused the frame-skip setting");
        }
    }

    /// The current target bitrate in kbit/s.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps
    }

    /// Makes the next [`encode`](Self::encode) produce an IDR (with SPS/PPS).
    pub fn request_idr(&mut self) {
        self.idr_pending = true;
    }

    /// Encodes one frame; `timestamp` is the capture time since pipeline start. Returns
    /// `None` if the rate control skipped the frame (the stream stays valid: nothing refers
    /// to a skipped frame). Forces an IDR when one was requested (also across skipped frames)
    /// or `idr_interval` has passed.
    ///
    /// With damage-driven capture, feed the newest frame again a little later after a `None`,
    /// even if the screen did not change, or viewers keep the previous picture. Repeating an
    /// unchanged frame a few times after a change also lets OpenH264 refine its quality;
    /// once refined, a repeat costs a few bytes.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        timestamp: Duration,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        self.settings.check_frame(frame)?;
        if self.settings.keyframe_due(timestamp, self.last_idr) {
            self.idr_pending = true;
        }
        if self.idr_pending && self.initialized {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (frame.width as usize, frame.height as usize);
        let cw = w.div_ceil(2);
        let source = YUVSlices::new((&frame.y, &frame.u, &frame.v), (w, h), (w, cw, cw));
        let millis = u64::try_from(timestamp.as_millis()).unwrap_or(u64::MAX);
        let mut frame_type = self.encode_source(&source, millis)?;
        if !self.initialized {
            self.initialized = true;
            // The Rust wrapper fixes some parameters at build time; now that OpenH264 takes
            // run-time options, apply the project's screen tuning and code this first frame
            // again with it (a one-off extra encode), so every frame sent is tuned.
            let frame_skip = self.frame_skip;
            match self.set_raw_params(|p| {
                screen_tuning(p);
                p.bEnableFrameSkip = frame_skip;
            }) {
                Ok(()) => {
                    self.encoder.force_intra_frame();
                    frame_type = self.encode_source(&source, millis)?;
                }
                Err(e) => tracing::warn!("keeping OpenH264's default tuning: {e}"),
            }
            // The peak given at build time equals the target, which starves the rate
            // control; widen it now that run-time options are accepted.
            if let Err(code) = self.set_peak(self.bitrate_kbps) {
                tracing::warn!(code, "OpenH264 refused the peak bitrate");
            }
        }
        if frame_type == FrameType::Skip || self.out.is_empty() {
            tracing::trace!(?timestamp, "encoder skipped a frame");
            return Ok(None);
        }
        let keyframe = self.finish_access_unit();
        if keyframe {
            self.idr_pending = false;
            self.last_idr = Some(timestamp);
        }
        Ok(Some(EncodedFrame {
            data: Bytes::copy_from_slice(&self.out),
            keyframe,
            width: self.settings.width,
            height: self.settings.height,
            codec: super::Codec::H264,
        }))
    }

    /// Runs OpenH264 on `source` and leaves the coded bytes in `self.out`.
    fn encode_source(
        &mut self,
        source: &YUVSlices<'_>,
        millis: u64,
    ) -> Result<FrameType, VideoError> {
        self.out.clear();
        let stream = self
            .encoder
            .encode_at(source, Timestamp::from_millis(millis))
            .map_err(|e| VideoError::Encoder(e.to_string()))?;
        stream.write_vec(&mut self.out);
        Ok(stream.frame_type())
    }

    /// Looks at the NAL units in `self.out`: remembers SPS/PPS, puts the remembered ones in
    /// front of an IDR that came without them. Returns whether the unit holds an IDR.
    fn finish_access_unit(&mut self) -> bool {
        let nals = split_annex_b(&self.out);
        let has_idr = nals.iter().any(|n| n.nal_type() == NAL_IDR);
        let has_sps = nals.iter().any(|n| n.nal_type() == NAL_SPS);
        let has_pps = nals.iter().any(|n| n.nal_type() == NAL_PPS);
        if has_sps && has_pps {
            let mut sets = Vec::new();
            for n in nals
                .iter()
                .filter(|n| matches!(n.nal_type(), NAL_SPS | NAL_PPS))
            {
                sets.extend_from_slice(&[0, 0, 0, 1]);
                sets.extend_from_slice(n.payload);
            }
            self.parameter_sets = sets;
        } else if has_idr && !self.parameter_sets.is_empty() {
            tracing::debug!("IDR without SPS/PPS from OpenH264; adding the remembered ones");
            let mut with_sets = self.parameter_sets.clone();
            for n in nals
                .iter()
                .filter(|n| !matches!(n.nal_type(), NAL_SPS | NAL_PPS))
            {
                with_sets.extend_from_slice(n.with_start_code);
            }
            self.out = with_sets;
        }
        has_idr
    }

    /// Reads OpenH264's full parameter set, lets `change` edit it, and applies it (OpenH264
    /// rebuilds its internal state when needed; the next frame is an IDR). For experiments
    /// and benchmarks: call it after the first [`encode`](Self::encode), because OpenH264
    /// only takes run-time options once it has initialised itself.
    pub fn set_raw_params(
        &mut self,
        change: impl FnOnce(&mut SEncParamExt),
    ) -> Result<(), VideoError> {
        if !self.initialized {
            return Err(VideoError::Settings(
                "raw OpenH264 parameters can only be changed after the first frame".into(),
            ));
        }
        let mut params = SEncParamExt::default();
        // SAFETY: the encoder is initialised; GetOption(SVC_ENCODE_PARAM_EXT) writes exactly
        // one SEncParamExt through the pointer, which points at a live local.
        let code = unsafe {
            self.encoder.raw_api().get_option(
                ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
                (&raw mut params).cast::<c_void>(),
            )
        };
        if code != 0 {
            return Err(VideoError::Encoder(format!(
                "OpenH264 did not report its parameters (code {code})"
            )));
        }
        change(&mut params);
        // OpenH264 applies only some fields at run time unless a "structural" one (such as
        // the SPS/PPS id strategy) changes, in which case it rebuilds itself from all of
        // them. So go through a detour with another id strategy, then set the wanted
        // parameters: both calls rebuild, and the second leaves exactly `params` in force.
        let mut detour = params;
        detour.eSpsPpsIdStrategy = if params.eSpsPpsIdStrategy == CONSTANT_ID {
            INCREASING_ID
        } else {
            CONSTANT_ID
        };
        for p in [&mut detour, &mut params] {
            // SAFETY: as above; SetOption(SVC_ENCODE_PARAM_EXT) reads one SEncParamExt from
            // a live local. The frame size is the one the Rust wrapper initialised with
            // unless `change` altered it, and `encode` checks every frame against
            // `settings` anyway.
            let code = unsafe {
                self.encoder.raw_api().set_option(
                    ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
                    std::ptr::from_mut(p).cast::<c_void>(),
                )
            };
            if code != 0 {
                return Err(VideoError::Encoder(format!(
                    "OpenH264 refused the parameters (code {code})"
                )));
            }
        }
        self.idr_pending = true;
        Ok(())
    }

    fn set_target(&mut self, kbps: u32) -> Result<(), i32> {
        self.set_bitrate_option(ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, kbps)
    }

    fn set_peak(&mut self, kbps: u32) -> Result<(), i32> {
        let peak = kbps.saturating_mul(PEAK_FACTOR);
        self.set_bitrate_option(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_ALL, peak)?;
        self.set_bitrate_option(ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, peak)
    }

    fn set_bitrate_option(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        layer: openh264_sys2::LAYER_NUM,
        kbps: u32,
    ) -> Result<(), i32> {
        let bps = i32::try_from(u64::from(kbps) * 1000).unwrap_or(i32::MAX);
        let mut info = SBitrateInfo {
            iLayer: layer,
            iBitrate: bps,
        };
        // SAFETY: the encoder is initialised (callers check `initialized`), and for the
        // bitrate options OpenH264 reads exactly one `SBitrateInfo` through the pointer,
        // which lives for the duration of the call. No parameter the Rust wrapper relies on
        // (size, format) is touched.
        let code = unsafe {
            self.encoder
                .raw_api()
                .set_option(option, (&raw mut info).cast::<c_void>())
        };
        if code == 0 {
            Ok(())
        } else {
            Err(code)
        }
    }
}

/// The raw parameters the Rust wrapper cannot set, applied after OpenH264 initialised
/// (measured with `cargo bench --bench scene`, see docs/benchmarks.md):
/// * no deblocking filter: it smooths the sharp edges of text and UI (the worst 16x16 block of
///   the scrolling text gained about 9 dB of PSNR) and costs CPU on every frame;
/// * on a machine with two or more cores, two slices coded by two threads: about the same
///   CPU time, but each frame is ready in about half the wall time (lower latency);
/// * two temporal layers: every second frame is a non-reference frame (`nal_ref_idc` 0) that
///   refers to the frame before it, and the reference frames refer to each other. OpenH264's
///   screen mode hashes every 8x8 block of a reference picture for its feature search once
///   per reference picture, so half the frames reuse the hash: 8-14 % less CPU per
///   frame on the moving benchmark scene, the text as sharp, about 8 % more bits. Exactly
///   one reference frame: OpenH264's screen mode asserts (aborts) with more, which is also
///   why three temporal layers (two references) are not used.
fn screen_tuning(params: &mut SEncParamExt) {
    params.iLoopFilterDisableIdc = 1;
    params.iTemporalLayerNum = TEMPORAL_LAYERS;
    params.iNumRefFrame = 1;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores >= 2 {
        params.iMultipleThreadIdc = 2;
        let slices = &mut params.sSpatialLayers[0].sSliceArgument;
        slices.uiSliceMode = openh264_sys2::SM_FIXEDSLCNUM_SLICE;
        slices.uiSliceNum = 2;
    }
}

/// Builds an (uninitialised) OpenH264 encoder with the project's settings.
fn build(level: Level, framerate: f32, kbps: u32) -> Result<Encoder, VideoError> {
    // Say explicitly what the converter produces: BT.601 matrix, limited range, and sRGB
    // primaries/transfer (the screen's), so browsers neither guess nor re-map colours.
    let vui = VuiConfig::new()
        .color_primaries(ColorPrimaries::Bt709)
        .transfer_characteristics(TransferCharacteristics::Srgb)
        .matrix_coefficients(MatrixCoefficients::Smpte170M)
        .full_range(false);
    let config = EncoderConfig::new()
        .usage_type(UsageType::ScreenContentRealTime)
        .profile(Profile::Baseline)
        .level(level)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(kbps.saturating_mul(1000)))
        .max_frame_rate(FrameRate::from_hz(framerate))
        .skip_frames(true)
        .complexity(Complexity::Low)
        // Both are off in screen-content mode anyway; saying so keeps OpenH264 from warning.
        .adaptive_quantization(false)
        .background_detection(false)
        .num_threads(1)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .vui(vui);
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| VideoError::Encoder(e.to_string()))
}

/// The lowest H.264 level whose frame size (MaxFS) and macroblock rate (MaxMBPS) limits
/// cover `width`x`height` at `fps`, at least 3.1. OpenH264 raises it further if the
/// bitrate or reference frames need it.
fn level_for(width: u32, height: u32, fps: f32) -> Level {
    // (level, MaxMBPS, MaxFS) from Table A-1 of the H.264 specification.
    const LEVELS: [(Level, f64, u32); 8] = [
        (Level::Level_3_1, 108_000.0, 3_600),
        (Level::Level_3_2, 216_000.0, 5_120),
        (Level::Level_4_0, 245_760.0, 8_192),
        (Level::Level_4_2, 522_240.0, 8_704),
        (Level::Level_5_0, 589_824.0, 22_080),
        (Level::Level_5_1, 983_040.0, 36_864),
        (Level::Level_5_2, 2_073_600.0, 36_864),
        (Level::Level_5_2, f64::INFINITY, u32::MAX),
    ];
    let mbs = width.div_ceil(16) * height.div_ceil(16);
    let mbps = f64::from(mbs) * f64::from(fps);
    LEVELS
        .iter()
        .find(|(_, max_mbps, max_fs)| mbs <= *max_fs && mbps <= *max_mbps)
        .map_or(Level::Level_5_2, |(level, _, _)| *level)
}

#[cfg(test)]
#[path = "encoder_tests.rs"]
mod tests;
