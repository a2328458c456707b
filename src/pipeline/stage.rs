//! Your own processing steps, run between decoding and the sink.

use tokio::sync::mpsc;

use crate::error::Result;
use crate::record::Batch;

/// A processing step: gets each batch in order and returns the batch to
/// pass on (filtered, enriched, or the same). See [`Batch::rebuild`] and
/// [`Batch::retain`]; the batch's acks must go with what is returned, which
/// those helpers do for you.
pub trait Stage: Send + 'static {
    /// Processes one batch.
    fn process(&mut self, batch: Batch) -> Batch;
}

impl<F> Stage for F
where
    F: FnMut(Batch) -> Batch + Send + 'static,
{
    fn process(&mut self, batch: Batch) -> Batch {
        self(batch)
    }
}

/// Feeds every batch of `input` through `stage` into `output`; ends when
/// `input` closes or nobody reads `output` any more.
pub(super) async fn run(
    mut stage: Box<dyn Stage>,
    mut input: mpsc::Receiver<Batch>,
    output: mpsc::Sender<Batch>,
) -> Result<()> {
    while let Some(batch) = input.recv().await {
        let batch = stage.process(batch);
        if output.send(batch).await.is_err() {
            break;
        }
    }
    Ok(())
}
