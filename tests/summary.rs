//! The summary line adds up over TCP (issue 9, point 14): every record a
//! connection's reader rejects itself (an oversize frame, a bad header)
//! counts as read, so `read = written + rejected`. The file cases are in
//! tests/file.rs.

mod tcp_server;

use std::io::Write;

use tcp_server::Server;

#[test]
fn tcp_rejections_in_the_source_count_as_read() {
    let mut server = Server::start(&["-v", "--format", "csv", "--max-frame-bytes", "16"]);
    let mut first = server.connect();
    first.write_all(b"n\n1\n2\n0123456789abcdefghij\n").unwrap();
    server
        .stderr
        .wait_for("(conn 1): closing the connection: frame longer than 16 bytes");
    let mut second = server.connect();
    second.write_all(b"\xff\n").unwrap();
    server
        .stderr
        .wait_for("(conn 2): closing the connection: bad CSV header");
    let status = server.stop();
    assert_eq!(status.code(), Some(3));
    assert_eq!(server.stdout.drain(), ["{\"n\":\"1\"}", "{\"n\":\"2\"}"]);
    let summary = server.stderr.wait_for(" records read");
    assert!(
        summary.starts_with("streamer: 4 records read, 2 written, 2 rejected in "),
        "{summary}"
    );
}
