//! A broker of the tests' own with TLS and SASL listeners, and the
//! certificates it and its clients use, made here (a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate, and a
//! second CA that signed none of them). One broker serves every test of a
//! test binary: started on first use, stopped when the binary exits.
//!
//! Listeners: PLAINTEXT (to make topics and test data), SSL, SSL that
//! requires a client certificate (MTLS), SASL_SSL with SCRAM-SHA-256 and
//! SCRAM-SHA-512 users, SASL_PLAINTEXT with the same users.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};

use crate::kafka_support::broker_script;

/// The SCRAM-SHA-256 user.
pub const SCRAM_256_USER: &str = "alice";
/// Its password.
pub const SCRAM_256_PASSWORD: &str = "alice-pw-7c1e94";
/// The SCRAM-SHA-512 user.
pub const SCRAM_512_USER: &str = "bob";
/// Its password.
pub const SCRAM_512_PASSWORD: &str = "bob-pw-52d0aa";

/// The running secure broker and the files its clients need.
pub struct SecureBroker {
    /// PLAINTEXT listener.
    pub plaintext: String,
    /// SSL listener (no client certificate asked).
    pub ssl: String,
    /// SSL listener that requires a client certificate.
    pub mtls: String,
    /// SASL_SSL listener (SCRAM-SHA-256 and -512).
    pub sasl_ssl: String,
    /// SASL_PLAINTEXT listener (SCRAM-SHA-256 and -512).
    pub sasl_plaintext: String,
    /// The CA that signed the broker's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    /// The client certificate and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// `scripts/kafka-broker`'s environment for the shared broker, kept for
/// the stop at exit.
static BROKER_ENV: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// The shared broker, started on first use.
pub fn secure_broker() -> &'static SecureBroker {
    static BROKER: OnceLock<SecureBroker> = OnceLock::new();
    BROKER.get_or_init(start)
}

