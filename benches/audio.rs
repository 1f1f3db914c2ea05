//! Audio benchmark: CPU share of the `vnrit-audio` thread (PulseAudio capture + Opus encode)
//! while a 1 kHz tone plays and while the desktop is silent, on a private PulseAudio with a
//! 48 kHz stereo null sink. Also the PulseAudio server's own CPU over each phase.
//! Run with `cargo bench --bench audio`; prints a table of medians over 1 s windows.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vnrit::audio::{AudioConfig, AudioHub, AudioSource};

const WINDOWS: usize = 10;
const WINDOW: Duration = Duration::from_secs(1);

/// Kills the children and removes the scratch directory on drop.
struct Lab {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", self.dir.join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/native")
    }
}

fn write_tone(path: &Path, secs: u32) -> std::io::Result<()> {
    let frames = 48_000 * secs;
    let mut out = Vec::with_capacity(44 + frames as usize * 4);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + frames * 4).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 0x0002_0001, 48_000, 192_000, 0x0010_0004] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(frames * 4).to_le_bytes());
    for i in 0..frames {
        let t = f64::from(i) / 48_000.0;
        let s = (12_000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16;
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out)
}

/// utime + stime of a process, from /proc (clock ticks of 10 ms).
fn process_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

struct Phase {
    name: &'static str,
    shares: Vec<f64>,
    packets_per_s: f64,
    kbps: f64,
    server_share: f64,
}

fn measure(name: &'static str, hub: &AudioHub, server_pid: u32) -> Phase {
    let first = hub.stats();
    let server_first = process_cpu(server_pid);
    let started = Instant::now();
    let mut shares = Vec::with_capacity(WINDOWS);
    let mut last = first.clone();
    for _ in 0..WINDOWS {
        let t = Instant::now();
        std::thread::sleep(WINDOW);
        let now = hub.stats();
        let cpu = now.thread_cpu.saturating_sub(last.thread_cpu);
        shares.push(cpu.as_secs_f64() / t.elapsed().as_secs_f64());
        last = now;
    }
    let wall = started.elapsed().as_secs_f64();
    shares.sort_by(f64::total_cmp);
    Phase {
        name,
        shares,
        packets_per_s: (last.frames_encoded - first.frames_encoded) as f64 / wall,
        kbps: (last.bytes_encoded - first.bytes_encoded) as f64 * 8.0 / wall / 1000.0,
        server_share: process_cpu(server_pid)
            .saturating_sub(server_first)
            .as_secs_f64()
            / wall,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("vnrit-audio-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("home"))?;
    std::fs::create_dir_all(dir.join("run"))?;
    let mut lab = Lab {
        dir,
        children: Vec::new(),
    };
    let server = lab
        .command("pulseaudio")
        .args([
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--system=false",
            "--disallow-exit",
            "-n",
            &format!(
                "--load=module-native-protocol-unix auth-anonymous=1 socket={}",
                lab.socket().display()
            ),
            "--load=module-null-sink sink_name=vsink rate=48000 channels=2",
        ])
        .spawn()?;
    let server_pid = server.id();
    lab.children.push(server);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lab.socket().exists() {
        if Instant::now() > deadline {
            return Err("PulseAudio did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wav = lab.dir.join("tone.wav");
    write_tone(&wav, 60)?;

    let address = format!("unix:{}", lab.socket().display());
    let hub = AudioHub::new(
        AudioConfig {
            source: AudioSource::DefaultMonitor,
            server: Some(address.clone()),
            bitrate_bps: 96_000,
        },
        Instant::now(),
    );
    let _sub = hub.subscribe();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hub.stats().connected {
        if Instant::now() > deadline {
            return Err(format!("audio did not connect: {:?}", hub.stats()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let silent = measure("silent", &hub, server_pid);

    let player = lab
        .command("paplay")
        .arg(format!("--server={address}"))
        .args(["--device=vsink", "--latency-msec=20"])
        .arg(&wav)
        .spawn()?;
    lab.children.push(player);
    std::thread::sleep(Duration::from_secs(1));
    let playing = measure("1 kHz tone", &hub, server_pid);

    println!(
        "audio benchmark: 48 kHz stereo, Opus 96 kbit/s 20 ms, {WINDOWS} windows of {WINDOW:?}"
    );
    println!(
        "{:<12} {:>14} {:>14} {:>10} {:>10} {:>16}",
        "phase", "thread CPU med", "thread CPU max", "packets/s", "kbit/s", "pulse server CPU"
    );
    for phase in [&silent, &playing] {
        println!(
            "{:<12} {:>13.3}% {:>13.3}% {:>10.1} {:>10.1} {:>15.1}%",
            phase.name,
            phase.shares[phase.shares.len() / 2] * 100.0,
            phase.shares[phase.shares.len() - 1] * 100.0,
            phase.packets_per_s,
            phase.kbps,
            phase.server_share * 100.0
        );
    }
    hub.shutdown(Duration::from_secs(2));
    Ok(())
}
