//! End-to-end tests of named pipes as inputs (issue 9, point 6): each is
//! opened once, and a signal ends a run waiting for a pipe's writer.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;

use common::{exit_within, streamer, summary, Dir};

/// Makes a named pipe at `path`.
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
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
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_named_pipe_is_opened_once_and_read_whole() {
    let dir = Dir::new();
    for round in 0..5 {
        let fifo = dir.path(&format!("f{round}.csv"));
        mkfifo(&fifo);
        let mut child = streamer()
            .args(["file", &fifo])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A writer that opens the pipe once, as a shell redirection does.
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            pipe.write_all(b"a,b\n1,2\n")
        });
        let code = exit_within(
            &mut child,
            std::time::Duration::from_secs(10),
            "reading a fifo",
        );
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert_eq!(
            (code, stdout.as_str()),
            (0, "{\"a\":\"1\",\"b\":\"2\"}\n"),
            "round {round}"
        );
        writer.join().unwrap().unwrap();
    }
}

#[test]
fn sigterm_stops_a_run_blocked_opening_a_named_pipe() {
    let dir = Dir::new();
    let fifo = dir.path("nobody.csv");
    mkfifo(&fifo);
    let mut child = streamer()
        .args(["file", &fifo])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_blocked_opening_a_fifo(child.id());
    // SAFETY: sends a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let code = exit_within(
        &mut child,
        std::time::Duration::from_secs(5),
        "after SIGTERM",
    );
    assert_eq!(code, 0);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        summary(&stderr).starts_with("streamer: 0 records read, 0 written, 0 rejected"),
        "{stderr}"
    );
}
