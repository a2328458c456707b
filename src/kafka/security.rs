//! TLS and SASL for every Kafka client of a run (`--tls`, `--tls-ca`,
//! `--tls-cert`/`--tls-key`, `--sasl-mechanism`, `--sasl-user` and the
//! password from `$STREAMER_SASL_PASSWORD` or `--sasl-password-file`):
//! the librdkafka properties they stand for, put before the user's `-X`
//! settings so that `-X` still overrides or extends them. Also the secrets'
//! masking: no value of a secret setting reaches our log or an error.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Mutex;

/// How the clients prove who they are and check the brokers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// TLS to the brokers (`--tls`, implied by the other `--tls-*` flags).
    pub tls: Option<Tls>,
    /// A SASL login (`--sasl-mechanism`, `--sasl-user`).
    pub sasl: Option<Sasl>,
}

/// The TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// The CA certificates (PEM) that sign the brokers' certificates;
    /// `None`: the system's (`--tls-ca`).
    pub ca: Option<PathBuf>,
    /// The client's own certificate and key, for mutual TLS.
    pub client: Option<ClientCert>,
}

/// A client certificate and its private key, both PEM files
/// (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate (chain).
    pub cert: PathBuf,
    /// Its private key, unencrypted.
    pub key: PathBuf,
}

/// A SASL login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// How the password is checked.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub user: String,
    /// The password (never from a flag value, where `ps` would show it).
    pub password: Secret,
}

/// The SASL mechanisms librdkafka speaks without extra system libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    /// The password itself, sent to the broker (use it with TLS).
    #[value(name = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256: the password never crosses the wire.
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name Kafka and librdkafka use.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A secret value: shown as `[redacted]` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the client configuration only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Security {
    /// librdkafka's `security.protocol` for these settings.
    pub fn protocol(&self) -> &'static str {
        match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        }
    }

    /// The librdkafka properties these settings stand for; none when
    /// nothing is set, so `-X security.protocol=...` alone still works.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut properties = Vec::new();
        if self.tls.is_none() && self.sasl.is_none() {
            return properties;
        }
        let mut set = |key: &str, value: &str| properties.push((key.into(), value.into()));
        set("security.protocol", self.protocol());
        if let Some(tls) = &self.tls {
            match &tls.ca {
                Some(ca) => set("ssl.ca.location", &ca.display().to_string()),
                // Our OpenSSL is built in: its compiled-in CA path is no
                // system's, so librdkafka looks in the usual places.
                None => set("ssl.ca.location", "probe"),
            }
            if let Some(client) = &tls.client {
                set(
                    "ssl.certificate.location",
                    &client.cert.display().to_string(),
                );
                set("ssl.key.location", &client.key.display().to_string());
            }
        }
        if let Some(sasl) = &self.sasl {
            set("sasl.mechanism", sasl.mechanism.name());
            set("sasl.username", &sasl.user);
            set("sasl.password", sasl.password.expose());
        }
        properties
    }
}

/// librdkafka properties whose values are secrets: never logged.
pub fn is_secret_key(key: &str) -> bool {
    matches!(
        key,
        "sasl.password"
            | "ssl.key.password"
            | "ssl.key.pem"
            | "ssl_key"
            | "ssl.keystore.password"
            | "sasl.oauthbearer.client.secret"
            | "sasl.oauthbearer.config"
            | "sasl.oauthbearer.assertion.private.key.passphrase"
            | "sasl.oauthbearer.assertion.private.key.pem"
    )
}

/// Every secret value a client of this process was configured with: a
/// process-wide list, since librdkafka's log callback knows no config.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Secret values shorter than this are not masked in our log lines.
const MIN_MASKED: usize = 6;

/// Notes the secret values among `settings`, for [`mask`].
pub(crate) fn remember_secrets<'a>(settings: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut secrets = SECRETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (key, value) in settings {
        // A short "secret" (`-X sasl.password=wrong`) would blank out
        // ordinary words of the log; librdkafka still redacts it in its
        // configuration dump.
        if is_secret_key(key)
            && value.len() >= MIN_MASKED
            && !secrets.iter().any(|known| known == value)
        {
            secrets.push(value.to_string());
        }
    }
}

/// `text` with every remembered secret replaced by `[redacted]`.
pub(crate) fn mask(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut text = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if text.contains(secret.as_str()) {
            text = Cow::Owned(text.replace(secret.as_str(), "[redacted]"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(security: &Security) -> Vec<(String, String)> {
        security.properties()
    }

    #[test]
    fn nothing_set_adds_nothing() {
        assert!(props(&Security::default()).is_empty());
    }

    #[test]
    fn the_protocol_follows_from_tls_and_sasl() {
        let tls = Tls {
            ca: Some("ca.pem".into()),
            client: Some(ClientCert {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
        };
        let sasl = Sasl {
            mechanism: SaslMechanism::ScramSha512,
            user: "alice".into(),
            password: Secret::new("pw"),
        };
        let both = Security {
            tls: Some(tls.clone()),
            sasl: Some(sasl.clone()),
        };
        let expected: Vec<(String, String)> = [
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", "ca.pem"),
            ("ssl.certificate.location", "c.pem"),
            ("ssl.key.location", "k.pem"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "pw"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(props(&both), expected);
        let sasl_only = Security {
            tls: None,
            sasl: Some(sasl),
        };
        assert_eq!(sasl_only.protocol(), "sasl_plaintext");
        let system_roots = Security {
            tls: Some(Tls::default()),
            sasl: None,
        };
        assert_eq!(
            props(&system_roots),
            [
                ("security.protocol".to_string(), "ssl".to_string()),
                ("ssl.ca.location".to_string(), "probe".to_string())
            ]
        );
    }

    #[test]
    fn secrets_never_show() {
        let secret = Secret::new("hunter2-xyz");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        remember_secrets([("sasl.password", "hunter2-xyz"), ("sasl.username", "bob")]);
        assert_eq!(
            mask("login hunter2-xyz by bob failed"),
            "login [redacted] by bob failed"
        );
        assert!(matches!(mask("nothing here"), Cow::Borrowed(_)));
        remember_secrets([("sasl.password", "wrong")]);
        assert_eq!(mask("wrong version number"), "wrong version number");
    }
}
