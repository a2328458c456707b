//! The `--filter` expression: parsed (a bad one's caret message drawn
//! too, whatever characters it holds), and a good one run by the decode
//! stage's `Processor` on the records that follow it. The input's first
//! line is the expression, each later line a JSON record; the records it
//! keeps are written as JSON objects.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use streamer_fuzz::process::{Filter, Processing, Processor};
use streamer_fuzz::record::{Content, RawBatch};
use streamer_fuzz::{decode_all, source};

fuzz_target!(|text: &str| {
    let (expr, records) = text.split_once('\n').unwrap_or((text, ""));
    let filter = match Filter::parse(expr) {
        Ok(filter) => filter,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let processing = Processing {
        filter: Some(filter),
        ..Processing::default()
    };
    let mut processor = Processor::new(Arc::new(processing));
    for content in [Content::Jsonl, Content::Lines] {
        let mut batch = RawBatch::new(source(), content);
        for (line, record) in (1..).zip(records.lines()) {
            batch.push_record(record.as_bytes(), line);
        }
        decode_all(&batch, &mut processor);
    }
});
