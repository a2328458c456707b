//! Kafka plumbing shared by the Kafka source and the Kafka sink: client
//! settings (`--brokers`, `-X`), the defaults that keep memory bounded, the
//! routing of librdkafka's logs and errors to our log, librdkafka errors
//! turned into one clear line, and the start-up check of the brokers and
//! topics (`topic_check`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext, Statistics};

use crate::error::Error;

mod mismatch;
mod security;
mod topic_check;
pub use self::security::{is_secret_key, ClientCert, Sasl, SaslMechanism, Secret, Security, Tls};
pub(crate) use self::topic_check::{check_topic, TopicCheck};
mod new_topic;
pub(crate) use self::new_topic::settle_missing;

/// The brokers every Kafka client of a run connects to, and the user's
/// librdkafka settings (`-X key=value`), which win over our defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]` (`--brokers`).
    pub brokers: String,
    /// librdkafka properties, in the order given: those of the TLS and
    /// SASL flags ([`Security::properties`]) first, then `-X`.
    pub settings: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_key(key) {
                    "[redacted]"
                } else {
                    value
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("settings", &settings)
            .finish()
    }
}

/// How long one metadata or offset query may take before we call the
/// brokers unreachable (and retry, or give up, depending on the caller).
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

impl KafkaConfig {
    /// A client configuration: brokers, then `defaults`, then `-X`.
    pub(crate) fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("client.id", "streamer");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        let settings = || self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        security::remember_secrets(settings());
        mismatch::remember_login(settings());
        // librdkafka filters by this level before our log routing sees it;
        // debug lines only matter when the user asked for them with `-X debug=...`.
        let level = if self.settings.iter().any(|(key, _)| key == "debug") {
            RDKafkaLogLevel::Debug
        } else {
            RDKafkaLogLevel::Info
        };
        config.set_log_level(level);
        config
    }
}

/// Parses one `-X key=value`.
pub fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            // librdkafka trims both: an untrimmed value would slip past
            // the checks that compare it (`isolation.level= read_uncommitted`).
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!(
            "`{text}` is not KEY=VALUE (a librdkafka property, like -X fetch.wait.max.ms=50)"
        )),
    }
}

/// The librdkafka error code inside `error`, if it carries one.
pub(crate) fn error_code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code()
}

/// True for errors that retrying will not cure: credentials, permissions,
/// TLS set-up, or an error librdkafka itself calls fatal.
pub(crate) fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SSL
            | RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::InconsistentGroupProtocol
    )
}

/// A client creation error about the TLS key, with the flag and the
/// likely causes named (OpenSSL says only "PEM lib").
fn key_file_hint(reason: &str) -> String {
    if reason.contains("ssl.key.location failed") {
        format!(
            "cannot use the TLS key (--tls-key): is it a private key in PEM, and if it is \
             encrypted, is its password given with -X ssl.key.password=...? ({reason})"
        )
    } else if reason.contains("key values mismatch") {
        format!(
            "the TLS key (--tls-key) does not belong to the certificate (--tls-cert) ({reason})"
        )
    } else {
        reason.to_string()
    }
}

/// Describes a librdkafka error in one line, without rdkafka's
/// `KafkaError (...)` wrapping, and without any secret's value.
pub(crate) fn describe(error: &KafkaError) -> String {
    let text = match error {
        KafkaError::ClientConfig(_, description, key, _) if is_secret_key(key) => {
            format!("invalid client setting {key}=[redacted]: {description}")
        }
        // A key librdkafka does not know may be a secret's, mistyped: its
        // value is not repeated.
        KafkaError::ClientConfig(_, description, key, _)
            if description.contains("No such configuration property") =>
        {
            format!("invalid client setting {key}: {description}")
        }
        KafkaError::ClientConfig(_, description, key, value) if !key.is_empty() => {
            format!("invalid client setting {key}={value}: {description}")
        }
        KafkaError::ClientConfig(_, description, _, _) => description.clone(),
        KafkaError::ClientCreation(reason) => key_file_hint(reason),
        other => match other.rdkafka_error_code() {
            Some(code) => code_text(code),
            None => other.to_string(),
        },
    };
    security::mask(&text).into_owned()
}

/// `Local: Broker transport failure` rather than `BrokerTransportFailure (...)`.
fn code_text(code: RDKafkaErrorCode) -> String {
    let text = code.to_string();
    match (text.find('('), text.rfind(')')) {
        (Some(open), Some(close)) if open < close => text[open + 1..close].to_string(),
        _ => text,
    }
}

/// A client could not be made: almost always a bad `-X` setting.
pub(crate) fn creation_error(error: KafkaError) -> Error {
    Error::Kafka(describe(&error))
}

