//! Your own processing step between a source and a sink: keep the large
//! trades of a CSV file and add a computed field, then write NDJSON.
//!
//! ```text
//! cargo run --example filter_enrich -- data/ticks.csv 300
//! ```

use std::process::ExitCode;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use streamer::pipeline::{Pipeline, PipelineConfig};
use streamer::record::Batch;
use streamer::sink::{OutputFormat, WriterSink};
use streamer::source::{FileOptions, FileSource};

/// Keeps trades of at least `min_size` shares and adds `notional` = price × size.
fn large_trades(min_size: f64) -> impl FnMut(Batch) -> Batch + Send + 'static {
    move |batch: Batch| {
        batch.rebuild(|record, out| {
            let Ok(mut trade) = record.to_object() else {
                return;
            };
            let number = |key: &str| trade.get(key)?.as_str()?.parse::<f64>().ok();
            let (Some(price), Some(size)) = (number("price"), number("size")) else {
                return;
            };
            if size >= min_size {
                let notional = (price * size * 100.0).round() / 100.0;
                trade.insert("notional".into(), Value::from(notional));
                out.push_value(&trade, record.location.pos);
            }
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "data/ticks.csv".into());
    let min_size = args.next().and_then(|n| n.parse().ok()).unwrap_or(300.0);

    let source = match FileSource::open(vec![path], FileOptions::default()) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let sink = match WriterSink::stdout(OutputFormat::Jsonl) {
        Ok(sink) => sink,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = Pipeline::new(Box::new(source), Box::new(sink), PipelineConfig::default())
        .stage(large_trades(min_size))
        .run(CancellationToken::new())
        .await;
    eprintln!(
        "{} trades read, {} kept",
        outcome.report.read, outcome.report.written
    );
    match outcome.error {
        None => ExitCode::SUCCESS,
        Some(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
