//! TLS and SASL, end to end: the real `streamer` binary against a broker of
//! the tests' own with SSL, mutual-TLS, SASL_SSL and SASL_PLAINTEXT
//! listeners (SCRAM-SHA-256 and -512 users), its certificates made by the
//! test (`kafka_support/secure.rs`). One broker serves every test here.

mod kafka_support;
#[path = "common/pki.rs"]
mod pki;
#[path = "kafka_support/secure.rs"]
mod secure;

use std::process::Output;
use std::time::{Duration, Instant};

use kafka_support::*;
use secure::*;

/// How soon a mismatch between client and listener must end the run.
const MISMATCH_LIMIT: Duration = Duration::from_secs(20);

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn skip_with_external_broker() -> bool {
    if external_broker() {
        eprintln!(
            "skipped: KAFKA_BOOTSTRAP_SERVERS is set, and this test needs TLS listeners of its own"
        );
    }
    external_broker()
}

/// A topic on the secure broker with `n` numbered messages.
fn topic_with(n: usize) -> String {
    let broker = secure_broker();
    let topic = unique("sec");
    create_topic(&broker.plaintext, &topic, 2);
    produce(&broker.plaintext, &topic, &numbered(n, 2));
    topic
}

/// `streamer --brokers BROKERS ARGS.. kafka -t TOPIC --until-end`, with the
/// SASL password (if any) in the environment.
fn consume(brokers: &str, args: &[&str], topic: &str, password: Option<&str>) -> Output {
    let mut command = streamer(brokers);
    command.env_remove("STREAMER_SASL_PASSWORD");
    if let Some(password) = password {
        command.env("STREAMER_SASL_PASSWORD", password);
    }
    command
        .args(args)
        .args(["kafka", "-t", topic, "-g", &unique("g"), "--until-end"]);
    run_with_deadline(&mut command, Duration::from_secs(60))
}

/// Asserts every one of the `n` numbered records was read exactly once.
fn all_read(output: &Output, n: usize) {
    assert!(output.status.success(), "{}", stderr_of(output));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let counts = id_counts(&records);
    assert_eq!(counts.len(), n, "{}", stderr_of(output));
    assert!(counts.values().all(|&c| c == 1), "duplicates: {counts:?}");
}

/// Runs a consumer that must fail fast with one error containing `expected`.
fn refused(brokers: &str, args: &[&str], password: Option<&str>, expected: &str) -> String {
    let topic = topic_with(1);
    let started = Instant::now();
    let output = consume(brokers, args, &topic, password);
    let took = started.elapsed();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(took < MISMATCH_LIMIT, "took {took:?}: {stderr}");
    // Warnings may come first (the brokers do not answer yet); the error
    // is one line, the last.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("streamer: error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let error = stderr.lines().last().unwrap();
    assert!(error.starts_with("streamer: error: kafka: "), "{stderr}");
    assert!(error.contains(expected), "wanted {expected:?} in: {stderr}");
    stderr
}

fn path(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn tls_with_a_private_ca_consumes_and_produces() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    let topic = topic_with(300);
    let tls = ["--tls-ca", path(&broker.ca)];
    all_read(&consume(&broker.ssl, &tls, &topic, None), 300);

    // File to a topic over TLS: every line arrives.
    let out = unique("sec-out");
    create_topic(&broker.plaintext, &out, 1);
    let output = run_with_deadline(
        streamer(&broker.ssl)
            .args(tls)
            .arg("file")
            .arg(repo().join("data/ticks.csv"))
            .args(["-o", &format!("kafka://{out}")]),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(read_topic(&broker.plaintext, &out).len(), 200);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    let topic = topic_with(50);
    let args = [
        "--tls-ca",
        path(&broker.ca),
        "--tls-cert",
        path(&broker.client_cert),
        "--tls-key",
        path(&broker.client_key),
    ];
    all_read(&consume(&broker.mtls, &args, &topic, None), 50);
    refused(
        &broker.mtls,
        &["--tls-ca", path(&broker.ca)],
        None,
        "give one with --tls-cert FILE and --tls-key FILE",
    );
}

#[test]
fn scram_logins_with_the_right_password_work() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    let topic = topic_with(100);
    let sha256 = [
        "--tls-ca",
        path(&broker.ca),
        "--sasl-mechanism",
        "SCRAM-SHA-256",
        "--sasl-user",
        SCRAM_256_USER,
    ];
    all_read(
        &consume(&broker.sasl_ssl, &sha256, &topic, Some(SCRAM_256_PASSWORD)),
        100,
    );

    // SCRAM-SHA-512, the password from a file this time.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{SCRAM_512_PASSWORD}\n")).unwrap();
    let sha512 = [
        "--tls-ca",
        path(&broker.ca),
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-user",
        SCRAM_512_USER,
        "--sasl-password-file",
        path(&file),
    ];
    all_read(&consume(&broker.sasl_ssl, &sha512, &topic, None), 100);
}

#[test]
fn a_wrong_password_names_user_and_mechanism_but_not_the_password() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    let wrong = "not-the-pw-93f1";
    for (mechanism, user) in [
        ("SCRAM-SHA-256", SCRAM_256_USER),
        ("SCRAM-SHA-512", SCRAM_512_USER),
    ] {
        let args = [
            "--tls-ca",
            path(&broker.ca),
            "--sasl-mechanism",
            mechanism,
            "--sasl-user",
            user,
        ];
        let stderr = refused(
            &broker.sasl_ssl,
            &args,
            Some(wrong),
            &format!(
                "the broker at {} refused the login of user `{user}` with {mechanism}",
                broker.sasl_ssl
            ),
        );
        assert!(!stderr.contains(wrong), "{stderr}");
    }
}

