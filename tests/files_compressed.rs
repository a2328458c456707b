//! End-to-end tests of compressed files (issue 12): `.gz`, `.zst` and
//! `.bz2` decompressed as they are read, from a path or stdin, found by
//! their magic bytes; a corrupt or cut stream is one error naming the file
//! and the byte; `--checkpoint` resumes in the decompressed bytes;
//! `--follow` reads a compressed match once it settled, and again when
//! it changes.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_compression::tokio::bufread::{BzEncoder, GzipEncoder, ZstdEncoder};
use tokio::io::AsyncReadExt;

use common::{exit_within, run, run_with_stdin, saved, streamer, summary, Dir};

#[derive(Clone, Copy, Debug)]
enum Codec {
    Gzip,
    Zstd,
    Bzip2,
}

const CODECS: [(Codec, &str); 3] = [
    (Codec::Gzip, "gz"),
    (Codec::Zstd, "zst"),
    (Codec::Bzip2, "bz2"),
];

/// `data` compressed with `codec`, as one member (frame, stream).
fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut out = Vec::new();
        match codec {
            Codec::Gzip => GzipEncoder::new(data).read_to_end(&mut out).await,
            Codec::Zstd => ZstdEncoder::new(data).read_to_end(&mut out).await,
            Codec::Bzip2 => BzEncoder::new(data).read_to_end(&mut out).await,
        }
        .unwrap();
        out
    })
}

/// A CSV with a quoted cell across lines and a BOM, `rows` rows.
fn csv(rows: usize) -> String {
    let mut text = String::from("\u{feff}id,name,note\n");
    for n in 1..=rows {
        if n % 7 == 0 {
            text.push_str(&format!("{n},\"row, {n}\",\"two\nlines\"\n"));
        } else {
            text.push_str(&format!("{n},row {n},plain\n"));
        }
    }
    text
}

#[test]
fn each_codec_reads_as_the_plain_file_from_a_path_and_from_stdin() {
    let dir = Dir::new();
    let text = csv(3000);
    let plain = run(&["file", &dir.file("data.csv", &text)]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert_eq!(plain.stdout.lines().count(), 3000);
    for (codec, suffix) in CODECS {
        let packed = compress(codec, text.as_bytes());
        let path = dir.file(&format!("data.csv.{suffix}"), &packed);
        let from_path = run(&["file", &path]);
        assert_eq!(from_path.code, 0, "{codec:?}: {}", from_path.stderr);
        assert!(from_path.stdout == plain.stdout, "{codec:?} from a path");
        let from_stdin = run_with_stdin(&["file", "--format", "csv", "-"], &packed);
        assert_eq!(from_stdin.code, 0, "{codec:?}: {}", from_stdin.stderr);
        assert!(from_stdin.stdout == plain.stdout, "{codec:?} from stdin");
    }
}

#[test]
fn the_magic_bytes_decide_not_the_name() {
    let dir = Dir::new();
    let lines = "{\"a\":1}\n{\"a\":2}\n";
    let misnamed = dir.file("events.jsonl", compress(Codec::Zstd, lines.as_bytes()));
    let out = run(&["file", &misnamed]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, lines);

    let not_compressed = dir.file("notes.jsonl.gz", lines);
    let out = run(&["file", &not_compressed]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, lines);
}

#[test]
fn decompress_none_reads_the_raw_bytes_and_a_named_codec_must_fit() {
    let dir = Dir::new();
    let lines: String = (1..=50).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    let packed = dir.file("events.jsonl.gz", compress(Codec::Gzip, lines.as_bytes()));
    let raw = run(&["file", "--decompress", "none", &packed]);
    assert_eq!(raw.code, 3, "{}", raw.stderr);
    assert_eq!(raw.stdout, "");
    assert!(
        summary(&raw.stderr).contains(" 0 written"),
        "{}",
        raw.stderr
    );
    let rejected = format!("rejected {packed}:1: invalid UTF-8 in JSON line (byte ");
    assert!(raw.stderr.contains(&rejected), "{}", raw.stderr);

    let as_gzip = run(&["file", "--decompress", "gzip", &packed]);
    assert_eq!(as_gzip.code, 0, "{}", as_gzip.stderr);
    assert_eq!(as_gzip.stdout, lines);

    let plain = dir.file("plain.jsonl", &lines);
    let wrong = run(&["file", "--decompress", "zstd", &plain]);
    assert_eq!(wrong.code, 1);
    assert!(
        wrong
            .stderr
            .contains(&format!("error: {plain}: corrupt zstd stream in bytes 0-")),
        "{}",
        wrong.stderr
    );
}

#[test]
fn every_member_of_a_concatenated_file_is_read() {
    let dir = Dir::new();
    for (codec, suffix) in CODECS {
        let mut joined = compress(codec, b"one\ntwo\n");
        joined.extend(compress(codec, b"three\n"));
        joined.extend(compress(codec, b"four\n"));
        let path = dir.file(&format!("app.log.{suffix}"), &joined);
        let out = run(&["file", &path]);
        assert_eq!(out.code, 0, "{codec:?}: {}", out.stderr);
        assert_eq!(
            out.stdout,
            "{\"message\":\"one\"}\n{\"message\":\"two\"}\n{\"message\":\"three\"}\n{\"message\":\"four\"}\n",
            "{codec:?}"
        );
        let stdin = run_with_stdin(&["file", "-"], &joined);
        assert_eq!(stdin.stdout.lines().count(), 4, "{codec:?} from stdin");
    }
}

/// `n` JSON lines numbered from 1, with some noise that compresses badly.
fn numbered(n: u64) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "{{\"n\":{i},\"x\":\"{:x}\"}}\n",
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            )
        })
        .collect()
}

