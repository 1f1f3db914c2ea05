//! The body of the `vnrit-audio` thread: connect to PulseAudio (retrying with backoff), read,
//! frame, timestamp, encode and broadcast, until told to stop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::on_demand::StopSwitch as _;

use super::encoder::{Encoded, OpusEncoder};
use super::pulse::{current_default_monitor, Event, PulseError, Recorder};
use super::stats::{thread_cpu_time, AudioCounters};
use super::{
    AudioConfig, AudioFrame, Control, CHANNELS, FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE,
};

/// First wait after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A gap between where the sample count puts a frame and when it arrived beyond which the clock
/// is re-anchored (the source was suspended, or the server stalled).
const REANCHOR_AFTER: Duration = Duration::from_millis(200);

/// Everything the thread needs.
pub(super) struct Job {
    pub config: AudioConfig,
    pub clock_origin: Instant,
    pub control: Arc<Control>,
    pub tx: broadcast::Sender<Arc<AudioFrame>>,
    pub counters: Arc<AudioCounters>,
}

/// Runs until stopped; never panics on anything PulseAudio does.
pub(super) fn run(job: Job) {
    let cpu_start = thread_cpu_time();
    let mut cpu_reported = Duration::ZERO;
    let mut report_cpu = |counters: &AudioCounters| {
        let used = thread_cpu_time().saturating_sub(cpu_start);
        let delta = used.saturating_sub(cpu_reported);
        cpu_reported = used;
        counters.thread_cpu_ns.fetch_add(
            u64::try_from(delta.as_nanos()).unwrap_or(0),
            Ordering::Relaxed,
        );
    };

    let mut encoder = match OpusEncoder::new(job.config.bitrate_bps) {
        Ok(encoder) => encoder,
        Err(err) => {
            tracing::warn!("audio disabled: {err}");
            job.counters.set_error(err.to_string());
            return;
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let mut warned = false;
    while !job.control.stopped() {
        let connects_before = job.counters.connects.load(Ordering::Relaxed);
        let result = Recorder::open(job.config.server.as_deref(), &job.config.source)
            .and_then(|recorder| session(&job, recorder, &mut encoder, &mut report_cpu, warned));
        job.counters.connected.store(false, Ordering::Relaxed);
        report_cpu(&job.counters);
        if job.control.stopped() {
            break;
        }
        let err = match result {
            Ok(Ended::Stopped) => continue,
            Ok(Ended::DefaultChanged(monitor)) => {
                tracing::info!("audio: the default sink changed; now recording {monitor:?}");
                continue;
            }
            Err(err) => err,
        };
        if job.counters.connects.load(Ordering::Relaxed) != connects_before {
            // It worked for a while: a new outage, worth a new warning.
            backoff = FIRST_BACKOFF;
            warned = false;
        }
        job.counters.set_error(err.to_string());
        if warned {
            tracing::debug!("audio: still unavailable: {err}");
        } else {
            tracing::warn!(
                "audio unavailable: {err}; video goes on, retrying every {}-{} s",
                FIRST_BACKOFF.as_secs(),
                MAX_BACKOFF.as_secs()
            );
            warned = true;
        }
        if job.control.wait_stopped(backoff) {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    report_cpu(&job.counters);
    tracing::info!("audio pipeline stopped");
}

/// Why a recording ended without an error.
enum Ended {
    /// The hub stopped the pipeline.
    Stopped,
    /// The default sink changed (to the one with this monitor): reconnect at once to follow it.
    DefaultChanged(String),
}

/// Streams from one open recorder until it fails (the error says why) or ends (`Ok`, saying why).
fn session(
    job: &Job,
    mut recorder: Recorder,
    encoder: &mut OpusEncoder,
    report_cpu: &mut impl FnMut(&AudioCounters),
    recovering: bool,
) -> Result<Ended, PulseError> {
    let interrupter = recorder.interrupter()?;
    if !job.control.arm(interrupter) {
        return Ok(Ended::Stopped);
    }
    let counters = &job.counters;
    counters.connected.store(true, Ordering::Relaxed);
    counters.connects.fetch_add(1, Ordering::Relaxed);
    counters.set_source(recorder.source.clone());
    if recovering {
        tracing::info!(
            "audio is back: recording {:?} from {}",
            recorder.source,
            recorder.address
        );
    } else {
        tracing::info!(
            "audio: recording {:?} from {}",
            recorder.source,
            recorder.address
        );
    }

    let frame_len = (FRAME_SAMPLES * CHANNELS) as usize;
    let mut pcm: Vec<i16> = Vec::with_capacity(frame_len * 4);
    let mut odd_byte: Option<u8> = None;
    let mut clock = FrameClock::default();
    let result = loop {
        let event = match recorder.read() {
            Ok(event) => event,
            Err(_) if job.control.stopped() => break Ok(Ended::Stopped),
            Err(err) => break Err(err),
        };
        let bytes = match event {
            Event::Data(bytes) => bytes,
            Event::Overflow => {
                counters.overflows.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Event::ServerChanged if recorder.follows_default => {
                match current_default_monitor(&recorder.address) {
                    Ok(monitor) if monitor != recorder.source => {
                        break Ok(Ended::DefaultChanged(monitor))
                    }
                    Ok(_) => continue,
                    Err(err) => {
                        tracing::debug!("audio: cannot look up the default sink: {err}");
                        continue;
                    }
                }
            }
            Event::ServerChanged | Event::Other => continue,
        };
        let arrival = Instant::now().saturating_duration_since(job.clock_origin);
        append_samples(&mut pcm, &mut odd_byte, &bytes);
        let mut start = 0;
        while pcm.len() - start >= frame_len {
            let frame = &pcm[start..start + frame_len];
            start += frame_len;
            // Everything still buffered after this frame was captured after it.
            let queued = (pcm.len() - start) / CHANNELS as usize + FRAME_SAMPLES as usize;
            let captured = arrival.saturating_sub(samples_to_duration(queued));
            let timestamp = clock.stamp(captured);
            counters.frames_captured.fetch_add(1, Ordering::Relaxed);
            match encoder.encode(frame) {
                Ok(Encoded::Packet(packet)) => {
                    counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
                    counters
                        .bytes_encoded
                        .fetch_add(packet.len() as u64, Ordering::Relaxed);
                    let frame = AudioFrame {
                        data: bytes::Bytes::from(packet),
                        timestamp,
                        samples: FRAME_SAMPLES,
                    };
                    // No listener right now is fine: the hub stops us after the last one leaves.
                    let _ = job.tx.send(Arc::new(frame));
                }
                Ok(Encoded::Skipped) => {
                    counters.frames_silent.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    counters.set_error(err.to_string());
                    tracing::debug!("audio: {err}");
                }
            }
        }
        pcm.drain(..start);
        report_cpu(counters);
        if job.control.stopped() {
            break Ok(Ended::Stopped);
        }
    };
    job.control.disarm();
    result
}

/// Appends little-endian S16 bytes to `pcm`, carrying a split sample over to the next call.
fn append_samples(pcm: &mut Vec<i16>, odd_byte: &mut Option<u8>, bytes: &[u8]) {
    let mut rest = bytes;
    if let Some(low) = odd_byte.take() {
        if let Some((&high, tail)) = rest.split_first() {
            pcm.push(i16::from_le_bytes([low, high]));
            rest = tail;
        } else {
            *odd_byte = Some(low);
            return;
        }
    }
    let mut pairs = rest.chunks_exact(2);
    pcm.extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
    *odd_byte = pairs.remainder().first().copied();
}

fn samples_to_duration(samples: usize) -> Duration {
    Duration::from_nanos(samples as u64 * 1_000_000_000 / u64::from(SAMPLE_RATE))
}

/// Turns arrival-based capture estimates into a steady sample clock: frame n is stamped
/// `anchor + n * 20 ms`, so consecutive packets differ by exactly 960 RTP ticks and stamps never
/// go backwards.
///
/// An estimate (arrival minus what is queued behind the frame) is never earlier than the true
/// capture time, only later by delivery jitter or a stall. So the clock jumps forward only when
/// every estimate for [`LATE_FRAMES`] frames in a row is more than [`REANCHOR_AFTER`] late (the
/// source was suspended and resumed, which leaves a real gap), by the smallest of those delays;
/// a burst after a stall, whose later frames are on time, does not move it. Slow drift between
/// the sound card's clock and ours is slewed away 1 ms at a time.
#[derive(Default)]
struct FrameClock {
    anchor: Option<Duration>,
    frames: u32,
    /// Smoothed (estimate - stamp) in microseconds.
    offset_us: f64,
    /// Consecutive frames that were far late, and the least late of them.
    late: u32,
    least_late: Duration,
}

/// How many consecutive late frames prove a real gap.
const LATE_FRAMES: u32 = 10;

impl FrameClock {
    fn stamp(&mut self, estimate: Duration) -> Duration {
        let Some(mut anchor) = self.anchor else {
            self.anchor = Some(estimate);
            self.frames = 1;
            return estimate;
        };
        let expected = anchor + FRAME_DURATION * self.frames;
        let late = estimate.saturating_sub(expected);
        if late > REANCHOR_AFTER {
            self.least_late = if self.late == 0 {
                late
            } else {
                self.least_late.min(late)
            };
            self.late += 1;
            if self.late >= LATE_FRAMES {
                tracing::debug!("audio clock jumped {:?} after a gap", self.least_late);
                anchor += self.least_late;
                self.late = 0;
                self.offset_us = 0.0;
            }
        } else {
            self.late = 0;
            let diff_us = estimate.as_secs_f64() * 1e6 - expected.as_secs_f64() * 1e6;
            self.offset_us += (diff_us - self.offset_us) * 0.02;
            if self.offset_us > 20_000.0 {
                anchor += Duration::from_millis(1);
                self.offset_us -= 1000.0;
            } else if self.offset_us < -20_000.0 {
                anchor = anchor.saturating_sub(Duration::from_millis(1));
                self.offset_us += 1000.0;
            }
        }
        self.anchor = Some(anchor);
        let stamp = anchor + FRAME_DURATION * self.frames;
        self.frames = self.frames.wrapping_add(1);
        stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_split_across_reads_are_rejoined() {
        let mut pcm = Vec::new();
        let mut odd = None;
        let bytes = [0x01, 0x02, 0x03, 0x04, 0x05];
        append_samples(&mut pcm, &mut odd, &bytes[..3]);
        append_samples(&mut pcm, &mut odd, &bytes[3..]);
        assert_eq!(pcm, vec![0x0201, 0x0403]);
        assert_eq!(odd, Some(0x05));
    }

    #[test]
    fn steady_frames_are_exactly_20ms_apart_despite_jitter() {
        let mut clock = FrameClock::default();
        let base = Duration::from_secs(5);
        let mut stamps = Vec::new();
        for n in 0..50u32 {
            let jitter = Duration::from_millis(u64::from(n % 3) * 4);
            stamps.push(clock.stamp(base + FRAME_DURATION * n + jitter));
        }
        for pair in stamps.windows(2) {
            assert_eq!(pair[1] - pair[0], FRAME_DURATION);
        }
        // A burst after a stall (the first pieces look late, the rest are on time) keeps the
        // clock; a long gap (source suspended) moves it forward after a few frames.
        let mut last = *stamps.last().unwrap_or(&base);
        let mut next = base + FRAME_DURATION * 50;
        for n in 0..30u32 {
            let estimate = if n < 3 {
                next + Duration::from_millis(400)
            } else {
                next
            };
            let stamp = clock.stamp(estimate);
            assert_eq!(stamp - last, FRAME_DURATION, "burst frame {n}");
            last = stamp;
            next += FRAME_DURATION;
        }
        let gap = Duration::from_secs(10);
        let mut jumped = false;
        for _ in 0..2 * LATE_FRAMES {
            let stamp = clock.stamp(next + gap);
            assert!(stamp > last, "stamps never go backwards");
            jumped |= stamp - last > Duration::from_secs(9);
            last = stamp;
            next += FRAME_DURATION;
        }
        assert!(jumped, "the clock followed the gap");
        assert_eq!(last, next - FRAME_DURATION + gap);
    }
}
