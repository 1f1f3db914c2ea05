//! The value parsers behind the flags of [`super::Cli`]: each turns one flag's text into its
//! value or into the one-line message clap prints (exit code 2) before anything starts.

use std::time::Duration;

pub(super) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}` is not a duration; use e.g. 12h, 90m or 7d")),
    };
    let secs = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{s}` is not a duration; use e.g. 12h, 90m or 7d"))?;
    if !(60..=30 * 86_400).contains(&secs) {
        return Err(format!(
            "{s} is out of range: use 1 minute (1m) to 30 days (30d)"
        ));
    }
    Ok(Duration::from_secs(secs))
}

pub(super) fn parse_height(s: &str) -> Result<u32, String> {
    let h: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of pixels; use e.g. 720, or 0 for native"))?;
    if h != 0 && !(16..=4320).contains(&h) {
        return Err(format!(
            "{h} is out of range: use 0 (native) or a height from 16 to 4320"
        ));
    }
    Ok(h)
}

pub(super) fn parse_stun(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let rest = s
        .strip_prefix("stun:")
        .or_else(|| s.strip_prefix("stuns:"))
        .ok_or_else(|| format!("`{s}` is not a STUN URL; use e.g. stun:stun.example.org:3478"))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!(
            "`{s}` has no host; use e.g. stun:stun.example.org:3478"
        ));
    }
    Ok(s.to_string())
}

pub(super) fn parse_secret(s: &str) -> Result<String, String> {
    if s.len() < 8 {
        return Err("the TURN secret is shorter than 8 characters; use the static-auth-secret of the TURN server".into());
    }
    Ok(s.to_string())
}

pub(super) fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("`{s}` is not an origin; use e.g. https://desk.example.org"))?;
    if rest.is_empty() || rest.contains(['/', ' ', '?', '#']) {
        return Err(format!(
            "`{s}` is not an origin (scheme://host[:port], no path)"
        ));
    }
    Ok(s.to_ascii_lowercase())
}

pub(super) fn parse_token(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the token is empty; give a non-empty token".into());
    }
    if s.len() > 256 {
        return Err("the token is longer than 256 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    {
        return Err("use only letters, digits and - . _ ~ in the token (it goes into URLs)".into());
    }
    Ok(s.to_string())
}

pub(super) fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{s}` is not a size; use WIDTHxHEIGHT, e.g. 1920x1080");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if !(64..=8192).contains(&w) || !(64..=8192).contains(&h) {
        return Err(format!(
            "{w}x{h} is out of range: each side from 64 to 8192"
        ));
    }
    Ok((w, h))
}
