//! The command line as a user meets it (issue 13, CLI polish): the help's
//! headings and examples, the Kafka flags out of `file -h` and `tcp -h`,
//! short flags, environment variables, `--log-format json`, completions
//! and the man page. All through the binary.

mod common;

use common::{run, run_with_stdin, Dir};
use streamer::cli::{help, INPUT, KAFKA, LIMITS, LOGGING, OUTPUT, PROCESSING, SECURITY};

/// What `streamer ARGS` printed on stdout, having exited 0.
fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    out.stdout
}

/// The headings of a help text, in order.
fn headings(help: &str) -> Vec<&str> {
    help.lines()
        .filter(|line| !line.starts_with(' ') && line.ends_with(':'))
        .map(|line| line.trim_end_matches(':'))
        .collect()
}

#[test]
fn every_subcommand_groups_its_flags_under_the_headings_in_order() {
    // The headings of flags: clap's own (positional arguments, --help) aside.
    let named = |sub: &str, flag: &str| -> Vec<String> {
        headings(&stdout_of(&[sub, flag]))
            .into_iter()
            .filter(|heading| !["Arguments", "Options"].contains(heading))
            .map(str::to_string)
            .collect()
    };
    let shared = [INPUT, OUTPUT, PROCESSING, LIMITS, LOGGING];
    let with_kafka = [&shared[..], &[KAFKA, "Examples"]].concat();
    // Only the server has Security flags, after the limits.
    let tcp = [&shared[..4], &[SECURITY], &shared[4..]].concat();
    for (sub, shared) in [("file", &shared[..]), ("tcp", &tcp[..])] {
        let with_kafka = [shared, &[KAFKA, "Examples"]].concat();
        let without_kafka = [shared, &["Examples"]].concat();
        assert_eq!(named(sub, "--help"), with_kafka, "{sub} --help");
        // `-h` leaves the Kafka flags out; the examples stay.
        assert_eq!(named(sub, "-h"), without_kafka, "{sub} -h");
    }
    assert_eq!(named("kafka", "-h"), with_kafka);
    assert_eq!(named("kafka", "--help"), with_kafka);
}

#[test]
fn kafka_flags_crowd_neither_file_nor_tcp_short_help() {
    for sub in ["file", "tcp"] {
        let short = stdout_of(&[sub, "-h"]);
        for flag in [
            "--brokers",
            "-X",
            "--tls-ca",
            "--sasl-user",
            "--key",
            "--compression",
        ] {
            assert!(!short.contains(flag), "{sub} -h shows {flag}:\n{short}");
        }
        assert!(
            short.lines().count() < 60,
            "{sub} -h: {} lines",
            short.lines().count()
        );
        let long = stdout_of(&[sub, "--help"]);
        assert!(long.contains("--tls-ca <FILE>") && long.contains("--key <FIELD>"));
    }
    let kafka = stdout_of(&["kafka", "-h"]);
    for flag in [
        "--brokers",
        "-X",
        "--tls-ca",
        "--sasl-user",
        "--key",
        "--compression",
    ] {
        assert!(kafka.contains(flag), "kafka -h lacks {flag}");
    }
}

#[test]
fn every_flag_of_every_subcommand_has_a_known_heading() {
    let command = help::command();
    for sub in command
        .get_subcommands()
        .filter(|sub| ["file", "tcp", "kafka"].contains(&sub.get_name()))
    {
        for arg in sub.get_arguments().filter(|arg| !arg.is_positional()) {
            let heading = arg.get_help_heading();
            assert!(
                heading.is_some_and(|heading| help::HEADINGS.contains(&heading)),
                "{} --{:?}: heading {heading:?}",
                sub.get_name(),
                arg.get_long()
            );
        }
    }
}

#[test]
fn every_help_has_examples() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["file", "--help"],
        &["tcp", "--help"],
        &["kafka", "--help"],
        &["completions", "--help"],
        &["man", "--help"],
    ] {
        let help = stdout_of(args);
        let examples = help.split("\nExamples:\n").nth(1);
        let first = examples.and_then(|text| text.lines().find(|line| !line.contains('#')));
        assert!(
            first.is_some_and(|line| line.trim_start().starts_with("streamer ")),
            "{args:?}:\n{help}"
        );
    }
    // The long help keeps what followed the flags before.
    assert!(stdout_of(&["--help"]).contains("Exit status:"));
    assert!(stdout_of(&["tcp", "--help"]).contains("Clients beyond --max-connections"));
}

