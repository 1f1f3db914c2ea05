//! Tests of the skip-picture writer against the real OpenH264 encoder and decoder.

use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::{escape_into, unescape, BitReader, BitWriter, SkipError, SkipFrames, Sps};
use crate::video::nal::{split_annex_b, NAL_SLICE, NAL_SPS};
use crate::video::{EncoderSettings, H264Encoder, I420Frame};

/// A decoded picture, planes without stride padding.
type Picture = (Vec<u8>, Vec<u8>, Vec<u8>);

fn decode(decoder: &mut Decoder, access_unit: &[u8]) -> Option<Picture> {
    let yuv = decoder.decode(access_unit).ok()??;
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let plane = |data: &[u8], stride: usize, w: usize, h: usize| -> Vec<u8> {
        (0..h)
            .flat_map(|r| data[r * stride..r * stride + w].iter().copied())
            .collect()
    };
    Some((
        plane(yuv.y(), sy, w, h),
        plane(yuv.u(), su, w / 2, h / 2),
        plane(yuv.v(), sv, w / 2, h / 2),
    ))
}

/// Luma PSNR between two pictures of the same size, in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// A desktop-like picture with a box at a position that depends on `phase`.
fn scene(w: u32, h: u32, phase: u32) -> I420Frame {
    let mut f = I420Frame::black(w, h);
    let (bx, by) = ((phase * 24) % (w - 40), (phase * 16) % (h - 40));
    for y in 0..h {
        for x in 0..w {
            let in_box = (bx..bx + 40).contains(&x) && (by..by + 40).contains(&y);
            let text = ((x / 3) ^ (y / 5)) % 7 == 0;
            f.y[(y * w + x) as usize] = if in_box {
                200
            } else if text {
                30
            } else {
                (16 + (x + 2 * y) % 200) as u8
            };
        }
    }
    let (cw, ch) = f.chroma_size();
    for i in 0..(cw * ch) as usize {
        f.u[i] = (100 + (i as u32 + phase * 7) % 50) as u8;
        f.v[i] = (120 + (i as u32 / 3) % 40) as u8;
    }
    f
}

struct Run {
    encoder: H264Encoder,
    skips: SkipFrames,
    /// Decodes everything, skip pictures included.
    with_skips: Decoder,
    /// Decodes only the encoder's pictures: what the stream shows without skips.
    reference: Decoder,
    last: Option<Picture>,
    /// The scene of the last real picture, so a keep-alive can encode it again.
    last_phase: u32,
    t: u64,
    width: u32,
    height: u32,
}

impl Run {
    fn new(width: u32, height: u32) -> Self {
        Run {
            encoder: H264Encoder::new(EncoderSettings {
                width,
                height,
                framerate: 30.0,
                bitrate_kbps: 2000,
                idr_interval: None,
            })
            .expect("encoder"),
            skips: SkipFrames::new(),
            with_skips: Decoder::new().expect("decoder"),
            reference: Decoder::new().expect("decoder"),
            last: None,
            last_phase: 0,
            t: 0,
            width,
            height,
        }
    }

    /// Encodes `phase` (a real picture); both decoders must show the same thing.
    fn real(&mut self, phase: u32) -> Vec<u8> {
        self.t += 33;
        let frame = scene(self.width, self.height, phase);
        let au = loop {
            // Rate control may skip a frame; feed it again a little later, as the pipeline does.
            if let Some(au) = self
                .encoder
                .encode(&frame, Duration::from_millis(self.t))
                .expect("encode")
            {
                break au;
            }
            self.t += 33;
        };
        self.skips.observe(&au.data);
        let got = decode(&mut self.with_skips, &au.data).expect("real picture decodes");
        let want = decode(&mut self.reference, &au.data).expect("reference decodes");
        assert!(
            got == want,
            "a real picture after skip pictures differs from the stream without them"
        );
        self.last = Some(got);
        self.last_phase = phase;
        au.data.to_vec()
    }

    /// What the pipeline does on a still screen: a skip picture when the last picture can be
    /// repeated, otherwise the same scene encoded again (which OpenH264 makes a reference
    /// picture, so the keep-alives after it are skip pictures). Either way the decoder must
    /// keep showing the last scene. Returns whether it was a skip picture.
    fn keep_alive(&mut self) -> bool {
        match self.skips.picture() {
            Ok(au) => {
                let got = decode(&mut self.with_skips, &au).expect("skip picture decodes");
                let last = self.last.as_ref().expect("a picture before");
                assert!(got == *last, "a skip picture changed the picture");
                true
            }
            Err(_) => {
                let shown = self.last.clone().expect("a picture before");
                let au = self.real(self.last_phase);
                assert!(
                    is_reference(&au),
                    "the re-encoded keep-alive is a reference picture"
                );
                let again = self.last.as_ref().expect("the re-encoded picture");
                assert!(
                    psnr(&again.0, &shown.0) > 40.0,
                    "the re-encoded keep-alive shows the same scene"
                );
                false
            }
        }
    }

    /// Writes a skip picture; it must decode to exactly the last picture.
    fn skip(&mut self) -> Vec<u8> {
        let au = self.skips.picture().expect("a skip picture");
        let got = decode(&mut self.with_skips, &au).expect("skip picture decodes");
        let last = self.last.as_ref().expect("a picture before");
        assert!(got == *last, "a skip picture changed the picture");
        au
    }
}

