//! What one screen change costs, the present path against hand-made pictures, side by side in
//! one run (docs/video-stage.md): a private 1920x1080 Xvfb, rectangles drawn on its root
//! window, and for each change the pipeline's own pieces timed in process CPU:
//! * "encode": whole-screen grab, whole conversion, OpenH264 (what every change cost before);
//! * "hand": damage-sized grab and conversion, I_PCM macroblocks in a P picture (compose.rs).
//!
//! Then, without X: a text scroll coded by OpenH264 (CPU per frame and bits), and the still
//! picture after it, luma PSNR of the decoded picture against the
//! source at 0.5, 1 and 3 s after the stop, with refinement under the rate limit of
//! `broadcast::refine` at 4 Mbit/s, and without (keep-alives repeat the last picture).
//!
//! Run: `cargo bench --bench change`. `CHANGE_ROUNDS` (default 30) changes per size.

mod common;
use common::process_cpu;
use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use vnrit::broadcast::refine::{Planner, RefineConfig};
use vnrit::capture::{CaptureMethod, Capturer, DamageRect};
use vnrit::display::VirtualDisplay;
use vnrit::video::compose::Composer;
use vnrit::video::mbmap::MbMap;
use vnrit::video::{Converter, EncoderSettings, H264Encoder, I420Frame};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, Rectangle};

const W: u32 = 1920;
const H: u32 = 1080;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn encoder() -> H264Encoder {
    H264Encoder::new(EncoderSettings {
        width: W,
        height: H,
        framerate: 30.0,
        bitrate_kbps: 4000,
        idr_interval: None,
    })
    .expect("encoder")
}

/// Draws `rect` in a colour that alternates with `i` and waits for the damage.
fn draw(
    conn: &x11rb::rust_connection::RustConnection,
    root: u32,
    gcs: [u32; 3],
    cap: &mut Capturer,
    rect: DamageRect,
    i: usize,
) {
    let r = Rectangle {
        x: rect.x as i16,
        y: rect.y as i16,
        width: rect.width as u16,
        height: rect.height as u16,
    };
    conn.poly_fill_rectangle(root, gcs[i % 3], &[r])
        .expect("draw");
    conn.flush().expect("flush");
    while !cap.wait_for_damage(Duration::from_secs(2)).expect("damage") {}
}

struct Row {
    name: &'static str,
    rect: DamageRect,
}

fn changes() -> Vec<Row> {
    let r = |x, y, width, height| DamageRect {
        x,
        y,
        width,
        height,
    };
    vec![
        Row {
            name: "1 macroblock (a glyph)",
            rect: r(400, 304, 9, 14),
        },
        Row {
            name: "one text line (1000x14)",
            rect: r(200, 500, 1000, 14),
        },
        Row {
            name: "10 % of the screen",
            rect: r(0, 200, 1920, 108),
        },
        Row {
            name: "100 % of the screen",
            rect: r(0, 0, 1920, 1080),
        },
    ]
}

fn x_changes() -> Result<(), Box<dyn std::error::Error>> {
    let display = VirtualDisplay::start(W, H, 100 + std::process::id() % 700)?;
    let (conn, screen) = x11rb::connect(Some(display.name()))?;
    let root = conn.setup().roots[screen].root;
    // Three colours: the encoder and the hand-made rounds alternate, and each sees a change.
    let mut gcs = [0; 3];
    for (gc, colour) in gcs.iter_mut().zip([0x20_30_40u32, 0xe0_d0_b0, 0x80_20_20]) {
        *gc = conn.generate_id()?;
        conn.create_gc(*gc, root, &CreateGCAux::new().foreground(colour))?;
    }
    let rounds: usize = std::env::var("CHANGE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut cap = Capturer::open(Some(display.name()), CaptureMethod::Auto)?;
    let mut conv = Converter::new(W, H, W, H)?;
    let mut enc = encoder();
    let mut composer = Composer::new();
    let first = cap.capture_pixels()?;
    conv.convert(first.data, first.stride)?;
    let idr = enc
        .encode(conv.last(), Duration::ZERO)?
        .ok_or("no first picture")?;
    composer.library(&idr.data)?;
    println!("CPU per change, {W}x{H}, median of {rounds} (process CPU, X server not counted)");
    println!(
        "{:<26} {:>12} {:>10} {:>12} {:>10} {:>7}",
        "change", "encode ms", "bytes", "hand ms", "bytes", "ratio"
    );
    let mut t_ms = 0u64;
    for row in changes() {
        let (mut enc_cpu, mut enc_bytes, mut hand_cpu, mut hand_bytes) =
            (vec![], vec![], vec![], vec![]);
        for i in 0..rounds * 2 {
            draw(&conn, root, gcs, &mut cap, row.rect, i);
            t_ms += 33;
            let c0 = process_cpu();
            if i % 2 == 0 {
                let px = cap.capture_pixels()?;
                conv.convert(px.data, px.stride)?;
                let out = enc.encode(conv.last(), Duration::from_millis(t_ms))?;
                let n = out.map_or(0, |o| composer.library(&o.data).map_or(0, |d| d.len()));
                enc_cpu.push((process_cpu() - c0).as_secs_f64() * 1e3);
                enc_bytes.push(n as f64);
            } else {
                let (rect, px) = cap.capture_damage(16)?.ok_or("no damage")?;
                conv.convert_region(
                    (rect.x, rect.y, rect.width, rect.height),
                    px.data,
                    px.stride,
                )?;
                let mut mbs = MbMap::new(W, H);
                mbs.add_rect(rect);
                let au = composer.hand(conv.last(), &mbs)?;
                hand_cpu.push((process_cpu() - c0).as_secs_f64() * 1e3);
                hand_bytes.push(au.len() as f64);
            }
        }
        let (e, h) = (median(enc_cpu), median(hand_cpu));
        println!(
            "{:<26} {:>12.3} {:>10.0} {:>12.3} {:>10.0} {:>6.1}x",
            row.name,
            e,
            median(enc_bytes),
            h,
            median(hand_bytes),
            e / h.max(1e-6)
        );
    }
    Ok(())
}

/// A page of dark text on light, scrolled up by `shift` pixels.
fn text_page(shift: u32) -> I420Frame {
    let mut f = I420Frame::black(W, H);
    for y in 0..H {
        let yy = y + shift;
        let line = yy % 16;
        for x in 0..W {
            let glyph = !(x / 7 + yy / 16 * 5).is_multiple_of(9);
            let ink = (3..13).contains(&line) && glyph && ((x * 5 + yy * 3) % 7 < 3);
            f.y[(y * W + x) as usize] = if ink { 40 } else { 225 };
        }
    }
    f.u.fill(128);
    f.v.fill(128);
    f
}

fn luma_psnr(src: &[u8], dec: &[u8], stride: usize) -> f64 {
    let mut sse = 0.0;
    for y in 0..H as usize {
        for x in 0..W as usize {
            let d = f64::from(src[y * W as usize + x]) - f64::from(dec[y * stride + x]);
            sse += d * d;
        }
    }
    if sse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 * f64::from(W * H) / sse).log10()
    }
}

