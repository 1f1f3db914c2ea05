//! Tests of the OpenH264 wrapper against the real encoder and OpenH264's real decoder.

use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::encoder::Level;
use openh264::formats::YUVSource;

use super::{level_for, EncodedFrame, EncoderSettings, H264Encoder};
use crate::video::nal::{split_annex_b, SpsHeader, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS};
use crate::video::{Converter, I420Frame};

fn settings(width: u32, height: u32, kbps: u32) -> EncoderSettings {
    EncoderSettings {
        width,
        height,
        framerate: 30.0,
        bitrate_kbps: kbps,
        idr_interval: None,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A BGRX "desktop": fixed text-like detail, with a box that moves 4 pixels per `phase`
/// step (a small change, like a dragged window or a cursor).
fn pattern_bgrx(w: usize, h: usize, phase: usize) -> Vec<u8> {
    let mut img = vec![0u8; w * h * 4];
    let (bx, by) = ((phase * 4) % w.saturating_sub(48).max(1), h / 3);
    for (i, p) in img.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i % w, i / w);
        let glyph = ((x / 3) ^ (y / 5)) % 7 == 0 || (x % 40 < 2);
        let base = [(x * 2) as u8, (y * 3) as u8, ((x + y) / 2) as u8];
        let in_box = (bx..bx + 48).contains(&x) && (by..by + 32).contains(&y);
        let px = if in_box {
            [30, 90, 230]
        } else if glyph {
            [20, 20, 20]
        } else {
            base
        };
        p[..3].copy_from_slice(&px);
    }
    img
}

fn pattern(w: u32, h: u32, phase: usize) -> I420Frame {
    let img = pattern_bgrx(w as usize, h as usize, phase);
    let mut c = Converter::new(w, h, w, h).unwrap();
    c.convert(&img, w as usize * 4).unwrap().clone()
}

fn nal_types(f: &EncodedFrame) -> Vec<u8> {
    split_annex_b(&f.data)
        .iter()
        .map(|n| n.nal_type())
        .collect()
}

/// Checks the access unit starts with SPS, PPS, IDR and returns the SPS header.
fn assert_keyframe_layout(f: &EncodedFrame) -> SpsHeader {
    assert!(f.keyframe);
    assert!(f.data.starts_with(&[0, 0, 0, 1]), "Annex-B start code");
    let nals = split_annex_b(&f.data);
    let types: Vec<u8> = nals.iter().map(|n| n.nal_type()).collect();
    assert_eq!(
        &types[..3],
        &[NAL_SPS, NAL_PPS, NAL_IDR],
        "NAL order {types:?}"
    );
    SpsHeader::parse(nals[0].payload).unwrap()
}

#[test]
fn first_frame_is_constrained_baseline_idr_with_parameter_sets_and_a_1080p_level() {
    let mut enc = H264Encoder::new(settings(1920, 1080, 4000)).unwrap();
    let f = enc.encode(&pattern(1920, 1080, 0), ms(0)).unwrap().unwrap();
    assert_eq!((f.width, f.height), (1920, 1080));
    let sps = assert_keyframe_layout(&f);
    assert_eq!(sps.profile_idc, 66);
    assert!(sps.constraint_set1(), "flags {:#x}", sps.constraint_flags);
    // Level 4.0 (MaxFS 8192 MBs, MaxMBPS 245760) is the first to hold 8160 MBs at 30 fps.
    assert!(sps.level_idc >= 40, "level_idc {}", sps.level_idc);
}

#[test]
fn request_idr_gives_another_keyframe_with_parameter_sets() {
    let mut enc = H264Encoder::new(settings(320, 240, 1000)).unwrap();
    let first = enc.encode(&pattern(320, 240, 0), ms(0)).unwrap().unwrap();
    assert_keyframe_layout(&first);
    for i in 1..6u64 {
        let f = enc
            .encode(&pattern(320, 240, i as usize), ms(i * 33))
            .unwrap();
        if let Some(f) = f {
            assert!(!f.keyframe, "frame {i} should be a P frame");
            assert!(!nal_types(&f).contains(&NAL_SPS));
        }
    }
    enc.request_idr();
    let f = enc.encode(&pattern(320, 240, 6), ms(200)).unwrap().unwrap();
    assert_keyframe_layout(&f);
    let after = enc.encode(&pattern(320, 240, 7), ms(233)).unwrap();
    assert!(
        after.is_none_or(|f| !f.keyframe),
        "only one IDR per request"
    );
}

