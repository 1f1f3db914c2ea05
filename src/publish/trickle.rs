//! Trickle ICE for WHIP (RFC 9725 §4.3, fragments per RFC 8840): candidates found after the
//! offer was posted go to the resource in `PATCH` bodies of type
//! `application/trickle-ice-sdpfrag`. Only needed when ICE gathering outlasts its bounded
//! wait (a slow STUN server); with host candidates everything is in the offer already.

use crate::session::IceCandidate;

/// The offer's ICE credentials and first media section, and whether trickling is still on.
#[derive(Debug)]
pub struct Trickle {
    ufrag: Option<String>,
    pwd: Option<String>,
    /// `m=` line and `a=mid:` of the first media section (all are bundled on one transport).
    media: Option<(String, String)>,
    enabled: bool,
}

impl Trickle {
    /// Reads what fragments need from the posted `offer` SDP.
    pub fn new(offer: &str) -> Self {
        let mut t = Trickle {
            ufrag: None,
            pwd: None,
            media: None,
            enabled: true,
        };
        let mut m_line: Option<&str> = None;
        for line in offer.lines().map(str::trim_end) {
            if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
                t.ufrag.get_or_insert_with(|| v.to_string());
            } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
                t.pwd.get_or_insert_with(|| v.to_string());
            } else if line.starts_with("m=") {
                m_line.get_or_insert(line);
            } else if let (Some(v), Some(m), None) = (line.strip_prefix("a=mid:"), m_line, &t.media)
            {
                t.media = Some((m.to_string(), v.to_string()));
            }
        }
        t
    }

    /// Stops trickling (the server does not support it).
    pub fn disable(&mut self) {
        self.enabled = false;
    }

    /// The `PATCH` body for `candidate` (`None` = end of candidates), or `None` when
    /// trickling is off or the offer lacked what a fragment needs.
    pub fn fragment(&self, candidate: Option<&IceCandidate>) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let (ufrag, pwd) = (self.ufrag.as_ref()?, self.pwd.as_ref()?);
        let (m_line, mid) = self.media.as_ref()?;
        let mut body =
            format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n{m_line}\r\na=mid:{mid}\r\n");
        match candidate {
            Some(c) => {
                let line = c.candidate.strip_prefix("a=").unwrap_or(&c.candidate);
                if line.contains(['\r', '\n']) {
                    return None;
                }
                body.push_str(&format!("a={line}\r\n"));
            }
            None => body.push_str("a=end-of-candidates\r\n"),
        }
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:secretpassword\r\n\
        a=mid:0\r\na=sendonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n";

    #[test]
    fn fragment_carries_credentials_media_and_candidate() {
        let t = Trickle::new(OFFER);
        let c = IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        };
        let body = t.fragment(Some(&c)).expect("a fragment");
        assert_eq!(
            body,
            "a=ice-ufrag:abcd\r\na=ice-pwd:secretpassword\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\r\n"
        );
        let end = t.fragment(None).expect("end of candidates");
        assert!(end.ends_with("a=mid:0\r\na=end-of-candidates\r\n"), "{end}");
    }

    #[test]
    fn no_fragment_when_disabled_incomplete_or_injected() {
        let mut t = Trickle::new(OFFER);
        let bad = IceCandidate {
            candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\na=evil".into(),
            sdp_mid: None,
            sdp_mline_index: None,
            username_fragment: None,
        };
        assert_eq!(t.fragment(Some(&bad)), None);
        t.disable();
        assert_eq!(t.fragment(None), None);
        assert_eq!(
            Trickle::new("v=0\r\nm=video 9 X 1\r\n").fragment(None),
            None
        );
    }
}
