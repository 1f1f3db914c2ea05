//! Cheap WHEP viewers for the fan-out benchmark (`bench/viewers.sh`): N webrtc-rs WHEP clients
//! in one process that count the bytes and frames they receive but decode nothing, while the
//! vnrit server's CPU (from `/proc/PID/stat`) and RSS are sampled over windows. For each viewer
//! count it prints one table row of medians, and the CPU ratio to the first count.
//!
//! Run: `cargo run --release --example whep_receivers -- --port P --token T --server-pid PID
//! [--counts 1,5,10] [--windows 5] [--window-s 4] [--warmup-s 4]`. Everything is on 127.0.0.1.

mod common;
#[path = "../tests/whep_client.rs"]
mod whep_client;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{clock_ticks, median, process_ticks};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use whep_client::{OnPacket, WhepClient};

/// Command-line options.
#[derive(Debug, Parser)]
struct Options {
    #[command(flatten)]
    target: common::Target,
    /// Viewer counts to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    counts: Vec<usize>,
    /// Measurement windows per count.
    #[arg(long, default_value_t = 5)]
    windows: usize,
    /// Length of one window in seconds.
    #[arg(long, default_value_t = 4.0)]
    window_s: f64,
}

/// Per-viewer counters.
#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    frames: AtomicU64,
}

/// utime + stime of `pid` in clock ticks, and its RSS in KiB.
fn proc_sample(pid: u32) -> Option<(u64, u64)> {
    let ticks = process_ticks(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some((ticks, rss))
}

/// One table row.
struct Row {
    viewers: usize,
    cpu: f64,
    rss_mib: f64,
    fps_min: f64,
    fps_median: f64,
    kbps_median: f64,
}

impl Row {
    /// Server CPU per frame a viewer received, in ms: comparable across rows when a busy
    /// machine lets the encoder reach different frame rates.
    fn ms_per_frame(&self) -> f64 {
        self.cpu / 100.0 * 1000.0 / self.fps_median
    }
}

async fn measure(o: &Options, n: usize) -> Result<Row, String> {
    let mut clients = Vec::new();
    let mut counters = Vec::new();
    for i in 0..n {
        let c = Arc::new(Counters::default());
        let seen = c.clone();
        let on_packet: OnPacket = Arc::new(move |kind, packet| {
            if kind == RtpCodecKind::Video {
                seen.bytes
                    .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
                if packet.header.marker {
                    seen.frames.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let client = WhepClient::connect(o.target.port, &o.target.token, on_packet)
            .await
            .map_err(|e| format!("viewer {i}: {e}"))?;
        clients.push(client);
        counters.push(c);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        if !client.wait_connected(Duration::from_secs(20)).await {
            return Err(format!("viewer {i} did not connect within 20 s"));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(o.target.warmup_s)).await;
    let hz = clock_ticks();
    let (mut cpu, mut rss, mut fps, mut kbps) = (vec![], vec![], vec![], vec![]);
    let mut fps_min = f64::INFINITY;
    for _ in 0..o.windows {
        let t0 = Instant::now();
        let (ticks0, _) = proc_sample(o.target.server_pid).ok_or("vnrit is gone")?;
        let before: Vec<(u64, u64)> = counters
            .iter()
            .map(|c| {
                (
                    c.bytes.load(Ordering::Relaxed),
                    c.frames.load(Ordering::Relaxed),
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(o.window_s)).await;
        let (ticks1, rss_kib) = proc_sample(o.target.server_pid).ok_or("vnrit is gone")?;
        let secs = t0.elapsed().as_secs_f64();
        cpu.push((ticks1 - ticks0) as f64 / hz / secs * 100.0);
        rss.push(rss_kib as f64 / 1024.0);
        for (c, (b0, f0)) in counters.iter().zip(before) {
            let f = (c.frames.load(Ordering::Relaxed) - f0) as f64 / secs;
            let b = (c.bytes.load(Ordering::Relaxed) - b0) as f64 * 8.0 / 1000.0 / secs;
            fps_min = fps_min.min(f);
            fps.push(f);
            kbps.push(b);
        }
    }
    for client in clients {
        let status = client.delete().await;
        if status != 200 {
            eprintln!("whep_receivers: DELETE answered {status}");
        }
    }
    Ok(Row {
        viewers: n,
        cpu: median(cpu),
        rss_mib: median(rss),
        fps_min,
        fps_median: median(fps),
        kbps_median: median(kbps),
    })
}

#[tokio::main]
async fn main() {
    let o = Options::parse();
    let mut rows: Vec<Row> = Vec::new();
    for &n in &o.counts {
        eprintln!("whep_receivers: measuring {n} viewer(s)");
        match measure(&o, n).await {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("whep_receivers: {e}");
                std::process::exit(1);
            }
        }
        // Let the server drop the closed sessions before the next count.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let base = rows.first().map(|r| r.cpu).unwrap_or(f64::NAN);
    let base_per_frame = rows.first().map(Row::ms_per_frame).unwrap_or(f64::NAN);
    let first = o.counts.first().copied().unwrap_or(0);
    println!(
        "| viewers | vnrit CPU % of a core (median) | ratio to {first} viewer(s) | vnrit CPU ms per frame | ratio per frame | vnrit RSS MiB | frames/s per viewer (median / min) | kbit/s per viewer (median) |",
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.2}x | {:.1} | {:.2}x | {:.0} | {:.1} / {:.1} | {:.0} |",
            r.viewers,
            r.cpu,
            r.cpu / base,
            r.ms_per_frame(),
            r.ms_per_frame() / base_per_frame,
            r.rss_mib,
            r.fps_median,
            r.fps_min,
            r.kbps_median
        );
    }
}
