//! Still-desktop CPU benchmark (`bench/idle.sh`, issue 2): holds N idle webrtc-rs WHEP viewers
//! on a vnrit server whose screen does not move, and measures the server over long windows:
//! process CPU (utime + stime ticks from `/proc/PID/stat`), and per thread name (vnrit-net,
//! vnrit-video, ...) CPU and context switches per second (`/proc/PID/task/*/`), which count the
//! wake-ups. Viewer counts are measured interleaved (the order rotates every round), so slow
//! drifts in the load of a shared machine hit every count alike; each row is a median over the
//! rounds.
//!
//! Run: `cargo run --release --example idle_viewers -- --port P --token T --server-pid PID
//! [--counts 0,1,3] [--rounds 3] [--window-s 60] [--warmup-s 4]`. Everything is on 127.0.0.1.

mod common;
#[path = "../tests/whep_client.rs"]
mod whep_client;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{clock_ticks, median, process_ticks, stat_ticks};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use whep_client::{OnPacket, WhepClient};

/// Command-line options.
#[derive(Debug, Parser)]
struct Options {
    #[command(flatten)]
    target: common::Target,
    /// Viewer counts to measure; the first non-zero one is the ratio's base.
    #[arg(long, value_delimiter = ',', default_value = "0,1,3")]
    counts: Vec<usize>,
    /// Rounds; every round measures every count once, in a rotated order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Length of one window in seconds.
    #[arg(long, default_value_t = 60.0)]
    window_s: f64,
}

/// CPU ticks and context switches of one thread (or a group of same-named threads).
#[derive(Clone, Copy, Default, Debug)]
struct ThreadSample {
    ticks: u64,
    switches: u64,
    /// Time on a CPU in nanoseconds (`schedstat`): finer than ticks of 10 ms.
    run_ns: u64,
}

/// The process's ticks, and per thread name the summed ticks and context switches.
fn sample(pid: u32) -> Option<(u64, BTreeMap<String, ThreadSample>)> {
    let total = process_ticks(pid)?;
    let mut threads: BTreeMap<String, ThreadSample> = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let dir = entry.path();
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map(|n| n.trim().to_owned())
            .unwrap_or_default();
        let switches = field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:");
        let ticks = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| stat_ticks(&s))
            .unwrap_or(0);
        let run_ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let slot = threads.entry(name).or_default();
        slot.ticks += ticks;
        slot.switches += switches;
        slot.run_ns += run_ns;
    }
    Some((total, threads))
}

/// One window's results.
#[derive(Default)]
struct Window {
    cpu: f64,
    /// The same from the threads' `schedstat` run time (nanoseconds, so not quantised to
    /// ticks); threads that end during the window are missing from it.
    cpu_ns: f64,
    /// Per thread name: (% of a core, context switches per second).
    threads: BTreeMap<String, (f64, f64)>,
    /// Video frames per second each viewer received (median over the viewers).
    fps: f64,
}

