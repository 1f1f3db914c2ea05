//! Keep-alive pictures that cost no encode: a hand-written H.264 P picture whose macroblocks
//! are all skipped, so the decoder shows the previous picture again.
//!
//! [`SkipFrames`] watches every access unit the encoder emits (SPS, PPS and the first slice
//! header of each picture) and, on request, writes one P slice covering the whole picture with
//! `mb_skip_run` = every macroblock. It is a *non-reference* picture (`nal_ref_idc` 0) with
//! `frame_num` = the last reference picture's + 1, which H.264 allows any number of times in a
//! row, so the encoder's own frame numbering stays valid for its next picture. Every skipped
//! macroblock predicts a zero motion vector (its first neighbour has none, every later one a
//! zero one), so with deblocking disabled the picture is a pixel-exact copy of the reference.
//!
//! A skip picture can only repeat a *reference* picture. With two temporal layers every second
//! encoder picture is non-reference; after one of those [`SkipFrames::picture`] fails, the
//! pipeline encodes the unchanged scene once more (OpenH264 makes that a reference picture),
//! and the keep-alives after it are skip pictures again.
//!
//! Pure: bytes in, bytes out, no encoder or clock. Only what OpenH264's Constrained Baseline
//! output needs is supported (CAVLC, one slice group, frames); anything else makes
//! [`SkipFrames::picture`] fail, and the caller encodes a real picture instead.

use super::nal::{split_annex_b, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS};

/// Why no skip picture can be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipError {
    /// No SPS, PPS and reference picture seen yet: encode a real frame first.
    #[error("no reference picture seen yet; encode a real frame (an IDR) before skip frames")]
    NoReference,
    /// A parameter set or slice header ended early.
    #[error("truncated H.264 {0}; the encoder output is damaged")]
    Truncated(&'static str),
    /// The stream uses a feature the skip writer does not handle.
    #[error("skip frames do not support {0}; encode real frames for keep-alives")]
    Unsupported(&'static str),
}

/// Reads bits (most significant first) and Exp-Golomb codes from an RBSP.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    pub(super) pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    pub(super) fn bit(&mut self) -> Result<u32, SkipError> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(SkipError::Truncated(self.what))?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    pub(super) fn bits(&mut self, n: u32) -> Result<u32, SkipError> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    pub(super) fn flag(&mut self) -> Result<bool, SkipError> {
        Ok(self.bit()? == 1)
    }

    pub(super) fn ue(&mut self) -> Result<u32, SkipError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(SkipError::Truncated(self.what));
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    pub(super) fn se(&mut self) -> Result<i32, SkipError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

/// Writes bits and Exp-Golomb codes into an RBSP.
#[derive(Default)]
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    cur: u8,
    used: u32,
}

impl BitWriter {
    pub(super) fn bit(&mut self, b: bool) {
        self.cur = (self.cur << 1) | u8::from(b);
        self.used += 1;
        if self.used == 8 {
            self.bytes.push(self.cur);
            self.cur = 0;
            self.used = 0;
        }
    }

    pub(super) fn bits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    pub(super) fn ue(&mut self, v: u32) {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        for _ in 1..len {
            self.bit(false);
        }
        for i in (0..len).rev() {
            self.bit((x >> i) & 1 == 1);
        }
    }

    pub(super) fn se(&mut self, v: i32) {
        let k = if v > 0 {
            2 * v as u32 - 1
        } else {
            2 * v.unsigned_abs()
        };
        self.ue(k);
    }

    /// Eight bits at once (any alignment).
    pub(super) fn byte(&mut self, v: u8) {
        if self.used == 0 {
            self.bytes.push(v);
            return;
        }
        let u = self.used;
        self.bytes.push((self.cur << (8 - u)) | (v >> u));
        self.cur = v & ((1u8 << u) - 1);
    }

    /// Zero bits up to the next byte boundary.
    pub(super) fn align_zero(&mut self) {
        while self.used != 0 {
            self.bit(false);
        }
    }

    /// Appends whole bytes; call [`align_zero`](Self::align_zero) first.
    pub(super) fn aligned_bytes(&mut self, data: &[u8]) {
        debug_assert_eq!(self.used, 0);
        self.bytes.extend_from_slice(data);
    }

    /// `rbsp_trailing_bits`: a one, then zeros to the byte boundary.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.bit(true);
        while self.used != 0 {
            self.bit(false);
        }
        self.bytes
    }
}

/// The RBSP of a NAL unit payload (after the header byte): emulation prevention removed.
pub(super) fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Appends `rbsp` to `out` with emulation prevention bytes inserted.
pub(super) fn escape_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
}

/// The sequence parameter set fields a slice header depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sps {
    pub(super) id: u32,
    pub(super) separate_colour_plane: bool,
    pub(super) chroma_array_type: u32,
    pub(super) log2_max_frame_num: u32,
    pub(super) poc_type: u32,
    pub(super) log2_max_poc_lsb: u32,
    pub(super) delta_pic_order_always_zero: bool,
    pub(super) frame_mbs_only: bool,
    pub(super) pic_size_in_mbs: u32,
    /// Macroblocks per row.
    pub(super) width_mbs: u32,
    /// `max_num_ref_frames` and the bit position of its Exp-Golomb code in the RBSP.
    pub(super) max_num_ref_frames: u32,
    pub(super) max_num_ref_frames_at: usize,
}

