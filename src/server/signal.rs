//! The signalling wire format: JSON text messages on the `/ws` WebSocket.
//!
//! Kept apart from the socket handling so it can be tested on its own. See
//! docs/protocol.md, "Signalling protocol", for the conversation.

use serde::{Deserialize, Serialize};

use crate::session::IceCandidate;

/// Version of this protocol, sent in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Version of the control and presence messages (`name`, `control`, `presence`), sent as
/// `v` in every `presence` message.
pub const CONTROL_VERSION: u32 = 1;

/// Largest signalling message accepted, in bytes (an SDP offer is ~5 kB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A message from the page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// The page's SDP offer.
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate of the page; `null`/absent means end of candidates.
    Candidate {
        /// The candidate, as `RTCIceCandidate.toJSON()`.
        #[serde(default)]
        candidate: Option<IceCandidate>,
    },
    /// The page asks for a keyframe (e.g. after a freeze).
    Keyframe,
    /// An input message (see `crate::input::wire`) sent here because the data channel is not open.
    Input {
        /// The input message text.
        data: String,
    },
    /// The page asks for a desktop of its size (sent only to a server whose hello offers
    /// `resize`; an older server refuses it as an unknown type).
    Resize {
        /// [`RESIZE_VERSION`]; another version is refused.
        v: u32,
        /// The page's width in device pixels (CSS width x devicePixelRatio).
        width: u32,
        /// The page's height in device pixels.
        height: u32,
        /// `window.devicePixelRatio`.
        dpr: f64,
    },
    /// The viewer's display name (1 to 32 characters).
    Name {
        /// The name.
        name: String,
    },
    /// Ask for, hand over, release or take control.
    Control {
        /// What to do.
        action: ControlAction,
        /// The viewer to give control to (`give` only).
        #[serde(default)]
        to: Option<u64>,
        /// The operator token (`take` only): takes control at once.
        #[serde(default)]
        admin: Option<String>,
    },
    /// Turns this viewer's microphone on or off (its audio goes to the `vnrit-mic` source).
    Mic {
        /// On (`true`) or off.
        on: bool,
    },
}

/// The `action` of a `control` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlAction {
    /// Ask for control.
    Request,
    /// Hand control to the viewer `to`.
    Give,
    /// Let go of control.
    Release,
    /// Take control (idle controller, or with the operator token).
    Take,
}

/// Version of the `resize` message this server takes.
pub const RESIZE_VERSION: u32 = 1;

/// What the hello tells a page about resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResizeOffer {
    /// [`RESIZE_VERSION`].
    pub version: u32,
    /// The largest width the server sets, in pixels.
    #[serde(rename = "maxWidth")]
    pub max_width: u32,
    /// The largest height.
    #[serde(rename = "maxHeight")]
    pub max_height: u32,
}

pub use crate::session::IceServer;

/// A message to the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// First message: protocol version and ICE servers for the page's RTCPeerConnection.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// ICE servers the page should use.
        #[serde(rename = "iceServers")]
        ice_servers: Vec<IceServer>,
        /// The page's `iceTransportPolicy`: `"relay"` (TURN only) or `"all"`.
        #[serde(rename = "iceTransportPolicy")]
        ice_transport_policy: &'static str,
        /// Whether this viewer may control the desktop (false: view-only).
        control: bool,
        /// Present when the server sets the desktop to the page's size and this viewer may ask.
        #[serde(skip_serializing_if = "Option::is_none")]
        resize: Option<ResizeOffer>,
        /// The X display streamed, e.g. `:99` (the page puts it in its title).
        display: String,
        /// Whether this viewer may send its microphone (then the page offers audio sendrecv).
        mic: bool,
        /// Why not, when `mic` is false (e.g. no PulseAudio on the server).
        #[serde(rename = "micReason", skip_serializing_if = "Option::is_none")]
        mic_reason: Option<String>,
    },
    /// The answer SDP.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled server candidate; `None` = end of candidates.
    Candidate {
        /// The candidate.
        candidate: Option<IceCandidate>,
    },
    /// An input-side message (cursor, clipboard) while the data channel is not open.
    Input {
        /// The input message text.
        data: String,
    },
    /// Who is connected and who has control, after every change.
    Presence {
        /// [`CONTROL_VERSION`].
        v: u32,
        /// The receiving viewer's own session number.
        you: u64,
        /// The rest (mode, controller, viewers...).
        #[serde(flatten)]
        presence: crate::control::Presence,
    },
    /// The state of this viewer's microphone after a `mic` request, with the reason when it
    /// was refused.
    Mic {
        /// On or off now.
        on: bool,
        /// Why it is off although asked for, if it is.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Something went wrong; the text says what.
    Error {
        /// Human-readable description.
        message: String,
    },
}

/// Why a message from the page was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalError {
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON of a known shape.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Parses one text message from the page.
pub fn parse(text: &str) -> Result<ClientMessage, SignalError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(SignalError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| SignalError::Malformed(e.to_string()))
}

