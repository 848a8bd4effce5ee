//! A run's failures grouped into causes: each failure's signature, the grouping of their
//! tokens, each group's headline and category, and what the history knows of it. `omen ci`
//! (the comment and summary) and `omen failures --run` share this.

use omen_core::failure::{Categorized, FailureText, Grouper, Signature, categorize, headline};
use omen_store::Store;

use crate::JobError;

/// One cause: failures whose signatures group together.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Indices of its failures, in the order given.
    pub members: Vec<usize>,
    /// The members' common first line, `<*>` where they differ (untrusted text).
    pub headline: String,
    /// The signature of its first member: what the history counts it by.
    pub signature: u64,
    /// The category of its first member, by the first rule that matches.
    pub category: Option<Categorized>,
}

/// Group `failures` into causes, the largest first (ties keep the order of their first member).
pub fn group(failures: &[FailureText<'_>]) -> Vec<Cause> {
    let mut grouper = Grouper::new(Default::default());
    let mut signatures = Vec::with_capacity(failures.len());
    for f in failures {
        let signature = Signature::of(f);
        grouper.add(signature.tokens());
        signatures.push(signature.hash);
    }
    let mut causes: Vec<Cause> = grouper
        .finish()
        .into_iter()
        .filter(|g| !g.members.is_empty())
        .map(|g| {
            let first = g.members[0];
            Cause {
                headline: headline(g.members.iter().map(|&i| failures[i].first_line())),
                signature: signatures[first],
                category: categorize(&failures[first]),
                members: g.members,
            }
        })
        .collect();
    causes.sort_by_key(|c| std::cmp::Reverse(c.members.len()));
    causes
}

/// How often a cause was seen in runs other than the one being reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Other runs that failed with it (0: new).
    pub runs: u64,
    /// When it was first seen (unix seconds).
    pub since: i64,
    /// Some of those other runs were on the default branch.
    pub on_default: bool,
}

/// What the history knows of signature `hash`, the run being reported (which already counted
/// it, on the default branch or not) left out.
pub fn known(store: &Store, hash: u64, this_run_on_default: bool) -> Result<Known, JobError> {
    Ok(match store.signature(hash)? {
        None => Known {
            runs: 0,
            since: 0,
            on_default: false,
        },
        Some(row) => Known {
            runs: row.runs.saturating_sub(1),
            since: row.first_seen,
            on_default: row.default_runs > u64::from(this_run_on_default),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message: &str) -> FailureText<'_> {
        FailureText {
            kind: Some("ConnectionRefusedError"),
            message: Some(message),
            trace: None,
        }
    }

    #[test]
    fn failures_that_differ_in_numbers_are_one_cause_with_a_common_headline() {
        let messages: Vec<String> = (0..30)
            .map(|i| format!("[Errno 111] Connection refused: 127.0.0.1:{}", 5000 + i))
            .collect();
        let mut failures: Vec<FailureText<'_>> = messages.iter().map(|m| text(m)).collect();
        failures.push(FailureText {
            kind: Some("AssertionError"),
            message: Some("assert 3 == 4"),
            trace: None,
        });
        let causes = group(&failures);
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(causes[0].members, (0..30).collect::<Vec<_>>());
        assert!(
            causes[0]
                .headline
                .contains("Connection refused: 127.0.0.1:<*>"),
            "{}",
            causes[0].headline
        );
        assert_eq!(
            causes[0].category.map(|c| c.category.as_str()),
            Some("infrastructure")
        );
        assert_eq!(causes[1].members, vec![30]);
        assert_ne!(causes[0].signature, causes[1].signature);
    }
}
