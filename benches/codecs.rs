//! OpenH264 and libvpx VP8 side by side on the same 1920x1080 inputs, as the pipeline runs
//! them (docs/benchmarks.md, "H.264 and VP8"): CPU per coded frame (process CPU, so VP8's
//! second thread counts), wall time, bytes per frame, and luma PSNR of every decoded frame
//! against its source (each codec's own decoder). VP8 runs three ways: whole pictures; the
//! active map from the damage on every frame (the changed 16x16 blocks only); and as the
//! pipeline runs it, the map with a whole-picture top-off every 9th frame (300 ms at 30 fps).
//!
//! Run: `cargo bench --bench codecs`. `CODECS_FRAMES` (default 90) frames per sequence. The
//! machine is shared: run it twice and trust the lower CPU figures.

mod common;
use common::process_cpu;
use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use vnrit::capture::DamageRect;
use vnrit::video::mbmap::MbMap;
use vnrit::video::{Codec, Converter, EncoderSettings, I420Frame, VideoEncoder, Vp8Decoder};

const W: u32 = 1920;
const H: u32 = 1080;
const KBPS: u32 = 4000;

/// The text-like page of benches/video.rs: glyph-sized marks in lines, a coloured sidebar.
fn page(w: usize, h: usize) -> Vec<u8> {
    let mut img = vec![0u8; w * h * 4];
    for (i, p) in img.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i % w, i / w);
        let line = y % 24;
        let cell = (x / 9).wrapping_mul(2_654_435_761) ^ (y / 24).wrapping_mul(40_503);
        let ink = line > 4 && line < 18 && (cell >> 7) % 5 != 0 && ((x % 9) * 7 + line) % 5 < 2;
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

/// One input sequence: the picture and the damage of each frame.
struct Sequence {
    name: &'static str,
    frames: Vec<(I420Frame, Option<DamageRect>)>,
}

fn fill(img: &mut [u8], rect: DamageRect, bgr: [u8; 3]) {
    for y in rect.y..rect.y + rect.height {
        for x in rect.x..rect.x + rect.width {
            let p = (y * W + x) as usize * 4;
            img[p..p + 3].copy_from_slice(&bgr);
        }
    }
}

fn sequences(n: usize) -> Vec<Sequence> {
    let tall = page(W as usize, H as usize * 3);
    let row = W as usize * 4;
    let at = |offset: usize| tall[offset * row..(offset + H as usize) * row].to_vec();
    let mut conv = Converter::new(W, H, W, H).expect("converter");
    let mut convert = |buf: &[u8]| conv.convert(buf, row).expect("convert").clone();
    let mut typing = Vec::new();
    let mut screen = at(0);
    for i in 0..n {
        // One glyph (9x16) typed per frame along a line.
        let rect = DamageRect {
            x: 300 + (i as u32 % 150) * 9,
            y: 400 + (i as u32 / 150) * 24,
            width: 9,
            height: 16,
        };
        fill(&mut screen, rect, [20, 20, 20]);
        typing.push((convert(&screen), Some(rect)));
    }
    let mut window = Vec::new();
    let mut last: Option<DamageRect> = None;
    for i in 0..n {
        let mut f = at(0);
        let r = DamageRect {
            x: 300 + (i as u32 * 12) % 1200,
            y: 200 + (i as u32 * 5) % 500,
            width: 400,
            height: 300,
        };
        fill(&mut f, r, [235, 235, 235]);
        // The damage covers where the window was and where it is.
        let d = last.map_or(r, |l| union(l, r));
        last = Some(r);
        window.push((convert(&f), Some(d)));
    }
    let scroll = (0..n)
        .map(|i| (convert(&at((i * 8) % (H as usize * 2))), None))
        .collect();
    let still = (0..n).map(|_| (convert(&at(0)), None)).collect();
    vec![
        Sequence {
            name: "still page",
            frames: still,
        },
        Sequence {
            name: "typing (one glyph a frame)",
            frames: typing,
        },
        Sequence {
            name: "dragged 400x300 window",
            frames: window,
        },
        Sequence {
            name: "scrolling page (8 px/frame)",
            frames: scroll,
        },
    ]
}

