//! Command-line flags and the validated [`Config`] the rest of vnrit runs on.
//!
//! `clap` parses and range-checks every flag; values that are wrong get a one-line message and
//! exit code 2 before anything starts. Everything downstream takes a [`Config`], never raw flags.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::abr::AdaptiveConfig;
use crate::audio::{AudioConfig, AudioSource};
use crate::broadcast::VideoConfig;
use crate::capture::CaptureMethod;
use crate::resize::{ResizeMode, ResizeSettings};
use crate::server::tls::TlsSource;
use crate::session::ice::TurnAuth;

mod files;
mod values;
pub use files::FilesArgs;
use values::{
    parse_height, parse_origin, parse_secret, parse_size, parse_stun, parse_token, parse_ttl,
};

/// Stream an X11 desktop to any web browser over WebRTC.
///
/// Start it and open the printed URL in a browser. With no X display given (no --display and no
/// $DISPLAY), vnrit starts its own virtual display (Xvfb) so there is something to see.
#[derive(Debug, Clone, Parser)]
#[command(name = "vnrit", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  vnrit                                  # own virtual display, a fresh token in the printed URL\n  vnrit --display :0 --token s3cret      # stream the desktop on :0, token required\n  vnrit --height 720 --bitrate 2500      # downscale to 720p at 2.5 Mbit/s\n  vnrit -- xterm -e htop                 # run a program on the display; exit with its status"
)]
pub struct Cli {
    /// X display to stream, e.g. `:0`. Default: $DISPLAY; if that is unset, start a virtual one.
    #[arg(long, value_name = "DISPLAY")]
    pub display: Option<String>,

    /// Address to listen on, e.g. `127.0.0.1` for this machine only.
    #[arg(long, default_value = "0.0.0.0", value_name = "ADDR")]
    pub bind: IpAddr,

    /// HTTP port for the page and signalling, e.g. `-p 8443`.
    #[arg(short, long, default_value_t = 8080, value_name = "PORT")]
    pub port: u16,

    /// Maximum frames per second, e.g. `--framerate 60`. A still screen sends (almost) nothing.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120), value_name = "FPS")]
    pub framerate: u32,

    /// Video bitrate in kbit/s, e.g. `--bitrate 2500`.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(100..=100_000), value_name = "KBPS")]
    pub bitrate: u32,

    /// Downscale the stream to this height in pixels, keeping the aspect ratio, e.g.
    /// `--height 720`. 0 streams at the desktop's native size (a screen larger than
    /// 3840x2160 pixels, or wider or taller than 3840, is always scaled down to fit).
    #[arg(long, default_value_t = 0, value_parser = parse_height, value_name = "PIXELS")]
    pub height: u32,

    /// STUN server URL offered to browsers and used by the server, e.g.
    /// `--stun stun:stun.l.google.com:19302`. Empty (the default) uses none, which is right on a
    /// LAN or loopback. May be given more than once.
    #[arg(long, value_parser = parse_stun, value_name = "URL")]
    pub stun: Vec<String>,

    /// TURN server URL offered to browsers and used by the server, e.g.
    /// `--turn turn:turn.example.org:3478` (or `turns:...:5349?transport=tcp`). May be given
    /// more than once; all share the credentials of --turn-user/--turn-password or --turn-secret.
    #[arg(long, value_parser = crate::session::ice::parse_turn_url, value_name = "URL")]
    pub turn: Vec<String>,

    /// TURN user name (with --turn-password), e.g. `--turn-user vnrit`.
    #[arg(long, value_name = "USER", requires_all = ["turn", "turn_password"], conflicts_with = "turn_secret")]
    pub turn_user: Option<String>,

