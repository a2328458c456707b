//! Output files (`-o PATH`, `--dead-letter PATH`): checked before any is
//! opened for writing, then opened to start afresh or to append.
//!
//! The checks compare files, not names: `x.csv`, `./x.csv`, a symlink and
//! a hard link to it are one file (same device and inode). A path that
//! does not exist yet is compared by its canonical folder and its name.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How an output file is opened (`--append`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Emptied first: the run's output replaces what was there.
    #[default]
    Truncate,
    /// Added at the end of what is there.
    Append,
}

/// What one run reads and writes, for [`OutputPlan::check`].
#[derive(Debug, Default)]
pub struct OutputPlan<'a> {
    /// The input files (`-`, standard input, is skipped).
    pub inputs: &'a [String],
    /// `-o PATH`, unless it is stdout or Kafka.
    pub output: Option<&'a Path>,
    /// `--dead-letter PATH`.
    pub dead_letter: Option<&'a Path>,
    /// How both are opened.
    pub mode: WriteMode,
    /// When the source resumes from saved positions (a Kafka group), what
    /// they are, for the message: "the offsets consumer group `g` committed".
    pub resumes_from: Option<String>,
}

impl OutputPlan<'_> {
    /// Refuses, with a message that says what to do, a run that would
    /// destroy records: an output that is one of the inputs, `-o` and
    /// `--dead-letter` on one file, and a non-empty output emptied by a run
    /// that resumes from saved positions (the records those positions
    /// cover are in that file, and nowhere else any more).
    pub fn check(&self) -> Result<(), String> {
        // `-` is standard input or output elsewhere; a file of that name
        // would be made without a word.
        if self.dead_letter == Some(Path::new("-")) {
            return Err(
                "--dead-letter -: the dead-letter output must be a file (rejected \
                 records are JSON lines that would mix with the output): give a path, \
                 such as ./rejected.jsonl"
                    .to_string(),
            );
        }
        // Standard input and output count where they are regular files
        // (`< x.csv`, `>> out.jsonl`); a pipe or a terminal is no file.
        let inputs: Vec<(&str, Identity)> = self
            .inputs
            .iter()
            .filter_map(|path| match path.as_str() {
                "-" => Some(("standard input", std_identity(std::io::stdin().as_fd())?)),
                path => Some((path, identity(Path::new(path))?)),
            })
            .collect();
        let stdout = match self.output {
            Some(_) => None,
            None => std_identity(std::io::stdout().as_fd()),
        };
        if let Some((input, _)) = inputs
            .iter()
            .find(|(_, input)| Some(input) == stdout.as_ref())
        {
            return Err(format!(
                "standard output is the file {input}, also an input, which writing it would \
                 destroy or make endless: send the output elsewhere"
            ));
        }
        let mut seen: Vec<(&str, &Path, Identity)> = Vec::new();
        if let Some(id) = stdout {
            seen.push(("standard output", Path::new("-"), id));
        }
        let outputs = [("-o", self.output), ("--dead-letter", self.dead_letter)];
        for (flag, path) in outputs {
            let Some(path) = path else { continue };
            let Some(id) = identity(path) else { continue };
            if let Some((input, _)) = inputs.iter().find(|(_, input)| *input == id) {
                return Err(format!(
                    "{flag} {}: that file is also an input ({input}), which writing it would \
                     destroy: give another path for {flag}",
                    path.display()
                ));
            }
            if let Some((other, _, _)) = seen.iter().find(|(_, _, other)| *other == id) {
                return Err(format!(
                    "{other} and {flag} name the same file ({}): their lines would interleave \
                     and corrupt each other: give them different paths",
                    path.display()
                ));
            }
            if let (Some(resumes), WriteMode::Truncate) = (&self.resumes_from, self.mode) {
                if is_non_empty_file(path) {
                    return Err(format!(
                        "{flag} {}: the file is not empty, and this run resumes from {resumes}: \
                         starting the file afresh would destroy the records those positions \
                         cover. Add --append (-a) to add to it, or give another path",
                        path.display()
                    ));
                }
            }
            seen.push((flag, path, id));
        }
        Ok(())
    }
}

/// Which file a path is, for comparing paths (also the `--checkpoint`
/// file's, in `config`).
#[derive(Debug, PartialEq, Eq)]
pub enum Identity {
    /// An existing file.
    Existing {
        /// Its device.
        device: u64,
        /// Its inode.
        inode: u64,
    },
    /// A file to be created: its folder (canonical) and name.
    New {
        /// The folder it will be in, canonical.
        folder: PathBuf,
        /// Its name there.
        name: OsString,
    },
}

/// The file `path` is, or `None` for what needs no protection (a
/// character device such as /dev/null or a terminal) or cannot be told
/// (opening it will then fail with its own error).
pub fn identity(path: &Path) -> Option<Identity> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.file_type().is_char_device() => None,
        Ok(metadata) => Some(Identity::Existing {
            device: metadata.dev(),
            inode: metadata.ino(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let name = path.file_name()?.to_os_string();
            let folder = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            Some(Identity::New {
                folder: folder.canonicalize().ok()?,
                name,
            })
        }
        Err(_) => None,
    }
}

/// The regular file standard input or output is, if it is one.
fn std_identity(fd: BorrowedFd<'_>) -> Option<Identity> {
    let file = File::from(fd.try_clone_to_owned().ok()?);
    let metadata = file.metadata().ok()?;
    metadata.is_file().then(|| Identity::Existing {
        device: metadata.dev(),
        inode: metadata.ino(),
    })
}

fn is_non_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.len() > 0)
}

/// An output file, opened.
#[derive(Debug)]
pub struct Opened {
    /// The file, positioned where the run's output goes.
    pub file: File,
    /// True when the run adds to what the file held (a CSV output then
    /// writes no second header row).
    pub continues: bool,
}

/// Opens (creating it if need be) `path` for output in `mode`, at once
/// (the run itself opens its outputs with [`super::opening`], which
/// empties nothing before all are open). Appending to a file whose last
/// line was cut short first mends it ([`super::torn`]).
pub fn open(path: &Path, mode: WriteMode) -> std::io::Result<Opened> {
    let mut options = OpenOptions::new();
    match mode {
        WriteMode::Truncate => options.write(true).create(true).truncate(true),
        WriteMode::Append => options.append(true).create(true),
    };
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    let continues = mode == WriteMode::Append
        && metadata.is_file()
        && super::torn::mend_last_line(&file, path, false)? > 0;
    Ok(Opened { file, continues })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_of_one_file_are_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        std::fs::write(&file, "x").unwrap();
        let dotted = dir.path().join(".").join("a.csv");
        assert_eq!(identity(&file), identity(&dotted));
        let new = dir.path().join("new.jsonl");
        let new_dotted = dir.path().join("sub/../new.jsonl");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(identity(&new), identity(&new_dotted));
        assert_ne!(identity(&new), identity(&file));
        assert_eq!(identity(Path::new("/dev/null")), None);
    }

    #[test]
    fn appending_cuts_a_torn_last_line_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"a\"").unwrap();
        let mut opened = open(&path, WriteMode::Append).unwrap();
        assert!(opened.continues);
        opened.file.write_all(b"{\"b\":2}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        let opened = open(&path, WriteMode::Truncate).unwrap();
        assert!(!opened.continues);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
