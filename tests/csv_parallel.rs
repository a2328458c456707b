//! CSV read on several workers (`--csv-workers`): the output, its line
//! numbers, rejections, `--limit` and a signal mid-file are exactly those
//! of the single reader, over inputs many pieces long.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::{exit_within, run, run_with_stdin, summary, warning_messages, Dir};
use serde_json::{json, Value};

/// A CSV input of `rows` rows after a header, with quoted line breaks
/// (`\n` and `\r\n`), doubled quotes, quoted delimiters, CRLF row ends
/// and blank lines; and, per row, the object it must become (with its
/// `_origin` line), computed here, apart from the CSV reader; and the
/// line after the last row.
fn input(rows: usize) -> (Vec<u8>, Vec<Value>, u64) {
    let mut csv = b"id,text,note\n".to_vec();
    let mut expected = Vec::new();
    let mut line = 2;
    for id in 1..=rows {
        let (cell, text, breaks) = match id % 7 {
            0 => (
                format!("\"line\nbreak {id}\""),
                format!("line\nbreak {id}"),
                1,
            ),
            1 => (
                format!("\"say \"\"hi\"\" {id}\""),
                format!("say \"hi\" {id}"),
                0,
            ),
            2 => (format!("\"a\r\nb{id}\""), format!("a\r\nb{id}"), 1),
            5 => (format!("\"x,{id}\""), format!("x,{id}"), 0),
            _ => (format!("t{id}"), format!("t{id}"), 0),
        };
        let end = if id % 7 == 3 { "\r\n" } else { "\n" };
        csv.extend_from_slice(format!("{id},{cell},n{}{end}", id % 13).as_bytes());
        expected.push(json!({
            "id": id.to_string(),
            "text": text,
            "note": format!("n{}", id % 13),
            "_origin": {"line": line},
        }));
        line += 1 + breaks;
        if id % 7 == 4 {
            csv.push(b'\n');
            line += 1;
        }
    }
    (csv, expected, line)
}

/// The output's objects, each `_origin` without its path.
fn objects(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            let mut object: Value = serde_json::from_str(line).unwrap();
            object["_origin"].as_object_mut().unwrap().remove("path");
            object
        })
        .collect()
}

/// Asserts that `stdout` holds the `expected` objects, naming the first
/// that differs.
fn same_objects(stdout: &str, expected: &[Value]) {
    let got = objects(stdout);
    if let Some(at) = (0..got.len().min(expected.len())).find(|&at| got[at] != expected[at]) {
        panic!(
            "record {at}: {} expected, {} written",
            expected[at], got[at]
        );
    }
    assert_eq!(got.len(), expected.len());
}

const ROWS: usize = 60_000;

