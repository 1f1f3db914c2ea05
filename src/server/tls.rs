//! HTTPS: a certificate from PEM files, or a self-signed one made at start.
//!
//! Browsers only allow some APIs (the clipboard among them) in a secure context, which on any
//! address but localhost means HTTPS. rustls with the *ring* provider; no OpenSSL.

use std::path::PathBuf;

use axum_server::tls_rustls::RustlsConfig;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM certificate chain and private key files.
    Files {
        /// Certificate chain (PEM).
        cert: PathBuf,
        /// Private key (PEM).
        key: PathBuf,
    },
    /// A fresh self-signed certificate for these names (and the machine's host name, added
    /// when it is made).
    SelfSigned(Vec<String>),
}

/// A loaded TLS setup.
pub struct Tls {
    /// For the HTTPS server.
    pub config: RustlsConfig,
    /// SHA-256 fingerprint of the leaf certificate (`AA:BB:...`), to compare with the browser's.
    pub fingerprint: String,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot use the TLS certificate/key ({0}); give PEM files: --tls-cert fullchain.pem --tls-key privkey.pem")]
    Files(String),
    /// Certificate generation failed.
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
}

/// Loads or makes the certificate.
pub async fn load(source: &TlsSource) -> Result<Tls, TlsError> {
    // Both ring and (through other crates) aws-lc could be linked: name the provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert_pem, key_pem) = match source {
        TlsSource::Files { cert, key } => {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| TlsError::Files(format!("{}: {e}", p.display())))
            };
            (read(cert)?, read(key)?)
        }
        TlsSource::SelfSigned(names) => {
            let mut names = names.clone();
            names.extend(host_name().filter(|h| !names.contains(h)));
            let certified = rcgen::generate_simple_self_signed(names)
                .map_err(|e| TlsError::Generate(e.to_string()))?;
            (
                certified.cert.pem().into_bytes(),
                certified.signing_key.serialize_pem().into_bytes(),
            )
        }
    };
    let fingerprint = fingerprint(&cert_pem).ok_or_else(|| {
        TlsError::Files("no CERTIFICATE block found in the certificate file".into())
    })?;
    let config = RustlsConfig::from_pem(cert_pem, key_pem)
        .await
        .map_err(|e| TlsError::Files(e.to_string()))?;
    Ok(Tls {
        config,
        fingerprint,
    })
}

/// This machine's host name (`/etc/hostname`), unless it is empty or `localhost`.
fn host_name() -> Option<String> {
    let host = std::fs::read_to_string("/etc/hostname").ok()?;
    let host = host.trim();
    (!host.is_empty() && host != "localhost").then(|| host.to_string())
}

/// SHA-256 of the first certificate in a PEM bundle, as colon-separated hex.
pub fn fingerprint(pem: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = text[start..end].split_whitespace().collect();
    let der = base64_decode(&b64)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Some(
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = chunk.len();
        if n < 2 {
            return None;
        }
        out.push((acc >> 16) as u8);
        if n > 2 {
            out.push((acc >> 8) as u8);
        }
        if n > 3 {
            out.push(acc as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_of_known_values() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("aGVsbG8h").as_deref(), Some(&b"hello!"[..]));
        assert_eq!(base64_decode("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(base64_decode("a$=="), None);
    }

    #[tokio::test]
    async fn self_signed_certificate_loads_with_a_fingerprint() {
        let tls = load(&TlsSource::SelfSigned(vec!["localhost".into()]))
            .await
            .expect("self-signed");
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        assert!(tls
            .fingerprint
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':'));
    }

    #[tokio::test]
    async fn missing_files_say_what_to_give() {
        let err = load(&TlsSource::Files {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        })
        .await
        .err()
        .expect("must fail");
        assert!(err.to_string().contains("--tls-cert"), "{err}");
    }
}