impl Sps {
    pub(super) fn parse(rbsp: &[u8]) -> Result<Self, SkipError> {
        let mut r = BitReader::new(rbsp, "sequence parameter set");
        let profile_idc = r.bits(8)?;
        r.bits(16)?; // constraint flags, level_idc
        let id = r.ue()?;
        let (mut chroma_format_idc, mut separate_colour_plane) = (1, false);
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.flag()?; // qpprime_y_zero_transform_bypass_flag
            if r.flag()? {
                return Err(SkipError::Unsupported("SPS scaling matrices"));
            }
        }
        let log2_max_frame_num = r.ue()? + 4;
        let poc_type = r.ue()?;
        let (mut log2_max_poc_lsb, mut delta_pic_order_always_zero) = (0, false);
        match poc_type {
            0 => log2_max_poc_lsb = r.ue()? + 4,
            1 => {
                delta_pic_order_always_zero = r.flag()?;
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                for _ in 0..r.ue()? {
                    r.se()?;
                }
            }
            _ => {}
        }
        let max_num_ref_frames_at = r.pos;
        let max_num_ref_frames = r.ue()?;
        r.flag()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue()? + 1;
        let height_map_units = r.ue()? + 1;
        let frame_mbs_only = r.flag()?;
        if log2_max_frame_num > 16 || log2_max_poc_lsb > 16 {
            return Err(SkipError::Unsupported("an SPS field out of range"));
        }
        Ok(Sps {
            id,
            separate_colour_plane,
            chroma_array_type: if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            },
            log2_max_frame_num,
            poc_type,
            log2_max_poc_lsb,
            delta_pic_order_always_zero,
            frame_mbs_only,
            pic_size_in_mbs: width_mbs * height_map_units * if frame_mbs_only { 1 } else { 2 },
            width_mbs,
            max_num_ref_frames,
            max_num_ref_frames_at,
        })
    }
}

/// The picture parameter set fields a P slice header depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pps {
    pub(super) id: u32,
    pub(super) sps_id: u32,
    pub(super) bottom_field_pic_order_in_frame_present: bool,
    pub(super) weighted_pred: bool,
    pub(super) deblocking_filter_control_present: bool,
    pub(super) redundant_pic_cnt_present: bool,
}

impl Pps {
    pub(super) fn parse(rbsp: &[u8]) -> Result<Self, SkipError> {
        let mut r = BitReader::new(rbsp, "picture parameter set");
        let id = r.ue()?;
        let sps_id = r.ue()?;
        if r.flag()? {
            return Err(SkipError::Unsupported("CABAC entropy coding"));
        }
        let bottom_field_pic_order_in_frame_present = r.flag()?;
        if r.ue()? != 0 {
            return Err(SkipError::Unsupported("slice groups (FMO)"));
        }
        r.ue()?; // num_ref_idx_l0_default_active_minus1
        r.ue()?; // num_ref_idx_l1_default_active_minus1
        let weighted_pred = r.flag()?;
        r.bits(2)?; // weighted_bipred_idc
        r.se()?; // pic_init_qp_minus26
        r.se()?; // pic_init_qs_minus26
        r.se()?; // chroma_qp_index_offset
        let deblocking_filter_control_present = r.flag()?;
        r.flag()?; // constrained_intra_pred_flag
        let redundant_pic_cnt_present = r.flag()?;
        Ok(Pps {
            id,
            sps_id,
            bottom_field_pic_order_in_frame_present,
            weighted_pred,
            deblocking_filter_control_present,
            redundant_pic_cnt_present,
        })
    }
}

/// What the first slice header of an encoder picture says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Picture {
    reference: bool,
    frame_num: u32,
    poc_lsb: u32,
    pps_id: u32,
}

fn parse_slice_header(
    rbsp: &[u8],
    nal_type: u8,
    reference: bool,
    sps: &Sps,
    pps: &Pps,
) -> Result<Picture, SkipError> {
    let mut r = BitReader::new(rbsp, "slice header");
    r.ue()?; // first_mb_in_slice
    r.ue()?; // slice_type
    let pps_id = r.ue()?;
    if pps_id != pps.id {
        return Err(SkipError::Unsupported("several picture parameter sets"));
    }
    if sps.separate_colour_plane {
        r.bits(2)?;
    }
    let frame_num = r.bits(sps.log2_max_frame_num)?;
    if !sps.frame_mbs_only && r.flag()? {
        return Err(SkipError::Unsupported("field pictures"));
    }
    if nal_type == NAL_IDR {
        r.ue()?; // idr_pic_id
    }
    let poc_lsb = if sps.poc_type == 0 {
        r.bits(sps.log2_max_poc_lsb)?
    } else {
        0
    };
    Ok(Picture {
        reference,
        frame_num,
        poc_lsb,
        pps_id,
    })
}

