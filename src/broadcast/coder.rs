//! The pipeline's coding stages for one screen size: conversion, the encoder, and the
//! hand-made pictures around it (keep-alives, lossless small changes, refinement of still
//! areas; see [`crate::video::compose`]), with the decisions of [`super::refine`]. Made anew
//! when the screen is resized.
//!
//! The codec seam: an H.264 coder has all of the above; a VP8 coder (see [`Vp8Refine`]) has
//! no hand-made pictures: it codes changes with an active map from the damage, re-encodes the
//! whole picture a moment after the last change (so still areas are refined), and a still
//! screen's keep-alive is such a whole-picture encode (cheap once refined).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::refine::{Planner, RefineConfig, Route};
use super::topoff::Vp8Refine;
use super::PipelineStats;
use super::VideoConfig;
use crate::capture::{CaptureError, Capturer, DamageRect};
use crate::video::compose::Composer;
use crate::video::mbmap::MbMap;
use crate::video::skip::SkipFrames;
use crate::video::{
    self, Codec, Converter, EncodedFrame, EncoderSettings, VideoEncoder, VideoError,
};

/// What [`Coder::hand_change`] did.
pub(super) enum HandOutcome {
    /// Nothing grabbed: code the change with the encoder as usual.
    NotTaken,
    /// A hand-made picture to send.
    Sent(Vec<u8>),
    /// The damaged area was grabbed and converted, but no hand-made picture could be
    /// written: encode the converter's last picture (no new grab).
    Converted,
}

/// Conversion, encoder and hand-made pictures for one screen size.
pub(super) struct Coder {
    pub converter: Converter,
    pub encoder: VideoEncoder,
    /// VP8's change tracking and top-off (`None` for H.264).
    vp8: Option<Vp8Refine>,
    /// Keep-alives when hand-made pictures are off (`--lossless-updates=false`).
    pub skips: SkipFrames,
    /// Hand-made pictures and the encoder's renumbered output (`None`: off).
    pub composer: Option<Composer>,
    pub planner: Planner,
    /// What non-reference encoder pictures changed since the newest reference picture.
    since_ref: MbMap,
    pub out_w: u32,
    pub out_h: u32,
}

impl Coder {
    pub fn new(
        src_w: u32,
        src_h: u32,
        cfg: &VideoConfig,
        bitrate_kbps: u32,
        codec: Codec,
    ) -> Result<Self, VideoError> {
        let (out_w, out_h) = video::output_size(src_w, src_h, cfg.height);
        if (out_w, out_h) != video::requested_size(src_w, src_h, cfg.height) {
            tracing::info!(
                "the screen ({src_w}x{src_h}) is larger than the encoder takes (sides up to {}, \
                 pictures up to 3840x2160 pixels): scaling it down to {out_w}x{out_h}",
                video::MAX_SIDE
            );
        }
        let converter = Converter::new(src_w, src_h, out_w, out_h)?;
        let settings = EncoderSettings {
            width: out_w,
            height: out_h,
            framerate: cfg.framerate as f32,
            bitrate_kbps,
            idr_interval: cfg.idr_interval,
        };
        let mut encoder = VideoEncoder::new(codec, settings)?;
        let h264 = codec == Codec::H264;
        // With adaptive bitrate the policy lowers the frame rate evenly when bits are short;
        // OpenH264's own skipping would instead freeze a changing screen for seconds.
        encoder.set_frame_skip(cfg.adaptive.is_none());
        Ok(Coder {
            converter,
            encoder,
            skips: SkipFrames::new(),
            composer: (h264 && cfg.lossless_updates).then(Composer::new),
            vp8: (!h264).then(|| Vp8Refine::new(out_w, out_h)),
            planner: Planner::new(RefineConfig::default(), out_w, out_h),
            since_ref: MbMap::new(out_w, out_h),
            out_w,
            out_h,
        })
    }

    /// Shows the size this coder encodes at in the pipeline's stats (`/api/stats`).
    pub fn publish_size(&self, stats: &PipelineStats) {
        stats.width.store(self.out_w, Ordering::Relaxed);
        stats.height.store(self.out_h, Ordering::Relaxed);
    }

    /// Whether pictures here are pixel-exact crops of the screen (no downscale), which
    /// hand-made pictures need.
    fn unscaled(&self) -> bool {
        self.converter.source_size().0 - self.out_w <= 1
            && self.converter.source_size().1 - self.out_h <= 1
    }

