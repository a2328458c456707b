//! With `--follow`: whether a compressed match may be read yet (see
//! [`Settled`]).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use super::{open, FileOptions};

/// With `--follow`: compressed matches are read once their size and
/// modification time have not changed for two poll intervals, as a
/// compressed file is not followed: logrotate's `compress` writes it
/// progressively, and a read of it half written would end at a cut stream.
#[derive(Default)]
pub(super) struct Settled {
    /// Each compressed match not read yet: its size and modification time,
    /// and since when they have been so.
    seen: HashMap<String, ((u64, i64, i64), std::time::Instant)>,
}

impl Settled {
    /// Whether `path` may be read now: not compressed, or settled. A
    /// file named as compressed (`.gz`, `.zst`, `.bz2`) counts as one
    /// before its first bytes show it, and is not settled while empty: it
    /// may be on its way (its format is not known yet).
    pub(super) fn settled(&mut self, path: &str, options: &FileOptions) -> bool {
        let Ok(file) = super::successors::open_now(path) else {
            return true;
        };
        let named = options.decompress == super::Decompress::Auto
            && crate::codec::without_compression_suffix(path) != path;
        let compressed = named
            || open::head_of(&file, super::decompress::MAGIC_BYTES)
                .is_ok_and(|head| options.decompress.codec(&head).is_some());
        let (true, Ok(metadata)) = (compressed, file.metadata()) else {
            return true;
        };
        let now = (metadata.len(), metadata.mtime(), metadata.mtime_nsec());
        match self.seen.get(path) {
            Some((was, since)) if *was == now && now.0 > 0 => {
                let settled = since.elapsed() >= options.poll_interval * 2;
                if settled {
                    self.seen.remove(path);
                }
                settled
            }
            _ => {
                let first_seen = (now, std::time::Instant::now());
                self.seen.insert(path.to_string(), first_seen);
                false
            }
        }
    }
}
