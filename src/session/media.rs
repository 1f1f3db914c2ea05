//! A session's media: its own video (and audio) track, and the tasks that feed the shared
//! encoded streams into them and read the viewer's RTCP back.
//!
//! The tasks only start once the offer/answer is done (the payload types come from the
//! negotiation) and they wait for the connection to come up before the first packet, so
//! nothing is written into a transport that is not there yet.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

use super::opus_rtp::{opus_codec, OpusPacketizer};
use super::timers::TimerGrid;
use super::{keyframe, peer, rtp, SessionError, SessionStats};
use crate::abr::{Shaper, Verdict};
use crate::audio::{AudioHub, AudioSubscription};
use crate::broadcast::{Hub, Subscription};
use crate::video::Codec;

/// What a media task knows of its connection: whether it is up, and its timer grid.
struct Connection {
    connected: tokio::sync::watch::Receiver<bool>,
    timers: Arc<TimerGrid>,
}

impl Connection {
    /// Waits until the connection is up; `false` when it went away first.
    async fn up(&mut self) -> bool {
        self.connected.wait_for(|c| *c).await.is_ok()
    }
}

/// One outgoing track with its SSRC.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    sender: Option<Arc<dyn RtpSender>>,
}

impl Outgoing {
    fn new(id: &str, kind: RtpCodecKind, codec: RTCRtpCodec) -> Self {
        let ssrc: u32 = rand::random();
        // Same stream id for video and audio: the browser puts both in one sync group.
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "vnrit".to_owned(),
            id.to_owned(),
            id.to_owned(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        )));
        Outgoing {
            track,
            ssrc,
            sender: None,
        }
    }

    /// The payload type the negotiation gave this track's sender.
    async fn payload_type(&self) -> Result<Option<u8>, SessionError> {
        Ok(self.negotiated().await?.map(|(pt, _)| pt))
    }

    /// The negotiated payload type and playout-delay extension id (if the viewer took it).
    async fn negotiated(&self) -> Result<Option<(u8, Option<u8>)>, SessionError> {
        let Some(sender) = &self.sender else {
            return Ok(None);
        };
        let parameters = sender.get_parameters().await?.rtp_parameters;
        let playout_delay = rtp::negotiated_playout_delay(&parameters);
        Ok(parameters
            .codecs
            .first()
            .map(|c| (c.payload_type, playout_delay)))
    }
}

/// The tracks of one session, before and after they are added to the connection.
pub(super) struct MediaTracks {
    codec: Codec,
    video: Outgoing,
    audio: Option<Outgoing>,
}

/// The running media tasks of a session.
pub(super) type MediaTasks = Vec<JoinHandle<()>>;

impl MediaTracks {
    /// New tracks with fresh SSRCs: `codec` video, audio only when `with_audio`.
    pub fn new(codec: Codec, with_audio: bool) -> Self {
        MediaTracks {
            codec,
            video: Outgoing::new("desktop", RtpCodecKind::Video, peer::video_codec(codec)),
            audio: with_audio
                .then(|| Outgoing::new("desktop-audio", RtpCodecKind::Audio, opus_codec())),
        }
    }

    /// Adds the tracks to `pc` (before the local description is created).
    pub async fn add_to(&mut self, pc: &Arc<dyn PeerConnection>) -> Result<(), SessionError> {
        self.video.sender = Some(
            pc.add_track(self.video.track.clone() as Arc<dyn TrackLocal>)
                .await?,
        );
        if let Some(audio) = &mut self.audio {
            audio.sender = Some(
                pc.add_track(audio.track.clone() as Arc<dyn TrackLocal>)
                    .await?,
            );
        }
        Ok(())
    }

    /// Adds the tracks to `pc` as send-only transceivers (the offering side, e.g. WHIP).
    pub async fn add_sendonly_to(
        &mut self,
        pc: &Arc<dyn PeerConnection>,
    ) -> Result<(), SessionError> {
        for out in std::iter::once(&mut self.video).chain(self.audio.as_mut()) {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                ..Default::default()
            };
            let transceiver = pc
                .add_transceiver_from_track(out.track.clone() as Arc<dyn TrackLocal>, Some(init))
                .await?;
            out.sender = transceiver.sender().await?;
        }
        Ok(())
    }

    /// Starts feeding the negotiated tracks from the shared streams (the video from the stream
    /// of the track's codec). Fails when the viewer did not accept the video. Audio is skipped when it was not negotiated. Real media writes
    /// are reported to `timers`.
    pub async fn start(
        self,
        hub: &Hub,
        audio_hub: Option<&AudioHub>,
        connected: tokio::sync::watch::Receiver<bool>,
        timers: Arc<TimerGrid>,
        stats: Arc<SessionStats>,
    ) -> Result<MediaTasks, SessionError> {
        let (video_pt, playout_delay) = self.video.negotiated().await?.ok_or_else(|| {
            SessionError::BadOffer(format!(
                "the browser did not accept {} video from this server",
                self.codec
            ))
        })?;
        let mut tasks = MediaTasks::new();
        if let (Some(audio_hub), Some(audio)) = (audio_hub, &self.audio) {
            if let Some(pt) = audio.payload_type().await? {
                tasks.push(tokio::spawn(send_audio(
                    audio.track.clone(),
                    OpusPacketizer::new(audio.ssrc, pt),
                    audio_hub.subscribe(),
                    Connection {
                        connected: connected.clone(),
                        timers: timers.clone(),
                    },
                    stats.clone(),
                )));
            }
        }
        let subscription = hub.subscribe(self.codec);
        stats.set_codec(self.codec);
        // The viewer steers its codec's shared encoder while its video task runs.
        let steering = hub.links(self.codec).join(&stats.link);
        let (kf_tx, kf_rx) = mpsc::channel(4);
        tasks.push(tokio::spawn(read_rtcp(
            self.video.track.clone(),
            kf_tx,
            stats.clone(),
        )));
        tasks.push(tokio::spawn(send_video(
            self.video.track,
            rtp::VideoPacketizer::for_codec(self.codec, self.video.ssrc, video_pt)
                .with_playout_delay(playout_delay),
            subscription,
            Connection { connected, timers },
            kf_rx,
            stats,
            steering,
        )));
        Ok(tasks)
    }
}

