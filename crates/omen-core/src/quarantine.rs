//! Quarantine decisions: which tests enter, stay in, and leave the quarantine file.
//!
//! Rules:
//! - Only `flaky` tests enter, and only from default-branch evidence (the history holds nothing
//!   else). `broken` tests leave at once and are never quarantined: a regression stays visible.
//! - Manual entries are never touched.
//! - An automatic entry is released after `release_runs` clean default-branch runs *and*
//!   `release_days` days without a failure. A test that comes back after a release is re-added
//!   with automatic release switched off: from then on a person decides.
//! - An automatic entry past its expiry is renewed while the test is known; one for a test the
//!   history no longer knows (renamed, deleted) is dropped.
//! - If automatic entries would cover more than `max_share` of the suite, the whole update is
//!   refused: that many flaky tests at once is an outage or a broken build, not flakiness. Manual
//!   entries do not count: they are a person's decision, not evidence.

use crate::flakiness::{Assessment, State};
use crate::history::TestHistory;

/// Quarantine thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuarantinePolicy {
    /// Days an entry applies before it must be renewed (reporters stop applying stale files).
    pub expires_days: i64,
    /// Clean default-branch runs before an automatic release. Rule of three: 100 clean runs bound
    /// the flake rate below 3% with 95% confidence; FlakeFlagger's median flaky test fails in
    /// under 1% of runs, so fewer would release tests that are still flaky.
    pub release_runs: u32,
    /// Days without a failure before an automatic release, so a burst of runs in one afternoon
    /// cannot release a test on its own.
    pub release_days: i64,
    /// Largest share of the suite that may be quarantined.
    pub max_share: f64,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            expires_days: 30,
            release_runs: 100,
            release_days: 14,
            max_share: 0.05,
        }
    }
}

/// What the current file says about a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    /// Added by a person.
    pub manual: bool,
    /// Omen may release it.
    pub auto_release: bool,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What a refresh did to one test's quarantine entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Quarantined now.
    Added,
    /// Released after enough clean runs.
    Released,
    /// Taken out: broken, not flaky.
    RemovedBroken,
    /// Dropped: expired, and the history no longer knows the test.
    Dropped,
}

impl ChangeKind {
    /// The change in words, as the comment and `omen quarantine` say it.
    pub fn describe(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Released => "released after clean runs",
            ChangeKind::RemovedBroken => "removed, now broken (not flaky)",
            ChangeKind::Dropped => "dropped, no longer in the history",
        }
    }
}

/// One change to the quarantine: the test by its stored key (for matching) and its
/// runner-native selector (what people see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The stored key, `scope::name`.
    pub key: String,
    /// The runner-native selector.
    pub selector: String,
}

/// The decision for one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not quarantined and should not be.
    Leave,
    /// Quarantine it now.
    Add {
        /// False when it was released before and came back.
        auto_release: bool,
    },
    /// Keep the entry as it is.
    Keep,
    /// Keep it with a new expiry.
    Renew,
    /// Release it: enough clean runs and days.
    Release,
    /// Take it out because it is broken, not flaky.
    RemoveBroken,
    /// Drop it: expired, and the history no longer knows the test.
    DropUnknown,
}

/// Decide for one test. `known` is the test's history and assessment when the database knows it.
pub fn decide(
    existing: Option<Existing>,
    known: Option<(&TestHistory, &Assessment)>,
    released_before: bool,
    now: i64,
    policy: &QuarantinePolicy,
) -> Decision {
    match (existing, known) {
        (Some(e), _) if e.manual => Decision::Keep,
        (Some(e), None) => {
            if now > e.expires_at {
                Decision::DropUnknown
            } else {
                Decision::Keep
            }
        }
        (Some(e), Some((h, a))) => {
            if a.state == State::Broken {
                Decision::RemoveBroken
            } else if e.auto_release && releasable(h, now, policy) {
                Decision::Release
            } else if now > e.expires_at {
                Decision::Renew
            } else {
                Decision::Keep
            }
        }
        (None, Some((_, a))) if a.state == State::Flaky => Decision::Add {
            auto_release: !released_before,
        },
        (None, _) => Decision::Leave,
    }
}

fn releasable(h: &TestHistory, now: i64, policy: &QuarantinePolicy) -> bool {
    let quiet_since = if h.last_failure_at == 0 {
        h.first_seen
    } else {
        h.last_failure_at
    };
    h.clean_runs >= policy.release_runs && now - quiet_since >= policy.release_days * 86_400
}

