//! Codec choice on real offers: Debian's Firefox ESR 153 and Chromium, each as the page makes
//! it (receive-only video and audio, an `input` data channel), taken from the browsers.

use super::*;

const FIREFOX: &str = include_str!("testdata/firefox-esr-offer.sdp");
const CHROMIUM: &str = include_str!("testdata/chromium-offer.sdp");

/// The offer with the video section's `rtpmap` lines of `drop` removed (what
/// `setCodecPreferences` leaves out).
fn without(sdp: &str, drop: &[&str]) -> String {
    sdp.lines()
        .filter(|l| {
            !(l.starts_with("a=rtpmap:") && drop.iter().any(|d| l.contains(&format!(" {d}/"))))
        })
        .map(|l| format!("{l}\r\n"))
        .collect()
}

#[test]
fn firefox_offers_vp8_vp9_av1_and_gets_vp8() {
    assert_eq!(
        offered_video(FIREFOX),
        Some(vec!["VP8".into(), "VP9".into(), "AV1".into()])
    );
    assert_eq!(choose(FIREFOX), Ok(Codec::Vp8));
}

#[test]
fn chromium_offers_both_and_gets_h264() {
    let offered = offered_video(CHROMIUM).unwrap();
    assert!(offered.contains(&"H264".to_owned()) && offered.contains(&"VP8".to_owned()));
    assert_eq!(choose(CHROMIUM), Ok(Codec::H264));
    // The page's ?codec=vp8: only VP8 left.
    assert_eq!(
        choose(&without(CHROMIUM, &["H264", "VP9", "AV1"])),
        Ok(Codec::Vp8)
    );
}

#[test]
fn no_common_codec_names_both_sides() {
    let err = choose(&without(FIREFOX, &["VP8"])).unwrap_err();
    assert_eq!(err, NoCodec::NoCommon(vec!["VP9".into(), "AV1".into()]));
    assert_eq!(
        err.to_string(),
        "no common video codec: your browser offers VP9/AV1; this server sends H.264 and VP8"
    );
    let err = choose(&without(FIREFOX, &["VP8", "VP9", "AV1"])).unwrap_err();
    assert!(err.to_string().contains("offers no video codec"), "{err}");
}

#[test]
fn an_offer_without_video_or_without_sdp_is_refused() {
    let audio_only: String = FIREFOX.split("m=video").next().unwrap().to_owned()
        + &FIREFOX[FIREFOX.find("m=audio").unwrap()..];
    assert_eq!(choose(&audio_only), Err(NoCodec::NoVideo));
    assert_eq!(choose(""), Err(NoCodec::NoVideo));
    assert_eq!(choose("not sdp at all"), Err(NoCodec::NoVideo));
    assert!(NoCodec::NoVideo.to_string().contains("H.264 and VP8"));
}
