//! Notices a regular file that shrank while it was read (log rotation by
//! copytruncate, a writer starting over): the bytes past its new end are
//! gone, so a last record without its line end may be torn, not whole.

/// A second handle on a regular input file, to ask its size at the end.
pub(super) struct ShrinkWatch {
    file: tokio::fs::File,
    size_at_open: u64,
    /// The bytes read are decompressed ones, not the file's.
    compressed: bool,
}

impl ShrinkWatch {
    /// Watches `file` if it is a regular file (a pipe or a device cannot
    /// shrink); `None` otherwise, or if it cannot be asked.
    pub(super) async fn new(file: &tokio::fs::File) -> Option<ShrinkWatch> {
        let metadata = file.metadata().await.ok()?;
        if !metadata.is_file() {
            return None;
        }
        Some(ShrinkWatch {
            file: file.try_clone().await.ok()?,
            size_at_open: metadata.len(),
            compressed: false,
        })
    }

    /// For a compressed file: what is read is no measure of its size.
    pub(super) fn compressed(self) -> ShrinkWatch {
        ShrinkWatch {
            compressed: true,
            ..self
        }
    }

    /// The file's size now, if it is less than it was when opened or than
    /// `bytes_read` (what was read of it, at the end of reading it).
    pub(super) async fn shrank(&self, bytes_read: u64) -> Option<u64> {
        let now = self.file.metadata().await.ok()?.len();
        let read = if self.compressed { 0 } else { bytes_read };
        (now < self.size_at_open.max(read)).then_some(now)
    }
}
