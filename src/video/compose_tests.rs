//! Tests of the composer against the real OpenH264 encoder and decoder: hand-made pictures
//! decode to the exact source samples where they code, and the encoder's later pictures decode
//! exactly as in a stream without any hand-made picture (encoder and decoder stay in step).

use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::{Composer, PCM_BYTES};
use crate::capture::DamageRect;
use crate::video::mbmap::MbMap;
use crate::video::nal::split_annex_b;
use crate::video::{EncoderSettings, H264Encoder, I420Frame};

type Picture = (Vec<u8>, Vec<u8>, Vec<u8>);

fn decode(decoder: &mut Decoder, au: &[u8]) -> Picture {
    let yuv = decoder
        .decode(au)
        .expect("decodes without error")
        .expect("a picture");
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let plane = |data: &[u8], stride: usize, w: usize, h: usize| -> Vec<u8> {
        (0..h)
            .flat_map(|r| data[r * stride..r * stride + w].iter().copied())
            .collect()
    };
    (
        plane(yuv.y(), sy, w, h),
        plane(yuv.u(), su, w / 2, h / 2),
        plane(yuv.v(), sv, w / 2, h / 2),
    )
}

/// A text-like desktop; `glyphs` small dark marks typed on the first line, `shift` scrolls it.
fn scene(w: u32, h: u32, glyphs: u32, shift: u32) -> I420Frame {
    let mut f = I420Frame::black(w, h);
    for y in 0..h {
        for x in 0..w {
            let yy = y + shift;
            let text =
                ((x / 2) * 7 + (yy / 3) * 13).is_multiple_of(11) && (yy / 12).is_multiple_of(2);
            let typed =
                (4..14).contains(&y) && (4..4 + glyphs * 8).contains(&x) && (x + y) % 3 != 0;
            f.y[(y * w + x) as usize] = if typed || text { 30 } else { 220 };
        }
    }
    f.u.fill(128);
    f.v.fill(128);
    f
}

struct Run {
    encoder: H264Encoder,
    composer: Composer,
    mixed: Decoder,
    pure: Decoder,
    t: u64,
    w: u32,
    h: u32,
}

impl Run {
    fn new(w: u32, h: u32) -> Self {
        Run {
            encoder: H264Encoder::new(EncoderSettings {
                width: w,
                height: h,
                framerate: 30.0,
                bitrate_kbps: 2000,
                idr_interval: None,
            })
            .expect("encoder"),
            composer: Composer::new(),
            mixed: Decoder::new().expect("decoder"),
            pure: Decoder::new().expect("decoder"),
            t: 0,
            w,
            h,
        }
    }

    /// An encoder picture: the mixed stream must decode it exactly like the pure one.
    fn library(&mut self, frame: &I420Frame) -> (Picture, bool) {
        let au = loop {
            self.t += 33;
            if let Some(au) = self
                .encoder
                .encode(frame, Duration::from_millis(self.t))
                .expect("encode")
            {
                break au;
            }
        };
        let rewritten = self.composer.library(&au.data).expect("understood");
        let want = decode(&mut self.pure, &au.data);
        let got = decode(&mut self.mixed, &rewritten);
        assert!(got == want, "the encoder's picture decodes differently");
        let reference = split_annex_b(&au.data)
            .iter()
            .any(|n| matches!(n.nal_type(), 1 | 5) && n.payload[0] & 0x60 != 0);
        (got, reference)
    }

    fn hand(&mut self, frame: &I420Frame, mbs: &MbMap, before: &Picture) -> Picture {
        let au = self.composer.hand(frame, mbs).expect("hand picture");
        let got = decode(&mut self.mixed, &au);
        let (wm, _) = mbs.size_in_mbs();
        for y in 0..self.h {
            for x in 0..self.w {
                let i = (y * self.w + x) as usize;
                let addr = (y / 16) * wm + x / 16;
                let want = if mbs.get(addr) {
                    frame.y[i]
                } else {
                    before.0[i]
                };
                assert_eq!(got.0[i], want, "luma at {x},{y} (coded: {})", mbs.get(addr));
            }
        }
        got
    }

