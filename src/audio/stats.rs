//! Counters of the audio pipeline, shared between its thread and whoever reports on it.

use crate::lock::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Live counters, updated by the audio thread.
#[derive(Debug, Default)]
pub struct AudioCounters {
    /// Audio threads alive (briefly two while a stopping run overlaps a new one).
    pub(super) threads: AtomicUsize,
    pub(super) connected: AtomicBool,
    pub(super) frames_captured: AtomicU64,
    pub(super) frames_encoded: AtomicU64,
    pub(super) frames_silent: AtomicU64,
    pub(super) bytes_encoded: AtomicU64,
    pub(super) overflows: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) frames_dropped: AtomicU64,
    pub(super) thread_cpu_ns: AtomicU64,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) source: Mutex<Option<String>>,
}

/// A point-in-time copy of the audio pipeline's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AudioStats {
    /// The capture thread is alive (there are listeners).
    pub running: bool,
    /// A record stream is open on a PulseAudio server right now.
    pub connected: bool,
    /// 20 ms frames read from PulseAudio.
    pub frames_captured: u64,
    /// Opus packets produced and broadcast.
    pub frames_encoded: u64,
    /// Frames not sent because they were silent (or DTX).
    pub frames_silent: u64,
    /// Total size of the Opus packets produced.
    pub bytes_encoded: u64,
    /// Times PulseAudio reported that it dropped audio because we read too slowly.
    pub overflows: u64,
    /// Successful connections (more than one means the server went away and came back).
    pub connects: u64,
    /// Frames that listeners lost because they fell behind.
    pub frames_dropped: u64,
    /// CPU time the audio thread used, over all its runs (JSON: `thread_cpu_ms`).
    #[serde(rename = "thread_cpu_ms", serialize_with = "as_millis")]
    pub thread_cpu: Duration,
    /// The most recent problem (kept after recovery until the next one), if any.
    pub last_error: Option<String>,
    /// The source being recorded (or last recorded).
    pub source: Option<String>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl AudioCounters {
    /// Copies the counters.
    pub fn snapshot(&self) -> AudioStats {
        AudioStats {
            running: self.threads.load(Ordering::Relaxed) > 0,
            connected: self.connected.load(Ordering::Relaxed),
            frames_captured: self.frames_captured.load(Ordering::Relaxed),
            frames_encoded: self.frames_encoded.load(Ordering::Relaxed),
            frames_silent: self.frames_silent.load(Ordering::Relaxed),
            bytes_encoded: self.bytes_encoded.load(Ordering::Relaxed),
            overflows: self.overflows.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            thread_cpu: Duration::from_nanos(self.thread_cpu_ns.load(Ordering::Relaxed)),
            last_error: lock(&self.last_error).clone(),
            source: lock(&self.source).clone(),
        }
    }

    pub(super) fn set_error(&self, message: String) {
        *lock(&self.last_error) = Some(message);
    }

    pub(super) fn set_source(&self, source: String) {
        *lock(&self.source) = Some(source);
    }
}

/// CPU time used so far by the calling thread.
pub(super) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID is always supported
    // on Linux; on failure the call leaves `ts` at zero, which we report as no time.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_serialize_for_the_stats_api() {
        let stats = AudioStats {
            thread_cpu: Duration::from_micros(1500),
            last_error: Some("no server".into()),
            ..Default::default()
        };
        let json = serde_json::to_value(&stats).expect("serializes");
        assert_eq!(json["thread_cpu_ms"], 1.5);
        assert_eq!(json["last_error"], "no server");
        assert_eq!(json["connected"], false);
    }
}
