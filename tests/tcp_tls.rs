//! `streamer tcp` over TLS (issue 14): `--server-cert`/`--server-key`,
//! mutual TLS with `--client-ca` and the certificate's subject in
//! `--origin`, plaintext clients refused and warned about once per peer,
//! and `--handshake-timeout`. The certificates are made at run time with
//! OpenSSL; the clients are OpenSSL's, the server rustls: the real binary,
//! real sockets, waits on log lines and scrapes with a deadline.

mod common;
#[path = "common/pki.rs"]
mod pki;
mod tcp_server;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Dir;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream};
use openssl::x509::X509;
use pki::{authority, ec_key as key, key_pem, leaf, pem};
use tcp_server::{metric, scrape, wait_for_metric, Server};

/// The PEM files of one test: a CA, the server's chain and key, a client
/// certificate from that CA, one whose subject's values hold RFC 4514's
/// special characters, and one from another CA.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client: (PathBuf, PathBuf),
    forged: (PathBuf, PathBuf),
    stranger: (PathBuf, PathBuf),
}

impl Pki {
    fn new(dir: &Dir) -> Pki {
        let write = |name: &str, bytes: Vec<u8>| {
            let path = dir.path(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let (ca_key, other_key) = (key(), key());
        let ca = authority(&[("CN", "streamer test CA")], &ca_key);
        let other = authority(&[("CN", "some other CA")], &other_key);
        let leaf = |subject: &[(&str, &str)], issuer: (&X509, &PKey<Private>), server, name| {
            let key = key();
            let cert = leaf(subject, &key, issuer, server);
            let cert_path = write(&format!("{name}.pem"), pem(&cert));
            let key_path = write(&format!("{name}.key"), key_pem(&key));
            (cert_path, key_path, cert)
        };
        let (_, server_key, server) = leaf(&[("CN", "localhost")], (&ca, &ca_key), true, "server");
        // The chain, the server's own certificate first.
        let chain = [pem(&server), pem(&ca)].concat();
        let (client_cert, client_key, _) = leaf(
            &[("O", "Acme"), ("CN", "sensor-7")],
            (&ca, &ca_key),
            false,
            "client",
        );
        // Values that would read as more attributes, unescaped.
        let (forged_cert, forged_key, _) = leaf(
            &[("O", "Acme+OU=ops"), ("CN", "evil,CN=admin")],
            (&ca, &ca_key),
            false,
            "forged",
        );
        let (stranger_cert, stranger_key, _) = leaf(
            &[("CN", "stranger")],
            (&other, &other_key),
            false,
            "stranger",
        );
        Pki {
            ca: write("ca.pem", pem(&ca)),
            server_cert: write("chain.pem", chain),
            server_key,
            client: (client_cert.into(), client_key.into()),
            forged: (forged_cert.into(), forged_key.into()),
            stranger: (stranger_cert.into(), stranger_key.into()),
        }
    }

    /// The flags of a TLS server.
    fn server_flags(&self) -> Vec<&str> {
        vec![
            "--server-cert",
            &self.server_cert,
            "--server-key",
            &self.server_key,
        ]
    }
}

/// A TLS connection to `server`, trusting `ca`, with `identity` (a
/// certificate and its key) when given.
fn tls_connect(
    server: &Server,
    ca: &str,
    identity: Option<&(PathBuf, PathBuf)>,
) -> Result<SslStream<TcpStream>, String> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    builder.set_ca_file(ca).unwrap();
    if let Some((cert, key)) = identity {
        builder.set_certificate_chain_file(cert).unwrap();
        builder.set_private_key_file(key, SslFiletype::PEM).unwrap();
    }
    builder
        .build()
        .connect("localhost", client(server))
        .map_err(|error| error.to_string())
}

/// Sends `text` and closes the TLS session properly (close_notify).
fn send_and_close(mut stream: SslStream<TcpStream>, text: &str) {
    stream.write_all(text.as_bytes()).unwrap();
    stream.shutdown().unwrap();
    let _ = stream.get_mut().shutdown(std::net::Shutdown::Write);
}

/// Reads until the server closes the connection (or resets it); fails
/// the test when it stays open past `within` (the socket's read timeout,
/// set by `client`).
fn closed_within(stream: &mut impl Read, within: Duration) {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("still open after {within:?}")
            }
            Err(_) => return,
        }
        assert!(start.elapsed() < within, "still open after {within:?}");
    }
}

