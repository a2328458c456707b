//! JSON lines: every line of the input decoded as `--format jsonl` decodes
//! it (the one-pass check, the duplicate-key scan, serde_json for what
//! they do not vouch for), with and without `--origin`. A line written
//! must be one JSON object without a repeated top-level key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamer_fuzz::record::{Content, RawBatch};
use streamer_fuzz::{decode_all, source};

fuzz_target!(|data: &[u8]| {
    let mut batch = RawBatch::new(source(), Content::Jsonl);
    for (line, text) in (1..).zip(data.split(|&b| b == b'\n')) {
        batch.push_record(text, line);
    }
    decode_all(&batch, &mut streamer_fuzz::codec::NoStep);
    for record in batch.records() {
        let mut out = streamer_fuzz::record::Batch::new(source());
        let options = Default::default();
        let step = &mut streamer_fuzz::codec::NoStep;
        let decoded =
            streamer_fuzz::codec::decode_into(&Content::Jsonl, &record, options, step, &mut out);
        if let Ok(streamer_fuzz::codec::Decoded::Written) = decoded {
            let object: serde_json::Map<String, serde_json::Value> =
                match serde_json::from_slice(out.as_ndjson()) {
                    Ok(object) => object,
                    // A number past f64's range: valid JSON that a Value cannot hold.
                    Err(error) if error.to_string().contains("number out of range") => continue,
                    Err(error) => panic!("written, but serde_json says {error}"),
                };
            let keys = count_top_keys(out.as_ndjson());
            assert_eq!(object.len(), keys, "a repeated key was written");
        }
    }
});

/// The top-level keys of one JSON object, repeats counted.
fn count_top_keys(json: &[u8]) -> usize {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut keys = 0;
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {
                keys += 1;
            }
            Ok(keys)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_map(&mut deserializer, Count).expect("an object")
}
