//! The benchmark scene of `bench/run.sh`, without browsers: records the moving desktop of
//! `examples/timecode.rs` (sweeping bar, scrolling text, time code) from a private 1920x1080
//! Xvfb at 30 fps, times the capture and conversion of every frame, then encodes the same
//! recorded frames with several OpenH264 settings and prints, per setting, the median and p95
//! encode time (wall and process CPU), the coded size, and the quality of the decoded picture
//! (luma PSNR against the source, and the worst 16x16 block of the text area).
//!
//! Run: `cargo build --release --example timecode && cargo bench --bench scene`.
//! `SCENE_FRAMES` (default 150) sets how many frames are recorded, `SCENE_ROUNDS` (default 3)
//! how often each setting runs (interleaved; the table shows medians over the rounds), and
//! `SCENE_ONLY=text,slice` runs the settings whose name contains `text` or `slice` (handy
//! under `perf record`).

mod common;
use common::process_cpu;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use vnrit::capture::{CaptureMethod, Capturer};
use vnrit::display::VirtualDisplay;
use vnrit::video::encoder::SEncParamExt;
use vnrit::video::{Converter, EncoderSettings, H264Encoder, I420Frame};

const W: u32 = 1920;
const H: u32 = 1080;

/// Kills the scene program when the benchmark ends, however it ends.
struct Scene(Child);

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_p95(mut v: Vec<Duration>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort();
    let at = |p: f64| ms(v[(((v.len() - 1) as f64) * p).round() as usize]);
    (at(0.5), at(0.95))
}

/// PSNR of two luma planes (or of a region of them), in dB; 99 when identical.
fn psnr(sse: f64, n: f64) -> f64 {
    if sse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 * n / sse).log10()
    }
}

/// Luma PSNR of the whole frame and of the worst 16x16 block inside the text area (the right
/// half below the time code), where blur or stale blocks would show first.
fn quality(src: &I420Frame, dec_y: &[u8], dec_stride: usize) -> (f64, f64) {
    let w = src.width as usize;
    let h = src.height as usize;
    let mut total = 0.0;
    for y in 0..h {
        for x in 0..w {
            let d = f64::from(src.y[y * w + x]) - f64::from(dec_y[y * dec_stride + x]);
            total += d * d;
        }
    }
    let mut worst = 99.0f64;
    for by in (200 / 16)..(h / 16 - 3) {
        for bx in (w / 2 / 16)..(w / 16 - 3) {
            let mut sse = 0.0;
            for y in by * 16..by * 16 + 16 {
                for x in bx * 16..bx * 16 + 16 {
                    let d = f64::from(src.y[y * w + x]) - f64::from(dec_y[y * dec_stride + x]);
                    sse += d * d;
                }
            }
            worst = worst.min(psnr(sse, 256.0));
        }
    }
    (psnr(total, (w * h) as f64), worst)
}

/// Recorded frames with the time each capture and conversion took.
struct Recording {
    frames: Vec<I420Frame>,
    grab: Vec<Duration>,
    convert: Vec<Duration>,
}

/// Records `n` frames of the moving scene at 30 fps.
fn record(display: &str, n: usize) -> Result<Recording, Box<dyn std::error::Error>> {
    let mut cap = Capturer::open(Some(display), CaptureMethod::Auto)?;
    let mut conv = Converter::new(W, H, W, H)?;
    let (mut frames, mut grab_t, mut conv_t) = (Vec::new(), Vec::new(), Vec::new());
    // Let the scene run a moment so the text area has filled.
    std::thread::sleep(Duration::from_millis(1500));
    let mut next = Instant::now();
    for _ in 0..n {
        next += Duration::from_micros(33_333);
        let t = Instant::now();
        let pixels = cap.capture_pixels()?;
        grab_t.push(t.elapsed());
        let t = Instant::now();
        let i420 = conv.convert(pixels.data, pixels.stride)?;
        conv_t.push(t.elapsed());
        frames.push(i420.clone());
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(Recording {
        frames,
        grab: grab_t,
        convert: conv_t,
    })
}

/// One encoder setting under test: a name and a change to OpenH264's raw parameters.
struct Variant {
    name: &'static str,
    change: fn(&mut SEncParamExt),
}

fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "vnrit now (no deblock, 2 thr, 2 TL)",
            change: |_| {},
        },
        Variant {
            name: "deblocking on (OpenH264 default)",
            change: |p| p.iLoopFilterDisableIdc = 0,
        },
        Variant {
            name: "1 reference frame",
            change: |p| p.iNumRefFrame = 1,
        },
        Variant {
            name: "no scene-change detection",
            change: |p| p.bEnableSceneChangeDetect = false,
        },
        Variant {
            name: "1 thread, 1 slice",
            change: |p| {
                p.iMultipleThreadIdc = 1;
                p.sSpatialLayers[0].sSliceArgument.uiSliceMode = openh264_sys2::SM_SINGLE_SLICE;
                p.sSpatialLayers[0].sSliceArgument.uiSliceNum = 1;
            },
        },
        Variant {
            name: "QP at least 26",
            change: |p| p.iMinQp = 26,
        },
        Variant {
            name: "QP at least 28",
            change: |p| p.iMinQp = 28,
        },
        Variant {
            name: "QP at least 30",
            change: |p| p.iMinQp = 30,
        },
        Variant {
            name: "medium complexity",
            change: |p| p.iComplexityMode = openh264_sys2::MEDIUM_COMPLEXITY,
        },
        Variant {
            name: "1 temporal layer (vnrit before)",
            change: |p| p.iTemporalLayerNum = 1,
        },
        Variant {
            name: "1 temporal layer, 1 thread",
            change: |p| {
                p.iTemporalLayerNum = 1;
                p.iMultipleThreadIdc = 1;
                p.sSpatialLayers[0].sSliceArgument.uiSliceMode = openh264_sys2::SM_SINGLE_SLICE;
                p.sSpatialLayers[0].sSliceArgument.uiSliceNum = 1;
            },
        },
        Variant {
            name: "long-term references",
            change: |p| {
                p.bEnableLongTermReference = true;
                p.iLTRRefNum = 1;
            },
        },
        Variant {
            name: "high complexity",
            change: |p| p.iComplexityMode = openh264_sys2::HIGH_COMPLEXITY,
        },
        Variant {
            name: "no scene-change detection, QP>=24",
            change: |p| {
                p.bEnableSceneChangeDetect = false;
                p.iMinQp = 24;
            },
        },
    ]
}

