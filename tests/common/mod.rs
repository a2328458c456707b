//! Helpers for end-to-end tests: run the real `streamer` binary on real
//! files and pipes.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub fn streamer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streamer"))
}

/// What one run printed and how it exited.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
            code: output.status.code().expect("exited, not killed"),
        }
    }
}

/// Runs `streamer ARGS` with `stdin` as its input.
pub fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = streamer()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("streamer starts");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output.into()
}

/// Runs `streamer ARGS` with no input.
pub fn run(args: &[&str]) -> Run {
    run_with_stdin(args, b"")
}

/// A temporary folder holding test files.
pub struct Dir(tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    /// Writes `contents` to `name` and returns its path as a string.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// The path `name` would have, as a string (nothing is created).
    pub fn path(&self, name: &str) -> String {
        self.0.path().join(name).to_str().unwrap().to_string()
    }

    pub fn root(&self) -> &Path {
        self.0.path()
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.path().join(name)).unwrap()
    }
}

/// The summary line the binary prints last on stderr.
pub fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .rfind(|line| line.starts_with("streamer: ") && line.contains(" records read"))
        .unwrap_or_else(|| panic!("no summary line in: {stderr}"))
}

/// `path` with no directory part, for messages.
pub fn file_name(path: &str) -> PathBuf {
    PathBuf::from(path).file_name().unwrap().into()
}

/// The messages of a run's warnings, without their level.
pub fn warning_messages(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|line| line.split_once("WARN ").map(|(_, message)| message))
        .collect()
}

/// Waits for `child` to exit within `within`; kills it and fails if not.
pub fn exit_within(
    child: &mut std::process::Child,
    within: std::time::Duration,
    what: &str,
) -> i32 {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().expect("exited, not killed");
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {within:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The checkpoint's entry for the file named `name`: (offset, line).
pub fn saved(checkpoint: &str, name: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(checkpoint).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["files"].as_array().unwrap().iter().find_map(|entry| {
        entry["path"].as_str().unwrap().ends_with(name).then(|| {
            (
                entry["offset"].as_u64().unwrap(),
                entry["line"].as_u64().unwrap(),
            )
        })
    })
}

/// `command` limited to files of at most `bytes` bytes, with SIGXFSZ
/// ignored so that a write past the limit fails with EFBIG instead of
/// killing the process.
pub fn file_size_limit(command: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        })
    }
}
