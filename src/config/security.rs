//! The TLS and SASL flags checked and turned into a [`Security`]: the files
//! they name exist and hold PEM, a SASL user has a password. All before
//! any client connects, so a typo is one clear error, not a retry loop.

use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::cli::SecurityArgs;
use crate::kafka::{ClientCert, Sasl, Secret, Security, Tls};

/// Where the SASL password is read from when no file is named.
pub(super) const PASSWORD_VARIABLE: &str = "STREAMER_SASL_PASSWORD";

/// The checked settings; `env_password` is `$STREAMER_SASL_PASSWORD`.
pub(super) fn kafka_security(
    args: &SecurityArgs,
    env_password: Option<String>,
) -> Result<Security, ConfigError> {
    let tls = if args.tls || args.tls_ca.is_some() || args.tls_cert.is_some() {
        let client = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(ClientCert {
                cert: pem_file("--tls-cert", cert)?,
                key: pem_file("--tls-key", key)?,
            }),
            // clap requires both or neither.
            _ => None,
        };
        let ca = match &args.tls_ca {
            Some(ca) => Some(pem_file("--tls-ca", ca)?),
            None => None,
        };
        Some(Tls { ca, client })
    } else {
        None
    };
    let sasl = match (args.sasl_mechanism, &args.sasl_user) {
        (Some(mechanism), Some(user)) => Some(Sasl {
            mechanism,
            user: user.clone(),
            password: password(args, user, env_password)?,
        }),
        _ => None,
    };
    Ok(Security { tls, sasl })
}

/// A PEM file that exists and can be read.
fn pem_file(flag: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    let text = std::fs::read(path).map_err(|error| {
        ConfigError::Unusable(format!(
            "{flag} {}: cannot read it: {error}",
            path.display()
        ))
    })?;
    if !text.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(ConfigError::Unusable(format!(
            "{flag} {}: not a PEM file (no -----BEGIN line)",
            path.display()
        )));
    }
    Ok(path.to_path_buf())
}

/// The password: the first line of `--sasl-password-file`, else the
/// environment variable; never empty.
fn password(
    args: &SecurityArgs,
    user: &str,
    env_password: Option<String>,
) -> Result<Secret, ConfigError> {
    let (password, from) = match &args.sasl_password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                ConfigError::Unusable(format!(
                    "--sasl-password-file {}: cannot read it: {error}",
                    path.display()
                ))
            })?;
            let line = text.lines().next().unwrap_or_default().to_string();
            (line, format!("--sasl-password-file {}", path.display()))
        }
        None => (
            env_password.unwrap_or_default(),
            format!("${PASSWORD_VARIABLE}"),
        ),
    };
    if password.is_empty() {
        return Err(ConfigError::Usage(format!(
            "--sasl-user {user} needs a password: set ${PASSWORD_VARIABLE} or give \
             --sasl-password-file FILE ({from} is empty)"
        )));
    }
    Ok(Secret::new(password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::SaslMechanism;

    fn pem(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        path
    }

    fn error_text(result: Result<Security, ConfigError>) -> String {
        match result {
            Err(ConfigError::Usage(text) | ConfigError::Unusable(text)) => text,
            Ok(security) => panic!("accepted: {security:?}"),
        }
    }

    #[test]
    fn no_flags_no_security() {
        let security = kafka_security(&SecurityArgs::default(), Some("pw".into())).unwrap();
        assert_eq!(security, Security::default());
    }

    #[test]
    fn tls_files_are_checked_before_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let args = SecurityArgs {
            tls_ca: Some(pem(dir.path(), "ca.pem")),
            tls_cert: Some(pem(dir.path(), "c.pem")),
            tls_key: Some(dir.path().join("missing.pem")),
            ..SecurityArgs::default()
        };
        let text = error_text(kafka_security(&args, None));
        assert!(
            text.starts_with("--tls-key ") && text.contains("missing.pem"),
            "{text}"
        );
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let args = SecurityArgs {
            tls_ca: Some(not_pem),
            ..SecurityArgs::default()
        };
        assert!(error_text(kafka_security(&args, None)).contains("not a PEM file"));
        let args = SecurityArgs {
            tls_cert: Some(pem(dir.path(), "c.pem")),
            tls_key: Some(pem(dir.path(), "k.pem")),
            ..SecurityArgs::default()
        };
        let tls = kafka_security(&args, None).unwrap().tls.expect("implied");
        assert_eq!(tls.ca, None);
        assert_eq!(tls.client.unwrap().key, dir.path().join("k.pem"));
    }

    #[test]
    fn a_sasl_user_needs_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = SecurityArgs {
            sasl_mechanism: Some(SaslMechanism::ScramSha256),
            sasl_user: Some("alice".into()),
            ..SecurityArgs::default()
        };
        let text = error_text(kafka_security(&args, None));
        assert!(text.contains("STREAMER_SASL_PASSWORD"), "{text}");
        let sasl = kafka_security(&args, Some("from-env".into()))
            .unwrap()
            .sasl
            .unwrap();
        assert_eq!(sasl.password.expose(), "from-env");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        args.sasl_password_file = Some(file);
        let sasl = kafka_security(&args, Some("from-env".into()))
            .unwrap()
            .sasl
            .unwrap();
        assert_eq!(sasl.password.expose(), "from-file");
        assert_eq!(sasl.user, "alice");
        args.sasl_password_file = Some(dir.path().join("nope"));
        assert!(error_text(kafka_security(&args, None)).contains("--sasl-password-file"));
    }
}
