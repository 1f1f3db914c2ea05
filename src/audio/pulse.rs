//! A minimal PulseAudio recording client: finds the server, authenticates, resolves the source
//! to record (the monitor of the default sink unless a source is named) and reads 48 kHz stereo
//! S16LE from it with blocking socket reads.
//!
//! It speaks the native protocol through the pure-Rust `pulseaudio` crate (no libpulse), over a
//! Unix socket or TCP. PipeWire's PulseAudio interface answers the same way.

use std::ffi::CString;
use std::io::{Cursor, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use pulseaudio::protocol::{self, Command, ProtocolError};

use super::{AudioSource, CHANNELS, SAMPLE_RATE};

/// How long the handshake (auth, look-ups, stream creation) may take before we give up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes in 20 ms of 48 kHz stereo S16 (one Opus frame): the fragment size we ask the server for.
const FRAGMENT_BYTES: u32 = SAMPLE_RATE / 50 * CHANNELS * 2;
/// Refuse absurd messages rather than allocate whatever a broken server announces.
const MAX_MESSAGE: u32 = 4 * 1024 * 1024;

/// What can go wrong while talking to PulseAudio.
#[derive(Debug, thiserror::Error)]
pub enum PulseError {
    /// No server address was given and none of the usual places has a server.
    #[error(
        "no PulseAudio server found (tried {0}); start PulseAudio or PipeWire, or set PULSE_SERVER"
    )]
    NoServer(String),
    /// The server address has a form we cannot use.
    #[error(
        "unsupported PulseAudio server address {0:?} (use unix:/path/to/native or tcp:host:port)"
    )]
    BadAddress(String),
    /// Connecting to the server failed.
    #[error("cannot connect to PulseAudio at {address}: {source}")]
    Connect {
        /// The address tried.
        address: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The server refused our credentials.
    #[error("PulseAudio refused authentication ({0}); check the cookie (PULSE_COOKIE, ~/.config/pulse/cookie)")]
    Auth(String),
    /// The server has no default sink to take the monitor of.
    #[error("PulseAudio has no default sink; name a source to record with --audio-source")]
    NoDefaultSink,
    /// The source to record does not exist (or went away).
    #[error("PulseAudio source {0:?} does not exist (list them with `pactl list short sources`)")]
    NoSource(String),
    /// The server killed our record stream (its source disappeared).
    #[error("PulseAudio ended the recording (the source {0:?} went away)")]
    StreamKilled(String),
    /// The server did not deliver what we asked for.
    #[error("PulseAudio gave an unusable stream: {0}")]
    Unusable(String),
    /// The connection broke or the server spoke nonsense.
    #[error("PulseAudio connection lost: {0}")]
    Protocol(#[from] ProtocolError),
}

impl From<std::io::Error> for PulseError {
    fn from(err: std::io::Error) -> Self {
        PulseError::Protocol(ProtocolError::Io(err))
    }
}

/// The socket to the server, either kind.
#[derive(Debug)]
pub enum Conn {
    /// A local server (the usual case).
    Unix(UnixStream),
    /// A server reached over TCP.
    Tcp(TcpStream),
}

impl Conn {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(timeout),
            Conn::Tcp(s) => s.set_read_timeout(timeout),
        }
    }

    /// A second handle to the same socket, used to unblock a pending read from another thread.
    pub fn try_clone(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }

    /// Closes both directions: a read blocked on any handle of this socket returns at once.
    pub fn shutdown(&self) {
        let _ = match self {
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// Where the server is: the explicit address if given, else `$PULSE_SERVER`, else the usual
/// per-user socket paths. Returns every candidate in order (PULSE_SERVER may list several).
pub fn server_candidates(explicit: Option<&str>) -> Vec<String> {
    if let Some(address) = explicit {
        return vec![address.to_owned()];
    }
    if let Ok(list) = std::env::var("PULSE_SERVER") {
        let found: Vec<String> = list.split_whitespace().map(str::to_owned).collect();
        if !found.is_empty() {
            return found;
        }
    }
    let mut paths = Vec::new();
    if let Ok(dir) = std::env::var("PULSE_RUNTIME_PATH") {
        paths.push(PathBuf::from(dir).join("native"));
    }
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        paths.push(PathBuf::from(dir).join("pulse/native"));
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    paths.push(PathBuf::from(format!("/run/user/{uid}/pulse/native")));
    paths.push(PathBuf::from("/var/run/pulse/native"));
    paths
        .into_iter()
        .map(|p| format!("unix:{}", p.display()))
        .collect()
}

/// Opens a socket to one server address (`unix:PATH`, a bare absolute path, `tcp:HOST[:PORT]`).
fn open(address: &str) -> Result<Conn, PulseError> {
    let connect_err = |source| PulseError::Connect {
        address: address.to_owned(),
        source,
    };
    if let Some(path) = address.strip_prefix("unix:") {
        return UnixStream::connect(path)
            .map(Conn::Unix)
            .map_err(connect_err);
    }
    if address.starts_with('/') {
        return UnixStream::connect(address)
            .map(Conn::Unix)
            .map_err(connect_err);
    }
    if let Some(host) = address.strip_prefix("tcp:") {
        let target = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:4713")
        };
        let stream = TcpStream::connect(target).map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        return Ok(Conn::Tcp(stream));
    }
    Err(PulseError::BadAddress(address.to_owned()))
}

/// Length of the authentication cookie: the server rejects any other length as a protocol error.
const COOKIE_LEN: usize = 256;

/// The user's authentication cookie, or zeros when there is none (enough for servers that
/// allow anonymous clients, and for PipeWire).
fn cookie() -> Vec<u8> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Ok(path) = std::env::var("PULSE_COOKIE") {
        paths.push(path.into());
    }
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        paths.push(home.join(".config/pulse/cookie"));
        paths.push(home.join(".pulse-cookie"));
    }
    let mut cookie = paths
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    cookie.resize(COOKIE_LEN, 0);
    cookie
}

