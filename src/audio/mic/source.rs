//! The `vnrit-mic` PulseAudio source: a `module-pipe-source` loaded for as long as a viewer's
//! microphone is on, fed 48 kHz mono S16LE through its FIFO, and made the default source
//! meanwhile (the previous default comes back when it is closed).
//!
//! Desktop programs record from it like from any microphone. Closing (or dropping) it restores
//! the default source and unloads the module, so the source is gone again.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use pulseaudio::protocol::{self, Command};

use super::super::pulse::{self, Conn, PulseError};
use super::super::SAMPLE_RATE;

/// Name of the source desktop programs see.
pub const SOURCE_NAME: &str = "vnrit-mic";

/// The loaded source and the write end of its FIFO.
pub struct MicSource {
    conn: std::io::BufReader<Conn>,
    version: u16,
    seq: u32,
    module: Option<u32>,
    previous_default: Option<CString>,
    fifo: Option<File>,
    dir: PathBuf,
}

impl MicSource {
    /// Loads the source on the server (found as for desktop audio) and makes it the default.
    pub fn open(server: Option<&str>) -> Result<MicSource, PulseError> {
        let (conn, version, seq, address) = pulse::connect(server)?;
        let dir = std::env::temp_dir().join(format!(
            "vnrit-mic-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mut source = MicSource {
            conn,
            version,
            seq,
            module: None,
            previous_default: None,
            fifo: None,
            dir,
        };
        source.previous_default = source.default_source()?;
        let fifo = source.dir.join("mic.fifo");
        let args = format!(
            "source_name={SOURCE_NAME} file={} format=s16le rate={SAMPLE_RATE} channels=1 \
             source_properties=device.description=vnrit-microphone",
            fifo.display()
        );
        source.module = Some(source.load_module("module-pipe-source", &args)?);
        source.set_default_source(SOURCE_NAME)?;
        // The module holds the FIFO open for reading, so this open does not block; writes never
        // block either (a full pipe drops the frame).
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)?;
        source.fifo = Some(file);
        tracing::info!("microphone: source {SOURCE_NAME} on {address} is the default source");
        Ok(source)
    }

    /// Writes samples; a full pipe (PulseAudio not reading) drops them.
    pub fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        let Some(fifo) = self.fifo.as_mut() else {
            return Ok(());
        };
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        match fifo.write(&bytes) {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn default_source(&mut self) -> Result<Option<CString>, PulseError> {
        let seq = self.next_seq();
        protocol::write_command_message(
            self.conn.get_mut(),
            seq,
            &Command::GetServerInfo,
            self.version,
        )?;
        let (_, info) =
            protocol::read_reply_message::<protocol::ServerInfo>(&mut self.conn, self.version)?;
        Ok(info.default_source_name)
    }

    fn set_default_source(&mut self, name: &str) -> Result<(), PulseError> {
        let name = CString::new(name).map_err(|_| PulseError::NoSource(name.to_string()))?;
        let seq = self.next_seq();
        protocol::write_command_message(
            self.conn.get_mut(),
            seq,
            &Command::SetDefaultSource(name),
            self.version,
        )?;
        protocol::read_ack_message(&mut self.conn)?;
        Ok(())
    }

    fn load_module(&mut self, name: &str, args: &str) -> Result<u32, PulseError> {
        let params = protocol::LoadModuleParams {
            name: CString::new(name).map_err(|_| PulseError::Unusable(name.into()))?,
            arguments: Some(CString::new(args).map_err(|_| PulseError::Unusable(args.into()))?),
        };
        let seq = self.next_seq();
        protocol::write_command_message(
            self.conn.get_mut(),
            seq,
            &Command::LoadModule(params),
            self.version,
        )?;
        match protocol::read_reply_message::<protocol::LookupReply>(&mut self.conn, self.version) {
            Ok((_, index)) => Ok(index.0),
            Err(err) => Err(PulseError::Unusable(format!(
                "PulseAudio could not load {name} ({err}); is it PulseAudio or PipeWire-Pulse?"
            ))),
        }
    }

    /// Restores the previous default source and unloads the module (at most once).
    fn close(&mut self) -> Result<(), PulseError> {
        self.fifo = None;
        let Some(module) = self.module.take() else {
            return Ok(());
        };
        let current = self.default_source()?;
        if current.as_deref().and_then(|c| c.to_str().ok()) == Some(SOURCE_NAME) {
            if let Some(previous) = self.previous_default.take() {
                let previous = previous.to_string_lossy().into_owned();
                if previous != SOURCE_NAME {
                    // It may have gone meanwhile; PulseAudio then picks another by itself.
                    let _ = self.set_default_source(&previous);
                }
            }
        }
        let seq = self.next_seq();
        protocol::write_command_message(
            self.conn.get_mut(),
            seq,
            &Command::UnloadModule(module),
            self.version,
        )?;
        protocol::read_ack_message(&mut self.conn)?;
        tracing::info!("microphone: source {SOURCE_NAME} removed");
        Ok(())
    }
}

impl Drop for MicSource {
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            tracing::warn!("microphone: could not remove the {SOURCE_NAME} source: {err}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
