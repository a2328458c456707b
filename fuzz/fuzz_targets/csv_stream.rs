//! A CSV stream (a file, stdin, a CSV connection) as the file source reads
//! it: csv-async through the project's tap (`CsvStream`), the header rules
//! (`CsvAssembler`), then every row decoded to JSON. The first byte picks
//! the delimiter, whether there is a header, csv-async's buffer size and
//! `--max-record-bytes`, so refills and over-long records are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamer_fuzz::codec::csv_stream::Next;
use streamer_fuzz::codec::{CsvAssembler, CsvStream, Naming, Taken};
use streamer_fuzz::record::RawBatch;
use streamer_fuzz::{block_on, decode_all, source};

const NAMING: Naming = Naming {
    position: "on line",
    here: "on this line",
    stream: "input",
};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let delimiter = [b',', b';', b'\t', b'|'][usize::from(knobs & 3)];
    let header = knobs & 4 != 0;
    let buffer = [16, 64, 1024, 512 * 1024][usize::from((knobs >> 3) & 3)];
    let max_record_bytes = [8, 100, 4096, 1 << 20][usize::from((knobs >> 5) & 3)];
    block_on(async {
        let mut records = CsvStream::with_buffer(input, delimiter, max_record_bytes, buffer);
        let mut rows = CsvAssembler::new(header, NAMING);
        let mut batch = RawBatch::new(source(), rows.content().clone());
        // Every call consumes input or ends it: a stream of n bytes has at
        // most n + 1 records, rejections included.
        for _ in 0..=input.len() + 1 {
            match records.next().await.expect("an in-memory read never fails") {
                Next::Record(line) => {
                    assert!(records.last_raw().len() <= max_record_bytes);
                    if rows.wants_header() {
                        let (cells, bytes) = (records.cells(), records.last_raw().len());
                        if let Taken::Header(()) =
                            rows.take("fuzz.in", line, cells, bytes, |_, _| Ok(()))
                        {
                            batch = RawBatch::new(source(), rows.content().clone());
                        }
                        continue;
                    }
                    records.push_to(&mut batch);
                    batch.finish_record(line);
                }
                Next::Rejected(bad) => assert!(bad.raw.len() <= input.len()),
                Next::NeverClosed { line, last_line } => assert!(line <= last_line),
                Next::End => {
                    assert!(records.bytes_read() <= input.len() as u64);
                    decode_all(&batch, &mut streamer_fuzz::codec::NoStep);
                    return;
                }
            }
        }
        panic!("the stream did not end after {} calls", input.len() + 2);
    });
});
