//! Faults of the outputs, through the real binary (issue 14): a full
//! device, a disk that fills mid-run (RLIMIT_FSIZE on the child, which
//! makes its writes past the limit fail with EFBIG as a full disk fails
//! them with ENOSPC), an output deleted or renamed while written, a
//! dead-letter file that cannot be opened or fills. Each ends in one
//! clear error and a non-zero exit, never a hang, and no checkpoint runs
//! past what the output holds.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{exit_within, file_size_limit, saved, streamer, Dir};

/// How long any run or awaited condition may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// `count` JSON lines `{"id":N,"pad":"..."}`, about 100 bytes each, as the
/// NDJSON output writes them back unchanged.
fn json_lines(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|id| format!("{{\"id\":{id},\"pad\":\"{}\"}}\n", "x".repeat(80)))
        .collect()
}

/// Runs `command` to its end (stdout and stderr captured), failing the
/// test if it takes longer than [`DEADLINE`].
fn run_within(command: &mut Command) -> Output {
    run_to(command, Stdio::piped())
}

/// [`run_within`] with stdout going to `stdout` (captured if piped).
fn run_to(command: &mut Command, stdout: Stdio) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .expect("spawn streamer");
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).unwrap();
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|pipe| Box::new(pipe) as _));
    let stderr = read(child.stderr.take().map(|pipe| Box::new(pipe) as _));
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("streamer still runs after {DEADLINE:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The lines of stderr that are errors.
fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("streamer: error:"))
        .collect()
}

/// The whole lines of `bytes` (a last line without its `\n` is torn).
fn whole_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn dev_full_as_the_output_is_one_error_and_exit_1() {
    let dir = Dir::new();
    let input = dir.file("in.jsonl", json_lines(0, 20_000));
    let named = run_within(streamer().args(["file", &input, "-o", "/dev/full"]));
    let full = std::fs::File::create("/dev/full").unwrap();
    let redirected = run_to(streamer().args(["file", &input]), full.into());
    for (output, name) in [(named, "/dev/full"), (redirected, "<stdout>")] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert_eq!(
            errors(&stderr),
            [format!(
                "streamer: error: cannot write {name}: No space left on device (os error 28)"
            )],
            "{stderr}"
        );
        assert!(stderr.contains(" 0 written"), "{stderr}");
    }
}

