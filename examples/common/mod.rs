//! What the server-measuring examples (`idle_viewers`, `whep_receivers`) share: the flags that
//! name the vnrit server under test, and reading its CPU time from `/proc`.

// Each example uses the parts it needs.
#![allow(dead_code)]

/// The vnrit server under test, as flags.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// vnrit's HTTP port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Bearer token (full or view token).
    #[arg(long)]
    pub token: String,
    /// The vnrit process to measure.
    #[arg(long)]
    pub server_pid: u32,
    /// Settling time after all viewers connected, in seconds.
    #[arg(long, default_value_t = 4.0)]
    pub warmup_s: f64,
}

/// utime + stime of a `/proc/.../stat` line, in clock ticks.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// utime + stime of process `pid`, in clock ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Clock ticks per second (`_SC_CLK_TCK`, 100 if unknown).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The median (NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
