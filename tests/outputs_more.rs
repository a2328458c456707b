//! Outputs attacked (issue 9 follow-up, findings D1–D19): one file reached
//! through dangling symlinks, nothing emptied by a run that fails at start,
//! a named pipe with no reader, `--append` onto CSV and torn lines, CSV
//! records with keys outside the columns, `--dead-letter -`, a broken
//! stderr, and the written count of a failed Kafka output.

mod common;
mod kafka_support;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use common::{exit_within, run, streamer, summary, warning_messages, Dir};

// ---------------------------------------------------------------- D1

#[test]
fn output_and_dead_letter_on_one_new_file_through_symlinks_are_refused() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n3\n");
    let root = dir.root();
    std::os::unix::fs::symlink("target.jsonl", root.join("link.jsonl")).unwrap();
    std::os::unix::fs::symlink("other.jsonl", root.join("l5a")).unwrap();
    std::os::unix::fs::symlink("other.jsonl", root.join("l5b")).unwrap();
    let cases: [[&str; 2]; 3] = [
        ["target.jsonl", "link.jsonl"],
        ["link.jsonl", "target.jsonl"],
        ["l5a", "l5b"],
    ];
    for [output, dead_letter] in cases {
        let out: common::Run = streamer()
            .args(["file", &input, "-o", output, "--dead-letter", dead_letter])
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into();
        assert_eq!(
            out.code, 2,
            "-o {output} --dead-letter {dead_letter}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("-o and --dead-letter name the same file"),
            "{}",
            out.stderr
        );
        // Nothing is left behind: the file the run created is removed.
        assert!(!root.join("target.jsonl").exists(), "{output}");
        assert!(!root.join("other.jsonl").exists(), "{output}");
    }
}

// ---------------------------------------------------------------- D18

#[test]
fn a_run_that_fails_at_start_empties_no_output() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n");
    let kept = "{\"kept\":1}\n";
    let dead = dir.file("dl.jsonl", kept);
    let out_path = dir.file("out.jsonl", kept);
    std::fs::create_dir(dir.root().join("folder")).unwrap();
    let missing = dir.path("missing.csv");
    let folder = dir.path("folder");
    let no_folder = dir.path("nodir/out.jsonl");
    let cases: [Vec<&str>; 4] = [
        vec!["file", &missing, "-o", &out_path, "--dead-letter", &dead],
        vec!["file", &folder, "-o", &out_path, "--dead-letter", &dead],
        vec!["file", &input, "-o", &no_folder, "--dead-letter", &dead],
        vec!["file", &input, "-o", &out_path, "--dead-letter", &no_folder],
    ];
    for case in cases {
        let out = run(&case);
        assert_eq!(out.code, 1, "{case:?}: {}", out.stderr);
        assert_eq!(dir.read("dl.jsonl"), kept, "{case:?}");
        assert_eq!(dir.read("out.jsonl"), kept, "{case:?}");
    }
}

#[test]
fn a_kafka_output_topic_that_does_not_exist_empties_no_dead_letter_file() {
    let brokers = kafka_support::bootstrap();
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n");
    let dead = dir.file("dl.jsonl", "{\"kept\":1}\n");
    let topic = format!("kafka://{}", kafka_support::unique("no.such.topic"));
    let out = kafka_support::run_with_deadline(
        kafka_support::streamer(brokers)
            .args(["file", &input, "-o", &topic, "--dead-letter", &dead])
            .args(["-X", "allow.auto.create.topics=false"]),
        Duration::from_secs(60),
    );
    let out: common::Run = out.into();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(dir.read("dl.jsonl"), "{\"kept\":1}\n");
}

// ---------------------------------------------------------------- D2

fn mkfifo(path: &str) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until some thread of process `pid` waits in the kernel for the
/// other end of a named pipe to be opened.
fn wait_until_blocked_opening_a_fifo(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let blocked = tasks.flatten().any(|task| {
            std::fs::read_to_string(task.path().join("wchan"))
                .is_ok_and(|w| w == "wait_for_partner")
        });
        if blocked {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never blocked opening the pipe"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_stops_a_run_whose_output_pipe_has_no_reader() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n3\n");
    let fifo = dir.path("nobody.jsonl");
    mkfifo(&fifo);
    for flag in ["-o", "--dead-letter"] {
        let mut child = streamer()
            .args(["file", &input, flag, &fifo])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until_blocked_opening_a_fifo(child.id());
        // SAFETY: sends a signal to our own child process.
        assert_eq!(
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        let code = exit_within(&mut child, Duration::from_secs(5), "after SIGTERM");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(code, 0, "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} {fifo}: no reader opened the named pipe")),
            "{stderr}"
        );
        assert!(
            summary(&stderr).starts_with("streamer: 0 records read, 0 written, 0 rejected"),
            "{stderr}"
        );
    }
}

// ---------------------------------------------------------------- D5