impl ServerMessage {
    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; fall back to a fixed error if it did.
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"type":"error","message":"internal error"}"#.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offer_candidate_keyframe() {
        assert_eq!(
            parse(r#"{"type":"offer","sdp":"v=0"}"#),
            Ok(ClientMessage::Offer { sdp: "v=0".into() })
        );
        let c = parse(
            r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"ab"}}"#,
        )
        .unwrap();
        let ClientMessage::Candidate { candidate: Some(c) } = c else {
            panic!("not a candidate: {c:?}")
        };
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
        assert_eq!(
            parse(r#"{"type":"candidate","candidate":null}"#),
            Ok(ClientMessage::Candidate { candidate: None })
        );
        assert_eq!(parse(r#"{"type":"keyframe"}"#), Ok(ClientMessage::Keyframe));
        assert_eq!(
            parse(r#"{"type":"control","action":"give","to":3}"#),
            Ok(ClientMessage::Control {
                action: ControlAction::Give,
                to: Some(3),
                admin: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"name","name":"Ann"}"#),
            Ok(ClientMessage::Name { name: "Ann".into() })
        );
        assert_eq!(
            parse(r#"{"type":"mic","on":true}"#),
            Ok(ClientMessage::Mic { on: true })
        );
        assert_eq!(
            parse(r#"{"type":"input","data":"[\"m\",0.5,0.5]"}"#),
            Ok(ClientMessage::Input {
                data: r#"["m",0.5,0.5]"#.into()
            })
        );
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"type":"nope"}"#,
            r#"{"type":"offer"}"#,
            r#"{"type":"offer","sdp":5}"#,
            r#"{"type":"offer","sdp":"x","extra":1}"#,
            r#"{"type":"mic"}"#,
            r#"{"type":"mic","on":"yes"}"#,
            r#"{"type":"candidate","candidate":{"sdpMid":"0"}}"#,
            r#"{"type":"control","action":"steal"}"#,
            r#"{"type":"control","action":"take","admin":5}"#,
            r#"{"type":"name"}"#,
            "{\"type\":\"offer\",\"sdp\":\"\u{0}",
        ] {
            assert!(
                matches!(parse(bad), Err(SignalError::Malformed(_))),
                "{bad:?} accepted"
            );
        }
        let huge = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(matches!(parse(&huge), Err(SignalError::TooLarge(_))));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 96) as usize;
            let alphabet = br#"{}[]":,typeofrsdcandidtekyfm0123 \nul"#;
            let text: String = (0..len)
                .map(|i| {
                    let k = (seed.rotate_left(i as u32 * 5) as usize) % alphabet.len();
                    alphabet[k] as char
                })
                .collect();
            let _ = parse(&text);
        }
    }

    #[test]
    fn server_messages_serialise_as_documented() {
        let hello = ServerMessage::Hello {
            version: 1,
            ice_servers: vec![IceServer {
                urls: vec!["stun:example.org:3478".into()],
                ..Default::default()
            }],
            ice_transport_policy: "all",
            control: true,
            resize: None,
            display: ":99".into(),
            mic: false,
            mic_reason: Some("no PulseAudio server".into()),
        };
        assert_eq!(
            hello.to_json(),
            r#"{"type":"hello","version":1,"iceServers":[{"urls":["stun:example.org:3478"]}],"iceTransportPolicy":"all","control":true,"display":":99","mic":false,"micReason":"no PulseAudio server"}"#
        );
        assert_eq!(
            ServerMessage::Mic {
                on: false,
                reason: Some("busy".into())
            }
            .to_json(),
            r#"{"type":"mic","on":false,"reason":"busy"}"#
        );
        assert_eq!(
            ServerMessage::Candidate { candidate: None }.to_json(),
            r#"{"type":"candidate","candidate":null}"#
        );
        let hello = ServerMessage::Hello {
            version: 1,
            ice_servers: vec![],
            ice_transport_policy: "all",
            control: true,
            resize: Some(ResizeOffer {
                version: RESIZE_VERSION,
                max_width: 3840,
                max_height: 2160,
            }),
            display: ":1".into(),
            mic: true,
            mic_reason: None,
        };
        assert_eq!(
            hello.to_json(),
            r#"{"type":"hello","version":1,"iceServers":[],"iceTransportPolicy":"all","control":true,"resize":{"version":1,"maxWidth":3840,"maxHeight":2160},"display":":1","mic":true}"#
        );
    }

    #[test]
    fn parses_resize_and_refuses_bad_ones() {
        assert_eq!(
            parse(r#"{"type":"resize","v":1,"width":1280,"height":720,"dpr":2}"#),
            Ok(ClientMessage::Resize {
                v: 1,
                width: 1280,
                height: 720,
                dpr: 2.0
            })
        );
        for bad in [
            r#"{"type":"resize","width":1280,"height":720,"dpr":1}"#,
            r#"{"type":"resize","v":1,"width":-1,"height":720,"dpr":1}"#,
            r#"{"type":"resize","v":1,"width":1280.5,"height":720,"dpr":1}"#,
            r#"{"type":"resize","v":1,"width":99999999999,"height":720,"dpr":1}"#,
            r#"{"type":"resize","v":1,"width":1280,"height":720,"dpr":"2"}"#,
            r#"{"type":"resize","v":1,"width":1280,"height":720,"dpr":1,"x":0}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(SignalError::Malformed(_))),
                "{bad:?} accepted"
            );
        }
    }
}
