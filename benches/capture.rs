//! Capture benchmark: how long one whole-screen grab takes at 1920x1080, through MIT-SHM
//! and through GetImage, on a private Xvfb painted with the welcome desktop.
//! Run with `cargo bench --bench capture`; prints a table of median and p95 per frame.

use std::time::{Duration, Instant};

use vnrit::capture::{CaptureMethod, Capturer};
use vnrit::display::VirtualDisplay;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

/// Time `n` grabs (after a few warm-up grabs) and return the sorted durations.
fn time_grabs(cap: &mut Capturer, n: usize) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    for _ in 0..3 {
        cap.capture()?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let frame = cap.capture()?;
        std::hint::black_box(frame.data.as_ptr());
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Ok(times)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let first = 100 + std::process::id() % 700;
    let display = VirtualDisplay::start(WIDTH, HEIGHT, first)?;
    display.paint_welcome()?;

    println!(
        "capture benchmark: {WIDTH}x{HEIGHT} Xvfb on {}",
        display.name()
    );
    println!(
        "{:<10} {:>7} {:>14} {:>10} {:>10}",
        "method", "grabs", "median ms", "p95 ms", "MB/s"
    );
    for (method, n) in [(CaptureMethod::Shm, 100), (CaptureMethod::GetImage, 30)] {
        let mut cap = Capturer::open(Some(display.name()), method)?;
        let times = time_grabs(&mut cap, n)?;
        let median = times[times.len() / 2];
        let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
        let mbps = f64::from(WIDTH * HEIGHT * 4) / median.as_secs_f64() / 1e6;
        println!(
            "{:<10} {:>7} {:>14.2} {:>10.2} {:>10.0}",
            format!("{:?}", cap.method()),
            n,
            ms(median),
            ms(p95),
            mbps
        );
    }

    // The idle path: one still-screen wait, to show it costs nothing.
    let mut cap = Capturer::open(Some(display.name()), CaptureMethod::Auto)?;
    cap.capture()?;
    let t = Instant::now();
    let changed = cap.wait_for_damage(Duration::from_millis(500))?;
    println!(
        "idle wait_for_damage(500 ms): returned {changed} after {:.1} ms",
        ms(t.elapsed())
    );
    Ok(())
}
