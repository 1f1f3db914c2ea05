//! The web page (`web/`), embedded in the binary at build time.
//!
//! Set `VNRIT_WEB_DIR` to serve the files from disk instead (for working on the page without
//! rebuilding).

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "web/"]
struct Web;

/// Serves `/` as `index.html` and other paths as the embedded file of that name.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if path.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = match std::env::var_os("VNRIT_WEB_DIR") {
        Some(dir) => std::fs::read(std::path::Path::new(&dir).join(path)).ok(),
        None => Web::get(path).map(|f| f.data.into_owned()),
    };
    match body {
        Some(bytes) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_string()),
                    (header::CACHE_CONTROL, "no-cache".to_string()),
                ],
                bytes,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// Total size in bytes of the embedded page (HTML, CSS, JS).
pub fn embedded_size() -> usize {
    Web::iter()
        .filter_map(|name| Web::get(&name).map(|f| f.data.len()))
        .sum()
}
