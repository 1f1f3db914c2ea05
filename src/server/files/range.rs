//! The `Range` decision for downloads (RFC 9110 §14): which bytes of a file of a given length
//! to send for a request's `Range` and `If-Range` headers.
//!
//! One range only (`bytes=A-B`, `bytes=A-`, `bytes=-N`): enough to resume a download. A
//! request for several ranges gets the whole file (a server may ignore `Range`), and so does
//! an `If-Range` that no longer matches the file (it changed since the first part was fetched).

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416: the range starts past the end of the file.
    Unsatisfiable,
}

/// Decides for a file of `len` bytes whose validators are `etag` and `last_modified` (both as
/// sent in this response's headers). `range` and `if_range` are the request's headers.
pub fn decide(
    range: Option<&str>,
    if_range: Option<&str>,
    len: u64,
    etag: &str,
    last_modified: &str,
) -> RangeDecision {
    let Some(range) = range else {
        return RangeDecision::Full;
    };
    if let Some(validator) = if_range.map(str::trim) {
        // A strong ETag or the exact date: anything else means "changed", send it all.
        let matches = (validator.starts_with('"') && validator == etag)
            || (!validator.starts_with("W/") && validator == last_modified);
        if !matches {
            return RangeDecision::Full;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeDecision::Full;
    };
    if spec.contains(',') {
        return RangeDecision::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeDecision::Full;
    };
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            return Some(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Digits too many for u64 mean "more than any file": the end is clamped below.
        Some(Some(s.parse().unwrap_or(u64::MAX)))
    };
    let (Some(first), Some(last)) = (number(first), number(last)) else {
        return RangeDecision::Full;
    };
    match (first, last) {
        (None, None) => RangeDecision::Full,
        // The last N bytes.
        (None, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeDecision::Unsatisfiable
            } else {
                RangeDecision::Partial {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        (Some(start), last) => {
            if last.is_some_and(|l| l < start) {
                return RangeDecision::Full; // invalid syntax: ignored
            }
            if start >= len {
                return RangeDecision::Unsatisfiable;
            }
            let end = last.map_or(len - 1, |l| l.min(len - 1));
            RangeDecision::Partial { start, end }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RangeDecision::{Full, Partial, Unsatisfiable};
    use super::*;

    const TAG: &str = "\"1000-1700000000\"";
    const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    fn d(range: &str, len: u64) -> RangeDecision {
        decide(Some(range), None, len, TAG, DATE)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(decide(None, None, 1000, TAG, DATE), Full);
        assert_eq!(d("bytes=0-499", 1000), Partial { start: 0, end: 499 });
        assert_eq!(
            d("bytes=500-", 1000),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            d("bytes=-100", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(d("bytes=-5000", 1000), Partial { start: 0, end: 999 });
        assert_eq!(
            d("bytes=900-5000", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            d("bytes=999-99999999999999999999999", 1000),
            Partial {
                start: 999,
                end: 999
            }
        );
        assert_eq!(d(" bytes= 10 - 19 ", 1000), Partial { start: 10, end: 19 });
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        assert_eq!(d("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(d("bytes=5000-6000", 1000), Unsatisfiable);
        assert_eq!(d("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(d("bytes=0-", 0), Unsatisfiable);
        // Ignored: the whole file is sent.
        for range in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=1",
            "",
        ] {
            assert_eq!(d(range, 1000), Full, "{range:?}");
        }
    }

    #[test]
    fn if_range_must_match_the_file() {
        let r = Some("bytes=10-");
        let part = Partial { start: 10, end: 99 };
        assert_eq!(decide(r, Some(TAG), 100, TAG, DATE), part);
        assert_eq!(decide(r, Some(DATE), 100, TAG, DATE), part);
        assert_eq!(decide(r, Some("\"other\""), 100, TAG, DATE), Full);
        assert_eq!(
            decide(r, Some("W/\"1000-1700000000\""), 100, TAG, DATE),
            Full
        );
        assert_eq!(
            decide(r, Some("Wed, 15 Nov 2023 22:13:20 GMT"), 100, TAG, DATE),
            Full
        );
    }
}