/// Whether every slice of an access unit is a reference slice (`nal_ref_idc` > 0).
fn is_reference(au: &[u8]) -> bool {
    split_annex_b(au)
        .iter()
        .filter(|n| matches!(n.nal_type(), NAL_SLICE | 5))
        .all(|n| n.payload[0] & 0x60 != 0)
}

#[test]
fn skip_pictures_repeat_the_last_picture_and_keep_the_stream_valid() {
    let mut run = Run::new(320, 240);
    run.real(0); // IDR
    for _ in 0..3 {
        run.skip(); // right after an IDR, several in a row
    }
    // Two temporal layers: real pictures alternate non-reference and reference, so keep-alives
    // after them are skip pictures or one re-encode followed by skip pictures.
    for phase in 1..=6 {
        run.real(phase);
        for _ in 0..3 {
            run.keep_alive();
        }
        assert!(
            run.keep_alive(),
            "skip pictures once a reference picture is last"
        );
    }
    run.real(6); // unchanged: OpenH264 refines
    for _ in 0..5 {
        run.keep_alive();
    }
    run.encoder.request_idr();
    let idr = run.real(7);
    assert!(split_annex_b(&idr).iter().any(|n| n.nal_type() == 5));
    run.skip(); // after a requested IDR
    run.real(8);
    run.real(9);
    assert_eq!(run.skips.skips_since_real(), 0);
    run.keep_alive();
    run.keep_alive();
    assert!(run.skips.skips_since_real() >= 1);
}

#[test]
fn a_still_screen_after_a_non_reference_picture_keeps_showing_it() {
    // With two temporal layers every second picture is non-reference. A skip picture repeats
    // the last *reference* picture, so repeating after a non-reference picture would show the
    // screen as it was one picture earlier: the last change would vanish from the viewers.
    let mut run = Run::new(320, 240);
    run.real(0);
    let mut phase = 1;
    while is_reference(&run.real(phase)) {
        phase += 1;
        assert!(
            phase < 6,
            "OpenH264 made no non-reference picture in 5 frames"
        );
    }
    assert!(
        run.skips.picture().is_err(),
        "no skip picture right after a non-reference picture"
    );
    assert!(
        !run.keep_alive(),
        "the first keep-alive encodes the scene again"
    );
    for _ in 0..4 {
        assert!(run.keep_alive(), "then skip pictures repeat it");
    }
    run.real(phase + 1);
}

#[test]
fn skip_pictures_work_at_1080p_and_are_tiny() {
    let mut run = Run::new(1920, 1080);
    run.real(0);
    let au = run.skip();
    // 8160 macroblocks in one Exp-Golomb run: a handful of bytes, not a re-encode.
    assert!(au.len() < 24, "{} bytes", au.len());
    run.real(1);
    run.keep_alive();
    assert!(run.keep_alive());
    run.real(1);
}

#[test]
fn skip_picture_is_a_non_reference_p_slice_continuing_frame_num() {
    let mut run = Run::new(160, 96);
    let idr = run.real(0);
    let sps_nal = split_annex_b(&idr)
        .into_iter()
        .find(|n| n.nal_type() == NAL_SPS)
        .expect("SPS with the IDR");
    let sps = Sps::parse(&unescape(&sps_nal.payload[1..])).expect("SPS parses");
    assert_eq!(sps.pic_size_in_mbs, 10 * 6);
    let au = run.skip();
    let nals = split_annex_b(&au);
    assert_eq!(nals.len(), 1);
    let header = nals[0].payload[0];
    assert_eq!(header & 0x1f, NAL_SLICE);
    assert_eq!(header & 0x60, 0, "nal_ref_idc must be 0");
    let rbsp = unescape(&nals[0].payload[1..]);
    let mut r = BitReader::new(&rbsp, "test");
    assert_eq!(r.ue(), Ok(0), "first_mb_in_slice");
    assert_eq!(r.ue(), Ok(5), "slice_type P");
    r.ue().expect("pps id");
    assert_eq!(r.bits(sps.log2_max_frame_num), Ok(1), "IDR frame_num 0 + 1");
}

#[test]
fn nothing_to_repeat_before_the_first_picture() {
    let mut skips = SkipFrames::new();
    assert_eq!(skips.picture(), Err(SkipError::NoReference));
    skips.observe(&[0, 0, 0, 1, 0x67]); // a truncated SPS
    assert!(matches!(skips.picture(), Err(SkipError::Truncated(_))));
}

#[test]
fn exp_golomb_and_emulation_prevention_round_trip() {
    let mut w = BitWriter::default();
    let values = [0u32, 1, 2, 7, 8, 255, 8160, 65_535];
    for v in values {
        w.ue(v);
    }
    for v in [-3, -1, 0, 1, 4] {
        w.se(v);
    }
    w.bits(0b101, 3);
    let rbsp = w.finish();
    let mut r = BitReader::new(&rbsp, "test");
    for v in values {
        assert_eq!(r.ue(), Ok(v));
    }
    for v in [-3, -1, 0, 1, 4] {
        assert_eq!(r.se(), Ok(v));
    }
    assert_eq!(r.bits(3), Ok(0b101));
    assert_eq!(r.bit(), Ok(1), "stop bit");

    let raw = [0u8, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 7];
    let mut escaped = Vec::new();
    escape_into(&raw, &mut escaped);
    assert!(!escaped
        .windows(3)
        .any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
    assert_eq!(unescape(&escaped), raw);
}
