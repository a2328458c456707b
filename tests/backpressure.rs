//! Backpressure with exact numbers: stall the sink and count how many
//! records the file source managed to read from a real file.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use streamer::codec::Format;
use streamer::error::Result;
use streamer::pipeline::{Pipeline, PipelineConfig};
use streamer::sink::{Sink, SinkInput};
use streamer::source::{FileOptions, FileSource};

/// Takes one batch, reports how many records it held, then never reads
/// again (while holding its input open, as a stuck writer would).
struct StalledSink {
    first_batch: oneshot::Sender<usize>,
}

impl Sink for StalledSink {
    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let batch = input.recv().await.expect("one batch arrives");
            let _ = self.first_batch.send(batch.len());
            std::future::pending::<()>().await;
            drop(input);
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_sink_stops_the_file_source_at_the_channel_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.log");
    let lines: String = (0..100_000).map(|n| format!("line {n}\n")).collect();
    std::fs::write(&path, lines).unwrap();

    let config = PipelineConfig::with_buffer(64, 16);
    let source = FileSource::open(
        vec![path.to_str().unwrap().to_string()],
        FileOptions {
            format: Some(Format::Lines),
            ..FileOptions::default()
        },
    )
    .unwrap();
    let (first_batch, first_batch_len) = oneshot::channel();
    let pipeline = Pipeline::new(
        Box::new(source),
        Box::new(StalledSink { first_batch }),
        config.clone(),
    );
    let stats = pipeline.stats();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(pipeline.run(shutdown.clone()));

    assert_eq!(first_batch_len.await.unwrap(), config.batch_records);
    // With the clock paused, this sleep ends only once every task is idle
    // (file reads on the blocking pool hold the clock): the pipeline has
    // filled up and the source is parked on a full channel.
    tokio::time::sleep(Duration::from_secs(3600)).await;

    // Full batches held: the sink's one, the decode → sink channel, the
    // decode stage's one waiting to send, and the source → decode channel.
    // The source's own next batch is read but not yet handed over.
    let held_batches = 1 + config.channel_batches + 1 + config.channel_batches;
    let read = stats.read.load(Ordering::Relaxed);
    assert_eq!(read, (held_batches * config.batch_records) as u64);
    assert_eq!(stats.written.load(Ordering::Relaxed), 0);

    // The bound holds however long the sink stays stuck.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(stats.read.load(Ordering::Relaxed), read);
    run.abort();
}

#[tokio::test]
async fn file_checkpoints_follow_what_the_sink_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.csv");
    let second = dir.path().join("b.log");
    std::fs::write(&first, "x\n1\n2\n3\n").unwrap();
    let lines: String = (0..2500).map(|n| format!("{n}\n")).collect();
    std::fs::write(&second, lines).unwrap();
    let out = dir.path().join("out.jsonl");

    let source = FileSource::open(
        vec![
            first.to_str().unwrap().to_string(),
            second.to_str().unwrap().to_string(),
        ],
        FileOptions::default(),
    )
    .unwrap();
    let checkpoints = source.checkpoints();
    assert_eq!(checkpoints[0].delivered_line(), 0);
    let sink = streamer::sink::WriterSink::create(&out, Default::default())
        .await
        .unwrap();
    let outcome = Pipeline::new(
        Box::new(source),
        Box::new(sink),
        PipelineConfig::with_buffer(1000, 100),
    )
    .run(CancellationToken::new())
    .await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(outcome.report.written, 2503);
    // Line 4 is the last CSV row (line 1 is the header); 2500 lines follow.
    assert_eq!(checkpoints[0].delivered_line(), 4);
    assert_eq!(checkpoints[1].delivered_line(), 2500);
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 2503);
}

#[tokio::test]
async fn a_panicking_stage_fails_the_run_instead_of_ending_it_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.log");
    std::fs::write(&path, "a\nb\n").unwrap();
    let source = FileSource::open(
        vec![path.to_str().unwrap().to_string()],
        FileOptions::default(),
    )
    .unwrap();
    let sink = streamer::sink::WriterSink::new(std::io::sink(), "<null>", Default::default());
    let outcome = Pipeline::new(Box::new(source), Box::new(sink), PipelineConfig::default())
        .stage(|_batch: streamer::record::Batch| -> streamer::record::Batch { panic!("stage bug") })
        .run(CancellationToken::new())
        .await;
    let error = outcome.error.expect("the run fails");
    assert!(
        error.to_string().starts_with("a pipeline task panicked"),
        "{error}"
    );
    assert_eq!(outcome.report.written, 0);
}
