//! Fold one run's test cases into one result per test identity.
//!
//! Runners report retries in two ways: attempts inside one `<testcase>` (`<flakyFailure>`,
//! `<rerunFailure>`) and repeated `<testcase>` elements with the same identity (go's `-count`,
//! gotestsum `--rerun-fails`, web-test-runner). Both end up here as one [`TestResult`] whose
//! `mixed` flag says the test both passed and failed in this run: flaky evidence, neither a pass
//! nor a failure to hide.

use std::collections::HashMap;

use crate::identity::{Identity, IdentityCache, identify_cached};
use crate::report::{Failure, Outcome, Runner, TestCase};

/// One test's result in one run, after folding its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// The test's identity.
    pub identity: Identity,
    /// The outcome of the last attempt (what the runner finally decided).
    pub outcome: Outcome,
    /// True when the test both passed and failed within this run.
    pub mixed: bool,
    /// Number of attempts seen (elements plus retries recorded inside them).
    pub attempts: u32,
    /// Duration of the last attempt, in milliseconds.
    pub duration_ms: Option<u32>,
    /// The last failure seen in this run (final or retry).
    pub failure: Option<Failure>,
    /// Source line, when the report gives one.
    pub line: Option<u32>,
}

/// Fold cases (with the runner of the report they came from) into one result per identity, in
/// order of first appearance.
pub fn fold(
    cases: impl IntoIterator<Item = (TestCase, Runner)>,
    roots: &[String],
) -> Vec<TestResult> {
    let mut folder = Folder::default();
    let mut cache = IdentityCache::default();
    for (case, runner) in cases {
        folder.add(case, runner, roots, &mut cache);
    }
    folder.finish()
}

/// [`fold`] one piece at a time: cases are added as they are parsed, and the folds of separate
/// reports are merged in report order with the same result as folding their cases in that order
/// (every field is a sum, an "or", or "the last one given wins"). A report that turns out to be
/// unusable is dropped with its own folder and leaves no trace.
#[derive(Debug, Default)]
pub struct Folder {
    // Keyed by the identity's hash, then checked against the full key: two tests whose hashes
    // collide stay apart (the second goes to `collided`), and no key is copied or rehashed.
    index: HashMap<u64, usize, BuildU64>,
    collided: HashMap<String, usize>,
    results: Vec<Folded>,
}

/// A result being folded, with whether any attempt passed and any failed.
#[derive(Debug)]
struct Folded {
    result: TestResult,
    any_pass: bool,
    any_fail: bool,
}

impl Folder {
    /// The number of tests folded so far.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether nothing was folded.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Fold one case in; `cache` may be shared across folders (it only saves work).
    pub fn add(
        &mut self,
        case: TestCase,
        runner: Runner,
        roots: &[String],
        cache: &mut IdentityCache,
    ) {
        let identity = identify_cached(&case, runner, roots, cache);
        let passed = case.outcome == Outcome::Passed;
        let failed = case.outcome.is_failure() || !case.retries.is_empty();
        let attempts = 1 + u32::try_from(case.retries.len()).unwrap_or(u32::MAX - 1);
        let duration_ms = case.duration_secs.map(secs_to_ms);
        let failure = case.failure.or_else(|| case.retries.into_iter().last());
        self.put(Folded {
            result: TestResult {
                identity,
                outcome: case.outcome,
                mixed: false,
                attempts,
                duration_ms,
                failure,
                line: case.line,
            },
            any_pass: passed,
            any_fail: failed,
        });
    }

    /// Fold everything `later` folded in after what this one holds.
    pub fn merge(&mut self, later: Folder) {
        if self.results.is_empty() {
            *self = later;
            return;
        }
        for folded in later.results {
            self.put(folded);
        }
    }

    /// The results, in order of first appearance.
    pub fn finish(self) -> Vec<TestResult> {
        self.results
            .into_iter()
            .map(|f| {
                let mut result = f.result;
                result.mixed = f.any_pass && f.any_fail;
                result
            })
            .collect()
    }

    fn slot(&self, identity: &Identity) -> Option<usize> {
        match self.index.get(&identity.hash) {
            Some(&i) if self.results[i].result.identity.key == identity.key => Some(i),
            Some(_) => self.collided.get(&identity.key).copied(),
            None => None,
        }
    }

    fn put(&mut self, later: Folded) {
        match self.slot(&later.result.identity) {
            Some(i) => {
                let folded = &mut self.results[i];
                let (result, new) = (&mut folded.result, later.result);
                folded.any_pass |= later.any_pass;
                folded.any_fail |= later.any_fail;
                result.outcome = new.outcome;
                result.attempts = result.attempts.saturating_add(new.attempts);
                result.duration_ms = new.duration_ms.or(result.duration_ms);
                if new.failure.is_some() {
                    result.failure = new.failure;
                }
                result.line = new.line.or(result.line);
            }
            None => {
                match self.index.entry(later.result.identity.hash) {
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(self.results.len());
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {
                        self.collided
                            .insert(later.result.identity.key.clone(), self.results.len());
                    }
                }
                self.results.push(later);
            }
        }
    }
}

