//! End-to-end tests of `--checkpoint` (issue 12): a restart resumes each
//! file where the output had it delivered, a file is known by its inode
//! and first bytes, and kill -9 at random moments loses nothing.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{exit_within, file_name, run, saved, streamer, summary, Dir, Run};

fn inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn a_restart_resumes_where_the_output_was_and_an_unchanged_file_writes_nothing() {
    let dir = Dir::new();
    let csv = dir.file("data.csv", "id,name\n1,ann\n2,\"bob\nsmith\"\n");
    let checkpoint = dir.path("cp.json");
    let first = run(&["file", &csv, "--checkpoint", &checkpoint, "--origin"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout.lines().count(), 2);
    assert_eq!(saved(&checkpoint, "data.csv"), Some((28, 4)));

    let written_at = inode(&checkpoint);
    let again = run(&["file", &csv, "--checkpoint", &checkpoint]);
    assert_eq!(again.stdout, "");
    assert!(
        summary(&again.stderr).contains("0 records read"),
        "{}",
        again.stderr
    );
    assert_eq!(
        inode(&checkpoint),
        written_at,
        "an unchanged checkpoint is not rewritten"
    );

    let mut file = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
    file.write_all(b"3,cy\n").unwrap();
    let resumed = run(&["file", &csv, "--checkpoint", &checkpoint, "--origin"]);
    let path = csv.replace('\\', "\\\\");
    assert_eq!(
        resumed.stdout,
        format!(
            "{{\"id\":\"3\",\"name\":\"cy\",\"_origin\":{{\"path\":\"{path}\",\"line\":5}}}}\n"
        )
    );
    assert_eq!(saved(&checkpoint, "data.csv"), Some((33, 5)));
}

#[test]
fn a_replaced_file_under_the_same_name_is_read_from_its_start() {
    let dir = Dir::new();
    let log = dir.file("app.log", "old 1\nold 2\n");
    let checkpoint = dir.path("cp.json");
    assert_eq!(run(&["file", &log, "--checkpoint", &checkpoint]).code, 0);
    std::fs::remove_file(&log).unwrap();
    dir.file("app.log", "new 1\nnew 2\nnew 3\n");
    let out = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    assert!(out.stdout.starts_with("{\"message\":\"new 1\"}"));
}

#[test]
fn a_checkpoint_that_is_an_input_or_an_output_is_refused() {
    let dir = Dir::new();
    let log = dir.file("app.log", "x\n");
    let out_file = dir.path("out.jsonl");
    let as_input = run(&["file", &log, "--checkpoint", &log]);
    assert_eq!(as_input.code, 2);
    assert!(
        as_input.stderr.contains(&format!(
            "--checkpoint {log} is an input ({log}): it would be overwritten"
        )),
        "{}",
        as_input.stderr
    );
    let as_output = run(&["file", &log, "-o", &out_file, "--checkpoint", &out_file]);
    assert_eq!(as_output.code, 2);
    assert!(
        as_output.stderr.contains("is the -o file"),
        "{}",
        as_output.stderr
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "x\n");
}

#[test]
fn a_checkpoint_spelled_otherwise_or_its_temporary_file_is_refused_before_anything_is_written() {
    let dir = Dir::new();
    let log = dir.file("x.log", "a\nb\n");
    let root = dir.root().display().to_string();
    let sub = dir.path("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = dir.path("o.out");
    let dead = dir.path("dl.out");
    // Neither file exists yet: compared by folder and name.
    let spelled = [
        (format!("{sub}/../o.out"), "-o", out.clone(), "the -o file"),
        (
            format!("{root}/./dl.out"),
            "--dead-letter",
            dead.clone(),
            "the --dead-letter file",
        ),
    ];
    for (checkpoint, flag, file, what) in spelled {
        let refused = run(&["file", &log, flag, &file, "--checkpoint", &checkpoint]);
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(
            refused.stderr.contains(&format!(
                "--checkpoint {checkpoint} is {what} ({file}): it would be overwritten"
            )),
            "{}",
            refused.stderr
        );
        assert!(!std::path::Path::new(&file).exists(), "{file} was written");
    }
    // A link to the output file, which does not exist yet (a dangling link).
    for (flag, file, what) in [
        ("-o", &out, "the -o file"),
        ("--dead-letter", &dead, "the --dead-letter file"),
    ] {
        let link = dir.path("link.ck");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(file, &link).unwrap();
        let refused = run(&["file", &log, flag, file, "--checkpoint", &link]);
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(
            refused.stderr.contains(&format!(
                "--checkpoint {link} is {what} ({file}): it would be overwritten"
            )),
            "{}",
            refused.stderr
        );
        assert!(!std::path::Path::new(file).exists(), "{file} was written");
    }

    // The temporary file, PATH.tmp, is an input or the output.
    let input = dir.file("z.tmp", "keep\n");
    let z = dir.path("z");
    let refused = run(&["file", &input, "--checkpoint", &z]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!(
            "--checkpoint {z}: its temporary file {input} is an input ({input})"
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "keep\n");
    assert!(!std::path::Path::new(&z).exists());
    let out_tmp = dir.path("out.tmp");
    let refused = run(&[
        "file",
        &log,
        "-o",
        &out_tmp,
        "--checkpoint",
        &dir.path("out"),
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is the -o file"),
        "{}",
        refused.stderr
    );

    // A symlink at PATH.tmp is not written through.
    let target = dir.path("target");
    std::os::unix::fs::symlink(&target, dir.path("ck.tmp")).unwrap();
    let checkpoint = dir.path("ck");
    let ran = run(&["file", &log, "-o", &out, "--checkpoint", &checkpoint]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        !std::path::Path::new(&target).exists(),
        "the link was followed"
    );
    assert_eq!(saved(&checkpoint, "x.log"), Some((4, 2)));
}

#[test]
fn a_missing_checkpoint_folder_is_refused_at_start() {
    let dir = Dir::new();
    let log = dir.file("x.log", "a\n");
    let out = dir.path("out.jsonl");
    let checkpoint = dir.path("nowhere/ck");
    let refused = run(&["file", &log, "-o", &out, "--checkpoint", &checkpoint]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("--checkpoint {checkpoint}: no such folder:")),
        "{}",
        refused.stderr
    );
    assert!(!std::path::Path::new(&out).exists());
}

/// Runs `file LOG -o second.jsonl --checkpoint SECOND` while a following
/// run with `--checkpoint HELD` has written LOG's one record `a`, then stops
/// that first run (which must exit 0); returns the second run and its
/// output path.
fn beside_a_run_holding(dir: &Dir, log: &str, held: &str, second: &str) -> (Run, String) {
    let first_out = dir.path("first.jsonl");
    let mut first = streamer()
        .args(["file", "-F", log, "-o", &first_out, "--checkpoint", held])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&first_out).unwrap_or_default() != "{\"message\":\"a\"}\n" {
        assert!(Instant::now() < deadline, "the first run wrote nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    let second_out = dir.path("second.jsonl");
    let second_run = run(&["file", log, "-o", &second_out, "--checkpoint", second]);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(first.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(
        exit_within(&mut first, Duration::from_secs(20), "the first run"),
        0
    );
    (second_run, second_out)
}

#[test]
fn a_second_run_with_the_same_checkpoint_is_refused() {
    let dir = Dir::new();
    let log = dir.file("x.log", "a\n");
    let checkpoint = dir.path("ck");
    let (second, second_out) = beside_a_run_holding(&dir, &log, &checkpoint, &checkpoint);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!(
            "cannot read {checkpoint}: another streamer holds this checkpoint (its lock \
             {checkpoint}.lock is taken)"
        )),
        "{}",
        second.stderr
    );
    assert!(!std::path::Path::new(&second_out).exists());
    // Once the first run is over, the checkpoint is free again.
    let third = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.stdout, "");
}

/// Every output line of the runs: (file name, line) → how many times.
fn tally(outputs: &[String], counts: &mut BTreeMap<(String, u64), u32>) {
    for output in outputs {
        let text = std::fs::read_to_string(output).unwrap_or_default();
        for line in text.lines() {
            // A killed run's last line may be cut short: never acknowledged.
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let path = record["_origin"]["path"].as_str().unwrap();
            let name = path.rsplit('/').next().unwrap().to_string();
            let number = record["_origin"]["line"].as_u64().unwrap();
            assert_eq!(record["message"], format!("{name} {number}"));
            *counts.entry((name, number)).or_default() += 1;
        }
    }
}

/// A pseudo-random number below `below` (the clock's nanoseconds).
fn random_below(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) % below
}

/// The checkpoint's line for each file: (big.log, growing.log).
fn saved_lines(checkpoint: &str) -> (u64, u64) {
    let line = |name| saved(checkpoint, name).map_or(0, |(_, line)| line);
    (line("big.log"), line("growing.log"))
}

#[test]
fn kill_9_three_times_then_a_last_run_loses_no_row() {
    let dir = Dir::new();
    const BIG: u64 = 2_000_000;
    let big: String = (1..=BIG).map(|n| format!("big.log {n}\n")).collect();
    dir.file("big.log", big);
    let growing = dir.path("growing.log");
    std::fs::write(&growing, "").unwrap();
    let checkpoint = dir.path("cp.json");
    let pattern = format!("{}/*.log", dir.root().display());

    // A writer appends to growing.log all along, 50 rows every 2 ms.
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = {
        let (growing, stop) = (growing.clone(), stop_writing.clone());
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&growing)
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let rows: String = (n + 1..=n + 50)
                    .map(|n| format!("growing.log {n}\n"))
                    .collect();
                file.write_all(rows.as_bytes()).unwrap();
                n += 50;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let start = |output: &str| {
        streamer()
            .args(["file", "--follow", "--origin", "--checkpoint", &checkpoint])
            .args([
                "--checkpoint-interval",
                "20ms",
                "--batch-records",
                "500",
                "-o",
                output,
            ])
            .arg(&pattern)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    // Three runs killed at random moments once they wrote something.
    let mut outputs = Vec::new();
    let mut killed_at = Vec::new();
    for attempt in 0..3 {
        let output = dir.path(&format!("out{attempt}.jsonl"));
        outputs.push(output.clone());
        let mut child = start(&output);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&output).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < deadline, "run {attempt} wrote nothing");
            std::thread::sleep(Duration::from_millis(1));
        }
        let delay = 20 + random_below(180);
        eprintln!("run {attempt}: killed {delay} ms after its first output");
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let (big_at, growing_at) = saved_lines(&checkpoint);
        let mut counts = BTreeMap::new();
        tally(&outputs, &mut counts);
        // The checkpoint never runs ahead of the output.
        for (name, at) in [("big.log", big_at), ("growing.log", growing_at)] {
            let missing = (1..=at).find(|&n| !counts.contains_key(&(name.to_string(), n)));
            assert_eq!(
                missing, None,
                "{name}: checkpoint at line {at}, a row before it is in no output"
            );
        }
        killed_at.push((big_at, growing_at));
    }

    // The last run: the writer stops, and every row comes out.
    let last = dir.path("out3.jsonl");
    outputs.push(last.clone());
    let mut child = start(&last);
    stop_writing.store(true, Ordering::Relaxed);
    let grown = writer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let mut counts = BTreeMap::new();
        tally(&outputs, &mut counts);
        let has =
            |name: &str, rows: u64| (1..=rows).all(|n| counts.contains_key(&(name.to_string(), n)));
        if has("big.log", BIG) && has("growing.log", grown) {
            break counts;
        }
        assert!(Instant::now() < deadline, "rows missing after the last run");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(30), "the last run"),
        0
    );

    let rows = counts.len() as u64;
    assert_eq!(rows, BIG + grown, "a row that was never written came out");
    // A row comes again only as often as killed runs wrote it past the
    // checkpoint they left (written, not yet acknowledged in the file):
    // the next run starts there. No run writes a row twice.
    let per_run: Vec<_> = outputs[..3]
        .iter()
        .map(|output| {
            let mut written = BTreeMap::new();
            tally(std::slice::from_ref(output), &mut written);
            written
        })
        .collect();
    let mut duplicates = 0;
    let mut unacknowledged_writes = 0;
    for ((name, line), count) in &counts {
        let unacknowledged = killed_at
            .iter()
            .zip(&per_run)
            .filter(|(&(big, growing), written)| {
                let at = if name == "big.log" { big } else { growing };
                *line > at && written.contains_key(&(name.clone(), *line))
            })
            .count() as u32;
        unacknowledged_writes += unacknowledged;
        duplicates += count - 1;
        assert!(
            count - 1 <= unacknowledged,
            "{name}:{line} came {count} times, yet only {unacknowledged} killed runs wrote it \
             past their checkpoint"
        );
    }
    for (run, written) in per_run.iter().enumerate() {
        let twice = written.iter().find(|(_, &count)| count > 1);
        assert_eq!(twice, None, "run {run} wrote a row twice");
    }
    eprintln!(
        "kill -9 x3: {rows} rows, {duplicates} duplicates (of {unacknowledged_writes} rows \
         written past the checkpoint at a kill); checkpoints at the kills {killed_at:?}"
    );
}

