//! SIGTERM while 64 TCP clients send as fast as they can (issue 14): the
//! server stops accepting, reads every open connection to its end, and
//! writes every line each client sent: sent equals written, per client,
//! in order.

mod tcp_server;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tcp_server::{Server, DEADLINE};

const CLIENTS: usize = 64;
/// Lines per write.
const CHUNK: usize = 50;
/// The server's --drain-timeout: what the clients sent before the signal
/// may take this long to read (a debug build reads slowly).
const DRAIN: Duration = Duration::from_secs(300);

/// The scraped value of `metric` (no labels) from `--metrics` at `addr`.
fn scrape(addr: &str, metric: &str) -> u64 {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{metric} ")))
        .unwrap_or_else(|| panic!("no {metric} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// One client: sends `{"c":C,"n":N}` lines in chunks until `stop`, then
/// closes its side and waits for the server to close its own. Returns
/// how many lines it sent, or why it did not end cleanly.
fn client(
    mut stream: TcpStream,
    id: usize,
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Result<usize, String> {
    // A small send buffer keeps what is in flight at the signal (and so
    // the drain) small, as in a debug build the server reads far slower.
    let bytes: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt(2) on this stream's own descriptor, reading an int.
    let set = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_SNDBUF");
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let chunk: String = (next..next + CHUNK)
            .map(|n| format!("{{\"c\":{id},\"n\":{n}}}\n"))
            .collect();
        stream
            .write_all(chunk.as_bytes())
            .map_err(|error| format!("client {id}: write after {next} lines: {error}"))?;
        next += CHUNK;
        sent.store(next, Ordering::Relaxed);
    }
    stream.shutdown(Shutdown::Write).unwrap();
    stream.set_read_timeout(Some(DRAIN)).unwrap();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(0) => Ok(next),
        Ok(n) => Err(format!("client {id}: the server sent {n} bytes")),
        Err(error) => Err(format!("client {id}: no clean close: {error}")),
    }
}

#[test]
fn sigterm_under_load_from_64_clients_writes_every_line_sent() {
    let mut server = Server::start(&[
        "-v",
        "--format",
        "jsonl",
        "--metrics",
        "127.0.0.1:0",
        "--drain-timeout",
        "5m",
    ]);
    let metrics = server.stderr.wait_for("streamer: metrics on http://");
    let metrics = metrics["streamer: metrics on http://".len()..]
        .trim_end_matches("/metrics")
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Vec<Arc<AtomicUsize>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let stream = server.connect();
            let (sent, stop) = (sent[id].clone(), stop.clone());
            std::thread::spawn(move || client(stream, id, sent, stop))
        })
        .collect();
    // Every client accepted, and each well into its sending.
    let deadline = Instant::now() + DEADLINE;
    while scrape(&metrics, "streamer_tcp_connections_accepted_total") < CLIENTS as u64
        || sent
            .iter()
            .any(|sent| sent.load(Ordering::Relaxed) < 10 * CHUNK)
    {
        assert!(Instant::now() < deadline, "the clients never all got going");
        std::thread::sleep(Duration::from_millis(10));
    }

    server.terminate();
    server.stderr.wait_for("stopped accepting connections");
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<usize> = clients
        .into_iter()
        .map(|client| {
            client
                .join()
                .unwrap()
                .unwrap_or_else(|error| panic!("{error}"))
        })
        .collect();
    let status = server.wait();
    assert!(status.success(), "{status}");

    let lines = server.stdout.drain().to_vec();
    let mut next = vec![0; CLIENTS];
    for line in &lines {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let (id, n) = (
            record["c"].as_u64().unwrap() as usize,
            record["n"].as_u64().unwrap(),
        );
        assert_eq!(
            n, next[id] as u64,
            "client {id}: a line lost, repeated or out of order"
        );
        next[id] += 1;
    }
    assert_eq!(next, sent, "written per client, against sent");
    let total: usize = sent.iter().sum();
    let summary = format!("streamer: {total} records read, {total} written, 0 rejected in ");
    server.stderr.wait_for(&summary);
    eprintln!("{total} lines from {CLIENTS} clients, all written");
}