    fn hand_possible(&self) -> bool {
        self.unscaled() && self.composer.as_ref().is_some_and(Composer::ready)
    }

    /// A small change on a still screen as a hand-made picture: grabs and converts only the
    /// damaged macroblocks and sends them losslessly. Leaves anything else to the encoder.
    pub fn hand_change(
        &mut self,
        capturer: &mut Capturer,
        now: Instant,
    ) -> Result<HandOutcome, CaptureError> {
        if !self.hand_possible() {
            return Ok(HandOutcome::NotTaken);
        }
        let Some(damage) = capturer.pending_damage()? else {
            return Ok(HandOutcome::NotTaken);
        };
        let mut mbs = MbMap::new(self.out_w, self.out_h);
        mbs.add_rect(damage);
        if self
            .planner
            .route(now, mbs.count() + self.since_ref.count(), true)
            != Route::Hand
        {
            return Ok(HandOutcome::NotTaken);
        }
        let Some((rect, pixels)) = capturer.capture_damage(16)? else {
            return Ok(HandOutcome::NotTaken);
        };
        let area = (rect.x, rect.y, rect.width, rect.height);
        match self
            .converter
            .convert_region(area, pixels.data, pixels.stride)
        {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                // The damage is taken now: grab everything and let the encoder code it.
                let pixels = capturer.capture_pixels()?;
                if (pixels.width, pixels.height) != self.converter.source_size()
                    || self.converter.convert(pixels.data, pixels.stride).is_err()
                {
                    return Ok(HandOutcome::NotTaken);
                }
                return Ok(HandOutcome::Converted);
            }
        }
        let mut mbs = MbMap::new(self.out_w, self.out_h);
        mbs.add_rect(rect);
        Ok(match self.hand_picture(&mbs) {
            Some(data) => {
                self.planner.coded_by_hand(now, &mbs);
                HandOutcome::Sent(data)
            }
            None => HandOutcome::Converted,
        })
    }

    /// A hand-made reference picture of `mbs` (plus whatever non-reference encoder pictures
    /// changed since the newest reference) from the converter's last picture.
    fn hand_picture(&mut self, mbs: &MbMap) -> Option<Vec<u8>> {
        let composer = self.composer.as_mut()?;
        let mut all = mbs.clone();
        all.union(&self.since_ref);
        match composer.hand(self.converter.last(), &all) {
            Ok(data) => {
                self.since_ref.clear();
                Some(data)
            }
            Err(e) => {
                tracing::debug!("no hand-made picture: {e}");
                None
            }
        }
    }

    /// A picture for a still screen when one is due: refinement of lossy areas (at most
    /// `kbps` allows) or, at `keepalive`, a keep-alive. `None`: encode instead.
    pub fn still_picture(
        &mut self,
        now: Instant,
        kbps: u32,
        keepalive: bool,
    ) -> Option<(Vec<u8>, Still)> {
        if self.vp8.is_some() {
            // A VP8 keep-alive is a whole-picture encode (`None`: the pipeline encodes).
            return if keepalive {
                None
            } else {
                self.vp8_topoff(now)
            };
        }
        if self.needs_reference() {
            return None;
        }
        if self.hand_possible() {
            if let Some(mbs) = self.planner.refine(now, kbps) {
                if let Some(data) = self.hand_picture(&mbs) {
                    self.planner.refined(now, &mbs);
                    return Some((data, Still::Refined));
                }
            }
        }
        if !keepalive {
            return None;
        }
        match self.composer.as_mut() {
            Some(c) if c.ready() && c.after_non_reference() => {
                // The newest reference lacks the last picture: send its changes by hand.
                let empty = MbMap::new(self.out_w, self.out_h);
                self.hand_picture(&empty).map(|d| (d, Still::Refined))
            }
            Some(c) => c.keepalive().ok().map(|d| (d, Still::KeepAlive)),
            None => self.skips.picture().ok().map(|d| (d, Still::KeepAlive)),
        }
    }

    /// Encodes the converter's last picture, made at `now`, at stream time `timestamp`;
    /// `damage` as for [`Self::after_encode`] (VP8 codes only that, when it is known).
    pub fn encode(
        &mut self,
        now: Instant,
        timestamp: Duration,
        damage: Option<DamageRect>,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        let unscaled = self.unscaled();
        let Some(vp8) = self.vp8.as_mut() else {
            return self.encoder.encode(self.converter.last(), timestamp, None);
        };
        // Damage is in screen pixels: a scaled picture is coded whole.
        vp8.changed(damage.filter(|_| unscaled));
        let map = vp8.map();
        let with_map = map.is_some();
        let encoded = self.encoder.encode(self.converter.last(), timestamp, map)?;
        if let Some(frame) = &encoded {
            vp8.coded(now, timestamp, with_map && !frame.keyframe);
        }
        Ok(encoded)
    }

    /// VP8: the whole picture again once the top-off is due, refining what change-only
    /// frames left coarse.
    fn vp8_topoff(&mut self, now: Instant) -> Option<(Vec<u8>, Still)> {
        let vp8 = self.vp8.as_mut()?;
        if vp8.next_topoff().is_none_or(|at| at > now) {
            return None;
        }
        vp8.top_off();
        let timestamp = vp8.timestamp_at(now);
        match self.encode(now, timestamp, None) {
            Ok(Some(frame)) => Some((frame.data.to_vec(), Still::Refined)),
            result => {
                if let Err(e) = result {
                    tracing::warn!("VP8 top-off failed: {e}");
                }
                // Dropped or failed: the next change codes everything instead.
                if let Some(vp8) = self.vp8.as_mut() {
                    vp8.coded(now, timestamp, false);
                    vp8.changed(None);
                }
                None
            }
        }
    }

    /// Whether the encoder must code a reference picture before the next hand-made one: the
    /// changes of its last non-reference picture are more than a hand-made picture should
    /// carry (after motion, that can be the whole screen: about 1.4 MB of I_PCM at 720p in
    /// one picture, which overflowed the pacer and showed as 30 % packet loss).
    pub fn needs_reference(&self) -> bool {
        !self.planner.fits_by_hand(self.since_ref.count())
    }

    /// When the next refinement picture is due, if any (and hand-made pictures are possible).
    pub fn next_refine(&self, kbps: u32) -> Option<Instant> {
        if let Some(vp8) = &self.vp8 {
            vp8.next_topoff()
        } else if self.hand_possible() {
            self.planner.next_refine(kbps)
        } else {
            None
        }
    }

    /// Takes in a picture the encoder made at `now` from a grab whose damage was `damage`
    /// (`None`: unknown, or a keep-alive re-encode: the whole screen). Returns the bytes to
    /// send: renumbered for the mixed stream, or as they came with hand-made pictures off.
    pub fn after_encode(
        &mut self,
        now: Instant,
        encoded: &EncodedFrame,
        damage: Option<DamageRect>,
    ) -> (Vec<u8>, bool) {
        if self.vp8.is_some() {
            return (encoded.data.to_vec(), true);
        }
        let mut mbs = MbMap::new(self.out_w, self.out_h);
        match damage {
            Some(d) if !encoded.keyframe && self.unscaled() => mbs.add_rect(d),
            _ => mbs.fill(),
        }
        let lossy = if encoded.keyframe && self.composer.is_some() && self.unscaled() {
            // An IDR stands alone: decode it once to refine only what it did not get exact
            // (a flat desktop needs nothing), not the whole screen.
            lossy_in_idr(self.converter.last(), &encoded.data).unwrap_or_else(|| mbs.clone())
        } else {
            mbs.clone()
        };
        self.planner.coded_by_library(now, &lossy);
        let Some(composer) = self.composer.as_mut() else {
            self.skips.observe(&encoded.data);
            return (encoded.data.to_vec(), true);
        };
        let (data, ok) = composer.library_or_original(&encoded.data);
        if composer.after_non_reference() {
            self.since_ref.union(&mbs);
        } else {
            self.since_ref.clear();
        }
        (data, ok)
    }
}

/// The macroblocks an IDR did not code exactly, from decoding it (`None` if it does not
/// decode, which should not happen).
fn lossy_in_idr(frame: &crate::video::I420Frame, idr: &[u8]) -> Option<MbMap> {
    use openh264::formats::YUVSource as _;
    let mut decoder = openh264::decoder::Decoder::new().ok()?;
    let yuv = decoder.decode(idr).ok()??;
    let (sy, su, sv) = yuv.strides();
    Some(crate::video::mbmap::differing(
        frame,
        [(yuv.y(), sy), (yuv.u(), su), (yuv.v(), sv)],
    ))
}

/// What kind of still-screen picture [`Coder::still_picture`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Still {
    /// Refinement (or catching up after a non-reference picture): a reference picture.
    Refined,
    /// A keep-alive repeating the newest picture.
    KeepAlive,
}
