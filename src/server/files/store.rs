//! The file-system side of the file transfer: an upload written to a hidden temporary file and
//! renamed into place under a free name; the folder's listing; opening one file to send.
//!
//! Nothing here follows a client-given path: names come checked by [`super::names`], each one
//! is a single component directly in the configured folder, and symlinks are only followed
//! when their target lies directly in that folder too.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::names;

/// How many numbered names an upload tries before giving up.
const MAX_NUMBERED: u32 = 9999;
/// Most entries `GET /api/files` lists (the newest ones).
pub const MAX_LISTED: usize = 1000;
/// Write buffer of an upload: large writes, few blocking calls.
const WRITE_BUFFER: usize = 1 << 20;

/// An upload being written: a hidden temporary file, removed unless [`Upload::commit`] ran.
pub struct Upload {
    dir: PathBuf,
    temp: PathBuf,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    /// Bytes written so far.
    pub written: u64,
}

impl Upload {
    /// Creates the folder if needed and a fresh temporary file in it.
    pub async fn create(dir: &Path) -> io::Result<Upload> {
        tokio::fs::create_dir_all(dir).await?;
        let temp = dir.join(names::temporary(rand::random()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await?;
        Ok(Upload {
            dir: dir.to_path_buf(),
            temp,
            file: Some(tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file)),
            written: 0,
        })
    }

    /// Appends `data`.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self.file.as_mut().ok_or_else(closed)?;
        file.write_all(data).await?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Flushes and syncs the data, then gives it `name`, or the first free numbered variant of
    /// it (never replacing a file). Returns the final name.
    pub async fn commit(mut self, name: &str) -> io::Result<String> {
        let mut file = self.file.take().ok_or_else(closed)?;
        file.flush().await?;
        let file = file.into_inner();
        file.sync_all().await?;
        drop(file);
        let (dir, temp, name) = (self.dir.clone(), self.temp.clone(), name.to_string());
        let result = tokio::task::spawn_blocking(move || place(&dir, &temp, &name))
            .await
            .map_err(io::Error::other)?;
        if result.is_ok() {
            // Placed: the temporary name is gone (moved or unlinked).
            self.temp = PathBuf::new();
        }
        result
    }
}

fn closed() -> io::Error {
    io::Error::other("the upload was already finished")
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            // A cut, refused or failed upload leaves nothing behind.
            if let Err(err) = std::fs::remove_file(&self.temp) {
                tracing::warn!(
                    "could not remove the partial upload {}: {err}",
                    self.temp.display()
                );
            }
        }
    }
}

/// Moves `temp` to the first free name among `name`, `name (1)`, ... in `dir`. A hard link
/// fails when the name exists, so nothing is ever replaced; file systems without hard links
/// fall back to a check-then-rename.
fn place(dir: &Path, temp: &Path, name: &str) -> io::Result<String> {
    for n in 0..=MAX_NUMBERED {
        let candidate = names::numbered(name, n);
        let target = dir.join(&candidate);
        match std::fs::hard_link(temp, &target) {
            Ok(()) => {
                std::fs::remove_file(temp)?;
                return Ok(candidate);
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) if no_hard_links(&err) => {
                if std::fs::symlink_metadata(&target).is_ok() {
                    continue;
                }
                std::fs::rename(temp, &target)?;
                return Ok(candidate);
            }
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{name} and {MAX_NUMBERED} numbered variants of it already exist"),
    ))
}

fn no_hard_links(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EPERM | libc::EOPNOTSUPP | libc::EXDEV | libc::EMLINK)
    )
}

/// Whether `err` means the disk (or the user's quota) is full.
pub fn disk_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// One file of the download folder, as `GET /api/files` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, Unix time in seconds.
    pub modified: u64,
}

/// The regular files directly in `dir` (newest first, at most [`MAX_LISTED`]), without hidden
/// names and without symlinks that lead out of the folder. A missing folder lists nothing.
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let root = dir.canonicalize()?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !names::downloadable(&name) {
            continue;
        }
        let Ok(path) = resolve(&root, &name) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            out.push(Entry {
                name,
                size: meta.len(),
                modified: unix_secs(meta.modified().unwrap_or(UNIX_EPOCH)),
            });
        }
    }
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    out.truncate(MAX_LISTED);
    Ok(out)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why a file cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No such (regular, visible) file.
    #[error("no file of that name in the download folder")]
    NotFound,
    /// A symlink whose target is outside the folder.
    #[error("this file is a link to outside the download folder")]
    OutsideFolder,
    /// Reading failed.
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
}

/// The path `name` in `root` (canonical) stands for: itself, or for a symlink its target,
/// which must lie directly in `root`.
fn resolve(root: &Path, name: &str) -> Result<PathBuf, OpenError> {
    let path = root.join(name);
    let meta = std::fs::symlink_metadata(&path).map_err(|_| OpenError::NotFound)?;
    if !meta.file_type().is_symlink() {
        return Ok(path);
    }
    let target = path.canonicalize().map_err(|_| OpenError::NotFound)?;
    if target.parent() != Some(root) {
        return Err(OpenError::OutsideFolder);
    }
    Ok(target)
}

/// Opens `name` in `dir` for sending: a regular file directly in the folder (a symlink only
/// when its target is in the folder too). The final open refuses symlinks, so a name swapped
/// for a link meanwhile is not followed; FIFOs and devices are refused without blocking.
pub fn open(dir: &Path, name: &str) -> Result<(File, std::fs::Metadata), OpenError> {
    let root = dir.canonicalize().map_err(|_| OpenError::NotFound)?;
    let path = resolve(&root, name)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => OpenError::OutsideFolder,
            Some(libc::ENOENT) => OpenError::NotFound,
            _ => OpenError::Io(err),
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(OpenError::NotFound);
    }
    Ok((file, meta))
}

/// The home folder's `Downloads`, the default folder for both directions.
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("Downloads")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vnrit-files-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn placing_never_replaces_and_numbers_the_name() {
        let dir = scratch("place");
        for expected in ["a.txt", "a (1).txt", "a (2).txt"] {
            let temp = dir.join(names::temporary(rand::random()));
            std::fs::write(&temp, expected).expect("temp");
            assert_eq!(place(&dir, &temp, "a.txt").expect("placed"), expected);
            assert!(!temp.exists());
        }
        assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "a.txt");
        let listed: Vec<String> = list(&dir).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(listed.len(), 3, "{listed:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn links_out_of_the_folder_are_neither_listed_nor_opened() {
        let dir = scratch("links");
        let outside = scratch("outside");
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::fs::write(dir.join("inside.txt"), "i").unwrap();
        std::fs::write(dir.join(".hidden"), "h").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), dir.join("out")).unwrap();
        std::os::unix::fs::symlink(dir.join("inside.txt"), dir.join("in-link")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let listed: Vec<String> = list(&dir).unwrap().into_iter().map(|e| e.name).collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, ["in-link", "inside.txt"], "{listed:?}");
        assert!(matches!(open(&dir, "out"), Err(OpenError::OutsideFolder)));
        assert!(matches!(open(&dir, "sub"), Err(OpenError::NotFound)));
        assert!(matches!(open(&dir, "nope"), Err(OpenError::NotFound)));
        assert_eq!(open(&dir, "in-link").expect("inside link").1.len(), 1);
        assert!(list(&dir.join("missing")).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_dir_all(&outside).ok();
    }
}
