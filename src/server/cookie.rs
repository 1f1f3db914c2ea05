//! Signed, expiring session cookies: what the browser keeps after a first visit with
//! `?token=`, instead of the token itself.
//!
//! A cookie value is `ROLE.EXPIRY.MAC`: `ROLE` is `c` (control) or `v` (view only), `EXPIRY`
//! the Unix time in seconds after which it is refused, and `MAC` the HMAC-SHA256 of
//! `ROLE.EXPIRY`, base64url without padding. Each role has its own signing key, derived from
//! that role's token (HMAC-SHA256 of a fixed label, keyed by the token), so:
//!
//! - nobody can make or alter a cookie without the token (changing `c` to `v` or the other way
//!   round, or pushing the expiry out, breaks the MAC);
//! - a cookie stops working when the token changes (another server, or a restart with another
//!   token), and at its expiry; a restart with the same token keeps it, so open pages
//!   reconnect by themselves;
//! - a stolen cookie does not reveal the token, and is worthless after the session lifetime.
//!
//! MACs are checked in constant time (`ring::hmac::verify`). Everything here is pure: the
//! caller passes the current time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;

use super::access::Role;

/// Lifetime of a session cookie unless `--session-ttl` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(12 * 3600);
/// What the signing keys are derived from, besides the tokens.
const KEY_LABEL: &[u8] = b"vnrit session cookie key v1";
/// Clock difference tolerated between issuing and checking (the same process, so small).
const CLOCK_SLACK_SECS: u64 = 60;
/// Longest cookie value looked at: role, 20 digits, 43 base64 characters and two dots.
const MAX_VALUE_LEN: usize = 80;

/// Why a session cookie was refused. Every case answers 401 like a wrong token; the text is
/// for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Not `ROLE.EXPIRY.MAC`.
    #[error("the session cookie is malformed; open the link vnrit printed (with ?token=) again")]
    Malformed,
    /// The MAC does not match: made for another token or server, or altered.
    #[error("the session cookie was not issued for this server's token; open the link vnrit printed (with ?token=) again")]
    BadSignature,
    /// Its expiry has passed.
    #[error("the session cookie has expired; open the link vnrit printed (with ?token=) again")]
    Expired,
    /// Its expiry is further away than this server ever issues (another `--session-ttl`).
    #[error("the session cookie outlives this server's --session-ttl; open the link vnrit printed (with ?token=) again")]
    TooLong,
}

/// Signs and checks session cookies for one pair of tokens.
#[derive(Debug)]
pub struct CookieKeys {
    control: hmac::Key,
    view: Option<hmac::Key>,
    ttl: Duration,
}

impl CookieKeys {
    /// Keys for the control token and the optional view token; cookies live `ttl` (at least
    /// one second).
    pub fn new(control_token: &str, view_token: Option<&str>, ttl: Duration) -> Self {
        CookieKeys {
            control: derive(control_token),
            view: view_token.map(derive),
            ttl: ttl.max(Duration::from_secs(1)),
        }
    }

    /// How long an issued cookie lives (the `Max-Age` to send with it).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A fresh cookie value for `role`, issued at Unix time `now`; `None` for the view role
    /// when there is no view token.
    pub fn issue(&self, role: Role, now: u64) -> Option<String> {
        let key = self.key(role)?;
        let body = format!(
            "{}.{}",
            role_char(role),
            now.saturating_add(self.ttl.as_secs())
        );
        let mac = hmac::sign(key, body.as_bytes());
        Some(format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())))
    }

    /// The role a cookie `value` grants at Unix time `now`, or why it grants nothing.
    pub fn verify(&self, value: &str, now: u64) -> Result<Role, CookieError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(CookieError::Malformed);
        }
        let (body, mac) = value.rsplit_once('.').ok_or(CookieError::Malformed)?;
        let (role, expiry) = body.split_once('.').ok_or(CookieError::Malformed)?;
        let role = match role {
            "c" => Role::Control,
            "v" => Role::View,
            _ => return Err(CookieError::Malformed),
        };
        if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CookieError::Malformed);
        }
        let expiry: u64 = expiry.parse().map_err(|_| CookieError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| CookieError::Malformed)?;
        // A view cookie on a server without a view token is as good as a forged one.
        let key = self.key(role).ok_or(CookieError::BadSignature)?;
        hmac::verify(key, body.as_bytes(), &mac).map_err(|_| CookieError::BadSignature)?;
        if expiry <= now {
            return Err(CookieError::Expired);
        }
        if expiry - now > self.ttl.as_secs() + CLOCK_SLACK_SECS {
            return Err(CookieError::TooLong);
        }
        Ok(role)
    }

    fn key(&self, role: Role) -> Option<&hmac::Key> {
        match role {
            Role::Control => Some(&self.control),
            Role::View => self.view.as_ref(),
        }
    }
}

