//! File transfer over HTTP: `PUT /api/files/{name}` uploads into `--upload-dir`,
//! `GET /api/files` lists `--download-dir`, `GET /api/files/{name}` downloads one (with
//! `Range`). Behind the same token auth as every route (plus `Authorization: Bearer`);
//! view-only viewers get 403 for all three.
//!
//! Uploads stream to a hidden temporary file (never held in memory) and are renamed to a free
//! name when complete; a cut, refused (413) or failed (507 on a full disk) upload removes it.
//! Each viewer (its session cookie, else its address) has at most [`PER_VIEWER_UPLOADS`]
//! uploads at once. The pure parts live in [`names`] and [`range`], the file system in
//! [`store`].

pub mod names;
pub mod range;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures::StreamExt;

use super::auth::{self, Role};
use super::AppState;
use crate::lock::lock;
use range::RangeDecision;

/// Default `--max-upload`: 2 GiB.
pub const DEFAULT_MAX_UPLOAD: u64 = 2 << 30;
/// Uploads one viewer may run at once.
pub const PER_VIEWER_UPLOADS: usize = 4;
/// Uploads the server runs at once, all viewers together.
pub const TOTAL_UPLOADS: usize = 32;
/// Most of a refused upload's remaining body read (and discarded) before answering.
const DRAIN_BYTES: u64 = 64 << 20;
/// Longest time spent on that.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(3);
/// Bytes per chunk of a download body.
const READ_CHUNK: usize = 256 * 1024;

/// Where files go and come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// Uploads land here (created if missing).
    pub upload_dir: PathBuf,
    /// Downloads are listed and served from here.
    pub download_dir: PathBuf,
    /// Largest upload, in bytes.
    pub max_upload: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        let dir = store::default_dir();
        FilesConfig {
            upload_dir: dir.clone(),
            download_dir: dir,
            max_upload: DEFAULT_MAX_UPLOAD,
        }
    }
}

/// The file transfer's settings and the uploads running now.
#[derive(Debug, Default)]
pub struct Files {
    config: FilesConfig,
    active: Mutex<HashMap<String, usize>>,
}

impl Files {
    /// File transfer with `config`.
    pub fn new(config: FilesConfig) -> Self {
        Files {
            config,
            active: Mutex::default(),
        }
    }

    /// Takes an upload slot for `viewer`; `None` when it (or the server) has too many.
    fn begin(self: &Arc<Self>, viewer: String) -> Option<UploadSlot> {
        let mut active = lock(&self.active);
        let total: usize = active.values().sum();
        let mine = active.entry(viewer.clone()).or_default();
        if *mine >= PER_VIEWER_UPLOADS || total >= TOTAL_UPLOADS {
            if *mine == 0 {
                active.remove(&viewer);
            }
            return None;
        }
        *mine += 1;
        Some(UploadSlot {
            files: self.clone(),
            viewer,
        })
    }
}

/// One running upload's place in the limits; given back on drop.
struct UploadSlot {
    files: Arc<Files>,
    viewer: String,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut active = lock(&self.files.active);
        if let Some(n) = active.get_mut(&self.viewer) {
            *n -= 1;
            if *n == 0 {
                active.remove(&self.viewer);
            }
        }
    }
}

/// The routes (under the server's token auth).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/files", get(list))
        .route("/api/files/{name}", get(download).put(upload))
}

/// A refusal: the status and one line for the page.
fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        format!("{} {message}\n", status.as_u16()),
    )
        .into_response()
}

/// 403 for view-only viewers.
fn view_only(role: Option<Extension<Role>>) -> Option<Response> {
    match role.map(|Extension(r)| r) {
        Some(Role::Control) => None,
        _ => Some(refuse(
            StatusCode::FORBIDDEN,
            "Forbidden: view-only access cannot transfer files",
        )),
    }
}

