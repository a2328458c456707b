//! A huge CSV header costs memory in proportion to its bytes, and no
//! header makes choosing the `--origin` key quadratic.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{exit_within, streamer, Dir};

/// Runs `streamer ARGS` to its end; returns its exit status and its peak
/// resident memory in bytes.
// The child is reaped by wait4(2), which reports its peak memory too.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str]) -> (i32, u64) {
    let child = streamer()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status));
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_header_of_two_million_copies_of_a_name_stays_small() {
    let dir = Dir::new();
    let header = vec!["x"; 2_000_000].join(",") + "\n";
    let path = dir.file("h.csv", &header);
    let (code, peak) = run_measured(&["file", &path, "-o", "/dev/null"]);
    assert_eq!(code, 0);
    // Each column's name is `x_N` (up to 9 bytes), its key 14: one buffer
    // of keys and an offset each is ~36 MB here, with the transient state
    // of renaming; a String, a Vec and set entries per column took 470 MB.
    assert!(
        peak < 150 << 20,
        "peak RSS {} MB for a {} MB header",
        peak >> 20,
        header.len() >> 20
    );
}

#[test]
fn the_origin_key_is_chosen_in_linear_time() {
    let dir = Dir::new();
    let copies = 100_000;
    let header = vec!["_origin"; copies].join(",");
    let row = vec!["1"; copies].join(",");
    let path = dir.file("o.csv", format!("{header}\n{row}\n"));
    let out = dir.path("out.jsonl");
    let mut child = streamer()
        .args(["--origin", "file", &path, "-o", &out])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Trying `_origin_N` against every column name took a minute.
    let code = exit_within(
        &mut child,
        Duration::from_secs(20),
        "choosing the origin key",
    );
    assert_eq!(code, 0);
    let line = std::fs::read_to_string(&out).unwrap();
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).unwrap();
    assert_eq!(object.len(), copies + 1);
    assert_eq!(object[&format!("_origin_{copies}")], "1");
    let origin = &object[&format!("_origin_{}", copies + 1)];
    assert_eq!(origin["line"], 2, "{origin}");
}
