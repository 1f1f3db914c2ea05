//! `/metrics`: the server's counters in the Prometheus text exposition format (version 0.0.4).
//!
//! Behind the same token auth as every other route; a Prometheus scrape job passes it as
//! `?token=` (`params: {token: [...]}`) or as the cookie.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::broadcast::ENCODE_BUCKETS;
use crate::publish::{PublishReport, PublishState};
use crate::session::SessionStats;

/// Writes one metric family: HELP, TYPE and samples `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn one(value: impl Into<f64>) -> Vec<(String, f64)> {
    vec![(String::new(), value.into())]
}

/// Renders every metric.
pub fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    let p = state.hub.stats();
    let c = state.hub.counters();
    family(
        &mut out,
        "vnrit_viewers",
        "gauge",
        "Viewers subscribed to the video stream.",
        &one(state.hub.viewers() as f64),
    );
    family(
        &mut out,
        "vnrit_sessions",
        "gauge",
        "Open signalling connections.",
        &one(state.session_count() as f64),
    );
    family(
        &mut out,
        "vnrit_encoders",
        "gauge",
        "Video pipelines running.",
        &one(p.encoders as f64),
    );
    family(
        &mut out,
        "vnrit_frames_captured_total",
        "counter",
        "Screen grabs.",
        &one(p.frames_captured as f64),
    );
    family(
        &mut out,
        "vnrit_frames_encoded_total",
        "counter",
        "Video frames encoded (all codecs).",
        &one(p.frames_encoded as f64),
    );
    family(
        &mut out,
        "vnrit_frames_repeated_total",
        "counter",
        "Keep-alive pictures that repeated the last one without an encode (still screen).",
        &one(p.frames_repeated as f64),
    );
    family(
        &mut out,
        "vnrit_frames_skipped_total",
        "counter",
        "Frames the encoder's rate control skipped.",
        &one(p.frames_skipped as f64),
    );
    family(
        &mut out,
        "vnrit_frames_dropped_total",
        "counter",
        "Frames slow viewers lost.",
        &one(p.frames_dropped as f64),
    );
    family(
        &mut out,
        "vnrit_keyframes_total",
        "counter",
        "Keyframes (IDR) encoded.",
        &one(p.keyframes as f64),
    );
    family(
        &mut out,
        "vnrit_keyframe_requests_total",
        "counter",
        "Keyframe requests from viewers (joins, PLI/FIR, resyncs).",
        &one(p.keyframe_requests as f64),
    );
    family(
        &mut out,
        "vnrit_encoded_bytes_total",
        "counter",
        "Bytes of video produced (all codecs).",
        &one(p.bytes_encoded as f64),
    );
    family(
        &mut out,
        "vnrit_bitrate_target_bps",
        "gauge",
        "Target video bitrate.",
        &one(f64::from(c.bitrate_kbps.load(Ordering::Relaxed)) * 1000.0),
    );

    let cumulative = c.encode_cumulative();
    let mut samples: Vec<(String, f64)> = ENCODE_BUCKETS
        .iter()
        .zip(&cumulative)
        .map(|(le, n)| (format!("_bucket{{le=\"{le}\"}}"), *n as f64))
        .collect();
    let count = cumulative.last().copied().unwrap_or(0);
    samples.push(("_bucket{le=\"+Inf\"}".into(), count as f64));
    let _ = writeln!(out, "# HELP vnrit_encode_seconds Time to encode one frame.");
    let _ = writeln!(out, "# TYPE vnrit_encode_seconds histogram");
    for (suffix, v) in samples {
        let _ = writeln!(out, "vnrit_encode_seconds{suffix} {v}");
    }
    let micros = c.encode_micros.load(Ordering::Relaxed);
    let _ = writeln!(out, "vnrit_encode_seconds_sum {}", micros as f64 / 1e6);
    let _ = writeln!(out, "vnrit_encode_seconds_count {count}");

    let sessions: Vec<_> = state.sessions().values().cloned().collect();
    let per = |f: &dyn Fn(&crate::session::SessionStats) -> u64| -> Vec<(String, f64)> {
        sessions
            .iter()
            .map(|s| (format!("{{session=\"{}\"}}", s.id), f(s) as f64))
            .collect()
    };
    family(
        &mut out,
        "vnrit_session_bytes_sent_total",
        "counter",
        "RTP payload bytes sent to a viewer.",
        &per(&|s| s.bytes_sent.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "vnrit_session_frames_sent_total",
        "counter",
        "Video frames sent to a viewer.",
        &per(&|s| s.frames_sent.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "vnrit_session_keyframe_requests_total",
        "counter",
        "PLI/FIR received from a viewer.",
        &per(&|s| s.keyframe_requests.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "vnrit_session_audio_packets_sent_total",
        "counter",
        "Opus packets sent to a viewer.",
        &per(&|s| s.audio_packets_sent.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "vnrit_session_input_dropped_total",
        "counter",
        "Input events of a viewer dropped (over the rate limit, or the input queue full).",
        &per(&|s| s.input_dropped.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "vnrit_session_input_refused_total",
        "counter",
        "Input events of a viewer refused because another viewer had control.",
        &per(&|s| s.input_refused.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "vnrit_input_refused_total",
        "counter",
        "Input events refused over all viewers because they did not have control.",
        &one(state.control.refused_total() as f64),
    );
    family(
        &mut out,
        "vnrit_control_handovers_total",
        "counter",
        "Times control changed hands (to or from nobody included).",
        &one(state.control.handovers_total() as f64),
    );
    family(
        &mut out,
        "vnrit_session_disconnects_total",
        "counter",
        "Times a viewer's connection went from connected to disconnected (nothing heard for 5 s).",
        &per(&|s| s.disconnects.load(Ordering::Relaxed)),
    );
    if let Some(input) = &state.input {
        family(
            &mut out,
            "vnrit_input_dropped_total",
            "counter",
            "Input events dropped over all viewers since start.",
            &one(input.dropped_total() as f64),
        );
    }

    family(
        &mut out,
        "vnrit_framerate_target",
        "gauge",
        "Frame-rate cap (lowered by adaptive bitrate under pressure).",
        &one(c.fps_target.load(Ordering::Relaxed)),
    );
    link_families(&mut out, &sessions);
    codec_families(&mut out, &p, &sessions);

    if let Some(audio) = &state.audio {
        let a = audio.stats();
        family(
            &mut out,
            "vnrit_audio_connected",
            "gauge",
            "1 while recording from PulseAudio.",
            &one(if a.connected { 1.0 } else { 0.0 }),
        );
        family(
            &mut out,
            "vnrit_audio_frames_captured_total",
            "counter",
            "20 ms audio frames read.",
            &one(a.frames_captured as f64),
        );
        family(
            &mut out,
            "vnrit_audio_frames_encoded_total",
            "counter",
            "Opus packets produced.",
            &one(a.frames_encoded as f64),
        );
        family(
            &mut out,
            "vnrit_audio_frames_silent_total",
            "counter",
            "Silent frames not sent.",
            &one(a.frames_silent as f64),
        );
    }
    if let Some(publish) = &state.publish {
        whip_families(&mut out, &publish.report());
    }
    out
}

/// The WHIP publisher (`--whip` only).
fn whip_families(out: &mut String, r: &PublishReport) {
    let streaming = r.state == PublishState::Streaming;
    family(
        out,
        "vnrit_whip_up",
        "gauge",
        "1 while the WHIP publisher streams to the SFU.",
        &one(if streaming { 1.0 } else { 0.0 }),
    );
    let states: Vec<(String, f64)> = PublishState::ALL
        .iter()
        .map(|s| {
            let value = if *s == r.state { 1.0 } else { 0.0 };
            (format!("{{state=\"{}\"}}", s.as_str()), value)
        })
        .collect();
    family(
        out,
        "vnrit_whip_state",
        "gauge",
        "1 for the WHIP publisher's current state (connecting, streaming, retrying, stopped).",
        &states,
    );
    family(
        out,
        "vnrit_whip_state_seconds",
        "gauge",
        "Time the WHIP publisher has been in its current state.",
        &one(r.since_ms as f64 / 1000.0),
    );
    family(
        out,
        "vnrit_whip_publishes_total",
        "counter",
        "Publishes the WHIP server accepted (POST answered 201).",
        &one(r.publishes as f64),
    );
    family(
        out,
        "vnrit_whip_failures_total",
        "counter",
        "WHIP publish attempts that failed plus sessions that were lost.",
        &one(r.failures as f64),
    );
    family(
        out,
        "vnrit_whip_bytes_sent_total",
        "counter",
        "RTP payload bytes sent to the WHIP server.",
        &one(r.bytes_sent as f64),
    );
    family(
        out,
        "vnrit_whip_frames_sent_total",
        "counter",
        "Video frames sent to the WHIP server.",
        &one(r.frames_sent as f64),
    );
    family(
        out,
        "vnrit_whip_audio_packets_sent_total",
        "counter",
        "Opus packets sent to the WHIP server.",
        &one(r.audio_packets_sent as f64),
    );
}

/// Per-session link metrics; a session appears once the value was measured.
fn link_families(out: &mut String, sessions: &[Arc<SessionStats>]) {
    let per = |f: &dyn Fn(&SessionStats) -> Option<f64>| -> Vec<(String, f64)> {
        sessions
            .iter()
            .filter_map(|s| Some((format!("{{session=\"{}\"}}", s.id), f(s)?)))
            .collect()
    };
    family(
        out,
        "vnrit_session_rtt_seconds",
        "gauge",
        "Round-trip time to a viewer, from RTCP receiver reports.",
        &per(&|s| s.link.rtt_ms().map(|ms| ms / 1000.0)),
    );
    family(
        out,
        "vnrit_session_loss_ratio",
        "gauge",
        "Fraction of packets a viewer reported lost (last receiver report).",
        &per(&|s| s.link.loss()),
    );
    family(
        out,
        "vnrit_session_bwe_bps",
        "gauge",
        "Bandwidth estimate for a viewer (TWCC feedback; adaptive bitrate only).",
        &per(&|s| s.link.bwe_kbps().map(|k| f64::from(k) * 1000.0)),
    );
    family(
        out,
        "vnrit_session_frames_dropped_total",
        "counter",
        "Frames not sent to a viewer because its link could not carry them.",
        &per(&|s| Some(s.link.frames_dropped() as f64)),
    );
}

/// The `/metrics` handler.
pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render(&state),
    )
}

/// Per codec: running pipelines, frames and bytes; per session: the codec it gets.
fn codec_families(
    out: &mut String,
    p: &crate::broadcast::StatsSnapshot,
    sessions: &[Arc<SessionStats>],
) {
    let by_codec = |f: &dyn Fn(&crate::broadcast::CodecSnapshot) -> f64| -> Vec<(String, f64)> {
        p.codecs
            .iter()
            .map(|c| (format!("{{codec=\"{}\"}}", c.codec.label()), f(c)))
            .collect()
    };
    family(
        out,
        "vnrit_codec_encoders",
        "gauge",
        "Video pipelines running, per codec (one at most each).",
        &by_codec(&|c| c.encoders as f64),
    );
    family(
        out,
        "vnrit_codec_frames_encoded_total",
        "counter",
        "Frames encoded, per codec.",
        &by_codec(&|c| c.frames_encoded as f64),
    );
    family(
        out,
        "vnrit_codec_encoded_bytes_total",
        "counter",
        "Bytes of video produced, per codec.",
        &by_codec(&|c| c.bytes_encoded as f64),
    );
    let samples: Vec<(String, f64)> = sessions
        .iter()
        .filter_map(|s| {
            let codec = s.codec()?;
            Some((
                format!("{{session=\"{}\",codec=\"{}\"}}", s.id, codec.label()),
                1.0,
            ))
        })
        .collect();
    family(
        out,
        "vnrit_session_codec",
        "gauge",
        "1 for the video codec a viewer gets.",
        &samples,
    );
}