#[test]
fn csv_appended_to_a_csv_file_follows_its_header() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n");
    // The same columns in another order: rows follow the file's order.
    let reordered = dir.file("reordered.csv", "b,a\n9,8\n");
    let out = run(&[
        "file",
        &input,
        "-a",
        "-o",
        &reordered,
        "--output-format",
        "csv",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.read("reordered.csv"), "b,a\n9,8\n2,1\n");
    // Other columns: the records do not fit and are rejected, not written
    // under the wrong names.
    let other = dir.file("other.csv", "x,y\n1,2\n");
    let dead = dir.path("dl.jsonl");
    let out = run(&[
        "file",
        &input,
        "-a",
        "-o",
        &other,
        "--output-format",
        "csv",
        "--dead-letter",
        &dead,
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(dir.read("other.csv"), "x,y\n1,2\n");
    assert_eq!(
        summary(&out.stderr).split(" in ").next().unwrap(),
        "streamer: 1 records read, 0 written, 1 rejected"
    );
    let line: serde_json::Value = serde_json::from_str(&dir.read("dl.jsonl")).unwrap();
    assert_eq!(
        line["reason"],
        "keys a, b are not columns of the CSV output (its header is x,y)"
    );
}

#[test]
fn append_cuts_a_torn_last_line_that_is_no_whole_record() {
    let dir = Dir::new();
    let csv_in = dir.file("in.csv", "a,b\n5,6\n");
    let append_csv =
        |path: &str| run(&["file", &csv_in, "-a", "-o", path, "--output-format", "csv"]);
    // A last line with another number of cells than the header is torn.
    let torn_csv = dir.file("out.csv", "a,b\n1,2\n3");
    let out = append_csv(&torn_csv);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.read("out.csv"), "a,b\n1,2\n5,6\n");
    assert_eq!(
        warning_messages(&out.stderr),
        [format!(
            "{torn_csv}: removed its last 1 bytes, a line cut short (a run stopped while \
             writing it; its record was never acknowledged, so a resumed run writes it again): \"3\""
        )]
    );
    // A last row that may be whole is kept (the file may not be ours), and
    // a stray quote earlier in the file does not make its rows a tail.
    let whole_csv = dir.file("whole.csv", "a,b\n7,8\"inch\n9,9");
    let out = append_csv(&whole_csv);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.read("whole.csv"), "a,b\n7,8\"inch\n9,9\n5,6\n");
    assert!(warning_messages(&out.stderr).is_empty(), "{}", out.stderr);

    let jsonl_in = dir.file("in.jsonl", "{\"n\":1}\n");
    let torn = dir.file("out.jsonl", "{\"n\":0}\n{\"n\":");
    let out = run(&["file", &jsonl_in, "-a", "-o", &torn]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.read("out.jsonl"), "{\"n\":0}\n{\"n\":1}\n");
    // A whole JSON value with only its newline missing is kept.
    for (name, last) in [("whole.jsonl", "{\"n\":2}"), ("array.jsonl", "[1,2]")] {
        let whole = dir.file(name, format!("{{\"n\":0}}\n{last}"));
        let out = run(&["file", &jsonl_in, "-a", "-o", &whole]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            dir.read(name),
            format!("{{\"n\":0}}\n{last}\n{{\"n\":1}}\n")
        );
        assert!(warning_messages(&out.stderr).is_empty(), "{}", out.stderr);
    }
}

// ---------------------------------------------------------------- D6

