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

use std::collections::{HashMap, HashSet};

use omen_metadata::quarantine::{
    Mode, QUARANTINE_VERSION, QuarantineEntry, QuarantineFile, Source,
};

use crate::flakiness::{Assessment, State, explain};
use crate::history::TestHistory;
use crate::time::{format_rfc3339, parse_rfc3339};

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

/// The entries of `file` that apply at `now`: reporters stop applying an entry once it expires
/// (an unreadable expiry counts as expired).
pub fn active(file: &QuarantineFile, now: i64) -> impl Iterator<Item = &QuarantineEntry> {
    file.tests
        .iter()
        .filter(move |e| parse_rfc3339(&e.expires).is_ok_and(|t| t >= now))
}

/// A test the history knows that regeneration must consider: in the previous file, or flaky now.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Identity hash (what release records are keyed by).
    pub key_hash: u64,
    /// The runner-native selector.
    pub selector: String,
    /// The runner, as stored.
    pub runner: String,
    /// Normalised scope.
    pub scope: String,
    /// Normalised name.
    pub name: String,
    /// Normalised file.
    pub file: Option<String>,
    /// Its default-branch history.
    pub history: TestHistory,
    /// Its assessment.
    pub assessment: Assessment,
}

/// What the history says, for [`regenerate`].
#[derive(Debug, Clone, Default)]
pub struct QuarantineInputs {
    /// Candidates by stored key (`scope::name`).
    pub candidates: HashMap<String, Candidate>,
    /// Identity hashes of tests Omen released automatically before.
    pub released_before: HashSet<u64>,
    /// Tests with default-branch history (the guard's suite size).
    pub suite: usize,
}

/// A regenerated quarantine, not yet written.
#[derive(Debug, Clone)]
pub struct Regenerated {
    /// The new file.
    pub file: QuarantineFile,
    /// What changed against the previous file, in the order it happened.
    pub changes: Vec<QuarantineChange>,
    /// Identity hashes released now (to record, so a test that bounces back stays in).
    pub releases: Vec<u64>,
    /// Tests with default-branch history.
    pub suite: usize,
}

impl Regenerated {
    /// Why the guard refuses this quarantine, if it does. Only automatic entries count: a
    /// person's manual entries are not a sign of an outage.
    pub fn refusal(&self, policy: &QuarantinePolicy) -> Option<String> {
        let automatic = self
            .file
            .tests
            .iter()
            .filter(|e| e.source == Source::Auto)
            .count();
        guard(automatic, self.suite, policy)
    }
}