/// An open record stream on the server.
pub struct Recorder {
    conn: std::io::BufReader<Conn>,
    version: u16,
    channel: u32,
    /// The name of the source being recorded.
    pub source: String,
    /// The server address in use.
    pub address: String,
    /// Recording the default sink's monitor: follow the default when it changes.
    pub follows_default: bool,
}

/// What one blocking read brought.
pub enum Event {
    /// Interleaved S16LE stereo bytes.
    Data(Vec<u8>),
    /// The server had to drop captured audio (we read too slowly).
    Overflow,
    /// The server's settings changed (perhaps its default sink).
    ServerChanged,
    /// Something we do not act on (moved, suspended, started, ...).
    Other,
}

impl Recorder {
    /// Connects to the first reachable server among the candidates and starts recording `source`.
    pub fn open(server: Option<&str>, source: &AudioSource) -> Result<Recorder, PulseError> {
        let candidates = server_candidates(server);
        let mut last = None;
        for address in &candidates {
            match open(address) {
                Ok(conn) => return Recorder::start(conn, address.clone(), source),
                Err(err) => last = Some(err),
            }
        }
        match last {
            // An address the user chose: say exactly why it failed.
            Some(err) if server.is_some() || candidates.len() == 1 => Err(err),
            _ => Err(PulseError::NoServer(candidates.join(", "))),
        }
    }

