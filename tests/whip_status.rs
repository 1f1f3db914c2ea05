//! The WHIP publisher as an operator sees it, against the real binary: `publish` in
//! `/api/stats` is `null` and there are no `vnrit_whip_*` series without `--whip`; with a
//! `--whip` URL nothing listens on, the publisher reports `retrying` with the connection error,
//! counts its failures, and never shows the URL's password or query secret.
//! (A real ingest, Janus, is exercised in e2e/whip.test.mjs.)

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::cli::{get_ok, metrics, sample, serve_display};

/// `/api/stats` as JSON, and the raw text (for leak checks).
fn stats(port: u16) -> (serde_json::Value, String) {
    let body = get_ok(port, "/api/stats?token=tok");
    (
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
        body,
    )
}

#[test]
fn without_whip_there_is_no_publish_report() {
    let (_display, server) = serve_display(29, &["--token", "tok", "--no-audio"]);
    let (json, _) = stats(server.port());
    assert!(json.get("publish").is_some_and(|p| p.is_null()), "{json}");
    let (scrape, _) = metrics(server.port());
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("vnrit_whip_")),
        "no WHIP series without --whip"
    );
}

#[test]
fn an_unreachable_endpoint_is_reported_as_retrying_without_its_secrets() {
    // A port that was just free: connecting to it is refused.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://desk:pa55word@127.0.0.1:{closed}/whip/endpoint/desk?key=s3cretkey");
    let (_display, server) = serve_display(
        30,
        &[
            "--token",
            "tok",
            "--no-audio",
            "--whip",
            &url,
            "--whip-token",
            "bearer-t0k",
        ],
    );
    let port = server.port();

    // Attempts come after 1, 2, 4 s of backoff: wait for two failures.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (report, body) = loop {
        let (json, body) = stats(port);
        let publish = json["publish"].clone();
        if publish["failures"].as_u64().unwrap_or(0) >= 2 && publish["state"] == "retrying" {
            break (publish, body);
        }
        assert!(
            Instant::now() < deadline,
            "no second failure reported: {publish}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        report["endpoint"],
        format!("http://127.0.0.1:{closed}/whip/endpoint/desk?key=redacted")
    );
    assert_eq!(report["publishes"], 0);
    assert!(report["resource"].is_null(), "{report}");
    let error = report["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot connect") && error.contains(&closed.to_string()),
        "{error}"
    );
    assert!(report["since_ms"].as_u64().is_some(), "{report}");
    assert_eq!(report["bytes_sent"], 0);

    let (scrape, text) = metrics(port);
    assert_eq!(sample(&scrape, "vnrit_whip_up", None), 0.0);
    assert!(sample(&scrape, "vnrit_whip_failures_total", None) >= 2.0);
    assert_eq!(sample(&scrape, "vnrit_whip_publishes_total", None), 0.0);
    assert_eq!(
        sample(&scrape, "vnrit_whip_state", Some(("state", "retrying"))),
        1.0
    );
    assert_eq!(
        sample(&scrape, "vnrit_whip_state", Some(("state", "streaming"))),
        0.0
    );
    for secret in ["pa55word", "s3cretkey", "bearer-t0k"] {
        assert!(!body.contains(secret), "/api/stats shows {secret}: {body}");
        assert!(!text.contains(secret), "/metrics shows {secret}");
    }
    let logged = server.stderr_lines().join("\n");
    for secret in ["pa55word", "s3cretkey", "bearer-t0k"] {
        assert!(!logged.contains(secret), "the log shows {secret}: {logged}");
    }
    assert!(logged.contains("cannot connect"), "{logged}");
}