#[test]
fn idr_interval_forces_periodic_keyframes() {
    let mut s = settings(160, 96, 500);
    s.idr_interval = Some(Duration::from_secs(1));
    let mut enc = H264Encoder::new(s).unwrap();
    let mut keyframes = Vec::new();
    for i in 0..26u64 {
        if let Some(f) = enc
            .encode(&pattern(160, 96, i as usize), ms(i * 100))
            .unwrap()
        {
            if f.keyframe {
                assert_keyframe_layout(&f);
                keyframes.push(i * 100);
            }
        }
    }
    assert_eq!(keyframes, [0, 1000, 2000]);
}

#[test]
fn a_static_screen_gives_tiny_p_frames() {
    let mut enc = H264Encoder::new(settings(1280, 720, 4000)).unwrap();
    let frame = pattern(1280, 720, 0);
    let idr = enc.encode(&frame, ms(0)).unwrap().unwrap();
    let mut sizes = Vec::new();
    for i in 1..25u64 {
        if let Some(f) = enc.encode(&frame, ms(i * 33)).unwrap() {
            assert!(!f.keyframe);
            sizes.push(f.data.len());
        }
    }
    // The first P frames refine the quality of the IDR; after that nothing changes.
    assert!(sizes.len() >= 10, "too many repeats skipped: {sizes:?}");
    assert!(
        sizes.iter().all(|&s| s * 20 < idr.data.len()),
        "{sizes:?} vs IDR {}",
        idr.data.len()
    );
    let tail = &sizes[sizes.len() - 5..];
    assert!(
        tail.iter().all(|&s| s < 100),
        "repeats of a still screen: {tail:?} bytes"
    );
}

/// Bytes produced for 30 frames whose top-left quarter is fresh noise every frame (like a
/// video playing in a window), with the bitrate set after the first frame.
fn bytes_at(kbps: u32) -> (usize, u32) {
    let mut enc = H264Encoder::new(settings(320, 240, 1000)).unwrap();
    let mut frame = pattern(320, 240, 0);
    enc.encode(&frame, ms(0)).unwrap();
    enc.set_bitrate(kbps);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut total = 0;
    for i in 1..31u64 {
        for row in frame.y.chunks_exact_mut(320).take(120) {
            for v in &mut row[..160] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *v = 16 + (seed >> 56) as u8 % 200;
            }
        }
        if let Some(f) = enc.encode(&frame, ms(i * 33)).unwrap() {
            total += f.data.len();
        }
    }
    (total, enc.bitrate_kbps())
}

#[test]
fn set_bitrate_takes_effect_without_rebuilding() {
    let (low, low_kbps) = bytes_at(100);
    let (high, high_kbps) = bytes_at(6000);
    assert_eq!((low_kbps, high_kbps), (100, 6000));
    assert!(
        high > low * 3,
        "6000 kbit/s gave {high} bytes, 100 kbit/s gave {low}"
    );
}

#[test]
fn set_bitrate_before_the_first_frame_and_clamping() {
    let mut enc = H264Encoder::new(settings(160, 96, 1000)).unwrap();
    enc.set_bitrate(300);
    assert_eq!(enc.bitrate_kbps(), 300);
    let f = enc.encode(&pattern(160, 96, 0), ms(0)).unwrap().unwrap();
    assert!(f.keyframe);
    enc.set_bitrate(1);
    assert_eq!(enc.bitrate_kbps(), super::MIN_BITRATE_KBPS);
    enc.set_bitrate(u32::MAX);
    assert_eq!(enc.bitrate_kbps(), super::MAX_BITRATE_KBPS);
    assert!(enc.encode(&pattern(160, 96, 1), ms(33)).is_ok());
}

