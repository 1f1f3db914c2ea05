//! Tests of the libvpx VP8 wrapper against the real encoder and libvpx's own decoder.

use std::time::Duration;

use super::{Vp8Decoder, Vp8Encoder};
use crate::capture::DamageRect;
use crate::video::mbmap::MbMap;
use crate::video::{EncoderSettings, I420Frame};

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

/// A flat picture of one colour (Y, U, V) with a detailed stripe, so frames are not trivial.
fn picture(w: u32, h: u32, yuv: (u8, u8, u8), phase: u32) -> I420Frame {
    let mut f = I420Frame::black(w, h);
    f.y.fill(yuv.0);
    f.u.fill(yuv.1);
    f.v.fill(yuv.2);
    for y in 0..16.min(h) {
        for x in 0..w {
            if (x + phase) % 7 < 3 {
                f.y[(y * w + x) as usize] = 235;
            }
        }
    }
    f
}

fn mean(plane: &[u8], w: u32, x0: u32, y0: u32, side: u32) -> f64 {
    let mut sum = 0u64;
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            sum += u64::from(plane[(y * w + x) as usize]);
        }
    }
    sum as f64 / f64::from(side * side)
}

#[test]
fn first_frame_is_a_keyframe_and_decodes_to_its_colour() {
    let (w, h) = (320, 240);
    let mut enc = Vp8Encoder::new(settings(w, h, 1000)).unwrap();
    let mut dec = Vp8Decoder::new().unwrap();
    // A saturated red in BT.601 limited range.
    let red = picture(w, h, (81, 90, 240), 0);
    let f = enc.encode(&red, ms(0)).unwrap().expect("a frame");
    assert!(f.keyframe);
    // VP8 keyframes start with the start code 9d 01 2a after the 3-byte frame tag.
    assert_eq!(&f.data[3..6], &[0x9d, 0x01, 0x2a]);
    let out = dec.decode(&f.data).unwrap().expect("a picture");
    assert_eq!((out.width, out.height), (w, h));
    let y = mean(&out.y, w, 100, 100, 32);
    let u = mean(&out.u, w / 2, 50, 50, 16);
    let v = mean(&out.v, w / 2, 50, 50, 16);
    assert!((y - 81.0).abs() < 3.0, "luma {y}");
    assert!((u - 90.0).abs() < 3.0, "cb {u}");
    assert!((v - 240.0).abs() < 3.0, "cr {v}");
}

#[test]
fn keyframes_only_on_request_or_interval() {
    let (w, h) = (160, 96);
    let mut enc = Vp8Encoder::new(settings(w, h, 500)).unwrap();
    let mut keys = Vec::new();
    for i in 0..40u32 {
        if i == 25 {
            enc.request_idr();
        }
        let f = enc
            .encode(&picture(w, h, (100, 128, 128), i), ms(u64::from(i) * 33))
            .unwrap()
            .expect("no drops with frame skip off");
        if f.keyframe {
            keys.push(i);
        }
    }
    assert_eq!(keys, vec![0, 25]);

    let mut s = settings(w, h, 500);
    s.idr_interval = Some(Duration::from_millis(500));
    let mut enc = Vp8Encoder::new(s).unwrap();
    let keys: Vec<u32> = (0..40u32)
        .filter(|&i| {
            enc.encode(&picture(w, h, (100, 128, 128), i), ms(u64::from(i) * 33))
                .unwrap()
                .is_some_and(|f| f.keyframe)
        })
        .collect();
    assert_eq!(keys, vec![0, 16, 32], "every 500 ms of capture time");
}

#[test]
fn bitrate_changes_move_the_output_size() {
    let (w, h) = (320, 192);
    let mut enc = Vp8Encoder::new(settings(w, h, 2000)).unwrap();
    let bytes_at = |enc: &mut Vp8Encoder, from: u32| -> usize {
        (from..from + 30)
            .map(|i| {
                // Noise-like content that needs all the bits it gets.
                let mut f = picture(w, h, (90, 128, 128), i);
                for (j, p) in f.y.iter_mut().enumerate() {
                    *p = (((j as u32).wrapping_mul(2_654_435_761) ^ (i * 7919)) >> 24) as u8;
                }
                enc.encode(&f, ms(u64::from(i) * 33))
                    .unwrap()
                    .map_or(0, |f| f.data.len())
            })
            .sum()
    };
    let high = bytes_at(&mut enc, 0);
    enc.set_bitrate(200);
    assert_eq!(enc.bitrate_kbps(), 200);
    let _settle = bytes_at(&mut enc, 30);
    let low = bytes_at(&mut enc, 60);
    assert!(
        low * 3 < high,
        "200 kbit/s: {low} bytes vs 2000 kbit/s: {high}"
    );
}

#[test]
fn an_active_map_codes_only_the_change_and_unchanged_areas_stay() {
    let (w, h) = (320, 240);
    let mut enc = Vp8Encoder::new(settings(w, h, 2000)).unwrap();
    let mut dec = Vp8Decoder::new().unwrap();
    let grey = picture(w, h, (120, 128, 128), 0);
    let first = enc.encode(&grey, ms(0)).unwrap().unwrap();
    dec.decode(&first.data).unwrap();
    // A white box in one corner.
    let mut boxed = grey.clone();
    for y in 200..232 {
        for x in 260..300 {
            boxed.y[(y * w + x) as usize] = 235;
        }
    }
    let mut changed = MbMap::new(w, h);
    changed.add_rect(DamageRect {
        x: 260,
        y: 200,
        width: 40,
        height: 32,
    });
    let f = enc
        .encode_changed(&boxed, ms(33), Some(&changed))
        .unwrap()
        .unwrap();
    assert!(!f.keyframe);
    let out = dec.decode(&f.data).unwrap().unwrap();
    assert!(mean(&out.y, w, 264, 204, 24) > 200.0, "the box arrived");
    assert!(
        (mean(&out.y, w, 40, 100, 32) - 120.0).abs() < 3.0,
        "the rest stayed"
    );
    // A still frame without a map afterwards is small and keeps the picture.
    let again = enc.encode(&boxed, ms(66)).unwrap().unwrap();
    let out = dec.decode(&again.data).unwrap().unwrap();
    assert!(mean(&out.y, w, 264, 204, 24) > 200.0);
}

#[test]
fn a_new_size_needs_a_new_encoder_and_that_starts_with_a_keyframe() {
    let mut enc = Vp8Encoder::new(settings(320, 240, 800)).unwrap();
    assert!(enc
        .encode(&picture(640, 360, (50, 128, 128), 0), ms(0))
        .is_err());
    let mut enc = Vp8Encoder::new(settings(640, 360, 800)).unwrap();
    let f = enc
        .encode(&picture(640, 360, (50, 128, 128), 0), ms(0))
        .unwrap()
        .unwrap();
    assert!(f.keyframe);
    let out = Vp8Decoder::new().unwrap().decode(&f.data).unwrap().unwrap();
    assert_eq!((out.width, out.height), (640, 360));
    assert!(Vp8Encoder::new(settings(321, 240, 800)).is_err());
}
