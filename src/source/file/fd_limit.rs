//! `--max-open-files` kept within what the process may open (its
//! RLIMIT_NOFILE), so many matches wait for a slot rather than fail the
//! run with "Too many open files".

use super::FileOptions;

/// Descriptors left for everything else: the outputs, the dead-letter and
/// checkpoint files, the watcher, the runtime.
const MARGIN: u64 = 32;

/// Descriptors one file being read may hold at once: the file, the
/// shrink watch's duplicate, the checkpoint's copy of a short file, and a
/// clone while it is opened.
const PER_FILE: u64 = 4;

/// Raises the soft limit of open files to the hard one, then lowers
/// `options.max_open_files` to what that limit allows, with a warning
/// when it does.
pub(super) fn fit(options: &mut FileOptions) {
    let Some(limit) = crate::open_files::raise_to_hard().map(|(soft, _)| soft) else {
        return;
    };
    let allowed = (limit.saturating_sub(MARGIN) / PER_FILE).max(1);
    if options.max_open_files as u64 > allowed {
        tracing::warn!(
            "--max-open-files {}: this process may open {limit} files, enough to read \
             {allowed} at once: reading at most {allowed} (raise `ulimit -n` for more)",
            options.max_open_files
        );
        options.max_open_files = allowed as usize;
    }
}