async fn upload(
    State(state): State<AppState>,
    role: Option<Extension<Role>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refusal) = view_only(role) {
        return refusal;
    }
    let name = match names::check(&name) {
        Ok(n) => n.to_string(),
        Err(err) => return refuse(StatusCode::BAD_REQUEST, format!("Bad Request: {err}")),
    };
    let files = state.files.clone();
    let max = files.config.max_upload;
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Payload Too Large: files over {} are refused (--max-upload)",
                human_size(max)
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    let viewer = auth::cookie_value(&headers)
        .or_else(|| peer.map(|Extension(ConnectInfo(a))| a.ip().to_string()))
        .unwrap_or_default();
    let Some(_slot) = files.begin(viewer) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too Many Requests: at most {PER_VIEWER_UPLOADS} uploads at once; wait for one to finish"),
        );
    };
    let dir = &files.config.upload_dir;
    let mut upload = match store::Upload::create(dir).await {
        Ok(u) => u,
        Err(err) => return write_failed(&err, dir),
    };
    let mut stream = body.into_data_stream();
    if let Err(refusal) = receive(&mut upload, &mut stream, &name, max, dir).await {
        drop(upload); // the partial file goes now
        drain(&mut stream).await;
        return refusal;
    }
    let size = upload.written;
    if declared.is_some_and(|n| n != size) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Bad Request: the upload was cut off",
        );
    }
    match upload.commit(&name).await {
        Ok(saved) => created(&saved, size, dir),
        Err(err) => write_failed(&err, dir),
    }
}

/// Streams the request body into `upload`; a refusal (cut, over `max`, write error) as the
/// response to send.
async fn receive(
    upload: &mut store::Upload,
    stream: &mut axum::body::BodyDataStream,
    name: &str,
    max: u64,
    dir: &std::path::Path,
) -> Result<(), Response> {
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(err) => {
                tracing::info!(
                    "upload of {name:?} cut after {} bytes: {err}",
                    upload.written
                );
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: the upload was cut off",
                ));
            }
        };
        if upload.written + chunk.len() as u64 > max {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Payload Too Large: files over {} are refused (--max-upload)",
                    human_size(max)
                ),
            ));
        }
        if let Err(err) = upload.write(&chunk).await {
            return Err(write_failed(&err, dir));
        }
    }
    Ok(())
}

/// Reads and discards what is left of a refused upload, for at most [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`]: a client still sending when the connection closes may lose the answer (the
/// close resets the connection), so a short rest is taken in to let it read the refusal.
async fn drain(stream: &mut axum::body::BodyDataStream) {
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            left = left.saturating_sub(chunk.len() as u64);
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// 201 with the final name.
fn created(saved: &str, size: u64, dir: &std::path::Path) -> Response {
    tracing::info!("received {saved:?} ({size} bytes) in {}", dir.display());
    let location = format!("/api/files/{}", encode_path_segment(saved));
    let mut response = (
        StatusCode::CREATED,
        Json(serde_json::json!({ "name": saved, "size": size })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// 507 for a full disk, 500 for the rest, both saying which folder.
fn write_failed(err: &std::io::Error, dir: &std::path::Path) -> Response {
    if store::disk_full(err) {
        tracing::warn!("upload refused: {} is full", dir.display());
        return refuse(
            StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "Insufficient Storage: the disk of {} is full; nothing was kept",
                dir.display()
            ),
        );
    }
    tracing::warn!("cannot write an upload into {}: {err}", dir.display());
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "Internal Server Error: cannot write into {}: {err}",
            dir.display()
        ),
    )
}

async fn list(State(state): State<AppState>, role: Option<Extension<Role>>) -> Response {
    if let Some(refusal) = view_only(role) {
        return refusal;
    }
    let dir = state.files.config.download_dir.clone();
    match tokio::task::spawn_blocking(move || store::list(&dir)).await {
        Ok(Ok(entries)) => ([(header::CACHE_CONTROL, "no-store")], Json(entries)).into_response(),
        Ok(Err(err)) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Server Error: cannot list the download folder: {err}"),
        ),
        Err(err) => refuse(StatusCode::INTERNAL_SERVER_ERROR, err),
    }
}

