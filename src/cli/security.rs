//! The Kafka clients' TLS and SASL flags, as typed; `config` checks them
//! and reads the password into a [`crate::kafka::Security`].

use std::path::PathBuf;

use clap::Args;

use super::KAFKA;
use crate::kafka::SaslMechanism;

/// TLS and SASL for every Kafka client of the run (the source and the
/// `kafka://` output alike); `-X` still overrides them.
#[derive(Debug, Args, Default)]
pub struct SecurityArgs {
    /// Connect with TLS, checking the brokers against the system's CA certificates
    /// (implied by --tls-ca, --tls-cert).
    #[arg(long, global = true, help_heading = KAFKA)]
    pub tls: bool,
    /// The CA certificates (PEM file) that signed the brokers' certificates.
    #[arg(long, global = true, value_name = "FILE", env = "STREAMER_TLS_CA", help_heading = KAFKA)]
    pub tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM file), for brokers that require mutual TLS.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key", env = "STREAMER_TLS_CERT", help_heading = KAFKA)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (unencrypted PEM file) of --tls-cert.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert", env = "STREAMER_TLS_KEY", help_heading = KAFKA)]
    pub tls_key: Option<PathBuf>,
    /// Log in with SASL this way (with --sasl-user; the password comes from
    /// $STREAMER_SASL_PASSWORD or --sasl-password-file).
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "MECHANISM",
        requires = "sasl_user",
        env = "STREAMER_SASL_MECHANISM",
        help_heading = KAFKA
    )]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// The SASL user name.
    #[arg(long, global = true, value_name = "NAME", requires = "sasl_mechanism", env = "STREAMER_SASL_USER", help_heading = KAFKA)]
    pub sasl_user: Option<String>,
    /// Read the SASL password from FILE (its first line) instead of $STREAMER_SASL_PASSWORD.
    #[arg(long, global = true, value_name = "FILE", requires = "sasl_user", env = "STREAMER_SASL_PASSWORD_FILE", help_heading = KAFKA)]
    pub sasl_password_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use crate::cli::{parse_args, Cli};
    use crate::kafka::SaslMechanism;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_args(std::iter::once("streamer").chain(args.iter().copied()))
    }

    #[test]
    fn security_flags_are_global() {
        let cli = parse(&[
            "kafka",
            "-t",
            "a",
            "--tls-ca",
            "ca.pem",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--sasl-user",
            "alice",
        ])
        .unwrap();
        let security = &cli.global.security;
        assert_eq!(security.tls_ca.as_deref(), Some("ca.pem".as_ref()));
        assert_eq!(security.sasl_mechanism, Some(SaslMechanism::ScramSha256));
        assert_eq!(security.sasl_user.as_deref(), Some("alice"));
        let cli = parse(&["--tls", "file", "x", "-o", "kafka://t"]).unwrap();
        assert!(cli.global.security.tls);
    }

    #[test]
    fn halves_of_a_pair_are_refused() {
        for args in [
            &["kafka", "-t", "a", "--tls-key", "k.pem"][..],
            &["kafka", "-t", "a", "--tls-cert", "c.pem"],
            &["kafka", "-t", "a", "--sasl-user", "alice"],
            &["kafka", "-t", "a", "--sasl-mechanism", "PLAIN"],
            &["kafka", "-t", "a", "--sasl-password-file", "pw"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
        assert!(parse(&[
            "kafka",
            "-t",
            "a",
            "--sasl-mechanism",
            "GSSAPI",
            "--sasl-user",
            "a"
        ])
        .is_err());
    }

    #[test]
    fn no_flag_takes_a_password() {
        assert!(parse(&["kafka", "-t", "a", "--sasl-password", "pw"]).is_err());
    }
}
