//! A small harness for `streamer tcp` end-to-end tests that need only a
//! server, its stdout and its log: the port comes from the `listening on`
//! line, and every wait is on a line with a deadline, never a sleep.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Lines of one of the server's outputs, as they arrive.
pub struct Lines {
    rx: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Lines {
    fn spawn(reader: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits up to `within` for a line containing `needle`; returns it.
    pub fn wait_for_within(&mut self, needle: &str, within: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line containing {needle:?} within {within:?}; so far:\n{}",
                        self.tail()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "closed without a line containing {needle:?}; so far:\n{}",
                        self.tail()
                    )
                }
            }
        }
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_within(needle, DEADLINE)
    }

    /// Reads every line until the stream closes.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.rx.recv_timeout(DEADLINE) {
            self.seen.push(line);
        }
        &self.seen
    }

    fn tail(&self) -> String {
        let from = self.seen.len().saturating_sub(20);
        self.seen[from..].join("\n")
    }
}

/// A running `streamer tcp --bind 127.0.0.1:0 ARGS`, writing to stdout.
pub struct Server {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The output, line by line.
    pub stdout: Lines,
    /// The log, line by line.
    pub stderr: Lines,
}

impl Server {
    /// Starts the server and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with("127.0.0.1:0", args, |_| {})
    }

    /// Starts the server on `bind`, its command first changed by `setup`,
    /// and waits for its `listening on` line.
    pub fn start_with(bind: &str, args: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_streamer"));
        command
            .args(["tcp", "--bind", bind])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        setup(&mut command);
        let mut child = command.spawn().unwrap();
        let stdout = Lines::spawn(child.stdout.take().unwrap());
        let mut stderr = Lines::spawn(child.stderr.take().unwrap());
        let line = stderr.wait_for("streamer: listening on ");
        let addr = line["streamer: listening on ".len()..].parse().unwrap();
        Server {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// A new client.
    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).unwrap()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `--metrics` address it printed (`streamer: metrics on http://A/metrics`).
    pub fn metrics_addr(&mut self) -> String {
        let line = self.stderr.wait_for("streamer: metrics on http://");
        let addr = &line[line.find("http://").unwrap() + "http://".len()..];
        addr.strip_suffix("/metrics").unwrap().to_string()
    }

    /// SIGTERM, then waits (with the deadline) for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        self.wait()
    }

    /// Sends SIGTERM (the stop in two steps, for tests that act between
    /// the signal and the exit: clients finishing their sends).
    pub fn terminate(&self) {
        // SAFETY: sends a signal to our own child process.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
    }

    /// Waits (with the deadline) for the exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave its server running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `{"message":"<text>"}` as the lines format writes it (`text` needs no escaping).
pub fn message(text: &str) -> String {
    format!("{{\"message\":\"{text}\"}}")
}

/// The dead-letter line of a rejected TCP record, without its line end
/// (`raw` needs no escaping).
pub fn dead_letter(peer: SocketAddr, conn: u64, record: u64, reason: &str, raw: &str) -> String {
    format!(
        "{{\"origin\":{{\"peer\":\"{peer}\",\"conn\":{conn},\"record\":{record}}},\"reason\":\"{reason}\",\"raw\":\"{raw}\"}}"
    )
}

/// A length-delimited frame.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// A scrape of `http://addr/metrics`: the body.
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_string()
}

/// The value of one series (`name` or `name{labels}`, as written).
pub fn metric(scraped: &str, series: &str) -> Option<f64> {
    scraped.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

/// Scrapes `addr` until `series` has `value`; returns that scrape.
pub fn wait_for_metric(addr: &str, series: &str, value: f64) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let scraped = scrape(addr);
        if metric(&scraped, series) == Some(value) {
            return scraped;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {value} within {DEADLINE:?}; the last scrape:\n{scraped}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}