/// Decodes `frames` in order with OpenH264's decoder; returns the last picture, packed.
fn decode_last(frames: &[EncodedFrame]) -> Option<I420Frame> {
    let mut dec = Decoder::new().unwrap();
    let mut last = None;
    for f in frames {
        if let Some(pic) = dec.decode(&f.data).unwrap() {
            let (w, h) = pic.dimensions();
            let (ys, us, vs) = pic.strides();
            let plane = |data: &[u8], stride: usize, pw: usize, ph: usize| -> Vec<u8> {
                (0..ph)
                    .flat_map(|r| data[r * stride..r * stride + pw].to_vec())
                    .collect()
            };
            last = Some(I420Frame {
                width: w as u32,
                height: h as u32,
                y: plane(pic.y(), ys, w, h),
                u: plane(pic.u(), us, w / 2, h / 2),
                v: plane(pic.v(), vs, w / 2, h / 2),
            });
        }
    }
    last
}

/// BT.601 limited-range YUV to RGB, the inverse of the converter's formula.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [f64; 3] {
    let y = (f64::from(y) - 16.0) * 255.0 / 219.0;
    let u = (f64::from(u) - 128.0) * 255.0 / 224.0;
    let v = (f64::from(v) - 128.0) * 255.0 / 224.0;
    [
        y + 1.402 * v,
        y - 0.344136 * u - 0.714136 * v,
        y + 1.772 * u,
    ]
}

#[test]
fn round_trip_through_the_decoder_keeps_quadrant_colours() {
    // RGB colours of the four quadrants (top-left, top-right, bottom-left, bottom-right).
    let quads: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 40], [40, 60, 210], [240, 240, 240]];
    let (w, h) = (320usize, 240usize);
    let mut img = vec![0u8; w * h * 4];
    for (i, p) in img.chunks_exact_mut(4).enumerate() {
        let [r, g, b] = quads[usize::from(i % w >= w / 2) + 2 * usize::from(i / w >= h / 2)];
        p.copy_from_slice(&[b, g, r, 0]);
    }
    let mut conv = Converter::new(320, 240, 320, 240).unwrap();
    let frame = conv.convert(&img, w * 4).unwrap().clone();
    let mut enc = H264Encoder::new(settings(320, 240, 1500)).unwrap();
    let frames: Vec<EncodedFrame> = (0..3u64)
        .filter_map(|i| enc.encode(&frame, ms(i * 33)).unwrap())
        .collect();
    let I420Frame {
        width,
        height,
        y,
        u,
        v,
    } = decode_last(&frames).expect("decoder produced a picture");
    assert_eq!((width, height), (320, 240));
    for (qi, want) in quads.iter().enumerate() {
        for (dx, dy) in [(80, 60), (40, 30), (120, 90)] {
            let (x, yy) = (dx + (qi % 2) * 160, dy + (qi / 2) * 120);
            let got = yuv_to_rgb(
                y[yy * w + x],
                u[(yy / 2) * (w / 2) + x / 2],
                v[(yy / 2) * (w / 2) + x / 2],
            );
            for c in 0..3 {
                assert!(
                    (got[c] - f64::from(want[c])).abs() <= 10.0,
                    "quadrant {qi} at ({x},{yy}): got {got:?}, want {want:?}"
                );
            }
        }
    }
}

#[test]
fn a_late_joiner_can_start_decoding_at_a_requested_idr() {
    let mut enc = H264Encoder::new(settings(320, 240, 1000)).unwrap();
    let mut frames = Vec::new();
    let mut last_phase = 0;
    for i in 0..8u64 {
        if i == 4 {
            enc.request_idr();
        }
        if let Some(f) = enc
            .encode(&pattern(320, 240, i as usize), ms(i * 100))
            .unwrap()
        {
            frames.push(f);
            last_phase = i as usize;
        }
    }
    let start = frames.iter().rposition(|f| f.keyframe).unwrap();
    assert!(start > 0, "the requested IDR is not the first frame");
    let pic = decode_last(&frames[start..]).expect("late joiner decodes");
    assert_eq!((pic.width, pic.height), (320, 240));
    let y = pic.y;
    // The decoded luma is close to the source of the last frame (lossy: mean error).
    let src = pattern(320, 240, last_phase);
    let err: u64 = y
        .iter()
        .zip(&src.y)
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    assert!(
        err / (y.len() as u64) < 6,
        "mean luma error {}",
        err / y.len() as u64
    );
}