/// The part of a client context that every client shares: librdkafka's log
/// lines and errors go to our log, once and readable, and we say when the
/// brokers answer again after they were down.
#[derive(Debug)]
pub(crate) struct ClientLog {
    /// `source` or `sink`, to tell two clients of one run apart in the log.
    role: &'static str,
    brokers: String,
    /// Set when librdkafka reports the brokers unreachable; cleared (with a
    /// log line) once statistics show a broker up again.
    down: AtomicBool,
    /// The last error reason seen, for a fatal error's message.
    last_error: Mutex<Option<String>>,
    /// When we last said the brokers are down: said again at most once a
    /// minute while they stay down (librdkafka repeats it every few seconds).
    down_said: Mutex<Option<Instant>>,
    /// The first error that retrying will not cure (bad credentials...):
    /// the source and sink end the run with it.
    permanent: Mutex<Option<String>>,
    /// How often each kind of mismatch evidence was seen (see `mismatch`).
    mismatches: Mutex<HashMap<&'static str, u32>>,
    /// A broker answered this client once (metadata, a message): a
    /// connection closed later is a broker going away, not a mismatch.
    answered: AtomicBool,
}

/// How often an outage is repeated in the log while it lasts.
const OUTAGE_REMINDER: Duration = Duration::from_secs(60);

impl ClientLog {
    /// A log router for one client.
    pub(crate) fn new(role: &'static str, brokers: &str) -> Self {
        ClientLog {
            role,
            brokers: brokers.to_string(),
            down: AtomicBool::new(false),
            last_error: Mutex::new(None),
            down_said: Mutex::new(None),
            permanent: Mutex::new(None),
            mismatches: Mutex::new(HashMap::new()),
            answered: AtomicBool::new(false),
        }
    }

    /// The reason of the last error librdkafka reported, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The first error librdkafka reported that retrying will not cure.
    pub(crate) fn permanent_error(&self) -> Option<String> {
        self.permanent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// True while the brokers are known to be unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Notes that the brokers do not answer (the caller said so).
    pub(crate) fn mark_down(&self) {
        self.down.store(true, Ordering::Relaxed);
    }

    /// Notes that a broker answered this client (see [`mismatch`]).
    pub(crate) fn mark_answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Says (once) that the brokers answer again.
    pub(crate) fn mark_up(&self) {
        self.mark_answered();
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "kafka {}: brokers at {} answer again; resuming",
                self.role,
                self.brokers
            );
        }
    }

    fn on_log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // librdkafka redacts secret settings itself; this also covers a
        // secret echoed back in any other line.
        let message = security::mask(message);
        // Some evidence comes only as a log line: librdkafka logs a lost
        // connection at info level and sends no error event for it.
        self.note_mismatch(&message);
        // Errors reach us again as error events (see `on_error`), in a
        // clearer form; the log lines are detail for `-vv`.
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "librdkafka", "kafka {}: {facility}: {message}", self.role)
            }
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning | RDKafkaLogLevel::Notice => {
                tracing::info!(target: "librdkafka", "kafka {}: {facility}: {message}", self.role)
            }
            _ => {
                tracing::debug!(target: "librdkafka", "kafka {}: {facility}: {message}", self.role)
            }
        }
    }

    /// Makes a mismatch between this client and the broker's listener
    /// (see [`mismatch`]) the error that ends the run. True once the
    /// evidence suffices (`reason` may be one of several needed).
    fn note_mismatch(&self, reason: &str) -> bool {
        let Some(evidence) = mismatch::diagnose(reason, &mismatch::current_login()) else {
            return false;
        };
        if evidence.guess && self.answered.load(Ordering::Relaxed) {
            return false;
        }
        let seen = {
            let mut seen = self
                .mismatches
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = seen.entry(evidence.kind).or_insert(0);
            *count += 1;
            *count
        };
        if seen < evidence.needed {
            return false;
        }
        self.permanent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get_or_insert(evidence.message);
        true
    }

    fn on_error(&self, error: KafkaError, reason: &str) {
        let code = error_code(&error);
        if code == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        let reason = &*security::mask(reason);
        if self.note_mismatch(reason) {
            // Not logged here: it ends the run, as its one error line.
            tracing::debug!("kafka {}: {reason}", self.role);
            return;
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason.to_string());
        if code.is_some_and(is_permanent) {
            // Not logged here: it ends the run, as its one error line.
            tracing::debug!("kafka {}: {reason}", self.role);
            let reason = match code {
                Some(RDKafkaErrorCode::InconsistentGroupProtocol) => format!(
                    "the group's other members use another assignment strategy \
                     (partition.assignment.strategy): give every member the same ({reason})"
                ),
                _ => reason.to_string(),
            };
            self.permanent
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get_or_insert(reason);
            return;
        }
        if self.permanent_error().is_some() {
            // The brokers look down because they turned us away.
            tracing::debug!("kafka {}: {reason}", self.role);
            return;
        }
        match code {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                let was_down = self.down.swap(true, Ordering::Relaxed);
                let mut said = self
                    .down_said
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if !was_down || said.is_none_or(|at| at.elapsed() >= OUTAGE_REMINDER) {
                    tracing::warn!(
                        "kafka {}: no broker at {} answers ({reason}); retrying until one does",
                        self.role,
                        self.brokers
                    );
                    *said = Some(Instant::now());
                } else {
                    tracing::debug!("kafka {}: {reason}", self.role);
                }
            }
            // A lost connection is re-made by librdkafka; if none can be,
            // `AllBrokersDown` follows and is what the user sees.
            Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                tracing::info!("kafka {}: {reason}", self.role)
            }
            // The broker repeats some of these on every metadata refresh
            // (a deleted topic under a `^pattern` subscription).
            _ => crate::warn_limited!("kafka {}: {reason}", self.role),
        }
    }

    fn on_stats(&self, statistics: &Statistics) {
        if self.is_down()
            && statistics
                .brokers
                .values()
                .any(|broker| broker.state == "UP")
        {
            self.mark_up();
        }
    }
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.on_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.on_error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.on_stats(&statistics);
    }
}

