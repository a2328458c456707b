//! End-to-end tests of big CSV headers (issue 9, point 9): duplicate names
//! are renamed in linear time, never onto a real name, and a client's huge
//! header stalls neither other connections nor a signal.

mod common;
mod tcp_server;

use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{exit_within, run, streamer, summary, Dir};
use tcp_server::Server;

#[test]
fn duplicate_names_are_numbered_and_never_take_a_real_name() {
    let dir = Dir::new();
    let path = dir.file("dups.csv", "x,x,x_2,,c4,x\n1,2,3,4,5,6\n");
    let out = run(&["file", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The real `x_2` and `c4` keep their names; generated ones go around them.
    assert_eq!(
        out.stdout,
        "{\"x\":\"1\",\"x_3\":\"2\",\"x_2\":\"3\",\"c4_2\":\"4\",\"c4\":\"5\",\"x_4\":\"6\"}\n"
    );
}

#[test]
fn fifty_thousand_copies_of_a_name_are_renamed_at_once() {
    let dir = Dir::new();
    let copies = 50_000;
    let header = vec!["x"; copies].join(",");
    let row: Vec<String> = (1..=copies).map(|n| n.to_string()).collect();
    let path = dir.file("wide.csv", format!("{header}\n{}\n", row.join(",")));
    let mut child = streamer()
        .args(["file", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    });
    // Quadratic renaming took minutes here; linear takes well under a second.
    let code = exit_within(&mut child, Duration::from_secs(10), "renaming 50,000 names");
    assert_eq!(code, 0);
    let line = reader.join().unwrap();
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).unwrap();
    assert_eq!(object.len(), copies);
    assert_eq!(object["x"], "1");
    assert_eq!(object["x_2"], "2");
    assert_eq!(object[&format!("x_{copies}")], copies.to_string());
}

/// Bytes process `pid` has read so far (`rchar` of /proc/PID/io).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let line = io.lines().find(|line| line.starts_with("rchar:")).unwrap();
    line["rchar:".len()..].trim().parse().unwrap()
}

#[test]
fn sigterm_is_honoured_during_a_huge_header() {
    let header = vec!["x"; 100_000].join(",") + "\n";
    let mut child = streamer()
        .args(["file", "--format", "csv", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let header_len = header.len() as u64;
    // Written beside, as a pipe takes only part of it at a time; stdin then
    // stays open, so only the signal can end the run.
    let writer = std::thread::spawn(move || {
        stdin.write_all(header.as_bytes()).unwrap();
        stdin
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while bytes_read(child.id()) < header_len {
        assert!(Instant::now() < deadline, "the header was never read");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: sends a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let code = exit_within(&mut child, Duration::from_secs(10), "after SIGTERM");
    assert_eq!(code, 0);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        summary(&stderr).starts_with("streamer: 0 records read, 0 written, 0 rejected"),
        "{stderr}"
    );
    drop(writer.join().unwrap());
}

#[test]
fn a_huge_header_from_one_client_does_not_stall_another() {
    let mut server = Server::start(&["--format", "csv", "--batch-records", "1"]);
    let mut steady = server.connect();
    steady.write_all(b"n\n1\n").unwrap();
    server.stdout.wait_for("{\"n\":\"1\"}");

    let mut wide = server.connect();
    let header = vec!["x"; 100_000].join(",") + "\n";
    wide.write_all(header.as_bytes()).unwrap();
    wide.write_all(&b"v,".repeat(99_999)).unwrap();
    wide.write_all(b"v\n").unwrap();
    wide.shutdown(Shutdown::Write).unwrap();

    // While the wide header is handled, the steady client's records keep
    // flowing: each comes out promptly after it is sent.
    for n in 2..=50 {
        steady.write_all(format!("{n}\n").as_bytes()).unwrap();
        server
            .stdout
            .wait_for_within(&format!("{{\"n\":\"{n}\"}}"), Duration::from_secs(2));
    }
    steady.shutdown(Shutdown::Write).unwrap();
    let wide_row = server
        .stdout
        .wait_for_within("\"x_100000\":\"v\"", Duration::from_secs(20));
    assert!(wide_row.starts_with("{\"x\":\"v\",\"x_2\":\"v\""));
    let status = server.stop();
    assert_eq!(status.code(), Some(0));
    let steady_rows: Vec<&String> = server
        .stdout
        .drain()
        .iter()
        .filter(|line| line.starts_with("{\"n\":"))
        .collect();
    let expected: Vec<String> = (1..=50).map(|n| format!("{{\"n\":\"{n}\"}}")).collect();
    assert_eq!(steady_rows, expected.iter().collect::<Vec<_>>());
    let summary = server.stderr.wait_for(" records read");
    assert!(
        summary.starts_with("streamer: 51 records read, 51 written, 0 rejected"),
        "{summary}"
    );
}