#[test]
fn a_disk_that_fills_mid_run_stops_with_no_checkpoint_past_the_output() {
    const LIMIT: u64 = 256 * 1024;
    let dir = Dir::new();
    let text = json_lines(0, 20_000);
    let input = dir.file("in.jsonl", &text);
    let out = dir.path("out.jsonl");
    let checkpoint = dir.path("cp.json");
    let output = run_within(file_size_limit(
        streamer().args(["file", &input, "-o", &out, "--checkpoint", &checkpoint]),
        LIMIT,
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        errors(&stderr),
        [format!(
            "streamer: error: cannot write {out}: File too large (os error 27)"
        )],
        "{stderr}"
    );
    let written = std::fs::read(&out).unwrap();
    assert_eq!(
        written.len() as u64,
        LIMIT,
        "the output fills up to the limit"
    );
    assert!(
        text.as_bytes().starts_with(&written),
        "the output is the input's start"
    );
    let lines = whole_lines(&written);
    let whole_bytes = text
        .split_inclusive('\n')
        .take(lines)
        .map(str::len)
        .sum::<usize>();
    let (offset, line) = saved(&checkpoint, "in.jsonl").expect("a checkpoint entry");
    assert!(
        line as usize <= lines && offset as usize <= whole_bytes,
        "the checkpoint ({offset} bytes, line {line}) runs past the {lines} whole lines written"
    );

    // Room again: the same command with --append resumes at the
    // checkpoint, and every record is there, none lost.
    let resumed = run_within(streamer().args([
        "file",
        &input,
        "-o",
        &out,
        "--append",
        "--checkpoint",
        &checkpoint,
    ]));
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let all = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<u64> = all
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // The first run's whole lines, then the resumed run from the
    // checkpoint's line on (the records after it, written but never
    // acknowledged, come again), to the end.
    let expected: Vec<u64> = (0..lines as u64).chain(line..20_000).collect();
    assert!(
        ids == expected,
        "{} records, not the {} expected",
        ids.len(),
        expected.len()
    );
}

/// `streamer file -F LOG -o OUT --checkpoint CP` running in the background.
struct Following {
    child: std::process::Child,
    stderr: std::path::PathBuf,
}

impl Following {
    fn start(dir: &Dir, log: &str, out: &str, checkpoint: &str) -> Following {
        let stderr = dir.root().join("stderr");
        let child = streamer()
            .args(["file", "-F", log, "-o", out, "--checkpoint", checkpoint])
            .args(["--poll-interval", "50ms"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Following { child, stderr }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `path` has `lines` whole lines.
    fn wait_for_lines(&mut self, path: &str, lines: usize) {
        let deadline = Instant::now() + DEADLINE;
        while whole_lines(&std::fs::read(path).unwrap_or_default()) < lines {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "ended early: {}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "{path} never had {lines} lines: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &str, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn an_output_deleted_mid_run_ends_the_run_before_its_records_are_acknowledged() {
    let dir = Dir::new();
    let log = dir.file("app.jsonl", json_lines(0, 100));
    let (out, checkpoint) = (dir.path("out.jsonl"), dir.path("cp.json"));
    let mut running = Following::start(&dir, &log, &out, &checkpoint);
    running.wait_for_lines(&out, 100);
    std::fs::remove_file(&out).unwrap();
    append(&log, &json_lines(100, 100));
    let code = exit_within(
        &mut running.child,
        DEADLINE,
        "a run whose output was deleted",
    );
    let stderr = running.log();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        errors(&stderr),
        [format!(
            "streamer: error: cannot write {out}: the file was deleted while being written: \
             stopping before any record written into it is acknowledged (a rerun reads them again)"
        )],
        "{stderr}"
    );
    // The records written into the deleted file were never acknowledged:
    // the next run reads them again.
    let (_, line) = saved(&checkpoint, "app.jsonl").expect("a checkpoint entry");
    assert_eq!(
        line, 100,
        "the checkpoint covers only what the file held when deleted"
    );
}

#[test]
fn an_output_renamed_mid_run_is_warned_about_once_and_still_written() {
    let dir = Dir::new();
    let log = dir.file("app.jsonl", json_lines(0, 100));
    let (out, checkpoint) = (dir.path("out.jsonl"), dir.path("cp.json"));
    let mut running = Following::start(&dir, &log, &out, &checkpoint);
    running.wait_for_lines(&out, 100);
    let rotated = dir.path("out.jsonl.1");
    std::fs::rename(&out, &rotated).unwrap();
    let warning = format!(
        "{out}: this path no longer names the output file (renamed or replaced?): \
         records go on to the file, wherever it is now"
    );
    // Lines keep coming, so the sink writes (and looks) again and again.
    let deadline = Instant::now() + DEADLINE;
    let mut next = 100;
    while !running.log().contains(&warning) {
        assert!(Instant::now() < deadline, "no warning: {}", running.log());
        append(&log, &json_lines(next, 10));
        next += 10;
        running.wait_for_lines(&rotated, next);
    }
    append(&log, &json_lines(next, 10));
    running.wait_for_lines(&rotated, next + 10);
    // SAFETY: a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(running.child.id() as i32, libc::SIGTERM) },
        0
    );
    let code = exit_within(
        &mut running.child,
        DEADLINE,
        "a run whose output was renamed",
    );
    let stderr = running.log();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert!(!std::path::Path::new(&out).exists(), "no new file was made");
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap(),
        json_lines(0, next + 10),
        "every record went on to the renamed file"
    );
}

#[test]
fn a_dead_letter_file_that_cannot_be_opened_is_refused_at_start() {
    let dir = Dir::new();
    let input = dir.file("in.jsonl", "{\"id\":1}\nnot json\n");
    let out = dir.file("out.jsonl", "kept\n");
    let missing = dir.path("no-such-dir/dead.jsonl");
    for (dead_letter, reason) in [
        (missing.as_str(), "No such file or directory (os error 2)"),
        (dir.root().to_str().unwrap(), "Is a directory (os error 21)"),
    ] {
        let output =
            run_within(streamer().args(["file", &input, "-o", &out, "--dead-letter", dead_letter]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(
            errors(&stderr),
            [format!(
                "streamer: error: cannot write {dead_letter}: {reason}"
            )],
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "kept\n",
            "the output was emptied"
        );
    }
}

#[test]
fn dev_full_as_the_dead_letter_file_fails_the_run_at_the_first_rejection() {
    let dir = Dir::new();
    let mut text = json_lines(0, 50);
    text.push_str("not json\n");
    text.push_str(&json_lines(50, 50));
    let input = dir.file("in.jsonl", &text);
    let checkpoint = dir.path("cp.json");
    let output = run_within(streamer().args([
        "file",
        &input,
        "--dead-letter",
        "/dev/full",
        "--checkpoint",
        &checkpoint,
    ]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        errors(&stderr),
        ["streamer: error: cannot write /dev/full: No space left on device (os error 28)"],
        "{stderr}"
    );
    // The rejected record is nowhere: the checkpoint stays before it.
    let line = saved(&checkpoint, "in.jsonl").map_or(0, |(_, line)| line);
    assert!(
        line <= 50,
        "the checkpoint passed the lost rejection (line {line})"
    );
}

#[test]
fn a_dead_letter_file_that_fills_mid_run_loses_nothing_silently() {
    const LIMIT: u64 = 64 * 1024;
    let dir = Dir::new();
    // Every other line is bad: each makes a dead letter of about 150 bytes.
    let text: String = (0..4000)
        .map(|id| match id % 2 {
            0 => format!("{{\"id\":{id}}}\n"),
            _ => format!("not json {id} {}\n", "y".repeat(40)),
        })
        .collect();
    let input = dir.file("in.jsonl", &text);
    let (dead, checkpoint) = (dir.path("dead.jsonl"), dir.path("cp.json"));
    let output = run_within(file_size_limit(
        streamer().args([
            "file",
            &input,
            "--dead-letter",
            &dead,
            "--checkpoint",
            &checkpoint,
        ]),
        LIMIT,
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        errors(&stderr),
        [format!(
            "streamer: error: cannot write {dead}: File too large (os error 27)"
        )],
        "{stderr}"
    );
    // Every line up to the checkpoint is in the output or, whole, in the
    // dead-letter file: what the checkpoint calls done is somewhere.
    let line = saved(&checkpoint, "in.jsonl").map_or(0, |(_, line)| line) as usize;
    let written: Vec<u64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let dead_text = std::fs::read_to_string(&dead).unwrap();
    let dead_lines: Vec<u64> = dead_text
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["origin"]["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    for id in 0..line as u64 {
        let found = match id % 2 {
            0 => written.contains(&id),
            _ => dead_lines.contains(&(id + 1)),
        };
        assert!(
            found,
            "line {} is behind the checkpoint (line {line}) but nowhere",
            id + 1
        );
    }
    assert!(dead_text.len() as u64 <= LIMIT);
}
