//! Hand-made pictures mixed into OpenH264's stream, without ever desynchronising it: a small
//! change (a typed glyph, a blinking cursor) or the refinement of a still area ("top-off") is
//! sent as a P picture whose unchanged macroblocks are skipped and whose changed ones are
//! I_PCM (raw, lossless samples), at the cost of a copy instead of an encode.
//!
//! The catch with such pictures is that OpenH264 does not see them: its next picture predicts
//! from *its* last reference, which the decoder no longer has as its newest picture. The
//! [`Composer`] keeps both references in the decoder at once:
//! * the sequence parameter set is rewritten to allow two reference frames
//!   (`max_num_ref_frames` 1 → 2, the same number of bits);
//! * every hand-made picture is a *long-term* reference (`MMCO` 4 and 6, index 0, replacing
//!   the previous hand-made one), and drops all short-term references but the encoder's
//!   newest (`MMCO` 1), so the decoder holds exactly {encoder's reference, hand-made picture};
//! * OpenH264's P slices predict from index 0 of the default list, which is the newest
//!   *short-term* picture: its own reference, in encoder and decoder alike. Its pictures show
//!   the whole current screen (it codes everything that changed since its reference, glyphs
//!   sent by hand included), so after one of them the decoder again shows exactly what the
//!   encoder reconstructed;
//! * a hand-made picture or keep-alive that follows another hand-made picture predicts from
//!   the long-term one (`ref_pic_list_modification`, `long_term_pic_num` 0);
//! * each hand-made reference picture takes the next `frame_num` and two steps of picture
//!   order count, so the encoder's later slices are renumbered: `frame_num` and
//!   `pic_order_cnt_lsb` are fixed-width fields, patched in place.
//!
//! Keep-alives are non-reference all-skipped pictures showing the newest reference (as in
//! [`super::skip`]). After a *non-reference* encoder picture (every second one, see the
//! encoder's temporal layers) the newest reference lacks that picture's changes: the caller
//! must then include them in the next hand-made picture ([`Composer::after_non_reference`]).
//!
//! Pure: bytes in, bytes out. Anything in the encoder's output this does not understand blocks
//! hand-made pictures until the next IDR (the caller then encodes with OpenH264 as before).

use std::collections::VecDeque;

use super::frame::I420Frame;
use super::mbmap::MbMap;
use super::nal::{split_annex_b, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS};
use super::skip::{escape_into, unescape, BitReader, BitWriter, Pps, SkipError, Sps};

/// `mb_type` of I_PCM in a P slice (5 + the I slice type 25).
const MB_TYPE_P_IPCM: u32 = 30;
/// Bytes of one I_PCM macroblock's samples (4:2:0, 8 bits).
pub const PCM_BYTES: usize = 384;

/// Interleaves hand-made pictures with OpenH264's; see the module docs.
#[derive(Debug, Default)]
pub struct Composer {
    sps: Option<Sps>,
    pps: Option<Pps>,
    /// Why hand-made pictures cannot be written until the next IDR.
    blocked: Option<SkipError>,
    /// Added to the encoder's `frame_num` (modulo `MaxFrameNum`).
    frame_num_offset: u32,
    /// Added to the encoder's `pic_order_cnt_lsb`.
    poc_offset: u32,
    /// `frame_num` (as sent) of the newest reference picture.
    last_ref_frame_num: u32,
    /// `pic_order_cnt_lsb` (as sent) of the newest picture that is not a keep-alive.
    last_poc: u32,
    /// The decoder's short-term reference frames, oldest first (`frame_num` as sent).
    short_terms: VecDeque<u32>,
    /// The newest reference picture is the long-term (hand-made) one.
    newest_is_long: bool,
    /// Whether the decoder holds a long-term (hand-made) reference.
    long_term: bool,
    /// The last picture was a non-reference encoder picture.
    after_non_ref: bool,
    /// An IDR was seen since the last block.
    ready: bool,
    /// The encoder's recent reference pictures: (its `frame_num`, the one sent).
    lib_refs: VecDeque<(u32, u32)>,
}

impl Composer {
    /// A composer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether hand-made pictures and keep-alives can be written now.
    pub fn ready(&self) -> bool {
        self.ready && self.blocked.is_none()
    }

