//! Open files for `--max-connections`: each connection is a descriptor,
//! and the usual soft limit (1024) is below the default slot count. The
//! soft limit is raised to the hard one at start; when even that is too
//! low, the run says so (accepts past it would fail with "Too many open
//! files" and the clients wait in the backlog).

/// Descriptors left for everything else: the listener, the outputs, the
/// dead-letter file, the metrics listener and its clients, the runtime.
const MARGIN: u64 = 64;

/// Raises the soft limit of open files to the hard one, and warns when
/// that is still short of `max_connections` connections.
pub(super) fn fit(max_connections: usize) {
    let Some((soft, hard)) = crate::open_files::raise_to_hard() else {
        return;
    };
    let needed = max_connections as u64 + MARGIN;
    if soft < needed {
        let room = soft.saturating_sub(MARGIN);
        tracing::warn!(
            "--max-connections {max_connections} needs about {needed} open files, but this \
             process may open {soft} (hard limit {hard}): about {room} clients can be served at \
             once, the next ones wait (raise `ulimit -Hn`, or LimitNOFILE= in a systemd unit)"
        );
    }
}
