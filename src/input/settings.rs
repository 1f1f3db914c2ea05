//! The input flags: `--max-clipboard`.

/// Settings of the input service.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct InputSettings {
    /// Largest clipboard content carried either way between the pages and X, text or image,
    /// e.g. `--max-clipboard 64M` (K, M: powers of 1024; plain = bytes; 64K to 256M).
    #[arg(long = "max-clipboard", default_value = "16M", value_parser = parse_clipboard_size, value_name = "SIZE")]
    pub max_clipboard: usize,
}

impl Default for InputSettings {
    fn default() -> Self {
        InputSettings {
            max_clipboard: 16 << 20,
        }
    }
}

/// `16M`, `512K`, `100000`: a clipboard size from 64 KiB to 256 MiB.
fn parse_clipboard_size(s: &str) -> Result<usize, String> {
    let bad = || format!("`{s}` is not a size; use e.g. 16M, 512K or 1048576");
    let t = s.trim();
    let (number, scale) = match t.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&t[..t.len() - 1], 1usize << 10),
        Some(b'M') => (&t[..t.len() - 1], 1 << 20),
        _ => (t, 1),
    };
    let n: usize = number.trim().parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(scale).ok_or_else(bad)?;
    if !(64 << 10..=super::wire::MAX_STREAM_BYTES).contains(&bytes) {
        return Err(format!("{s} is out of range: from 64K to 256M"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_clipboard_size as p;

    #[test]
    fn sizes_parse_within_range() {
        assert_eq!(p("16M"), Ok(16 << 20));
        assert_eq!(p("1m"), Ok(1 << 20));
        assert_eq!(p("512K"), Ok(512 << 10));
        assert_eq!(p("100000"), Ok(100_000));
        assert!(p("1K").is_err());
        assert!(p("257M").is_err());
        assert!(p("lots").is_err());
        assert!(p("M").is_err());
        assert!(p("99999999999999999999M").is_err());
    }
}