/// A plain TCP connection to `server`, whose reads give up after 10 s.
fn client(server: &Server) -> TcpStream {
    let stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn a_tls_client_is_served_with_its_certificate_subject_in_the_origin() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let mut args = pki.server_flags();
    args.extend(["--client-ca", &pki.ca, "--origin", "-v"]);
    let mut server = Server::start(&args);
    let stream = tls_connect(&server, &pki.ca, Some(&pki.client)).unwrap();
    let peer = stream.get_ref().local_addr().unwrap();
    send_and_close(stream, "one\ntwo");
    server
        .stderr
        .wait_for("conn=1}: connected over TLS as O=Acme,CN=sensor-7");
    server
        .stderr
        .wait_for("conn=1}: closed by the client after 2 frames");
    assert!(server.stop().success());
    let origin = |record: u64| {
        format!(
            r#""_origin":{{"peer":"{peer}","conn":1,"subject":"O=Acme,CN=sensor-7","record":{record}}}"#
        )
    };
    assert_eq!(
        server.stdout.drain(),
        [
            format!(r#"{{"message":"one",{}}}"#, origin(1)),
            format!(r#"{{"message":"two",{}}}"#, origin(2)),
        ]
    );
}

#[test]
fn a_subject_whose_values_hold_separators_is_escaped_in_the_origin() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let mut args = pki.server_flags();
    args.extend(["--client-ca", &pki.ca, "--origin"]);
    let mut server = Server::start(&args);
    let stream = tls_connect(&server, &pki.ca, Some(&pki.forged)).unwrap();
    let peer = stream.get_ref().local_addr().unwrap();
    send_and_close(stream, "hi\n");
    // RFC 4514: each ',' and '+' inside a value escaped, so no value can
    // pass for another attribute (CN=admin) or RDN (OU=ops).
    let subject = r#"O=Acme\\+OU=ops,CN=evil\\,CN=admin"#;
    assert_eq!(
        server.stdout.wait_for("hi"),
        format!(
            r#"{{"message":"hi","_origin":{{"peer":"{peer}","conn":1,"subject":"{subject}","record":1}}}}"#
        )
    );
    assert!(server.stop().success());
}

#[test]
fn a_tls_stream_cut_without_close_notify_is_said_and_its_last_record_rejected() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let dead = dir.path("dead.jsonl");
    let mut args = pki.server_flags();
    args.extend(["--dead-letter", &dead]);
    let mut server = Server::start(&args);
    let mut stream = tls_connect(&server, &pki.ca, None).unwrap();
    let peer = stream.get_ref().local_addr().unwrap();
    stream.write_all(b"one\ntwo\npart").unwrap();
    // The TCP stream ends with no TLS close_notify before it.
    stream
        .get_ref()
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    server.stderr.wait_for(&format!(
        "tcp_conn{{peer={peer} conn=1}}: connection closed without TLS close_notify: the last \
         record may be cut; its unfinished record 3 (4 bytes) rejected as cut, never written"
    ));
    drop(stream);
    let reason = "connection closed without TLS close_notify: the last record may be cut";
    // In the file once the connection has ended, the server running on
    // (no later batch carries it out).
    let expected = format!(
        "{{\"origin\":{{\"peer\":\"{peer}\",\"conn\":1,\"record\":3}},\"reason\":\"{reason}\",\
             \"raw\":\"part\"}}\n"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&dead).unwrap() != expected {
        assert!(Instant::now() < deadline, "no dead letter while running");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.stop().code(), Some(3), "a record was rejected");
    assert_eq!(
        server.stdout.drain(),
        [r#"{"message":"one"}"#, r#"{"message":"two"}"#]
    );
    let log = server.stderr.drain();
    assert!(
        !log.iter().any(|line| line.contains("rejected 127.0.0.1")),
        "{log:#?}"
    );
}

#[test]
fn without_client_ca_any_tls_client_is_served_and_has_no_subject() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let mut args = pki.server_flags();
    args.push("--origin");
    let mut server = Server::start(&args);
    let stream = tls_connect(&server, &pki.ca, None).unwrap();
    let peer = stream.get_ref().local_addr().unwrap();
    send_and_close(stream, "hello\n");
    assert_eq!(
        server.stdout.wait_for("hello"),
        format!(r#"{{"message":"hello","_origin":{{"peer":"{peer}","conn":1,"record":1}}}}"#)
    );
    assert!(server.stop().success());
}

#[test]
fn clients_without_a_valid_certificate_are_refused_and_logged_with_their_address() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let cases = [
        (None, "the TLS handshake failed: peer sent no certificates"),
        (
            Some(&pki.stranger),
            "the TLS handshake failed: invalid peer certificate: UnknownIssuer",
        ),
    ];
    for (identity, logged) in cases {
        let mut args = pki.server_flags();
        args.extend(["--client-ca", &pki.ca, "--metrics", "127.0.0.1:0"]);
        let mut server = Server::start(&args);
        let metrics = server.metrics_addr();
        // With TLS 1.3 the client's side may finish before the server has
        // checked its certificate: what it sends then must not be read.
        let mut stream = client(&server);
        let peer = stream.local_addr().unwrap();
        let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
        builder.set_ca_file(&pki.ca).unwrap();
        if let Some((cert, key)) = identity {
            builder.set_certificate_chain_file(cert).unwrap();
            builder.set_private_key_file(key, SslFiletype::PEM).unwrap();
        }
        if let Ok(mut tls) = builder
            .build()
            .connect("localhost", stream.try_clone().unwrap())
        {
            let _ = tls.write_all(b"must not be read\n");
            closed_within(&mut tls, Duration::from_secs(10));
        }
        closed_within(&mut stream, Duration::from_secs(10));
        let scraped = wait_for_metric(
            &metrics,
            "streamer_tls_handshake_failures_total{reason=\"failed\"}",
            1.0,
        );
        assert_eq!(
            metric(
                &scraped,
                "streamer_tcp_connections_closed_total{reason=\"tls_handshake\"}"
            ),
            Some(1.0)
        );
        server.stderr.wait_for(&format!("refused {peer}: {logged}"));
        assert!(server.stop().success());
        assert!(server.stdout.drain().is_empty());
    }
}

