//! The program: parse flags, start the stages in order, stop them in reverse.
//!
//! Order: logging → display (given, or a virtual one) → the resize service (`--resize`) → the
//! X connection held until exit (waiting briefly for a server still starting) → a probe of the
//! X server → the HTTP listener → the WHIP publisher (with `--whip`) → the programs on the
//! display (COMMAND or a session) → the server loop. Shutdown on SIGINT/SIGTERM, when COMMAND
//! ends (vnrit then exits with its status), or when the video pipeline reports a fatal error
//! (the X server went away): the programs are stopped, the server stops, the pipeline thread is
//! stopped, and the virtual display, if we started it, is killed. Errors print one line saying
//! what to do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Parser;
use tokio::sync::{mpsc, watch};
use tracing_subscriber::EnvFilter;

use crate::audio::AudioHub;
use crate::broadcast::Hub;
use crate::capture::Capturer;
use crate::config::{Cli, Config};
use crate::display::VirtualDisplay;
use crate::input::InputService;
use crate::launch::{ChildEnv, LaunchError, Launcher};
use crate::resize::ResizeService;
use crate::server::{self, Access, AppState};
use crate::session::ports::PortPool;
use crate::session::udp_mux::UdpMux;
use crate::session::NetworkConfig;

/// Runs vnrit with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let filter = match EnvFilter::try_new(log_filter(&cli.log_level)) {
        Ok(f) => f,
        Err(err) => {
            eprintln!(
                "vnrit: invalid --log-level `{}`: {err}; use error, warn, info, debug or trace",
                cli.log_level
            );
            return 2;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = cli.into_config(std::env::var("DISPLAY").ok());
    match run(config) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vnrit: {err:#}");
            // A COMMAND that cannot be started exits as a shell would (127: not found).
            err.downcast_ref::<LaunchError>()
                .map_or(1, LaunchError::exit_code)
        }
    }
}

/// A bare level applies to vnrit and quietens the WebRTC stack one step; a full filter is
/// taken as written.
fn log_filter(level: &str) -> String {
    match level {
        "error" | "warn" | "info" | "debug" | "trace" => {
            let deps = if level == "trace" || level == "debug" {
                "info"
            } else {
                "warn"
            };
            format!(
                "{level},webrtc={deps},rtc={deps},rtc_ice={deps},rtc_sctp={deps},rtc_dtls={deps}"
            )
        }
        other => other.to_string(),
    }
}