/// Waits until `path` holds `count` lines (a followed run's output).
fn wait_for_lines(path: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= count {
            return;
        }
        assert!(Instant::now() < deadline, "never {count} lines: {text}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_line_over_max_record_bytes_counts_in_the_checkpoint_followed_or_not() {
    // Three times the cap... and many reads long: skipped as it is read.
    let long = "Z".repeat(3_000_000);
    for (name, first, last) in [
        ("x.log", "x1", "after"),
        ("x.jsonl", "{\"m\":1}", "{\"m\":2}"),
    ] {
        for follow in [false, true] {
            let dir = Dir::new();
            let contents = format!("{first}\n{long}\n{last}\n");
            let path = dir.file(name, &contents);
            let checkpoint = dir.path("cp.json");
            let output = dir.path("out.jsonl");
            let args = ["file", &path, "--max-record-bytes", "1K"];
            let args = [&args[..], &["--checkpoint", &checkpoint, "-o", &output]].concat();
            let code = if follow {
                let mut child = streamer()
                    .args(&args)
                    .arg("--follow")
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                wait_for_lines(&output, 2);
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                exit_within(&mut child, Duration::from_secs(20), "after SIGTERM")
            } else {
                run(&args).code
            };
            let what = format!("{name}, follow: {follow}");
            assert_eq!(code, 3, "{what}: the long line is rejected");
            assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 2);
            assert_eq!(
                saved(&checkpoint, name),
                Some((contents.len() as u64, 3)),
                "{what}"
            );

            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(b"{\"m\":4}\n").unwrap();
            let again = run(&["file", &path, "--checkpoint", &checkpoint, "--origin"]);
            assert_eq!(again.code, 0, "{what}: {}", again.stderr);
            let record: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
            assert_eq!(record["_origin"]["line"], 4, "{what}: {}", again.stdout);
        }
    }
}