#[test]
fn plaintext_clients_are_refused_unread_and_warned_about_once_per_peer() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let mut args = pki.server_flags();
    args.extend(["--metrics", "127.0.0.1:0"]);
    let mut server = Server::start(&args);
    let metrics = server.metrics_addr();
    for _ in 0..3 {
        let mut plain = client(&server);
        plain.write_all(b"{\"plain\":\"text\"}\n").unwrap();
        closed_within(&mut plain, Duration::from_secs(10));
    }
    wait_for_metric(
        &metrics,
        "streamer_tls_handshake_failures_total{reason=\"plaintext\"}",
        3.0,
    );
    // A TLS client still gets in after them.
    let stream = tls_connect(&server, &pki.ca, None).unwrap();
    send_and_close(stream, "after\n");
    server.stdout.wait_for("after");
    assert!(server.stop().success());
    assert_eq!(server.stdout.drain(), [r#"{"message":"after"}"#]);
    let log = server.stderr.drain();
    let warnings: Vec<_> = log
        .iter()
        .filter(|line| line.contains("speaks plaintext to this TLS port"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    // Not one a second: once for the peer, none held back for later.
    assert!(
        !log.iter().any(|line| line.contains("were held back")),
        "{log:?}"
    );
    assert!(
        warnings[0].contains("refused 127.0.0.1:")
            && warnings[0].contains(
                "later plaintext connections from 127.0.0.1 are refused without a warning"
            ),
        "{}",
        warnings[0]
    );
}

#[test]
fn a_silent_client_is_closed_at_the_handshake_timeout_and_frees_its_slot() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let mut args = pki.server_flags();
    args.extend([
        "--handshake-timeout",
        "500ms",
        "--max-connections",
        "1",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut server = Server::start(&args);
    let metrics = server.metrics_addr();
    let mut silent = client(&server);
    wait_for_metric(&metrics, "streamer_tcp_connections_open", 1.0);
    // The only slot is the silent client's until its timeout: this one
    // waits in the backlog, then is served.
    let waiting = std::thread::spawn({
        let (addr, ca) = (server.addr, pki.ca.clone());
        move || {
            let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
            builder.set_ca_file(Path::new(&ca)).unwrap();
            let stream = builder
                .build()
                .connect("localhost", TcpStream::connect(addr).unwrap())
                .unwrap();
            send_and_close(stream, "served\n");
        }
    });
    closed_within(&mut silent, Duration::from_secs(10));
    waiting.join().unwrap();
    server.stdout.wait_for("served");
    let scraped = scrape(&metrics);
    assert_eq!(
        metric(
            &scraped,
            "streamer_tls_handshake_failures_total{reason=\"timeout\"}"
        ),
        Some(1.0)
    );
    server
        .stderr
        .wait_for("no TLS handshake within 500ms (--handshake-timeout)");
    assert!(server.stop().success());
}

#[test]
fn unusable_tls_files_fail_the_run_naming_the_flag_and_file() {
    let dir = Dir::new();
    let pki = Pki::new(&dir);
    let not_pem = dir.file("not.pem", "hello\n");
    let encrypted = key()
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret")
        .unwrap();
    let encrypted = dir.file("encrypted.key", std::str::from_utf8(&encrypted).unwrap());
    let cases: [(&[&str], String); 4] = [
        (
            &["--server-cert", &not_pem, "--server-key", &pki.server_key],
            format!("streamer: error: --server-cert {not_pem}: no certificate in it (PEM, `-----BEGIN CERTIFICATE-----`)"),
        ),
        (
            &["--server-cert", &pki.server_cert, "--server-key", &not_pem],
            format!("streamer: error: --server-key {not_pem}: no private key read (PEM: PKCS#8, PKCS#1 or SEC1): no items found"),
        ),
        (
            &["--server-cert", &pki.server_cert, "--server-key", &encrypted],
            format!(
                "streamer: error: --server-key {encrypted}: the key is encrypted (it needs a \
                 passphrase), and streamer reads unencrypted keys only: decrypt it with `openssl \
                 pkey -in KEY -out PLAIN.key` and keep that file readable by this user only"
            ),
        ),
        (
            // The CA's certificate does not go with the server's key.
            &["--server-cert", &pki.ca, "--server-key", &pki.server_key],
            format!(
                "streamer: error: --server-key {}: not the key of --server-cert {} (its first certificate)",
                pki.server_key, pki.ca
            ),
        ),
    ];
    for (args, expected) in cases {
        let run = common::run(&[&["tcp", "--bind", "127.0.0.1:0"], args].concat());
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr.lines().next(),
            Some(expected.as_str()),
            "{args:?}"
        );
    }
    let run = common::run(&["tcp", "--server-cert", &pki.server_cert]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--server-key <FILE>"), "{}", run.stderr);
}