#[test]
fn a_record_with_keys_outside_the_csv_columns_is_rejected() {
    let dir = Dir::new();
    let input = dir.file(
        "het.jsonl",
        "{\"a\":1,\"b\":2}\n{\"a\":5}\n{\"a\":6,\"b\":7,\"c\":8}\n",
    );
    let dead = dir.path("dl.jsonl");
    let out = run(&[
        "file",
        &input,
        "--output-format",
        "csv",
        "--dead-letter",
        &dead,
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "a,b\n1,2\n5,\n");
    assert_eq!(
        summary(&out.stderr).split(" in ").next().unwrap(),
        "streamer: 3 records read, 2 written, 1 rejected"
    );
    let line: serde_json::Value = serde_json::from_str(&dir.read("dl.jsonl")).unwrap();
    assert_eq!(line["origin"]["line"], 3, "{line}");
    assert_eq!(line["raw"], "{\"a\":6,\"b\":7,\"c\":8}");
    assert_eq!(
        line["reason"],
        "key c is not a column of the CSV output (its header is a,b)"
    );
    // Two CSV files with other columns: the second file's rows are rejected.
    let first = dir.file("p1.csv", "id,name\n1,ann\n");
    let second = dir.file("p2.csv", "id,email\n2,bob@x\n");
    let out = run(&["file", &first, &second, "--output-format", "csv"]);
    assert_eq!((out.code, out.stdout.as_str()), (3, "id,name\n1,ann\n"));
    // An empty first record makes no columns for the rest to vanish into.
    let out = common::run_with_stdin(
        &["file", "-", "--format", "jsonl", "--output-format", "csv"],
        b"{}\n{\"a\":1,\"b\":2}\n",
    );
    assert_eq!((out.code, out.stdout.as_str()), (3, "\"\"\n\"\"\n"));
}

#[test]
fn on_error_stop_ends_the_run_at_a_record_outside_the_csv_columns() {
    let dir = Dir::new();
    let input = dir.file("het.jsonl", "{\"a\":1}\n{\"b\":2}\n{\"a\":3}\n");
    let out = run(&[
        "file",
        &input,
        "--output-format",
        "csv",
        "--on-error",
        "stop",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("het.jsonl:2") && out.stderr.contains("key b is not a column"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- D12

#[test]
fn dead_letter_dash_is_refused() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1\n");
    let out: common::Run = streamer()
        .args(["file", &input, "--dead-letter", "-"])
        .current_dir(dir.root())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--dead-letter -: "), "{}", out.stderr);
    assert!(!dir.root().join("-").exists());
}

// ---------------------------------------------------------------- D19

/// Runs `streamer ARGS` with `stderr` as its standard error; returns the exit code.
fn run_with_stderr(args: &[&str], stderr: Stdio) -> i32 {
    let mut child = streamer()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    exit_within(&mut child, Duration::from_secs(60), "broken stderr")
}

#[test]
fn a_broken_stderr_neither_crashes_the_run_nor_changes_its_status() {
    let dir = Dir::new();
    let mut csv = String::from("a,b\n");
    for i in 0..20_000 {
        if i % 2 == 0 {
            csv.push_str(&format!("{i},v\n"));
        } else {
            csv.push_str(&format!("{i}\n"));
        }
    }
    let input = dir.file("mix.csv", &csv);
    let clean = dir.file("clean.csv", "a,b\n1,2\n3,4\n");
    let out_path = dir.path("out.jsonl");
    let dead = dir.path("dl.jsonl");
    let broken_pipe = || {
        let mut fds = [0; 2];
        // SAFETY: pipe fills two descriptors we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both are open and owned by nobody else.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(reader);
        Stdio::from(writer)
    };
    let full = || Stdio::from(std::fs::File::create("/dev/full").unwrap());
    for (name, stderr) in [("closed pipe", broken_pipe()), ("/dev/full", full())] {
        let code = run_with_stderr(
            &["file", &input, "-o", &out_path, "--dead-letter", &dead],
            stderr,
        );
        assert_eq!(code, 3, "{name}");
        assert_eq!(dir.read("out.jsonl").lines().count(), 10_000, "{name}");
        assert_eq!(dir.read("dl.jsonl").lines().count(), 10_000, "{name}");
    }
    for (name, stderr) in [("closed pipe", broken_pipe()), ("/dev/full", full())] {
        let code = run_with_stderr(&["file", &clean, "-o", &out_path], stderr);
        assert_eq!(code, 0, "{name}");
        assert_eq!(dir.read("out.jsonl").lines().count(), 2, "{name}");
    }
}

// ---------------------------------------------------------------- D16

#[test]
fn a_failed_kafka_output_counts_what_it_delivered() {
    let brokers = kafka_support::bootstrap();
    let topic = kafka_support::unique("too-large");
    kafka_support::create_topic(brokers, &topic, 1);
    let dir = Dir::new();
    let big = "x".repeat(3_000_000);
    let input = dir.file("big.csv", format!("a,b\n1,2\n{big},y\n3,4\n"));
    let out = kafka_support::run_with_deadline(
        kafka_support::streamer(brokers).args(["file", &input, "-o", &format!("kafka://{topic}")]),
        Duration::from_secs(60),
    );
    let out: common::Run = out.into();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("too large"), "{}", out.stderr);
    let delivered = kafka_support::read_topic(brokers, &topic);
    assert!(!delivered.is_empty(), "{}", out.stderr);
    assert_eq!(
        summary(&out.stderr).split(" in ").next().unwrap(),
        // The summary adds up: what the broker confirmed is written, the
        // rest of the 3 records read were not (the run failed).
        format!(
            "streamer: {n} records read, {n} written, 0 rejected ({} more read but not written: \
             the run stopped early)",
            3 - delivered.len(),
            n = delivered.len()
        )
    );
}

#[test]
fn append_without_an_output_file_is_refused() {
    // Ignored, it let `-a --output-format csv >> out.csv` add a second
    // header under the shell's append.
    let dir = Dir::new();
    let input = dir.file("in.csv", "a,b\n1,2\n");
    let out = run(&["file", &input, "-a", "--output-format", "csv"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains(
            "--append (-a) applies to an -o FILE or --dead-letter FILE, and neither is given"
        ),
        "{}",
        out.stderr
    );
}