#[test]
fn limit_with_checkpoint_ends_after_the_last_record_written() {
    let dir = Dir::new();
    let numbers: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    let log = dir.file("x.log", &numbers);
    let rows: String = (1..=100_000).map(|n| format!("{n},v{n}\n")).collect();
    let csv = dir.file("x.csv", format!("a,b\n{rows}"));
    for (path, first_field) in [(&log, "message"), (&csv, "a")] {
        let checkpoint = dir.path(&format!("{}.cp", file_name(path).display()));
        let mut seen = Vec::new();
        for _ in 0..3 {
            let out = run(&["file", path, "--limit", "5", "--checkpoint", &checkpoint]);
            assert_eq!(out.code, 0, "{}", out.stderr);
            for line in out.stdout.lines() {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                seen.push(
                    record[first_field]
                        .as_str()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap(),
                );
            }
        }
        assert_eq!(seen, (1..=15).collect::<Vec<_>>(), "{path}");
    }
    assert_eq!(saved(&dir.path("x.log.cp"), "x.log"), Some((36, 15)));
    let csv_end = 4
        + (1..=15)
            .map(|n: u64| format!("{n},v{n}\n").len() as u64)
            .sum::<u64>();
    assert_eq!(saved(&dir.path("x.csv.cp"), "x.csv"), Some((csv_end, 16)));
}