extern "C" fn stop_at_exit() {
    let env = BROKER_ENV.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _ = broker_script(&pairs, &["stop"]);
    if let Some((_, data)) = env.iter().find(|(k, _)| k == "STREAMER_KAFKA_DATA") {
        if let Some(parent) = Path::new(data).parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

fn start() -> SecureBroker {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let dir = tempfile::tempdir().expect("broker dir").keep();
    let certs = Certificates::write(&dir);
    let [plain, controller, ssl, mtls, sasl_ssl, sasl_plain] = [(); 6].map(|_| free_port());
    let listeners = format!(
        "PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},\
         SSL://127.0.0.1:{ssl},MTLS://127.0.0.1:{mtls},SASL_SSL://127.0.0.1:{sasl_ssl},\
         SASL_PLAINTEXT://127.0.0.1:{sasl_plain}"
    );
    let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
    let mut extra = vec![
        format!("listeners={listeners}"),
        format!("advertised.listeners={listeners}"),
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,\
         MTLS:SSL,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
            .to_string(),
        "ssl.keystore.type=PEM".into(),
        format!("ssl.keystore.location={}", certs.server_keystore.display()),
        "ssl.truststore.type=PEM".into(),
        format!("ssl.truststore.location={}", certs.ca.display()),
        "listener.name.mtls.ssl.client.auth=required".into(),
        "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512".into(),
    ];
    for listener in ["sasl_ssl", "sasl_plaintext"] {
        for mechanism in ["scram-sha-256", "scram-sha-512"] {
            extra.push(format!(
                "listener.name.{listener}.{mechanism}.sasl.jaas.config={scram}"
            ));
        }
    }
    let format_args = format!(
        "--add-scram\nSCRAM-SHA-256=[name={SCRAM_256_USER},password={SCRAM_256_PASSWORD}]\n\
         --add-scram\nSCRAM-SHA-512=[name={SCRAM_512_USER},password={SCRAM_512_PASSWORD}]"
    );
    let env = vec![
        ("KAFKA_PORT".to_string(), plain.to_string()),
        ("KAFKA_CONTROLLER_PORT".into(), controller.to_string()),
        (
            "STREAMER_KAFKA_DATA".into(),
            dir.join("broker").display().to_string(),
        ),
        ("KAFKA_EXTRA_CONFIG".into(), extra.join("\n")),
        ("KAFKA_FORMAT_ARGS".into(), format_args),
    ];
    *BROKER_ENV.lock().unwrap() = env.clone();
    // SAFETY: registers a plain function with no arguments; it runs once,
    // at exit, after the tests.
    unsafe { libc::atexit(stop_at_exit) };
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = broker_script(&pairs, &["start"]);
    assert!(
        output.status.success(),
        "the secure broker did not start:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let at = |port: u16| format!("127.0.0.1:{port}");
    SecureBroker {
        plaintext: at(plain),
        ssl: at(ssl),
        mtls: at(mtls),
        sasl_ssl: at(sasl_ssl),
        sasl_plaintext: at(sasl_plain),
        ca: certs.ca,
        other_ca: certs.other_ca,
        client_cert: certs.client_cert,
        client_key: certs.client_key,
    }
}

/// The PEM files, written into the broker's directory.
struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    /// The broker's key and certificate chain in one PEM file.
    server_keystore: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Certificates {
    fn write(dir: &Path) -> Self {
        let (ca_key, ca) = authority("streamer test CA");
        let (_, other_ca) = authority("streamer unrelated CA");
        let (server_key, server) = leaf("127.0.0.1", &ca_key, &ca, true);
        let (client_key, client) = leaf("streamer test client", &ca_key, &ca, false);
        let write = |name: &str, parts: &[Vec<u8>]| {
            let path = dir.join(name);
            std::fs::write(&path, parts.concat()).expect("write a PEM file");
            path
        };
        let pem = |cert: &X509| cert.to_pem().unwrap();
        let key_pem = |key: &PKey<Private>| key.private_key_to_pem_pkcs8().unwrap();
        Certificates {
            ca: write("ca.pem", &[pem(&ca)]),
            other_ca: write("other-ca.pem", &[pem(&other_ca)]),
            server_keystore: write(
                "server.pem",
                &[key_pem(&server_key), pem(&server), pem(&ca)],
            ),
            client_cert: write("client.pem", &[pem(&client)]),
            client_key: write("client.key", &[key_pem(&client_key)]),
        }
    }
}

fn new_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut number = BigNum::new().unwrap();
    number.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    number.to_asn1_integer().unwrap()
}

fn name(common_name: &str) -> openssl::x509::X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", common_name).unwrap();
    name.build()
}

/// A self-signed CA.
fn authority(common_name: &str) -> (PKey<Private>, X509) {
    let key = new_key();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&serial()).unwrap();
    cert.set_subject_name(&name(common_name)).unwrap();
    cert.set_issuer_name(&name(common_name)).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    cert.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    (key, cert.build())
}

/// A certificate signed by the CA: a server's (for 127.0.0.1 and
/// localhost) or a client's.
fn leaf(
    common_name: &str,
    ca_key: &PKey<Private>,
    ca: &X509,
    server: bool,
) -> (PKey<Private>, X509) {
    let key = new_key();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&serial()).unwrap();
    cert.set_subject_name(&name(common_name)).unwrap();
    cert.set_issuer_name(ca.subject_name()).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    cert.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut usage = ExtendedKeyUsage::new();
    if server {
        usage.server_auth();
        let names = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .dns("localhost")
            .build(&cert.x509v3_context(Some(ca), None))
            .unwrap();
        cert.append_extension(names).unwrap();
    } else {
        usage.client_auth();
    }
    cert.append_extension(usage.build().unwrap()).unwrap();
    cert.sign(ca_key, MessageDigest::sha256()).unwrap();
    (key, cert.build())
}
