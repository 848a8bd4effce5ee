//! What a failing test in this run means, and which passing tests got much slower: the rules of
//! `omen ci`'s report, free of I/O so they are tested here and reused by every forge.

use crate::flakiness::{
    Assessment, FlakinessConfig, State, Verdict, assess, explain, judge_failure,
};
use crate::history::TestHistory;

/// The class of one failure in this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Classification {
    /// Not failing on the default branch, not flaky: most likely this change.
    New,
    /// Also failing on the default branch; the store's run number where its failing streak began.
    FailingOnDefault {
        /// Run number (see [`TestHistory::streak_run`]).
        streak_run: u64,
    },
    /// A known flaky test failing the way it usually does.
    KnownFlaky {
        /// Flakiness score.
        score: f64,
        /// The evidence in words.
        evidence: String,
    },
    /// In the quarantine file, with this entry mode.
    Quarantined {
        /// The entry's mode (`run-ignore`, `skip`, …).
        mode: String,
    },
}

impl Classification {
    /// Whether the failure is excused (does not fail `--fail-on unexcused-failures`).
    pub fn is_excused(&self) -> bool {
        matches!(
            self,
            Classification::KnownFlaky { .. } | Classification::Quarantined { .. }
        )
    }
}

/// What is known about one failing test.
#[derive(Debug, Clone, Copy)]
pub struct Failing<'a> {
    /// The mode of its active (unexpired) quarantine entry, if any.
    pub quarantined: Option<&'a str>,
    /// Its default-branch history, when the store knows it.
    pub history: Option<&'a TestHistory>,
    /// This failure's signatures ([`crate::history::FailureSignature::of`]).
    pub signature: Option<crate::history::FailureSignature>,
    /// This run is on the default branch.
    pub on_default_branch: bool,
}

