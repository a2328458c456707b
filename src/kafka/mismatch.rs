//! A client and a listener that do not fit: plaintext against TLS, TLS
//! against plaintext, no login where one is required, an unknown CA, a
//! missing client certificate, a SASL mechanism the broker does not offer,
//! a refused login. librdkafka retries such connections forever, saying
//! each time only that it failed; its reason text holds the evidence, and
//! here it becomes one error naming the likely cause and the flag to fix.
//!
//! Only evidence counts: a broker that is down ("Connection refused") or
//! slow matches nothing here, and the run keeps waiting for it.

use std::sync::Mutex;

/// The login of the last client configured: librdkafka's callbacks know
/// no configuration, and a command-line run has one.
static LOGIN: Mutex<Option<Login>> = Mutex::new(None);

/// Notes the login that `settings` configure, for [`diagnose`].
pub(super) fn remember_login<'a>(settings: impl IntoIterator<Item = (&'a str, &'a str)>) {
    *LOGIN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Login::from_settings(settings));
}

/// The login last noted (plaintext, no SASL, if none was).
pub(super) fn current_login() -> Login {
    LOGIN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .unwrap_or_else(|| Login::from_settings([]))
}

/// The login of this process's clients, for a refused login's message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Login {
    /// `security.protocol` as configured (lower case; `plaintext` if unset).
    pub protocol: String,
    /// `sasl.mechanism`, if set.
    pub mechanism: Option<String>,
    /// `sasl.username`, if set.
    pub user: Option<String>,
}

impl Login {
    /// The login that `settings` (applied in order) configure.
    pub(super) fn from_settings<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut login = Login {
            protocol: "plaintext".into(),
            ..Login::default()
        };
        for (key, value) in settings {
            match key {
                "security.protocol" => login.protocol = value.to_ascii_lowercase(),
                "sasl.mechanism" | "sasl.mechanisms" => login.mechanism = Some(value.into()),
                "sasl.username" => login.user = Some(value.into()),
                _ => {}
            }
        }
        login
    }

    fn uses_tls(&self) -> bool {
        self.protocol.ends_with("ssl")
    }

    fn who(&self) -> String {
        match (&self.mechanism, &self.user) {
            (Some(mechanism), Some(user)) => format!("user `{user}` with {mechanism}"),
            (Some(mechanism), None) => format!("SASL {mechanism}"),
            _ => "SASL".into(),
        }
    }
}

/// What a librdkafka reason shows of a mismatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Evidence {
    /// What kind of mismatch, to count repeats of one kind.
    pub kind: &'static str,
    /// How many times this kind must be seen before it ends the run: 1
    /// for what only a mismatch says (a TLS alert, a refused login); more
    /// for a bare lost connection, which a broker going down can cause once.
    pub needed: u32,
    /// Inferred from a connection the broker closed, which a broker
    /// starting or stopping also does: not evidence once the brokers have
    /// answered this client (they did not mind its protocol then).
    pub guess: bool,
    /// The error that ends the run.
    pub message: String,
}

/// How often a connection closed right after it was made must be seen
/// before it counts: a broker shutting down can close one, a listener that
/// wants a login closes every one.
const CLOSED_AFTER_UP: u32 = 2;

