//! Outputs, end to end through the real binary: an output that is an
//! input is refused, `--append`, dead-letter lines reach the file before
//! their Kafka offsets are committed, wide CSV output, and every output
//! line is a JSON object without duplicate keys.

mod common;
mod kafka_support;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use common::{run, summary, Dir};
use kafka_support::{
    bootstrap, committed, create_topic, duplicates_without_loss, produce, produce_with,
    run_with_deadline, unique, wait_until, Background, TestMessage,
};

/// Fails on a JSON object (at any depth) that has a key twice, which
/// `serde_json::Value` would silently collapse.
struct NoDuplicateKeys;

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(NoDuplicateKeysSeed)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicateKeysSeed)?.is_some() {}
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

struct NoDuplicateKeysSeed;

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicateKeysSeed {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(NoDuplicateKeys)
    }
}

/// Asserts every line of `text` is one JSON object without a duplicate key.
fn assert_valid_json_lines(text: &str) {
    for line in text.lines() {
        assert!(line.starts_with('{'), "not an object: {line}");
        let mut deserializer = serde_json::Deserializer::from_str(line);
        deserializer
            .deserialize_any(NoDuplicateKeys)
            .and_then(|()| deserializer.end())
            .unwrap_or_else(|error| panic!("{error} in {line}"));
    }
}

// ---------------------------------------------------------------- point 3

/// The message of a refused output names both paths and says what to do.
fn assert_refused(out: &common::Run, what: &str) {
    assert_eq!(out.code, 2, "{what}: {}", out.stderr);
    assert!(
        out.stderr.contains("is also an input") && out.stderr.contains("give another path"),
        "{what}: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{what}: {}", out.stdout);
}

#[test]
fn an_output_that_is_an_input_is_refused_before_anything_is_written() {
    let dir = Dir::new();
    let input = "a,b\n1,2\n3,4\n";
    let path = dir.file("x.csv", input);
    let root = dir.root();
    std::os::unix::fs::symlink(&path, root.join("link.csv")).unwrap();
    std::fs::hard_link(&path, root.join("hard.csv")).unwrap();
    let other = dir.file("other.csv", "a\n1\n");
    std::fs::create_dir(root.join("sub")).unwrap();
    // (run in sub/, arguments)
    let cases: [(bool, &[&str]); 7] = [
        (false, &["file", "x.csv", "-o", "x.csv"]),
        (false, &["file", "x.csv", "-o", "./x.csv"]),
        (false, &["file", "other.csv", "x.csv", "-o", "link.csv"]),
        (false, &["file", "link.csv", "-o", "hard.csv"]),
        (false, &["file", "x.csv", "--dead-letter", "x.csv"]),
        (
            false,
            &["file", "x.csv", "--dead-letter", "hard.csv", "--append"],
        ),
        (true, &["file", "../x.csv", "-o", "../sub/../x.csv"]),
    ];
    for (in_sub, case) in cases {
        let cwd = if in_sub {
            root.join("sub")
        } else {
            root.to_path_buf()
        };
        let out: common::Run = common::streamer()
            .args(case)
            .current_dir(&cwd)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
            .into();
        assert_refused(&out, &case.join(" "));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), input, "{case:?}");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "a\n1\n");
    }
    assert!(!root.join("sub/x.csv").exists());
}