#[test]
fn short_flags_delimiter_and_limit() {
    let dir = Dir::new();
    let path = dir.file("semi.csv", "a;b\n1;2\n3;4\n5;6\n");
    let out = run(&["file", &path, "-d", ";", "-n", "2", "-q"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"3\",\"b\":\"4\"}\n"
    );
}

#[test]
fn help_shows_the_environment_variables() {
    let kafka = stdout_of(&["kafka", "--help"]);
    for variable in [
        "STREAMER_BROKERS",
        "STREAMER_GROUP",
        "STREAMER_TLS_CA",
        "STREAMER_TLS_CERT",
        "STREAMER_TLS_KEY",
        "STREAMER_SASL_MECHANISM",
        "STREAMER_SASL_USER",
        "STREAMER_SASL_PASSWORD_FILE",
        "STREAMER_LOG_FORMAT",
    ] {
        assert!(kafka.contains(&format!("[env: {variable}=")), "{variable}");
    }
}

#[test]
fn the_environment_sets_the_log_format_and_leaves_file_runs_alone() {
    let dir = Dir::new();
    let path = dir.file("a.log", "x\n");
    let out = common::streamer()
        .args(["file", &path])
        .env("STREAMER_LOG_FORMAT", "json")
        // A deployment's TLS setting: unused, and so unread, by a file run.
        .env("STREAMER_TLS_CA", dir.path("no-such-ca.pem"))
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stderr.trim_end()).unwrap();
    assert_eq!(line["summary"]["written"], 1);
}

/// Every stderr line of a run, each parsed as one JSON object.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

#[test]
fn log_format_json_makes_every_stderr_line_one_object() {
    let dir = Dir::new();
    let path = dir.file("bad.csv", "a,b\n1,2\n3\n4,5\n");
    let dead = dir.path("dead.jsonl");
    let out = run(&[
        "file",
        &path,
        "-v",
        "--log-format",
        "json",
        "--dead-letter",
        &dead,
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let lines = json_lines(&out.stderr);
    let warning = lines
        .iter()
        .find(|line| line["level"] == "WARN")
        .expect("the rejection's warning");
    assert_eq!(
        warning["message"],
        format!("rejected {path}:3: expected 2 fields (as in the header), found 1")
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["message"], "summary");
    assert_eq!(summary["level"], "INFO");
    let figures = &summary["summary"];
    assert_eq!(
        (&figures["read"], &figures["written"], &figures["rejected"]),
        (&3.into(), &2.into(), &1.into())
    );
    assert_eq!(figures["unprocessed"], 0);
    assert!(figures["seconds"].is_number() && figures["records_per_second"].is_number());
}

#[test]
fn log_format_json_errors_and_refusals_are_objects_too() {
    let dir = Dir::new();
    let missing = dir.path("missing.csv");
    let out = run(&["file", &missing, "--log-format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert_eq!(lines[0]["level"], "ERROR");
    let message = lines[0]["message"].as_str().unwrap();
    assert!(message.contains("missing.csv"), "{message}");
    let out = run(&[
        "file",
        &missing,
        "--log-format",
        "json",
        "--poll-interval",
        "1s",
    ]);
    assert_eq!(out.code, 2);
    let lines = json_lines(&out.stderr);
    assert_eq!(
        lines[0]["message"],
        "--poll-interval applies with --follow: add -F, or drop --poll-interval"
    );
    // Flags clap itself cannot parse, the format flag among them.
    let out = run(&["file", &missing, "--log-format", "json", "--bogus"]);
    assert_eq!(out.code, 2);
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert_eq!(lines[0]["level"], "ERROR");
    let message = lines[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("unexpected argument '--bogus' found"),
        "{message}"
    );
}

#[test]
fn completions_for_every_shell() {
    let bash = stdout_of(&["completions", "bash"]);
    assert!(bash.contains("--follow") && bash.contains("--checkpoint"));
    let dir = Dir::new();
    let script = dir.file("streamer.bash", &bash);
    let check = std::process::Command::new("bash")
        .args(["-n", &script])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains("--follow") && script.contains("kafka"),
            "{shell}"
        );
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("invalid value 'tcsh'"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_man_page_has_its_sections_and_the_subcommands() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH streamer 1"),
        "{page}"
    );
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OUTPUT",
        ".SH SUBCOMMANDS",
        ".SH EXTRA",
    ] {
        assert!(page.contains(section), "{section}");
    }
    for sub in ["file", "tcp", "kafka", "completions"] {
        assert!(page.contains(&format!("streamer\\-{sub}(1)")), "{sub}");
    }
    let kafka = stdout_of(&["man", "kafka"]);
    let title = format!(
        ".TH streamer-kafka 1  \"streamer-kafka {}\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(kafka.contains(&title), "{kafka}");
    assert!(kafka.contains("\\-\\-topic") && kafka.contains(".SH INPUT"));
    assert_eq!(run(&["man", "nosuch"]).code, 2);
}

#[test]
fn stdin_example_runs() {
    let out = run_with_stdin(
        &[
            "file",
            "-",
            "--format",
            "csv",
            "-d",
            ";",
            "--output-format",
            "csv",
            "-q",
        ],
        b"a;b\n1;2\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "a,b\n1,2\n");
}
