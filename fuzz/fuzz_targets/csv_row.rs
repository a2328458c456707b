//! CSV rows that come one per frame (a length-delimited CSV connection):
//! each split by the csv crate (`CsvRowSplitter`), named by the header
//! rules, pushed as the TCP source pushes them, then decoded to JSON. The
//! frames are the input cut at each 0xFF byte; the first byte picks the
//! delimiter and whether the first row is a header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamer_fuzz::codec::csv_assembler::{push_row, trim_line_ends};
use streamer_fuzz::codec::{CsvAssembler, CsvRowSplitter, Naming, Taken};
use streamer_fuzz::record::RawBatch;
use streamer_fuzz::{decode_all, source};

const NAMING: Naming = Naming {
    position: "at record",
    here: "at this record",
    stream: "connection",
};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let delimiter = [b',', b';', b'\t', b'|'][usize::from(knobs & 3)];
    let mut splitter = CsvRowSplitter::new(delimiter);
    let mut assembler = CsvAssembler::new(knobs & 4 != 0, NAMING);
    let mut batch: Option<RawBatch> = None;
    for (pos, frame) in (1..).zip(input.split(|&b| b == 0xff)) {
        let cells = match splitter.split(frame) {
            Ok(Some(cells)) => cells,
            Ok(None) | Err(_) => continue,
        };
        let cell_bytes: usize = cells.iter().map(<[u8]>::len).sum();
        assert!(cell_bytes <= frame.len(), "cells longer than their row");
        match assembler.take("fuzz", pos, cells.iter(), frame.len(), |_, _| Ok(())) {
            Taken::Record => {
                let content = assembler.content().clone();
                let batch = batch.get_or_insert_with(|| RawBatch::new(source(), content));
                let row = trim_line_ends(frame);
                push_row(batch, row, delimiter, cells.as_slice(), cells.iter());
                batch.finish_record(pos);
            }
            Taken::Header(()) | Taken::Rejected(_) => {}
        }
    }
    if let Some(batch) = batch {
        decode_all(&batch, &mut streamer_fuzz::codec::NoStep);
    }
});