/// Every output line is the input's line at the same place (a prefix):
/// how many.
fn assert_prefix(stdout: &str, input: &str) -> usize {
    let written: Vec<&str> = stdout.lines().collect();
    let expected: Vec<&str> = input.lines().take(written.len()).collect();
    assert!(
        written == expected,
        "the output is not the input's first records"
    );
    written.len()
}

/// The bytes (first, end) where the corrupt-stream error of `path` in
/// `stderr` says decoding failed, and its reason.
fn corrupt_at(stderr: &str, path: &str, codec: &str) -> ((usize, usize), String) {
    let prefix = format!("streamer: error: {path}: corrupt {codec} stream ");
    let line = stderr
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no corrupt-stream error: {stderr}"));
    let (place, reason) = line[prefix.len()..].split_once(" of the file: ").unwrap();
    let bytes = match (
        place.strip_prefix("in bytes "),
        place.strip_prefix("at byte "),
    ) {
        (Some(range), _) => {
            let (first, end) = range.split_once('-').unwrap();
            (first.parse().unwrap(), end.parse().unwrap())
        }
        (None, Some(at)) => (at.parse().unwrap(), at.parse().unwrap()),
        _ => panic!("{line}"),
    };
    (bytes, reason.to_string())
}

#[test]
fn damage_in_the_middle_of_a_big_gz_is_one_error_and_the_records_before_it_stay() {
    let dir = Dir::new();
    let lines = numbered(200_000);
    let mut packed = compress(Codec::Gzip, lines.as_bytes());
    let damage = packed.len() / 2;
    packed[damage..damage + 64].fill(0xff);
    let path = dir.file("big.jsonl.gz", &packed);
    let out = run(&["file", &path]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // Deflate may decode damaged bytes into garbage (rejected lines here)
    // until the member's CRC: the error comes at the latest there.
    let ((at, end), reason) = corrupt_at(&out.stderr, &path, "gzip");
    assert!(
        end + 64 * 1024 >= damage && at <= packed.len() && at <= end,
        "bytes {at}-{end}, damage at {damage}"
    );
    assert!(!reason.is_empty());
    let head: Vec<&str> = out.stdout.lines().take(50_000).collect();
    let expected: Vec<&str> = lines.lines().take(50_000).collect();
    assert!(
        head == expected,
        "the records before the damage are written"
    );
}

#[test]
fn a_stream_that_turns_to_garbage_is_one_error_at_that_byte() {
    let dir = Dir::new();
    for (codec, suffix) in CODECS {
        let lines = numbered(20_000);
        let mut packed = compress(codec, lines.as_bytes());
        let good = packed.len();
        packed.extend_from_slice(b"this is no compressed stream at all\n");
        let path = dir.file(&format!("big.jsonl.{suffix}"), &packed);
        let out = run(&["file", &path]);
        assert_eq!(out.code, 1, "{codec:?}: {}", out.stderr);
        let name = ["gzip", "zstd", "bzip2"][codec as usize];
        let ((at, end), _) = corrupt_at(&out.stderr, &path, name);
        assert!(
            at <= good + 16 && good <= end && end <= packed.len(),
            "{codec:?}: bytes {at}-{end}, garbage from {good}"
        );
        assert!(
            out.stdout == lines,
            "{codec:?}: every record before the garbage"
        );
        assert!(
            summary(&out.stderr).contains("20000 written"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_file_cut_mid_stream_says_so() {
    let dir = Dir::new();
    let lines = numbered(50_000);
    let packed = compress(Codec::Gzip, lines.as_bytes());
    let cut = &packed[..packed.len() * 2 / 3];
    let path = dir.file("cut.jsonl.gz", cut);
    let out = run(&["file", &path]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let error = format!(
        "streamer: error: {path}: the file ends (at byte {}) before its gzip stream does: cut short?",
        cut.len()
    );
    assert!(out.stderr.contains(&error), "{}", out.stderr);
    let written = assert_prefix(&out.stdout, &lines);
    assert!(written > 1000, "{written}");

    let stdin = run_with_stdin(&["file", "--format", "jsonl", "-"], cut);
    assert_eq!(stdin.code, 1);
    assert!(
        stdin.stderr.contains(&format!(
            "error: <stdin>: the input ends (at byte {}) before its gzip stream does",
            cut.len()
        )),
        "{}",
        stdin.stderr
    );
}

#[test]
fn a_checkpoint_resumes_a_compressed_csv_in_its_decompressed_bytes() {
    let dir = Dir::new();
    let text = csv(5000);
    let expected = run(&["file", "--origin", &dir.file("data.csv", &text)])
        .stdout
        .replace("data.csv\"", "data.csv.gz\"");
    let path = dir.file("data.csv.gz", compress(Codec::Gzip, text.as_bytes()));
    let checkpoint = dir.path("cp.json");
    let args = |extra: &[&str]| {
        let mut args = vec!["file", "--origin", "--checkpoint", &checkpoint];
        args.extend_from_slice(extra);
        args.push(&path);
        run(&args)
    };
    let first = args(&["--limit", "1234", "--batch-records", "100"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let (offset, line) = saved(&checkpoint, "data.csv.gz").expect("a checkpoint entry");
    // The offset is in the decompressed bytes: where line `line` ends.
    let lines_end: usize = text
        .split_inclusive('\n')
        .take(line as usize)
        .map(str::len)
        .sum();
    assert_eq!(offset, lines_end as u64);
    assert!(offset > 0 && line < 5000);

    let second = args(&[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let from: Vec<&str> = expected
        .lines()
        .skip_while(|record| {
            let json: serde_json::Value = serde_json::from_str(record).unwrap();
            json["_origin"]["line"].as_u64().unwrap() <= line
        })
        .collect();
    assert_eq!(second.stdout.lines().collect::<Vec<_>>(), from);
    assert!(first.stdout.lines().count() + from.len() >= 5000);

    let third = args(&[]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.stdout, "");
    assert!(summary(&third.stderr).contains("0 records read"));
}

/// Waits until the file at `path` holds `count` lines; returns them.
fn wait_for_lines(path: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "never got {count} lines: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn with_follow_a_compressed_match_is_read_again_when_it_grows_and_the_log_is_followed() {
    let dir = Dir::new();
    let log = dir.file("app.log", "live 1\n");
    let rotated = dir.file("app.log.1.gz", compress(Codec::Gzip, b"old 1\nold 2\n"));
    let out = dir.path("out.jsonl");
    let pattern = format!("{}/app.log*", dir.root().display());
    let mut child = streamer()
        .args(["file", "--follow", "--poll-interval", "50ms", "-o", &out])
        .arg(&pattern)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = wait_for_lines(&out, 3);
    first.sort();
    assert_eq!(
        first,
        [
            "{\"message\":\"live 1\"}",
            "{\"message\":\"old 1\"}",
            "{\"message\":\"old 2\"}"
        ]
    );
    // A member added to the compressed file is read once it settled, the
    // records already written skipped.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&rotated)
        .unwrap();
    file.write_all(&compress(Codec::Gzip, b"old 3\n")).unwrap();
    drop(file);
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b"live 2\n").unwrap();
    drop(file);
    // A new match is found only by a search after the append above.
    dir.file("app.log.new", "new 1\n");
    let lines = wait_for_lines(&out, 6);
    assert!(lines.contains(&"{\"message\":\"live 2\"}".to_string()));
    assert!(lines.contains(&"{\"message\":\"new 1\"}".to_string()));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(20), "after SIGTERM"),
        0
    );
    let mut text: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    text.sort();
    let expected: Vec<String> = ["live 1", "live 2", "new 1", "old 1", "old 2", "old 3"]
        .iter()
        .map(|m| format!("{{\"message\":\"{m}\"}}"))
        .collect();
    assert_eq!(text, expected);
}

#[test]
fn with_follow_a_compressed_file_still_being_written_is_read_once_whole() {
    let dir = Dir::new();
    let log = dir.file("app.log", "live 1\n");
    let lines: String = (0..20_000u64)
        .map(|n| format!("old {n} {:x}\n", n.wrapping_mul(2_654_435_761) % (1 << 32)))
        .collect();
    let gz = compress(Codec::Gzip, lines.as_bytes());
    assert!(gz.len() > 16_384);
    let out = dir.path("out.jsonl");
    let err = dir.path("err.txt");
    let pattern = format!("{}/app.log*", dir.root().display());
    let mut child = streamer()
        .args(["file", "--follow", "--poll-interval", "1s", "-o", &out])
        .arg(&pattern)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    wait_for_lines(&out, 1);
    // As logrotate's `compress` writes it: part, a pause, the rest.
    let mut file = std::fs::File::create(dir.path("app.log.1.gz")).unwrap();
    file.write_all(&gz[..8192]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    file.write_all(&gz[8192..]).unwrap();
    drop(file);
    let written = wait_for_lines(&out, 20_001);
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(b"live 2\n").unwrap();
    drop(file);
    wait_for_lines(&out, 20_002);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let code = exit_within(&mut child, Duration::from_secs(20), "after SIGTERM");
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        summary(&stderr).contains("20002 records read, 20002 written"),
        "{stderr}"
    );
    assert_eq!(written.len(), 20_001, "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 20_002, "{stderr}");
}

/// A `streamer file --follow --poll-interval 50ms` run of `pattern`,
/// writing to `out.jsonl` in `dir`, its stderr in `err.txt`.
fn follow_pattern(dir: &Dir, pattern: &str) -> std::process::Child {
    streamer()
        .args(["file", "--follow", "--poll-interval", "50ms", "-o"])
        .arg(dir.path("out.jsonl"))
        .arg(pattern)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("err.txt")).unwrap())
        .spawn()
        .unwrap()
}

/// SIGTERM to `child`: its exit status, and the messages it wrote, sorted.
fn stop_and_read(dir: &Dir, mut child: std::process::Child) -> (i32, Vec<String>, String) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let code = exit_within(&mut child, Duration::from_secs(20), "after SIGTERM");
    let mut messages: Vec<String> = dir
        .read("out.jsonl")
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|record| record["message"].as_str().unwrap().to_string())
        .collect();
    messages.sort();
    (code, messages, dir.read("err.txt"))
}

/// Waits until `dir`'s err.txt holds `text`.
fn wait_for_stderr(dir: &Dir, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stderr = std::fs::read_to_string(dir.path("err.txt")).unwrap_or_default();
        if stderr.contains(text) {
            return;
        }
        assert!(Instant::now() < deadline, "no {text:?} in {stderr}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn with_follow_an_empty_gz_being_created_waits_for_its_bytes() {
    let dir = Dir::new();
    dir.file("app.log", "live 1\n");
    let out = dir.path("out.jsonl");
    let child = follow_pattern(&dir, &dir.path("app.log*"));
    wait_for_lines(&out, 1);
    // Created empty, as a compressor does before its first write; a file
    // created after it shows the search that met it empty is over.
    let gz = dir.file("app.log.1.gz", "");
    dir.file("app.log.marker", "marker\n");
    wait_for_lines(&out, 2);
    std::fs::write(&gz, compress(Codec::Gzip, b"old 1\nold 2\n")).unwrap();
    wait_for_lines(&out, 4);
    let (code, messages, stderr) = stop_and_read(&dir, child);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(messages, ["live 1", "marker", "old 1", "old 2"], "{stderr}");
    assert!(
        summary(&stderr).contains("4 records read, 4 written, 0 rejected"),
        "{stderr}"
    );
}

#[test]
fn with_follow_a_gz_cut_short_by_a_pause_is_read_on_when_it_grows() {
    let dir = Dir::new();
    dir.file("app.log", "live 1\n");
    let lines: Vec<String> = (0..20_000u64)
        .map(|n| format!("old {n} {:x}", n.wrapping_mul(2_654_435_761) % (1 << 32)))
        .collect();
    let gz = compress(Codec::Gzip, (lines.join("\n") + "\n").as_bytes());
    let out = dir.path("out.jsonl");
    let child = follow_pattern(&dir, &dir.path("app.log*"));
    wait_for_lines(&out, 1);
    let mut file = std::fs::File::create(dir.path("app.log.1.gz")).unwrap();
    file.write_all(&gz[..gz.len() / 3]).unwrap();
    // The writer pauses past two poll intervals: read up to the cut.
    wait_for_stderr(&dir, "read up to there");
    file.write_all(&gz[gz.len() / 3..]).unwrap();
    drop(file);
    wait_for_lines(&out, 20_001);
    let (code, messages, stderr) = stop_and_read(&dir, child);
    assert_eq!(code, 0, "{stderr}");
    let mut expected = lines;
    expected.push("live 1".into());
    expected.sort();
    assert_eq!(messages.len(), expected.len(), "{stderr}");
    assert_eq!(messages, expected);
    assert!(
        summary(&stderr).contains("20001 records read, 20001 written, 0 rejected"),
        "{stderr}"
    );
}

#[test]
fn with_follow_a_gz_truncated_and_rewritten_is_read_again_from_its_start() {
    let dir = Dir::new();
    dir.file("app.log", "live 1\n");
    let gz = dir.file("app.log.1.gz", compress(Codec::Gzip, b"old 1\nold 2\n"));
    let out = dir.path("out.jsonl");
    let child = follow_pattern(&dir, &dir.path("app.log*"));
    wait_for_lines(&out, 3);
    std::fs::write(&gz, compress(Codec::Gzip, b"new 1\nnew 2\nnew 3\n")).unwrap();
    wait_for_lines(&out, 6);
    let (code, messages, stderr) = stop_and_read(&dir, child);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        messages,
        ["live 1", "new 1", "new 2", "new 3", "old 1", "old 2"],
        "{stderr}"
    );
    assert!(
        stderr.contains("app.log.1.gz: truncated or rewritten since it was read"),
        "{stderr}"
    );
}

#[test]
fn with_follow_a_gz_rewritten_in_place_at_the_same_size_is_read_again() {
    let dir = Dir::new();
    dir.file("app.log", "live 1\n");
    let old = compress(Codec::Gzip, b"old 1\nold 2\n");
    let new = compress(Codec::Gzip, b"new 1\nnew 2\n");
    assert_eq!(old.len(), new.len());
    let gz = dir.file("app.log.1.gz", &old);
    let out = dir.path("out.jsonl");
    let child = follow_pattern(&dir, &dir.path("app.log*"));
    wait_for_lines(&out, 3);
    // Over its bytes, never truncated: its size never changes.
    let mut file = std::fs::OpenOptions::new().write(true).open(&gz).unwrap();
    file.write_all(&new).unwrap();
    drop(file);
    wait_for_lines(&out, 5);
    let (code, messages, stderr) = stop_and_read(&dir, child);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        messages,
        ["live 1", "new 1", "new 2", "old 1", "old 2"],
        "{stderr}"
    );
    assert!(
        stderr.contains("app.log.1.gz: truncated or rewritten since it was read"),
        "{stderr}"
    );
}