#[test]
fn wrong_sizes_and_settings_are_errors() {
    assert!(H264Encoder::new(settings(321, 240, 1000)).is_err());
    assert!(H264Encoder::new(settings(0, 240, 1000)).is_err());
    assert!(H264Encoder::new(settings(4096, 2160, 1000)).is_err());
    let mut bad_fps = settings(320, 240, 1000);
    bad_fps.framerate = 0.0;
    assert!(H264Encoder::new(bad_fps).is_err());
    let mut enc = H264Encoder::new(settings(320, 240, 1000)).unwrap();
    assert!(enc.encode(&I420Frame::black(160, 120), ms(0)).is_err());
    let mut torn = I420Frame::black(320, 240);
    torn.v.truncate(10);
    assert!(enc.encode(&torn, ms(0)).is_err());
}

#[test]
fn an_idr_without_parameter_sets_gets_the_remembered_ones() {
    let mut enc = H264Encoder::new(settings(160, 96, 500)).unwrap();
    let first = enc.encode(&pattern(160, 96, 0), ms(0)).unwrap().unwrap();
    let sets_len = split_annex_b(&first.data)
        .iter()
        .filter(|n| matches!(n.nal_type(), NAL_SPS | NAL_PPS))
        .map(|n| n.payload.len() + 4)
        .sum::<usize>();
    // An access unit holding only an IDR slice, as an encoder that emits SPS/PPS once would.
    enc.out = vec![0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21];
    assert!(enc.finish_access_unit());
    let types: Vec<u8> = split_annex_b(&enc.out)
        .iter()
        .map(|n| n.nal_type())
        .collect();
    assert_eq!(types, [NAL_SPS, NAL_PPS, NAL_IDR]);
    assert_eq!(enc.out.len(), sets_len + 8);
    assert_eq!(&first.data[..sets_len], &enc.out[..sets_len]);
}

#[test]
fn encoder_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<H264Encoder>();
}

#[test]
fn levels_cover_size_and_rate() {
    let idc = |w, h, fps| level_for(w, h, fps) as i32;
    assert_eq!(idc(1920, 1080, 30.0), Level::Level_4_0 as i32);
    assert_eq!(idc(1280, 720, 30.0), Level::Level_3_1 as i32);
    assert_eq!(idc(1920, 1080, 60.0), Level::Level_4_2 as i32);
    assert_eq!(idc(3840, 2160, 30.0), Level::Level_5_1 as i32);
    assert_eq!(idc(640, 480, 30.0), Level::Level_3_1 as i32);
}

#[test]
fn screen_tuning_is_in_force_after_the_first_frame_and_frames_still_decode() {
    let mut enc = H264Encoder::new(settings(320, 240, 1000)).unwrap();
    assert!(
        enc.set_raw_params(|_| {}).is_err(),
        "raw parameters need an initialised encoder"
    );
    let mut frames = vec![enc.encode(&pattern(320, 240, 0), ms(0)).unwrap().unwrap()];
    assert!(frames[0].keyframe);
    let mut seen = None;
    enc.set_raw_params(|p| {
        seen = Some((
            p.iLoopFilterDisableIdc,
            p.iMaxBitrate,
            p.iTargetBitrate,
            p.iTemporalLayerNum,
            p.iNumRefFrame,
        ))
    })
    .unwrap();
    let (deblocking, peak, target, layers, refs) = seen.unwrap();
    assert_eq!(deblocking, 1, "the deblocking filter must be off");
    assert_eq!((layers, refs), (2, 1), "two temporal layers, one reference");
    assert_eq!(target, 1_000_000);
    assert_eq!(peak, 2_000_000, "the widened peak must survive the tuning");
    // set_raw_params rebuilt OpenH264, so the next frame is an IDR; the stream decodes on.
    for i in 1..6u64 {
        if let Some(f) = enc
            .encode(&pattern(320, 240, i as usize), ms(i * 33))
            .unwrap()
        {
            frames.push(f);
        }
    }
    assert!(frames[1].keyframe, "a rebuilt encoder starts with an IDR");
    assert!(decode_last(&frames).is_some());
}