    /// TURN password for --turn-user.
    #[arg(
        long,
        env = "VNRIT_TURN_PASSWORD",
        value_name = "PASSWORD",
        requires = "turn_user"
    )]
    pub turn_password: Option<String>,

    /// Secret shared with the TURN server (coturn `use-auth-secret`/`static-auth-secret`):
    /// every viewer gets fresh credentials valid for 24 h, e.g. `--turn-secret s3cret`.
    #[arg(long, env = "VNRIT_TURN_SECRET", value_name = "SECRET", requires = "turn", value_parser = parse_secret)]
    pub turn_secret: Option<String>,

    /// Use only TURN relay candidates, on the server and in the browser (for testing a TURN
    /// set-up, or to hide both ends' addresses). Needs --turn.
    #[arg(long, requires = "turn")]
    pub ice_relay_only: bool,

    /// One UDP port for the media of every viewer, e.g. `--udp-port 50000`: a firewall then
    /// needs only the HTTP port and this one. Default: a free port per viewer.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..), value_name = "PORT", conflicts_with_all = ["udp_ports", "tcp_only"])]
    pub udp_port: Option<u16>,

    /// Local ports for WebRTC media, e.g. `--udp-ports 50000-50009` (or one port, `50000`):
    /// each viewer uses one port of the range, so the range bounds how many watch at once.
    /// Default: any free port. With --tcp-only the range applies to the TCP listeners.
    #[arg(long, value_parser = crate::session::ports::parse_port_range, value_name = "A-B")]
    pub udp_ports: Option<(u16, u16)>,

    /// Media over TCP only (ICE-TCP, passive candidates), for networks that block UDP.
    /// Slower to recover from loss than UDP; use only when UDP cannot get through.
    #[arg(long, conflicts_with = "ice_relay_only")]
    pub tcp_only: bool,

    /// Require this token from every client (`?token=...` in the URL), e.g. `--token s3cret`.
    /// Without it vnrit makes up a random one and prints the URL that carries it.
    #[arg(long, env = "VNRIT_TOKEN", value_name = "TOKEN", value_parser = parse_token, conflicts_with = "no_auth")]
    pub token: Option<String>,

    /// A second token that gives view-only access (no keyboard, mouse or clipboard), e.g.
    /// `--view-token watchme`.
    #[arg(long, env = "VNRIT_VIEW_TOKEN", value_name = "TOKEN", value_parser = parse_token, conflicts_with = "no_auth")]
    pub view_token: Option<String>,

    /// Serve without any token: anyone who can reach the port sees and controls the desktop.
    #[arg(long)]
    pub no_auth: bool,

    /// Also accept signalling from pages served by this origin (behind a reverse proxy), e.g.
    /// `--allow-origin https://desk.example.org`. The server's own origin is always accepted.
    #[arg(long, value_name = "ORIGIN", value_parser = parse_origin)]
    pub allow_origin: Vec<String>,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key), e.g. `--tls-cert fullchain.pem`.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key for --tls-cert, e.g. `--tls-key privkey.pem`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Serve HTTPS with a certificate made at start (its SHA-256 fingerprint is printed, to
    /// check against the browser's warning).
    #[arg(long)]
    pub tls_self_signed: bool,

    /// Do not capture or send desktop audio.
    #[arg(long)]
    pub no_audio: bool,

    /// PulseAudio (or PipeWire-Pulse) source to send, e.g. `--audio-source alsa_output.pci.monitor`.
    /// Default: the monitor of the default output.
    #[arg(long, value_name = "NAME", conflicts_with = "no_audio")]
    pub audio_source: Option<String>,

    /// Opus audio bitrate in kbit/s, e.g. `--audio-bitrate 64`.
    #[arg(long, default_value_t = 96, value_parser = clap::value_parser!(u32).range(6..=510), value_name = "KBPS")]
    pub audio_bitrate: u32,

    /// Most viewers at once; more get "503 too many viewers", e.g. `--max-viewers 4`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000), value_name = "N")]
    pub max_viewers: u32,

    /// Log verbosity: error, warn, info, debug or trace (or a tracing filter such as
    /// `vnrit=debug,webrtc=warn`).
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,

    /// Send a keyframe at least this often, in seconds (0 = only when a viewer joins or asks).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=3600), value_name = "SECONDS")]
    pub idr_interval: u32,

    /// How to read the screen: auto (MIT-SHM when the X server offers it), shm or getimage.
    #[arg(long, value_enum, default_value_t = CaptureArg::Auto, value_name = "METHOD")]
    pub capture: CaptureArg,

    /// Size of the virtual display started when no display is given, e.g. `1280x720`.
    #[arg(long, default_value = "1920x1080", value_parser = parse_size, value_name = "WxH")]
    pub virtual_size: (u32, u32),

    /// Set the desktop to the size of the viewer's window: auto (on for the virtual display
    /// vnrit starts, off for a display it was given), on, or off.
    #[arg(long, value_enum, default_value_t = ResizeMode::Auto, value_name = "WHEN")]
    pub resize: ResizeMode,

    /// The largest desktop a viewer's window may ask for, e.g. `2560x1440`. vnrit's own
    /// virtual display starts at this size (and at least --virtual-size) and is set down.
    #[arg(long, default_value = "3840x2160", value_parser = parse_size, value_name = "WxH")]
    pub max_size: (u32, u32),

    /// Follow each viewer's link: the shared encoder's bitrate tracks the viewers' bandwidth
    /// estimates between --min-bitrate and --bitrate, and a viewer far slower than the others
    /// has frames dropped for it alone. On by default (see docs/abr.md);
    /// `--adaptive-bitrate=false` keeps a constant --bitrate with no pacing.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub adaptive_bitrate: bool,

    /// Lowest adaptive bitrate in kbit/s at the full frame rate, e.g. `--min-bitrate 500`;
    /// below it the frame rate falls instead (down to 5 fps). At most --bitrate.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(50..=100_000), value_name = "KBPS")]
    pub min_bitrate: u32,

    /// Send small changes (a typed glyph, a cursor) losslessly without an encode, and make
    /// still areas lossless after motion stops, within the adaptive bitrate
    /// (docs/video-stage.md). Off by default for now: with adaptive bitrate, the viewer's pacer
    /// lets large refinement pictures out far slower than the link allows (docs/video-stage.md).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub lossless_updates: bool,

    /// Seconds a viewer may take to finish connecting (offer to connected) before it is dropped.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600), value_name = "SECONDS")]
    pub connect_timeout: u64,

    /// How long the session cookie set after a visit with `?token=` stays valid, e.g. `12h`,
    /// `90m` or `7d` (1 minute to 30 days); afterwards the page needs the link again.
    #[arg(long, default_value = "12h", value_parser = parse_ttl, value_name = "DURATION")]
    pub session_ttl: Duration,
    /// Also publish the desktop to this WHIP ingest (an SFU such as Janus), e.g.
    /// `--whip https://sfu.example.org/whip/endpoint/desk`. Re-publishes if the SFU restarts.
    #[arg(long, value_name = "URL", value_parser = crate::publish::parse_whip_url)]
    pub whip: Option<url::Url>,

    /// Bearer token for --whip, e.g. `--whip-token s3cret`.
    #[arg(long, env = "VNRIT_WHIP_TOKEN", value_name = "TOKEN", value_parser = parse_token, requires = "whip")]
    pub whip_token: Option<String>,

    /// Programs to start on the display (see `crate::launch`).
    #[command(flatten)]
    pub launch: crate::launch::LaunchArgs,
    /// Who drives the desktop (`--control`, `--control-idle`, `--admin-token`).
    #[command(flatten)]
    pub control: crate::control::ControlSettings,
    /// File transfer folders and limits.
    #[command(flatten)]
    pub files: FilesArgs,
    /// Remote control (`--max-clipboard`).
    #[command(flatten)]
    pub input: crate::input::InputSettings,
}