    /// Whether the last picture was a non-reference encoder picture: the next hand-made
    /// picture must then also carry that picture's changes, and a keep-alive is not possible.
    pub fn after_non_reference(&self) -> bool {
        self.after_non_ref
    }

    /// Rewrites one access unit from OpenH264 for the mixed stream (parameter sets allowing
    /// two references, slices renumbered). On an error the unit is returned unchanged in
    /// `Err`'s place by [`Composer::library_or_original`]; the caller should ask for an IDR.
    pub fn library(&mut self, access_unit: &[u8]) -> Result<Vec<u8>, SkipError> {
        let mut out = Vec::with_capacity(access_unit.len() + 16);
        let result = self.try_library(access_unit, &mut out);
        if let Err(e) = &result {
            tracing::debug!("hand-made pictures off until the next IDR: {e}");
            self.blocked = Some(e.clone());
            self.ready = false;
        }
        result.map(|()| out)
    }

    /// [`library`](Self::library), falling back to the unit as it came (and `false`).
    pub fn library_or_original(&mut self, access_unit: &[u8]) -> (Vec<u8>, bool) {
        match self.library(access_unit) {
            Ok(out) => (out, true),
            Err(_) => (access_unit.to_vec(), false),
        }
    }

    fn try_library(&mut self, access_unit: &[u8], out: &mut Vec<u8>) -> Result<(), SkipError> {
        for nal in split_annex_b(access_unit) {
            let Some(&header) = nal.payload.first() else {
                continue;
            };
            let nal_type = nal.nal_type();
            if !matches!(nal_type, NAL_SPS | NAL_PPS | NAL_SLICE | NAL_IDR) {
                out.extend_from_slice(nal.with_start_code);
                continue;
            }
            let mut rbsp = unescape(&nal.payload[1..]);
            match nal_type {
                NAL_SPS => {
                    self.sps = None;
                    let mut sps = Sps::parse(&rbsp)?;
                    match sps.max_num_ref_frames {
                        // ue(1) is 010, ue(2) is 011: the same length, one bit differs.
                        1 => set_bits(&mut rbsp, sps.max_num_ref_frames_at + 2, 1, 1),
                        2.. => {}
                        0 => return Err(SkipError::Unsupported("streams without references")),
                    }
                    sps.max_num_ref_frames = sps.max_num_ref_frames.max(2);
                    self.sps = Some(sps);
                }
                NAL_PPS => {
                    self.pps = None;
                    self.pps = Some(Pps::parse(&rbsp)?);
                }
                _ => rbsp = self.rewrite_slice(nal_type, header & 0x60 != 0, rbsp)?,
            }
            out.extend_from_slice(&[0, 0, 0, 1, header]);
            escape_into(&rbsp, out);
        }
        Ok(())
    }

