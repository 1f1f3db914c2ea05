//! The `vnrit` binary as a user runs it: flag errors, a missing X server, a port in use, the
//! virtual display it starts on its own, token auth on every route, and a clean, quick stop on
//! SIGTERM that takes the virtual display with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vnrit::display::VirtualDisplay;

pub(crate) fn vnrit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vnrit"));
    cmd.env_remove("DISPLAY").env_remove("VNRIT_TOKEN");
    cmd
}

pub(crate) fn first_display(slot: u32) -> u32 {
    // Apart from the capture tests' region (100 + pid % 700 + 3 * slot).
    850 + (std::process::id() % 100) * 4 + slot
}

/// A running server and the lines it printed.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Server {
    pub(crate) fn start(args: &[&str]) -> Server {
        let mut child = vnrit()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vnrit starts");
        let (tx, stderr) = std::sync::mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[vnrit] {line}");
                let _ = tx.send(line);
            }
        });
        let out = child.stdout.take().expect("stdout");
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("vnrit: serving ") {
                    let _ = url_tx.send(url.to_string());
                }
            }
        });
        let url = match url_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("vnrit did not print its URL within 20 s");
            }
        };
        Server { child, url, stderr }
    }

    pub(crate) fn port(&self) -> u16 {
        let rest = self.url.trim_start_matches("http://");
        let hostport = rest.split('/').next().unwrap_or_default();
        hostport
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .parse()
            .expect("port in URL")
    }

    pub(crate) fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    pub(crate) fn terminate(&mut self) -> (Duration, Option<i32>) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: sending a signal to our own child process by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (t.elapsed(), status.code());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("vnrit did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET; returns (status, headers+body as text).
pub(crate) fn get(port: u16, path: &str, cookie: Option<&str>) -> (u16, String) {
    request(
        port,
        &format!(
            "GET {path} HTTP/1.1\r\n{}",
            cookie
                .map(|c| format!("Cookie: {c}\r\n"))
                .unwrap_or_default()
        ),
    )
}

/// The body of a GET of `path` that must answer 200.
pub(crate) fn get_ok(port: u16, path: &str) -> String {
    let (status, text) = get(port, path, None);
    assert_eq!(status, 200, "{text}");
    text.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// `/metrics` (token `tok`) parsed as the Prometheus text format, and its raw text.
pub(crate) fn metrics(port: u16) -> (prometheus_parse::Scrape, String) {
    let body = get_ok(port, "/metrics?token=tok");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    (scrape, body)
}

/// The value of the sample `name` whose labels include `label` (if given); a histogram gives
/// its count. Panics when there is none.
pub(crate) fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    label: Option<(&str, &str)>,
) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref b) => b.last().map(|b| b.count).unwrap_or(0.0),
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no {name} {label:?} in /metrics"))
}

/// Sends `head` (request line and headers, each ending in CRLF) and reads the whole reply.
pub(crate) fn request(port: u16, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "{head}Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    (status_code(&text), text)
}

/// The `vnrit_session=VALUE` pair a response's `Set-Cookie` carries, ready for a `Cookie`
/// header.
pub(crate) fn session_cookie(response: &str) -> String {
    response
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .find_map(|l| {
            let pair = l.split_once(':')?.1.trim().split(';').next()?;
            pair.starts_with("vnrit_session=").then(|| pair.to_string())
        })
        .unwrap_or_else(|| panic!("no session cookie in {response}"))
}

/// The status code of an HTTP response's text (0 if there is none).
pub(crate) fn status_code(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A private Xvfb and a vnrit on it, on loopback, any port, with `extra` flags.
pub(crate) fn serve_display(slot: u32, extra: &[&str]) -> (VirtualDisplay, Server) {
    let display = VirtualDisplay::start(320, 240, first_display(slot)).expect("Xvfb");
    let mut args = vec![
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    (display, server)
}

#[test]
fn invalid_flags_exit_2_with_a_message() {
    for args in [
        &["--framerate", "0"][..],
        &["--height", "5"],
        &["--port", "x"],
        &["--stun", "nonsense"],
    ] {
        let out = vnrit().args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
}

#[test]
fn help_explains_flags_with_examples() {
    let out = vnrit().arg("--help").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--display",
        "--bind",
        "--port",
        "--framerate",
        "--bitrate",
        "--height",
        "--stun",
        "--token",
        "--log-level",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    assert!(text.contains("e.g."), "--help has no examples");
}

#[test]
fn missing_x_server_is_one_clear_line() {
    let out = vnrit()
        .args(["--display", ":4093", "--port", "0", "--bind", "127.0.0.1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("vnrit: cannot capture display :4093"),
        "{err}"
    );
}

#[test]
fn port_in_use_is_one_clear_line() {
    let display = VirtualDisplay::start(320, 240, first_display(0)).expect("Xvfb");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = vnrit()
        .args([
            "--display",
            display.name(),
            "--bind",
            "127.0.0.1",
            "-p",
            &port,
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already in use") && err.contains("-p"),
        "{err}"
    );
}

#[test]
fn own_display_token_auth_and_clean_sigterm() {
    let mut server = Server::start(&[
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--token",
        "t0k3n",
        "--virtual-size",
        "640x480",
    ]);
    assert!(server.url.ends_with("/?token=t0k3n"), "{}", server.url);
    let port = server.port();

    // Every route refuses without the token.
    for path in ["/", "/app.js", "/api/stats", "/ws", "/nope"] {
        let (status, _) = get(port, path, None);
        assert_eq!(status, 401, "{path} without token");
        let (status, _) = get(port, &format!("{path}?token=wrong"), None);
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    // With it, the page loads and the cookie is set for later requests.
    let (status, text) = get(port, "/?token=t0k3n", None);
    assert_eq!(status, 200, "{text}");
    let cookie = session_cookie(&text);
    assert!(
        text.to_ascii_lowercase()
            .contains("; httponly; samesite=strict; path=/; max-age=43200"),
        "{text}"
    );
    assert!(text.contains("<video"), "page has no video element");
    let (status, text) = get(port, "/api/stats", Some(&cookie));
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"viewers\":0") && text.contains("\"encoders\":0"),
        "{text}"
    );

    // Which virtual display did it start?
    let lines = server.stderr_lines();
    let display = lines
        .iter()
        .find_map(|l| l.split("started virtual display :").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no virtual display in the log: {lines:?}"));
    let lock = format!("/tmp/.X{display}-lock");
    assert!(
        Path::new(&lock).exists(),
        "{lock} should exist while running"
    );

    let (took, code) = server.terminate();
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    assert!(took < Duration::from_secs(1), "stopping took {took:?}");
    let t = Instant::now();
    while Path::new(&lock).exists() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !Path::new(&lock).exists(),
        "the virtual display outlived vnrit"
    );
}

#[test]
fn a_vanishing_display_stops_vnrit_with_one_clear_line() {
    let mut display = VirtualDisplay::start(320, 240, first_display(1)).expect("Xvfb");
    let mut server = Server::start(&[
        "--display",
        display.name(),
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    display.stop();
    let t = Instant::now();
    let code = loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            break status.code();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "vnrit kept running without its X server"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1));
    std::thread::sleep(Duration::from_millis(100));
    let lines = server.stderr_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("vnrit: lost the X server at")),
        "{lines:?}"
    );
}
