//! TLS for `streamer tcp` (rustls on ring): the server's certificate and
//! key (`--server-cert`, `--server-key`), optionally the CA that client
//! certificates must be signed by (`--client-ca`: mutual TLS), and the
//! handshake every connection goes through before its first frame, within
//! `--handshake-timeout`.
//!
//! A client that speaks plaintext to the TLS port is recognised by its
//! first byte (a TLS connection opens with a handshake record, 0x16) and
//! closed before anything it sent is read as data.

mod subject;

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::counters::CloseReason;
use super::Shared;

/// The first byte of every TLS connection: a handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// Peers remembered as warned about a plaintext connection; past this the
/// memory is emptied (a peer may then be warned about again).
const WARNED_PEERS: usize = 4096;

/// TLS for the TCP source: checked and loaded when the flags are.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The rustls configuration: certificate chain, key, client checks.
    pub config: Arc<ServerConfig>,
    /// A client must finish its handshake within this, else it is closed.
    pub handshake_timeout: Duration,
}

impl TlsOptions {
    /// Reads the PEM files: `cert` (the server's certificate chain, its own
    /// first), `key` (its private key), and `client_ca` (the CA
    /// certificates that client certificates must chain to; then every
    /// client must present one). The error names the flag and the file.
    pub fn load(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        handshake_timeout: Duration,
    ) -> Result<Self, String> {
        let chain = certificates("--server-cert", cert)?;
        let key_path = key;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| {
            // rustls-pki-types skips an encrypted key as an unknown item.
            let encrypted = std::fs::read(key_path)
                .is_ok_and(|pem| pem.windows(9).any(|word| word == b"ENCRYPTED"));
            if encrypted {
                format!(
                    "--server-key {}: the key is encrypted (it needs a passphrase), and streamer \
                     reads unencrypted keys only: decrypt it with `openssl pkey -in KEY -out \
                     PLAIN.key` and keep that file readable by this user only",
                    key_path.display()
                )
            } else {
                format!(
                    "--server-key {}: no private key read (PEM: PKCS#8, PKCS#1 or SEC1): {error}",
                    key_path.display()
                )
            }
        })?;
        let provider = Arc::new(ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for ca in certificates("--client-ca", path)? {
                    roots.add(ca).map_err(|error| {
                        format!(
                            "--client-ca {}: not a usable CA certificate: {error}",
                            path.display()
                        )
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|error| format!("--client-ca {}: {error}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|error| match error {
                rustls::Error::InconsistentKeys(_) => format!(
                    "--server-key {}: not the key of --server-cert {} (its first certificate)",
                    key_path.display(),
                    cert.display()
                ),
                error => format!("--server-cert {}: {error}", cert.display()),
            })?;
        Ok(TlsOptions {
            config: Arc::new(config),
            handshake_timeout,
        })
    }
}

/// Every certificate of a PEM file, at least one.
fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |error: &dyn std::fmt::Display| {
        format!(
            "{flag} {}: not a PEM certificate file: {error}",
            path.display()
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| unreadable(&error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(&error))?;
    if certs.is_empty() {
        return Err(format!(
            "{flag} {}: no certificate in it (PEM, `-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Why a client's handshake did not give a TLS connection.
#[derive(Debug)]
pub(super) enum Refused {
    /// Its first byte was not a TLS handshake record: plaintext.
    Plaintext,
    /// It did not finish within `--handshake-timeout`.
    Timeout,
    /// The handshake failed (no or a bad client certificate, no common
    /// protocol, the client left).
    Failed(io::Error),
}

impl Refused {
    /// The metric label.
    pub(super) fn label(&self) -> &'static str {
        match self {
            Refused::Plaintext => "plaintext",
            Refused::Timeout => "timeout",
            Refused::Failed(_) => "failed",
        }
    }
}

/// A client's TLS connection, and the subject of its certificate when it
/// presented one.
pub(super) type Accepted = (TlsStream<TcpStream>, Option<Box<str>>);

/// Runs the server's side of the handshake within `--handshake-timeout`.
pub(super) async fn handshake(tls: &TlsOptions, stream: TcpStream) -> Result<Accepted, Refused> {
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => {
                let left =
                    io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a handshake");
                return Err(Refused::Failed(left));
            }
            Ok(_) if first[0] != HANDSHAKE_RECORD => return Err(Refused::Plaintext),
            Ok(_) => {}
            Err(error) => return Err(Refused::Failed(error)),
        }
        let stream = TlsAcceptor::from(tls.config.clone())
            .accept(stream)
            .await
            .map_err(Refused::Failed)?;
        let subject = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(subject::of);
        Ok((stream, subject))
    };
    tokio::time::timeout(tls.handshake_timeout, handshake)
        .await
        .unwrap_or(Err(Refused::Timeout))
}

/// Counts and logs a handshake that failed. A plaintext client is warned
/// about once per address (it likely retries in a loop); the other
/// failures at most once a second, with the peer.
pub(super) fn refused(shared: &Shared, peer: SocketAddr, refused: Refused) {
    shared.counters.closed(CloseReason::TlsHandshake);
    shared.counters.tls_failed(refused.label());
    match refused {
        Refused::Plaintext => {
            if shared.warned_plaintext.first_time(peer.ip()) {
                crate::warn_limited!(
                    "refused {peer}: it speaks plaintext to this TLS port (nothing it sent is \
                     read; later plaintext connections from {} are refused without a warning)",
                    peer.ip()
                );
            }
        }
        Refused::Timeout => crate::warn_limited!(
            "refused {peer}: no TLS handshake within {:?} (--handshake-timeout)",
            shared
                .options
                .tls
                .as_ref()
                .map(|tls| tls.handshake_timeout)
                .unwrap_or_default()
        ),
        Refused::Failed(error) => {
            crate::warn_limited!("refused {peer}: the TLS handshake failed: {error}")
        }
    }
}

/// The peers already warned about speaking plaintext, so that a client
/// retrying in a loop fills no log.
#[derive(Debug, Default)]
pub(super) struct Warned {
    peers: Mutex<HashSet<IpAddr>>,
}

impl Warned {
    /// Whether `ip` is new here (and to be warned about), noting it.
    pub(super) fn first_time(&self, ip: IpAddr) -> bool {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if peers.len() >= WARNED_PEERS {
            peers.clear();
        }
        peers.insert(ip)
    }
}
