//! Which copy of the history database a CI job starts from, when it has two: the one the
//! default branch published (a GitLab job artifact) and the one already on disk (the runner
//! cache, or a file left by an earlier step).

/// What a copy holds, as far as the choice needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    /// Unix seconds of its newest default-branch run; `None` for a copy with none yet.
    pub newest_default_run: Option<i64>,
}

/// The copy a job starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The published copy replaces the one on disk.
    Fetched,
    /// The copy on disk stays (there is no published one, or it is newer).
    Local,
}

/// Choose between the `fetched` and the `local` copy (either may be missing or unusable:
/// `None`).
///
/// The published copy wins, except on the default branch when the one on disk has a newer
/// default-branch run. GitLab serves a branch's artifact from its latest *successful*
/// pipeline, so a run whose pipeline failed reaches the next default-branch pipeline only
/// through the runner cache. Anywhere else the copy on disk was written by a branch's own
/// pipeline, and the default branch's history must not come from what a branch claims.
pub fn choose(fetched: Option<Copy>, local: Option<Copy>, on_default_branch: bool) -> Keep {
    match (fetched, local) {
        (None, _) => Keep::Local,
        (Some(_), None) => Keep::Fetched,
        (Some(f), Some(l)) => {
            if on_default_branch && l.newest_default_run > f.newest_default_run {
                Keep::Local
            } else {
                Keep::Fetched
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> Option<Copy> {
        Some(Copy {
            newest_default_run: Some(t),
        })
    }

    #[test]
    fn the_published_copy_wins_unless_the_default_branch_has_a_newer_one_on_disk() {
        // Nothing published yet: keep what is there (possibly nothing).
        assert_eq!(choose(None, at(5), false), Keep::Local);
        assert_eq!(choose(None, None, true), Keep::Local);
        assert_eq!(choose(at(5), None, false), Keep::Fetched);
        // A branch's pipeline never prefers its own copy, however new it claims to be.
        assert_eq!(choose(at(5), at(9), false), Keep::Fetched);
        // The default branch keeps a newer run that a failed pipeline left in the cache…
        assert_eq!(choose(at(5), at(9), true), Keep::Local);
        // …but not an older or equal one.
        assert_eq!(choose(at(9), at(5), true), Keep::Fetched);
        assert_eq!(choose(at(9), at(9), true), Keep::Fetched);
        // A copy without default-branch runs is older than any with one.
        let empty = Some(Copy {
            newest_default_run: None,
        });
        assert_eq!(choose(at(1), empty, true), Keep::Fetched);
        assert_eq!(choose(empty, at(1), true), Keep::Local);
    }
}