/// A hasher for keys that are already well-mixed 64-bit hashes (identity hashes): SipHash of a
/// hash buys nothing and costs a tenth of a fold.
#[derive(Debug, Default, Clone, Copy)]
pub struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // A final mix, so that hashes differing only in high bits spread over the table.
        self.0 = (n ^ (n >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
}

/// [`U64Hasher`] for `HashMap`s keyed by identity hashes.
pub type BuildU64 = std::hash::BuildHasherDefault<U64Hasher>;

/// Seconds to whole milliseconds, saturating.
pub fn secs_to_ms(secs: f64) -> u32 {
    let ms = (secs * 1000.0).round();
    if ms >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        ms as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::junit::{Limits, parse};

    fn fold_xml(xml: &str) -> Vec<TestResult> {
        let report = match parse(xml.as_bytes(), Limits::default()) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        fold(report.cases.into_iter().map(|c| (c, report.runner)), &[])
    }

    #[test]
    fn merged_folds_equal_one_fold_in_order() {
        let xml = [
            r#"<testsuite><testcase classname="C" name="t" time="1"><failure message="m"/></testcase><testcase classname="C" name="u"/></testsuite>"#,
            r#"<testsuite><testcase classname="C" name="v" time="3"/><testcase classname="C" name="t" time="2"/></testsuite>"#,
            r#"<testsuite><testcase classname="C" name="u"><skipped/></testcase></testsuite>"#,
        ];
        let reports: Vec<_> = xml
            .iter()
            .map(|x| parse(x.as_bytes(), Limits::default()).unwrap())
            .collect();
        let all = fold(
            reports
                .iter()
                .flat_map(|r| r.cases.iter().cloned().map(|c| (c, r.runner))),
            &[],
        );
        let mut merged = Folder::default();
        let mut cache = IdentityCache::default();
        for r in &reports {
            let mut one = Folder::default();
            for c in &r.cases {
                one.add(c.clone(), r.runner, &[], &mut cache);
            }
            merged.merge(one);
        }
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.finish(), all);
        assert_eq!(all[0].attempts, 2);
        assert!(all[0].mixed);
        assert_eq!(all[1].outcome, Outcome::Skipped);
    }

    #[test]
    fn repeated_testcases_fail_then_pass_are_one_mixed_pass() {
        let results = fold_xml(
            r#"<testsuite><testcase classname="C" name="t" time="1"><failure message="m"/></testcase>
               <testcase classname="C" name="t" time="2"/><testcase classname="C" name="u"/></testsuite>"#,
        );
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].outcome, Outcome::Passed);
        assert!(results[0].mixed);
        assert_eq!(results[0].attempts, 2);
        assert_eq!(results[0].duration_ms, Some(2000));
        assert_eq!(
            results[0]
                .failure
                .as_ref()
                .and_then(|f| f.message.as_deref()),
            Some("m")
        );
        assert!(!results[1].mixed);
    }

    #[test]
    fn all_attempts_failing_is_not_mixed() {
        let results = fold_xml(
            r#"<testsuite><testcase classname="C" name="t"><failure/><rerunFailure/></testcase></testsuite>"#,
        );
        assert_eq!(results[0].outcome, Outcome::Failed);
        assert!(!results[0].mixed);
        assert_eq!(results[0].attempts, 2);
    }

    #[test]
    fn flaky_failure_inside_a_case_is_mixed() {
        let results = fold_xml(
            r#"<testsuite><testcase classname="C" name="t"><flakyFailure message="x"/></testcase></testsuite>"#,
        );
        assert_eq!(results[0].outcome, Outcome::Passed);
        assert!(results[0].mixed);
    }
}

/// Where and when a run happened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunMeta {
    /// Commit SHA under test.
    pub commit: Option<String>,
    /// Branch (for a pull request, its head branch).
    pub branch: Option<String>,
    /// The repository's default branch.
    pub default_branch: Option<String>,
    /// CI run or pipeline id.
    pub run_id: Option<String>,
    /// Attempt of the run (1 for the first).
    pub attempt: u32,
    /// Job name, the same in every run of the job: the series of durations and run totals are
    /// per job.
    pub job: Option<String>,
    /// The CI's id of this execution of the job when it has one and no attempt counter (GitLab's
    /// `CI_JOB_ID`: a retried job gets a new one). Only the run key uses it: a retry is another
    /// run of the same job.
    pub instance: Option<String>,
    /// How long the job waited for a runner, ms, when the CI told (its API; `--queue-seconds`).
    pub queue_ms: Option<u64>,
    /// Pull/merge request number.
    pub pull_request: Option<u64>,
    /// Unix seconds.
    pub at: i64,
    /// What the commit changed since the previous default-branch commit, when known (a git
    /// checkout that has both): the flakiness model's change evidence. Not stored.
    pub change: Option<crate::change::Change>,
}

impl RunMeta {
    /// True only when the branch is known to be the default branch and the run is not for a pull
    /// request. Unknown means no: only default-branch runs feed quarantine decisions.
    pub fn is_default_branch(&self) -> bool {
        self.pull_request.is_none()
            && matches!((&self.branch, &self.default_branch), (Some(b), Some(d)) if b == d)
    }
}

/// When a run counts as an outage: so many tests failed at once that the failures say nothing
/// about individual tests (a dead database, a full disk, a broken runner image).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutageRule {
    /// Share of non-skipped tests that failed. Trunk uses 0.8; Omen starts lower because a run
    /// where half the suite fails is never flakiness evidence either, and excluding it only costs
    /// a little evidence.
    pub failed_share: f64,
    /// Smallest run the rule applies to: in a run of five tests, three failures can be real.
    pub min_tests: u32,
}

impl Default for OutageRule {
    fn default() -> Self {
        OutageRule {
            failed_share: 0.5,
            min_tests: 20,
        }
    }
}

impl OutageRule {
    /// Whether a run where `failed` of `ran` non-skipped tests failed is an outage.
    pub fn applies(&self, ran: usize, failed: usize) -> bool {
        ran >= self.min_tests as usize && failed as f64 > self.failed_share * ran as f64
    }
}