    fn rewrite_slice(
        &mut self,
        nal_type: u8,
        reference: bool,
        mut rbsp: Vec<u8>,
    ) -> Result<Vec<u8>, SkipError> {
        let (Some(sps), Some(pps)) = (self.sps, self.pps) else {
            return Err(SkipError::NoReference);
        };
        if nal_type == NAL_IDR {
            self.blocked = None;
        } else if self.blocked.is_some() || !self.ready {
            return Err(self.blocked.clone().unwrap_or(SkipError::NoReference));
        }
        let mut r = BitReader::new(&rbsp, "slice header");
        let first_mb = r.ue()?;
        let slice_type = r.ue()? % 5;
        if r.ue()? != pps.id || pps.sps_id != sps.id {
            return Err(SkipError::Unsupported("several parameter sets"));
        }
        if sps.separate_colour_plane {
            r.bits(2)?;
        }
        let frame_num_at = r.pos;
        let frame_num = r.bits(sps.log2_max_frame_num)?;
        if !sps.frame_mbs_only && r.flag()? {
            return Err(SkipError::Unsupported("field pictures"));
        }
        if nal_type == NAL_IDR {
            r.ue()?; // idr_pic_id
        }
        let mut list_change = None;
        let poc_at = r.pos;
        let poc = match sps.poc_type {
            0 => r.bits(sps.log2_max_poc_lsb)?,
            2 => 0,
            _ => return Err(SkipError::Unsupported("picture order count type 1")),
        };
        if sps.poc_type == 0 && pps.bottom_field_pic_order_in_frame_present {
            r.se()?;
        }
        if pps.redundant_pic_cnt_present {
            r.ue()?;
        }
        match slice_type {
            0 => {
                if pps.weighted_pred {
                    return Err(SkipError::Unsupported("weighted prediction"));
                }
                if r.flag()? {
                    r.ue()?;
                }
                if r.flag()? {
                    let start = r.pos;
                    let mut entries = Vec::new();
                    loop {
                        let idc = r.ue()?;
                        if idc == 3 {
                            break;
                        }
                        if idc > 1 || entries.len() > 32 {
                            return Err(SkipError::Unsupported("long-term references"));
                        }
                        entries.push((idc, r.ue()?));
                    }
                    list_change = Some((start, r.pos, entries));
                }
            }
            2 => {}
            _ => return Err(SkipError::Unsupported("B or switching slices")),
        }
        if reference {
            if nal_type == NAL_IDR {
                r.flag()?; // no_output_of_prior_pics_flag
                if r.flag()? {
                    return Err(SkipError::Unsupported("long-term IDR pictures"));
                }
            } else if r.flag()? {
                return Err(SkipError::Unsupported("reference marking by the encoder"));
            }
        }
        if nal_type == NAL_IDR && first_mb == 0 {
            self.frame_num_offset = 0;
            self.poc_offset = 0;
        }
        let max_frame_num = 1u32 << sps.log2_max_frame_num;
        let sent_frame_num = (frame_num + self.frame_num_offset) % max_frame_num;
        set_bits(
            &mut rbsp,
            frame_num_at,
            sps.log2_max_frame_num,
            sent_frame_num,
        );
        let sent_poc = if sps.poc_type == 0 {
            let v = (poc + self.poc_offset) % (1u32 << sps.log2_max_poc_lsb);
            set_bits(&mut rbsp, poc_at, sps.log2_max_poc_lsb, v);
            v
        } else {
            0
        };
        if let Some((start, end, entries)) = list_change {
            let new = self.renumber_list(&entries, frame_num, sent_frame_num, max_frame_num)?;
            if new != entries {
                rbsp = splice_list(&rbsp, start, end, &new);
            }
        }
        if first_mb != 0 {
            return Ok(rbsp); // later slices of a picture already accounted for
        }
        self.last_poc = sent_poc;
        self.after_non_ref = !reference;
        if nal_type == NAL_IDR {
            self.short_terms.clear();
            self.long_term = false;
            self.ready = true;
        }
        if reference {
            // Sliding window (the encoder does no adaptive marking): the oldest short-term
            // frame goes once the two slots are full.
            if nal_type != NAL_IDR
                && self.short_terms.len() + usize::from(self.long_term) >= 2
                && !self.short_terms.is_empty()
            {
                self.short_terms.pop_front();
            }
            self.short_terms.push_back(sent_frame_num);
            self.last_ref_frame_num = sent_frame_num;
            self.newest_is_long = false;
            if nal_type == NAL_IDR {
                self.lib_refs.clear();
            }
            if self.lib_refs.len() >= 4 {
                self.lib_refs.pop_front();
            }
            self.lib_refs.push_back((frame_num, sent_frame_num));
        }
        Ok(rbsp)
    }

    /// The encoder's reference list changes (`modification_of_pic_nums_idc` 0 and 1 with
    /// their differences), pointing at the same pictures in the renumbered stream.
    fn renumber_list(
        &self,
        entries: &[(u32, u32)],
        lib_frame_num: u32,
        sent_frame_num: u32,
        max: u32,
    ) -> Result<Vec<(u32, u32)>, SkipError> {
        let (mut lib_pred, mut sent_pred) = (lib_frame_num, sent_frame_num);
        let mut out = Vec::with_capacity(entries.len());
        for &(idc, abs_minus1) in entries {
            let step = (abs_minus1 + 1) % max;
            let lib_target = if idc == 0 {
                (lib_pred + max - step) % max
            } else {
                (lib_pred + step) % max
            };
            let sent_target = self
                .lib_refs
                .iter()
                .rev()
                .find(|(lib, _)| *lib == lib_target)
                .map(|&(_, sent)| sent)
                .ok_or(SkipError::Unsupported(
                    "a reference the composer did not see",
                ))?;
            let back = (sent_pred + max - sent_target) % max;
            out.push(if back != 0 && back <= max / 2 {
                (0, back - 1)
            } else {
                (1, (sent_target + max - sent_pred) % max - 1)
            });
            (lib_pred, sent_pred) = (lib_target, sent_target);
        }
        Ok(out)
    }

