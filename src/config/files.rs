//! The file-transfer flags (`--upload-dir`, `--download-dir`, `--max-upload`) and their
//! [`FilesConfig`].

use std::path::PathBuf;

use clap::Args;

use crate::server::files::FilesConfig;

/// File transfer between the page and the desktop's folders.
#[derive(Debug, Clone, Args)]
pub struct FilesArgs {
    /// Folder uploads from the page land in (created if missing), e.g. `--upload-dir ~/Inbox`.
    /// Default: ~/Downloads.
    #[arg(long, value_name = "DIR")]
    pub upload_dir: Option<PathBuf>,

    /// Folder the page lists and downloads files from, e.g. `--download-dir ~/Outbox`.
    /// Default: the upload folder.
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,

    /// Largest upload, e.g. `--max-upload 500M` (K, M, G: powers of 1024; plain = bytes).
    #[arg(long, default_value = "2G", value_parser = parse_size_bytes, value_name = "SIZE")]
    pub max_upload: u64,
}

impl FilesArgs {
    /// The settings these flags give.
    pub fn into_config(self) -> FilesConfig {
        let defaults = FilesConfig::default();
        let upload_dir = self.upload_dir.unwrap_or(defaults.upload_dir);
        FilesConfig {
            download_dir: self.download_dir.unwrap_or_else(|| upload_dir.clone()),
            upload_dir,
            max_upload: self.max_upload,
        }
    }
}

/// `2G`, `500M`, `64K`, `1000`: a size in bytes (at least 1 byte, at most 1 TiB).
fn parse_size_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a size; use e.g. 2G, 500M or 1048576");
    let t = s.trim();
    let (number, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(bad()),
            };
            (&t[..i], scale)
        }
        _ => (t, 1),
    };
    let n = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)?;
    if n == 0 || n > 1 << 40 {
        return Err(format!("{s} is out of range: use 1 byte to 1T"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::files::DEFAULT_MAX_UPLOAD;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size_bytes("2G"), Ok(DEFAULT_MAX_UPLOAD));
        assert_eq!(parse_size_bytes("500M"), Ok(500 << 20));
        assert_eq!(parse_size_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_size_bytes("1000"), Ok(1000));
        for bad in [
            "",
            "0",
            "G",
            "2X",
            "-1",
            "2GB",
            "2000T",
            "99999999999999999999",
        ] {
            assert!(parse_size_bytes(bad).is_err(), "{bad}");
        }
    }
}
