//! What hostile testers found in `streamer tcp` after issue 9: slow
//! clients holding the buffer budget, frames lost uncounted behind an
//! unusable header or an oversize frame, a misleading reason for an
//! unclosed quote, CSV headers outside the memory bound, and command-line
//! errors that did not exit 2. The real binary, real sockets; waits are on
//! log lines with a deadline, never sleeps.

mod common;
mod tcp_server;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

use common::{run, Dir};
use tcp_server::{dead_letter, frame, message, Server};

/// The summary line, once the server has exited.
fn summary(server: &mut Server) -> String {
    server.stderr.wait_for(" records read")
}

#[test]
fn command_line_errors_exit_2() {
    let dir = Dir::new();
    let input = dir.file("in.csv", "a\n1\n");
    let cases: [(&[&str], &str); 3] = [
        (
            &["file", &input, "-o", "kafka://bad topic!"],
            "error: -o kafka://bad topic!: `bad topic!` is not a valid topic name \
             (' ' is not allowed; use letters, digits, `.`, `_`, `-`)",
        ),
        (
            &["file", &input, "-o", "kafka://"],
            "error: -o kafka://: a topic name has 1 to 249 characters",
        ),
        (
            &[
                "tcp",
                "--bind",
                "127.0.0.1:0",
                "--max-frame-bytes",
                "2M",
                "--max-buffered-bytes",
                "1M",
            ],
            "error: --max-frame-bytes (2097152) is larger than --max-buffered-bytes \
             (1048576): a frame that long could never be buffered; raise \
             --max-buffered-bytes or lower --max-frame-bytes",
        ),
    ];
    for (args, first_line) in cases {
        let out = run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().next(), Some(first_line), "{args:?}");
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn an_unclosed_quote_is_named_as_such() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let mut server = Server::start(&["-v", "--format", "csv", "--dead-letter", &dead]);
    let mut client = server.connect();
    let peer = client.local_addr().unwrap();
    // The connection is one CSV stream: the quote opened on line 2 runs
    // over the line breaks after it to the end of the connection.
    client.write_all(b"a,b\n1,2\n\"unclosed,7\n3,4\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=1}: closed by the client after 3 rows");
    assert_eq!(server.stop().code(), Some(3));
    assert_eq!(server.stdout.drain(), [r#"{"a":"1","b":"2"}"#]);
    let reason =
        "unclosed quote: the record that starts on this line runs to the end of the connection";
    assert_eq!(
        std::fs::read_to_string(&dead).unwrap(),
        dead_letter(peer, 1, 3, reason, "\\\"unclosed,7\\n3,4\\n") + "\n"
    );
}

#[test]
fn rows_after_an_unusable_header_are_each_rejected() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let mut server = Server::start(&["-v", "--format", "csv", "--dead-letter", &dead]);
    let mut bad = server.connect();
    let peer = bad.local_addr().unwrap();
    bad.write_all(b"\xff,b\n1,2\n").unwrap();
    server.stderr.wait_for(&format!(
        "rejected {peer} (conn 1, record 1): bad CSV header"
    ));
    // The connection goes on: its later rows are rejected too.
    bad.write_all(b"3,4\n").unwrap();
    bad.shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=1}: closed by the client after 3 rows");
    let mut good = server.connect();
    good.write_all(b"x\n5\n").unwrap();
    good.shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=2}: closed by the client after 2 rows");
    assert_eq!(server.stop().code(), Some(3));
    assert_eq!(server.stdout.drain(), [r#"{"x":"5"}"#]);
    let dead = std::fs::read_to_string(&dead).unwrap();
    let lines: Vec<&str> = dead.lines().collect();
    assert_eq!(lines.len(), 3, "{dead}");
    assert!(
        lines[0].contains("\"reason\":\"bad CSV header: invalid UTF-8 in header column 1"),
        "{dead}"
    );
    let unusable = "the CSV header on line 1 is unusable";
    assert_eq!(lines[1], dead_letter(peer, 1, 2, unusable, "1,2"));
    assert_eq!(lines[2], dead_letter(peer, 1, 3, unusable, "3,4"));
    let summary = summary(&mut server);
    assert!(
        summary.starts_with("streamer: 4 records read, 1 written, 3 rejected in "),
        "{summary}"
    );
}

#[test]
fn frames_behind_an_oversize_line_are_read_on() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    // 100K: past the 64 KiB a connection holds without a reservation.
    let mut server = Server::start(&["-v", "--max-frame-bytes", "100K", "--dead-letter", &dead]);
    let mut client = server.connect();
    let peer = client.local_addr().unwrap();
    let mut bytes = b"ok 1\n".to_vec();
    bytes.extend(vec![b'x'; 300 * 1024]);
    bytes.extend(b"\nok 3\n");
    client.write_all(&bytes).unwrap();
    server.stdout.wait_for(&message("ok 3"));
    // Still open: later frames are read as usual.
    client.write_all(b"ok 4\nok 5").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=1}: closed by the client after 5 frames");
    assert_eq!(server.stop().code(), Some(3));
    assert_eq!(
        server.stdout.drain(),
        [
            message("ok 1"),
            message("ok 3"),
            message("ok 4"),
            message("ok 5")
        ]
    );
    let reason = "frame longer than 102400 bytes (--max-frame-bytes)";
    assert_eq!(
        std::fs::read_to_string(&dead).unwrap(),
        dead_letter(peer, 1, 2, reason, &"x".repeat(256)) + "\n"
    );
    let summary = summary(&mut server);
    assert!(
        summary.starts_with("streamer: 5 records read, 4 written, 1 rejected in "),
        "{summary}"
    );
}