/// Scroll for 2 s (60 frames, 4 px per frame) in `camera` or screen mode.
fn scroll_then_stop(refine: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut enc = encoder();
    // As with adaptive bitrate (the default): every frame coded, none skipped.
    enc.set_frame_skip(false);
    let mut composer = Composer::new();
    let mut dec = Decoder::new()?;
    let mut planner = Planner::new(RefineConfig::default(), W, H);
    let t0 = Instant::now();
    let (mut cpu, mut bytes) = (vec![], 0usize);
    let mut frame = text_page(0);
    for i in 0..61u32 {
        frame = text_page(i * 4);
        let c0 = process_cpu();
        let Some(out) = enc.encode(&frame, Duration::from_millis(u64::from(i) * 33))? else {
            continue;
        };
        if i > 0 {
            cpu.push((process_cpu() - c0).as_secs_f64() * 1e3);
            bytes += out.data.len();
        }
        let data = composer.library(&out.data)?;
        dec.decode(&data)?;
        let mut all = MbMap::new(W, H);
        all.fill();
        let now = t0 + Duration::from_millis(u64::from(i) * 33);
        planner.coded_by_library(now, &all);
        planner.sent(now, data.len() as u64);
    }
    let stop = t0 + Duration::from_millis(60 * 33);
    let mut last = match composer.keepalive() {
        Ok(au) => dec.decode(&au)?,
        // After a non-reference picture: the next picture carries nothing new.
        Err(_) => dec.decode(&composer.hand(&frame, &MbMap::new(W, H))?)?,
    };
    let mut shown = last
        .as_ref()
        .map_or(0.0, |y| luma_psnr(&frame.y, y.y(), y.strides().0));
    let mut report = Vec::new();
    let mut per_second = [0usize; 3];
    for probe in [500u64, 1000, 3000] {
        let until = stop + Duration::from_millis(probe);
        while let (true, Some(next)) = (refine, planner.next_refine(4000)) {
            if next > until {
                break;
            }
            let at = next;
            let Some(mbs) = planner.refine(at, 4000) else {
                break;
            };
            let au = composer.hand(&frame, &mbs)?;
            planner.sent(at, au.len() as u64);
            planner.refined(at, &mbs);
            let s = ((at - stop).as_millis() / 1000) as usize;
            if let Some(b) = per_second.get_mut(s) {
                *b += au.len();
            }
            last = dec.decode(&au)?;
            if let Some(y) = last.as_ref() {
                shown = luma_psnr(&frame.y, y.y(), y.strides().0);
            }
        }
        report.push(shown);
    }
    println!(
        "{:<34} {:>9.2} {:>8.0} {:>7.1} {:>7.1} {:>7.1}   {}",
        if refine {
            "refined (hand-made I_PCM)"
        } else {
            "keep-alives only (before)"
        },
        median(cpu),
        bytes as f64 * 8.0 / 2.0 / 1000.0,
        report[0],
        report[1],
        report[2],
        per_second
            .map(|b| format!("{:.0}", b as f64 * 8.0 / 1000.0))
            .join(" / ")
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    x_changes()?;
    println!();
    println!(
        "Text scroll 2 s (4 px/frame, 30 fps) then still, 4 Mbit/s; PSNR of the decoded picture"
    );
    println!(
        "{:<34} {:>9} {:>8} {:>7} {:>7} {:>7}   kbit in s 1/2/3 after stop",
        "coder", "CPU ms/f", "kbit/s", "0.5 s", "1 s", "3 s"
    );
    for refine in [false, true] {
        scroll_then_stop(refine)?;
    }
    Ok(())
}