    fn start(conn: Conn, address: String, source: &AudioSource) -> Result<Recorder, PulseError> {
        let (mut conn, version, mut seq) = handshake(conn)?;
        let name = match source {
            AudioSource::Named(name) => name.clone(),
            AudioSource::DefaultMonitor => {
                seq += 1;
                let monitor = default_monitor(&mut conn, version, &mut seq)?;
                // Hear about default-sink changes (server events) to follow them.
                seq += 1;
                let mask = protocol::SubscriptionMask::SERVER;
                protocol::write_command_message(
                    conn.get_mut(),
                    seq,
                    &Command::Subscribe(mask),
                    version,
                )?;
                protocol::read_ack_message(&mut conn)?;
                monitor
            }
        };
        let source_name =
            CString::new(name.clone()).map_err(|_| PulseError::NoSource(name.clone()))?;

        seq += 1;
        let params = protocol::RecordStreamParams {
            sample_spec: protocol::SampleSpec {
                format: protocol::SampleFormat::S16Le,
                channels: CHANNELS as u8,
                sample_rate: SAMPLE_RATE,
            },
            channel_map: protocol::ChannelMap::stereo(),
            source_name: Some(source_name),
            buffer_attr: protocol::stream::BufferAttr {
                max_length: u32::MAX,
                target_length: u32::MAX,
                pre_buffering: u32::MAX,
                minimum_request_length: u32::MAX,
                fragment_size: FRAGMENT_BYTES,
            },
            flags: protocol::stream::StreamFlags {
                adjust_latency: true,
                ..Default::default()
            },
            cvolume: None,
            ..Default::default()
        };
        protocol::write_command_message(
            conn.get_mut(),
            seq,
            &Command::CreateRecordStream(params),
            version,
        )?;
        let reply =
            protocol::read_reply_message::<protocol::CreateRecordStreamReply>(&mut conn, version);
        let stream = match reply {
            Ok((_, stream)) => stream,
            Err(ProtocolError::ServerError(protocol::PulseError::NoEntity)) => {
                return Err(PulseError::NoSource(name))
            }
            Err(err) => return Err(err.into()),
        };
        let spec = stream.sample_spec;
        if spec.format != protocol::SampleFormat::S16Le
            || u32::from(spec.channels) != CHANNELS
            || spec.sample_rate != SAMPLE_RATE
        {
            return Err(PulseError::Unusable(format!(
                "asked for s16le 2ch 48000 Hz, got {spec:?}"
            )));
        }
        // Streaming from here: reads block until audio arrives, however long the source is idle.
        conn.get_ref().set_read_timeout(None)?;
        Ok(Recorder {
            conn,
            version,
            channel: stream.channel,
            source: name,
            address,
            follows_default: *source == AudioSource::DefaultMonitor,
        })
    }

    /// A handle that can unblock [`Recorder::read`] from another thread (see [`Conn::shutdown`]).
    pub fn interrupter(&self) -> std::io::Result<Conn> {
        self.conn.get_ref().try_clone()
    }

    /// Blocks until the server sends the next message: audio, or an event.
    pub fn read(&mut self) -> Result<Event, PulseError> {
        let desc = protocol::read_descriptor(&mut self.conn)?;
        if desc.length > MAX_MESSAGE {
            return Err(PulseError::Unusable(format!(
                "message of {} bytes announced",
                desc.length
            )));
        }
        let mut body = vec![0u8; desc.length as usize];
        self.conn.read_exact(&mut body)?;
        if desc.channel != u32::MAX {
            if desc.channel != self.channel {
                return Ok(Event::Other);
            }
            return Ok(Event::Data(body));
        }
        // A command from the server. Ones this crate cannot parse are skipped (body already read).
        match Command::read_tag_prefixed(&mut Cursor::new(body), self.version) {
            Ok((_, Command::RecordStreamKilled(channel))) if channel == self.channel => {
                Err(PulseError::StreamKilled(self.source.clone()))
            }
            Ok((_, Command::Overflow(_))) => Ok(Event::Overflow),
            Ok((_, Command::SubscribeEvent(event)))
                if event.event_facility == protocol::SubscriptionEventFacility::Server =>
            {
                Ok(Event::ServerChanged)
            }
            Ok((_, Command::RecordStreamMoved(moved))) => {
                tracing::info!(
                    "audio: PulseAudio moved the recording to source #{}",
                    moved.device_index
                );
                Ok(Event::Other)
            }
            Ok((_, other)) => {
                tracing::debug!("audio: PulseAudio event {other:?}");
                Ok(Event::Other)
            }
            Err(err) => {
                tracing::debug!("audio: skipped a PulseAudio message: {err}");
                Ok(Event::Other)
            }
        }
    }
}