    fn keepalive(&mut self, shown: &Picture) {
        let au = self.composer.keepalive().expect("keep-alive");
        assert!(au.len() < 32, "{} bytes", au.len());
        assert!(
            decode(&mut self.mixed, &au) == *shown,
            "keep-alive changed it"
        );
    }
}

fn glyph_mbs(w: u32, h: u32, glyph: u32) -> MbMap {
    let mut m = MbMap::new(w, h);
    m.add_rect(DamageRect {
        x: 4 + glyph * 8,
        y: 4,
        width: 8,
        height: 10,
    });
    m
}

#[test]
fn hand_pictures_and_encoder_pictures_interleave_without_drift() {
    let (w, h) = (320, 184); // 184: a partial macroblock row, cropped like 1080
    let mut run = Run::new(w, h);
    let (mut shown, _) = run.library(&scene(w, h, 0, 0));
    let mut since_ref = MbMap::new(w, h);
    for round in 0..6u32 {
        // Typing: three glyphs by hand, keep-alives between them.
        for g in 0..3 {
            let glyphs = round * 3 + g + 1;
            let frame = scene(w, h, glyphs, round * 5);
            let mut mbs = glyph_mbs(w, h, glyphs - 1);
            mbs.union(&since_ref);
            since_ref.clear();
            shown = run.hand(&frame, &mbs, &shown);
            run.keepalive(&shown);
            run.keepalive(&shown);
        }
        // Then a scroll coded by the encoder (reference and non-reference pictures alike).
        for s in 1..=(round % 3 + 1) {
            let frame = scene(w, h, round * 3 + 3, round * 5 + s);
            let (pic, reference) = run.library(&frame);
            shown = pic;
            if reference {
                since_ref.clear();
            } else {
                since_ref.fill(); // the scroll changed everything since the reference
            }
        }
        if run.composer.after_non_reference() {
            assert!(run.composer.keepalive().is_err());
        }
    }
    // A requested IDR resets everything; hand pictures work right after it.
    run.encoder.request_idr();
    let frame = scene(w, h, 20, 40);
    let (shown, _) = run.library(&frame);
    let frame = scene(w, h, 21, 40);
    let shown = run.hand(&frame, &glyph_mbs(w, h, 20), &shown);
    run.keepalive(&shown);
    let (_, _) = run.library(&scene(w, h, 22, 41));
}

#[test]
fn a_glyph_costs_a_few_hundred_bytes_and_a_still_screen_refines_to_lossless() {
    let (w, h) = (1920, 1080);
    let mut run = Run::new(w, h);
    let (shown, _) = run.library(&scene(w, h, 0, 0));
    let frame = scene(w, h, 1, 0);
    let mbs = glyph_mbs(w, h, 0);
    let au = run.composer.hand(&frame, &mbs).expect("hand picture");
    assert!(
        au.len() < mbs.count() as usize * (PCM_BYTES + 8) + 64,
        "{} bytes for {} macroblocks",
        au.len(),
        mbs.count()
    );
    let shown = {
        let got = decode(&mut run.mixed, &au);
        assert_ne!(got, shown);
        got
    };
    // Refining everything by hand gives the source exactly.
    let mut all = MbMap::new(w, h);
    all.fill();
    let refined = run.hand(&frame, &all, &shown);
    assert!(refined.0 == frame.y && refined.1 == frame.u && refined.2 == frame.v);
    run.keepalive(&refined);
}

#[test]
fn nothing_before_the_first_idr() {
    let mut c = Composer::new();
    assert!(!c.ready());
    assert!(c.keepalive().is_err());
    let f = I420Frame::black(32, 32);
    assert!(c.hand(&f, &MbMap::new(32, 32)).is_err());
}