#[test]
fn frames_behind_an_oversize_length_prefix_are_read_on() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let mut server = Server::start(&[
        "-v",
        "--framing",
        "length-delimited",
        "--max-frame-bytes",
        "100",
        "--dead-letter",
        &dead,
    ]);
    let mut client = server.connect();
    let peer = client.local_addr().unwrap();
    let mut bytes = frame(b"one");
    bytes.extend(frame(&[b'y'; 5000]));
    bytes.extend(frame(b"three"));
    client.write_all(&bytes).unwrap();
    server.stdout.wait_for(&message("three"));
    client.write_all(&frame(b"four")).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=1}: closed by the client after 4 frames");
    assert_eq!(server.stop().code(), Some(3));
    assert_eq!(
        server.stdout.drain(),
        [message("one"), message("three"), message("four")]
    );
    let reason = "frame of 5000 bytes is longer than 100 bytes (--max-frame-bytes)";
    assert_eq!(
        std::fs::read_to_string(&dead).unwrap(),
        dead_letter(peer, 1, 2, reason, &"y".repeat(256)) + "\n"
    );
    let summary = summary(&mut server);
    assert!(
        summary.starts_with("streamer: 4 records read, 3 written, 1 rejected in "),
        "{summary}"
    );
}

/// A client that sends `head`, then a byte every 100 ms, never ending its
/// frame, until the server closes the connection.
fn trickle(server: &Server, head: usize) -> (SocketAddr, thread::JoinHandle<()>) {
    let mut stream = server.connect();
    let peer = stream.local_addr().unwrap();
    stream.write_all(&vec![b't'; head]).unwrap();
    let handle = thread::spawn(move || {
        // The client's own pace, not a wait for the server.
        while stream.write_all(b"t").is_ok() {
            thread::sleep(Duration::from_millis(100));
        }
    });
    (peer, handle)
}

