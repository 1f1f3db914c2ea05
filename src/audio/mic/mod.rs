//! The viewer's microphone into the desktop: Opus packets from one viewer's browser are decoded
//! and played into the PulseAudio source `vnrit-mic` ([`source`]), which is the default source
//! while the microphone is on, so desktop programs (a call, a recorder) hear the viewer.
//!
//! One microphone at a time: [`Microphone::claim`] gives one owner a [`MicClaim`]; while it
//! lives a worker thread (`vnrit-mic`) owns the source, decodes what the claim's [`MicTap`]
//! receives and writes it out (20 ms of silence whenever nothing arrives for a while, so
//! recorders keep running). Dropping the claim (the viewer turns it off or leaves) ends the
//! worker, which restores the default source and unloads `vnrit-mic`; only then can another
//! viewer claim it. Without PulseAudio, claims fail with the reason and nothing else changes.

mod source;

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use source::SOURCE_NAME;

use super::pulse::PulseError;
use super::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::lock::lock;

/// Packets queued for the worker; more are dropped (the worker is far faster than 50/s).
const QUEUE_PACKETS: usize = 50;
/// With nothing received this long, the worker writes silence to keep recorders going.
const SILENCE_AFTER: Duration = Duration::from_millis(100);
/// Lost packets concealed at most, per gap (longer gaps are skipped, not stretched).
const MAX_CONCEALED: u16 = 5;

/// One Opus RTP payload from the browser.
#[derive(Debug, Clone)]
pub struct MicPacket {
    /// RTP sequence number (to notice losses).
    pub sequence: u16,
    /// The Opus packet.
    pub payload: bytes::Bytes,
}

/// Why the microphone cannot be turned on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MicError {
    /// Another viewer's microphone is on.
    #[error("another viewer's microphone is on; one at a time")]
    Busy,
    /// PulseAudio is missing or refused.
    #[error("no microphone on this server: {0}")]
    Unavailable(String),
}

/// The server's microphone: who holds it, and where PulseAudio is.
#[derive(Debug, Clone, Default)]
pub struct Microphone {
    server: Option<String>,
    owner: Arc<Mutex<Option<u64>>>,
}

impl Microphone {
    /// A microphone on the PulseAudio server at `server` (`None`: found as for desktop audio).
    pub fn new(server: Option<String>) -> Self {
        Microphone {
            server,
            owner: Arc::default(),
        }
    }

