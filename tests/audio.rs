//! The audio pipeline against real, private PulseAudio servers (one per test, each with a 48 kHz
//! stereo null sink): a 1 kHz tone played into the sink comes out as Opus that decodes back to
//! 1 kHz; silence sends nothing and costs almost no CPU; with no server the hub waits, reports
//! why, and starts streaming once a server appears, and again after the server is restarted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vnrit::audio::{AudioConfig, AudioFrame, AudioHub, AudioSource, AudioStats, FRAME_SAMPLES};

/// A private scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("vnrit-audio-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("home")).expect("create temp home");
        std::fs::create_dir_all(path.join("run")).expect("create temp runtime dir");
        TempDir(path)
    }

    /// The server address a PulseAudio started in this directory listens on.
    fn address(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.0.join("run/native")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Environment for PulseAudio tools confined to `dir`.
fn pulse_env(cmd: &mut Command, dir: &Path) {
    cmd.env("HOME", dir.join("home"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env_remove("PULSE_SERVER")
        .env_remove("PULSE_COOKIE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

/// A private PulseAudio with a null sink `vsink`, killed on drop.
struct Pulse {
    child: Child,
}

impl Pulse {
    fn start(dir: &TempDir) -> Pulse {
        let _ = std::fs::remove_file(dir.socket());
        let mut cmd = Command::new("pulseaudio");
        cmd.args([
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--system=false",
            "--disallow-exit",
            "-n",
            &format!(
                "--load=module-native-protocol-unix auth-anonymous=1 socket={}",
                dir.socket().display()
            ),
            "--load=module-null-sink sink_name=vsink rate=48000 channels=2",
        ]);
        pulse_env(&mut cmd, &dir.0);
        let child = cmd
            .spawn()
            .expect("pulseaudio starts (install pulseaudio: scripts/setup.sh)");
        let pulse = Pulse { child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !dir.socket().exists() {
            assert!(
                Instant::now() < deadline,
                "PulseAudio did not create its socket in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        pulse
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A player of a WAV file into `vsink`, killed on drop.
struct Player(Child);

impl Player {
    fn play(dir: &TempDir, wav: &Path) -> Player {
        Player::play_on(dir, wav, "vsink")
    }

    fn play_on(dir: &TempDir, wav: &Path, sink: &str) -> Player {
        let mut cmd = Command::new("paplay");
        cmd.arg(format!("--server={}", dir.address()))
            .arg(format!("--device={sink}"))
            .arg("--latency-msec=20")
            .arg(wav);
        pulse_env(&mut cmd, &dir.0);
        Player(
            cmd.spawn()
                .expect("paplay starts (install pulseaudio-utils)"),
        )
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes a 48 kHz stereo S16 WAV of a sine at `hz` lasting `secs`.
fn write_tone(path: &Path, hz: f64, secs: u32) {
    let frames = 48_000 * secs;
    let data_len = frames * 4;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&2u16.to_le_bytes()); // stereo
    out.extend_from_slice(&48_000u32.to_le_bytes());
    out.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let t = f64::from(i) / 48_000.0;
        let s = (12_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).expect("write the tone");
}

/// Runs `pactl` against the private server; fails the test if it fails.
fn pactl(dir: &TempDir, args: &[&str]) {
    let mut cmd = Command::new("pactl");
    cmd.arg(format!("--server={}", dir.address())).args(args);
    pulse_env(&mut cmd, &dir.0);
    let status = cmd.status().expect("pactl runs");
    assert!(status.success(), "pactl {args:?} failed");
}

fn hub_for(dir: &TempDir) -> AudioHub {
    hub_with_origin(dir, Instant::now())
}

fn hub_with_origin(dir: &TempDir, origin: Instant) -> AudioHub {
    let config = AudioConfig {
        source: AudioSource::DefaultMonitor,
        server: Some(dir.address()),
        bitrate_bps: 96_000,
    };
    AudioHub::new(config, origin)
}

/// Polls the hub's stats until `done` holds, or fails with `what` after `limit`.
fn wait_stats(hub: &AudioHub, limit: Duration, what: &str, done: impl Fn(&AudioStats) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let stats = hub.stats();
        if done(&stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collects packets until `count` arrived, or returns what came within `limit`.
fn collect(
    rt: &tokio::runtime::Runtime,
    sub: &mut vnrit::audio::AudioSubscription,
    count: usize,
    limit: Duration,
) -> Vec<Arc<AudioFrame>> {
    rt.block_on(async {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while frames.len() < count {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) | Err(_) => break,
            }
        }
        frames
    })
}

/// Decodes the packets to mono f64 (left channel).
fn decode(frames: &[Arc<AudioFrame>]) -> Vec<f64> {
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).expect("opus decoder");
    let mut pcm = vec![0i16; 5760 * 2];
    let mut mono = Vec::new();
    for frame in frames {
        assert_eq!(frame.samples, FRAME_SAMPLES);
        let n = decoder
            .decode(&frame.data, &mut pcm, false)
            .expect("every packet decodes");
        assert_eq!(n, FRAME_SAMPLES as usize, "a packet holds 20 ms");
        mono.extend(pcm[..n * 2].iter().step_by(2).map(|&s| f64::from(s)));
    }
    mono
}

/// Power of `hz` in `signal` (Goertzel).
fn goertzel(signal: &[f64], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in signal {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

#[test]
fn tone_in_the_sink_comes_out_as_opus_at_1khz() {
    let dir = TempDir::new("tone");
    let _pulse = Pulse::start(&dir);
    let wav = dir.0.join("tone.wav");
    write_tone(&wav, 1000.0, 8);
    // The origin is in the past, as when video started first: stamps count from it.
    let origin = Instant::now() - Duration::from_secs(3);
    let hub = hub_with_origin(&dir, origin);
    let mut sub = hub.subscribe();
    wait_stats(&hub, Duration::from_secs(10), "recording to start", |s| {
        s.connected
    });
    assert_eq!(hub.stats().source.as_deref(), Some("vsink.monitor"));

    let _player = Player::play(&dir, &wav);
    let rt = runtime();
    let frames = collect(&rt, &mut sub, 100, Duration::from_secs(15));
    assert_eq!(frames.len(), 100, "2 s of tone arrived as 100 packets");
    let now = origin.elapsed();
    let newest = frames[99].timestamp;
    assert!(
        newest < now && now - newest < Duration::from_millis(500),
        "stamps are capture times on the caller's clock: newest {newest:?}, now {now:?}"
    );

    // Timestamps rise in whole frames (the RTP clock steps 960 per packet).
    for pair in frames.windows(2) {
        let step = pair[1].timestamp.saturating_sub(pair[0].timestamp);
        assert!(
            step >= Duration::from_millis(20),
            "timestamps rise: {step:?}"
        );
    }

    // Skip the decoder's start-up (and the fade-in of the player), then analyse 1 s.
    let signal = decode(&frames);
    let tail = &signal[signal.len() - 48_000..];
    let rms = (tail.iter().map(|x| x * x).sum::<f64>() / tail.len() as f64).sqrt();
    assert!(
        rms > 1000.0,
        "the decoded audio is not silent (rms {rms:.0})"
    );
    let (best_hz, best) = (200..=8000)
        .step_by(100)
        .map(|hz| (hz, goertzel(tail, f64::from(hz))))
        .fold((0, 0.0), |acc, x| if x.1 > acc.1 { x } else { acc });
    assert_eq!(best_hz, 1000, "dominant frequency is 1 kHz");
    let next = goertzel(tail, 1500.0).max(goertzel(tail, 500.0));
    assert!(
        best > 100.0 * next,
        "1 kHz dominates its neighbours by 20 dB"
    );
    assert_eq!(hub.stats().overflows, 0);
}

#[test]
fn silence_sends_nothing_and_costs_almost_no_cpu() {
    let dir = TempDir::new("silence");
    let _pulse = Pulse::start(&dir);
    let hub = hub_for(&dir);
    let sub = hub.subscribe();
    wait_stats(&hub, Duration::from_secs(10), "recording to start", |s| {
        s.connected
    });
    let start = hub.stats();
    let t0 = Instant::now();
    wait_stats(&hub, Duration::from_secs(10), "3 s of silence read", |s| {
        s.frames_captured >= start.frames_captured + 150
    });
    let wall = t0.elapsed();
    let end = hub.stats();
    assert_eq!(end.frames_encoded, 0, "no packet for silence: {end:?}");
    assert_eq!(end.bytes_encoded, 0);
    let cpu = end.thread_cpu.saturating_sub(start.thread_cpu);
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    assert!(
        share < 0.05,
        "the audio thread used {:.2}% of a core on silence",
        share * 100.0
    );
    drop(sub);
    wait_stats(
        &hub,
        Duration::from_secs(5),
        "the thread to stop after the last listener",
        |s| !s.running && !s.connected,
    );
}

#[test]
fn no_server_then_server_appears_then_restarts() {
    let dir = TempDir::new("late");
    let wav = dir.0.join("tone.wav");
    write_tone(&wav, 1000.0, 30);
    let hub = hub_for(&dir);
    let mut sub = hub.subscribe();
    wait_stats(&hub, Duration::from_secs(10), "the connection error", |s| {
        s.last_error.is_some()
    });
    let stats = hub.stats();
    assert!(stats.running && !stats.connected, "{stats:?}");
    let error = stats.last_error.unwrap_or_default();
    assert!(error.contains("cannot connect"), "clear error: {error}");

    let rt = runtime();
    let pulse = Pulse::start(&dir);
    wait_stats(&hub, Duration::from_secs(20), "the reconnection", |s| {
        s.connected
    });
    let player = Player::play(&dir, &wav);
    let frames = collect(&rt, &mut sub, 10, Duration::from_secs(10));
    assert_eq!(frames.len(), 10, "audio flows once the server is up");
    drop(player);

    // The server goes away: the hub notices, reports, and comes back with a new server.
    drop(pulse);
    wait_stats(
        &hub,
        Duration::from_secs(10),
        "the loss to be noticed",
        |s| !s.connected,
    );
    let _pulse = Pulse::start(&dir);
    wait_stats(
        &hub,
        Duration::from_secs(20),
        "the second connection",
        |s| s.connected && s.connects >= 2,
    );
    let _player = Player::play(&dir, &wav);
    rt.block_on(async {
        // Packets queued before the loss may still be in the ring: look for fresh ones.
        let newest = frames.last().map(|f| f.timestamp).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(frame)) if frame.timestamp > newest + Duration::from_secs(1) => break,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => panic!("no audio after the server came back"),
            }
        }
    });
}

#[test]
fn missing_named_source_is_reported_and_shutdown_ends_listeners() {
    let dir = TempDir::new("named");
    let _pulse = Pulse::start(&dir);
    let config = AudioConfig {
        source: AudioSource::Named("no-such-source".into()),
        server: Some(dir.address()),
        bitrate_bps: 64_000,
    };
    let hub = AudioHub::new(config, Instant::now());
    let mut sub = hub.subscribe();
    wait_stats(
        &hub,
        Duration::from_secs(10),
        "the missing-source error",
        |s| s.last_error.is_some(),
    );
    let error = hub.stats().last_error.unwrap_or_default();
    assert!(
        error.contains("no-such-source") && error.contains("does not exist"),
        "{error}"
    );
    assert!(!hub.stats().connected);

    hub.shutdown(Duration::from_secs(5));
    let rt = runtime();
    let ended =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), sub.next()).await });
    assert!(matches!(ended, Ok(None)), "next() ends after shutdown");
    assert!(!hub.stats().running, "the thread finished");
}

#[test]
fn sink_removed_and_added_back_resumes_recording() {
    let dir = TempDir::new("unload");
    let _pulse = Pulse::start(&dir);
    let pactl = |args: &[&str]| pactl(&dir, args);
    let hub = hub_for(&dir);
    let _sub = hub.subscribe();
    wait_stats(&hub, Duration::from_secs(10), "recording to start", |s| {
        s.connected
    });

    pactl(&["unload-module", "module-null-sink"]);
    wait_stats(
        &hub,
        Duration::from_secs(10),
        "the lost source to be noticed",
        |s| !s.connected && s.last_error.is_some(),
    );
    let stats = hub.stats();
    assert!(stats.running, "the thread keeps retrying");
    let error = stats.last_error.unwrap_or_default();
    assert!(
        error.contains("vsink.monitor") || error.contains("no default sink"),
        "{error}"
    );

    pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=vsink",
        "rate=48000",
        "channels=2",
    ]);
    wait_stats(&hub, Duration::from_secs(20), "recording to resume", |s| {
        s.connected && s.connects >= 2
    });
    let resumed = hub.stats().frames_captured;
    wait_stats(
        &hub,
        Duration::from_secs(10),
        "audio to be read again",
        |s| s.frames_captured >= resumed + 10,
    );
}

#[test]
fn recording_follows_a_new_default_sink() {
    let dir = TempDir::new("default");
    let _pulse = Pulse::start(&dir);
    let wav = dir.0.join("tone.wav");
    write_tone(&wav, 1000.0, 8);
    let hub = hub_for(&dir);
    let mut sub = hub.subscribe();
    wait_stats(&hub, Duration::from_secs(10), "recording to start", |s| {
        s.connected
    });
    pactl(
        &dir,
        &[
            "load-module",
            "module-null-sink",
            "sink_name=other",
            "rate=48000",
            "channels=2",
        ],
    );
    pactl(&dir, &["set-default-sink", "other"]);
    wait_stats(
        &hub,
        Duration::from_secs(10),
        "the switch to the new default",
        |s| s.connected && s.source.as_deref() == Some("other.monitor"),
    );
    let _player = Player::play_on(&dir, &wav, "other");
    let rt = runtime();
    let frames = collect(&rt, &mut sub, 10, Duration::from_secs(10));
    assert_eq!(frames.len(), 10, "what the new default sink plays is heard");
}