/// The signing key of one token.
fn derive(token: &str) -> hmac::Key {
    let outer = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    let derived = hmac::sign(&outer, KEY_LABEL);
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

fn role_char(role: Role) -> char {
    match role {
        Role::Control => 'c',
        Role::View => 'v',
    }
}

/// The current Unix time in seconds (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn keys() -> CookieKeys {
        CookieKeys::new("ctl", Some("look"), DEFAULT_TTL)
    }

    #[test]
    fn issued_cookies_verify_with_their_role() {
        let k = keys();
        let c = k.issue(Role::Control, NOW).unwrap();
        let v = k.issue(Role::View, NOW).unwrap();
        assert!(c.starts_with("c.") && v.starts_with("v."), "{c} {v}");
        assert_eq!(k.verify(&c, NOW), Ok(Role::Control));
        assert_eq!(k.verify(&v, NOW + 3600), Ok(Role::View));
        assert!(!c.contains("ctl") && !v.contains("look"), "no token inside");
        // Same token, same keys: a restarted server accepts it.
        assert_eq!(keys().verify(&c, NOW), Ok(Role::Control));
    }

    #[test]
    fn known_answer() {
        // Computed independently (Python's hmac module) from the format in the module docs.
        let k = CookieKeys::new("control-token", None, Duration::from_secs(3600));
        let want = "c.1800003600.DCNEhj2lVTBjn4opypB-EyJjqguA4axn5yMC5caOfH8";
        assert_eq!(k.issue(Role::Control, NOW).as_deref(), Some(want));
        assert_eq!(k.verify(want, NOW + 10), Ok(Role::Control));
    }

    #[test]
    fn expired_and_overlong_cookies_are_refused() {
        let k = keys();
        let c = k.issue(Role::Control, NOW).unwrap();
        let end = NOW + DEFAULT_TTL.as_secs();
        assert_eq!(k.verify(&c, end - 1), Ok(Role::Control));
        assert_eq!(k.verify(&c, end), Err(CookieError::Expired));
        assert_eq!(k.verify(&c, u64::MAX), Err(CookieError::Expired));
        // Issued with a longer lifetime than this server allows.
        let long = CookieKeys::new("ctl", None, DEFAULT_TTL * 10);
        let c = long.issue(Role::Control, NOW).unwrap();
        assert_eq!(k.verify(&c, NOW), Err(CookieError::TooLong));
    }

    #[test]
    fn foreign_and_tampered_cookies_are_refused() {
        let k = keys();
        let other = CookieKeys::new("other", Some("look2"), DEFAULT_TTL);
        let foreign = other.issue(Role::Control, NOW).unwrap();
        assert_eq!(k.verify(&foreign, NOW), Err(CookieError::BadSignature));

        let view = k.issue(Role::View, NOW).unwrap();
        let promoted = format!("c{}", &view[1..]);
        assert_eq!(k.verify(&promoted, NOW), Err(CookieError::BadSignature));
        let control = k.issue(Role::Control, NOW).unwrap();
        let demoted = format!("v{}", &control[1..]);
        assert_eq!(k.verify(&demoted, NOW), Err(CookieError::BadSignature));

        // Push the expiry out by one second.
        let (role, rest) = control.split_once('.').unwrap();
        let (expiry, mac) = rest.split_once('.').unwrap();
        let later: u64 = expiry.parse::<u64>().unwrap() + 1;
        let stretched = format!("{role}.{later}.{mac}");
        assert_eq!(k.verify(&stretched, NOW), Err(CookieError::BadSignature));

        // Every single-character change of a good cookie is refused.
        for i in 0..control.len() {
            let mut bytes = control.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(k.verify(&changed, NOW).is_err(), "{changed} accepted");
        }

        // No view token: view cookies of any origin are refused.
        let no_view = CookieKeys::new("ctl", None, DEFAULT_TTL);
        assert_eq!(no_view.issue(Role::View, NOW), None);
        assert_eq!(no_view.verify(&view, NOW), Err(CookieError::BadSignature));
    }

    #[test]
    fn malformed_values_are_refused() {
        let k = keys();
        for bad in [
            "",
            "ctl",
            "c.1.",
            "c..AAAA",
            "x.1900000000.AAAA",
            "c.-1.AAAA",
            "c.+5.AAAA",
            "c.99999999999999999999999.AAAA",
            "c.1900000000.!!!",
            "c.1900000000",
            "c.1900000000.AAAA.AAAA",
            &"c.1.".repeat(40),
        ] {
            assert!(k.verify(bad, NOW).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            k.verify("c.1900000000.AAAA", NOW),
            Err(CookieError::BadSignature)
        );
    }
}