/// What `reason` (librdkafka's error or log text, secrets already masked)
/// shows of a mismatch; `None` for anything else.
pub(super) fn diagnose(reason: &str, login: &Login) -> Option<Evidence> {
    // A log line starts with the thread's name; an error event does not.
    let reason = match reason.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ").map_or(reason, |(_, text)| text),
        None => reason,
    };
    let lower = reason.to_ascii_lowercase();
    let broker = broker_of(reason);
    let closed = lower.contains("disconnected") || lower.contains("broken pipe");
    let (kind, needed, guess, hint) = if lower.contains("connecting to a ssl listener?")
        || (!login.uses_tls() && closed && state_after(&lower, "apiversion_query").is_some())
    {
        // librdkafka's own hint, which this version leaves out of a bare
        // "Disconnected" line: the condition is the same (a plaintext
        // client, closed during the first request, which any Kafka
        // listener answers).
        (
            "plaintext-to-tls",
            1,
            true,
            format!(
                "the broker at {broker} closed the connection before answering: is it a TLS \
                 listener? try --tls (with --tls-ca FILE if a private CA signed its certificate)"
            ),
        )
    } else if lower.contains("broker might require sasl authentication")
        || (login.mechanism.is_none()
            && closed
            && state_after(&lower, "up").is_some_and(|ms| ms < 2000))
    {
        (
            "no-login",
            CLOSED_AFTER_UP,
            true,
            format!(
                "the broker at {broker} closed the connection right after it opened: does it \
                 require a SASL login? try --sasl-mechanism and --sasl-user"
            ),
        )
    } else if lower.contains("certificate verify failed") {
        (
            "unknown-ca",
            1,
            false,
            format!(
                "the certificate of the broker at {broker} is not signed by a CA this client \
                 trusts, or does not name {host}: give its CA with --tls-ca FILE, or connect by \
                 a name its certificate holds",
                host = broker.rsplit_once(':').map_or(broker, |(host, _)| host)
            ),
        )
    } else if lower.contains("client ssl authentication might be required")
        || lower.contains("alert bad certificate")
        || lower.contains("alert certificate required")
    {
        (
            "client-certificate",
            1,
            false,
            format!(
                "the broker at {broker} refused the TLS handshake: does it require a client \
                 certificate (mutual TLS) signed by a CA it trusts? give one with --tls-cert FILE \
                 and --tls-key FILE"
            ),
        )
    } else if login.uses_tls()
        && lower.contains("ssl handshake failed")
        && (lower.contains("wrong version number")
            || lower.contains("packet length too long")
            || lower.contains("record layer failure")
            || lower.contains("unexpected eof")
            || lower.contains("disconnected")
            || lower.contains("connection reset"))
    {
        (
            "tls-to-plaintext",
            1,
            !(lower.contains("wrong version number")
                || lower.contains("packet length too long")
                || lower.contains("record layer failure")),
            format!(
                "the TLS handshake with the broker at {broker} failed: is it a plaintext \
                 listener? drop --tls and the --tls-* flags (or use its TLS port)"
            ),
        )
    } else if lower.contains("request not valid in current sasl state") {
        (
            "no-sasl",
            1,
            false,
            format!(
                "the broker at {broker} offers no SASL login on this listener: drop \
                 --sasl-mechanism and --sasl-user, or use its SASL port"
            ),
        )
    } else if lower.contains("unsupported sasl mechanism") {
        (
            "mechanism",
            1,
            false,
            format!(
                "the broker at {broker} does not accept {}: pick one it offers with --sasl-mechanism",
                login.who()
            ),
        )
    } else if lower.contains("sasl authentication error")
        || lower.contains("sasl authentication failed")
    {
        (
            "login",
            1,
            false,
            format!(
                "the broker at {broker} refused the login of {}: check the user and the password \
                 ($STREAMER_SASL_PASSWORD or --sasl-password-file)",
                login.who()
            ),
        )
    } else {
        return None;
    };
    Some(Evidence {
        kind,
        needed,
        guess,
        message: format!("{hint} (librdkafka: {reason})"),
    })
}

/// The milliseconds of `(after Nms in state STATE` when the connection
/// failed in `state` (lower case).
fn state_after(lower: &str, state: &str) -> Option<u64> {
    let at = lower.find("(after ")? + "(after ".len();
    let rest = &lower[at..];
    let (ms, rest) = rest.split_once("ms in state ")?;
    let name = rest.split([')', ',']).next()?;
    (name == state).then(|| ms.parse().ok()).flatten()
}

