//! Opus encoding of 20 ms stereo frames, with a silence gate in front so that a quiet desktop
//! costs next to nothing: digital silence is not even handed to the encoder, and Opus DTX covers
//! the near-silent rest.

use super::{CHANNELS, FRAME_SAMPLES, SAMPLE_RATE};

/// Largest Opus packet we accept from the encoder (RFC 6716 caps a frame at 1275 bytes).
const MAX_PACKET: usize = 1500;
/// Frames still encoded after the signal goes silent, so the receiver's decoder fades out
/// instead of cutting off.
const HANGOVER_FRAMES: u32 = 5;
/// Samples at or below this magnitude count as silence (dither and rounding noise).
const SILENCE_LEVEL: i16 = 2;
/// Expected packet loss given to Opus: in-band FEC only kicks in with a non-zero figure.
const EXPECTED_LOSS_PERCENT: i32 = 5;

/// What the encoder made of one frame.
pub enum Encoded {
    /// One Opus packet.
    Packet(Vec<u8>),
    /// Silence: nothing to send.
    Skipped,
}

/// Errors from libopus, with what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// libopus refused the configuration.
    #[error("cannot set up the Opus encoder ({0}); try a bitrate between 6 and 510 kbit/s")]
    Setup(opus::Error),
    /// libopus failed on a frame.
    #[error("Opus failed to encode a frame: {0}")]
    Frame(opus::Error),
}

/// An Opus encoder for 48 kHz stereo 20 ms frames with a silence gate.
pub struct OpusEncoder {
    inner: opus::Encoder,
    silent_run: u32,
}

impl OpusEncoder {
    /// An encoder at `bitrate_bps`, full-band music mode, in-band FEC and DTX on.
    pub fn new(bitrate_bps: u32) -> Result<OpusEncoder, EncodeError> {
        let mut inner = opus::Encoder::new(
            SAMPLE_RATE,
            opus::Channels::Stereo,
            opus::Application::Audio,
        )
        .map_err(EncodeError::Setup)?;
        let bits = i32::try_from(bitrate_bps.clamp(6_000, 510_000)).unwrap_or(96_000);
        inner
            .set_bitrate(opus::Bitrate::Bits(bits))
            .map_err(EncodeError::Setup)?;
        inner.set_inband_fec(true).map_err(EncodeError::Setup)?;
        inner
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(EncodeError::Setup)?;
        inner.set_dtx(true).map_err(EncodeError::Setup)?;
        Ok(OpusEncoder {
            inner,
            silent_run: HANGOVER_FRAMES + 1,
        })
    }

    /// Encodes one frame of `FRAME_SAMPLES` interleaved stereo samples, or skips it when it and
    /// the few before it were silent. DTX packets (one or two bytes) are skipped as well: the
    /// receiver treats the gap as comfort silence.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Encoded, EncodeError> {
        debug_assert_eq!(pcm.len(), (FRAME_SAMPLES * CHANNELS) as usize);
        if is_silent(pcm) {
            self.silent_run = self.silent_run.saturating_add(1);
        } else {
            self.silent_run = 0;
        }
        if self.silent_run > HANGOVER_FRAMES {
            return Ok(Encoded::Skipped);
        }
        let mut out = vec![0u8; MAX_PACKET];
        let len = self
            .inner
            .encode(pcm, &mut out)
            .map_err(EncodeError::Frame)?;
        if len <= 2 {
            return Ok(Encoded::Skipped);
        }
        out.truncate(len);
        Ok(Encoded::Packet(out))
    }
}

/// True when every sample is within the noise floor.
fn is_silent(pcm: &[i16]) -> bool {
    pcm.iter().all(|s| s.unsigned_abs() <= SILENCE_LEVEL as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_skipped_and_sound_is_not() {
        let mut enc = OpusEncoder::new(96_000).expect("encoder");
        let quiet = vec![0i16; (FRAME_SAMPLES * CHANNELS) as usize];
        assert!(matches!(
            enc.encode(&quiet).expect("encode"),
            Encoded::Skipped
        ));
        let tone: Vec<i16> = (0..FRAME_SAMPLES * CHANNELS)
            .map(|i| {
                let t = (i / CHANNELS) as f32 / SAMPLE_RATE as f32;
                (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect();
        assert!(matches!(enc.encode(&tone).expect("encode"), Encoded::Packet(p) if p.len() > 10));
    }
}