/// Implements [`ClientContext`] for a context type with a `log: ClientLog`
/// field and an `on_stats(&self, &Statistics)` method.
macro_rules! client_context_via_log {
    ($type:ty) => {
        impl rdkafka::ClientContext for $type {
            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
                rdkafka::ClientContext::log(&self.log, level, facility, message);
            }

            fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
                rdkafka::ClientContext::error(&self.log, error, reason);
            }

            fn stats(&self, statistics: rdkafka::Statistics) {
                self.on_stats(&statistics);
                rdkafka::ClientContext::stats(&self.log, statistics);
            }
        }
    };
}
pub(crate) use client_context_via_log;

/// Checks a topic name as Kafka allows it: 1 to 249 of `[A-Za-z0-9._-]`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err("a topic name has 1 to 249 characters".into());
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a valid topic name"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "`{name}` is not a valid topic name ({c:?} is not allowed; use letters, digits, `.`, `_`, `-`)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker restarting resets connections during their first request,
    /// as a TLS listener does to a plaintext client: once a broker has
    /// answered this client, that is not taken for a mismatch.
    #[test]
    fn a_closed_connection_is_no_mismatch_once_a_broker_answered() {
        let reset = "127.0.0.1:35139/1: Disconnected: connection reset by peer \
            (after 0ms in state APIVERSION_QUERY)";
        let fresh = ClientLog::new("source", "127.0.0.1:35139");
        assert!(fresh.note_mismatch(reset));
        let answered = ClientLog::new("source", "127.0.0.1:35139");
        answered.mark_answered();
        assert!(!answered.note_mismatch(reset));
        assert_eq!(answered.permanent_error(), None);
        // What only a mismatch says still counts.
        let alert = "127.0.0.1:35139/1: SSL handshake failed: error:0A000412:SSL \
            routines::ssl/tls alert bad certificate";
        assert!(answered.note_mismatch(alert));
    }

    #[test]
    fn settings_parse_as_key_value() {
        assert_eq!(
            parse_setting("fetch.wait.max.ms=50"),
            Ok(("fetch.wait.max.ms".into(), "50".into()))
        );
        assert_eq!(
            parse_setting("sasl.password=a=b"),
            Ok(("sasl.password".into(), "a=b".into()))
        );
        assert_eq!(parse_setting("debug="), Ok(("debug".into(), "".into())));
        assert!(parse_setting("novalue").is_err());
        assert!(parse_setting("=x").is_err());
    }

    #[test]
    fn user_settings_win_over_defaults() {
        let config = KafkaConfig {
            brokers: "b:1".into(),
            settings: vec![("linger.ms".into(), "50".into())],
        };
        let client = config.client_config(&[("linger.ms", "5"), ("acks", "all")]);
        assert_eq!(client.get("bootstrap.servers"), Some("b:1"));
        assert_eq!(client.get("linger.ms"), Some("50"));
        assert_eq!(client.get("acks"), Some("all"));
    }

    #[test]
    fn bad_settings_are_one_clear_line() {
        let config = KafkaConfig {
            brokers: "localhost:9092".into(),
            settings: vec![("no.such.thing".into(), "1".into())],
        };
        let error = config
            .client_config(&[])
            .create::<rdkafka::producer::BaseProducer>()
            .err()
            .expect("librdkafka rejects unknown properties");
        let text = describe(&error);
        assert!(text.contains("no.such.thing"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(!text.starts_with("KafkaError"), "{text}");
    }

    #[test]
    fn error_codes_read_as_text() {
        let error = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(describe(&error), "Local: Broker transport failure");
        assert!(is_permanent(RDKafkaErrorCode::SaslAuthenticationFailed));
        assert!(!is_permanent(RDKafkaErrorCode::AllBrokersDown));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(check_topic_name("ticks.v1_a-b").is_ok());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_name("a/b").is_err());
        assert!(check_topic_name("..").is_err());
        assert!(check_topic_name(&"x".repeat(250)).is_err());
    }
}