    /// A reference P picture that sends the macroblocks in `mbs` of `frame` losslessly
    /// (I_PCM) and repeats every other one from the newest reference picture. Rows or columns
    /// past the frame's edge (the picture is coded in whole macroblocks) repeat the edge.
    pub fn hand(&mut self, frame: &I420Frame, mbs: &MbMap) -> Result<Vec<u8>, SkipError> {
        let (sps, pps) = self.check()?;
        if mbs.len() != sps.pic_size_in_mbs || sps.width_mbs * 16 < frame.width {
            return Err(SkipError::Unsupported("a macroblock map of another size"));
        }
        let max_frame_num = 1u32 << sps.log2_max_frame_num;
        let frame_num = (self.last_ref_frame_num + 1) % max_frame_num;
        let poc = (self.last_poc + 2) % (1u32 << sps.log2_max_poc_lsb.max(1));
        // Keep only the encoder's newest short-term frame: with the new long-term one that
        // makes the two the parameter set allows.
        let drop_count = self.short_terms.len().saturating_sub(1);
        let unmark: Vec<u32> = self.short_terms.iter().take(drop_count).copied().collect();
        let mut w = BitWriter::default();
        self.header(&mut w, &sps, &pps, frame_num, poc);
        w.bit(true); // adaptive_ref_pic_marking_mode_flag
        for old in &unmark {
            let diff = (frame_num + max_frame_num - old) % max_frame_num;
            w.ue(1); // unmark a short-term picture
            w.ue(diff - 1);
        }
        w.ue(4); // max_long_term_frame_idx_plus1 = 1
        w.ue(1);
        w.ue(6); // this picture becomes long-term index 0 (replacing the previous one)
        w.ue(0);
        w.ue(0); // end of marking
        w.se(0); // slice_qp_delta
        if pps.deblocking_filter_control_present {
            w.ue(1); // no deblocking: skipped macroblocks stay exact copies
        }
        let mut run = 0;
        let mut samples = [0u8; PCM_BYTES];
        for addr in 0..sps.pic_size_in_mbs {
            if !mbs.get(addr) {
                run += 1;
                continue;
            }
            w.ue(run);
            run = 0;
            w.ue(MB_TYPE_P_IPCM);
            w.align_zero();
            pcm_samples(
                frame,
                addr % sps.width_mbs,
                addr / sps.width_mbs,
                &mut samples,
            );
            w.aligned_bytes(&samples);
        }
        if run > 0 {
            w.ue(run);
        }
        let rbsp = w.finish();
        let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 8);
        out.extend_from_slice(&[0, 0, 0, 1, 0x60 | NAL_SLICE]);
        escape_into(&rbsp, &mut out);
        self.short_terms.drain(..drop_count);
        self.long_term = true;
        self.newest_is_long = true;
        self.after_non_ref = false;
        self.last_ref_frame_num = frame_num;
        self.last_poc = poc;
        self.frame_num_offset += 1;
        self.poc_offset += 2;
        Ok(out)
    }

    /// A non-reference picture of skipped macroblocks that shows the newest reference picture
    /// again. Fails after a non-reference encoder picture (send [`hand`](Self::hand) with its
    /// changes instead) and whenever hand-made pictures are blocked.
    pub fn keepalive(&mut self) -> Result<Vec<u8>, SkipError> {
        let (sps, pps) = self.check()?;
        if self.after_non_ref {
            return Err(SkipError::Unsupported("non-reference encoder pictures"));
        }
        let max_frame_num = 1u32 << sps.log2_max_frame_num;
        let frame_num = (self.last_ref_frame_num + 1) % max_frame_num;
        let poc = (self.last_poc + 1) % (1u32 << sps.log2_max_poc_lsb.max(1));
        let mut w = BitWriter::default();
        self.header(&mut w, &sps, &pps, frame_num, poc);
        w.se(0); // slice_qp_delta (non-reference: no marking)
        if pps.deblocking_filter_control_present {
            w.ue(1);
        }
        w.ue(sps.pic_size_in_mbs);
        let mut out = vec![0, 0, 0, 1, NAL_SLICE];
        escape_into(&w.finish(), &mut out);
        Ok(out)
    }

    fn check(&self) -> Result<(Sps, Pps), SkipError> {
        if let Some(e) = &self.blocked {
            return Err(e.clone());
        }
        match (self.sps, self.pps, self.ready) {
            (Some(sps), Some(pps), true) => Ok((sps, pps)),
            _ => Err(SkipError::NoReference),
        }
    }

    /// The slice header up to (not including) `dec_ref_pic_marking`.
    fn header(&self, w: &mut BitWriter, sps: &Sps, pps: &Pps, frame_num: u32, poc: u32) {
        w.ue(0); // first_mb_in_slice
        w.ue(5); // P, every slice of the picture P
        w.ue(pps.id);
        if sps.separate_colour_plane {
            w.bits(0, 2);
        }
        w.bits(frame_num, sps.log2_max_frame_num);
        if !sps.frame_mbs_only {
            w.bit(false);
        }
        if sps.poc_type == 0 {
            w.bits(poc, sps.log2_max_poc_lsb);
            if pps.bottom_field_pic_order_in_frame_present {
                w.se(0);
            }
        }
        if pps.redundant_pic_cnt_present {
            w.ue(0);
        }
        w.bit(true); // num_ref_idx_active_override_flag
        w.ue(0); // one reference
        if self.newest_is_long {
            w.bit(true); // ref_pic_list_modification_flag_l0
            w.ue(2); // a long-term picture...
            w.ue(0); // ...number 0
            w.ue(3); // end
        } else {
            w.bit(false);
        }
    }
}

