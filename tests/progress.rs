//! The live progress line, end to end: the real binary run under
//! util-linux `script`, so that its stderr is a terminal as a person's is;
//! the tests read what the terminal was sent (the transcript), escape
//! codes and all.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Dir;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// `streamer ARGS` under `script`, stderr (and stdout) on a terminal of
/// 160 columns;
/// `TERM` names one that can redraw a line (a `dumb` one gets no line).
fn on_terminal(args: &[&str]) -> Command {
    // A pty starts without a size; 160 columns fit every line unwrapped.
    on_terminal_of(160, args)
}

/// [`on_terminal`], `columns` wide.
fn on_terminal_of(columns: u16, args: &[&str]) -> Command {
    let mut line = format!(
        "stty cols {columns} rows 40; exec {}",
        env!("CARGO_BIN_EXE_streamer")
    );
    for arg in args {
        assert!(!arg.contains(['\'', ' ']), "plain arguments only: {arg}");
        line.push(' ');
        line.push_str(arg);
    }
    let mut command = Command::new("script");
    command
        .args(["-qfec", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end; returns what the terminal got.
fn transcript(command: &mut Command) -> String {
    let output = command.output().expect("util-linux script");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A CSV file big enough that its read takes a few redraws.
fn big_csv(dir: &Dir) -> String {
    let mut text = String::from("id,name,value\n");
    for i in 0..300_000 {
        text.push_str(&format!("{i},name {i},{}\n", i * 3));
    }
    dir.file("big.csv", text)
}

/// True if `text` shows a file's progress line: bytes of the total, the
/// rate, the time left.
fn shows_file_progress(text: &str, total: &str) -> bool {
    text.contains(&format!(" of {total} [")) && text.contains("B/s, ETA ")
}

#[test]
fn a_file_read_on_a_terminal_shows_bytes_of_its_total_then_the_summary() {
    let dir = Dir::new();
    let input = big_csv(&dir);
    let size = std::fs::metadata(&input).unwrap().len();
    let out = dir.path("out.jsonl");
    let text = transcript(&mut on_terminal(&["file", &input, "-o", &out]));
    // indicatif's binary units, as it prints the total.
    let total = format!("{:.2} MiB", size as f64 / (1024.0 * 1024.0));
    assert!(shows_file_progress(&text, &total), "{text:?}");
    // Cleared (erased in place) before the summary, which stays.
    let summary = text
        .find("streamer: 300000 records read")
        .expect("the summary");
    assert!(text[..summary].ends_with("\r\x1b[2K"), "{text:?}");
    assert!(!text[summary..].contains("ETA"), "{text:?}");
}

#[test]
fn no_line_with_no_progress_with_q_or_when_stderr_is_a_pipe() {
    let dir = Dir::new();
    let input = big_csv(&dir);
    let out = dir.path("out.jsonl");
    let text = transcript(&mut on_terminal(&[
        "file",
        &input,
        "-o",
        &out,
        "--no-progress",
    ]));
    assert!(!text.contains("ETA") && !text.contains("B/s"), "{text:?}");
    assert!(
        text.starts_with("streamer: 300000 records read"),
        "{text:?}"
    );

    let text = transcript(&mut on_terminal(&["file", &input, "-o", &out, "-q"]));
    assert_eq!(text, "", "-q: no line, no summary");

    let output = Command::new(env!("CARGO_BIN_EXE_streamer"))
        .args(["file", &input, "-o", &out])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("streamer: 300000 records read"),
        "{stderr:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
}

/// A transcript growing as `script` runs: every byte so far.
fn follow(child: &mut std::process::Child) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let writer = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            writer.lock().unwrap().push_str(&text);
        }
    });
    seen
}

/// Waits until the transcript holds `needle`; returns the transcript.
fn wait_for(seen: &Mutex<String>, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = seen.lock().unwrap().clone();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stream_shows_records_rate_buffer_and_clients_and_log_lines_stay_whole() {
    let mut child = on_terminal(&[
        "tcp",
        "--bind",
        "127.0.0.1:0",
        "--format",
        "jsonl",
        "--limit",
        "20",
        "-o",
        "/dev/null",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let seen = follow(&mut child);
    let text = wait_for(&seen, "\r\n");
    let addr = text
        .lines()
        .find_map(|line| line.strip_prefix("streamer: listening on "))
        .expect("the listening line")
        .trim_end_matches('\r')
        .to_string();
    let mut client = TcpStream::connect(&addr).unwrap();
    for i in 0..10 {
        writeln!(client, "{{\"n\":{i}}}").unwrap();
    }
    let text = wait_for(&seen, "10 records written, ");
    let line = text
        .rsplit("\r\x1b[2K")
        .find(|l| l.contains("10 records written"))
        .unwrap();
    assert!(line.contains(" records/s, buffer "), "{line:?}");
    assert!(line.contains("% full, clients connected: 1"), "{line:?}");

    // A warning while the line is drawn: the line is erased first, so the
    // warning starts a line of its own.
    writeln!(client, "not json").unwrap();
    let text = wait_for(&seen, "rejected 127.0.0.1:");
    let warning = text.find(" WARN").unwrap();
    let before = &text[..warning];
    let start = before.rfind(['\r', '\n']).unwrap();
    let between = &before[start..];
    assert!(
        between == "\r\x1b[2K\x1b[33m" || between == "\r\x1b[2K",
        "the warning shares a line with {between:?} in {text:?}"
    );
    for i in 10..20 {
        writeln!(client, "{{\"n\":{i}}}").unwrap();
    }
    let text = wait_for(&seen, "streamer: 21 records read, 20 written, 1 rejected");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{text:?}");
}

/// The text of each drawing of the line in `transcript`: what follows
/// each carriage return, escape codes removed.
fn drawings(transcript: &str) -> Vec<String> {
    transcript
        .split('\r')
        .map(|piece| {
            let mut text = String::new();
            let mut chars = piece.chars();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    // CSI: ESC [ parameters, then one final letter.
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else if c != '\n' {
                    text.push(c);
                }
            }
            text
        })
        .filter(|text| !text.is_empty())
        .collect()
}

#[test]
fn on_a_narrow_terminal_the_line_is_cut_to_its_width_not_wrapped() {
    let dir = Dir::new();
    let input = big_csv(&dir);
    let out = dir.path("out.jsonl");
    let text = transcript(&mut on_terminal_of(
        30,
        &["file", &input, "-o", &out, "--csv-workers", "1"],
    ));
    let drawn: Vec<String> = drawings(&text)
        .into_iter()
        .filter(|line| !line.starts_with("streamer: "))
        .collect();
    assert!(
        drawn.iter().any(|line| line.contains(" of ")),
        "no progress line: {text:?}"
    );
    for line in &drawn {
        assert!(line.chars().count() <= 30, "{line:?} in {text:?}");
    }
    assert!(text.contains("streamer: 300000 records read"), "{text:?}");
}
