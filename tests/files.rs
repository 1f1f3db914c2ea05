//! File transfer against the real binary: a 200 MiB upload arrives byte-identical; names with
//! path components, dots, NUL or newline are refused and nothing lands outside the folder; a
//! second upload of a name gets a numbered one; a cut upload and one over `--max-upload` leave
//! nothing; a full disk (a 1 MiB tmpfs) gives 507 and leaves nothing; view-only gets 403; the
//! listing shows a file made on the server, which downloads byte-identical and resumes with
//! `Range`; a symlink out of the folder is neither listed nor sent; uploads per viewer are
//! bounded and the server keeps serving.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{serve_display, status_code};

/// A fresh, empty folder for one test (removed on drop).
struct Folder(PathBuf);

impl Folder {
    fn new(tag: &str) -> Folder {
        let dir = std::env::temp_dir().join(format!("vnrit-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test folder");
        Folder(dir)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }

    /// Every name in the folder, hidden ones included, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read folder")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bytes of a deterministic test file: position `i` holds a hash of `i` and `seed`.
fn pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(|i| {
            let x = ((i / 8) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> ((i % 8) * 8)) as u8
        })
        .collect()
}

/// A response: status, lower-cased head, body.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s
}

/// Reads one response (head, then a Content-Length body or up to EOF).
fn read_reply(s: TcpStream) -> Reply {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).expect("body");
        }
        None => {
            r.read_to_end(&mut body).ok();
        }
    }
    Reply {
        status: status_code(&head),
        head,
        body,
    }
}

/// `PUT /api/files/{segment}` with `auth` (a header line) and a body of `len` pattern bytes,
/// written in 1 MiB pieces.
fn put(port: u16, segment: &str, auth: &str, seed: u64, len: u64) -> Reply {
    let mut s = connect(port);
    write!(
        s,
        "PUT /api/files/{segment} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    let mut sent = 0u64;
    while sent < len {
        let n = (len - sent).min(1 << 20) as usize;
        if s.write_all(&pattern(seed, sent, n)).is_err() {
            break; // the server answered early (413) and closed
        }
        sent += n as u64;
    }
    read_reply(s)
}

fn get(port: u16, path: &str, extra: &str) -> Reply {
    let mut s = connect(port);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{BEARER}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("request");
    read_reply(s)
}

const BEARER: &str = "Authorization: Bearer tok";

/// Waits (bounded) until `check` holds.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Compares a file on disk with the pattern, a piece at a time.
fn same_as_pattern(path: &Path, seed: u64, len: u64) -> bool {
    let mut f = std::fs::File::open(path).expect("uploaded file");
    let mut offset = 0u64;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return offset == len;
        }
        if buf[..n] != pattern(seed, offset, n)[..] {
            return false;
        }
        offset += n as u64;
    }
}

#[test]
fn a_200_mib_upload_arrives_byte_identical_and_names_are_numbered() {
    let folder = Folder::new("big");
    let (_display, server) = serve_display(61, &["--token", "tok", "--upload-dir", folder.arg()]);
    let port = server.port();
    let len = 200u64 << 20;
    let started = Instant::now();
    let reply = put(port, "big%20file.bin", BEARER, 7, len);
    let took = started.elapsed();
    assert_eq!(reply.status, 201, "{}", reply.text());
    let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(json["name"], "big file.bin");
    assert_eq!(json["size"], len);
    assert_eq!(
        folder.names(),
        ["big file.bin"],
        "no temporary file is left"
    );
    assert!(same_as_pattern(&folder.0.join("big file.bin"), 7, len));
    eprintln!(
        "200 MiB upload took {took:?} ({:.0} MiB/s)",
        200.0 / took.as_secs_f64()
    );

    // The same name again: a new, numbered name; the first file is untouched.
    let again = put(port, "big%20file.bin", BEARER, 8, 1000);
    assert_eq!(again.status, 201, "{}", again.text());
    assert!(
        again.text().contains("\"big file (1).bin\""),
        "{}",
        again.text()
    );
    assert_eq!(
        again.header("location"),
        Some("/api/files/big%20file%20%281%29.bin")
    );
    assert!(same_as_pattern(&folder.0.join("big file.bin"), 7, len));
    assert!(same_as_pattern(&folder.0.join("big file (1).bin"), 8, 1000));
    // The page's own way in (the session cookie from ?token=) works too.
    let third = put(port, "big%20file.bin?token=tok", "X-Test: 1", 9, 10);
    assert_eq!(third.status, 201, "{}", third.text());
    assert!(third.text().contains("\"big file (2).bin\""));
}

