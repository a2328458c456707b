//! `--metrics ADDR`, end to end: the real binary serving Prometheus text
//! while it runs a TCP server, follows a file, consumes a Kafka topic; the
//! tests scrape `/metrics` as Prometheus would and poll it (with a
//! deadline) until the counters reach what was sent, then check them
//! exactly.

mod kafka_support;
mod tcp_server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_support::{bootstrap, create_topic, numbered, produce, unique, Background};
use tcp_server::Server;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// The answer to `GET path` at `addr`: its status line, headers and body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole HTTP answer");
    (head.to_string(), body.to_string())
}

/// A scrape of `/metrics`, checked to be one.
fn scrape(addr: &str) -> String {
    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

/// The value of one series (`name` or `name{labels}`, as written).
fn value(scraped: &str, series: &str) -> Option<f64> {
    scraped.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

/// Scrapes `addr` until `done` holds for a scrape; returns that scrape.
fn scrape_until(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let scraped = scrape(addr);
        if done(&scraped) {
            return scraped;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape with {what} within {DEADLINE:?}; the last:\n{scraped}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The metrics address a run printed (`streamer: metrics on http://A/metrics`).
fn metrics_addr(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find_map(|line| line.strip_prefix("streamer: metrics on http://"))?;
    Some(line.strip_suffix("/metrics")?.to_string())
}

/// Waits for a background run to print its metrics address.
fn wait_for_metrics_addr(run: &mut Background) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(addr) = metrics_addr(&run.log()) {
            return addr;
        }
        if let Some(status) = run.child.try_wait().unwrap() {
            panic!("streamer ended ({status}) early; its log:\n{}", run.log());
        }
        assert!(
            Instant::now() < deadline,
            "no metrics address:\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_tcp_run_counts_what_its_clients_sent() {
    let mut server = Server::start(&["--format", "jsonl", "--metrics", "127.0.0.1:0"]);
    let line = server.stderr.wait_for("streamer: metrics on http://");
    let addr = metrics_addr(&line).unwrap();

    let mut client = server.connect();
    let mut sent = String::new();
    for i in 0..500 {
        sent.push_str(&format!("{{\"n\":{i}}}\n"));
    }
    // Three bad records: two that are no JSON, one that is no object.
    sent.push_str("not json\n{\"open\":\n[1,2]\n");
    client.write_all(sent.as_bytes()).unwrap();

    let tcp = |s: &str, series: &str| value(s, &format!("{series}{{source=\"tcp\"}}"));
    let rejected = |s: &str, reason: &str| {
        value(
            s,
            &format!("streamer_records_rejected_total{{source=\"tcp\",reason=\"{reason}\"}}"),
        )
    };
    let scraped = scrape_until(&addr, "500 written and 3 rejected", |s| {
        tcp(s, "streamer_records_written_total") == Some(500.0)
            && rejected(s, "invalid_json").unwrap_or(0.0)
                + rejected(s, "not_an_object").unwrap_or(0.0)
                == 3.0
    });
    assert_eq!(tcp(&scraped, "streamer_records_read_total"), Some(503.0));
    assert_eq!(rejected(&scraped, "invalid_json"), Some(2.0));
    assert_eq!(rejected(&scraped, "not_an_object"), Some(1.0));
    assert_eq!(rejected(&scraped, "too_long"), Some(0.0));
    // A TCP line's frame keeps its line end: every byte sent.
    assert_eq!(
        tcp(&scraped, "streamer_bytes_read_total"),
        Some(sent.len() as f64)
    );
    let written: usize = (0..500).map(|i| format!("{{\"n\":{i}}}\n").len()).sum();
    assert_eq!(
        tcp(&scraped, "streamer_bytes_written_total"),
        Some(written as f64)
    );
    assert_eq!(value(&scraped, "streamer_tcp_connections_open"), Some(1.0));
    assert_eq!(
        value(&scraped, "streamer_tcp_connections_accepted_total"),
        Some(1.0)
    );
    let writes = value(&scraped, "streamer_sink_write_seconds_count").unwrap();
    assert!(writes >= 1.0, "{scraped}");
    assert_eq!(
        value(&scraped, "streamer_sink_write_seconds_bucket{le=\"+Inf\"}"),
        Some(writes)
    );
    assert_eq!(
        value(&scraped, "streamer_channel_capacity{channel=\"raw\"}"),
        Some(16.0)
    );
    assert!(value(&scraped, "streamer_channel_fill{channel=\"decoded\"}").is_some());
    assert!(value(&scraped, "streamer_backpressure_seconds_total").is_some());

    drop(client);
    let scraped = scrape_until(&addr, "the client gone", |s| {
        value(s, "streamer_tcp_connections_open") == Some(0.0)
    });
    assert_eq!(
        value(
            &scraped,
            "streamer_tcp_connections_closed_total{reason=\"client\"}"
        ),
        Some(1.0)
    );

    let (head, body) = get(&addr, "/other");
    assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{head}");
    assert_eq!(body, "not found: try /metrics\n");
    assert!(
        server.stop().code() == Some(3),
        "some records were rejected"
    );
}

#[test]
fn a_followed_file_shows_its_checkpoint_at_its_end_and_what_the_filter_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("app.jsonl");
    let lines: String = (0..1000).map(|i| format!("{{\"line\":{i}}}\n")).collect();
    std::fs::write(&input, &lines).unwrap();
    let input = input.to_str().unwrap().to_string();
    let out = dir.path().join("out.jsonl");
    let checkpoint = dir.path().join("checkpoint.json");
    let mut run = Background::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_streamer"))
            .env_remove("RUST_LOG")
            .args(["file", "--follow", &input, "--metrics", "127.0.0.1:0", "-o"])
            .arg(&out)
            .arg("--checkpoint")
            .arg(&checkpoint)
            // Dropped records move the checkpoint as written ones do.
            .args(["--filter", "line >= 900"]),
        &dir.path().join("stderr"),
    );
    let addr = wait_for_metrics_addr(&mut run);
    let offset = format!("streamer_file_checkpoint_offset{{file=\"{input}\"}}");
    let scraped = scrape_until(&addr, "the checkpoint at the file's end", |s| {
        value(s, &offset) == Some(lines.len() as f64)
    });
    assert_eq!(
        value(&scraped, "streamer_records_written_total{source=\"file\"}"),
        Some(100.0)
    );
    assert_eq!(
        value(&scraped, "streamer_records_filtered_total{source=\"file\"}"),
        Some(900.0)
    );
    assert_eq!(
        value(&scraped, "streamer_records_read_total{source=\"file\"}"),
        Some(1000.0)
    );
    // A file's records without their line ends.
    assert_eq!(
        value(&scraped, "streamer_bytes_read_total{source=\"file\"}"),
        Some((lines.len() - 1000) as f64)
    );
    // Two series of this metric would mean a file counted twice.
    let series = scraped
        .lines()
        .filter(|line| line.starts_with("streamer_file_checkpoint_offset{"))
        .count();
    assert_eq!(series, 1, "{scraped}");
    run.signal("TERM");
    assert!(run.wait(DEADLINE).success(), "{}", run.log());
    let written = std::fs::read_to_string(&out).unwrap();
    let expected: String = (900..1000).map(|i| format!("{{\"line\":{i}}}\n")).collect();
    assert_eq!(written, expected);
}

#[test]
fn a_kafka_run_shows_lag_reaching_zero_and_its_commits() {
    let brokers = bootstrap();
    let topic = unique("metrics");
    let group = unique("metrics-group");
    create_topic(brokers, &topic, 3);
    let messages = numbered(300, 3);
    produce(brokers, &topic, &messages);
    let dir = tempfile::tempdir().unwrap();
    let mut run = Background::start(
        kafka_support::streamer(brokers)
            .args(["--metrics", "127.0.0.1:0", "-o"])
            .arg(dir.path().join("out.jsonl"))
            .args(["kafka", "-t", &topic, "-g", &group]),
        &dir.path().join("stderr"),
    );
    let addr = wait_for_metrics_addr(&mut run);
    let series = |name: &str, partition: i32| {
        format!("streamer_kafka_{name}{{topic=\"{topic}\",partition=\"{partition}\"}}")
    };
    // Each partition holds 100 messages: offsets 0..=99, its end 100.
    let scraped = scrape_until(&addr, "lag 0 and every offset committed", |s| {
        (0..3).all(|p| {
            value(s, &series("consumer_lag", p)) == Some(0.0)
                && value(s, &series("committed_offset", p)) == Some(100.0)
        })
    });
    for partition in 0..3 {
        assert_eq!(
            value(&scraped, &series("end_offset", partition)),
            Some(100.0)
        );
    }
    assert_eq!(
        value(&scraped, "streamer_records_written_total{source=\"kafka\"}"),
        Some(300.0)
    );
    let values: usize = messages
        .iter()
        .map(|m| m.value.as_ref().unwrap().len())
        .sum();
    assert_eq!(
        value(&scraped, "streamer_bytes_read_total{source=\"kafka\"}"),
        Some(values as f64)
    );
    run.signal("TERM");
    assert!(run.wait(DEADLINE).success(), "{}", run.log());
}

#[test]
fn a_taken_metrics_port_fails_the_run_before_it_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"a\":1}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    std::fs::write(&out, "kept\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_streamer"))
        .args(["file", "--metrics", &addr, "-o"])
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "streamer: error: cannot listen on {addr} (--metrics): "
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&out)).unwrap(),
        "kept\n",
        "nothing was opened"
    );
}

