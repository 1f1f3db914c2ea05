//! Any X server a user has: vnrit streams TigerVNC's `Xvnc` and Xorg with the dummy driver
//! (Xvfb and Xephyr are covered by the other tests), each started as users start them, without
//! `-noreset`. A WHEP client decodes the colour painted on the display, then a change.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

use crate::cli::{first_display, Server};
use crate::whep::{decode_until, fill_root, near, runtime, VideoSink};
use crate::whep_client::{OnPacket, WhepClient};

/// An X server process, killed when dropped.
struct XServer {
    child: Child,
    name: String,
    dir: Option<std::path::PathBuf>,
}

impl Drop for XServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts `program args` as display `:n` and waits (bounded) until it accepts clients.
fn start_x(n: u32, program: &str, args: &[&str], dir: Option<std::path::PathBuf>) -> XServer {
    let name = format!(":{n}");
    let child = Command::new(program)
        .arg(&name)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/setup.sh installs it): {e}"));
    let server = XServer { child, name, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while x11rb::connect(Some(&server.name)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{program} {} did not start",
            server.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// The dummy-driver configuration for Xorg: one 1024x768 screen, no input devices needed.
const XORG_DUMMY: &str = r#"Section "Device"
  Identifier "dummy"
  Driver "dummy"
  VideoRam 64000
EndSection
Section "Monitor"
  Identifier "monitor"
  HorizSync 5.0-1000.0
  VertRefresh 5.0-200.0
EndSection
Section "Screen"
  Identifier "screen"
  Device "dummy"
  Monitor "monitor"
  DefaultDepth 24
  SubSection "Display"
    Depth 24
    Modes "1024x768"
  EndSubSection
EndSection
"#;

/// vnrit on `x`: a WHEP player decodes red, then blue after the root changes colour.
fn streams(x: &XServer) {
    let server = Server::start(&[
        "--display",
        &x.name,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        "tok",
        "--no-audio",
    ]);
    let port = server.port();
    let rt = runtime();
    let (tx, packets) = mpsc::channel();
    let on_packet: OnPacket = std::sync::Arc::new(move |kind, packet| {
        if kind == RtpCodecKind::Video {
            let _ = tx.send((packet.payload.clone(), packet.header.marker));
        }
    });
    fill_root(&x.name, "#ff0000");
    let mut client = rt
        .block_on(WhepClient::connect(port, "tok", on_packet))
        .unwrap_or_else(|e| panic!("WHEP POST: {e}"));
    assert!(
        rt.block_on(client.wait_connected(Duration::from_secs(15))),
        "the WHEP client did not connect to vnrit on {}",
        x.name
    );
    let mut sink = VideoSink::new();
    for (colour, want) in [("#ff0000", [255, 0, 0]), ("#0000ff", [0, 0, 255])] {
        fill_root(&x.name, colour);
        let (pixel, frames) = decode_until(
            &rt,
            &client,
            &packets,
            &mut sink,
            want,
            Duration::from_secs(20),
        );
        assert!(frames > 0, "no frame decoded from {}", x.name);
        assert!(
            pixel.is_some_and(|p| near(p, want)),
            "{}: centre pixel {pixel:?}, want {colour}",
            x.name
        );
    }
}

#[test]
fn streams_tigervnc_xvnc() {
    let x = start_x(
        first_display(70),
        "Xvnc",
        &[
            "-geometry",
            "1024x768",
            "-depth",
            "24",
            "-SecurityTypes",
            "None",
            "-rfbport",
            "-1",
            "-nolisten",
            "tcp",
        ],
        None,
    );
    streams(&x);
}

#[test]
fn streams_xorg_with_the_dummy_driver() {
    let dir = std::env::temp_dir().join(format!("vnrit-xorg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("xorg.conf");
    std::fs::write(&conf, XORG_DUMMY).expect("xorg.conf");
    let log = dir.join("Xorg.log");
    let (conf, log) = (conf.display().to_string(), log.display().to_string());
    let x = start_x(
        first_display(71),
        "/usr/lib/xorg/Xorg",
        &[
            "-config",
            &conf,
            "-logfile",
            &log,
            "-nolisten",
            "tcp",
            "-novtswitch",
            "-sharevts",
        ],
        Some(dir),
    );
    streams(&x);
}