fn union(a: DamageRect, b: DamageRect) -> DamageRect {
    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
    let (x1, y1) = (
        (a.x + a.width).max(b.x + b.width),
        (a.y + a.height).max(b.y + b.height),
    );
    DamageRect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// Decodes one coded frame and returns its packed luma plane.
enum Dec {
    H264(Decoder),
    Vp8(Vp8Decoder),
}

impl Dec {
    fn luma(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        match self {
            Dec::H264(d) => {
                let yuv = d.decode(data).ok()??;
                let (sy, _, _) = yuv.strides();
                let y = yuv.y();
                Some(
                    (0..H as usize)
                        .flat_map(|r| y[r * sy..r * sy + W as usize].iter().copied())
                        .collect(),
                )
            }
            Dec::Vp8(d) => d.decode(data).ok()?.map(|f| f.y),
        }
    }
}

struct Result {
    cpu_ms: f64,
    wall_ms: f64,
    bytes: f64,
    psnr: f64,
}

/// How the damage is used: not at all, a map on every frame, or the pipeline's way (a map,
/// and the whole picture every 9th frame: its top-off every 300 ms at 30 fps).
#[derive(Clone, Copy, PartialEq)]
enum Maps {
    None,
    Always,
    TopOff,
}

fn run(codec: Codec, maps: Maps, seq: &Sequence) -> Result {
    let mut enc = VideoEncoder::new(
        codec,
        EncoderSettings {
            width: W,
            height: H,
            framerate: 30.0,
            bitrate_kbps: KBPS,
            idr_interval: None,
        },
    )
    .expect("encoder");
    enc.set_frame_skip(false);
    let mut dec = match codec {
        Codec::H264 => Dec::H264(Decoder::new().expect("decoder")),
        Codec::Vp8 => Dec::Vp8(Vp8Decoder::new().expect("decoder")),
    };
    let (mut cpu, mut wall, mut bytes, mut psnrs, mut coded) =
        (Duration::ZERO, Duration::ZERO, 0usize, Vec::new(), 0u32);
    for (i, (frame, damage)) in seq.frames.iter().enumerate() {
        let mapped = match maps {
            Maps::None => false,
            Maps::Always => i > 0,
            Maps::TopOff => i > 0 && i % 9 != 0,
        };
        let map = damage.filter(|_| mapped).map(|d| {
            let mut m = MbMap::new(W, H);
            m.add_rect(d);
            m
        });
        let ts = Duration::from_micros(i as u64 * 33_333);
        let (c0, t0) = (process_cpu(), Instant::now());
        let out = enc.encode(frame, ts, map.as_ref()).expect("encode");
        let (c1, t1) = (process_cpu(), Instant::now());
        let Some(out) = out else { continue };
        if i > 0 {
            // The first frame (a keyframe) is left out of the per-frame figures.
            cpu += c1 - c0;
            wall += t1 - t0;
            bytes += out.data.len();
            coded += 1;
        }
        if let Some(y) = dec.luma(&out.data) {
            psnrs.push(psnr(&y, &frame.y));
        }
    }
    let n = f64::from(coded.max(1));
    Result {
        cpu_ms: cpu.as_secs_f64() * 1000.0 / n,
        wall_ms: wall.as_secs_f64() * 1000.0 / n,
        bytes: bytes as f64 / n,
        psnr: psnrs.iter().sum::<f64>() / psnrs.len().max(1) as f64,
    }
}

fn main() {
    let n = std::env::var("CODECS_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90usize);
    let seqs = sequences(n);
    println!();
    println!(
        "{n} frames per sequence at 1920x1080, {KBPS} kbit/s; per coded frame after the first"
    );
    println!(
        "{:<30} {:<20} {:>8} {:>8} {:>9} {:>9}",
        "sequence", "encoder", "CPU ms", "wall ms", "KB/frame", "PSNR dB"
    );
    println!("{}", "-".repeat(89));
    for seq in &seqs {
        for (codec, maps, label) in [
            (Codec::H264, Maps::None, "OpenH264"),
            (Codec::Vp8, Maps::None, "VP8 whole picture"),
            (Codec::Vp8, Maps::Always, "VP8 map only"),
            (Codec::Vp8, Maps::TopOff, "VP8 map + top-off"),
        ] {
            if maps != Maps::None && seq.frames.iter().all(|(_, d)| d.is_none()) {
                continue; // no damage known: the pipeline codes the whole picture
            }
            let r = run(codec, maps, seq);
            println!(
                "{:<30} {:<20} {:>8.2} {:>8.2} {:>9.2} {:>9.2}",
                seq.name,
                label,
                r.cpu_ms,
                r.wall_ms,
                r.bytes / 1024.0,
                r.psnr
            );
        }
    }
}
