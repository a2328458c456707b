//! What a glob pattern matches: the regular files (with their device and
//! inode), and what is not one (a FIFO, a folder, a socket, a device),
//! which is said rather than skipped unseen. `**` matches files at any
//! depth, as in Vector's and Fluent Bit's globs.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// A pattern's matches now, in name order.
#[derive(Debug, Default)]
pub(super) struct Matches {
    /// The regular files, with their device and inode.
    pub files: Vec<(String, (u64, u64))>,
    /// The others, with why each is not read ("is a FIFO, not a regular
    /// file").
    pub others: Vec<(String, String)>,
}

impl Matches {
    /// What a pattern matching only [`Matches::others`] says.
    pub fn only_others(&self, pattern: &str) -> String {
        let names: Vec<String> = self
            .others
            .iter()
            .map(|(path, why)| format!("{path} ({why})"))
            .collect();
        format!(
            "{pattern} matches no regular file, only: {}",
            names.join(", ")
        )
    }
}

/// A pattern given without `--follow` must match a regular file: checked
/// before the run.
pub(super) fn check_pattern(pattern: &str, follow: bool) -> Result<()> {
    let matched = matches(pattern)?;
    if !matched.files.is_empty() {
        return Ok(());
    }
    let message = match matched.others.is_empty() {
        true => format!("no file matches {pattern}"),
        false => matched.only_others(pattern),
    };
    if !follow {
        return Err(Error::Config(message));
    }
    tracing::warn!("{message} yet: waiting for one (--follow)");
    Ok(())
}

/// What `pattern` matches now (a plain path matches itself, and so does
/// a name with glob characters that exists as it is spelled). A trailing
/// `**` matches the files below too, not only the folders. What matches
/// and cannot be read is said, never skipped unseen: a dangling symlink,
/// a symlink loop, a folder that cannot be listed, a name not in UTF-8.
pub(super) fn matches(pattern: &str) -> Result<Matches> {
    let paths: Vec<std::result::Result<PathBuf, glob::GlobError>> =
        if super::open::is_pattern(pattern) {
            glob::glob(&expand(pattern))
                .map_err(|error| Error::Config(format!("bad pattern {pattern}: {error}")))?
                .collect()
        } else {
            vec![Ok(PathBuf::from(pattern))]
        };
    let mut found = Matches::default();
    for path in paths
        .into_iter()
        .chain(not_utf8(pattern).into_iter().map(Ok))
    {
        let path = match path {
            Ok(path) => path,
            Err(error) => {
                let why = format!("cannot be read: {}", error.error());
                found.others.push((error.path().display().to_string(), why));
                continue;
            }
        };
        let Some(name) = path.to_str() else {
            let why = "has a name that is not UTF-8, which streamer cannot name in its output";
            found
                .others
                .push((path.display().to_string(), why.to_string()));
            continue;
        };
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            // A plain path not there (yet) matches nothing.
            Err(error) if std::fs::symlink_metadata(&path).is_err() => {
                if error.kind() != std::io::ErrorKind::NotFound {
                    found
                        .others
                        .push((name.to_string(), format!("cannot be read: {error}")));
                }
                continue;
            }
            // Not a symlink: the path was replaced between the two looks
            // (a rotation renamed one file away and created the next).
            Err(_) if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) => {
                match std::fs::metadata(&path) {
                    Ok(metadata) => metadata,
                    Err(_) => continue,
                }
            }
            Err(error) => {
                let why = match error.raw_os_error() {
                    Some(libc::ELOOP) => "is a symlink loop".to_string(),
                    _ if error.kind() == std::io::ErrorKind::NotFound => {
                        "is a symlink whose target does not exist".to_string()
                    }
                    _ => format!("cannot be read: {error}"),
                };
                found.others.push((name.to_string(), why));
                continue;
            }
        };
        let kind = metadata.file_type();
        if kind.is_file() {
            found
                .files
                .push((name.to_string(), (metadata.dev(), metadata.ino())));
            continue;
        }
        // `**` matches every folder on the way to its files.
        if kind.is_dir() && recursive(pattern) {
            continue;
        }
        let why = format!("is {}, not a regular file", kind_name(kind));
        found.others.push((name.to_string(), why));
    }
    Ok(found)
}

/// The names in the pattern's folder that are not UTF-8 and that its last
/// part matches once made readable: the glob crate skips them unseen.
/// Only for a pattern whose wildcards are all in its last part.
fn not_utf8(pattern: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if !super::open::is_pattern(pattern) {
        return Vec::new();
    }
    let pattern = std::path::Path::new(pattern);
    let (Some(name), folder) = (pattern.file_name(), super::watch::folder_of(pattern)) else {
        return Vec::new();
    };
    let Ok(last) = glob::Pattern::new(&name.to_string_lossy()) else {
        return Vec::new();
    };
    if super::open::is_pattern(&folder.to_string_lossy()) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            std::str::from_utf8(name.as_bytes()).is_err() && last.matches(&name.to_string_lossy())
        })
        .map(|entry| entry.path())
        .collect()
}

/// What a file that is not a regular one is, for messages: "a folder",
/// "a FIFO", ...
pub(crate) fn kind_name(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Whether `pattern` has a `**` component (its folder is watched with its
/// subfolders).
pub(super) fn recursive(pattern: &str) -> bool {
    pattern.split('/').any(|part| part == "**")
}

/// `pattern` as the glob crate takes it: its `**` alone matches folders
/// only, so a trailing `**` becomes `**/*`.
fn expand(pattern: &str) -> String {
    match pattern.strip_suffix("**") {
        Some(rest) if rest.is_empty() || rest.ends_with('/') => format!("{pattern}/*"),
        _ => pattern.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_double_star_matches_files_at_any_depth() {
        assert_eq!(expand("dir/**"), "dir/**/*");
        assert_eq!(expand("**"), "**/*");
        assert_eq!(expand("dir/**/*.log"), "dir/**/*.log");
        assert_eq!(expand("dir/a**"), "dir/a**");
        assert!(recursive("dir/**/*.log") && !recursive("dir/*.log"));
    }
}