#[test]
fn a_metrics_address_without_a_host_or_a_port_is_a_usage_error() {
    for (addr, why) in [
        ("bogus", "no port"),
        ("127.0.0.1:", "`` is not a port (0 to 65535)"),
        ("0.0.0.0:99999", "`99999` is not a port (0 to 65535)"),
        (":0", "no host"),
        ("http://127.0.0.1:0", "no host"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_streamer"))
            .args(["file", "--metrics", addr, "-"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{addr}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!(
                "error: --metrics {addr:?}: {why}: give HOST:PORT, as 127.0.0.1:9898, [::1]:9898 or localhost:0\n"
            )),
            "{addr}: {stderr}"
        );
    }
}

#[test]
fn clients_that_never_finish_their_request_do_not_lock_out_a_scraper() {
    let mut server = Server::start(&["--format", "jsonl", "--metrics", "127.0.0.1:0"]);
    let line = server.stderr.wait_for("streamer: metrics on http://");
    let addr = metrics_addr(&line).unwrap();
    // More idle clients than there are slots: each sends half a request
    // head and then nothing (slowloris).
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    let scraped = scrape(&addr);
    assert!(scraped.contains("streamer_records_read_total"), "{scraped}");
    // The idle ones are closed after their second: a scrape waits for at
    // most that, not for them to give up.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}