/// Writes all-skipped P pictures that repeat the encoder's last picture; see the module docs.
#[derive(Debug, Default)]
pub struct SkipFrames {
    sps: Option<Sps>,
    pps: Option<Pps>,
    last: Option<Picture>,
    /// Why the last picture seen cannot be repeated, if it cannot.
    blocked: Option<SkipError>,
    skips_since_real: u32,
}

impl SkipFrames {
    /// A writer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one Annex-B access unit the encoder produced, in order. Parameter sets are
    /// remembered; the first slice of each picture sets the numbering the next skip continues.
    pub fn observe(&mut self, access_unit: &[u8]) {
        if let Err(err) = self.try_observe(access_unit) {
            tracing::debug!("skip frames off until the next usable picture: {err}");
            self.last = None;
            self.blocked = Some(err);
        }
    }

    fn try_observe(&mut self, access_unit: &[u8]) -> Result<(), SkipError> {
        for nal in split_annex_b(access_unit) {
            let Some(&header) = nal.payload.first() else {
                continue;
            };
            let nal_type = nal.nal_type();
            let rbsp = || unescape(&nal.payload[1..]);
            match nal_type {
                NAL_SPS => {
                    self.sps = None;
                    self.sps = Some(Sps::parse(&rbsp())?);
                }
                NAL_PPS => {
                    self.pps = None;
                    self.pps = Some(Pps::parse(&rbsp())?);
                }
                NAL_SLICE | NAL_IDR => {
                    let rbsp = rbsp();
                    let mut r = BitReader::new(&rbsp, "slice header");
                    if r.ue()? != 0 {
                        continue; // a later slice of the same picture
                    }
                    let (Some(sps), Some(pps)) = (self.sps, self.pps) else {
                        return Err(SkipError::NoReference);
                    };
                    if pps.sps_id != sps.id {
                        return Err(SkipError::Unsupported("several sequence parameter sets"));
                    }
                    let reference = header & 0x60 != 0;
                    let picture = parse_slice_header(&rbsp, nal_type, reference, &sps, &pps)?;
                    if !reference {
                        // The skip would repeat the last *reference* picture, not this one.
                        return Err(SkipError::Unsupported("non-reference encoder pictures"));
                    }
                    self.last = Some(picture);
                    self.blocked = None;
                    self.skips_since_real = 0;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One Annex-B access unit (a single P slice, every macroblock skipped) that shows the last
    /// picture again. Fails before the first IDR or for a stream it does not support; then
    /// encode a real frame instead.
    pub fn picture(&mut self) -> Result<Vec<u8>, SkipError> {
        if let Some(err) = &self.blocked {
            return Err(err.clone());
        }
        let (Some(sps), Some(pps), Some(last)) = (self.sps, self.pps, self.last) else {
            return Err(SkipError::NoReference);
        };
        if pps.weighted_pred {
            return Err(SkipError::Unsupported("weighted prediction"));
        }
        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(5); // slice_type: P, and every slice of the picture is P
        w.ue(last.pps_id);
        if sps.separate_colour_plane {
            w.bits(0, 2);
        }
        let max_frame_num = 1u32 << sps.log2_max_frame_num;
        w.bits((last.frame_num + 1) % max_frame_num, sps.log2_max_frame_num);
        if !sps.frame_mbs_only {
            w.bit(false); // field_pic_flag
        }
        match sps.poc_type {
            0 => {
                // Halfway to the encoder's next picture (OpenH264 steps by 2); repeated skips
                // share it, which decoders without reordering (Baseline) accept.
                let max_lsb = 1u32 << sps.log2_max_poc_lsb;
                w.bits((last.poc_lsb + 1) % max_lsb, sps.log2_max_poc_lsb);
                if pps.bottom_field_pic_order_in_frame_present {
                    w.se(0);
                }
            }
            1 if !sps.delta_pic_order_always_zero => {
                w.se(0);
                if pps.bottom_field_pic_order_in_frame_present {
                    w.se(0);
                }
            }
            _ => {}
        }
        if pps.redundant_pic_cnt_present {
            w.ue(0);
        }
        w.bit(true); // num_ref_idx_active_override_flag
        w.ue(0); // num_ref_idx_l0_active_minus1: one reference, the last picture
        w.bit(false); // ref_pic_list_modification_flag_l0
                      // nal_ref_idc 0: no dec_ref_pic_marking.
        w.se(0); // slice_qp_delta
        if pps.deblocking_filter_control_present {
            w.ue(1); // disable_deblocking_filter_idc: an exact copy
        }
        // slice_data: one run of skipped macroblocks over the whole picture, no more data.
        w.ue(sps.pic_size_in_mbs);
        let rbsp = w.finish();
        let mut out = vec![0, 0, 0, 1, NAL_SLICE]; // nal_ref_idc 0, non-IDR slice
        escape_into(&rbsp, &mut out);
        self.skips_since_real += 1;
        Ok(out)
    }

    /// How many skip pictures were written since the encoder's last picture.
    pub fn skips_since_real(&self) -> u32 {
        self.skips_since_real
    }
}

#[cfg(test)]
#[path = "skip_tests.rs"]
mod tests;