    /// Whether PulseAudio answers (blocking, a few ms): `Err` says why not.
    pub fn probe(&self) -> Result<(), String> {
        super::pulse::connect(self.server.as_deref())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The owner of the microphone now, if any.
    pub fn owner(&self) -> Option<u64> {
        *lock(&self.owner)
    }

    /// Turns the microphone on for `owner` (blocking while the source is set up, at most a few
    /// seconds): the packets pushed into `tap` are heard on `vnrit-mic` until the claim drops.
    pub fn claim(&self, owner: u64, tap: &MicTap) -> Result<MicClaim, MicError> {
        {
            let mut slot = lock(&self.owner);
            if slot.is_some() {
                return Err(MicError::Busy);
            }
            *slot = Some(owner);
        }
        let free = FreeOnDrop(self.owner.clone());
        let (tx, rx) = mpsc::sync_channel(QUEUE_PACKETS);
        let (ready_tx, ready_rx) = mpsc::channel();
        let server = self.server.clone();
        std::thread::Builder::new()
            .name("vnrit-mic".into())
            .spawn(move || {
                let _free = free;
                let source = match source::MicSource::open(server.as_deref()) {
                    Ok(s) => s,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                run(source, &rx);
            })
            .map_err(|e| MicError::Unavailable(format!("cannot start a thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {
                tap.set(Some(tx));
                Ok(MicClaim { tap: tap.clone() })
            }
            Ok(Err(err)) => Err(MicError::Unavailable(unavailable(&err))),
            Err(_) => Err(MicError::Unavailable("the microphone thread failed".into())),
        }
    }
}

fn unavailable(err: &PulseError) -> String {
    match err {
        PulseError::NoServer(_) | PulseError::Connect { .. } => "no PulseAudio server".into(),
        other => other.to_string(),
    }
}

/// Gives the microphone back when the worker ends (after the source is gone).
struct FreeOnDrop(Arc<Mutex<Option<u64>>>);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

/// A viewer's microphone while it is on; dropping it turns it off.
#[derive(Debug)]
pub struct MicClaim {
    tap: MicTap,
}

impl Drop for MicClaim {
    fn drop(&mut self) {
        // The worker sees its channel close, tears the source down and frees the microphone.
        self.tap.set(None);
    }
}

/// Where one viewer's incoming microphone packets go: to the worker while that viewer holds
/// the microphone, nowhere otherwise. The session pushes every packet it receives.
#[derive(Debug, Clone, Default)]
pub struct MicTap(Arc<Mutex<Option<SyncSender<MicPacket>>>>);

impl MicTap {
    fn set(&self, tx: Option<SyncSender<MicPacket>>) {
        *lock(&self.0) = tx;
    }

    /// Passes one packet on (dropped when the microphone is off or the queue is full).
    pub fn push(&self, packet: MicPacket) {
        if let Some(tx) = lock(&self.0).as_ref() {
            let _ = tx.try_send(packet);
        }
    }
}

/// Decodes packets into the source until the channel closes.
fn run(mut source: source::MicSource, packets: &mpsc::Receiver<MicPacket>) {
    let mut decoder = match opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono) {
        Ok(d) => d,
        Err(err) => {
            tracing::warn!("microphone: cannot make an Opus decoder: {err}");
            return;
        }
    };
    let frame = FRAME_SAMPLES as usize;
    // The largest Opus packet is 120 ms.
    let mut pcm = vec![0i16; frame * 6];
    let silence = vec![0i16; frame];
    let mut last = None;
    loop {
        let packet = match packets.recv_timeout(SILENCE_AFTER) {
            Ok(p) => p,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(err) = source.write(&silence) {
                    tracing::warn!("microphone: the source stopped taking audio: {err}");
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let Some(lost) = lost_before(last, packet.sequence) else {
            continue; // late or repeated
        };
        last = Some(packet.sequence);
        for _ in 0..lost.min(MAX_CONCEALED) {
            if let Ok(n) = decoder.decode(&[], &mut pcm[..frame], false) {
                let _ = source.write(&pcm[..n]);
            }
        }
        match decoder.decode(&packet.payload, &mut pcm, false) {
            Ok(n) => {
                if let Err(err) = source.write(&pcm[..n]) {
                    tracing::warn!("microphone: the source stopped taking audio: {err}");
                    return;
                }
            }
            Err(err) => tracing::debug!("microphone: undecodable packet: {err}"),
        }
    }
}

/// How many packets were lost between the last one decoded and `sequence`, or `None` when
/// `sequence` is not newer (a late or repeated packet).
fn lost_before(last: Option<u16>, sequence: u16) -> Option<u16> {
    let Some(last) = last else { return Some(0) };
    let step = sequence.wrapping_sub(last);
    if step == 0 || step >= 0x8000 {
        None
    } else {
        Some(step - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_counted_across_the_wrap_and_late_packets_skipped() {
        assert_eq!(lost_before(None, 7), Some(0));
        assert_eq!(lost_before(Some(7), 8), Some(0));
        assert_eq!(lost_before(Some(7), 10), Some(2));
        assert_eq!(lost_before(Some(65535), 0), Some(0));
        assert_eq!(lost_before(Some(65534), 1), Some(2));
        assert_eq!(lost_before(Some(7), 7), None);
        assert_eq!(lost_before(Some(7), 5), None);
        assert_eq!(lost_before(Some(2), 65530), None);
    }

    #[test]
    fn without_pulseaudio_a_claim_says_why_and_frees_the_microphone() {
        let mic = Microphone::new(Some("unix:/nonexistent/vnrit/native".into()));
        let tap = MicTap::default();
        assert!(mic.probe().is_err());
        let err = mic.claim(1, &tap).expect_err("no PulseAudio");
        assert_eq!(
            err,
            MicError::Unavailable("no PulseAudio server".into()),
            "{err}"
        );
        // The failed worker gave the microphone back.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while mic.owner().is_some() {
            assert!(std::time::Instant::now() < deadline, "never freed");
            std::thread::sleep(Duration::from_millis(5));
        }
        tap.push(MicPacket {
            sequence: 1,
            payload: bytes::Bytes::new(),
        });
    }
}
