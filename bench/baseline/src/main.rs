//! CSV -> NDJSON the plain way: one thread, the csv crate's `ByteRecord`,
//! JSON written by hand into a reused buffer, flushed in 1 MiB writes.
//! Output is byte-for-byte what `streamer file X.csv` writes (every value a
//! string, keys from the header, in order).
//!
//! usage: streamer-baseline IN.csv OUT.jsonl

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;

const FLUSH_AT: usize = 1 << 20;

/// Appends the escaped body of a JSON string (`value` is valid UTF-8).
fn escape_into(out: &mut Vec<u8>, value: &[u8]) {
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&value[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&value[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&value[start..]);
}

fn run(input: &str, output: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(input)?;
    // Each key once, as `{"key":"` / `,"key":"`, ready to copy.
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (i, name) in reader.byte_headers()?.iter().enumerate() {
        let mut key = Vec::with_capacity(name.len() + 5);
        key.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
        escape_into(&mut key, name);
        key.extend_from_slice(b"\":\"");
        keys.push(key);
    }
    let mut out = File::create(output)?;
    let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_AT + 4096);
    let mut record = csv::ByteRecord::new();
    let mut count = 0u64;
    while reader.read_byte_record(&mut record)? {
        if record.len() != keys.len() {
            return Err(format!(
                "record {} has {} fields, header has {}",
                count + 1,
                record.len(),
                keys.len()
            )
            .into());
        }
        for (key, field) in keys.iter().zip(record.iter()) {
            std::str::from_utf8(field)?;
            buf.extend_from_slice(key);
            escape_into(&mut buf, field);
            buf.push(b'"');
        }
        buf.extend_from_slice(b"}\n");
        count += 1;
        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    Ok(count)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: streamer-baseline IN.csv OUT.jsonl");
        return ExitCode::from(2);
    }
    match run(&args[1], &args[2]) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamer-baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