async fn measure(o: &Options, n: usize) -> Result<Window, String> {
    let mut clients = Vec::new();
    let mut frames = Vec::new();
    for i in 0..n {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let on_packet: OnPacket = Arc::new(move |kind, packet| {
            if kind == RtpCodecKind::Video && packet.header.marker {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let client = WhepClient::connect(o.target.port, &o.target.token, on_packet)
            .await
            .map_err(|e| format!("viewer {i}: {e}"))?;
        clients.push(client);
        frames.push(seen);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        if !client.wait_connected(Duration::from_secs(20)).await {
            return Err(format!("viewer {i} did not connect within 20 s"));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(o.target.warmup_s)).await;
    let hz = clock_ticks();
    let t0 = Instant::now();
    let (ticks0, threads0) = sample(o.target.server_pid).ok_or("vnrit is gone")?;
    let frames0: Vec<u64> = frames.iter().map(|f| f.load(Ordering::Relaxed)).collect();
    tokio::time::sleep(Duration::from_secs_f64(o.window_s)).await;
    let (ticks1, threads1) = sample(o.target.server_pid).ok_or("vnrit is gone")?;
    let secs = t0.elapsed().as_secs_f64();
    let fps = median(
        frames
            .iter()
            .zip(frames0)
            .map(|(f, f0)| (f.load(Ordering::Relaxed) - f0) as f64 / secs)
            .collect(),
    );
    let run_ns = |t: &BTreeMap<String, ThreadSample>| t.values().map(|s| s.run_ns).sum::<u64>();
    let mut window = Window {
        cpu: ticks1.saturating_sub(ticks0) as f64 / hz / secs * 100.0,
        cpu_ns: run_ns(&threads1).saturating_sub(run_ns(&threads0)) as f64 / 1e9 / secs * 100.0,
        threads: BTreeMap::new(),
        fps,
    };
    for (name, after) in threads1 {
        // Threads that started during the window count from zero.
        let before = threads0.get(&name).copied().unwrap_or_default();
        let cpu = after.ticks.saturating_sub(before.ticks) as f64 / hz / secs * 100.0;
        let rate = after.switches.saturating_sub(before.switches) as f64 / secs;
        window.threads.insert(name, (cpu, rate));
    }
    for client in clients {
        let status = client.delete().await;
        if status != 200 {
            eprintln!("idle_viewers: DELETE answered {status}");
        }
    }
    Ok(window)
}

#[tokio::main]
async fn main() {
    let o = Options::parse();
    let mut results: BTreeMap<usize, Vec<Window>> = BTreeMap::new();
    for round in 0..o.rounds {
        let k = o.counts.len();
        for j in 0..k {
            let n = o.counts[(j + round) % k];
            eprintln!(
                "idle_viewers: round {}/{}, {n} viewer(s), {} s",
                round + 1,
                o.rounds,
                o.window_s
            );
            match measure(&o, n).await {
                Ok(w) => {
                    eprintln!(
                        "idle_viewers:   vnrit {:.2} % of a core ({:.3} % by schedstat), {:.2} frames/s per viewer",
                        w.cpu, w.cpu_ns, w.fps
                    );
                    results.entry(n).or_default().push(w);
                }
                Err(e) => {
                    eprintln!("idle_viewers: {e}");
                    std::process::exit(1);
                }
            }
            // Let the server drop the closed sessions before the next count.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let cpu_of = |n: usize| median(results[&n].iter().map(|w| w.cpu).collect());
    let ns_of = |n: usize| median(results[&n].iter().map(|w| w.cpu_ns).collect());
    let base_n = o.counts.iter().copied().filter(|&n| n > 0).min();
    let base = base_n.map_or(f64::NAN, cpu_of);
    let base_ns = base_n.map_or(f64::NAN, ns_of);
    let names: Vec<String> = {
        let mut all: Vec<String> = results
            .values()
            .flatten()
            .flat_map(|w| w.threads.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    println!(
        "| viewers | vnrit CPU % of a core (ticks, median of {}) | ratio to {} viewer(s) | CPU % by schedstat | ratio | frames/s per viewer | per thread: % of a core, switches/s (medians) |",
        o.rounds,
        base_n.unwrap_or(0)
    );
    println!("|---|---|---|---|---|---|---|");
    for (&n, windows) in &results {
        let threads: Vec<String> = names
            .iter()
            .filter_map(|name| {
                let cpu = median(
                    windows
                        .iter()
                        .filter_map(|w| w.threads.get(name))
                        .map(|t| t.0)
                        .collect(),
                );
                let sw = median(
                    windows
                        .iter()
                        .filter_map(|w| w.threads.get(name))
                        .map(|t| t.1)
                        .collect(),
                );
                (sw >= 0.5 || cpu >= 0.05).then(|| format!("{name} {cpu:.2} %, {sw:.1}/s"))
            })
            .collect();
        println!(
            "| {n} | {:.2} | {:.2}x | {:.3} | {:.2}x | {:.2} | {} |",
            cpu_of(n),
            cpu_of(n) / base,
            ns_of(n),
            ns_of(n) / base_ns,
            median(windows.iter().map(|w| w.fps).collect()),
            threads.join("; ")
        );
    }
    println!(
        "all windows (% of a core by ticks, by schedstat): {}",
        results
            .iter()
            .map(|(n, ws)| format!(
                "{n}: {}",
                ws.iter()
                    .map(|w| format!("{:.2}", w.cpu))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