/// Waits for keyframe requests (PLI/FIR) from the browser.
async fn read_rtcp(
    track: Arc<TrackLocalStaticRTP>,
    keyframes: mpsc::Sender<()>,
    stats: Arc<SessionStats>,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if packets
            .iter()
            .any(|p| keyframe::is_keyframe_request(p.as_ref()))
        {
            stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            // Full means a request is already pending: coalesced.
            let _ = keyframes.try_send(());
        }
    }
}

/// How often a viewer that fell behind checks whether its link has drained.
const SHAPER_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Sends the shared stream to this viewer until the stream ends or the task is aborted,
/// skipping frames (see [`Shaper`]) while its link cannot keep up.
async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    mut packetizer: rtp::VideoPacketizer,
    mut frames: Subscription,
    mut connection: Connection,
    mut keyframe_requests: mpsc::Receiver<()>,
    stats: Arc<SessionStats>,
    _steering: crate::abr::ViewerGuard,
) {
    // Frames written before DTLS is up are lost; start at a fresh keyframe once connected.
    if !connection.up().await {
        return;
    }
    frames.resync();
    let started = Instant::now();
    let mut shaper = Shaper::new();
    let estimate = || stats.link.bwe_kbps().map(|k| f64::from(k) * 1000.0);
    loop {
        let frame = tokio::select! {
            frame = frames.next() => match frame {
                Ok(frame) => frame,
                Err(_) => return,
            },
            Some(()) = keyframe_requests.recv() => {
                frames.request_keyframe();
                continue;
            }
            () = tokio::time::sleep(SHAPER_TICK), if shaper.behind() => {
                if shaper.keyframe_due(Instant::now(), estimate()) {
                    tracing::debug!(session = stats.id, "link drained; asking for a keyframe");
                    frames.request_keyframe();
                }
                continue;
            }
        };
        let verdict = shaper.offer(
            Instant::now(),
            estimate(),
            frame.encoded.data.len(),
            frame.encoded.keyframe,
        );
        match verdict {
            Verdict::Send => {}
            Verdict::Skip => {
                stats.link.note_dropped();
                continue;
            }
            Verdict::FallBehind => {
                tracing::debug!(
                    session = stats.id,
                    "link behind by {:?}; skipping to the next keyframe",
                    shaper.queue()
                );
                stats.link.note_dropped();
                stats.link.note_starved();
                frames.skip_to_keyframe();
                continue;
            }
        }
        let packets = match packetizer.packetize(&frame.encoded.data, frame.timestamp) {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(session = stats.id, "cannot packetize a frame: {err}");
                continue;
            }
        };
        if !frame.repeat {
            connection.timers.media_sent();
        }
        let mut bytes = 0u64;
        for packet in packets {
            bytes += packet.payload.len() as u64;
            if let Err(err) = track.write_rtp(packet).await {
                tracing::debug!(
                    session = stats.id,
                    "RTP write failed, stopping video: {err}"
                );
                return;
            }
        }
        stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        if stats.frames_sent.load(Ordering::Relaxed) == 1 {
            tracing::info!(
                session = stats.id,
                "first frame sent {} ms after connecting",
                started.elapsed().as_millis()
            );
        }
    }
}

/// Sends the shared audio stream to this viewer until it ends or the task is aborted.
async fn send_audio(
    track: Arc<TrackLocalStaticRTP>,
    mut packetizer: OpusPacketizer,
    mut packets: AudioSubscription,
    mut connection: Connection,
    stats: Arc<SessionStats>,
) {
    if !connection.up().await {
        return;
    }
    while let Some(frame) = packets.next().await {
        let packet = packetizer.packetize(&frame);
        connection.timers.media_sent();
        let bytes = packet.payload.len() as u64;
        if let Err(err) = track.write_rtp(packet).await {
            tracing::debug!(
                session = stats.id,
                "RTP write failed, stopping audio: {err}"
            );
            return;
        }
        stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        stats.audio_packets_sent.fetch_add(1, Ordering::Relaxed);
    }
}