/// Why the guard refused an update, or `None` when `quarantined` tests out of `suite` is fine.
pub fn guard(quarantined: usize, suite: usize, policy: &QuarantinePolicy) -> Option<String> {
    let limit = (policy.max_share * suite as f64).floor() as usize;
    (quarantined > limit.max(1)).then(|| {
        format!(
            "refusing to quarantine {quarantined} of {suite} tests (more than {:.0}% of the suite): \
             that many flaky tests at once is an outage or a broken build, not flakiness",
            policy.max_share * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flakiness::{Evidence, FlakinessConfig, assess};

    fn assessment(state: State) -> Assessment {
        Assessment {
            state,
            score: 0.1,
            uncertainty: 0.01,
            evidence: Evidence::default(),
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn flaky_tests_enter_and_broken_ones_leave() {
        let p = QuarantinePolicy::default();
        let h = TestHistory::default();
        let flaky = assessment(State::Flaky);
        let broken = assessment(State::Broken);
        assert_eq!(
            decide(None, Some((&h, &flaky)), false, 0, &p),
            Decision::Add { auto_release: true }
        );
        assert_eq!(
            decide(None, Some((&h, &flaky)), true, 0, &p),
            Decision::Add {
                auto_release: false
            }
        );
        assert_eq!(
            decide(None, Some((&h, &broken)), false, 0, &p),
            Decision::Leave
        );
        let auto = Existing {
            manual: false,
            auto_release: true,
            expires_at: 100,
        };
        assert_eq!(
            decide(Some(auto), Some((&h, &broken)), false, 0, &p),
            Decision::RemoveBroken
        );
    }

    #[test]
    fn release_needs_clean_runs_and_days() {
        let p = QuarantinePolicy::default();
        let auto = Existing {
            manual: false,
            auto_release: true,
            expires_at: 1_000 * DAY,
        };
        let mut h = TestHistory {
            clean_runs: 100,
            last_failure_at: 10 * DAY,
            ..TestHistory::default()
        };
        let a = assess(&h, &FlakinessConfig::default());
        assert_eq!(
            decide(Some(auto), Some((&h, &a)), false, 20 * DAY, &p),
            Decision::Keep,
            "6 days is too soon"
        );
        assert_eq!(
            decide(Some(auto), Some((&h, &a)), false, 25 * DAY, &p),
            Decision::Release
        );
        h.clean_runs = 99;
        assert_eq!(
            decide(Some(auto), Some((&h, &a)), false, 25 * DAY, &p),
            Decision::Keep
        );
        let bounced = Existing {
            auto_release: false,
            ..auto
        };
        h.clean_runs = 500;
        assert_eq!(
            decide(Some(bounced), Some((&h, &a)), false, 25 * DAY, &p),
            Decision::Keep
        );
    }

    #[test]
    fn manual_entries_are_never_touched_and_unknown_ones_expire() {
        let p = QuarantinePolicy::default();
        let manual = Existing {
            manual: true,
            auto_release: false,
            expires_at: 0,
        };
        assert_eq!(
            decide(Some(manual), None, false, 10 * DAY, &p),
            Decision::Keep
        );
        let auto = Existing {
            manual: false,
            auto_release: true,
            expires_at: 5 * DAY,
        };
        assert_eq!(decide(Some(auto), None, false, 4 * DAY, &p), Decision::Keep);
        assert_eq!(
            decide(Some(auto), None, false, 6 * DAY, &p),
            Decision::DropUnknown
        );
        let h = TestHistory {
            clean_runs: 3,
            last_failure_at: 5 * DAY,
            ..TestHistory::default()
        };
        let flaky = assessment(State::Flaky);
        assert_eq!(
            decide(Some(auto), Some((&h, &flaky)), false, 6 * DAY, &p),
            Decision::Renew
        );
    }

    #[test]
    fn the_guard_refuses_an_outage_sized_quarantine() {
        let p = QuarantinePolicy::default();
        assert_eq!(guard(5, 100, &p), None);
        assert!(guard(6, 100, &p).unwrap().contains("6 of 100 tests"));
        assert_eq!(guard(1, 3, &p), None, "one test may always be quarantined");
    }
}