/// A CSV file whose header is longer than the fingerprint of first bytes.
fn wide_csv(rows: impl Iterator<Item = String>) -> String {
    let columns: Vec<String> = (0..40).map(|i| format!("column_number_{i:02}")).collect();
    let mut text = columns.join(",") + "\n";
    assert!(text.len() > 256);
    for row in rows {
        text.push_str(&row);
        text.push_str(&",x".repeat(39));
        text.push('\n');
    }
    text
}

#[test]
fn a_file_rewritten_with_the_same_header_and_inode_is_read_from_its_start_with_a_warning() {
    let dir = Dir::new();
    let csv = dir.file("x.csv", wide_csv((0..20).map(|i| format!("old{i}"))));
    let checkpoint = dir.path("cp.json");
    let first = run(&["file", &csv, "--checkpoint", &checkpoint]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout.lines().count(), 20);

    // Rewritten in place: the same inode and the same first 256 bytes.
    let ino = inode(&csv);
    std::fs::write(&csv, wide_csv((0..150).map(|i| format!("new{i}")))).unwrap();
    assert_eq!(inode(&csv), ino);
    let again = run(&["file", &csv, "--checkpoint", &checkpoint]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let firsts: Vec<String> = again
        .stdout
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["column_number_00"].as_str().unwrap().to_string()
        })
        .collect();
    let expected: Vec<String> = (0..150).map(|i| format!("new{i}")).collect();
    assert_eq!(firsts, expected);
    let warnings = common::warning_messages(&again.stderr);
    assert_eq!(warnings.len(), 1, "{}", again.stderr);
    assert!(
        warnings[0].contains("x.csv: not resumed at byte")
            && warnings[0].contains("read from its start: it was replaced"),
        "{}",
        again.stderr
    );

    // Shorter than the saved offset: the same.
    std::fs::write(&csv, wide_csv((0..2).map(|i| format!("short{i}")))).unwrap();
    let short = run(&["file", &csv, "--checkpoint", &checkpoint]);
    assert_eq!(short.stdout.lines().count(), 2, "{}", short.stderr);
    assert!(short.stderr.contains("it is shorter"), "{}", short.stderr);
}

