//! What a glob pattern matches: the regular files (with their device and
//! inode), and what is not one (a FIFO, a folder, a socket, a device),
//! which is said rather than skipped unseen. `**` matches files at any
//! depth, as in Vector's and Fluent Bit's globs.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crate::error::{Error, Result};

/// A pattern's matches now, in name order.
#[derive(Debug, Default)]
pub(super) struct Matches {
    /// The regular files, with their device and inode.
    pub files: Vec<(String, (u64, u64))>,
    /// The others, with what each is.
    pub others: Vec<(String, &'static str)>,
}

impl Matches {
    /// What a pattern matching only [`Matches::others`] says.
    pub fn only_others(&self, pattern: &str) -> String {
        let names: Vec<String> = self
            .others
            .iter()
            .map(|(path, what)| format!("{path} ({what})"))
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

/// What `pattern` matches now (a plain path matches itself). A trailing
/// `**` matches the files below too, not only the folders.
pub(super) fn matches(pattern: &str) -> Result<Matches> {
    let expanded = expand(pattern);
    let paths = glob::glob(&expanded)
        .map_err(|error| Error::Config(format!("bad pattern {pattern}: {error}")))?;
    let mut found = Matches::default();
    for path in paths.filter_map(|path| path.ok()) {
        let (Ok(metadata), Some(name)) = (std::fs::metadata(&path), path.to_str()) else {
            continue;
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
        found.others.push((name.to_string(), kind_name(kind)));
    }
    Ok(found)
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
