//! The examples of every `--help` (issue 13) are command lines that work:
//! each is parsed and checked as the binary would ([`RunConfig::from_cli`],
//! which needs no broker), and the one that reads the bundled sample is
//! run. A renamed or refused flag fails here, not in a user's shell.

mod common;

use streamer::cli::{help, parse_args, Command};
use streamer::config::RunConfig;

/// A shell line split as sh would for these examples: words, single
/// quotes; a redirection (`<`, `>`) and what follows it, or `&&` and what
/// follows it, is not streamer's.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    words.push(word);
    let end = words
        .iter()
        .position(|word| ["<", ">", "&&", "|"].contains(&word.as_str()))
        .unwrap_or(words.len());
    words.truncate(end);
    words
}

/// Every example command line of every help text, top level first.
fn examples() -> Vec<String> {
    let mut command = help::command();
    command.build();
    let mut texts = vec![command.render_long_help().to_string()];
    for sub in command.get_subcommands_mut() {
        texts.push(sub.render_long_help().to_string());
    }
    texts
        .iter()
        .flat_map(|text| {
            let examples = text.split("\nExamples:\n").nth(1).unwrap_or_default();
            examples
                .lines()
                .take_while(|line| line.starts_with("  "))
                .map(str::trim)
                .filter(|line| line.starts_with("streamer "))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_example_parses_and_passes_the_checks() {
    // The SASL example reads its password from here, as its comment says.
    // This test binary has no other test, so no other thread reads the
    // environment meanwhile.
    std::env::set_var("STREAMER_SASL_PASSWORD", "secret");
    let examples = examples();
    assert!(examples.len() >= 15, "{examples:#?}");
    for example in &examples {
        let cli = parse_args(words(example))
            .unwrap_or_else(|error| panic!("{example}:\n{}", error.render()));
        if matches!(cli.command, Command::Tool(_)) {
            continue;
        }
        if let Err(error) = RunConfig::from_cli(cli) {
            panic!("{example}: {error}");
        }
    }
    // The example on the bundled sample, run.
    let sample = examples
        .iter()
        .find(|example| example.contains("data/ticks.csv -n 10"))
        .expect("the sample's example");
    let args = words(sample);
    let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let out = common::streamer()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 10, "{stdout}");
    for line in stdout.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(record.is_object(), "{line}");
    }
}