#[test]
fn bad_names_are_refused_and_nothing_lands_outside_the_folder() {
    let root = Folder::new("names");
    let inside = root.0.join("inbox");
    let (_display, server) = serve_display(
        62,
        &[
            "--token",
            "tok",
            "--upload-dir",
            inside.to_str().expect("path"),
        ],
    );
    let port = server.port();
    for segment in [
        "..%2Fx",
        "a%2Fb",
        "%2E",
        ".",
        "..",
        "%2E%2E",
        "a%00b",
        "a%0Ab",
        "a%0Db",
        "a%5Cb",
        "%20",
        "%E2%80%AEtxt.exe",
    ] {
        let reply = put(port, segment, BEARER, 1, 100);
        assert_eq!(reply.status, 400, "{segment}: {}", reply.text());
        let line = reply.text();
        assert_eq!(line.lines().count(), 1, "one line: {line:?}");
        assert!(line.starts_with("400 Bad Request: "), "{line}");
    }
    // A raw path with dot segments does not reach the handler either way.
    let mut s = connect(port);
    write!(
        s,
        "PUT /api/files/../x HTTP/1.1\r\nHost: a\r\n{BEARER}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    )
    .expect("write");
    let reply = read_reply(s);
    assert!(reply.status >= 400, "{}", reply.status);
    // Nothing was written, inside (not even created) or beside it.
    assert!(root.names().is_empty(), "{:?}", root.names());
    // A good name still works (and creates the missing folder).
    let reply = put(port, "ok.txt", BEARER, 1, 100);
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(inside.join("ok.txt").is_file());
}

#[test]
fn cut_or_oversized_uploads_leave_nothing_and_uploads_are_bounded() {
    let folder = Folder::new("cut");
    let (_display, server) = serve_display(
        63,
        &[
            "--token",
            "tok",
            "--upload-dir",
            folder.arg(),
            "--max-upload",
            "8M",
        ],
    );
    let port = server.port();
    // Cut after half: the temporary file exists while it arrives, and is gone once cut.
    let mut s = connect(port);
    write!(
        s,
        "PUT /api/files/cut.bin HTTP/1.1\r\nHost: a\r\n{BEARER}\r\nContent-Length: {}\r\n\r\n",
        6 << 20
    )
    .expect("head");
    s.write_all(&pattern(1, 0, 3 << 20)).expect("half");
    wait_for("the temporary file", || {
        folder
            .names()
            .iter()
            .any(|n| n.starts_with(".vnrit-upload-"))
    });
    drop(s);
    wait_for("the cut upload to be removed", || folder.names().is_empty());

    // Over --max-upload, declared: 413 at once.
    let reply = put(port, "big.bin", BEARER, 1, 9 << 20);
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(reply.text().contains("8 MiB"), "{}", reply.text());
    // Over --max-upload, chunked (no length given): 413 once it passes the limit.
    let mut s = connect(port);
    write!(
        s,
        "PUT /api/files/chunked.bin HTTP/1.1\r\nHost: a\r\n{BEARER}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .expect("head");
    for i in 0..9u64 {
        let piece = pattern(2, i << 20, 1 << 20);
        if write!(s, "{:x}\r\n", piece.len()).is_err()
            || s.write_all(&piece).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let reply = read_reply(s);
    assert_eq!(reply.status, 413, "{}", reply.text());
    wait_for("no file after 413", || folder.names().is_empty());

    // Four uploads at once per viewer; the fifth is told to wait, others are still served.
    let open: Vec<TcpStream> = (0..4)
        .map(|i| {
            let mut s = connect(port);
            write!(
                s,
                "PUT /api/files/slow{i} HTTP/1.1\r\nHost: a\r\n{BEARER}\r\nContent-Length: 100\r\n\r\nx"
            )
            .expect("head");
            s
        })
        .collect();
    wait_for("four uploads running", || {
        folder
            .names()
            .iter()
            .filter(|n| n.starts_with(".vnrit-upload-"))
            .count()
            == 4
    });
    let reply = put(port, "fifth", BEARER, 1, 10);
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(get(port, "/api/files", "").status, 200);
    drop(open);
    wait_for("the slow uploads removed", || folder.names().is_empty());
    assert_eq!(put(port, "fifth", BEARER, 1, 10).status, 201);
}

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop.
struct Tmpfs(Folder);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let folder = Folder::new("tmpfs");
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                folder.arg(),
            ])
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount -t tmpfs failed (this test needs root)"
        );
        Tmpfs(folder)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.0 .0)
            .status();
    }
}

