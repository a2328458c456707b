//! The column names of a CSV input, as the batches that need them carry
//! them. Built (and its keys' layout defined) by `codec::csv`.

/// The column names of a CSV input, kept ready to write (`"name":`): one
/// buffer of every column's encoded key and where each ends, so a header
/// costs a few bytes per column besides its names (no allocation per
/// column: a header of millions of columns stays a small multiple of its
/// own bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvHeader {
    /// The bytes before each column's value, one after the other (their
    /// layout is `codec::csv`'s).
    keys: Vec<u8>,
    /// Where each column's key ends in `keys`.
    key_ends: Vec<u32>,
    /// The key `--origin` adds its object under: `_origin`, or the first
    /// of `_origin_2`, `_origin_3`, ... that no column has.
    origin_key: String,
}

impl CsvHeader {
    /// A header of the encoded keys `keys`, each ending where `key_ends`
    /// says, whose `--origin` object goes under `origin_key`.
    pub(crate) fn from_keys(keys: Vec<u8>, key_ends: Vec<u32>, origin_key: String) -> Self {
        CsvHeader {
            keys,
            key_ends,
            origin_key,
        }
    }

    /// The encoded key of column `index`.
    pub(crate) fn key(&self, index: usize) -> &[u8] {
        let start = match index {
            0 => 0,
            _ => self.key_ends[index - 1] as usize,
        };
        &self.keys[start..self.key_ends[index] as usize]
    }

    /// Every column's encoded key, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        // A running start, not `key(index)`: this is the hot path of every row.
        let mut rest = self.keys.as_slice();
        let mut start = 0;
        self.key_ends.iter().map(move |&end| {
            let (key, tail) = rest.split_at(end as usize - start);
            start = end as usize;
            rest = tail;
            key
        })
    }

    /// Bytes of all the encoded keys together.
    pub(crate) fn keys_len(&self) -> usize {
        self.keys.len()
    }

    /// The key `--origin` adds its object under (see `CsvHeader::from_fields`).
    pub fn origin_key(&self) -> &str {
        &self.origin_key
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    /// True for a header with no column.
    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }

    /// Bytes of memory the header holds (what a budget of memory should
    /// count for it).
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() + self.key_ends.capacity() * 4 + self.origin_key.capacity()
    }
}
