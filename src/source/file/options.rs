//! [`FileOptions`]: how the file source reads its inputs.

use std::time::Duration;

use super::decompress::Decompress;
use crate::codec::Format;

/// How the file source reads its inputs.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// The format of every input; `None` picks it from each path's extension.
    pub format: Option<Format>,
    /// CSV cell separator (a `.tsv` file's is a tab while this is `,`).
    pub delimiter: u8,
    /// CSV: the first row names the columns (else they are `c1`, `c2`, ...).
    pub header: bool,
    /// A line or CSV row longer than this is rejected, never buffered whole.
    pub max_record_bytes: usize,
    /// `--follow`: at the end of a file, wait for more (through rotation,
    /// truncation and deletion), and pick up new matches of a pattern.
    pub follow: bool,
    /// How often a followed file, and a pattern's folder, is looked at
    /// without a file-system event.
    pub poll_interval: Duration,
    /// Most files open at once when several are read together (patterns
    /// or `--follow`).
    pub max_open_files: usize,
    /// CSV files and stdin: how many pieces of the input are read at once,
    /// each on its own worker; 1 reads them with one reader, in one task
    /// (always so with `--follow` or `--checkpoint`).
    pub csv_workers: usize,
    /// How each input is decompressed (`--decompress`): by default as its
    /// first bytes say.
    pub decompress: Decompress,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            format: None,
            delimiter: b',',
            header: true,
            max_record_bytes: 16 * 1024 * 1024,
            follow: false,
            poll_interval: Duration::from_millis(250),
            max_open_files: 256,
            // Each worker holds a piece and its records (about 2 MB): more
            // than 16 add memory, not speed, as the output is one stream.
            csv_workers: std::thread::available_parallelism()
                .map_or(1, |cores| cores.get().min(16)),
            decompress: Decompress::Auto,
        }
    }
}

impl FileOptions {
    /// The options for the input at `path`: a `.tsv` file's cells (also
    /// `.tsv.gz` and the like) are separated by tabs unless `--delimiter`
    /// names another separator than the default comma.
    pub(super) fn for_path(&self, path: &str) -> FileOptions {
        let mut options = self.clone();
        let name = crate::codec::without_compression_suffix(path);
        if self.delimiter == b',' && name.to_ascii_lowercase().ends_with(".tsv") {
            options.delimiter = b'\t';
        }
        options
    }
}
