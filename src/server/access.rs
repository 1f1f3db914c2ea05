//! Who may do what, shared by every route: the role a token gives, and which page origins may
//! open the signalling socket or call the WHEP endpoint from a browser.

/// What an admitted client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Watch and control (keyboard, mouse, clipboard).
    Control,
    /// Watch only.
    View,
}

/// Whether a WebSocket upgrade from `origin` may proceed on a server reached as `host`.
///
/// Browsers always send `Origin` on WebSocket upgrades; a page from another site must not be
/// able to drive this server with the user's cookie (cross-site WebSocket hijacking). Clients
/// that send no `Origin` are not browsers and still need the token.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if allowed.contains(&origin) {
        return true;
    }
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (origin_host, host) {
        (Some(o), Some(h)) => o.eq_ignore_ascii_case(h.trim()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn only_own_or_allowed_origins() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(None, Some("h:8080"), &none));
        assert!(origin_allowed(Some("http://h:8080"), Some("h:8080"), &none));
        assert!(origin_allowed(
            Some("https://H:8080/"),
            Some("h:8080"),
            &none
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            Some("h:8080"),
            &none
        ));
        assert!(!origin_allowed(
            Some("http://h:8081"),
            Some("h:8080"),
            &none
        ));
        assert!(!origin_allowed(Some("null"), Some("h:8080"), &none));
        assert!(!origin_allowed(Some("http://h:8080"), None, &none));
        let allowed = vec!["https://desk.example.org".to_string()];
        assert!(origin_allowed(
            Some("https://desk.example.org"),
            Some("h:8080"),
            &allowed
        ));
    }
}