#[test]
fn one_path_for_output_and_dead_letter_is_refused() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n3\n");
    for (output, dead_letter) in [("both.jsonl", "both.jsonl"), ("both.jsonl", "./both.jsonl")] {
        let out = common::streamer()
            .args(["file", &input, "-o", output, "--dead-letter", dead_letter])
            .current_dir(dir.root())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let out: common::Run = out.into();
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("-o and --dead-letter name the same file"),
            "{}",
            out.stderr
        );
        assert!(!dir.root().join("both.jsonl").exists());
    }
    // An existing file reached through a symlink is the same file too.
    let existing = dir.file("kept.jsonl", "{\"old\":1}\n");
    std::os::unix::fs::symlink(&existing, dir.root().join("alias.jsonl")).unwrap();
    let alias = dir.path("alias.jsonl");
    let out = run(&["file", &input, "-o", &existing, "--dead-letter", &alias]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(dir.read("kept.jsonl"), "{\"old\":1}\n");
    // stdout and /dev/null are no files to protect.
    let out = run(&[
        "file",
        &input,
        "--dead-letter",
        "/dev/null",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
}

#[test]
fn standard_input_or_output_on_an_input_file_is_refused() {
    let dir = Dir::new();
    let input = dir.file("x.jsonl", "{\"a\":1}\n");
    let shell = |script: &str| -> common::Run {
        std::process::Command::new("sh")
            .args(["-c", script, "sh", env!("CARGO_BIN_EXE_streamer")])
            .current_dir(dir.root())
            .output()
            .unwrap()
            .into()
    };
    // The shell's `>>` would have it read its own output without end.
    let out = shell("\"$1\" file x.jsonl >> x.jsonl");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("standard output is the file x.jsonl"),
        "{}",
        out.stderr
    );
    let out = shell("\"$1\" file - -o x.jsonl < x.jsonl");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("also an input (standard input)"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "{\"a\":1}\n");
    // Pipes are no files: reading one and writing another is fine.
    let out = shell("cat x.jsonl | \"$1\" -q file - --format jsonl | cat");
    assert_eq!((out.code, out.stdout.as_str()), (0, "{\"a\":1}\n"));
}

// ---------------------------------------------------------------- point 4

#[test]
fn append_adds_to_the_output_and_the_dead_letter_file() {
    let dir = Dir::new();
    let first = dir.file("first.csv", "a,b\n1,2\n3\n");
    let second = dir.file("second.csv", "a,b\n5,6\n7\n");
    let out_path = dir.path("out.jsonl");
    let dl_path = dir.path("dl.jsonl");
    for (input, append) in [(&first, false), (&second, true)] {
        let mut args = vec![
            "file",
            input.as_str(),
            "-o",
            &out_path,
            "--dead-letter",
            &dl_path,
        ];
        if append {
            args.push("-a");
        }
        let out = run(&args);
        assert_eq!(out.code, 3, "{}", out.stderr);
    }
    assert_eq!(
        dir.read("out.jsonl"),
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"5\",\"b\":\"6\"}\n"
    );
    let dead: Vec<String> = dir
        .read("dl.jsonl")
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["raw"].to_string())
        .collect();
    assert_eq!(dead, ["\"3\"", "\"7\""]);
    // Without --append a file run still starts the output afresh.
    let out = run(&["file", &first, "-o", &out_path]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(dir.read("out.jsonl"), "{\"a\":\"1\",\"b\":\"2\"}\n");
}

/// The torn line is cut, not ended with a newline (which left a line no
/// reader can parse): it was never acknowledged, so it is read again.
#[test]
fn append_after_a_torn_last_line_cuts_it_first() {
    let dir = Dir::new();
    let input = dir.file("in.jsonl", "{\"n\":1}\n");
    let out_path = dir.file("out.jsonl", "{\"n\":0}\n{\"n\":");
    let out = run(&["file", &input, "-o", &out_path, "--append"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.read("out.jsonl"), "{\"n\":0}\n{\"n\":1}\n");
}

#[test]
fn csv_output_appended_to_a_csv_file_has_no_second_header() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n");
    let out_path = dir.path("out.csv");
    for append in [false, true] {
        let mut args = vec![
            "file",
            input.as_str(),
            "-o",
            &out_path,
            "--output-format",
            "csv",
        ];
        if append {
            args.push("--append");
        }
        assert_eq!(run(&args).code, 0);
    }
    assert_eq!(dir.read("out.csv"), "a,b\n1,2\n1,2\n");
}

// ---------------------------------------------------------------- point 10

#[test]
fn csv_output_of_a_wide_record_is_exact() {
    let dir = Dir::new();
    let columns = 4000;
    let rows = 100;
    let header: Vec<String> = (0..columns).map(|c| format!("col{c}")).collect();
    let mut input = header.join(",") + "\n";
    let mut expected = input.clone();
    for r in 0..rows {
        let cells: Vec<String> = (0..columns)
            .map(|c| match (r + c) % 7 {
                0 => format!("\"q,{r}\"\"{c}\""),
                1 => String::new(),
                _ => format!("{r}-{c}"),
            })
            .collect();
        input += &(cells.join(",") + "\n");
        expected += &(cells.join(",") + "\n");
    }
    let path = dir.file("wide.csv", &input);
    let out = run(&["file", &path, "--output-format", "csv"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.len(), expected.len());
    assert!(
        out.stdout == expected,
        "the CSV output differs from its input"
    );
}

#[test]
fn csv_output_orders_cells_by_the_header_whatever_the_key_order() {
    let dir = Dir::new();
    let path = dir.file(
        "mixed.jsonl",
        "{\"a\":1,\"b\":\"x\",\"c\":null}\n{\"c\":[1,2],\"a\":\"y,z\"}\n{\"b\":2}\n",
    );
    let out = run(&["file", &path, "--output-format", "csv"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "a,b,c\n1,x,\n\"y,z\",,\"[1,2]\"\n,2,\n");
    // (A key outside the columns is a rejection: see
    // tests/outputs_more.rs, a_record_with_keys_outside_the_csv_columns_is_rejected.)
}

// ---------------------------------------------------------------- point 13

#[test]
fn origin_on_a_record_that_has_one_goes_under_the_next_free_name() {
    let dir = Dir::new();
    let jsonl = dir.file(
        "in.jsonl",
        "{\"_origin\":\"mine\",\"a\":1}\n{\"_origin\":1,\"_origin_2\":2}\n{\"b\":{\"_origin\":3}}\n",
    );
    let out = run(&["--origin", "file", &jsonl]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_valid_json_lines(&out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let path = serde_json::to_string(&jsonl).unwrap();
    assert_eq!(
        lines,
        [
            format!(
                "{{\"_origin\":\"mine\",\"a\":1,\"_origin_2\":{{\"path\":{path},\"line\":1}}}}"
            ),
            format!(
                "{{\"_origin\":1,\"_origin_2\":2,\"_origin_3\":{{\"path\":{path},\"line\":2}}}}"
            ),
            format!("{{\"b\":{{\"_origin\":3}},\"_origin\":{{\"path\":{path},\"line\":3}}}}"),
        ]
    );
    let csv = dir.file("in.csv", "_origin,x\nmine,1\n");
    let out = run(&["--origin", "file", &csv]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = serde_json::to_string(&csv).unwrap();
    assert_eq!(
        out.stdout,
        format!(
            "{{\"_origin\":\"mine\",\"x\":\"1\",\"_origin_2\":{{\"path\":{path},\"line\":2}}}}\n"
        )
    );
}

#[test]
fn a_json_line_with_a_duplicate_key_is_rejected() {
    let dir = Dir::new();
    let path = dir.file(
        "dup.jsonl",
        "{\"a\":1,\"a\":2}\n{\"ok\":1}\n{\"n\":{\"x\":1,\"y\":[{\"x\":1,\"x\":1}]}}\n{\"\\u0061\":1,\"a\":2}\n",
    );
    let dl = dir.path("dl.jsonl");
    let out = run(&["file", &path, "--dead-letter", &dl]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "{\"ok\":1}\n");
    assert!(
        out.stderr.contains(":1: duplicate key \"a\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(":3: duplicate key \"x\""),
        "{}",
        out.stderr
    );
    assert_eq!(
        summary(&out.stderr).split(" in ").next().unwrap(),
        "streamer: 4 records read, 1 written, 3 rejected"
    );
    assert_eq!(dir.read("dl.jsonl").lines().count(), 3);
}

#[test]
fn a_json_line_with_many_distinct_keys_is_checked_in_linear_time() {
    let dir = Dir::new();
    let keys: Vec<String> = (0..200_000).map(|k| format!("\"k{k}\":{k}")).collect();
    let line = format!("{{{}}}\n", keys.join(","));
    let path = dir.file("wide.jsonl", &line);
    let out = run(&["file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, line);
}

// ---------------------------------------------------------------- Kafka

/// `n` messages `{"id":i}` on partition `i % partitions`.
fn ids(n: usize, partitions: i32) -> Vec<TestMessage> {
    (0..n)
        .map(|i| TestMessage {
            partition: (i % partitions as usize) as i32,
            value: Some(format!("{{\"id\":{i}}}").into_bytes()),
            ..TestMessage::default()
        })
        .collect()
}

#[test]
fn a_group_run_after_kill_9_appends_and_loses_no_committed_record() {
    let brokers = bootstrap();
    let topic = unique("append");
    let group = unique("append-g");
    create_topic(brokers, &topic, 2);
    let total = 20_000;
    produce_with(
        brokers,
        &topic,
        &ids(total, 2),
        &[("batch.num.messages", "4")],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut running = Background::start(
        kafka_support::streamer(brokers)
            .args(["kafka", "-t", &topic, "-g", &group, "--batch-records", "20"])
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "auto.commit.interval.ms=100",
            ])
            .args([
                "-X",
                "message.max.bytes=1000",
                "-X",
                "fetch.max.bytes=1024",
                "-X",
                "max.partition.fetch.bytes=256",
            ])
            .arg("-o")
            .arg(&out),
        &dir.path().join("first.log"),
    );
    running.wait_for_lines(&out, 2000, Duration::from_secs(60));
    wait_until("a commit", Duration::from_secs(30), || {
        committed(brokers, &group, &topic, 2).iter().any(|&o| o > 0)
    });
    running.signal("KILL");
    running.wait(Duration::from_secs(10));
    let after_kill = std::fs::read(&out).unwrap();
    assert!(
        after_kill.iter().filter(|&&b| b == b'\n').count() < total,
        "the kill came too late to test anything"
    );

    // The same command again would truncate records whose offsets are
    // committed: refused, naming --append, the file untouched.
    let rerun = |append: bool| {
        let mut command = kafka_support::streamer(brokers);
        command
            .args(["kafka", "-t", &topic, "-g", &group, "--until-end"])
            .args(["-X", "session.timeout.ms=6000", "-o"])
            .arg(&out);
        if append {
            command.arg("--append");
        }
        run_with_deadline(&mut command, Duration::from_secs(90))
    };
    let refused = rerun(false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--append"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), after_kill);

    let appended = rerun(true);
    let stderr = String::from_utf8_lossy(&appended.stderr);
    assert_eq!(appended.status.code(), Some(0), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with(std::str::from_utf8(&after_kill).unwrap_or_default()));
    // A kill -9 in the middle of a write may leave one torn line; the rest
    // must all be records.
    let mut torn = 0;
    let mut records = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(record) => records.push(record),
            Err(_) => torn += 1,
        }
    }
    assert!(torn <= 1, "{torn} torn lines");
    duplicates_without_loss(&records, total);
}

#[test]
fn dead_letter_lines_are_in_the_file_before_their_offsets_are_committed() {
    let brokers = bootstrap();
    let topic = unique("dl");
    let group = unique("dl-g");
    create_topic(brokers, &topic, 1);
    let mut messages = Vec::new();
    for i in 0..220 {
        let value = if i % 11 == 5 {
            format!("bad {i}")
        } else {
            format!("{{\"id\":{i}}}")
        };
        messages.push(TestMessage {
            value: Some(value.into_bytes()),
            ..TestMessage::default()
        });
    }
    produce(brokers, &topic, &messages);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let dl = dir.path().join("dl.jsonl");
    let mut running = Background::start(
        kafka_support::streamer(brokers)
            .args(["kafka", "-t", &topic, "-g", &group, "--batch-records", "7"])
            .args(["-X", "auto.commit.interval.ms=100", "--dead-letter"])
            .arg(&dl)
            .arg("-o")
            .arg(&out),
        &dir.path().join("run.log"),
    );
    // Every offset committed, the last bad message's included.
    wait_until("every offset committed", Duration::from_secs(60), || {
        committed(brokers, &group, &topic, 1) == [220]
    });
    running.signal("KILL");
    running.wait(Duration::from_secs(10));
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(&dl)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let raws: Vec<String> = dead
        .iter()
        .map(|d| d["raw"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..220)
        .filter(|i| i % 11 == 5)
        .map(|i| format!("bad {i}"))
        .collect();
    assert_eq!(raws, expected);
    assert_eq!(dead[0]["origin"]["offset"], 5);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 200);
}

#[test]
fn repeated_kafka_headers_become_a_list() {
    let brokers = bootstrap();
    let topic = unique("headers");
    let group = unique("headers-g");
    create_topic(brokers, &topic, 1);
    let message = TestMessage {
        value: Some(b"{\"_origin\":0}".to_vec()),
        headers: vec![
            ("h".into(), b"1".to_vec()),
            ("x".into(), b"y".to_vec()),
            ("h".into(), b"2".to_vec()),
            ("h".into(), b"3".to_vec()),
        ],
        ..TestMessage::default()
    };
    produce(brokers, &topic, &[message]);
    let output = run_with_deadline(
        kafka_support::streamer(brokers).args([
            "--origin",
            "kafka",
            "-t",
            &topic,
            "-g",
            &group,
            "--until-end",
        ]),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_valid_json_lines(&stdout);
    let record: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(record["_origin"], 0);
    assert_eq!(
        record["_origin_2"]["headers"],
        serde_json::json!({"h": ["1", "2", "3"], "x": "y"})
    );
    assert_eq!(record["_origin_2"]["offset"], 0);
}
