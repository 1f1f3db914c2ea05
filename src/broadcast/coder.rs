//! The pipeline's coding stages for one screen size: conversion, OpenH264, and the hand-made
//! pictures around it (keep-alives, lossless small changes, refinement of still areas; see
//! [`crate::video::compose`]), with the decisions of [`super::refine`]. Made anew when the
//! screen is resized.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::refine::{Planner, RefineConfig, Route};
use super::PipelineStats;
use super::VideoConfig;
use crate::capture::{CaptureError, Capturer, DamageRect};
use crate::video::compose::Composer;
use crate::video::mbmap::MbMap;
use crate::video::skip::SkipFrames;
use crate::video::{self, Converter, EncodedFrame, EncoderSettings, H264Encoder, VideoError};

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
    pub encoder: H264Encoder,
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
        let mut encoder = H264Encoder::new(EncoderSettings {
            width: out_w,
            height: out_h,
            framerate: cfg.framerate as f32,
            bitrate_kbps,
            idr_interval: cfg.idr_interval,
        })?;
        // With adaptive bitrate the policy lowers the frame rate evenly when bits are short;
        // OpenH264's own skipping would instead freeze a changing screen for seconds.
        encoder.set_frame_skip(cfg.adaptive.is_none());
        Ok(Coder {
            converter,
            encoder,
            skips: SkipFrames::new(),
            composer: cfg.lossless_updates.then(Composer::new),
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

    /// Whether the encoder must code a reference picture before the next hand-made one: the
    /// changes of its last non-reference picture are more than a hand-made picture should
    /// carry (after motion, that can be the whole screen: about 1.4 MB of I_PCM at 720p in
    /// one picture, which overflowed the pacer and showed as 30 % packet loss).
    pub fn needs_reference(&self) -> bool {
        !self.planner.fits_by_hand(self.since_ref.count())
    }

    /// When the next refinement picture is due, if any (and hand-made pictures are possible).
    pub fn next_refine(&self, kbps: u32) -> Option<Instant> {
        if self.hand_possible() {
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