#[test]
fn a_checkpoint_entry_without_the_bytes_before_its_offset_is_still_resumed() {
    let dir = Dir::new();
    let log = dir.file("o.log", "one\ntwo\nthree\n");
    let checkpoint = dir.path("cp.json");
    assert_eq!(run(&["file", &log, "--checkpoint", &checkpoint]).code, 0);
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = json["files"][0].as_object_mut().unwrap();
    assert!(entry.remove("before").is_some(), "{text}");
    entry.insert("offset".into(), 8.into());
    entry.insert("line".into(), 2.into());
    std::fs::write(&checkpoint, json.to_string()).unwrap();
    let again = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(
        again.stdout, "{\"message\":\"three\"}\n",
        "{}",
        again.stderr
    );
}

#[test]
fn entries_of_rotated_files_that_are_gone_are_dropped() {
    let dir = Dir::new();
    let log = dir.file("app.log", "");
    let old = dir.path("app.log.1");
    let checkpoint = dir.path("cp.json");
    let out = dir.path("out.jsonl");
    let mut child = streamer()
        .args([
            "file",
            "--follow",
            "--poll-interval",
            "20ms",
            "--checkpoint",
        ])
        .args([
            &checkpoint,
            "--checkpoint-interval",
            "10ms",
            "-o",
            &out,
            &log,
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("err.txt")).unwrap())
        .spawn()
        .unwrap();
    for i in 0..50 {
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(file, "line {i}").unwrap();
        wait_for_lines(&out, i + 1);
        let _ = std::fs::remove_file(&old);
        std::fs::rename(&log, &old).unwrap();
        std::fs::write(&log, "").unwrap();
    }
    std::fs::write(&log, "last\n").unwrap();
    wait_for_lines(&out, 51);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let code = exit_within(&mut child, Duration::from_secs(20), "after SIGTERM");
    assert_eq!(code, 0, "{}", dir.read("err.txt"));
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = json["files"].as_array().unwrap().len();
    assert!(entries <= 2, "{entries} entries: {text}");
    assert_eq!(saved(&checkpoint, "app.log"), Some((5, 1)), "{text}");

    let again = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, "", "{}", again.stderr);
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), 51);
}

