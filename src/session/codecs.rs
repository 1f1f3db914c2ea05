//! Which video codec a viewer gets: read from the video codecs its offer lists (`a=rtpmap`
//! lines of the `m=video` sections), H.264 where offered (Chromium: as always, with the
//! hand-made pictures), VP8 where not (Debian's Firefox has no H.264). Pure text in, a
//! decision out, so it is tested on real offers.

use crate::video::Codec;

/// Codecs that are not pictures: retransmission and error correction ride along any codec.
const NOT_PICTURES: [&str; 5] = ["rtx", "red", "ulpfec", "flexfec-03", "flexfec"];

/// Why no codec could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoCodec {
    /// The offer has no video section: the page did not ask to receive video.
    #[error(
        "the offer has no video section; the page must ask to receive video \
         (this server sends {})",
        supported()
    )]
    NoVideo,
    /// The offer's video codecs are none of ours.
    #[error(
        "no common video codec: your browser offers {}; this server sends {}",
        offered_list(.0),
        supported()
    )]
    NoCommon(Vec<String>),
}

fn supported() -> String {
    Codec::ALL.map(Codec::name).join(" and ")
}

fn offered_list(offered: &[String]) -> String {
    if offered.is_empty() {
        "no video codec".to_owned()
    } else {
        offered.join("/")
    }
}

/// The picture codecs of the offer's video sections, as the offer spells them (`VP8`, `H264`,
/// `AV1`), each once, in the offer's order.
pub fn offered_video(sdp: &str) -> Option<Vec<String>> {
    let mut in_video = false;
    let mut seen_video = false;
    let mut names: Vec<String> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video ");
            seen_video |= in_video;
            continue;
        }
        if !in_video {
            continue;
        }
        let Some(map) = line.strip_prefix("a=rtpmap:") else {
            continue;
        };
        // "96 VP8/90000"
        let Some(name) = map
            .split_once(' ')
            .and_then(|(_, codec)| codec.split('/').next())
        else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || NOT_PICTURES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_owned());
        }
    }
    seen_video.then_some(names)
}

/// The codec to send to a viewer whose offer is `sdp`.
pub fn choose(sdp: &str) -> Result<Codec, NoCodec> {
    let offered = offered_video(sdp).ok_or(NoCodec::NoVideo)?;
    let has = |name: &str| offered.iter().any(|n| n.eq_ignore_ascii_case(name));
    if has("H264") {
        Ok(Codec::H264)
    } else if has("VP8") {
        Ok(Codec::Vp8)
    } else {
        Err(NoCodec::NoCommon(offered))
    }
}

#[cfg(test)]
#[path = "codecs_tests.rs"]
mod tests;