#[test]
fn slow_frames_give_the_buffer_budget_back_at_the_frame_timeout() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    // Room for two long unfinished frames at a time.
    let mut server = Server::start(&[
        "-vv",
        "--max-frame-bytes",
        "1M",
        "--max-buffered-bytes",
        "2M",
        "--frame-timeout",
        "3s",
        "--dead-letter",
        &dead,
    ]);
    let (first, first_client) = trickle(&server, 100_000);
    server.stderr.wait_for(&format!(
        "tcp_conn{{peer={first} conn=1}}: holds a share of --max-buffered-bytes"
    ));
    let (second, second_client) = trickle(&server, 100_000);
    server.stderr.wait_for(&format!(
        "tcp_conn{{peer={second} conn=2}}: holds a share of --max-buffered-bytes"
    ));
    // A third long frame waits for them, and the server says so.
    let mut victim = server.connect();
    let mut line = vec![b'v'; 200_000];
    line.extend(b"\nsmall\n");
    victim.write_all(&line).unwrap();
    server
        .stderr
        .wait_for("1 connection(s) waiting for room in --max-buffered-bytes (2097152 bytes)");
    // The slow frames are cut at the frame timeout, and the third goes on.
    server.stdout.wait_for(&message("small"));
    first_client.join().unwrap();
    second_client.join().unwrap();
    victim.shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=3}: closed by the client after 2 frames");
    assert_eq!(server.stop().code(), Some(3));
    let out = server.stdout.drain();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], message(&"v".repeat(200_000)));
    let dead = std::fs::read_to_string(&dead).unwrap();
    let reason = "frame not finished within 3s of holding a share of --max-buffered-bytes \
                  (--frame-timeout)";
    let mut rejected: Vec<(String, usize)> = dead
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["reason"], reason, "{line:.300}");
            assert_eq!(value["origin"]["record"], 1);
            let raw = value["raw"].as_str().unwrap();
            assert!(raw.bytes().all(|byte| byte == b't'));
            (
                value["origin"]["peer"].as_str().unwrap().to_string(),
                raw.len(),
            )
        })
        .collect();
    rejected.sort();
    let mut peers: Vec<String> = [first, second].iter().map(ToString::to_string).collect();
    peers.sort();
    assert_eq!(
        rejected
            .iter()
            .map(|(peer, _)| peer.clone())
            .collect::<Vec<_>>(),
        peers
    );
    assert!(
        rejected.iter().all(|(_, len)| *len > 100_000),
        "{rejected:?}"
    );
    let summary = summary(&mut server);
    assert!(
        summary.starts_with("streamer: 4 records read, 2 written, 2 rejected in "),
        "{summary}"
    );
}

#[test]
fn csv_headers_hold_a_share_of_the_buffer_budget() {
    // A header of 100,000 one-letter names (199,999 bytes) costs 13.2 MB
    // of the 32M budget by the rule (2 bytes a byte, 128 a column): two fit.
    const COST: usize = 2 * 199_999 + 128 * 100_000;
    let header = vec!["x"; 100_000].join(",") + "\n";
    let mut server = Server::start(&["-v", "--format", "csv", "--max-buffered-bytes", "32M"]);
    let mut holders = Vec::new();
    for conn in 1..=2 {
        let mut client = server.connect();
        client.write_all(header.as_bytes()).unwrap();
        server.stderr.wait_for(&format!(
            "conn={conn}}}: its CSV header holds {COST} bytes of --max-buffered-bytes (100000 columns)"
        ));
        holders.push(client);
    }
    // A third finds no room: its header is unusable, and so its rows.
    let mut refused = server.connect();
    let refused_peer = refused.local_addr().unwrap();
    refused.write_all(header.as_bytes()).unwrap();
    refused.write_all(b"1\n").unwrap();
    refused.shutdown(Shutdown::Write).unwrap();
    server.stderr.wait_for(&format!(
        "rejected {refused_peer} (conn 3, record 1): bad CSV header: it needs {COST} bytes of \
         --max-buffered-bytes (100000 columns), and only"
    ));
    server
        .stderr
        .wait_for("conn=3}: closed by the client after 2 rows");
    // Once a holder leaves, its share is free for the next header.
    holders.remove(0).shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=1}: closed by the client after 1 rows");
    let mut next = server.connect();
    next.write_all(header.as_bytes()).unwrap();
    server.stderr.wait_for(&format!(
        "conn=4}}: its CSV header holds {COST} bytes of --max-buffered-bytes (100000 columns)"
    ));
    drop(next);
    drop(holders);
    assert_eq!(server.stop().code(), Some(3));
    let summary = summary(&mut server);
    assert!(
        summary.starts_with("streamer: 2 records read, 0 written, 2 rejected in "),
        "the refused header and its row: {summary}"
    );
}

#[test]
fn an_oversize_header_is_unusable_and_so_are_the_rows() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let mut server = Server::start(&[
        "-v",
        "--format",
        "csv",
        "--max-frame-bytes",
        "100",
        "--dead-letter",
        &dead,
    ]);
    let mut client = server.connect();
    let peer = client.local_addr().unwrap();
    let header = vec!["n"; 100].join(",");
    client
        .write_all(format!("{header}\n1,2\n").as_bytes())
        .unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    server
        .stderr
        .wait_for("conn=1}: closed by the client after 2 rows");
    assert_eq!(server.stop().code(), Some(3));
    // The second row is not taken for the header.
    assert!(server.stdout.drain().is_empty());
    let dead = std::fs::read_to_string(&dead).unwrap();
    let lines: Vec<&str> = dead.lines().collect();
    let too_long = "bad CSV header: frame longer than 100 bytes (--max-frame-bytes)";
    assert_eq!(
        lines,
        [
            dead_letter(peer, 1, 1, too_long, &header[..199]),
            dead_letter(peer, 1, 2, "the CSV header on line 1 is unusable", "1,2"),
        ]
    );
}

