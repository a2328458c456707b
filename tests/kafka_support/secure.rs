//! A broker of the tests' own with TLS and SASL listeners, and the
//! certificates it and its clients use, made here (a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate, and a
//! second CA that signed none of them). One broker serves every test of a
//! test binary: started on first use, stopped when the binary exits.
//!
//! Listeners: PLAINTEXT (to make topics and test data), SSL, SSL that
//! requires a client certificate (MTLS), SASL_SSL with SCRAM-SHA-256 and
//! SCRAM-SHA-512 users, SASL_PLAINTEXT with the same users. The
//! certificates are `tests/common/pki.rs`'s, with RSA keys.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::kafka_support::{broker_script, free_port};
use crate::pki::{authority, key_pem, leaf, pem, rsa_key};

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
        let (ca_key, other_key) = (rsa_key(), rsa_key());
        let ca = authority(&[("CN", "streamer test CA")], &ca_key);
        let other_ca = authority(&[("CN", "streamer unrelated CA")], &other_key);
        let (server_key, client_key) = (rsa_key(), rsa_key());
        let server = leaf(&[("CN", "127.0.0.1")], &server_key, (&ca, &ca_key), true);
        let client = leaf(
            &[("CN", "streamer test client")],
            &client_key,
            (&ca, &ca_key),
            false,
        );
        let write = |name: &str, parts: &[Vec<u8>]| {
            let path = dir.join(name);
            std::fs::write(&path, parts.concat()).expect("write a PEM file");
            path
        };
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
