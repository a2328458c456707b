//! The processing flags, end to end through the real binary: `--filter`,
//! `--rename`, `--select`, `--infer-types` on every source (a CSV file,
//! stdin, JSON lines, a TCP connection, a Kafka topic), the records a
//! filter drops acknowledged (Kafka commits, file checkpoints), CSV
//! output's columns, and bad expressions refused with a caret.

mod common;
mod kafka_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::{run, run_with_stdin, saved, summary, Dir};
use kafka_support::{
    bootstrap, committed, create_topic, produce, run_with_deadline, unique, TestMessage,
};

const PEOPLE: &str = "\
name,age,city,zip,member
Bob,42,New York,007,true
Al,9,Paris,75001,false
Eve,,Rome,0x1f,
Zoé,30.5,Oslo,-12,true
";

fn people(dir: &Dir) -> String {
    dir.file("people.csv", PEOPLE)
}

fn ok(args: &[&str]) -> common::Run {
    let out = run(args);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    out
}

#[test]
fn filter_keeps_matching_rows_and_counts_the_rest() {
    let dir = Dir::new();
    let path = people(&dir);
    let out = ok(&[
        "file",
        &path,
        "--filter",
        r#"age > 10 and not city == "Oslo" or name =~ "^E""#,
    ]);
    assert_eq!(
        out.stdout,
        "{\"name\":\"Bob\",\"age\":\"42\",\"city\":\"New York\",\"zip\":\"007\",\"member\":\"true\"}\n\
         {\"name\":\"Eve\",\"age\":\"\",\"city\":\"Rome\",\"zip\":\"0x1f\",\"member\":\"\"}\n"
    );
    assert!(
        summary(&out.stderr)
            .starts_with("streamer: 4 records read, 2 written, 0 rejected, 2 filtered out in "),
        "{}",
        out.stderr
    );
    // `contains`, on stdin this time.
    let out = run_with_stdin(
        &[
            "file",
            "-",
            "--format",
            "csv",
            "--filter",
            r#"city contains "o""#,
        ],
        PEOPLE.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let names: Vec<&str> = out
        .stdout
        .lines()
        .map(|line| line.split('"').nth(3).unwrap())
        .collect();
    assert_eq!(names, ["Bob", "Eve", "Zoé"]);
}

#[test]
fn a_comparison_with_a_missing_field_is_false() {
    let dir = Dir::new();
    let path = people(&dir);
    let out = ok(&["file", &path, "--filter", "nope == 1 or nope != 1"]);
    assert_eq!(out.stdout, "");
    let out = ok(&[
        "file",
        &path,
        "--filter",
        "not nope == 1",
        "--select",
        "name",
    ]);
    assert_eq!(
        out.stdout,
        "{\"name\":\"Bob\"}\n{\"name\":\"Al\"}\n{\"name\":\"Eve\"}\n{\"name\":\"Zoé\"}\n"
    );
}

#[test]
fn rename_then_select_in_the_selected_order() {
    let dir = Dir::new();
    let path = people(&dir);
    let out = ok(&[
        "file",
        &path,
        "--rename",
        "name=who,zip=postcode",
        "--rename",
        "city=name",
        "--select",
        "postcode,who,missing,name",
        "--filter",
        r#"name != "Al""#,
    ]);
    // The filter read the input's names (`name` is the person), --select
    // the renamed ones; a field no record has is left out.
    assert_eq!(
        out.stdout,
        "{\"postcode\":\"007\",\"who\":\"Bob\",\"name\":\"New York\"}\n\
         {\"postcode\":\"0x1f\",\"who\":\"Eve\",\"name\":\"Rome\"}\n\
         {\"postcode\":\"-12\",\"who\":\"Zoé\",\"name\":\"Oslo\"}\n"
    );
}

#[test]
fn a_field_renamed_onto_another_replaces_it() {
    let dir = Dir::new();
    let path = people(&dir);
    let out = ok(&["file", &path, "--rename", "zip=city", "--limit", "1"]);
    assert_eq!(
        out.stdout,
        "{\"name\":\"Bob\",\"age\":\"42\",\"city\":\"007\",\"member\":\"true\"}\n"
    );
}

#[test]
fn infer_types_as_miller_does_and_filter_on_them() {
    let dir = Dir::new();
    let path = people(&dir);
    let out = ok(&["file", &path, "--infer-types"]);
    assert_eq!(
        out.stdout,
        "{\"name\":\"Bob\",\"age\":42,\"city\":\"New York\",\"zip\":\"007\",\"member\":true}\n\
         {\"name\":\"Al\",\"age\":9,\"city\":\"Paris\",\"zip\":75001,\"member\":false}\n\
         {\"name\":\"Eve\",\"age\":null,\"city\":\"Rome\",\"zip\":31,\"member\":null}\n\
         {\"name\":\"Zoé\",\"age\":30.5,\"city\":\"Oslo\",\"zip\":-12,\"member\":true}\n"
    );
    let out = ok(&[
        "file",
        &path,
        "--infer-types",
        "--filter",
        "zip > 30 and member == \"false\" or age == \"\"",
        "--select",
        "name,zip",
    ]);
    assert_eq!(
        out.stdout,
        "{\"name\":\"Al\",\"zip\":75001}\n{\"name\":\"Eve\",\"zip\":31}\n"
    );
    // Lines too: each line's message.
    let lines = dir.file("n.log", "12\nx\n\n");
    let out = ok(&["file", &lines, "--infer-types"]);
    assert_eq!(
        out.stdout,
        "{\"message\":12}\n{\"message\":\"x\"}\n{\"message\":null}\n"
    );
}

#[test]
fn json_lines_keep_their_types() {
    let dir = Dir::new();
    let path = dir.file(
        "in.jsonl",
        "{\"id\":1,\"n\":\"12\",\"tags\":[\"a\"],\"first name\":\"Ann\"}\n\
         {\"id\":2,\"n\":\"7\",\"tags\":[],\"first name\":\"Ben\"}\n\
         {\"id\":3,\"tags\":null}\n",
    );
    let out = ok(&[
        "file",
        &path,
        "--infer-types",
        "--filter",
        r#"n >= 10 or ."first name" == "Ben""#,
        "--rename",
        "first name=first",
        "--select",
        "first,n,tags",
    ]);
    assert_eq!(
        out.stdout,
        "{\"first\":\"Ann\",\"n\":\"12\",\"tags\":[\"a\"]}\n{\"first\":\"Ben\",\"n\":\"7\",\"tags\":[]}\n"
    );
    // A filter alone writes a kept line as it came.
    let out = ok(&["file", &path, "--filter", "id == 3", "--origin"]);
    assert_eq!(
        out.stdout,
        format!(
            "{{\"id\":3,\"tags\":null,\"_origin\":{{\"path\":{},\"line\":3}}}}\n",
            serde_json::to_string(&path).unwrap()
        )
    );
}

#[test]
fn select_sets_the_columns_of_csv_output() {
    let dir = Dir::new();
    let path = people(&dir);
    let out = ok(&[
        "file",
        &path,
        "--output-format",
        "csv",
        "--filter",
        "age != 42",
        "--rename",
        "age=years",
        "--select",
        "nickname,name,years",
        "--infer-types",
    ]);
    // The first record has no `nickname`: the column is there all the same.
    assert_eq!(out.stdout, "nickname,name,years\n,Al,9\n,Eve,\n,Zoé,30.5\n");
}

#[test]
fn filtered_rows_move_the_checkpoint_to_the_end() {
    let dir = Dir::new();
    let path = people(&dir);
    let checkpoint = dir.path("cp.json");
    let args = [
        "file",
        &path,
        "--checkpoint",
        &checkpoint,
        "--filter",
        r#"name == "Bob""#,
    ];
    let out = ok(&args);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let end = PEOPLE.len() as u64;
    assert_eq!(saved(&checkpoint, "people.csv"), Some((end, 5)));
    // Nothing is left for a second run.
    let again = ok(&args);
    assert_eq!(again.stdout, "");
    assert!(
        summary(&again.stderr).starts_with("streamer: 0 records read, 0 written"),
        "{}",
        again.stderr
    );
}

#[test]
fn tcp_records_are_processed_too() {
    let mut child = common::streamer()
        .args([
            "tcp",
            "--bind",
            "127.0.0.1:0",
            "--format",
            "csv",
            "--infer-types",
            "--filter",
            "qty >= 10",
            "--select",
            "sym,qty",
            "--limit",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("streamer: listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let mut client = TcpStream::connect(&addr).unwrap();
    client
        .write_all(b"sym,qty,px\nAAPL,5,1.5\nMSFT,12,2\nGOOG,3,9\nNVDA,40,1e3\nTSLA,99,1\n")
        .unwrap();
    let code = common::exit_within(&mut child, Duration::from_secs(30), "streamer tcp");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(code, 0, "{rest}");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(
        stdout,
        "{\"sym\":\"MSFT\",\"qty\":12}\n{\"sym\":\"NVDA\",\"qty\":40}\n"
    );
}

#[test]
fn kafka_records_the_filter_drops_are_committed() {
    let brokers = bootstrap();
    let topic = unique("filtered");
    let group = unique("filtered-g");
    create_topic(brokers, &topic, 2);
    let messages: Vec<TestMessage> = (0..300)
        .map(|i| TestMessage {
            partition: i % 2,
            value: Some(format!("{{\"id\":{i},\"kind\":\"k{}\"}}", i % 100).into_bytes()),
            ..TestMessage::default()
        })
        .collect();
    produce(brokers, &topic, &messages);
    let dir = Dir::new();
    let out = dir.path("out.jsonl");
    let args = [
        "kafka",
        "-t",
        &topic,
        "-g",
        &group,
        "--until-end",
        "--filter",
        r#"kind == "k7" and id < 200"#,
        "--rename",
        "id=n",
        "-o",
        &out,
    ];
    let output = run_with_deadline(
        kafka_support::streamer(brokers).args(args),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        summary(&stderr)
            .starts_with("streamer: 300 records read, 2 written, 0 rejected, 298 filtered out"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "{\"n\":7,\"kind\":\"k7\"}\n{\"n\":107,\"kind\":\"k7\"}\n"
    );
    // Every partition committed to its end, though its last records were
    // all dropped: a rerun of the group reads nothing.
    assert_eq!(committed(brokers, &group, &topic, 2), [150, 150]);
    let again = dir.path("again.jsonl");
    let output = run_with_deadline(
        kafka_support::streamer(brokers).args([
            "kafka",
            "-t",
            &topic,
            "-g",
            &group,
            "--until-end",
            "-o",
            &again,
        ]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        summary(&stderr).starts_with("streamer: 0 records read"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&again).unwrap(), "");
}

/// A refused command line: exit status 2 and the message clap's way.
fn refused(args: &[&str]) -> String {
    let dir = Dir::new();
    let path = people(&dir);
    let out = run(&[&["file", path.as_str()], args].concat());
    assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        !out.stderr.contains("records read"),
        "refused before anything was read: {}",
        out.stderr
    );
    out.stderr
}

#[test]
fn bad_expressions_are_refused_with_a_caret() {
    for (expr, expected) in [
        (
            "(age > 3 or name == \"x\"",
            "error: --filter: expected `)` to close the `(` at column 1, found the end\n  \
             (age > 3 or name == \"x\"\n                         ^\n",
        ),
        (
            "age => 3",
            "error: --filter: unknown operator `=>`: expected ==, !=, <, <=, >, >=, contains or =~\n  \
             age => 3\n      ^\n",
        ),
        (
            "age >= and city == \"Rome\"",
            "error: --filter: expected a number or a quoted string after `>=`, found `and`\n  \
             age >= and city == \"Rome\"\n         ^\n",
        ),
        (
            "name =~ \"(a|b\"",
            "error: --filter: bad regular expression: unclosed group\n  \
             name =~ \"(a|b\"\n          ^\n",
        ),
        (
            "age > 1 city == 2",
            "error: --filter: expected `and`, `or` or the end, found `city`\n  \
             age > 1 city == 2\n          ^\n",
        ),
    ] {
        let stderr = refused(&["--filter", expr]);
        assert!(stderr.starts_with(expected), "{expr}:\n{stderr}");
    }
}

#[test]
fn renames_and_selections_that_cannot_work_are_refused() {
    assert!(refused(&["--rename", "name"]).starts_with("error: --rename name: expected OLD=NEW\n"));
    assert!(refused(&["--rename", "a=c,b=c"])
        .starts_with("error: --rename: `a` and `b` are both renamed to `c`\n"));
    assert!(
        refused(&["--rename", "name=who", "--select", "name,who"]).starts_with(
            "error: --select name: --rename renames `name` to `who`, and --select names the \
         fields after renaming: select `who`\n"
        )
    );
    assert!(refused(&["--select", "a,,b"])
        .starts_with("error: --select: an empty field name (two commas in a row?)\n"));
}

#[test]
fn select_that_drops_the_key_or_meets_origin_in_csv_is_refused() {
    assert!(
        refused(&["--key", "name", "--select", "age", "-o", "kafka://t"]).starts_with(
            "error: --key name: --select leaves `name` out of every record, so no message \
             would have a key: add `name` to --select\n"
        )
    );
    assert!(
        refused(&["--origin", "--select", "name", "--output-format", "csv"]).starts_with(
            "error: --origin adds an `_origin` object, and the CSV columns are --select's \
             fields: drop --origin, or write JSON lines\n"
        )
    );
}

#[test]
fn a_long_filter_runs_and_a_deep_one_is_refused_before_the_output_is_emptied() {
    let dir = Dir::new();
    let path = people(&dir);
    // 9,000 comparisons overflowed a worker's stack when they were a tree.
    let chain = vec!["age > 1"; 9_000].join(" and ");
    let out = ok(&["file", &path, "--filter", &chain, "--select", "name"]);
    assert_eq!(
        out.stdout,
        "{\"name\":\"Bob\"}\n{\"name\":\"Al\"}\n{\"name\":\"Zoé\"}\n"
    );
    let output = dir.file("kept.jsonl", "{\"kept\":1}\n");
    let deep = format!("{}age > 1{}", "(".repeat(7_000), ")".repeat(7_000));
    let out = run(&["file", &path, "-o", &output, "--filter", &deep]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: --filter: more than 64 `(` and `not` one inside another\n"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "{\"kept\":1}\n");
}