/// Runs `streamer` with stdout and stderr to files (a debug log
/// outgrows a pipe that is read only at the end); returns its exit code,
/// stdout and stderr.
fn run_to_files(mut command: std::process::Command) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn streamer");
    let read = |path: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "streamer did not finish; its log ends:\n{}",
                read(&err)
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), read(&out), read(&err))
}

#[test]
fn secrets_never_reach_the_log_even_at_debug_all() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    let topic = topic_with(20);
    let run = |password: &str| {
        let mut command = streamer(&broker.sasl_ssl);
        command
            .env("STREAMER_SASL_PASSWORD", password)
            .args(["-vv", "-X", "debug=all", "--tls-ca", path(&broker.ca)])
            .args([
                "--sasl-mechanism",
                "SCRAM-SHA-256",
                "--sasl-user",
                SCRAM_256_USER,
            ])
            .args(["kafka", "-t", &topic, "-g", &unique("g"), "--until-end"]);
        run_to_files(command)
    };
    let (code, stdout, stderr) = run(SCRAM_256_PASSWORD);
    assert_eq!(
        code,
        Some(0),
        "{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );
    assert_eq!(stdout.lines().count(), 20);
    // librdkafka's debug log is there, its configuration too (so the
    // check below means something).
    assert!(stderr.contains("SASLSCRAM"), "no SCRAM debug lines");
    assert!(stderr.contains("sasl.password"), "no configuration dump");
    assert!(
        !stderr.contains(SCRAM_256_PASSWORD),
        "the password is in the log"
    );
    assert!(
        !stdout.contains(SCRAM_256_PASSWORD),
        "the password is in the output"
    );

    // A refused login at debug level shows the wrong password nowhere either.
    let wrong = "wrong-pw-at-debug-5e2b";
    let (code, _, stderr) = run(wrong);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("refused the login"),
        "{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );
    assert!(!stderr.contains(wrong), "the wrong password is in the log");
}

#[test]
fn plaintext_against_a_tls_listener_is_named() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    refused(&broker.ssl, &[], None, "is it a TLS listener? try --tls");

    // The output's producer says the same.
    let started = Instant::now();
    let output = run_with_deadline(
        streamer(&broker.ssl)
            .arg("file")
            .arg(repo().join("data/ticks.csv"))
            .args(["-o", &format!("kafka://{}", unique("never"))]),
        Duration::from_secs(60),
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < MISMATCH_LIMIT, "{stderr}");
    assert!(
        stderr.lines().last().unwrap().contains(&format!(
            "kafka: the broker at {} closed the connection before answering: is it a TLS listener? try --tls",
            broker.ssl
        )),
        "{stderr}"
    );
}

#[test]
fn tls_against_a_plaintext_listener_is_named() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    refused(
        &broker.plaintext,
        &["--tls-ca", path(&broker.ca)],
        None,
        "is it a plaintext listener? drop --tls",
    );
}

#[test]
fn an_unknown_ca_is_named() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    refused(
        &broker.ssl,
        &["--tls-ca", path(&broker.other_ca)],
        None,
        "give its CA with --tls-ca FILE",
    );
    // --tls alone checks against the system's CAs, which did not sign it.
    refused(
        &broker.ssl,
        &["--tls"],
        None,
        "give its CA with --tls-ca FILE",
    );
}

#[test]
fn a_mechanism_the_broker_does_not_offer_is_named() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    let args = [
        "--tls-ca",
        path(&broker.ca),
        "--sasl-mechanism",
        "PLAIN",
        "--sasl-user",
        SCRAM_256_USER,
    ];
    refused(
        &broker.sasl_ssl,
        &args,
        Some(SCRAM_256_PASSWORD),
        "does not accept user `alice` with PLAIN",
    );
}

#[test]
fn no_login_against_a_sasl_listener_is_named() {
    if skip_with_external_broker() {
        return;
    }
    let broker = secure_broker();
    refused(
        &broker.sasl_plaintext,
        &[],
        None,
        "does it require a SASL login? try --sasl-mechanism",
    );
}

#[test]
fn bad_security_flags_fail_before_connecting() {
    // No broker listens on port 1: these must fail on the flags alone.
    let run = |args: &[&str], password: Option<&str>| {
        let mut command = streamer("127.0.0.1:1");
        command.env_remove("STREAMER_SASL_PASSWORD");
        if let Some(password) = password {
            command.env("STREAMER_SASL_PASSWORD", password);
        }
        command.args(args).args(["kafka", "-t", "t"]);
        run_with_deadline(&mut command, Duration::from_secs(10))
    };
    let output = run(
        &[
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("--tls-cert /nonexistent/c.pem: cannot read it"),
        "{}",
        stderr_of(&output)
    );
    let output = run(&["--tls-key", "k.pem"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("--tls-cert"),
        "{}",
        stderr_of(&output)
    );
    let output = run(
        &["--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "alice"],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output)
            .contains("--sasl-user alice needs a password: set $STREAMER_SASL_PASSWORD"),
        "{}",
        stderr_of(&output)
    );
    let output = run(&["--sasl-password", "pw"], None);
    assert_eq!(output.status.code(), Some(2), "no flag takes a password");
}