/// Runs a CSV server with `framing`, sends each of `clients` (raw bytes) on
/// its own connection, closes it, and waits until the server has read all
/// `frames` of it; returns the peers and the dead-letter lines.
fn csv_clients(framing: &str, clients: &[(Vec<u8>, u64)]) -> (Server, Vec<SocketAddr>, String) {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let mut server = Server::start(&[
        "-v",
        "--format",
        "csv",
        "--framing",
        framing,
        "--dead-letter",
        &dead,
    ]);
    let mut peers = Vec::new();
    for (conn, (bytes, frames)) in clients.iter().enumerate() {
        let mut client = server.connect();
        peers.push(client.local_addr().unwrap());
        client.write_all(bytes).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        server.stderr.wait_for(&format!(
            "conn={}}}: closed by the client after {frames} {}",
            conn + 1,
            // A newline-framed CSV connection is one CSV stream of rows.
            if framing == "newline" {
                "rows"
            } else {
                "frames"
            }
        ));
    }
    assert_eq!(server.stop().code(), Some(3));
    let dead = std::fs::read_to_string(&dead).unwrap();
    (server, peers, dead)
}

#[test]
fn rows_after_a_header_that_cannot_be_split_are_each_rejected() {
    let unusable = "the CSV header on record 1 is unusable";
    let unclosed = "bad CSV header: unclosed quote: a quoted cell runs to the end of the frame";
    let two_rows = "bad CSV header: more than one CSV row in a frame (an unquoted line break?)";

    // Newline framing, one CSV stream: the header's quote opened in `a,"b`
    // never closes, so the header runs to the end of the connection.
    let clients = [(b"a,\"b\n11,12\n13,14\n".to_vec(), 1)];
    let (mut server, peers, dead) = csv_clients("newline", &clients);
    assert_eq!(server.stdout.drain(), [""; 0]);
    let never_closed = "bad CSV header: unclosed quote: the record that starts on this line \
                        runs to the end of the connection";
    assert_eq!(
        dead.lines().collect::<Vec<_>>(),
        [dead_letter(
            peers[0],
            1,
            1,
            never_closed,
            "a,\\\"b\\n11,12\\n13,14\\n"
        )]
    );
    let line = summary(&mut server);
    assert!(
        line.starts_with("streamer: 1 records read, 0 written, 1 rejected in "),
        "{line}"
    );

    // Length-delimited framing: a header frame with an unclosed quote, and
    // one with two rows.
    let mut quoted = frame(b"a,\"b");
    quoted.extend(frame(b"11,12"));
    quoted.extend(frame(b"13,14"));
    let mut two = frame(b"a,b\n1,2");
    two.extend(frame(b"21,22"));
    let clients = [(quoted, 3), (two, 2)];
    let (mut server, peers, dead) = csv_clients("length-delimited", &clients);
    assert_eq!(server.stdout.drain(), [""; 0]);
    // A header is rejected by the source, the rows after it by the decode
    // stage: the second connection's header may come between the first's
    // rows. Each connection's own lines keep their order.
    let mut lines = dead.lines().collect::<Vec<_>>();
    lines.sort_by_key(|line| line.contains("\"conn\":2"));
    assert_eq!(
        lines,
        [
            dead_letter(peers[0], 1, 1, unclosed, "a,\\\"b"),
            dead_letter(peers[0], 1, 2, unusable, "11,12"),
            dead_letter(peers[0], 1, 3, unusable, "13,14"),
            dead_letter(peers[1], 2, 1, two_rows, "a,b\\n1,2"),
            dead_letter(peers[1], 2, 2, unusable, "21,22"),
        ]
    );
    let line = summary(&mut server);
    assert!(
        line.starts_with("streamer: 5 records read, 0 written, 5 rejected in "),
        "{line}"
    );
}