#[test]
fn many_pieces_give_the_single_readers_bytes_and_lines() {
    let dir = Dir::new();
    let (csv, expected, _) = input(ROWS);
    assert!(csv.len() > 4 * 256 * 1024, "several pieces: {}", csv.len());
    let path = dir.file("big.csv", &csv);
    let one = run(&["file", &path, "--origin", "--csv-workers", "1"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    same_objects(&one.stdout, &expected);
    for workers in ["2", "3"] {
        let many = run(&["file", &path, "--origin", "--csv-workers", workers]);
        assert_eq!(many.code, 0, "{}", many.stderr);
        assert!(
            many.stdout == one.stdout,
            "{workers} workers: output differs"
        );
        let piped = run_with_stdin(
            &["file", "-", "--format", "csv", "--csv-workers", workers],
            &csv,
        );
        let plain = run(&["file", &path, "--csv-workers", "1"]);
        assert!(piped.stdout == plain.stdout, "stdin, {workers} workers");
    }
}

#[test]
fn bad_records_in_later_pieces_are_named_by_their_own_line() {
    let dir = Dir::new();
    let (mut csv, _, _) = input(ROWS);
    // Past the first piece: a row longer than --max-record-bytes (its
    // piece goes to the sequential reader alone), a row of one field
    // (rejected by the decode stage), and a quote inside an unquoted cell,
    // which quote parity takes for an opening one (the sequential reader
    // reads the rest, from the piece the first wrong cut ends).
    let at = |csv: &[u8], id: usize| {
        let needle = format!("\n{id},");
        csv.windows(needle.len())
            .position(|window| window == needle.as_bytes())
            .unwrap()
            + 1
    };
    let long = at(&csv, 20_001);
    let long_row = format!("x,{},y\n", "z".repeat(300));
    csv.splice(long..long, long_row.bytes());
    let short = at(&csv, 30_001);
    csv.splice(short..short, b"lonely\n".iter().copied());
    let stray = at(&csv, 50_001);
    csv.splice(stray..stray, b"7,ab\"c,n\n".iter().copied());
    let path = dir.file("bad.csv", &csv);
    // No lone `\r` in it: a line ends with each `\n`.
    let line_of = |offset: usize| csv[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    let args = |workers| {
        vec![
            "file".to_string(),
            path.clone(),
            "--max-record-bytes".into(),
            "200".into(),
            "--csv-workers".into(),
            workers,
        ]
    };
    let one = common::streamer().args(args("1".into())).output().unwrap();
    let two = common::streamer().args(args("2".into())).output().unwrap();
    assert_eq!(two.status.code(), Some(3));
    assert!(two.stdout == one.stdout, "output differs");
    let stderr = String::from_utf8(two.stderr).unwrap();
    // The source rejects the long row, the decode stage the short one:
    // which warns first depends on how far ahead the source is.
    let mut warnings = warning_messages(&stderr);
    warnings.sort_unstable_by_key(|warning| warning.contains("longer"));
    assert_eq!(
        warnings,
        [
            format!(
                "rejected {path}:{}: expected 3 fields (as in the header), found 1",
                line_of(short)
            ),
            format!(
                "rejected {path}:{}: CSV record longer than 200 bytes (--max-record-bytes)",
                line_of(long)
            ),
        ]
    );
    assert!(
        summary(&stderr).starts_with(&format!(
            "streamer: {} records read, {} written, 2 rejected",
            ROWS + 3,
            ROWS + 1
        )),
        "{stderr}"
    );
    let one_stderr = String::from_utf8(one.stderr).unwrap();
    let (mut one_warnings, mut warnings) =
        (warning_messages(&one_stderr), warning_messages(&stderr));
    one_warnings.sort_unstable();
    warnings.sort_unstable();
    assert_eq!(one_warnings, warnings);
}

#[test]
fn limit_is_exact_across_pieces() {
    let dir = Dir::new();
    let (csv, expected, _) = input(ROWS);
    let path = dir.file("big.csv", &csv);
    let out = run(&[
        "file",
        &path,
        "--origin",
        "--limit",
        "45678",
        "--csv-workers",
        "2",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    same_objects(&out.stdout, &expected[..45_678]);
    assert!(summary(&out.stderr).starts_with("streamer: 45678 records read, 45678 written"));
}

#[test]
fn a_signal_mid_input_writes_every_whole_record_and_names_the_unfinished_one() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let (mut csv, expected, last_line) = input(ROWS);
    let half = format!("{},\"multi\nline", ROWS + 1);
    csv.extend_from_slice(half.as_bytes());
    let mut child = common::streamer()
        .args([
            "file",
            "-",
            "--format",
            "csv",
            "--origin",
            "--csv-workers",
            "2",
        ])
        .args(["--dead-letter", &dead])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Kept open: only the signal ends this run.
    let writer = std::thread::spawn(move || {
        stdin.write_all(&csv).unwrap();
        stdin
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut written = String::new();
    for _ in 0..ROWS {
        stdout.read_line(&mut written).unwrap();
    }
    let stdin = writer.join().unwrap();
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let code = exit_within(&mut child, Duration::from_secs(10), "after SIGTERM");
    stdout.read_to_string(&mut written).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    drop(stdin);
    assert_eq!(code, 3, "{stderr}");
    same_objects(&written, &expected);
    let reason = "unfinished record: the run was stopped (by a signal) before its end was read";
    assert_eq!(
        std::fs::read_to_string(&dead).unwrap(),
        format!(
            "{{\"origin\":{{\"path\":\"<stdin>\",\"line\":{last_line}}},\"reason\":\"{reason}\",\"raw\":\"{},\\\"multi\\nline\"}}\n",
            ROWS + 1
        )
    );
    assert!(
        summary(&stderr).starts_with(&format!(
            "streamer: {} records read, {ROWS} written, 1 rejected in ",
            ROWS + 1
        )),
        "{stderr}"
    );
}
