//! The summary line adds up (issue 9, point 14): `read = written +
//! rejected`. Every record a source rejects itself (an over-long line or
//! row, an unclosed quote, an oversize TCP frame, a bad header) counts as
//! read; what the run read but dropped as it stopped early (`--limit`,
//! `--on-error stop`, the output closed) is said apart, and blank lines
//! are no records.

mod common;
mod kafka_support;
mod tcp_server;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use common::{run, summary, Dir};
use tcp_server::Server;

#[test]
fn tcp_rejections_in_the_source_count_as_read() {
    let mut server = Server::start(&["-v", "--format", "csv", "--max-frame-bytes", "16"]);
    let mut first = server.connect();
    first.write_all(b"n\n1\n2\n0123456789abcdefghij\n").unwrap();
    // Neither rejection closes its connection (issue 9 follow-up): the
    // clients end them.
    first.shutdown(std::net::Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("(conn 1, record 4): frame longer than 16 bytes");
    let mut second = server.connect();
    second.write_all(b"\xff\n").unwrap();
    second.shutdown(std::net::Shutdown::Write).unwrap();
    server.stderr.wait_for("(conn 2, record 1): bad CSV header");
    server
        .stderr
        .wait_for("conn=2}: closed by the client after 1 rows");
    let status = server.stop();
    assert_eq!(status.code(), Some(3));
    assert_eq!(server.stdout.drain(), ["{\"n\":\"1\"}", "{\"n\":\"2\"}"]);
    let summary = server.stderr.wait_for(" records read");
    assert!(
        summary.starts_with("streamer: 4 records read, 2 written, 2 rejected in "),
        "{summary}"
    );
}

/// The three numbers of the summary line.
fn counts(stderr: &str) -> (u64, u64, u64) {
    let line = summary(stderr);
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |at: usize| words[at].trim_end_matches(',').parse().unwrap();
    (number(1), number(4), number(6))
}

/// The count of the summary's "(N more read but not written: the run
/// stopped early)" clause, 0 when it has none.
fn unprocessed(stderr: &str) -> u64 {
    let line = summary(stderr);
    let Some((_, clause)) = line.split_once(" rejected (") else {
        assert!(line.contains(" rejected in "), "{line}");
        return 0;
    };
    let (count, rest) = clause.split_once(' ').unwrap();
    assert!(
        rest.starts_with("more read but not written: the run stopped early) in "),
        "{line}"
    );
    count.parse().unwrap()
}

#[test]
fn on_error_stop_says_what_was_read_past_the_failing_record() {
    let dir = Dir::new();
    let path = dir.file("st.csv", "a,b\n1,2\n3,4\n5\n6,7\n");
    let out = run(&["file", &path, "--on-error", "stop"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"3\",\"b\":\"4\"}\n"
    );
    assert!(
        summary(&out.stderr).starts_with(
            "streamer: 3 records read, 2 written, 1 rejected \
             (1 more read but not written: the run stopped early) in "
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn blank_json_lines_are_no_records() {
    let dir = Dir::new();
    let path = dir.file("bl.jsonl", "{\"a\":1}\n\n   \n\r\n{\"a\":2}\n\t\n");
    let out = run(&["file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "{\"a\":1}\n{\"a\":2}\n");
    assert!(
        summary(&out.stderr).starts_with("streamer: 2 records read, 2 written, 0 rejected in "),
        "{}",
        out.stderr
    );
}

#[test]
fn an_output_closed_by_its_reader_leaves_the_summary_adding_up() {
    let dir = Dir::new();
    let lines: String = (0..200_000).map(|n| format!("{n},v{n}\n")).collect();
    let path = dir.file("big.csv", format!("a,b\n{lines}"));
    let mut child = common::streamer()
        .args(["file", &path, "--batch-records", "64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `| head -1`: read one record, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "{\"a\":\"0\",\"b\":\"v0\"}\n");
    drop(stdout);
    let code = common::exit_within(&mut child, Duration::from_secs(30), "streamer");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, 0, "{stderr}");
    let (read, written, rejected) = counts(&stderr);
    assert_eq!((read, rejected), (written, 0), "{stderr}");
    let dropped = unprocessed(&stderr);
    assert!(dropped > 0, "{stderr}");
    assert!(read + dropped <= 200_000, "{stderr}");
}

#[test]
fn a_kafka_limit_leaves_the_summary_adding_up() {
    use kafka_support::*;
    let brokers = bootstrap();
    let topic = unique("sum-limit");
    let group = unique("sum-limit-g");
    create_topic(brokers, &topic, 2);
    produce(brokers, &topic, &numbered(5000, 2));
    let output = run_with_deadline(
        streamer(brokers).args([
            "kafka",
            "-t",
            &topic,
            "-g",
            &group,
            "--until-end",
            "--limit",
            "1000",
        ]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        1000
    );
    assert_eq!(counts(&stderr), (1000, 1000, 0), "{stderr}");
    // Kafka hands over far more than 1000 messages at once: those read
    // past the limit are said apart (and not committed).
    let dropped = unprocessed(&stderr);
    assert!(dropped > 0 && dropped <= 4000, "{stderr}");
}

#[test]
fn a_limit_says_what_was_read_past_it() {
    let dir = Dir::new();
    let rows: String = (0..200).map(|n| format!("{n},v\n")).collect();
    // Small enough to be read, and sent on, in one batch.
    let path = dir.file("s.csv", format!("a,b\n{rows}"));
    let out = run(&["file", &path, "--limit", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 2);
    assert!(
        summary(&out.stderr).starts_with(
            "streamer: 2 records read, 2 written, 0 rejected \
             (198 more read but not written: the run stopped early) in "
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn the_summary_adds_up_with_rejections_in_the_source_and_a_limit() {
    let dir = Dir::new();
    let long = "x".repeat(5000);
    let path = dir.file("long.log", format!("short\n{long}\nafter\n{long}"));
    let out = run(&["file", &path, "--max-record-bytes", "1K"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout.lines().count(), 2);
    assert_eq!(counts(&out.stderr), (4, 2, 2));

    let path = dir.file(
        "bad.jsonl",
        format!("{{\"a\":1}}\nnot json\n{long}\n{{\"b\":2}}\n"),
    );
    let out = run(&["file", &path, "--max-record-bytes", "1K"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "{\"a\":1}\n{\"b\":2}\n");
    assert_eq!(counts(&out.stderr), (4, 2, 2));

    let path = dir.file(
        "quote.csv",
        format!("a,b\n1,2\n{long},3\n4,5\n6,\"open\n7,8\n"),
    );
    let out = run(&["file", &path, "--max-record-bytes", "1K"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout.lines().count(), 2);
    assert_eq!(counts(&out.stderr), (4, 2, 2));

    // --limit: what was read past the limit and thrown away is not "read".
    let lines: String = (1..=50_000).map(|n| format!("{n}\n")).collect();
    let path = dir.file("n.log", lines);
    let out = run(&["file", &path, "--limit", "1500", "--batch-records", "100"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1500);
    assert_eq!(counts(&out.stderr), (1500, 1500, 0));
    let lines: String = (1..=5000)
        .map(|n| {
            if n % 2 == 0 {
                format!("{n}\n")
            } else {
                format!("{long}\n")
            }
        })
        .collect();
    let path = dir.file("half.log", lines);
    let out = run(&["file", &path, "--limit", "100", "--max-record-bytes", "1K"]);
    assert_eq!(out.stdout.lines().count(), 100);
    let (read, written, rejected) = counts(&out.stderr);
    assert_eq!((read, written), (written + rejected, 100), "{}", out.stderr);
}