#[test]
fn a_full_disk_gives_507_and_keeps_nothing() {
    let disk = Tmpfs::mount("1m");
    let (_display, server) = serve_display(64, &["--token", "tok", "--upload-dir", disk.0.arg()]);
    let port = server.port();
    let reply = put(port, "too-big.bin", BEARER, 3, 3 << 20);
    assert_eq!(reply.status, 507, "{}", reply.text());
    assert!(reply.text().contains("is full"), "{}", reply.text());
    wait_for("no partial file", || disk.0.names().is_empty());
    // A file that fits still goes in.
    let reply = put(port, "small.bin", BEARER, 3, 100 << 10);
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(disk.0.names(), ["small.bin"]);
}

#[test]
fn listing_downloads_ranges_links_and_view_only() {
    let folder = Folder::new("down");
    let outside = Folder::new("outside");
    let (_display, server) = serve_display(
        65,
        &[
            "--token",
            "tok",
            "--view-token",
            "look",
            "--download-dir",
            folder.arg(),
            "--upload-dir",
            outside.arg(),
        ],
    );
    let port = server.port();
    let len = 3_000_000u64;
    std::fs::write(folder.0.join("report.pdf"), pattern(5, 0, len as usize)).expect("file");
    std::fs::write(outside.0.join("secret"), "s").expect("secret");
    std::os::unix::fs::symlink(outside.0.join("secret"), folder.0.join("link")).expect("link");
    std::fs::write(folder.0.join(".hidden"), "h").expect("hidden");

    let list = get(port, "/api/files", "");
    assert_eq!(list.status, 200, "{}", list.text());
    let entries: serde_json::Value = serde_json::from_slice(&list.body).expect("JSON");
    let entries = entries.as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["name"], "report.pdf");
    assert_eq!(entries[0]["size"], len);
    assert!(entries[0]["modified"].as_u64().unwrap_or(0) > 1_700_000_000);

    let whole = get(port, "/api/files/report.pdf", "");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, pattern(5, 0, len as usize), "byte-identical");
    assert_eq!(
        whole.header("content-disposition"),
        Some("attachment; filename=\"report.pdf\"; filename*=utf-8''report.pdf")
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").expect("an ETag").to_string();

    // Resume from the middle, as a browser does after a cut download.
    let part = get(
        port,
        "/api/files/report.pdf",
        &format!("Range: bytes=1000000-\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1000000-{}/{len}", len - 1).as_str())
    );
    assert_eq!(part.body, pattern(5, 1_000_000, (len - 1_000_000) as usize));
    // A stale If-Range gets the whole file; a range past the end gets 416.
    let stale = get(
        port,
        "/api/files/report.pdf",
        "Range: bytes=10-\r\nIf-Range: \"x\"\r\n",
    );
    assert_eq!((stale.status, stale.body.len() as u64), (200, len));
    let past = get(
        port,
        "/api/files/report.pdf",
        &format!("Range: bytes={len}-\r\n"),
    );
    assert_eq!(past.status, 416);

    // Links out of the folder, hidden files and paths are not sent.
    assert_eq!(get(port, "/api/files/link", "").status, 403);
    assert_eq!(get(port, "/api/files/.hidden", "").status, 404);
    assert_eq!(
        get(port, "/api/files/..%2F..%2Fetc%2Fpasswd", "").status,
        400
    );
    assert_eq!(get(port, "/api/files/missing", "").status, 404);

    // View-only: no listing, no download, no upload; nothing written.
    let look = "Authorization: Bearer look";
    for reply in [
        get(port, "/api/files?token=look", "X: y\r\n"),
        get(port, "/api/files/report.pdf?token=look", ""),
        put(port, "v.txt", look, 1, 10),
    ] {
        assert_eq!(reply.status, 403, "{}", reply.text());
        assert!(reply.text().contains("view-only"), "{}", reply.text());
    }
    assert_eq!(outside.names(), ["secret"]);
    // No token at all: 401.
    let mut s = connect(port);
    write!(
        s,
        "GET /api/files HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .expect("w");
    assert_eq!(read_reply(s).status, 401);
}
