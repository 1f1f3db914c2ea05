//! Benchmark of the video stage at 1920x1080: BGRX to I420 conversion, downscale to 720p,
//! and OpenH264 encoding of a moving and a still screen. Prints a table of medians and p95.
//!
//! Run with `cargo bench --bench video` (release profile). The numbers are per frame and
//! single-threaded; on a shared machine, run it twice and trust the lower medians. Encoder
//! rows time the frames OpenH264 coded; "frames" counts those, "skip" the ones its rate
//! control dropped, "P median KB" is the median size of the coded non-IDR frames.

use std::time::{Duration, Instant};

use vnrit::video::{Converter, EncoderSettings, H264Encoder, I420Frame};

const W: u32 = 1920;
const H: u32 = 1080;

/// One row of the result table.
struct Row {
    name: String,
    times: Vec<Duration>,
    /// (median bytes of the coded non-IDR frames, IDR count, skipped count) for encoder rows.
    encode: Option<(usize, usize, usize)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A text-like "page" of `w` x `h` BGRX pixels: glyph-sized dark marks on a light
/// background, in lines, with a coloured sidebar.
fn page(w: usize, h: usize) -> Vec<u8> {
    let mut img = vec![0u8; w * h * 4];
    for (i, p) in img.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i % w, i / w);
        let line = y % 24;
        let glyph_cell = (x / 9).wrapping_mul(2_654_435_761) ^ (y / 24).wrapping_mul(40_503);
        let ink =
            line > 4 && line < 18 && (glyph_cell >> 7) % 5 != 0 && ((x % 9) * 7 + line) % 5 < 2;
        let px = if x < 240 {
            [90, 60, 40]
        } else if ink {
            [30, 30, 30]
        } else {
            [250, 248, 245]
        };
        p[..3].copy_from_slice(&px);
    }
    img
}

fn time_convert(name: &str, conv: &mut Converter, buffers: &[Vec<u8>], n: usize) -> Row {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let buf = &buffers[i % buffers.len()];
        let t = Instant::now();
        let frame = conv.convert(buf, W as usize * 4).expect("conversion");
        std::hint::black_box(frame);
        times.push(t.elapsed());
    }
    Row {
        name: name.to_string(),
        times,
        encode: None,
    }
}

/// Encodes `n` frames produced by `next_frame` at 30 fps timestamps. Only the encode call
/// is timed, and only frames the encoder coded count (a skipped frame costs well under 1 ms).
fn time_encode(
    name: &str,
    kbps: u32,
    n: usize,
    mut next_frame: impl FnMut(usize) -> I420Frame,
) -> Row {
    let mut enc = H264Encoder::new(EncoderSettings {
        width: W,
        height: H,
        framerate: 30.0,
        bitrate_kbps: kbps,
        idr_interval: None,
    })
    .expect("encoder");
    let (mut times, mut p_sizes, mut idrs, mut skipped) = (Vec::new(), Vec::new(), 0, 0);
    for i in 0..n {
        let frame = next_frame(i);
        let ts = Duration::from_micros(i as u64 * 33_333);
        let t = Instant::now();
        let out = enc.encode(&frame, ts).expect("encode");
        let elapsed = t.elapsed();
        match out {
            Some(f) => {
                times.push(elapsed);
                if f.keyframe {
                    idrs += 1;
                } else {
                    p_sizes.push(f.data.len());
                }
            }
            None => skipped += 1,
        }
    }
    Row {
        name: name.to_string(),
        times,
        encode: Some((
            p_sizes.get(p_sizes.len() / 2).copied().unwrap_or(0),
            idrs,
            skipped,
        )),
    }
}

fn main() {
    let base = page(W as usize, H as usize * 3);
    let frame_at = |offset: usize| -> Vec<u8> {
        let row = W as usize * 4;
        base[offset * row..(offset + H as usize) * row].to_vec()
    };
    let mut rows = Vec::new();

    // Conversion, hot: the same buffer again and again (in cache as far as it fits).
    let hot = vec![frame_at(0)];
    let mut conv = Converter::new(W, H, W, H).expect("converter");
    time_convert("warm-up", &mut conv, &hot, 20);
    rows.push(time_convert("BGRX->I420 1080p (hot)", &mut conv, &hot, 300));
    // Conversion, cold: eight different 8 MB buffers in turn, like fresh captures.
    let cold: Vec<Vec<u8>> = (0..8).map(|k| frame_at(k * 40)).collect();
    rows.push(time_convert(
        "BGRX->I420 1080p (cold)",
        &mut conv,
        &cold,
        300,
    ));

    let mut down = Converter::new(W, H, 1280, 720).expect("converter");
    time_convert("warm-up", &mut down, &hot, 5);
    rows.push(time_convert(
        "downscale 1080->720 + I420 (hot)",
        &mut down,
        &hot,
        150,
    ));

    // Encoding: frames are converted outside the timed region.
    let mut conv_enc = Converter::new(W, H, W, H).expect("converter");
    let mut convert = |buf: &[u8]| {
        conv_enc
            .convert(buf, W as usize * 4)
            .expect("convert")
            .clone()
    };
    let still = convert(&frame_at(0));
    rows.push(time_encode(
        "encode still screen, 4000 kbps",
        4000,
        150,
        |_| still.clone(),
    ));
    rows.push(time_encode(
        "encode scrolling page (8 px/frame), 4000 kbps",
        4000,
        150,
        |i| convert(&frame_at((i * 8) % (H as usize * 2))),
    ));
    // A 400x300 window dragged across a still page, 12 px per frame.
    let window_frame = |i: usize| -> Vec<u8> {
        let mut f = frame_at(0);
        let (wx, wy) = (300 + (i * 12) % 1200, 200 + (i * 5) % 500);
        for y in wy..wy + 300 {
            for x in wx..wx + 400 {
                let p = (y * W as usize + x) * 4;
                let border = y < wy + 28 || x < wx + 2 || x >= wx + 398 || y >= wy + 298;
                f[p..p + 3].copy_from_slice(if border {
                    &[160, 110, 60]
                } else {
                    &[235, 235, 235]
                });
            }
        }
        f
    };
    rows.push(time_encode(
        "encode dragged window, 4000 kbps",
        4000,
        150,
        |i| convert(&window_frame(i)),
    ));
    // Near worst case: the whole page jumps 97 rows every frame (fast paging through a text).
    rows.push(time_encode(
        "encode page jumping 97 px/frame, 4000 kbps",
        4000,
        120,
        |i| convert(&frame_at((i * 97) % (H as usize * 2))),
    ));

    println!();
    println!(
        "{:<50} {:>6} {:>9} {:>9} {:>12} {:>5} {:>5}",
        "case (1920x1080)", "frames", "median ms", "p95 ms", "P median KB", "IDRs", "skip"
    );
    println!("{}", "-".repeat(102));
    for mut row in rows {
        row.times.sort();
        let (kb, idr, skip) = match row.encode {
            Some((b, i, s)) => (
                format!("{:.2}", b as f64 / 1024.0),
                i.to_string(),
                s.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<50} {:>6} {:>9.2} {:>9.2} {:>12} {:>5} {:>5}",
            row.name,
            row.times.len(),
            ms(percentile(&row.times, 0.5)),
            ms(percentile(&row.times, 0.95)),
            kb,
            idr,
            skip
        );
    }
}