#[test]
fn a_checkpoint_through_a_symlink_is_its_target_locked_and_kept_a_link() {
    let dir = Dir::new();
    let log = dir.file("app.log", "a\n");
    let checkpoint = dir.path("tw.ck");
    let link = dir.path("tw2.ck");
    std::os::unix::fs::symlink("tw.ck", &link).unwrap();
    // The same checkpoint through the link: refused, not run beside it.
    let (second, second_out) = beside_a_run_holding(&dir, &log, &checkpoint, &link);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!(
            "cannot read {link}: another streamer holds this checkpoint (its lock \
             {checkpoint}.lock is taken)"
        )),
        "{}",
        second.stderr
    );
    assert!(!std::path::Path::new(&second_out).exists());
    // Through the link, a run resumes from the target, and saves there.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"b\n")
        .unwrap();
    let third = run(&["file", &log, "--checkpoint", &link]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.stdout, "{\"message\":\"b\"}\n");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let saved = std::fs::read_to_string(&checkpoint).unwrap();
    assert!(saved.contains("\"offset\": 4"), "{saved}");
}

/// The output's records per file: (file name) → the line numbers, in
/// order; fails on a line that is not a whole record.
fn whole_records(output: &[u8]) -> BTreeMap<String, Vec<u64>> {
    let text = std::str::from_utf8(output).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the output ends in a torn record: {:?}",
        &text[text.len().saturating_sub(200)..]
    );
    let mut lines: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("a torn record ({error}): {line:?}"));
        let path = record["_origin"]["path"].as_str().unwrap();
        let name = path.rsplit('/').next().unwrap().to_string();
        lines
            .entry(name)
            .or_default()
            .push(record["_origin"]["line"].as_u64().unwrap());
    }
    lines
}

#[test]
fn a_second_signal_exits_at_once_between_two_records_and_the_checkpoint_is_not_past_them() {
    // A write may end right where the pipe is full: a few rounds, so
    // that one stops in the middle of a write.
    for round in 0..4 {
        stopped_by_two_signals(round);
    }
}