/// Per-variant results.
struct Outcome {
    wall: (f64, f64),
    cpu: (f64, f64),
    coded: usize,
    skipped: usize,
    kbit_s: f64,
    psnr: f64,
    worst_block: f64,
}

fn run_variant(frames: &[I420Frame], v: &Variant) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut enc = H264Encoder::new(EncoderSettings {
        width: W,
        height: H,
        framerate: 30.0,
        bitrate_kbps: 4000,
        idr_interval: None,
    })?;
    // OpenH264 accepts its raw parameters only after it has initialised on a first frame.
    enc.encode(&frames[0], Duration::ZERO)?;
    enc.set_raw_params(v.change)?;
    let mut dec = Decoder::new()?;
    let (mut wall, mut cpu, mut bytes, mut skipped) = (Vec::new(), Vec::new(), 0usize, 0usize);
    let (mut psnrs, mut worst) = (Vec::new(), Vec::new());
    for (i, frame) in frames.iter().enumerate() {
        let ts = Duration::from_micros(33_333 * (i as u64 + 1));
        let (t, c) = (Instant::now(), process_cpu());
        let out = enc.encode(frame, ts)?;
        let (t, c) = (t.elapsed(), process_cpu().saturating_sub(c));
        let Some(out) = out else {
            skipped += 1;
            continue;
        };
        wall.push(t);
        cpu.push(c);
        bytes += out.data.len();
        if let Some(pic) = dec.decode(&out.data)? {
            let (ys, _, _) = pic.strides();
            let (p, wb) = quality(frame, pic.y(), ys);
            psnrs.push(p);
            worst.push(wb);
        }
    }
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    worst.sort_by(f64::total_cmp);
    Ok(Outcome {
        wall: median_p95(wall.clone()),
        cpu: median_p95(cpu),
        coded: wall.len(),
        skipped,
        kbit_s: bytes as f64 * 8.0 / 1000.0 / (frames.len() as f64 / 30.0),
        psnr: mid(psnrs),
        // The 5th percentile over frames of the worst block: "how bad does text get".
        worst_block: worst.get(worst.len() / 20).copied().unwrap_or(0.0),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::var("SCENE_PROGRAM").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/examples/timecode"
        )
        .into()
    });
    if !std::path::Path::new(&exe).exists() {
        return Err(format!(
            "{exe} is missing: run `cargo build --release --example timecode` first"
        )
        .into());
    }
    let n: usize = std::env::var("SCENE_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let only = std::env::var("SCENE_ONLY").ok();

    let display = VirtualDisplay::start(W, H, 100 + std::process::id() % 700)?;
    let _scene = Scene(
        Command::new(&exe)
            .args(["--display", display.name()])
            .spawn()?,
    );
    let Recording {
        frames,
        grab,
        convert,
    } = record(display.name(), n)?;
    let (g50, g95) = median_p95(grab);
    let (c50, c95) = median_p95(convert);
    println!("scene benchmark: {W}x{H}, {n} frames of the timecode moving scene at 30 fps");
    println!("capture (MIT-SHM, in place) median {g50:.2} ms, p95 {g95:.2} ms");
    println!("BGRX->I420        median {c50:.2} ms, p95 {c95:.2} ms");
    println!();
    println!(
        "{:<36} {:>6} {:>5} {:>9} {:>7} {:>9} {:>7} {:>8} {:>7} {:>10}",
        "encoder setting",
        "coded",
        "skip",
        "wall p50",
        "p95",
        "CPU p50",
        "p95",
        "kbit/s",
        "PSNR",
        "text p5"
    );
    // Rounds interleave the settings, so a burst of load elsewhere on the machine hits all of
    // them alike; each cell is the median over the rounds.
    let rounds: usize = std::env::var("SCENE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let chosen: Vec<Variant> = variants()
        .into_iter()
        .filter(|v| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|o| v.name.contains(o)))
        })
        .collect();
    let mut results: Vec<Vec<Outcome>> = chosen.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (v, out) in chosen.iter().zip(results.iter_mut()) {
            match run_variant(&frames, v) {
                Ok(o) => out.push(o),
                Err(e) => println!("{:<36} failed: {e}", v.name),
            }
        }
    }
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    for (v, outs) in chosen.iter().zip(&results) {
        let Some(first) = outs.first() else { continue };
        let col = |f: fn(&Outcome) -> f64| mid(outs.iter().map(f).collect());
        println!(
            "{:<36} {:>6} {:>5} {:>9.2} {:>7.2} {:>9.2} {:>7.2} {:>8.0} {:>7.2} {:>10.2}",
            v.name,
            first.coded,
            first.skipped,
            col(|o| o.wall.0),
            col(|o| o.wall.1),
            col(|o| o.cpu.0),
            col(|o| o.cpu.1),
            col(|o| o.kbit_s),
            col(|o| o.psnr),
            col(|o| o.worst_block)
        );
    }
    Ok(())
}
