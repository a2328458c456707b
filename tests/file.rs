//! End-to-end tests of `streamer file`: the real binary on real files.

mod common;

use common::{run, run_with_stdin, streamer, summary, Dir};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

#[test]
fn csv_rows_become_json_objects_in_file_order() {
    let dir = Dir::new();
    let path = dir.file(
        "quotes.csv",
        "id,name,comment\n\
         1,plain,hello\n\
         2,\"with, comma\",\"say \"\"hi\"\"\"\n\
         3,\"multi\nline\",\"tab\there\"\n\
         4,unicode,\"日本語 ✓ é\"\n",
    );
    let out = run(&["file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"id\":\"1\",\"name\":\"plain\",\"comment\":\"hello\"}\n\
         {\"id\":\"2\",\"name\":\"with, comma\",\"comment\":\"say \\\"hi\\\"\"}\n\
         {\"id\":\"3\",\"name\":\"multi\\nline\",\"comment\":\"tab\\there\"}\n\
         {\"id\":\"4\",\"name\":\"unicode\",\"comment\":\"日本語 ✓ é\"}\n"
    );
    assert_eq!(
        summary(&out.stderr).split(" in ").next().unwrap(),
        "streamer: 4 records read, 4 written, 0 rejected"
    );
}

#[test]
fn crlf_line_ends_and_a_bom_are_handled() {
    let dir = Dir::new();
    let path = dir.file("win.csv", "\u{feff}a,b\r\n1,\"x\r\ny\"\r\n2,z\r\n");
    let out = run(&["file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"x\\r\\ny\"}\n{\"a\":\"2\",\"b\":\"z\"}\n"
    );
}

#[test]
fn no_header_numbers_the_keys() {
    let dir = Dir::new();
    let path = dir.file("raw.csv", "x,y\n1,2\n");
    let out = run(&["file", &path, "--no-header"]);
    assert_eq!(
        out.stdout,
        "{\"c1\":\"x\",\"c2\":\"y\"}\n{\"c1\":\"1\",\"c2\":\"2\"}\n"
    );
}

#[test]
fn delimiter_is_configurable() {
    let dir = Dir::new();
    let path = dir.file("semi.csv", "a;b\n\"1;5\";2,5\n");
    let out = run(&["file", &path, "--delimiter", ";"]);
    assert_eq!(out.stdout, "{\"a\":\"1;5\",\"b\":\"2,5\"}\n");
    let tsv = dir.file("t.tsv", "a\tb\n1\t2\n");
    let out = run(&["file", &tsv, "--format", "csv", "--delimiter", "tab"]);
    assert_eq!(out.stdout, "{\"a\":\"1\",\"b\":\"2\"}\n");
}

#[test]
fn jsonl_objects_pass_through_and_blank_lines_are_skipped() {
    let dir = Dir::new();
    let path = dir.file(
        "events.jsonl",
        "{\"a\": 1, \"b\": [true, null]}\n\n  {\"nested\":{\"x\":\"y\"}}  \r\n{}",
    );
    let out = run(&["file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\": 1, \"b\": [true, null]}\n{\"nested\":{\"x\":\"y\"}}\n{}\n"
    );
}

#[test]
fn lines_become_messages() {
    let dir = Dir::new();
    let path = dir.file(
        "app.log",
        "GET /index \"ok\"\r\n\nlast line without newline",
    );
    let out = run(&["file", &path]);
    assert_eq!(
        out.stdout,
        "{\"message\":\"GET /index \\\"ok\\\"\"}\n{\"message\":\"\"}\n{\"message\":\"last line without newline\"}\n"
    );
}

#[test]
fn format_flag_overrides_the_extension() {
    let dir = Dir::new();
    let path = dir.file("data.txt", "k,v\n1,2\n");
    let out = run(&["file", &path, "--format", "csv"]);
    assert_eq!(out.stdout, "{\"k\":\"1\",\"v\":\"2\"}\n");
}

#[test]
fn stdin_is_read_with_a_dash() {
    let out = run_with_stdin(&["file", "-", "--format", "csv"], b"a,b\n1,2\n3,4\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"3\",\"b\":\"4\"}\n"
    );
    let out = run_with_stdin(&["file", "-", "--origin"], b"hello\n");
    assert_eq!(
        out.stdout,
        "{\"message\":\"hello\",\"_origin\":{\"path\":\"<stdin>\",\"line\":1}}\n"
    );
}

#[test]
fn several_files_are_read_in_order_each_with_its_header() {
    let dir = Dir::new();
    let first = dir.file("1.csv", "a\n1\n2\n");
    let second = dir.file("2.csv", "b\n3\n");
    let third = dir.file("3.jsonl", "{\"c\":4}\n");
    let out = run(&["file", &first, &second, &third]);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\"}\n{\"a\":\"2\"}\n{\"b\":\"3\"}\n{\"c\":4}\n"
    );
}

#[test]
fn origin_names_path_and_line() {
    let dir = Dir::new();
    let path = dir.file("o.csv", "a\n\"x\ny\"\nz\n");
    let out = run(&["--origin", "file", &path]);
    let expected = format!(
        "{{\"a\":\"x\\ny\",\"_origin\":{{\"path\":\"{path}\",\"line\":2}}}}\n\
         {{\"a\":\"z\",\"_origin\":{{\"path\":\"{path}\",\"line\":4}}}}\n"
    );
    assert_eq!(out.stdout, expected);
}

/// The warning lines of a run's stderr.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("WARN")).collect()
}

#[test]
fn wrong_field_count_is_skipped_with_a_warning_and_exit_3() {
    let dir = Dir::new();
    let path = dir.file("bad.csv", "a,b\n1,2\n3\n4,5,6\n7,8\n");
    let out = run(&["file", &path]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"7\",\"b\":\"8\"}\n"
    );
    assert_eq!(
        warnings(&out.stderr),
        vec![
            format!(" WARN rejected {path}:3: expected 2 fields (as in the header), found 1"),
            format!(" WARN rejected {path}:4: expected 2 fields (as in the header), found 3"),
        ]
    );
    assert!(summary(&out.stderr).starts_with("streamer: 4 records read, 2 written, 2 rejected"));
}

#[test]
fn a_rejected_row_names_its_own_line_past_blank_lines() {
    let dir = Dir::new();
    let path = dir.file("gaps.csv", "a,b\n1,2\n\n\r\n\"x\",2,3\n\n4\n5,\"6\"\n");
    let out = run(&["file", &path]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"5\",\"b\":\"6\"}\n"
    );
    assert_eq!(
        warnings(&out.stderr),
        vec![
            format!(" WARN rejected {path}:5: expected 2 fields (as in the header), found 3"),
            format!(" WARN rejected {path}:7: expected 2 fields (as in the header), found 1"),
        ]
    );
}

#[test]
fn invalid_utf8_and_non_objects_are_rejected_with_their_line() {
    let dir = Dir::new();
    let csv = dir.file("latin1.csv", b"name\ncaf\xe9\nok\n");
    let out = run(&["file", &csv]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "{\"name\":\"ok\"}\n");
    assert!(out.stderr.contains(&format!(
        "rejected {csv}:2: invalid UTF-8 in field 'name' (byte 4)"
    )));

    let jsonl = dir.file("mixed.jsonl", "{\"ok\":1}\n[1,2]\n{\"ok\":2}\n{broken\n");
    let out = run(&["file", &jsonl]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "{\"ok\":1}\n{\"ok\":2}\n");
    assert!(out.stderr.contains(&format!(
        "rejected {jsonl}:2: not a JSON object (found an array)"
    )));
    assert!(out.stderr.contains(&format!(
        "rejected {jsonl}:4: invalid JSON at column 2: key must be a string"
    )));
}

#[test]
fn on_error_stop_ends_at_the_first_bad_record() {
    let dir = Dir::new();
    let path = dir.file("bad.csv", "a,b\n1,2\n3\n4,5\n");
    let out = run(&["file", &path, "--on-error", "stop"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "{\"a\":\"1\",\"b\":\"2\"}\n");
    assert_eq!(
        out.stderr.lines().last().unwrap(),
        format!("streamer: error: {path}:3: expected 2 fields (as in the header), found 1")
    );
}

#[test]
fn dead_letter_file_holds_each_rejected_record() {
    let dir = Dir::new();
    let path = dir.file("bad.csv", b"a,b\n1,2\n\"x,y\",2,3\n\xff,4\n5,6\n");
    let dead = dir.path("dead.jsonl");
    let out = run(&["file", &path, "--dead-letter", &dead]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"5\",\"b\":\"6\"}\n"
    );
    let expected = format!(
        "{{\"origin\":{{\"path\":\"{path}\",\"line\":3}},\"reason\":\"expected 2 fields (as in the header), found 3\",\"raw\":\"\\\"x,y\\\",2,3\"}}\n\
         {{\"origin\":{{\"path\":\"{path}\",\"line\":4}},\"reason\":\"invalid UTF-8 in field 'a' (byte 1)\",\"raw\":\"\u{fffd},4\",\"raw_hex\":\"ff2c34\"}}\n"
    );
    assert_eq!(dir.read("dead.jsonl"), expected);
}

#[test]
fn output_goes_to_a_file_in_either_format() {
    let dir = Dir::new();
    let path = dir.file("in.csv", "a,b\n1,\"x,y\"\n2,z\n");
    let out_path = dir.path("out.jsonl");
    let out = run(&["-o", &out_path, "file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        dir.read("out.jsonl"),
        "{\"a\":\"1\",\"b\":\"x,y\"}\n{\"a\":\"2\",\"b\":\"z\"}\n"
    );

    let csv_path = dir.path("out.csv");
    let out = run(&["file", &path, "-o", &csv_path, "--output-format", "csv"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.read("out.csv"), "a,b\n1,\"x,y\"\n2,z\n");
}

#[test]
fn missing_file_and_directory_fail_with_one_line() {
    let dir = Dir::new();
    let good = dir.file("good.csv", "a\n1\n");
    let missing = dir.path("missing.csv");
    let out = run(&["file", &good, &missing]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout, "",
        "nothing is output before every path is checked"
    );
    assert_eq!(
        out.stderr,
        format!("streamer: error: cannot read {missing}: No such file or directory (os error 2)\n")
    );

    let root = dir.root().to_str().unwrap();
    let out = run(&["file", root]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!("streamer: error: cannot read {root}: is a directory\n")
    );
}

#[test]
fn unwritable_output_fails_with_one_line() {
    let dir = Dir::new();
    let path = dir.file("in.csv", "a\n1\n");
    let out_path = dir.path("no/such/dir/out.jsonl");
    let out = run(&["file", &path, "-o", &out_path]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!("streamer: error: cannot open the output: cannot write {out_path}: No such file or directory (os error 2)\n")
    );
}

#[test]
fn quiet_silences_the_summary() {
    let dir = Dir::new();
    let path = dir.file("in.csv", "a\n1\n");
    let out = run(&["-q", "file", &path]);
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout, "{\"a\":\"1\"}\n");
}

#[test]
fn limit_stops_after_n_records() {
    let dir = Dir::new();
    let lines: String = (1..=5000).map(|n| format!("{n}\n")).collect();
    let path = dir.file("n.log", lines);
    let out = run(&["file", &path, "--limit", "1500", "--batch-records", "100"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected: String = (1..=1500)
        .map(|n| format!("{{\"message\":\"{n}\"}}\n"))
        .collect();
    assert_eq!(out.stdout, expected);
}

#[test]
fn overlong_lines_are_rejected_without_being_buffered() {
    let dir = Dir::new();
    let long = "x".repeat(5000);
    let path = dir.file("long.log", format!("short\n{long}\nafter\n"));
    let out = run(&["file", &path, "--max-record-bytes", "1K"]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stdout,
        "{\"message\":\"short\"}\n{\"message\":\"after\"}\n"
    );
    assert!(out.stderr.contains(&format!(
        "rejected {path}:2: line longer than 1024 bytes (--max-record-bytes)"
    )));
}

#[test]
fn an_unclosed_quote_is_rejected_not_buffered_forever() {
    let dir = Dir::new();
    let tail = "y,".repeat(100_000);
    let path = dir.file("runaway.csv", format!("a,b\n1,2\n\"oops,{tail}\n"));
    let out = run(&["file", &path, "--max-record-bytes", "64K"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "{\"a\":\"1\",\"b\":\"2\"}\n");
    assert!(out.stderr.contains(&format!(
        "rejected {path}:3: CSV record longer than 65536 bytes (--max-record-bytes; an unclosed quote?)"
    )));
}

#[test]
fn broken_pipe_ends_quietly_with_status_0() {
    let dir = Dir::new();
    let rows: String = (0..300_000).map(|n| format!("{n},row {n}\n")).collect();
    let path = dir.file("big.csv", format!("n,text\n{rows}"));
    let mut child = streamer()
        .args(["file", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "{\"n\":\"0\",\"text\":\"row 0\"}\n");
    drop(stdout); // like `| head -1`
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_writes_what_was_read_and_exits_0() {
    let mut child = streamer()
        .args(["file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        seen.push(line);
    }
    assert_eq!(
        seen,
        [
            "{\"message\":\"one\"}\n",
            "{\"message\":\"two\"}\n",
            "{\"message\":\"three\"}\n"
        ]
    );
    // The writer is still open: only the signal can end this run.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(summary(&stderr).starts_with("streamer: 3 records read, 3 written, 0 rejected"));
    drop(stdin);
}

#[test]
fn bundled_sample_runs() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/data/ticks.csv");
    let out = run(&["file", sample]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = std::fs::read_to_string(sample).unwrap().lines().count() - 1;
    assert_eq!(out.stdout.lines().count(), rows);
    for line in out.stdout.lines() {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).unwrap();
        assert_eq!(object.len(), 8);
    }
}

#[test]
fn an_overlong_line_split_across_reads_counts_as_one_line() {
    let dir = Dir::new();
    let long = "y".repeat(700 * 1024);
    let path = dir.file("split.log", format!("a\n{long}\nb\n{long}"));
    let out = run(&["file", &path, "--max-record-bytes", "100K"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "{\"message\":\"a\"}\n{\"message\":\"b\"}\n");
    let rejected: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("WARN rejected"))
        .collect();
    assert_eq!(rejected.len(), 2, "{}", out.stderr);
    assert!(rejected[0].ends_with(&format!(
        "rejected {path}:2: line longer than 102400 bytes (--max-record-bytes)"
    )));
    assert!(rejected[1].ends_with(&format!(
        "rejected {path}:4: line longer than 102400 bytes (--max-record-bytes)"
    )));
}

#[test]
fn a_second_signal_exits_at_once_when_the_output_is_stuck() {
    let mut child = streamer()
        .args(["-v", "file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Far more than the pipe to our (never read) stdout end can hold, so
    // the drain after the first signal cannot finish.
    let writer = std::thread::spawn(move || {
        let line = "x".repeat(99) + "\n";
        for _ in 0..100_000 {
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let pid = child.id().to_string();
    let kill = |signal: &str| {
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    kill("-TERM");
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no stopping line");
        if line.contains("stopping: writing out the records already read") {
            break;
        }
    }
    kill("-INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("second signal: exiting at once"), "{rest}");
    drop(stdout);
    writer.join().unwrap();
}

#[test]
fn on_error_stop_in_the_source_still_writes_what_came_before() {
    let dir = Dir::new();
    let path = dir.file("long.log", format!("a\nb\n{}\nd\n", "x".repeat(50)));
    let out = run(&[
        "file",
        &path,
        "--max-record-bytes",
        "10",
        "--on-error",
        "stop",
    ]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "{\"message\":\"a\"}\n{\"message\":\"b\"}\n");
    assert_eq!(
        out.stderr.lines().last().unwrap(),
        format!("streamer: error: {path}:3: line longer than 10 bytes (--max-record-bytes)")
    );

    let tail = "y,".repeat(1000);
    let csv = dir.file("runaway.csv", format!("a\n1\n2\n\"oops,{tail}\n"));
    let out = run(&[
        "file",
        &csv,
        "--max-record-bytes",
        "100",
        "--on-error",
        "stop",
    ]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "{\"a\":\"1\"}\n{\"a\":\"2\"}\n");
}
