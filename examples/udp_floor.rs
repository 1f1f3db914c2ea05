//! The floor under an idle viewer's cost: CPU time this machine spends to wake up for one UDP
//! datagram and read it, with nothing else done. An idle WebRTC viewer costs the server a few
//! such datagrams a second (the browser's RTCP and STUN); this shows how little of a viewer's
//! cost any server could still remove (issue 2's still-desktop ratio, docs/benchmarks.md).
//!
//! A sender thread sends `--count` small datagrams over loopback, one every `--gap-us`, so the
//! receiver sleeps in between and every datagram costs a wake-up, as on an idle connection.
//! The receiver's thread CPU time (user + system) is divided by the datagrams it read.
//!
//! Run: `cargo run --release --example udp_floor -- --count 3000`.

use std::net::UdpSocket;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Datagrams to send and read.
    #[arg(long, default_value_t = 3000)]
    count: u32,
    /// Pause between two datagrams, µs (long enough that the receiver sleeps in between).
    #[arg(long, default_value_t = 2000)]
    gap_us: u64,
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the live local `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let receiver = UdpSocket::bind("127.0.0.1:0").context("binding the receiving socket")?;
    receiver.set_read_timeout(Some(Duration::from_secs(5)))?;
    let to = receiver.local_addr()?;
    let (count, gap) = (args.count, Duration::from_micros(args.gap_us));
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let payload = [0u8; 200];
        for _ in 0..count {
            socket.send_to(&payload, to)?;
            std::thread::sleep(gap);
        }
        Ok(())
    });

    let mut buf = [0u8; 1500];
    // The first datagram starts the clock, so start-up costs are not counted.
    receiver
        .recv_from(&mut buf)
        .context("no datagram arrived")?;
    let start = thread_cpu();
    let mut read = 0u32;
    while read + 1 < count {
        if receiver.recv_from(&mut buf).is_err() {
            break; // timed out: a datagram was lost on loopback, count what arrived
        }
        read += 1;
    }
    let spent = thread_cpu() - start;
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    anyhow::ensure!(read > 0, "only one datagram arrived");
    println!(
        "{read} datagrams, {:.1} µs of CPU each to wake up for and read (one every {} µs)",
        spent.as_secs_f64() * 1e6 / f64::from(read),
        args.gap_us
    );
    Ok(())
}
