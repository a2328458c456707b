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

/// The read offset of `pid`'s descriptor open on `path`, once it has one.
fn read_offset(pid: u32, path: &str) -> Option<u64> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let entry = entry.ok()?;
        if std::fs::read_link(entry.path()).ok()?.to_str() != Some(path) {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            entry.file_name().to_str()?
        ))
        .ok()?;
        let pos = info.lines().find_map(|line| line.strip_prefix("pos:"))?;
        return pos.trim().parse().ok();
    }
    None
}

/// Runs `streamer file PATH ARGS` on `contents`, truncates the file to
/// `cut` bytes once the reader is past the first read (its output not
/// read, so it waits there), then lets it run to the end; returns the
/// exit status, stdout, stderr, and the bytes read before the cut.
fn truncate_while_read(
    name: &str,
    contents: &str,
    cut: u64,
    args: &[&str],
) -> (i32, String, String, usize) {
    let dir = Dir::new();
    let path = dir.file(name, contents);
    let mut child = common::streamer()
        .args([
            "file",
            &path,
            "--buffer-records",
            "1024",
            "--batch-records",
            "64",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The first read takes 3 bytes (looking for a byte order mark).
    let read = loop {
        match read_offset(child.id(), &path) {
            Some(pos) if pos > 3 => break pos,
            _ if std::time::Instant::now() > deadline => panic!("the file is never read"),
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    assert!(
        read < contents.len() as u64 / 2,
        "read {read}: the pipeline is not full"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let code = exit_within(&mut child, Duration::from_secs(20), "streamer");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (code, stdout, stderr, read as usize)
}

#[test]
fn the_torn_last_line_of_a_file_truncated_while_read_is_rejected() {
    // Lines of 7 bytes: a read of 2^n bytes ends inside one.
    let contents: String = (0..400_000).map(|n| format!("{n:06}\n")).collect();
    let (code, stdout, stderr, read) = truncate_while_read("n.log", &contents, 1000, &[]);
    assert_eq!(code, 3, "{stderr}");
    let whole = read / 7;
    let expected: String = (0..whole)
        .map(|n| format!("{{\"message\":\"{n:06}\"}}\n"))
        .collect();
    assert!(
        stdout == expected,
        "{} lines written, {whole} expected",
        stdout.lines().count()
    );
    let warnings = warning_messages(&stderr);
    let warned = warnings
        .iter()
        .any(|w| w.contains("n.log: the file was truncated while being read (now 1000 bytes, "));
    assert!(warned, "{stderr}");
    assert!(warnings.iter().any(|w| w.contains(&format!(
        "n.log:{}: the file was truncated while being read: this last record",
        whole + 1
    ))));
    assert!(
        summary(&stderr).starts_with(&format!(
            "streamer: {} records read, {whole} written, 1 rejected in ",
            whole + 1
        )),
        "{stderr}"
    );
}

#[test]
fn the_torn_last_row_of_a_csv_file_truncated_while_read_is_rejected() {
    let rows: String = (0..400_000).map(|n| format!("{n:06},v\n")).collect();
    let contents = format!("a,b\n{rows}");
    let (code, stdout, stderr, read) = truncate_while_read("n.csv", &contents, 0, &[]);
    assert_eq!(code, 3, "{stderr}");
    let whole = (read - 4) / 9;
    assert_eq!(stdout.lines().count(), whole, "{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some(format!("{{\"a\":\"{:06}\",\"b\":\"v\"}}", whole - 1).as_str())
    );
    assert!(
        warning_messages(&stderr)
            .iter()
            .any(|w| w.contains(&format!(
                "n.csv:{}: the file was truncated while being read: this last record",
                whole + 2
            ))),
        "{stderr}"
    );
    assert!(
        summary(&stderr).starts_with(&format!(
            "streamer: {} records read, {whole} written, 1 rejected in ",
            whole + 1
        )),
        "{stderr}"
    );
}

#[test]
fn a_last_line_without_a_line_end_is_whole_when_the_file_did_not_shrink() {
    let dir = Dir::new();
    let path = dir.file("ok.csv", "a,b\n1,2\n3,4");
    let out = common::run(&["file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"3\",\"b\":\"4\"}\n"
    );
}

#[test]
fn a_signal_rejects_nothing_of_a_regular_file() {
    // A regular file still holds a record the signal cut off (and the rest
    // after it): the run stops at a record boundary, exit 0, nothing
    // rejected, and what it wrote is the file's first records in order.
    let dir = Dir::new();
    // Big enough that the reads the signal lets finish (see
    // `input::READ_GRACE`) cannot reach its end.
    let lines: String = (0..4_000_000).map(|i| format!("line {i}\n")).collect();
    let path = dir.file("big.txt", &lines);
    let mut child = common::streamer()
        .args(["file", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stdout is not read yet, so it stops mid-file with a read buffer
    // that ends inside a line (the reads are not line-aligned).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Past the 3 bytes read to look for a byte order mark: a whole read.
    while read_offset(child.id(), &path).unwrap_or(0) <= 3 {
        assert!(std::time::Instant::now() < deadline, "never read the file");
        std::thread::yield_now();
    }
    // The signal first, while the full stdout pipe holds the run back (read
    // first, the run could reach the end of the file before the signal).
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    // Read stdout beside the run: the drain writes far more than a pipe holds.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        rest
    });
    let code = exit_within(&mut child, Duration::from_secs(20), "after SIGTERM");
    let rest = reader.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("unfinished record"), "{stderr}");
    let written: Vec<&str> = rest.lines().collect();
    assert!(
        !written.is_empty() && written.len() < 4_000_000,
        "{} written; {stderr}",
        written.len()
    );
    for (i, line) in written.iter().enumerate() {
        assert_eq!(*line, format!("{{\"message\":\"line {i}\"}}"));
    }
    assert!(summary(&stderr).starts_with(&format!(
        "streamer: {} records read, {} written, 0 rejected",
        written.len(),
        written.len()
    )));
}
