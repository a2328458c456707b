//! A record cut off at the end of what was read is never passed off as
//! whole, nor dropped unseen: a signal that stops a run while a record is
//! half-read from a pipe rejects that record (its bytes are gone from the
//! pipe), and a file truncated while it is read has its torn last record
//! rejected.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{exit_within, summary, warning_messages, Dir};

/// Starts `streamer ARGS` reading a pipe we hold, writes `text` into it,
/// and waits until `first` is the first line written on stdout.
fn start_on_pipe(
    args: &[&str],
    text: &[u8],
    first: &str,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = common::streamer()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(text).unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, first);
    (child, stdout)
}

/// Sends SIGTERM, waits for the exit (with the pipe still open), and
/// returns the exit status, the rest of stdout and stderr.
fn terminate(
    mut child: Child,
    mut stdout: BufReader<std::process::ChildStdout>,
) -> (i32, String, String) {
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let code = exit_within(&mut child, Duration::from_secs(10), "after SIGTERM");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    drop(child.stdin.take());
    (code, rest, stderr)
}

#[test]
fn a_signal_rejects_a_csv_record_half_read_from_a_pipe() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let (child, stdout) = start_on_pipe(
        &["file", "-", "--format", "csv", "--dead-letter", &dead],
        b"a,b\n1,2\n3,\"multi\nline",
        "{\"a\":\"1\",\"b\":\"2\"}\n",
    );
    let (code, rest, stderr) = terminate(child, stdout);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(rest, "");
    let reason = "unfinished record: the run was stopped (by a signal) before its end was read";
    assert_eq!(
        std::fs::read_to_string(&dead).unwrap(),
        format!(
            "{{\"origin\":{{\"path\":\"<stdin>\",\"line\":3}},\"reason\":\"{reason}\",\"raw\":\"3,\\\"multi\\nline\"}}\n"
        )
    );
    assert!(warning_messages(&stderr).contains(&format!("rejected <stdin>:3: {reason}").as_str()));
    assert!(
        summary(&stderr).starts_with("streamer: 2 records read, 1 written, 1 rejected in "),
        "{stderr}"
    );
}

#[test]
fn a_signal_rejects_a_line_half_read_from_a_pipe() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let (child, mut stdout) = start_on_pipe(
        &["file", "-", "--format", "lines", "--dead-letter", &dead],
        b"l1\nl2\npartial-li",
        "{\"message\":\"l1\"}\n",
    );
    let mut second = String::new();
    stdout.read_line(&mut second).unwrap();
    assert_eq!(second, "{\"message\":\"l2\"}\n");
    let (code, rest, stderr) = terminate(child, stdout);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(rest, "");
    let dead = std::fs::read_to_string(&dead).unwrap();
    assert!(
        dead.starts_with(
            "{\"origin\":{\"path\":\"<stdin>\",\"line\":3},\"reason\":\"unfinished record"
        ),
        "{dead}"
    );
    assert!(dead.ends_with(",\"raw\":\"partial-li\"}\n"), "{dead}");
    assert!(
        summary(&stderr).starts_with("streamer: 3 records read, 2 written, 1 rejected in "),
        "{stderr}"
    );
}

#[test]
fn a_signal_between_records_rejects_nothing() {
    let (child, stdout) = start_on_pipe(
        &["file", "-", "--format", "csv"],
        b"a,b\n1,2\n",
        "{\"a\":\"1\",\"b\":\"2\"}\n",
    );
    let (code, rest, stderr) = terminate(child, stdout);
    assert_eq!((code, rest.as_str()), (0, ""), "{stderr}");
    assert!(
        summary(&stderr).starts_with("streamer: 1 records read, 1 written, 0 rejected in "),
        "{stderr}"
    );
}