/// One run of `file -F` stopped by two signals while its output write is
/// stuck on a full pipe; every record written is whole.
fn stopped_by_two_signals(round: u32) {
    let dir = Dir::new();
    const ROWS: u64 = 2_000_000;
    let big: String = (1..=ROWS).map(|n| format!("big.log {n}\n")).collect();
    let log = dir.file("big.log", big);
    let checkpoint = dir.path("cp.json");
    // Written to a pipe whose reader here stops once it has 4 MiB, until
    // the second signal came: a write of the output is then in progress.
    let mut child = streamer()
        .args(["file", "-F", "-v", "--origin", "--checkpoint", &checkpoint])
        .args(["--checkpoint-interval", "10ms", &log])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (paused_tx, paused) = std::sync::mpsc::channel();
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    let mut stdout = child.stdout.take().unwrap();
    let pipe = std::os::fd::AsRawFd::as_raw_fd(&stdout);
    let reader = {
        std::thread::spawn(move || {
            use std::io::Read;
            let (mut output, mut buffer) = (Vec::new(), vec![0; 1000]);
            loop {
                match stdout.read(&mut buffer).unwrap() {
                    0 => return output,
                    read => output.extend_from_slice(&buffer[..read]),
                }
                if output.len() >= 4 << 20 && paused_tx.send(()).is_ok() {
                    resumed.recv().unwrap();
                }
            }
        })
    };
    // stderr's lines, as they come.
    let (line_tx, lines) = std::sync::mpsc::channel();
    let errors = {
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut text = String::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let line = line.unwrap();
                let _ = line_tx.send(line.clone());
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
    };
    let wait_for = |wanted: &str| loop {
        let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
        if line.contains(wanted) {
            return;
        }
    };
    paused.recv_timeout(Duration::from_secs(30)).unwrap();
    drop(paused);
    // The pipe fills while its reader here waits, and the pipeline behind
    // it up to its bounds: the records read and not written are then many
    // more than the pipe holds, however slow the reading was, and the
    // drain's write is stuck.
    let pid = child.id() as libc::pid_t;
    // SAFETY: fcntl(2) and ioctl(2) on the pipe the reader holds open.
    let capacity = unsafe { libc::fcntl(pipe, libc::F_GETPIPE_SZ) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut held: libc::c_int = 0;
        // SAFETY: as above; FIONREAD writes one int.
        assert_eq!(unsafe { libc::ioctl(pipe, libc::FIONREAD, &mut held) }, 0);
        // Full: a write is blocked once every page of the pipe is taken,
        // and the first page may be part read, the last part written.
        if held > capacity - 2 * 4096 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pipe never filled: {held} bytes"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid, libc::SIGINT) };
    // The second signal once the first was taken (two at once are one).
    wait_for("stopping: writing out the records already read");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGINT) };
    wait_for("streamer: second signal: exiting at once");
    resume.send(()).unwrap();
    let code = exit_within(&mut child, Duration::from_secs(20), "after two signals");
    let output = reader.join().unwrap();
    let stderr = errors.join().unwrap();
    assert_eq!(code, 130, "{stderr}");
    let lines = whole_records(&output);
    let written = lines.get("big.log").cloned().unwrap_or_default();
    assert!(
        (written.len() as u64) < ROWS,
        "the run was not stopped before its end"
    );
    assert_eq!(written, (1..=written.len() as u64).collect::<Vec<_>>());
    let (_, at) = saved(&checkpoint, "big.log").unwrap_or_default();
    assert!(
        at <= written.len() as u64,
        "checkpoint at line {at}, past the {} records written",
        written.len()
    );
    eprintln!(
        "two signals, round {round}: {} records written, checkpoint at line {at}",
        written.len()
    );
}

