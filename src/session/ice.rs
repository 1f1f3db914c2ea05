//! STUN and TURN servers: URL validation for the command line and the credentials each
//! connection (and each page) is given, including TURN REST-style shared-secret credentials.
//!
//! The shared-secret scheme is the one coturn implements as `use-auth-secret`: the user name is
//! `<unix expiry time>:<label>` and the password is `base64(HMAC-SHA1(secret, user name))`, so
//! the TURN server can check a credential without knowing any user, and a leaked one expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// How long a shared-secret TURN credential stays valid after it is handed out.
pub const TURN_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The label after the expiry time in shared-secret TURN user names.
const TURN_USER_LABEL: &str = "vnrit";

/// How the TURN servers are authenticated.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum TurnAuth {
    /// No credentials (a TURN server that allows anonymous use; rare).
    #[default]
    None,
    /// One fixed user name and password (`--turn-user`, `--turn-password`).
    Static {
        /// TURN user name.
        user: String,
        /// TURN password.
        password: String,
    },
    /// A secret shared with the TURN server (`--turn-secret`): fresh time-limited credentials
    /// are derived from it for every connection.
    Secret(String),
}

impl std::fmt::Debug for TurnAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords or secrets into logs.
        match self {
            TurnAuth::None => f.write_str("None"),
            TurnAuth::Static { user, .. } => write!(f, "Static {{ user: {user:?}, .. }}"),
            TurnAuth::Secret(_) => f.write_str("Secret(..)"),
        }
    }
}

impl TurnAuth {
    /// The user name and password to use now, if any.
    pub fn credentials(&self, now: SystemTime) -> Option<(String, String)> {
        match self {
            TurnAuth::None => None,
            TurnAuth::Static { user, password } => Some((user.clone(), password.clone())),
            TurnAuth::Secret(secret) => Some(rest_credentials(secret, now)),
        }
    }
}

/// TURN REST-style credentials valid for [`TURN_CREDENTIAL_LIFETIME`] from `now`:
/// `("<expiry>:vnrit", base64(HMAC-SHA1(secret, "<expiry>:vnrit")))`.
pub fn rest_credentials(secret: &str, now: SystemTime) -> (String, String) {
    let expiry = now
        .checked_add(TURN_CREDENTIAL_LIFETIME)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let user = format!("{expiry}:{TURN_USER_LABEL}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = ring::hmac::sign(&key, user.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    (user, password)
}

/// Checks a `turn:` / `turns:` URL (`turn:host[:port][?transport=udp|tcp]`) and returns it
/// trimmed, or a message that says how to write one.
pub fn parse_turn_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let example =
        "use e.g. turn:turn.example.org:3478 or turns:turn.example.org:5349?transport=tcp";
    let rest = s
        .strip_prefix("turn:")
        .or_else(|| s.strip_prefix("turns:"))
        .ok_or_else(|| format!("`{s}` is not a TURN URL; {example}"))?;
    let (hostport, query) = match rest.split_once('?') {
        Some((hp, q)) => (hp, Some(q)),
        None => (rest, None),
    };
    if let Some(query) = query {
        match query {
            "transport=udp" | "transport=tcp" => {}
            _ => {
                return Err(format!(
                    "`{s}`: the only parameter a TURN URL takes is transport=udp or transport=tcp"
                ))
            }
        }
    }
    if hostport.starts_with("//") || hostport.contains('@') {
        return Err(format!(
            "`{s}`: a TURN URL has no `//` and no user; give credentials with --turn-user/--turn-password or --turn-secret ({example})"
        ));
    }
    let (host, port) = split_host_port(hostport).ok_or_else(|| format!("`{s}`: {example}"))?;
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || "/#".contains(c)) {
        return Err(format!("`{s}` has no valid host; {example}"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("`{s}`: the port must be a number from 1 to 65535")),
        }
    }
    Ok(s.to_string())
}

/// Splits `host[:port]` (host may be a bracketed IPv6 address).
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_match_the_coturn_scheme() {
        // Known answer computed independently:
        // printf '%s' 1700086400:vnrit | openssl dgst -sha1 -hmac s3cret -binary | base64
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (user, password) = rest_credentials("s3cret", now);
        assert_eq!(user, "1700086400:vnrit");
        assert_eq!(password, KNOWN_PASSWORD);
        let (other_user, other) = rest_credentials("s3cret", now + Duration::from_secs(1));
        assert_ne!((other_user, other), (user, password));
    }

    const KNOWN_PASSWORD: &str = "ThJSL9BWGuzLBAAkqJAHMA6/ibw=";

    #[test]
    fn turn_urls_are_checked() {
        for good in [
            "turn:10.0.0.1:3478",
            "turn:turn.example.org",
            "turns:turn.example.org:5349?transport=tcp",
            "turn:[::1]:3478?transport=udp",
        ] {
            assert_eq!(parse_turn_url(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "stun:x:3478",
            "turn:",
            "turn://x:3478",
            "turn:u@x:3478",
            "turn:x:0",
            "turn:x:99999",
            "turn:x:3478?transport=sctp",
            "turn:x y",
            "http://x",
        ] {
            assert!(parse_turn_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn secrets_do_not_reach_debug_output() {
        let shown = format!("{:?}", TurnAuth::Secret("hunter2".into()));
        assert!(!shown.contains("hunter2"));
        let shown = format!(
            "{:?}",
            TurnAuth::Static {
                user: "u".into(),
                password: "hunter2".into()
            }
        );
        assert!(!shown.contains("hunter2") && shown.contains('u'));
    }
}