/// `rbsp` with the bits from `start` to `end` (a reference list's entries, after its flag)
/// replaced by `entries`, the rest shifted after them.
fn splice_list(rbsp: &[u8], start: usize, end: usize, entries: &[(u32, u32)]) -> Vec<u8> {
    let bit = |pos: usize| rbsp[pos / 8] >> (7 - pos % 8) & 1 == 1;
    // The payload ends before the stop bit (the last one bit) of rbsp_trailing_bits.
    let last_one = (0..rbsp.len() * 8).rev().find(|&p| bit(p)).unwrap_or(0);
    let mut w = BitWriter::default();
    for pos in 0..start {
        w.bit(bit(pos));
    }
    for &(idc, v) in entries {
        w.ue(idc);
        w.ue(v);
    }
    w.ue(3);
    let mut pos = end;
    while pos < last_one && !pos.is_multiple_of(8) {
        w.bit(bit(pos));
        pos += 1;
    }
    while pos + 8 <= last_one {
        w.byte(rbsp[pos / 8]);
        pos += 8;
    }
    while pos < last_one {
        w.bit(bit(pos));
        pos += 1;
    }
    w.finish()
}

/// Overwrites `len` bits at bit position `at` of `data` with `value` (most significant first).
fn set_bits(data: &mut [u8], at: usize, len: u32, value: u32) {
    for i in 0..len as usize {
        let bit = (value >> (len as usize - 1 - i)) & 1;
        let (byte, shift) = ((at + i) / 8, 7 - (at + i) % 8);
        if let Some(b) = data.get_mut(byte) {
            *b = (*b & !(1 << shift)) | ((bit as u8) << shift);
        }
    }
}

/// The 384 I_PCM samples of macroblock (`mx`, `my`): 16x16 luma, 8x8 Cb, 8x8 Cr, rows past
/// the frame repeating its last row or column.
fn pcm_samples(frame: &I420Frame, mx: u32, my: u32, out: &mut [u8; PCM_BYTES]) {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, ch) = frame.chroma_size();
    let (cw, ch) = (cw as usize, ch as usize);
    let mut k = 0;
    let mut copy = |plane: &[u8], pw: usize, ph: usize, x0: usize, y0: usize, n: usize| {
        for row in 0..n {
            let y = (y0 + row).min(ph - 1);
            let line = &plane[y * pw..y * pw + pw];
            if x0 + n <= pw {
                out[k..k + n].copy_from_slice(&line[x0..x0 + n]);
            } else {
                for col in 0..n {
                    out[k + col] = line[(x0 + col).min(pw - 1)];
                }
            }
            k += n;
        }
    };
    let (mx, my) = (mx as usize, my as usize);
    copy(&frame.y, w, h, mx * 16, my * 16, 16);
    copy(&frame.u, cw, ch, mx * 8, my * 8, 8);
    copy(&frame.v, cw, ch, mx * 8, my * 8, 8);
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;