/// The screen-reading method named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureArg {
    /// MIT-SHM when available, GetImage otherwise.
    Auto,
    /// MIT-SHM only.
    Shm,
    /// Plain GetImage (slow; for remote X servers).
    Getimage,
}

impl From<CaptureArg> for CaptureMethod {
    fn from(arg: CaptureArg) -> Self {
        match arg {
            CaptureArg::Auto => CaptureMethod::Auto,
            CaptureArg::Shm => CaptureMethod::Shm,
            CaptureArg::Getimage => CaptureMethod::GetImage,
        }
    }
}

/// Validated settings for a vnrit run.
#[derive(Debug, Clone)]
pub struct Config {
    /// X display to stream; `None` = start a virtual display.
    pub display: Option<String>,
    /// Listen address.
    pub bind: IpAddr,
    /// Listen port (0 = any free port).
    pub port: u16,
    /// Video pipeline settings.
    pub video: VideoConfig,
    /// STUN URLs for ICE (empty = none).
    pub stun: Vec<String>,
    /// TURN URLs for ICE (empty = none).
    pub turn: Vec<String>,
    /// Credentials for the TURN URLs.
    pub turn_auth: TurnAuth,
    /// Relay candidates only (`--ice-relay-only`).
    pub ice_relay_only: bool,
    /// One shared UDP port for all media (`--udp-port`).
    pub udp_port: Option<u16>,
    /// Port range for media sockets (`--udp-ports`).
    pub udp_ports: Option<(u16, u16)>,
    /// ICE over TCP only (`--tcp-only`).
    pub tcp_only: bool,
    /// Access token; `None` only with `--no-auth`.
    pub token: Option<String>,
    /// View-only token, if any.
    pub view_token: Option<String>,
    /// Whether the token was generated (print it).
    pub token_generated: bool,
    /// Extra origins allowed to open the signalling socket.
    pub allow_origins: Vec<String>,
    /// Most viewers at once.
    pub max_viewers: usize,
    /// HTTPS, if asked for.
    pub tls: Option<TlsSource>,
    /// Desktop audio, unless `--no-audio`.
    pub audio: Option<AudioConfig>,
    /// Virtual display size when one is started.
    pub virtual_size: (u32, u32),
    /// Whether and how far pages may resize the desktop.
    pub resize: ResizeSettings,
    /// Time allowed from offer to a connected peer.
    pub connect_timeout: Duration,
    /// Lifetime of the session cookie.
    pub session_ttl: Duration,
    /// WHIP publishing, if `--whip` is given.
    pub whip: Option<crate::publish::WhipConfig>,
    /// Programs to start on the display.
    pub launch: crate::launch::LaunchConfig,
    /// Control hand-over between viewers.
    pub control: crate::control::ControlSettings,
    /// File transfer folders and limits.
    pub files: crate::server::files::FilesConfig,
    /// Remote control settings.
    pub input: crate::input::InputSettings,
}

