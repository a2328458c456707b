//! The process's limit of open files. Every file read and every TCP
//! connection is a descriptor, and the usual soft limit (1024) is below
//! what `--max-open-files` and `--max-connections` allow, so each source
//! raises it to the hard limit at start and fits its own bound to it.

/// The soft and hard limits of open files, the soft one first raised to
/// the hard one (`None`: unknown, or unlimited).
pub fn raise_to_hard() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit(2) reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some((limit.rlim_cur, limit.rlim_max))
}
