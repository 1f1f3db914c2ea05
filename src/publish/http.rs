//! A small HTTP/1.1 client for WHIP: one request per connection (a publish makes a handful of
//! requests in its lifetime), over plain TCP or TLS checked against the system's trusted roots.
//!
//! Built on hyper's connection-level client (already in the tree through axum) and
//! tokio-rustls with the `ring` provider the server side uses, so no second HTTP or TLS stack.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

/// Largest response body read (an SDP answer is a few kB).
const MAX_BODY: usize = 1 << 20;

/// What can go wrong with one request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL has no host, or a scheme other than http/https.
    #[error("`{0}` is not an http:// or https:// URL with a host")]
    BadUrl(String),
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}; check that the WHIP server runs and the URL's host and port")]
    Connect {
        /// host:port tried.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS client could not be set up.
    #[error("cannot set up TLS for WHIP: {0}")]
    TlsSetup(String),
    /// The TLS handshake failed (certificate not trusted, wrong name, ...).
    #[error("TLS with {host} failed: {source}; check the server's certificate (it must be trusted by this system)")]
    Tls {
        /// The server name.
        host: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP error talking to {host}: {source}")]
    Http {
        /// The server name.
        host: String,
        /// The cause.
        source: hyper::Error,
    },
    /// The response body was too large or unreadable.
    #[error("the response from {0} could not be read (or is larger than 1 MB)")]
    Body(String),
    /// No answer in time.
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

/// One response: status, the headers WHIP uses, and the body as text.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The `Location` header, as sent (may be relative).
    pub location: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body (lossy UTF-8).
    pub body: String,
}

/// A client: the TLS settings (system roots) and a per-request time limit.
#[derive(Clone)]
pub struct Client {
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
    timeout: Duration,
}

impl Client {
    /// A client trusting the system's CA certificates, each request bounded by `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, HttpError> {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            tracing::debug!("skipping a system CA certificate: {err}");
        }
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::debug!("no system CA certificates found: https:// WHIP URLs will fail");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| HttpError::TlsSetup(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            tls: Arc::new(tls),
            timeout,
        })
    }

    /// Sends one request with an optional bearer `token` and body, and reads the response.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Result<Response, HttpError> {
        let host = url.host_str().unwrap_or_default().to_string();
        tokio::time::timeout(self.timeout, self.send_inner(method, url, token, body))
            .await
            .map_err(|_| HttpError::Timeout(host, self.timeout))?
    }

    async fn send_inner(
        &self,
        method: Method,
        url: &Url,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Result<Response, HttpError> {
        let bad = || HttpError::BadUrl(super::redact(url));
        let host = url.host_str().ok_or_else(bad)?.to_string();
        let port = url.port_or_known_default().ok_or_else(bad)?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &authority);
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| bad())?;
            builder = builder.header(AUTHORIZATION, value);
        }
        let payload = match body {
            Some((content_type, text)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Bytes::from(text)
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(payload)).map_err(|_| bad())?;

        let tcp_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((tcp_host, port))
            .await
            .map_err(|source| HttpError::Connect {
                addr: format!("{tcp_host}:{port}"),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        match url.scheme() {
            "http" => exchange(tcp, request, &host).await,
            "https" => {
                let name =
                    tokio_rustls::rustls::pki_types::ServerName::try_from(tcp_host.to_string())
                        .map_err(|_| bad())?;
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|source| HttpError::Tls {
                        host: host.clone(),
                        source,
                    })?;
                exchange(tls, request, &host).await
            }
            _ => Err(bad()),
        }
    }
}

/// One HTTP/1.1 exchange on an open stream.
async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    host: &str,
) -> Result<Response, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| HttpError::Http {
        host: host.to_string(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let driver = tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!("WHIP HTTP connection ended: {err}");
        }
    });
    let result = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let location = header(LOCATION);
        let content_type = header(CONTENT_TYPE);
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|_| HttpError::Body(host.to_string()))?
            .to_bytes();
        Ok(Response {
            status,
            location,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}
