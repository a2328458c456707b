//! The summary line adds up (issue 9, point 14): `read = written +
//! rejected`. Every record a source rejects itself (an over-long line or
//! row, an unclosed quote, an oversize TCP frame, a bad header) counts as
//! read, and what was read past `--limit` and thrown away does not.

mod common;
mod tcp_server;

use std::io::Write;

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
    server.stderr.wait_for("(conn 2): bad CSV header");
    server
        .stderr
        .wait_for("(conn 2): closed by the client after 1 frames");
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
