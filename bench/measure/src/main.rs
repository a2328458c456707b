//! Runs a command and writes to REPORT, once it has exited:
//! `START_NS END_NS MAXRSS_KB STATUS` — CLOCK_MONOTONIC nanoseconds (the
//! clock of Python's time.monotonic_ns()) at spawn and at exit, the peak
//! resident set of the command (and of the children it waited for), and its
//! exit code, or minus the signal that killed it.
//!
//! usage: bench-measure REPORT -- COMMAND [ARGS...]
//!
//! Why not measure from Python directly: the peak RSS that Linux reports for
//! a process includes the memory of the process it was forked from, up to
//! its exec. A child of the benchmark script would report at least the
//! script's own peak; a child of this small program reports its own.
//!
//! SIGTERM and SIGINT are ignored here (not in the command), so that a
//! signal sent to the whole process group stops the command and still gets
//! its report written. Linux only (64-bit `struct rusage`).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut [i64; 18]) -> i32;
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    fn signal(sig: i32, handler: usize) -> usize;
}

const CLOCK_MONOTONIC: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;
const RU_MAXRSS: usize = 4; // after ru_utime and ru_stime, two i64 each

fn now_ns() -> i128 {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.len() < 3 || args[1] != "--" {
        eprintln!("usage: bench-measure REPORT -- COMMAND [ARGS...]");
        exit(2);
    }
    let report = &args[0];
    let mut cmd = Command::new(&args[2]);
    cmd.args(&args[3..]);
    unsafe {
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        cmd.pre_exec(|| {
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            Ok(())
        });
    }
    let start = now_ns();
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "bench-measure: cannot run {}: {e}",
                args[2].to_string_lossy()
            );
            exit(127);
        }
    };
    let pid = child.id() as i32;
    let mut status = 0i32;
    let mut usage = [0i64; 18];
    loop {
        let r = unsafe { wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            eprintln!("bench-measure: wait4: {err}");
            exit(125);
        }
    }
    let end = now_ns();
    // WIFEXITED: low 7 bits zero; exit code in bits 8..16; else the signal.
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        -(status & 0x7f)
    };
    let line = format!("{start} {end} {} {code}\n", usage[RU_MAXRSS]);
    if let Err(e) = std::fs::File::create(report).and_then(|mut f| f.write_all(line.as_bytes())) {
        eprintln!(
            "bench-measure: cannot write {}: {e}",
            report.to_string_lossy()
        );
        exit(125);
    }
    exit(if code >= 0 { code } else { 128 - code });
}