/// `nal_ref_idc` of every coded slice (IDR or not) in `f`.
fn slice_ref_idcs(f: &EncodedFrame) -> Vec<u8> {
    split_annex_b(&f.data)
        .iter()
        .filter(|n| matches!(n.nal_type(), NAL_SLICE | NAL_IDR))
        .map(|n| n.payload[0] >> 5 & 3)
        .collect()
}

#[test]
fn every_second_p_frame_is_a_non_reference_frame_and_the_stream_decodes() {
    let (w, h) = (640, 360);
    let mut enc = H264Encoder::new(settings(w, h, 4000)).unwrap();
    let mut frames = Vec::new();
    for i in 0..13u64 {
        frames.extend(enc.encode(&pattern(w, h, i as usize), ms(i * 33)).unwrap());
    }
    // Only plain AVC units: no SVC prefix NAL units or extensions a browser would trip on.
    for f in &frames {
        let types = nal_types(f);
        assert!(
            types
                .iter()
                .all(|t| matches!(*t, NAL_SLICE | NAL_IDR | NAL_SPS | NAL_PPS)),
            "NAL types {types:?}"
        );
    }
    // The first frame comes out coded with the tuning already in force.
    let tuned: Vec<bool> = frames
        .iter()
        .map(|f| {
            let idcs = slice_ref_idcs(f);
            assert!(!idcs.is_empty());
            assert!(idcs.iter().all(|&i| (i == 0) == (idcs[0] == 0)), "{idcs:?}");
            idcs[0] != 0
        })
        .collect();
    assert!(frames[0].keyframe && tuned[0], "the IDR is a reference");
    assert!(
        tuned.windows(2).all(|p| p[0] || p[1]),
        "two non-reference frames in a row: {tuned:?}"
    );
    let non_ref = tuned.iter().filter(|r| !**r).count();
    assert!(
        non_ref * 3 >= tuned.len(),
        "{non_ref} of {} non-reference",
        tuned.len()
    );
    let last = decode_last(&frames).unwrap();
    let src = pattern(w, h, 12);
    let sse: f64 = src
        .y
        .iter()
        .zip(&last.y)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum();
    let psnr = 10.0 * (255.0f64.powi(2) * src.y.len() as f64 / sse.max(1.0)).log10();
    assert!(psnr > 35.0, "last frame decodes to {psnr:.1} dB");
}

#[test]
fn idr_requests_bitrate_changes_and_skipped_frames_keep_the_stream_decodable() {
    // Noise in a quarter of a small frame at low bitrates makes the rate control skip frames;
    // IDRs and bitrate changes land on both temporal layers. OpenH264 aborts the process on
    // some reference-list states, so surviving this loop is part of the test.
    let (w, h) = (320, 240);
    let mut enc = H264Encoder::new(settings(w, h, 200)).unwrap();
    let mut frame = pattern(w, h, 0);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let (mut coded, mut dec) = (0, Decoder::new().unwrap());
    for i in 0..120u64 {
        for row in frame.y.chunks_exact_mut(w as usize).take(h as usize / 2) {
            for v in &mut row[..w as usize / 2] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *v = 16 + (seed >> 56) as u8 % 200;
            }
        }
        if i % 7 == 3 {
            enc.request_idr();
        }
        if i % 10 == 5 {
            enc.set_bitrate([80, 400, 150, 1200][(i / 10 % 4) as usize]);
        }
        if let Some(f) = enc.encode(&frame, ms(i * 33)).unwrap() {
            coded += 1;
            dec.decode(&f.data).unwrap();
        }
    }
    assert!(coded >= 20, "only {coded} of 120 frames coded");
}
