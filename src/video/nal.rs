//! Small helpers for H.264 Annex-B byte streams: splitting into NAL units and reading the
//! first bytes of a sequence parameter set.

/// NAL unit type of a non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR coded slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// One NAL unit found in an Annex-B stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nal<'a> {
    /// The NAL unit with its start code (`00 00 01` or `00 00 00 01`).
    pub with_start_code: &'a [u8],
    /// The NAL unit without start code, beginning with the NAL header byte.
    pub payload: &'a [u8],
}

impl Nal<'_> {
    /// `nal_unit_type` (the low 5 bits of the header byte), 0 for an empty unit.
    pub fn nal_type(&self) -> u8 {
        self.payload.first().map_or(0, |h| h & 0x1f)
    }
}

/// Splits an Annex-B byte stream into its NAL units. Bytes before the first start code
/// are ignored.
pub fn split_annex_b(data: &[u8]) -> Vec<Nal<'_>> {
    // (start of start code, start of payload) for each unit.
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let code_start = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((code_start, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &(code_start, payload_start))| {
            let end = starts.get(k + 1).map_or(data.len(), |&(next, _)| next);
            Nal {
                with_start_code: &data[code_start..end],
                payload: &data[payload_start..end],
            }
        })
        .collect()
}

/// The fixed first fields of a sequence parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpsHeader {
    /// `profile_idc` (66 = Baseline).
    pub profile_idc: u8,
    /// The constraint flags byte (`constraint_set0_flag` is the top bit).
    pub constraint_flags: u8,
    /// `level_idc` (ten times the level, e.g. 40 = level 4.0).
    pub level_idc: u8,
}

impl SpsHeader {
    /// Reads the header of an SPS NAL unit payload (starting with the NAL header byte);
    /// `None` if it is not an SPS or too short.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.len() < 4 || payload[0] & 0x1f != NAL_SPS {
            return None;
        }
        Some(Self {
            profile_idc: payload[1],
            constraint_flags: payload[2],
            level_idc: payload[3],
        })
    }

    /// `constraint_set1_flag`: the stream obeys the Main profile's constraints too, which
    /// together with Baseline makes it Constrained Baseline.
    pub fn constraint_set1(&self) -> bool {
        self.constraint_flags & 0x40 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::{split_annex_b, SpsHeader};

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 66, 0xc0, 40, 0, 0, 1, 0x68, 9, 0, 0, 0, 1, 0x65, 1, 2,
        ];
        let nals = split_annex_b(&data);
        let types: Vec<u8> = nals.iter().map(|n| n.nal_type()).collect();
        assert_eq!(types, [7, 8, 5]);
        assert_eq!(nals[0].with_start_code, &data[..8]);
        assert_eq!(nals[1].payload, &[0x68, 9]);
        assert_eq!(nals[2].payload, &[0x65, 1, 2]);
        let sps = SpsHeader::parse(nals[0].payload).unwrap();
        assert_eq!((sps.profile_idc, sps.level_idc), (66, 40));
        assert!(sps.constraint_set1());
        assert!(SpsHeader::parse(nals[1].payload).is_none());
    }

    #[test]
    fn garbage_gives_no_units() {
        assert!(split_annex_b(&[1, 2, 3, 0, 0]).is_empty());
        assert!(split_annex_b(&[]).is_empty());
    }
}
