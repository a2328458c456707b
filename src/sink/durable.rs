//! The output files a `--checkpoint` vouches for, flushed to disk before
//! the checkpoint is. A write the sink acknowledged is only in the page
//! cache: without this, a power loss could keep a checkpoint (which is
//! fsynced) past records the output lost, and the next run would skip them.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use super::opening::OutputFiles;

/// Handles on the `-o`, `--dead-letter` and redirected-stdout files,
/// duplicated from the sink's own, for `fsync`.
#[derive(Debug, Default)]
pub struct DurableOutputs {
    files: Vec<(String, File)>,
}

impl DurableOutputs {
    /// Duplicates the handles of `opened`, and of stdout when `stdout`
    /// (records or dead letters go there).
    pub fn of(opened: &OutputFiles, stdout: bool) -> io::Result<Self> {
        let mut files = Vec::new();
        for output in opened.output.iter().chain(&opened.dead_letter) {
            files.push((output.path.display().to_string(), output.file.try_clone()?));
        }
        if stdout {
            let fd = io::stdout().as_fd().try_clone_to_owned()?;
            files.push(("stdout".to_string(), File::from(fd)));
        }
        Ok(DurableOutputs { files })
    }

    /// Flushes every file's written data to disk. Pipes, terminals and
    /// sockets cannot be (EINVAL): what they were handed is the reader's.
    pub fn sync(&self) -> io::Result<()> {
        for (name, file) in &self.files {
            match file.sync_data() {
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {}
                Err(error) => {
                    return Err(io::Error::new(
                        error.kind(),
                        format!("cannot flush {name} to disk: {error}"),
                    ))
                }
                Ok(()) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::opening::OpenedOutput;

    #[test]
    fn files_are_synced_and_pipes_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let file = File::create(&path).unwrap();
        let opened = OutputFiles {
            output: Some(OpenedOutput {
                path: path.clone(),
                file,
                columns: None,
                continues: false,
            }),
            dead_letter: None,
        };
        let mut durable = DurableOutputs::of(&opened, false).unwrap();
        durable.sync().unwrap();
        let (reader, _writer) = std::io::pipe().unwrap();
        durable.files.push((
            "a pipe".into(),
            File::from(std::os::fd::OwnedFd::from(reader)),
        ));
        durable.sync().unwrap();
    }
}