#[test]
fn a_file_rotated_between_two_runs_is_resumed_under_its_new_name_even_after_a_save() {
    let dir = Dir::new();
    let log = dir.file("f.log", "old 1\nold 2\n");
    let checkpoint = dir.path("cp.json");
    let first = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout.lines().count(), 2);

    // Rotated while no run reads it; the new f.log is long, so that the
    // checkpoint is saved while it is read, before f.log.1 is opened.
    std::fs::rename(&log, dir.path("f.log.1")).unwrap();
    let rows: String = (1..=300_000).map(|n| format!("new {n}\n")).collect();
    dir.file("f.log", &rows);
    let pattern = format!("{}/f.log*", dir.root().display());
    let args = ["file", &pattern, "--checkpoint", &checkpoint];
    let second = run(&[&args[..], &["--checkpoint-interval", "1ms"]].concat());
    assert_eq!(second.code, 0, "{}", second.stderr);
    let old = second
        .stdout
        .lines()
        .filter(|line| line.contains("old"))
        .count();
    assert_eq!(old, 0, "f.log.1 read again: {}", second.stderr);
    assert_eq!(second.stdout.lines().count(), 300_000);
    assert_eq!(saved(&checkpoint, "f.log.1"), Some((12, 2)));
}

#[test]
fn a_resumed_run_refuses_to_empty_its_output_and_appends_with_dash_a() {
    let dir = Dir::new();
    let lines: String = (1..=1000).map(|n| format!("r{n}\n")).collect();
    let log = dir.file("app.log", lines);
    let checkpoint = dir.path("cp.json");
    let out = dir.path("out.jsonl");
    let first = run(&[
        "file",
        &log,
        "--checkpoint",
        &checkpoint,
        "-n",
        "600",
        "-o",
        &out,
    ]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 600);

    // The first 600 records are in `out` and nowhere else: the checkpoint
    // is past them, so emptying `out` would lose them for good.
    let emptied = run(&["file", &log, "--checkpoint", &checkpoint, "-o", &out]);
    assert_eq!(emptied.code, 2, "{}", emptied.stderr);
    assert!(
        emptied.stderr.contains(&format!(
            "-o {out}: the file is not empty, and this run resumes from the positions saved \
             in --checkpoint {checkpoint}: starting the file afresh would destroy the records \
             those positions cover. Add --append (-a) to add to it, or give another path"
        )),
        "{}",
        emptied.stderr
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), written);

    let appended = run(&["file", &log, "--checkpoint", &checkpoint, "-a", "-o", &out]);
    assert_eq!(appended.code, 0, "{}", appended.stderr);
    let expected: String = (1..=1000)
        .map(|n| format!("{{\"message\":\"r{n}\"}}\n"))
        .collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
}

#[test]
fn a_checkpoint_or_companion_that_is_no_regular_file_is_refused_at_start() {
    let dir = Dir::new();
    let log = dir.file("app.log", "x\n");
    let checkpoint = dir.path("cp.json");
    // A FIFO would block the run in its open, waiting for a writer.
    let name = std::ffi::CString::new(checkpoint.as_str()).unwrap();
    // SAFETY: mkfifo(3) reads the NUL-terminated name.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let fifo = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(fifo.code, 2, "{}", fifo.stderr);
    assert!(
        fifo.stderr.contains(&format!(
            "--checkpoint {checkpoint} is a FIFO, not a regular file: give --checkpoint the \
             path of a file"
        )),
        "{}",
        fifo.stderr
    );
    std::fs::remove_file(&checkpoint).unwrap();

    // A folder where a save writes its temporary file would fail only at
    // the first save, after records were written.
    let temporary = format!("{checkpoint}.tmp");
    std::fs::create_dir(&temporary).unwrap();
    let folder = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(folder.code, 2, "{}", folder.stderr);
    assert_eq!(folder.stdout, "");
    assert!(
        folder.stderr.contains(&format!(
            "--checkpoint {checkpoint}: its temporary file {temporary} is a folder, not a \
             regular file: remove it, or give --checkpoint another path"
        )),
        "{}",
        folder.stderr
    );
    std::fs::remove_dir(&temporary).unwrap();

    // An empty file (made with `touch` beforehand) holds no position yet.
    std::fs::write(&checkpoint, "").unwrap();
    let empty = run(&["file", &log, "--checkpoint", &checkpoint]);
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert_eq!(empty.stdout, "{\"message\":\"x\"}\n");
    assert_eq!(saved(&checkpoint, "app.log"), Some((2, 1)));
}