/// Runs the server with `config` until a signal, the end of COMMAND or a fatal error; returns
/// the exit code (COMMAND's, or 0).
pub fn run(config: Config) -> anyhow::Result<i32> {
    // The virtual display lives (and dies) with this function.
    let mut virtual_display = None;
    let resize;
    let display = match &config.display {
        Some(d) => {
            resize = start_resize(&config, d, false);
            d.clone()
        }
        None => {
            let (w, h) = config.virtual_size;
            // With resizing, Xvfb starts at the largest size (it cannot grow past it) and is
            // set down to --virtual-size through RandR.
            let (xw, xh) = match config.resize.mode.enabled(true) {
                true => (w.max(config.resize.max.0), h.max(config.resize.max.1)),
                false => (w, h),
            };
            let vd = VirtualDisplay::start(xw, xh, 99).context("cannot start a virtual display")?;
            resize = start_resize(&config, vd.name(), true);
            if let Err(err) = vd.paint_welcome() {
                tracing::warn!("could not paint the virtual display: {err}");
            }
            tracing::info!("started virtual display {} ({w}x{h})", vd.name());
            let name = vd.name().to_string();
            virtual_display = Some(vd);
            name
        }
    };
    // This connection stays open until vnrit exits (the display watcher owns it), so a server
    // started without -noreset never sees its last client leave and resets under us.
    let (keeper, _) = crate::xserver::connect_waiting(&display)
        .with_context(|| format!("cannot capture display {display}"))?;
    // Fail early, with the capture layer's own advice, if the display is unusable.
    let (width, height) = Capturer::open(Some(&display), config.video.capture)
        .map(|c| c.size())
        .with_context(|| format!("cannot capture display {display}"))?;
    let name = &display;
    tracing::info!("display {name} is {width}x{height}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("vnrit-net")
        .build()
        .context("cannot start the async runtime")?;
    let own_display = virtual_display.is_some();
    let result = runtime.block_on(serve(config, display, resize.clone(), keeper, own_display));
    runtime.shutdown_timeout(Duration::from_millis(300));
    if let Some(resize) = resize {
        resize.shutdown(Duration::from_secs(1));
    }
    if let Some(mut vd) = virtual_display {
        vd.stop();
    }
    result
}

/// The resize service for display `name` when `--resize` allows it (`own`: vnrit started the
/// display, so it starts at the largest size and is set to --virtual-size here). A display
/// that cannot be resized is streamed at its own size, with a warning.
fn start_resize(config: &Config, name: &str, own: bool) -> Option<Arc<ResizeService>> {
    if !config.resize.mode.enabled(own) {
        return None;
    }
    let initial = own.then_some(config.virtual_size);
    match ResizeService::start(name, config.resize.max, initial, !own) {
        Ok(service) => Some(Arc::new(service)),
        Err(err) => {
            tracing::warn!(
                "{name} cannot follow the viewers' window size ({err}); pages scale the picture"
            );
            None
        }
    }
}

async fn serve(
    config: Config,
    display: String,
    resize: Option<Arc<ResizeService>>,
    keeper: x11rb::rust_connection::RustConnection,
    own_display: bool,
) -> anyhow::Result<i32> {
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!("port {} is already in use on {}; stop the other program or pick another port with -p", config.port, config.bind)
        } else {
            anyhow!("cannot listen on {addr}: {err}")
        }
    })?;
    let local = listener.local_addr().context("listener has no address")?;
    let tls = match &config.tls {
        Some(source) => {
            let tls = server::tls::load(source).await?;
            println!(
                "vnrit: TLS certificate SHA-256 fingerprint {}",
                tls.fingerprint
            );
            Some(tls.config)
        }
        None => None,
    };

    let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel();
    watch_display(keeper, &display, fatal_tx.clone())?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let whip_shutdown = shutdown_rx.clone();
    let input = match InputService::start(&display, &config.input) {
        Ok(service) => Some(std::sync::Arc::new(service)),
        Err(err) => {
            tracing::warn!("{err}; viewers can watch but not control");
            None
        }
    };
    let clock_origin = std::time::Instant::now();
    let display_name = display.clone();
    let hub = Hub::new(display, config.video.clone(), clock_origin, fatal_tx);
    // Audio never stops the server: without PulseAudio it warns once and keeps retrying.
    let audio = config
        .audio
        .clone()
        .map(|cfg| AudioHub::new(cfg, clock_origin));
    // --udp-port: the shared port is bound now, so a taken port stops the start.
    let mux = match config.udp_port {
        Some(port) => {
            let ip = if config.bind.is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                config.bind
            };
            Some(UdpMux::new(port, ip)?)
        }
        None => None,
    };
    let net = NetworkConfig {
        stun: config.stun.clone(),
        turn: config.turn.clone(),
        turn_auth: config.turn_auth.clone(),
        relay_only: config.ice_relay_only,
        bind: config.bind,
        ports: config.udp_ports.map(|(a, b)| PortPool::new(a, b)),
        tcp_only: config.tcp_only,
        mux,
    };
    let state = AppState::new(
        hub.clone(),
        audio.clone(),
        input.clone(),
        Access {
            token: config.token.clone(),
            view_token: config.view_token.clone(),
            allow_origins: config.allow_origins.clone(),
            max_viewers: config.max_viewers,
            secure_cookie: tls.is_some(),
            session_ttl: config.session_ttl,
        },
        net.clone(),
        config.connect_timeout,
        shutdown_rx,
    )
    .with_control(config.control.clone())
    .with_files(config.files.clone());

    let host = if local.ip().is_unspecified() {
        "localhost".to_string()
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    let query = config
        .token
        .as_ref()
        .map(|t| format!("?token={t}"))
        .unwrap_or_default();
    let scheme = if tls.is_some() { "https" } else { "http" };
    // From the moment the URL is out, a SIGTERM must stop vnrit cleanly, not kill it: the
    // handlers go in now, before the server task starts answering.
    let stop_signal = shutdown_signal();
    println!("vnrit: serving {scheme}://{host}:{}/{query}", local.port());
    if config.token.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            "--no-auth on a non-loopback address: anyone who can reach port {} can see and control this desktop",
            local.port()
        );
    }

    // The WHIP publisher is one more subscriber of the shared encode; /api/stats shows it.
    let (whip, state) = match config.whip.clone() {
        Some(whip) => {
            tracing::info!(
                "publishing to WHIP endpoint {}",
                crate::publish::redact(&whip.url)
            );
            let (task, status) =
                crate::publish::spawn(whip, hub.clone(), audio.clone(), net, whip_shutdown);
            (Some(task), state.with_publish(status))
        }
        None => (None, state),
    };
    let state = match resize {
        Some(resize) => state.with_resize(resize),
        None => state,
    };
    let stopper = state.clone();
    let mut server = tokio::spawn(server::serve(listener, state, tls));
    // The programs on the display; dropping the launcher (any early return) stops them too.
    let child_env = ChildEnv {
        display: display_name.clone(),
        pulse_server: config.audio.as_ref().and_then(|a| a.server_for_clients()),
    };
    let mut launcher = Launcher::start(&config.launch, own_display, &child_env)?;
    let outcome = tokio::select! {
        _ = stop_signal => {
            tracing::info!("shutting down");
            stopper.set_stop_reason("vnrit stopped (signal)");
            Ok(0)
        }
        code = launcher.finished() => {
            stopper.set_stop_reason(format!("vnrit stopped: the program it ran exited with status {code}"));
            Ok(code)
        }
        Some(msg) = fatal_rx.recv() => {
            stopper.set_stop_reason(format!("vnrit stopped: {msg}"));
            Err(anyhow!("{msg}"))
        }
        res = &mut server => match res {
            Ok(Ok(())) => Ok(0),
            Ok(Err(err)) => Err(anyhow!("the HTTP server stopped: {err}")),
            Err(err) => Err(anyhow!("the HTTP server task failed: {err}")),
        },
    };
    let _ = shutdown_tx.send(true);
    launcher.stop().await;
    // Let go of every key and button any viewer still holds before anything else stops.
    if let Some(input) = input {
        tokio::task::spawn_blocking(move || input.shutdown())
            .await
            .ok();
    }
    // The WHIP publisher DELETEs its resource on the shutdown signal (bounded to 2 s).
    if let Some(mut whip) = whip {
        if tokio::time::timeout(Duration::from_secs(3), &mut whip)
            .await
            .is_err()
        {
            whip.abort();
        }
    }
    // Sessions close their peers on the shutdown signal; give them a moment, then go.
    let _ = tokio::time::timeout(Duration::from_millis(700), &mut server).await;
    server.abort();
    tokio::task::spawn_blocking(move || {
        if let Some(audio) = audio {
            audio.shutdown(Duration::from_millis(300));
        }
        hub.shutdown(Duration::from_millis(300));
    })
    .await
    .ok();
    outcome
}

/// Notices the X server going away even while nobody watches (the pipeline only runs with
/// viewers): a thread blocks on an idle X connection and reports when it breaks.
/// `conn` is the connection held since start (see [`crate::xserver`]); the thread keeps it
/// open until the process exits.
fn watch_display(
    conn: x11rb::rust_connection::RustConnection,
    display: &str,
    fatal: mpsc::UnboundedSender<String>,
) -> anyhow::Result<()> {
    use x11rb::connection::Connection;
    let name = display.to_string();
    std::thread::Builder::new()
        .name("vnrit-xwatch".into())
        .spawn(move || loop {
            // No events are selected on this connection, so this only returns on an error.
            if conn.wait_for_event().is_err() {
                let _ = fatal.send(crate::capture::lost_server(&name));
                return;
            }
        })
        .context("cannot start the display watcher thread")?;
    Ok(())
}

/// Listens for SIGTERM, SIGINT and SIGHUP from the moment it is called (tokio installs the
/// handlers then, not when the future is first polled), and resolves on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    let hup = signal(SignalKind::hangup());
    async move {
        match (term, int, hup) {
            (Ok(mut term), Ok(mut int), Ok(mut hup)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