async fn download(
    State(state): State<AppState>,
    role: Option<Extension<Role>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = view_only(role) {
        return refusal;
    }
    if let Err(err) = names::check(&name) {
        return refuse(StatusCode::BAD_REQUEST, format!("Bad Request: {err}"));
    }
    if !names::downloadable(&name) {
        return refuse(StatusCode::NOT_FOUND, "Not Found: no such file");
    }
    let dir = state.files.config.download_dir.clone();
    let opened = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || store::open(&dir, &name)).await
    };
    let (file, meta) = match opened {
        Ok(Ok(found)) => found,
        Ok(Err(store::OpenError::OutsideFolder)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "Forbidden: this file is a link to outside the download folder",
            )
        }
        Ok(Err(store::OpenError::NotFound)) => {
            return refuse(StatusCode::NOT_FOUND, "Not Found: no such file")
        }
        Ok(Err(err)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, err),
        Err(err) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, err),
    };
    send(file, &meta, &name, &headers).await
}

/// The response for an opened file: 200, 206 or 416 per the request's `Range`.
async fn send(
    file: std::fs::File,
    meta: &std::fs::Metadata,
    name: &str,
    headers: &HeaderMap,
) -> Response {
    let len = meta.len();
    let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
    let since = modified
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let etag = format!(
        "\"{len:x}-{:x}.{:x}\"",
        since.as_secs(),
        since.subsec_nanos()
    );
    let last_modified = httpdate::fmt_http_date(modified);
    let text = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    let decision = range::decide(
        text(header::RANGE),
        text(header::IF_RANGE),
        len,
        &etag,
        &last_modified,
    );
    let (status, start, count) = match decision {
        RangeDecision::Full => (StatusCode::OK, 0, len),
        RangeDecision::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeDecision::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                format!("416 Range Not Satisfiable: the file has {len} bytes\n"),
            )
                .into_response()
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        use tokio::io::AsyncSeekExt;
        if let Err(err) = file.seek(std::io::SeekFrom::Start(start)).await {
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, err);
        }
    }
    let body = Body::from_stream(read_stream(file, count));
    let mime = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    let mut set = |k, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, mime.to_string());
    set(header::CONTENT_LENGTH, count.to_string());
    set(
        header::CONTENT_DISPOSITION,
        names::content_disposition(name),
    );
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, etag);
    set(header::LAST_MODIFIED, last_modified);
    set(header::CACHE_CONTROL, "no-cache".into());
    // Whatever the file is, it is never run as a page of this origin.
    set(header::CONTENT_SECURITY_POLICY, "sandbox".into());
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + count - 1;
        set(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    response
}

/// `count` bytes of `file` from where it stands, in chunks.
fn read_stream(
    file: tokio::fs::File,
    count: u64,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures::stream::unfold((file, count), |(mut file, left)| async move {
        use tokio::io::AsyncReadExt;
        if left == 0 {
            return None;
        }
        let want = left.min(READ_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was sent",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(err) => Some((Err(err), (file, 0))),
        }
    })
}

/// A name as one URL path segment.
fn encode_path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `2 GiB`, `300 MiB`, `512 bytes`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
        if bytes >= size {
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_slots_are_bounded_per_viewer_and_given_back() {
        let files = Arc::new(Files::default());
        let a: Vec<_> = (0..PER_VIEWER_UPLOADS)
            .map(|_| files.begin("a".into()).expect("a slot"))
            .collect();
        assert!(
            files.begin("a".into()).is_none(),
            "over the per-viewer limit"
        );
        let b = files
            .begin("b".into())
            .expect("another viewer is not held up");
        drop(a);
        assert!(files.begin("a".into()).is_some());
        drop(b);
        assert!(lock(&files.active).is_empty());
    }

    #[test]
    fn sizes_and_segments_read_well() {
        assert_eq!(human_size(DEFAULT_MAX_UPLOAD), "2 GiB");
        assert_eq!(human_size(1536 << 10), "1.5 MiB");
        assert_eq!(human_size(100), "100 bytes");
        assert_eq!(encode_path_segment("a b/ü"), "a%20b%2F%C3%BC");
    }
}