/// Connects to the first reachable server among the candidates (as [`Recorder::open`] does) and
/// authenticates; returns the reader, the protocol version, the last sequence number used and
/// the address.
pub(super) fn connect(
    server: Option<&str>,
) -> Result<(std::io::BufReader<Conn>, u16, u32, String), PulseError> {
    let candidates = server_candidates(server);
    let mut last = None;
    for address in &candidates {
        match open(address) {
            Ok(conn) => {
                let (conn, version, seq) = handshake(conn)?;
                return Ok((conn, version, seq, address.clone()));
            }
            Err(err) => last = Some(err),
        }
    }
    match last {
        Some(err) if server.is_some() || candidates.len() == 1 => Err(err),
        _ => Err(PulseError::NoServer(candidates.join(", "))),
    }
}

/// Authenticates and names the client; returns the reader, the protocol version in use and the
/// last sequence number used.
fn handshake(conn: Conn) -> Result<(std::io::BufReader<Conn>, u16, u32), PulseError> {
    conn.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut conn = std::io::BufReader::new(conn);
    let mut seq = 0u32;

    let auth = protocol::AuthParams {
        version: protocol::MAX_VERSION,
        supports_shm: false,
        supports_memfd: false,
        cookie: cookie(),
    };
    protocol::write_command_message(
        conn.get_mut(),
        seq,
        &Command::Auth(auth),
        protocol::MAX_VERSION,
    )?;
    let reply =
        protocol::read_reply_message::<protocol::AuthReply>(&mut conn, protocol::MAX_VERSION);
    let version = match reply {
        Ok((_, reply)) => reply.version.min(protocol::MAX_VERSION),
        Err(ProtocolError::ServerError(code)) => return Err(PulseError::Auth(format!("{code:?}"))),
        Err(err) => return Err(err.into()),
    };

    seq += 1;
    let mut props = protocol::Props::new();
    props.set(protocol::Prop::ApplicationName, c"vnrit");
    protocol::write_command_message(conn.get_mut(), seq, &Command::SetClientName(props), version)?;
    protocol::read_reply_message::<protocol::SetClientNameReply>(&mut conn, version)?;

    Ok((conn, version, seq))
}

/// Asks the server at `address` (on a short-lived connection) for the monitor of its default
/// sink now.
pub fn current_default_monitor(address: &str) -> Result<String, PulseError> {
    let (mut conn, version, mut seq) = handshake(open(address)?)?;
    seq += 1;
    default_monitor(&mut conn, version, &mut seq)
}

/// The monitor source of the server's default sink.
fn default_monitor(
    conn: &mut std::io::BufReader<Conn>,
    version: u16,
    seq: &mut u32,
) -> Result<String, PulseError> {
    protocol::write_command_message(conn.get_mut(), *seq, &Command::GetServerInfo, version)?;
    let (_, info) = protocol::read_reply_message::<protocol::ServerInfo>(conn, version)?;
    let sink = info.default_sink_name.ok_or(PulseError::NoDefaultSink)?;
    let sink_text = sink.to_string_lossy().into_owned();

    *seq += 1;
    let query = protocol::GetSinkInfo {
        index: None,
        name: Some(sink),
    };
    protocol::write_command_message(conn.get_mut(), *seq, &Command::GetSinkInfo(query), version)?;
    match protocol::read_reply_message::<protocol::SinkInfo>(conn, version) {
        Ok((_, sink)) => Ok(sink
            .monitor_source_name
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{sink_text}.monitor"))),
        Err(ProtocolError::ServerError(protocol::PulseError::NoEntity)) => {
            Err(PulseError::NoDefaultSink)
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_address_is_the_only_candidate_and_its_error_is_kept() {
        assert_eq!(
            server_candidates(Some("tcp:host")),
            vec!["tcp:host".to_owned()]
        );
        let err = Recorder::open(
            Some("unix:/nonexistent/vnrit/native"),
            &AudioSource::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("cannot connect to PulseAudio at unix:/nonexistent/vnrit/native"),
            "{err}"
        );
        let err = Recorder::open(Some("pipe:x"), &AudioSource::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("unsupported PulseAudio server address"),
            "{err}"
        );
    }
}