impl Cli {
    /// Turns parsed flags into a [`Config`], resolving the display from `$DISPLAY`.
    pub fn into_config(self, env_display: Option<String>) -> Config {
        let display = self
            .display
            .or(env_display)
            .filter(|d| !d.trim().is_empty());
        Config {
            display,
            bind: self.bind,
            port: self.port,
            video: VideoConfig {
                framerate: self.framerate,
                bitrate_kbps: self.bitrate,
                height: self.height,
                idr_interval: (self.idr_interval > 0)
                    .then(|| Duration::from_secs(u64::from(self.idr_interval))),
                capture: self.capture.into(),
                adaptive: self.adaptive_bitrate.then(|| AdaptiveConfig {
                    min_kbps: self.min_bitrate.min(self.bitrate),
                }),
                lossless_updates: self.lossless_updates,
            },
            stun: self.stun.into_iter().filter(|s| !s.is_empty()).collect(),
            turn: self.turn,
            turn_auth: match (self.turn_user, self.turn_password, self.turn_secret) {
                (_, _, Some(secret)) => TurnAuth::Secret(secret),
                (Some(user), Some(password), None) => TurnAuth::Static { user, password },
                _ => TurnAuth::None,
            },
            ice_relay_only: self.ice_relay_only,
            udp_port: self.udp_port,
            udp_ports: self.udp_ports,
            tcp_only: self.tcp_only,
            token_generated: self.token.is_none() && !self.no_auth,
            token: match (self.token, self.no_auth) {
                (Some(t), _) => Some(t),
                (None, true) => None,
                (None, false) => Some(random_token()),
            },
            view_token: self.view_token,
            allow_origins: self.allow_origin,
            max_viewers: self.max_viewers as usize,
            audio: (!self.no_audio).then(|| AudioConfig {
                source: match self.audio_source {
                    Some(name) => AudioSource::Named(name),
                    None => AudioSource::DefaultMonitor,
                },
                server: None,
                bitrate_bps: self.audio_bitrate * 1000,
            }),
            tls: match (self.tls_cert, self.tls_key, self.tls_self_signed) {
                (Some(cert), Some(key), _) => Some(TlsSource::Files { cert, key }),
                (_, _, true) => {
                    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
                    if !self.bind.is_unspecified() && !self.bind.is_loopback() {
                        names.push(self.bind.to_string());
                    }
                    Some(TlsSource::SelfSigned(names))
                }
                _ => None,
            },
            virtual_size: self.virtual_size,
            resize: ResizeSettings {
                mode: self.resize,
                max: self.max_size,
            },
            connect_timeout: Duration::from_secs(self.connect_timeout),
            session_ttl: self.session_ttl,
            whip: self.whip.map(|url| crate::publish::WhipConfig {
                url,
                token: self.whip_token,
                connect_timeout: Duration::from_secs(self.connect_timeout),
            }),
            launch: self.launch.into(),
            control: self.control,
            files: self.files.into_config(),
            input: self.input,
        }
    }
}

/// A fresh random token: 22 URL-safe characters (about 131 bits).
pub fn random_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests;
