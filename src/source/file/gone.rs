//! With `--follow`: when a parked file that a search did not meet is let
//! go (see [`Gone`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A file's device and inode.
type FileId = (u64, u64);

/// How many poll intervals a parked file goes unmet before it is let go.
const GRACE_POLLS: u32 = 4;

/// The parked files the last searches did not meet. One search is not
/// enough to let one go: it lists the folder, then looks at each name, so
/// a file renamed meanwhile (`f.log` to `f.log.1`) is met under neither
/// name, and forgetting where it was read to would read it again from its
/// start under the new one. It is let go once it has gone unmet by two
/// searches and for [`GRACE_POLLS`] poll intervals (deleted, or renamed
/// out of the patterns).
#[derive(Debug)]
pub(super) struct Gone {
    /// When each was first unmet, and by how many searches since.
    unmet: HashMap<FileId, (Instant, u32)>,
    grace: Duration,
}

impl Gone {
    /// For a run polling every `poll`.
    pub(super) fn new(poll: Duration) -> Self {
        Gone {
            unmet: HashMap::new(),
            grace: poll * GRACE_POLLS,
        }
    }

    /// After a search: whether the parked file `id`, `met` by it or not,
    /// is still kept.
    pub(super) fn keep(&mut self, id: FileId, met: bool) -> bool {
        if met {
            self.unmet.remove(&id);
            return true;
        }
        let now = Instant::now();
        let (since, searches) = self.unmet.entry(id).or_insert((now, 0));
        *searches += 1;
        let keep = *searches < 2 || now.duration_since(*since) < self.grace;
        if !keep {
            self.unmet.remove(&id);
        }
        keep
    }

    /// Forgets the files no longer parked (resumed, or let go).
    pub(super) fn retain(&mut self, parked: impl Fn(&FileId) -> bool) {
        self.unmet.retain(|id, _| parked(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_search_that_misses_a_file_does_not_let_it_go() {
        let mut gone = Gone::new(Duration::from_secs(3600));
        assert!(gone.keep((1, 2), false));
        assert!(gone.keep((1, 2), false));
        assert!(gone.keep((1, 2), true));
        let mut gone = Gone::new(Duration::ZERO);
        assert!(gone.keep((1, 2), false));
        assert!(!gone.keep((1, 2), false));
        // Met again in between: counted from its next miss.
        assert!(gone.keep((3, 4), false));
        assert!(gone.keep((3, 4), true));
        assert!(gone.keep((3, 4), false));
    }
}
