//! File names for the file transfer: what a client-given name may be, the numbered names that
//! keep an upload from overwriting anything, and the temporary names uploads are written under.
//!
//! Pure functions, no file system: the HTTP side ([`super`]) decides what to do with them.

/// Longest file name accepted, in bytes (Linux allows 255; a numbered suffix needs room).
pub const MAX_NAME_BYTES: usize = 240;

/// Prefix of the temporary names uploads are written under (hidden, never listed).
pub const TEMP_PREFIX: &str = ".vnrit-upload-";

/// Why a file name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing, or only white space.
    #[error("the file name is empty")]
    Empty,
    /// `.` or `..`.
    #[error("`.` and `..` are not file names")]
    Dots,
    /// A `/` or `\`: a path, not a name.
    #[error("the file name may not contain / or \\ (no folders, only a name)")]
    Path,
    /// NUL, newline or another control character.
    #[error("the file name may not contain control characters (such as NUL or a newline)")]
    Control,
    /// Longer than [`MAX_NAME_BYTES`].
    #[error("the file name is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
}

/// Checks a client-given file name: one plain name in the folder, nothing else. Leading and
/// trailing white space is dropped; the rest is kept as given.
pub fn check(name: &str) -> Result<&str, NameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Path);
    }
    // C0, DEL, C1, and the Unicode controls that reorder how a name is shown (bidi overrides).
    let bad =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if name.chars().any(bad) {
        return Err(NameError::Control);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    Ok(name)
}

/// Whether `name` may be listed and downloaded: a checked name that is not hidden (hidden
/// names include the uploads still being written).
pub fn downloadable(name: &str) -> bool {
    check(name).is_ok_and(|n| n == name && !n.starts_with('.'))
}

/// The `n`th alternative of `name` (0 = the name itself): `report.pdf` → `report (1).pdf`,
/// `a.tar.gz` → `a (1).tar.gz`, `.bashrc` → `.bashrc (1)`, `Makefile` → `Makefile (1)`.
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// Splits `name` before its extension (with the dot), keeping `.tar.*` together; a leading dot
/// (a hidden file) is not an extension.
fn split_extension(name: &str) -> (&str, &str) {
    let Some(dot) = name.rfind('.').filter(|&i| i > 0) else {
        return (name, "");
    };
    let (stem, ext) = name.split_at(dot);
    if let Some(tar) = stem.strip_suffix(".tar").filter(|s| !s.is_empty()) {
        return name.split_at(tar.len());
    }
    if ext.len() > 16 || ext.contains(' ') {
        // Not an extension, just a dot in the name ("v1.2 final notes").
        return (name, "");
    }
    (stem, ext)
}

/// A temporary name for an upload in progress, from a random number.
pub fn temporary(random: u64) -> String {
    format!("{TEMP_PREFIX}{random:016x}.part")
}

/// The `Content-Disposition` value that makes a browser save `name`: a plain ASCII fallback
/// (`filename=`) and the exact name, percent-encoded (`filename*=UTF-8''`, RFC 6266/8187).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_paths_or_controls_do_not() {
        assert_eq!(check("report.pdf"), Ok("report.pdf"));
        assert_eq!(check("  spaced name.txt \n"), Ok("spaced name.txt"));
        assert_eq!(check("Ünïcødé 文件.txt"), Ok("Ünïcødé 文件.txt"));
        assert_eq!(check(".bashrc"), Ok(".bashrc"));
        assert_eq!(check("..."), Ok("..."));
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check("   "), Err(NameError::Empty));
        assert_eq!(check("."), Err(NameError::Dots));
        assert_eq!(check(".."), Err(NameError::Dots));
        assert_eq!(check("../x"), Err(NameError::Path));
        assert_eq!(check("a/b"), Err(NameError::Path));
        assert_eq!(check("/etc/passwd"), Err(NameError::Path));
        assert_eq!(check("a\\b"), Err(NameError::Path));
        assert_eq!(check("a\0b"), Err(NameError::Control));
        assert_eq!(check("a\nb"), Err(NameError::Control));
        assert_eq!(check("a\rb"), Err(NameError::Control));
        assert_eq!(check("a\u{7f}b"), Err(NameError::Control));
        assert_eq!(check("a\u{85}b"), Err(NameError::Control));
        assert_eq!(check("evil\u{202e}fdp.exe"), Err(NameError::Control));
        assert_eq!(check(&"x".repeat(MAX_NAME_BYTES)).map(str::len), Ok(240));
        assert_eq!(
            check(&"x".repeat(MAX_NAME_BYTES + 1)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn hidden_and_unchecked_names_are_not_downloadable() {
        assert!(downloadable("report.pdf"));
        assert!(!downloadable(".bashrc"));
        assert!(!downloadable(&temporary(7)));
        assert!(!downloadable(" padded"));
        assert!(!downloadable("a/b"));
        assert!(!downloadable(".."));
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("report.pdf", 0), "report.pdf");
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("report.pdf", 12), "report (12).pdf");
        assert_eq!(numbered("a.tar.gz", 2), "a (2).tar.gz");
        assert_eq!(numbered("x.y.tar.xz", 1), "x.y (1).tar.xz");
        assert_eq!(numbered(".tar.gz", 1), ".tar (1).gz");
        assert_eq!(numbered(".bashrc", 1), ".bashrc (1)");
        assert_eq!(numbered("Makefile", 3), "Makefile (3)");
        assert_eq!(numbered("v1.2 final notes", 1), "v1.2 final notes (1)");
        assert_eq!(numbered("trailing.", 1), "trailing (1).");
        // Every numbered name is itself a valid name.
        for name in [
            "report.pdf",
            ".bashrc",
            "a.tar.gz",
            &"y".repeat(MAX_NAME_BYTES),
        ] {
            let n = numbered(name, 999);
            assert!(check(&n).is_ok() || n.len() > MAX_NAME_BYTES, "{n}");
        }
    }

    #[test]
    fn temporary_names_are_hidden_and_distinct() {
        assert_eq!(temporary(255), ".vnrit-upload-00000000000000ff.part");
        assert_ne!(temporary(1), temporary(2));
        assert!(check(&temporary(u64::MAX)).is_ok());
    }

    #[test]
    fn content_disposition_has_a_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("a \"b\" é.txt"),
            "attachment; filename=\"a _b_ _.txt\"; filename*=UTF-8''a%20%22b%22%20%C3%A9.txt"
        );
    }
}
