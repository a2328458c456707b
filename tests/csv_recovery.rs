//! End-to-end tests of bad CSV rows in files (issue 9, points 1 and 2): an
//! over-long row is rejected alone and reading goes on; a quote that never
//! closes is rejected by the line its record starts on, never silently.

mod common;

use common::{run, summary, warning_messages, Dir};

#[test]
fn an_overlong_csv_row_is_rejected_alone_and_reading_goes_on() {
    let dir = Dir::new();
    let rows: String = (0..1000).map(|i| format!("{i},v\n")).collect();
    let long = "x".repeat(2000);
    let path = dir.file("b.csv", format!("a,b\n{long},y\n{rows}"));
    let out = run(&["file", &path, "--max-record-bytes", "1K"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let expected: String = (0..1000)
        .map(|i| format!("{{\"a\":\"{i}\",\"b\":\"v\"}}\n"))
        .collect();
    assert_eq!(out.stdout, expected);
    assert_eq!(
        warning_messages(&out.stderr),
        [format!(
            "rejected {path}:2: CSV record longer than 1024 bytes (--max-record-bytes)"
        )]
    );
    assert!(
        summary(&out.stderr).starts_with("streamer: 1001 records read, 1000 written, 1 rejected")
    );

    // A quoted row over the limit ends where its quote closes, and a long
    // plain row that arrives in many reads is one rejection.
    let quoted = format!("\"{}\n{}\",2", "q".repeat(600), "q".repeat(600));
    let plain = format!("{},3", "p".repeat(700 * 1024));
    let path = dir.file(
        "mixed.csv",
        format!("a,b\n1,1\n{quoted}\n4,4\n{plain}\n6,6\n{plain}"),
    );
    let out = run(&["file", &path, "--max-record-bytes", "1K"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"1\"}\n{\"a\":\"4\",\"b\":\"4\"}\n{\"a\":\"6\",\"b\":\"6\"}\n"
    );
    let reason = "CSV record longer than 1024 bytes (--max-record-bytes)";
    assert_eq!(
        warning_messages(&out.stderr),
        [
            format!("rejected {path}:3: {reason}"),
            format!("rejected {path}:6: {reason}"),
            format!("rejected {path}:8: {reason}"),
        ]
    );

    // A quoted cell that passes the limit in one read and closes in a
    // later one: rejected at once, and reading goes on where it closes.
    let cell = "q\n".repeat(350 * 1024);
    let path = dir.file("quoted.csv", format!("a,b\n1,1\n\"{cell}\",2\n3,3\n"));
    let out = run(&["file", &path, "--max-record-bytes", "100K"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "{\"a\":\"1\",\"b\":\"1\"}\n{\"a\":\"3\",\"b\":\"3\"}\n"
    );
    assert_eq!(
        warning_messages(&out.stderr),
        [format!(
            "rejected {path}:3: CSV record longer than 102400 bytes (--max-record-bytes; an unclosed quote?); still inside a quoted cell, so skipping to where it closes"
        )]
    );
    assert!(summary(&out.stderr).starts_with("streamer: 3 records read, 2 written, 1 rejected"));
}

#[test]
fn an_unclosed_quote_is_rejected_by_its_first_line_with_exit_3() {
    let dir = Dir::new();
    for (name, text) in [
        ("middle.csv", "a,b\n1,2\n3,\"oops\n4,5\n6,7\n"),
        ("end.csv", "a,b\n1,2\n3,\"oops"),
    ] {
        let path = dir.file(name, text);
        let dead = dir.path("dead.jsonl");
        let out = run(&["file", &path, "--dead-letter", &dead]);
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert_eq!(out.stdout, "{\"a\":\"1\",\"b\":\"2\"}\n");
        assert_eq!(
            warning_messages(&out.stderr),
            [format!(
                "rejected {path}:3: unclosed quote: the record that starts on this line runs to the end of the input"
            )]
        );
        assert!(summary(&out.stderr).starts_with("streamer: 2 records read, 1 written, 1 rejected"));
        let raw = &text["a,b\n1,2\n".len()..];
        let expected = serde_json::json!({
            "origin": {"path": path, "line": 3},
            "reason": "unclosed quote: the record that starts on this line runs to the end of the input",
            "raw": raw,
        });
        let line: serde_json::Value =
            serde_json::from_str(dir.read("dead.jsonl").trim_end()).unwrap();
        assert_eq!(line, expected);
    }

    // Past the byte limit the rest is skipped; the end of the input says
    // how much the quote swallowed.
    let tail: String = (4..=20).map(|n| format!("{n},x\n")).collect();
    let path = dir.file("swallowed.csv", format!("a,b\n1,2\n3,\"oops\n{tail}"));
    let out = run(&["file", &path, "--max-record-bytes", "20"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "{\"a\":\"1\",\"b\":\"2\"}\n");
    assert_eq!(
        warning_messages(&out.stderr),
        [
            format!("rejected {path}:3: CSV record longer than 20 bytes (--max-record-bytes; an unclosed quote?); still inside a quoted cell, so skipping to where it closes"),
            format!("{path}:3: the quote opened in this record never closes: lines 3 to 20 were skipped"),
        ]
    );
    assert!(summary(&out.stderr).starts_with("streamer: 2 records read, 1 written, 1 rejected"));
}

#[test]
fn every_row_under_an_unusable_header_is_rejected_and_counted() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let rows: String = (0..1000).map(|n| format!("{n},v\n")).collect();
    let long = dir.file("h2.csv", format!("{},b\n{rows}", "x".repeat(3000)));
    let utf8 = dir.file("e.csv", b"a\xff,b\n1,2\n3,4\n");
    for (path, rows, limit) in [(&long, 1000, "1K"), (&utf8, 2, "16M")] {
        let out = run(&[
            "file",
            path,
            "--max-record-bytes",
            limit,
            "--dead-letter",
            &dead,
        ]);
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert_eq!(out.stdout, "");
        assert!(
            summary(&out.stderr).starts_with(&format!(
                "streamer: {} records read, 0 written, {} rejected in ",
                rows + 1,
                rows + 1
            )),
            "{}",
            out.stderr
        );
        let warnings = warning_messages(&out.stderr);
        assert!(
            warnings.contains(
                &format!("{path}:1: no usable CSV header: every row of this input is rejected")
                    .as_str()
            ),
            "{}",
            out.stderr
        );
        let dead = std::fs::read_to_string(&dead).unwrap();
        let lines: Vec<&str> = dead.lines().collect();
        assert_eq!(lines.len(), rows + 1);
        assert_eq!(
            lines[2],
            format!(
                "{{\"origin\":{{\"path\":\"{path}\",\"line\":3}},\"reason\":\"the CSV header on line 1 is unusable\",\"raw\":\"{}\"}}",
                if rows == 2 { "3,4" } else { "1,v" }
            )
        );
    }
}

#[test]
fn a_lone_carriage_return_ends_a_line_as_it_ends_a_record() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let path = dir.file("cr.csv", "a,b\r1,2\r3\r4,5\r6,\"unclosed\r7,8\r");
    let out = run(&["--origin", "file", &path, "--dead-letter", &dead]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let origin = |line: u64| format!("\"_origin\":{{\"path\":\"{path}\",\"line\":{line}}}");
    assert_eq!(
        out.stdout,
        format!(
            "{{\"a\":\"1\",\"b\":\"2\",{}}}\n{{\"a\":\"4\",\"b\":\"5\",{}}}\n",
            origin(2),
            origin(4)
        )
    );
    // The reader rejects the unclosed quote and the decode stage the short
    // row, on two threads: their warnings (and dead letters) may come in
    // either order.
    let mut warnings = warning_messages(&out.stderr);
    warnings.sort();
    assert_eq!(warnings.len(), 2, "{}", out.stderr);
    assert!(
        warnings[0].starts_with(&format!("rejected {path}:3: ")),
        "{}",
        out.stderr
    );
    assert!(
        warnings[1].starts_with(&format!("rejected {path}:5: unclosed quote")),
        "{}",
        out.stderr
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|entry| entry.split(",\"reason\"").next().unwrap().to_string())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [3, 5].map(|line| format!("{{\"origin\":{{\"path\":\"{path}\",\"line\":{line}}}"))
    );

    // Mixed line ends: `\r\n` is one, a lone `\r` one, `\n` one.
    let path = dir.file("mixed.csv", "a,b\r\n1,2\r\n\r\n3,4\n5,6\r7,\"x\r\ny\"\r8,9");
    let out = run(&["--origin", "file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .map(|record| record.rsplit("\"line\":").next().unwrap())
        .collect();
    assert_eq!(lines, ["2}}", "4}}", "5}}", "6}}", "8}}"]);
}

#[test]
fn max_record_bytes_measures_every_form_of_record_alike() {
    // The limit is on a record's bytes as in the file, quotes included,
    // its line end (`\n`, `\r\n` or `\r`) not.
    let dir = Dir::new();
    for (size, written) in [(1000, 1), (1001, 0)] {
        let plain = format!("{},y", "x".repeat(size - 2));
        let quoted = format!("\"{}\",y", "x".repeat(size - 4));
        for row in [&plain, &quoted] {
            for end in ["\n", "\r\n", "\r"] {
                let path = dir.file("e.csv", format!("a,b{end}{row}{end}1,2{end}"));
                let out = run(&["file", &path, "--max-record-bytes", "1000"]);
                let context = format!("{size} bytes, {row:.3}..., {end:?}: {}", out.stderr);
                assert_eq!(out.stdout.lines().count(), 1 + written, "{context}");
                assert_eq!(out.code, if written == 1 { 0 } else { 3 }, "{context}");
            }
        }
        let line = "x".repeat(size);
        for end in ["\n", "\r\n"] {
            let path = dir.file("e.log", format!("{line}{end}ok{end}"));
            let out = run(&["file", &path, "--max-record-bytes", "1000"]);
            let context = format!("line of {size} bytes, {end:?}: {}", out.stderr);
            assert_eq!(out.stdout.lines().count(), 1 + written, "{context}");
            let path = dir.file("e.log", format!("ok{end}{line}"));
            let out = run(&["file", &path, "--max-record-bytes", "1000"]);
            assert_eq!(
                out.stdout.lines().count(),
                1 + written,
                "{context} (last line)"
            );
        }
    }
}

#[test]
fn a_rejected_quoted_row_is_dead_lettered_as_its_bytes() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let text = "a;b\r\n\"1;5\";x;y\r\n\"solo; one\"\r\n\"x\r\ny\"\r\n";
    let path = dir.file("q.csv", text);
    let out = run(&["file", &path, "--delimiter", ";", "--dead-letter", &dead]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let raws: Vec<String> = dir
        .read("dead.jsonl")
        .lines()
        .map(|line| {
            let letter: serde_json::Value = serde_json::from_str(line).unwrap();
            letter["raw"].as_str().unwrap().to_string()
        })
        .collect();
    // The row's bytes as the file has them, quotes and line ends inside
    // quotes included: replayed, each is the same row again.
    assert_eq!(raws, ["\"1;5\";x;y", "\"solo; one\"", "\"x\r\ny\""]);
}