/// `host:port` of the broker a librdkafka reason names
/// (`sasl_ssl://127.0.0.1:9093/bootstrap: ...`), else the whole prefix.
fn broker_of(reason: &str) -> &str {
    let name = reason.split(": ").next().unwrap_or(reason);
    let name = name.split_once("://").map_or(name, |(_, rest)| rest);
    name.split('/').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(settings: &[(&str, &str)]) -> Login {
        Login::from_settings(settings.iter().copied())
    }

    #[test]
    fn sasl_against_a_listener_without_it_says_so() {
        let reason = "127.0.0.1:19300/bootstrap: SASL SCRAM-SHA-256 mechanism handshake failed: \
            Broker: Request not valid in current SASL state: broker's supported mechanisms:  ";
        let sasl = login(&[("security.protocol", "sasl_plaintext")]);
        let text = diagnose(reason, &sasl).unwrap().message;
        assert!(
            text.starts_with("the broker at 127.0.0.1:19300 offers no SASL login"),
            "{text}"
        );
    }

    #[test]
    fn plaintext_against_tls_names_tls() {
        let reason = "127.0.0.1:9094/bootstrap: Disconnected while requesting ApiVersion: \
            might be caused by incorrect security.protocol configuration (connecting to a SSL \
            listener?) or broker version is < 0.10 (see api.version.request) (after 2ms in state \
            APIVERSION_QUERY)";
        let text = diagnose(reason, &login(&[])).unwrap().message;
        assert!(
            text.starts_with("the broker at 127.0.0.1:9094 closed"),
            "{text}"
        );
        assert!(text.contains("try --tls"), "{text}");
        // What this librdkafka says instead: a bare close, counted.
        let reason = "127.0.0.1:40383/bootstrap: Disconnected: connection closed by peer: \
            receive 0 after POLLIN (after 2ms in state APIVERSION_QUERY, 1 identical error(s) \
            suppressed)";
        let logged = format!("[thrd:127.0.0.1:40383/bootstrap]: {reason}");
        let evidence = diagnose(&logged, &login(&[])).unwrap();
        assert!(evidence
            .message
            .starts_with("the broker at 127.0.0.1:40383 closed"));
        assert!(evidence.message.contains("is it a TLS listener? try --tls"));
        let with_tls = login(&[("security.protocol", "ssl")]);
        assert_eq!(diagnose(reason, &with_tls), None);
    }

    #[test]
    fn tls_against_plaintext_needs_tls_configured() {
        let reason = "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: \
            error:0A00010B:SSL routines::wrong version number (after 3ms in state SSL_HANDSHAKE)";
        let tls = login(&[("security.protocol", "SSL")]);
        assert!(diagnose(reason, &tls)
            .unwrap()
            .message
            .contains("plaintext listener"));
        assert_eq!(diagnose(reason, &login(&[])), None);
    }

    #[test]
    fn logins_name_mechanism_and_user() {
        let reason = "sasl_ssl://127.0.0.1:9095/bootstrap: SASL authentication error: \
            Authentication failed during authentication due to invalid credentials with SASL \
            mechanism SCRAM-SHA-256 (after 40ms in state AUTH_REQ)";
        let scram = login(&[
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "alice"),
        ]);
        let text = diagnose(reason, &scram).unwrap().message;
        assert!(
            text.contains("refused the login of user `alice` with SCRAM-SHA-256"),
            "{text}"
        );
        let reason = "127.0.0.1:9095/bootstrap: Unsupported SASL mechanism: broker's \
            supported mechanisms: SCRAM-SHA-512";
        let text = diagnose(reason, &scram).unwrap().message;
        assert!(text.contains("does not accept user `alice`"), "{text}");
        let reason = "ssl://127.0.0.1:36583/bootstrap: Receive failed: error:0A000412:SSL \
            routines::ssl/tls alert bad certificate: SSL alert number 42 (after 16ms in state \
            APIVERSION_QUERY)";
        let tls = login(&[("security.protocol", "ssl")]);
        let text = diagnose(reason, &tls).unwrap().message;
        assert!(
            text.contains("give one with --tls-cert FILE and --tls-key FILE"),
            "{text}"
        );
    }

    #[test]
    fn a_broker_that_is_down_is_no_mismatch() {
        let reason = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: \
            Connection refused (after 0ms in state CONNECT)";
        assert_eq!(
            diagnose(reason, &login(&[("security.protocol", "ssl")])),
            None
        );
        assert_eq!(diagnose("1/1 brokers are down", &login(&[])), None);
        // The idle reaper's close, long after the connection was made.
        let idle = "127.0.0.1:9092/1: Disconnected (after 600123ms in state UP)";
        assert_eq!(diagnose(idle, &login(&[])), None);
        let fresh = "127.0.0.1:9092/1: Disconnected: connection closed by peer: receive 0 \
            after POLLIN (after 7ms in state UP)";
        assert_eq!(
            diagnose(fresh, &login(&[])).unwrap().needed,
            CLOSED_AFTER_UP
        );
    }
}