/// Classify one failure. The rule, in order: a quarantined test is `Quarantined`; a flaky test
/// failing with one of its known flaky signatures (or with no message) is `KnownFlaky`; a
/// broken test — or, on a pull request, a test in a failing streak on the default branch — is
/// `FailingOnDefault`; anything else, including a test never seen, is `New`.
pub fn classify_failure(f: &Failing<'_>, config: &FlakinessConfig) -> Classification {
    if let Some(mode) = f.quarantined {
        return Classification::Quarantined {
            mode: mode.to_owned(),
        };
    }
    let Some(h) = f.history else {
        return Classification::New;
    };
    let a: Assessment = assess(h, config);
    if judge_failure(&a, h, f.signature) == Verdict::Excused {
        return Classification::KnownFlaky {
            score: a.score,
            evidence: explain(&a),
        };
    }
    if a.state == State::Broken || (!f.on_default_branch && h.fail_streak > 0) {
        return Classification::FailingOnDefault {
            streak_run: h.streak_run,
        };
    }
    Classification::New
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::hash::commit_hash;
    use crate::history::{FailureSignature, Observation, failure_signature};

    /// The signatures of a failure with `message`.
    fn sig(message: &str) -> FailureSignature {
        FailureSignature::of(&crate::Failure {
            message: Some(message.to_owned()),
            ..Default::default()
        })
        .expect("a message")
    }

    /// A default-branch history from `(commit, outcome)` runs, one per hour.
    fn history(runs: &[(&str, Outcome, Option<&str>)]) -> TestHistory {
        let mut h = TestHistory::default();
        for (i, (commit, outcome, message)) in runs.iter().enumerate() {
            h.observe(&Observation {
                outcome: *outcome,
                mixed: false,
                default_branch: true,
                commit: commit_hash(commit),
                at: 1_700_000_000 + i as i64 * 3600,
                run: i as u64 + 1,
                duration_ms: Some(100),
                failure_signature: message.map(sig),
                outage: false,
                touched: false,
            });
        }
        h
    }

    fn passes(n: usize) -> Vec<(String, Outcome, Option<&'static str>)> {
        (0..n)
            .map(|i| (format!("p{i}"), Outcome::Passed, None))
            .collect()
    }

    fn runs(v: &[(String, Outcome, Option<&'static str>)]) -> TestHistory {
        let borrowed: Vec<(&str, Outcome, Option<&str>)> =
            v.iter().map(|(c, o, m)| (c.as_str(), *o, *m)).collect();
        history(&borrowed)
    }

    fn flaky() -> TestHistory {
        // Failed, then passed on a re-run of the same commit, twice, in a long passing history.
        let mut v = passes(20);
        for c in ["f1", "f2"] {
            v.push((
                c.to_owned(),
                Outcome::Failed,
                Some("TimeoutError: timed out after 5 s"),
            ));
            v.push((c.to_owned(), Outcome::Passed, None));
            v.extend(passes(10));
        }
        runs(&v)
    }

    fn broken() -> TestHistory {
        let mut v = passes(20);
        for i in 0..12 {
            v.push((
                format!("b{i}"),
                Outcome::Failed,
                Some("AssertionError: 41 != 42"),
            ));
        }
        runs(&v)
    }

    fn classify(f: Failing<'_>) -> Classification {
        classify_failure(&f, &FlakinessConfig::default())
    }

    fn failing<'a>(
        history: Option<&'a TestHistory>,
        message: Option<&str>,
        on_default: bool,
    ) -> Failing<'a> {
        Failing {
            quarantined: None,
            history,
            signature: message.map(sig),
            on_default_branch: on_default,
        }
    }

    #[test]
    fn evidence_an_older_omen_stored_still_excuses_and_migrates_to_the_current_signature() {
        // The flaky history as an older Omen stored it: the legacy recipe only.
        let legacy = |m: &str| FailureSignature::from(failure_signature(m));
        let mut h = TestHistory::default();
        let message = "TimeoutError: timed out after 5 s";
        for (i, (commit, outcome)) in [("a", Outcome::Failed), ("a", Outcome::Passed)]
            .into_iter()
            .chain((0..10).map(|_| ("p", Outcome::Passed)))
            .chain([("b", Outcome::Failed), ("b", Outcome::Passed)])
            .enumerate()
        {
            h.observe(&Observation {
                outcome,
                mixed: false,
                default_branch: true,
                commit: commit_hash(&format!("{commit}{}", if commit == "p" { i } else { 0 })),
                at: 1_700_000_000 + i as i64 * 3600,
                run: i as u64 + 1,
                duration_ms: Some(100),
                failure_signature: (outcome == Outcome::Failed).then(|| legacy(message)),
                outage: false,
                touched: false,
            });
        }
        assert!(h.flake_signatures.contains(&failure_signature(message)));
        let config = FlakinessConfig::default();
        let now = sig("TimeoutError: timed out after 9 s");
        assert_ne!(now.current, now.legacy);
        let f = failing(Some(&h), Some("TimeoutError: timed out after 9 s"), true);
        assert!(
            matches!(
                classify_failure(&f, &config),
                Classification::KnownFlaky { .. }
            ),
            "{:?}",
            classify_failure(&f, &config)
        );
        // The failure recurs: the slot now holds the current recipe.
        h.observe(&Observation {
            outcome: Outcome::Failed,
            mixed: false,
            default_branch: true,
            commit: commit_hash("c"),
            at: 1_800_000_000,
            run: 99,
            duration_ms: None,
            failure_signature: Some(now),
            outage: false,
            touched: false,
        });
        assert!(
            h.flake_signatures.contains(&now.current),
            "{:?}",
            h.flake_signatures
        );
        assert!(!h.flake_signatures.contains(&now.legacy));
        assert_eq!(h.failure_signatures[0], now.current);
    }

    #[test]
    fn quarantine_wins_over_everything() {
        let b = broken();
        let mut f = failing(Some(&b), None, false);
        f.quarantined = Some("skip");
        assert_eq!(
            classify(f),
            Classification::Quarantined {
                mode: "skip".into()
            }
        );
    }

    #[test]
    fn an_unknown_test_is_new() {
        assert_eq!(
            classify(failing(None, Some("boom"), false)),
            Classification::New
        );
    }

    #[test]
    fn a_flaky_test_is_excused_only_with_its_usual_failure() {
        let h = flaky();
        let usual = classify(failing(
            Some(&h),
            Some("TimeoutError: timed out after 5 s"),
            false,
        ));
        assert!(
            matches!(usual, Classification::KnownFlaky { .. }),
            "{usual:?}"
        );
        assert!(usual.is_excused());
        let other = classify(failing(Some(&h), Some("KeyError: 'user'"), false));
        assert_eq!(other, Classification::New);
        assert!(!other.is_excused());
    }

    #[test]
    fn a_broken_test_fails_on_the_default_branch_since_its_streak() {
        let h = broken();
        assert_eq!(
            classify(failing(Some(&h), Some("AssertionError: 41 != 42"), true)),
            Classification::FailingOnDefault { streak_run: 21 }
        );
    }

    #[test]
    fn a_default_branch_streak_explains_a_pull_request_failure_only() {
        // One failure at the end of a passing history: a streak, not yet broken.
        let mut v = passes(20);
        v.push(("x".to_owned(), Outcome::Failed, Some("E")));
        let h = runs(&v);
        assert_eq!(
            classify(failing(Some(&h), Some("E"), false)),
            Classification::FailingOnDefault { streak_run: 21 }
        );
        assert_eq!(
            classify(failing(Some(&h), Some("E"), true)),
            Classification::New
        );
        let clean = runs(&passes(20));
        assert_eq!(
            classify(failing(Some(&clean), Some("E"), false)),
            Classification::New
        );
    }
}