/// The quarantine file that follows `previous` given what the history says (`evidence`) at `now`: every
/// entry of `previous` decided by [`decide`] (kept in its place), then the newly flaky tests in
/// key order with `mode`.
pub fn regenerate(
    previous: &QuarantineFile,
    evidence: &QuarantineInputs,
    policy: &QuarantinePolicy,
    mode: Mode,
    now: i64,
) -> Regenerated {
    let mut changes = Vec::new();
    let mut entries = Vec::new();
    let mut releases = Vec::new();
    let expires = format_rfc3339(now + policy.expires_days * 86_400);
    let change = |kind, entry: &QuarantineEntry| QuarantineChange {
        kind,
        key: entry.id.clone(),
        selector: entry.selector.clone(),
    };
    for entry in &previous.tests {
        let existing = Existing {
            manual: entry.source == Source::Manual,
            auto_release: entry.auto_release,
            // An unreadable expiry counts as expired: the entry is renewed or dropped, never kept forever.
            expires_at: parse_rfc3339(&entry.expires).unwrap_or(0),
        };
        let known = evidence.candidates.get(&entry.id);
        let released = known.is_some_and(|c| evidence.released_before.contains(&c.key_hash));
        match decide(
            Some(existing),
            known.map(|c| (&c.history, &c.assessment)),
            released,
            now,
            policy,
        ) {
            Decision::Keep | Decision::Leave | Decision::Add { .. } => entries.push(entry.clone()),
            Decision::Renew => entries.push(QuarantineEntry {
                expires: expires.clone(),
                ..entry.clone()
            }),
            Decision::Release => {
                changes.push(change(ChangeKind::Released, entry));
                releases.extend(known.map(|c| c.key_hash));
            }
            Decision::RemoveBroken => changes.push(change(ChangeKind::RemovedBroken, entry)),
            Decision::DropUnknown => changes.push(change(ChangeKind::Dropped, entry)),
        }
    }
    let listed: HashSet<&str> = previous.tests.iter().map(|e| e.id.as_str()).collect();
    let mut new: Vec<(&String, &Candidate)> = evidence
        .candidates
        .iter()
        .filter(|(key, c)| c.assessment.state == State::Flaky && !listed.contains(key.as_str()))
        .collect();
    new.sort_by(|a, b| a.0.cmp(b.0));
    for (key, c) in new {
        let released = evidence.released_before.contains(&c.key_hash);
        let Decision::Add { auto_release } = decide(
            None,
            Some((&c.history, &c.assessment)),
            released,
            now,
            policy,
        ) else {
            continue;
        };
        changes.push(QuarantineChange {
            kind: ChangeKind::Added,
            key: key.clone(),
            selector: c.selector.clone(),
        });
        entries.push(QuarantineEntry {
            id: key.clone(),
            selector: c.selector.clone(),
            runner: c.runner.clone(),
            classname: c.scope.clone(),
            name: c.name.clone(),
            file: c.file.clone(),
            reason: if auto_release {
                "flaky on the default branch".to_owned()
            } else {
                "flaky again after an automatic release: release it by hand".to_owned()
            },
            score: Some((c.assessment.score * 10_000.0).round() / 10_000.0),
            evidence: Some(explain(&c.assessment)),
            added: format_rfc3339(now),
            expires: expires.clone(),
            owner: None,
            mode,
            source: Source::Auto,
            auto_release,
        });
    }
    Regenerated {
        file: QuarantineFile {
            version: QUARANTINE_VERSION,
            tests: entries,
        },
        changes,
        releases,
        suite: evidence.suite,
    }
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

    fn candidate(name: &str, state: State, history: TestHistory) -> (String, Candidate) {
        let key = crate::identity::key_of("pkg.mod", name);
        let c = Candidate {
            key_hash: crate::hash::fnv1a64(key.as_bytes()),
            selector: format!("pkg/mod.py::{name}"),
            runner: "pytest".to_owned(),
            scope: "pkg.mod".to_owned(),
            name: name.to_owned(),
            file: Some("pkg/mod.py".to_owned()),
            history,
            assessment: assessment(state),
        };
        (key, c)
    }

    fn entry(key: &str, source: Source, expires: &str) -> QuarantineEntry {
        QuarantineEntry {
            id: key.to_owned(),
            selector: format!("sel {key}"),
            runner: "pytest".to_owned(),
            classname: "pkg.mod".to_owned(),
            name: key.rsplit("::").next().unwrap_or(key).to_owned(),
            file: None,
            reason: "flaky on the default branch".to_owned(),
            score: None,
            evidence: None,
            added: "2026-01-01T00:00:00Z".to_owned(),
            expires: expires.to_owned(),
            owner: None,
            mode: Mode::RunIgnore,
            source,
            auto_release: true,
        }
    }

    #[test]
    fn regeneration_keeps_order_adds_sorted_and_reports_every_change() {
        let p = QuarantinePolicy::default();
        let now = 100 * DAY;
        let quiet = TestHistory {
            clean_runs: p.release_runs,
            last_failure_at: now - (p.release_days + 1) * DAY,
            ..TestHistory::default()
        };
        let (fixed, fixed_c) = candidate("test_fixed", State::Stable, quiet);
        let (broken, broken_c) = candidate("test_broken", State::Broken, TestHistory::default());
        let (b_new, b_c) = candidate("test_b", State::Flaky, TestHistory::default());
        let (a_new, a_c) = candidate("test_a", State::Flaky, TestHistory::default());
        let (back, back_c) = candidate("test_back", State::Flaky, TestHistory::default());
        let released_before: HashSet<u64> = [back_c.key_hash].into();
        let evidence = QuarantineInputs {
            candidates: [
                (fixed.clone(), fixed_c.clone()),
                (broken.clone(), broken_c),
                (b_new.clone(), b_c),
                (a_new.clone(), a_c),
                (back.clone(), back_c),
            ]
            .into(),
            released_before,
            suite: 1000,
        };
        let future = "2099-01-01T00:00:00Z";
        let previous = QuarantineFile {
            version: QUARANTINE_VERSION,
            tests: vec![
                entry("manual::kept", Source::Manual, "2000-01-01T00:00:00Z"),
                entry(&fixed, Source::Auto, future),
                entry(&broken, Source::Auto, future),
                entry("gone::renamed", Source::Auto, "1970-01-02T00:00:00Z"),
            ],
        };
        let r = regenerate(&previous, &evidence, &p, Mode::Skip, now);
        let ids: Vec<&str> = r.file.tests.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "manual::kept",
                a_new.as_str(),
                b_new.as_str(),
                back.as_str()
            ]
        );
        let changes: Vec<(ChangeKind, &str)> =
            r.changes.iter().map(|c| (c.kind, c.key.as_str())).collect();
        assert_eq!(
            changes,
            [
                (ChangeKind::Released, fixed.as_str()),
                (ChangeKind::RemovedBroken, broken.as_str()),
                (ChangeKind::Dropped, "gone::renamed"),
                (ChangeKind::Added, a_new.as_str()),
                (ChangeKind::Added, b_new.as_str()),
                (ChangeKind::Added, back.as_str()),
            ]
        );
        assert_eq!(r.releases, [fixed_c.key_hash]);
        let added = &r.file.tests[1];
        assert_eq!(added.mode, Mode::Skip);
        assert_eq!(
            added.selector, "pkg/mod.py::test_a",
            "humans see the selector"
        );
        assert_eq!(added.added, "1970-04-11T00:00:00Z");
        assert!(added.auto_release);
        let bounced = &r.file.tests[3];
        assert!(
            !bounced.auto_release,
            "a test back after a release stays until a person decides"
        );
        assert!(bounced.reason.contains("release it by hand"));
        assert_eq!(r.refusal(&p), None);
    }

    #[test]
    fn an_expired_entry_of_a_known_test_is_renewed_and_the_guard_ignores_manual_entries() {
        let p = QuarantinePolicy::default();
        let now = 10 * DAY;
        let (key, c) = candidate("test_x", State::Flaky, TestHistory::default());
        let evidence = QuarantineInputs {
            candidates: [(key.clone(), c)].into(),
            released_before: HashSet::new(),
            suite: 20,
        };
        let previous = QuarantineFile {
            version: QUARANTINE_VERSION,
            tests: vec![
                entry(&key, Source::Auto, "not a time"),
                entry("m::1", Source::Manual, "2099-01-01T00:00:00Z"),
                entry("m::2", Source::Manual, "2099-01-01T00:00:00Z"),
            ],
        };
        let r = regenerate(&previous, &evidence, &p, Mode::RunIgnore, now);
        assert_eq!(r.file.tests.len(), 3);
        assert_eq!(
            r.file.tests[0].expires,
            format_rfc3339(now + p.expires_days * DAY),
            "an unreadable expiry counts as expired and is renewed"
        );
        assert!(r.changes.is_empty());
        assert_eq!(
            r.refusal(&p),
            None,
            "3 entries of 20, but only one is automatic"
        );
        let crowded = Regenerated {
            suite: 2,
            ..r.clone()
        };
        assert_eq!(
            crowded.refusal(&p),
            None,
            "one automatic entry is always allowed"
        );
        let mut two = r;
        two.file.tests[1].source = Source::Auto;
        two.suite = 2;
        assert!(two.refusal(&p).is_some());
    }
}
