//! The flakiness model: per test a score, a state, and the evidence in words and numbers.
//!
//! What it rests on (see `docs/design/flakiness.md` for the sources):
//! - The strongest evidence is one commit both passing and failing: a retry inside a run or a
//!   re-run of the job. One such event is enough to call a test flaky.
//! - Without it, failures are judged as *episodes* on the default branch: a short run of failures
//!   that ends in a pass without any change confirming it looks like a flake (`PFP`); a long one,
//!   or one that a re-run on the same commit confirmed, is a regression (`PPPFF`) that was fixed.
//! - An ongoing streak the test's own flake rate cannot explain is `broken`: never flaky, never
//!   quarantined.
//! - Only default-branch results count (a PR's failures are mostly the PR's), outage runs do not.
//! - The score is the posterior mean of a Beta-Binomial model of "fails for no code reason", with
//!   its standard deviation as the uncertainty.

use crate::history::TestHistory;

/// Every threshold of the model, each with the reason for its default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlakinessConfig {
    /// Fewer default-branch results than this and no same-commit evidence: `new`. Five runs is
    /// where a single isolated failure stops being most of what is known about a test.
    pub min_runs: u32,
    /// Beta prior (pseudo-failures). With `prior_passes` it puts the prior mean at 0.5/40.5 ≈ 1.2%,
    /// the median flake rate of FlakeFlagger's flaky tests is below 1%, and most tests never flake.
    pub prior_failures: f64,
    /// Beta prior (pseudo-passes). See `prior_failures`.
    pub prior_passes: f64,
    /// A failure episode of at most this many runs that ends in a pass looks like a flake; longer
    /// ones are regressions. At a 20% flake rate two failures in a row happen 4% of the time.
    pub short_episode: u32,
    /// Isolated short episodes needed to call a test flaky without same-commit evidence. One could
    /// be a regression fixed at once; two in the window rarely are.
    pub min_short_episodes: u32,
    /// The shortest failing streak called `broken`.
    pub min_broken_streak: u32,
    /// A streak is `broken` only if the test's own flake rate makes it this unlikely
    /// (p̂^streak < this), so a 40%-flaky test is not called broken after three failures.
    pub broken_false_alarm: f64,
    /// The longest streak ever needed to call a test broken, however flaky it was.
    pub max_broken_streak: u32,
    /// Flaky evidence goes stale after this many clean default-branch runs: the rule of three
    /// says 100 clean runs bound the flake rate below 3% with 95% confidence.
    pub stale_after_runs: u32,
    /// `omen flaky` also lists stable tests whose score is above this floor.
    pub report_floor: f64,
    /// Message evidence: isolated failure episodes make a test flaky only if at least one of them
    /// failed with a message the test had failed with before. Two one-commit regressions fail
    /// with two new messages; a flake repeats itself.
    pub message_evidence: bool,
    /// Change evidence: a short episode whose failing commit touched the test's code and whose
    /// next commit touched it again is a regression that was fixed, not a flake.
    pub change_evidence: bool,
}

impl Default for FlakinessConfig {
    fn default() -> Self {
        FlakinessConfig {
            min_runs: 5,
            prior_failures: 0.5,
            prior_passes: 40.0,
            short_episode: 2,
            min_short_episodes: 2,
            min_broken_streak: 3,
            broken_false_alarm: 0.001,
            max_broken_streak: 10,
            stale_after_runs: 100,
            report_floor: 0.05,
            message_evidence: true,
            change_evidence: true,
        }
    }
}

/// What Omen concludes about a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Too little evidence.
    New,
    /// Behaves deterministically.
    Stable,
    /// Fails for no code reason.
    Flaky,
    /// Fails every run since some commit: a regression. Stays visible, never quarantined.
    Broken,
}

impl State {
    /// Lowercase name used in every stable format.
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Stable => "stable",
            State::Flaky => "flaky",
            State::Broken => "broken",
        }
    }

    /// Order of attention in listings, most urgent first: broken, flaky, new, stable.
    pub fn urgency(self) -> u8 {
        match self {
            State::Broken => 0,
            State::Flaky => 1,
            State::New => 2,
            State::Stable => 3,
        }
    }
}

/// Whether `omen flaky` lists a test: flaky and broken ones always; a new one once it has failed
/// (otherwise a fresh database lists everything); a stable one whose score is above
/// [`FlakinessConfig::report_floor`].
pub fn worth_listing(history: &TestHistory, a: &Assessment, config: &FlakinessConfig) -> bool {
    match a.state {
        State::Flaky | State::Broken => true,
        State::New => history.db_failures > 0,
        State::Stable => a.score > config.report_floor,
    }
}

/// The numbers behind an assessment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// Same-commit pass-and-fail events ever seen on the default branch.
    pub same_commit_flakes: u32,
    /// Days between the oldest and newest remembered same-commit events (the last
    /// [`crate::history::FLAKE_TIMES`] of them), when at least two are remembered.
    pub same_commit_span_days: Option<f64>,
    /// Default-branch results since the last such event (None: never).
    pub runs_since_same_commit_flake: Option<u32>,
    /// Default-branch results in the window.
    pub window_runs: u32,
    /// Failures among them.
    pub window_failures: u32,
    /// Results in the window where a retry inside the run passed after a failure.
    pub retry_flakes: u32,
    /// Pass↔fail transitions in the window.
    pub flips: u32,
    /// Short failure episodes that ended in a pass with nothing confirming them.
    pub short_episodes: u32,
    /// Failures in those episodes.
    pub short_episode_failures: u32,
    /// Short episodes whose first failure had a message the test had not failed with before.
    pub novel_episodes: u32,
    /// Episodes that were long or confirmed by a re-run: fixed regressions.
    pub regressions: u32,
    /// Short episodes the change explains: the failing commit touched the test's code and so did
    /// the next one, which fixed it. Fixed regressions, not flakes.
    pub fixed_by_change: u32,
    /// The current failing streak.
    pub fail_streak: u32,
    /// The streak a flake rate like this test's would almost never produce.
    pub broken_streak: u32,
    /// Default-branch passes since the last failure.
    pub clean_runs: u32,
    /// Failures not counted because their run was an outage.
    pub outage_failures: u32,
}

/// The model's verdict on one test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// The state.
    pub state: State,
    /// Posterior mean probability that a run fails for no code reason.
    pub score: f64,
    /// Posterior standard deviation of `score`.
    pub uncertainty: f64,
    /// The numbers behind it.
    pub evidence: Evidence,
}

/// Assess one test from its history.
pub fn assess(h: &TestHistory, config: &FlakinessConfig) -> Assessment {
    let n = u32::from(h.window_len);
    let mut e = Evidence {
        same_commit_flakes: h.flake_events,
        runs_since_same_commit_flake: (h.flake_events > 0).then_some(h.runs_since_flake),
        same_commit_span_days: {
            let times: Vec<i64> = h.flake_times.iter().copied().filter(|t| *t != 0).collect();
            (times.len() >= 2).then(|| (times[0] - times[times.len() - 1]) as f64 / 86_400.0)
        },
        window_runs: n,
        window_failures: h.recent_failures(h.window_len),
        retry_flakes: (h.mixed_window & mask(n)).count_ones(),
        flips: h.flips(h.window_len),
        fail_streak: h.fail_streak,
        clean_runs: h.clean_runs,
        outage_failures: h.outage_failures,
        ..Evidence::default()
    };
    episodes(h, config, &mut e);

    let flaky_failures = f64::from(e.short_episode_failures + e.retry_flakes);
    let a = config.prior_failures + flaky_failures;
    let b = config.prior_passes + f64::from(n) - flaky_failures;
    let score = a / (a + b);
    let uncertainty = (score * (1.0 - score) / (a + b + 1.0)).sqrt();

    let recent_same_commit = same_commit_rule(h, &e, config);
    // The streak this test's own flake rate would produce by chance only rarely. The score counts
    // only failures that look like flakes, which underrates a very flaky test; when same-commit
    // evidence proves the test flaky, its raw failure rate before the current streak is the
    // better estimate.
    let before_streak = n.saturating_sub(e.fail_streak);
    let raw_rate = if recent_same_commit && before_streak > 0 {
        f64::from(e.window_failures.saturating_sub(e.fail_streak)) / f64::from(before_streak)
    } else {
        0.0
    };
    let rate = score.max(raw_rate).clamp(1e-6, 0.95);
    let needed = (config.broken_false_alarm.ln() / rate.ln()).ceil();
    e.broken_streak = (needed as u32).clamp(config.min_broken_streak, config.max_broken_streak);

    let isolated = isolated_rule(h, &e, config);

    let state = if h.fail_streak >= e.broken_streak {
        State::Broken
    } else if recent_same_commit || isolated {
        State::Flaky
    } else if h.db_runs < config.min_runs {
        State::New
    } else {
        State::Stable
    };
    Assessment {
        state,
        score,
        uncertainty,
        evidence: e,
    }
}

/// The same-commit rule: a pass-and-fail event on one commit within the last
/// `stale_after_runs` default-branch runs, or an older one [`renewed`].
fn same_commit_rule(h: &TestHistory, e: &Evidence, config: &FlakinessConfig) -> bool {
    let recent = e
        .runs_since_same_commit_flake
        .is_some_and(|r| r < config.stale_after_runs);
    recent || renewed(h, e, config)
}

/// Old same-commit evidence still holds when the test has failed again since, in an isolated
/// failure that passed after, with a message it has flaked with: a 2%-flaky test can go 100 runs
/// without a re-run catching it, and its next flake is not news.
fn renewed(h: &TestHistory, e: &Evidence, config: &FlakinessConfig) -> bool {
    config.message_evidence
        && e.same_commit_flakes > 0
        && h.fail_streak == 0
        && e.short_episodes > 0
        && h.clean_runs < config.stale_after_runs
        && h.last_failure_signature != 0
        && h.flake_signatures.contains(&h.last_failure_signature)
}

/// The isolated-failures rule: enough short episodes, not all of them with new messages, the last
/// failure not stale.
fn isolated_rule(h: &TestHistory, e: &Evidence, config: &FlakinessConfig) -> bool {
    let recent_failure = h.last_failure_at != 0 && h.clean_runs < config.stale_after_runs;
    let repeated = !config.message_evidence || e.short_episodes > e.novel_episodes;
    e.short_episodes >= config.min_short_episodes && repeated && recent_failure
}

/// One rule of [`assess`], with what this test showed and the threshold it was compared to.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// What the rule decides, e.g. "broken".
    pub rule: &'static str,
    /// What the history shows, in words.
    pub observed: String,
    /// What the rule needs, in words.
    pub threshold: String,
    /// Whether the rule holds for this test.
    pub holds: bool,
}

/// Every rule [`assess`] applied to `h`, in the order it applies them (the first that holds
/// decides the state), with the observed value and the threshold: the answer to "why is my test
/// (not) flaky?". `a` must be `assess(h, config)`.
pub fn reasons(h: &TestHistory, a: &Assessment, config: &FlakinessConfig) -> Vec<Reason> {
    let e = &a.evidence;
    let renewal = if renewed(h, e, config) {
        format!(
            "; it failed again {} default-branch run(s) ago with a message it has flaked with, and passed after",
            h.clean_runs
        )
    } else {
        String::new()
    };
    let mut out = vec![
        Reason {
            rule: "broken",
            observed: format!(
                "{} consecutive default-branch failure(s) now",
                e.fail_streak
            ),
            threshold: format!(
                "{} make it broken: the streak its flake rate produces by chance less than {} of the time (between {} and {})",
                e.broken_streak,
                config.broken_false_alarm,
                config.min_broken_streak,
                config.max_broken_streak
            ),
            holds: h.fail_streak >= e.broken_streak,
        },
        Reason {
            rule: "flaky: same commit",
            observed: match e.runs_since_same_commit_flake {
                Some(r) => format!(
                    "{} pass-and-fail event(s) on one commit, the latest {r} default-branch run(s) ago{renewal}",
                    e.same_commit_flakes
                ),
                None => "never failed and passed on the same commit".to_owned(),
            },
            threshold: format!(
                "one within the last {} default-branch runs makes it flaky{}",
                config.stale_after_runs,
                if config.message_evidence {
                    ", or an older one renewed by an isolated failure since with a message it has flaked with"
                } else {
                    ""
                }
            ),
            holds: same_commit_rule(h, e, config),
        },
        Reason {
            rule: "flaky: isolated failures",
            observed: format!(
                "{} isolated failure episode(s) (at most {} run(s), ended in a pass, not confirmed by a re-run) in the last {} default-branch runs, {} of them with a message it had not failed with before; {} clean run(s) since the last failure",
                e.short_episodes,
                config.short_episode,
                e.window_runs,
                e.novel_episodes,
                h.clean_runs
            ),
            threshold: format!(
                "{} episodes make it flaky{}, while the last failure is within {} clean runs",
                config.min_short_episodes,
                if config.message_evidence {
                    ", at least one repeating an earlier failure's message"
                } else {
                    ""
                },
                config.stale_after_runs
            ),
            holds: isolated_rule(h, e, config),
        },
        Reason {
            rule: "judged",
            observed: format!("{} default-branch run(s)", h.db_runs),
            threshold: format!(
                "{} are needed before a test is called stable rather than new",
                config.min_runs
            ),
            holds: h.db_runs >= config.min_runs,
        },
    ];
    let mut ignored = Vec::new();
    if e.fixed_by_change > 0 {
        ignored.push(format!(
            "{} isolated failure(s) on a commit that changed the test's code, fixed by the next commit that changed it again: fixed regressions, not flakes",
            e.fixed_by_change
        ));
    }
    if e.regressions > 0 {
        ignored.push(format!(
            "{} longer or re-run-confirmed episode(s): fixed regressions, not flakes",
            e.regressions
        ));
    }
    if e.outage_failures > 0 {
        ignored.push(format!(
            "{} failure(s) in outage runs (most of the suite failed)",
            e.outage_failures
        ));
    }
    if !ignored.is_empty() {
        out.push(Reason {
            rule: "not counted as flake evidence",
            observed: ignored.join("; "),
            threshold: "never counted".to_owned(),
            holds: true,
        });
    }
    out
}

fn mask(n: u32) -> u128 {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

/// Walk the window oldest → newest and classify every failure episode that has ended.
fn episodes(h: &TestHistory, config: &FlakinessConfig, e: &mut Evidence) {
    let n = u32::from(h.window_len);
    // An episode at the window's start is whole only if the window holds the whole history.
    let (mut len, mut confirmed, mut started) = (0u32, false, h.db_runs <= n);
    let bit = |w: u128, i: u32| (w >> i) & 1 == 1;
    for i in (0..n).rev() {
        let failed = bit(h.window, i);
        let same_commit = bit(h.same_commit_window, i);
        if failed {
            // A failure on the same commit right after a failure: a re-run confirmed it.
            if len > 0 && same_commit {
                confirmed = true;
            }
            len += 1;
            continue;
        }
        if len > 0 {
            // An episode cut off by the window's start may be the tail of something longer.
            let whole = started;
            // The episode's first failure is `len` results before this pass.
            let first = i + len;
            let fixed_by_change = config.change_evidence
                && bit(h.touched_window, first)
                && bit(h.touched_window, i)
                && !same_commit;
            if len <= config.short_episode && !confirmed && whole && fixed_by_change {
                e.fixed_by_change += 1;
            } else if len <= config.short_episode && !confirmed && whole {
                e.short_episodes += 1;
                e.short_episode_failures += len;
                e.novel_episodes += u32::from(bit(h.novel_window, first));
            } else if whole {
                e.regressions += 1;
            }
        }
        started = true;
        len = 0;
        confirmed = false;
    }
}

/// The evidence in words, most convincing first.
pub fn explain(a: &Assessment) -> String {
    let e = &a.evidence;
    let mut parts = Vec::new();
    if e.same_commit_flakes > 0 {
        let span = match e.same_commit_span_days {
            None => String::new(),
            Some(d) if d < 1.0 => " within a day".to_owned(),
            Some(d) if e.same_commit_flakes as usize <= crate::history::FLAKE_TIMES => {
                format!(" in {} days", d.ceil())
            }
            Some(d) => format!(
                " (the last {} in {} days)",
                crate::history::FLAKE_TIMES,
                d.ceil()
            ),
        };
        parts.push(format!(
            "failed and passed on the same commit {} time{}{span}",
            e.same_commit_flakes,
            plural(e.same_commit_flakes)
        ));
    }
    if e.retry_flakes > 0 {
        parts.push(format!(
            "passed on retry after failing in {} of the last {} default-branch runs",
            e.retry_flakes, e.window_runs
        ));
    }
    if e.window_runs > 0 {
        parts.push(format!(
            "{} of the last {} default-branch runs failed",
            e.window_failures, e.window_runs
        ));
    }
    if e.short_episodes > 0 {
        parts.push(format!(
            "{} isolated failure{} that passed again without a fix",
            e.short_episodes,
            plural(e.short_episodes)
        ));
    }
    if e.flips > 0 {
        parts.push(format!("{} flip{}", e.flips, plural(e.flips)));
    }
    if e.fail_streak > 0 {
        parts.push(format!(
            "failing in the last {} default-branch run{}",
            e.fail_streak,
            plural(e.fail_streak)
        ));
    }
    if e.outage_failures > 0 {
        parts.push(format!(
            "{} failure{} during outages ignored",
            e.outage_failures,
            plural(e.outage_failures)
        ));
    }
    if parts.is_empty() {
        return "no default-branch results yet".to_owned();
    }
    parts.join("; ")
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Whether one failure of a test is excused by the test's flakiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The failure looks like the test's usual flakiness.
    Excused,
    /// Not excused: the test is not flaky.
    NotFlaky,
    /// Not excused: the message differs from every flaky failure seen before.
    NewMessage,
}

/// Judge a failure, not only the test: a known-flaky test can still fail for a real reason.
/// `signature` is the failure's ([`crate::history::FailureSignature::of`]); it matches a flaky
/// failure by either recipe.
pub fn judge_failure(
    a: &Assessment,
    h: &TestHistory,
    signature: Option<crate::history::FailureSignature>,
) -> Verdict {
    if a.state != State::Flaky {
        return Verdict::NotFlaky;
    }
    let mut known = h
        .flake_signatures
        .iter()
        .copied()
        .filter(|s| *s != 0)
        .peekable();
    match signature {
        Some(sig) if known.peek().is_some() && !known.any(|s| sig.matches(s)) => {
            Verdict::NewMessage
        }
        _ => Verdict::Excused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_rule_that_decided_and_its_threshold() {
        let config = FlakinessConfig::default();
        let mut h = TestHistory::default();
        for i in 0..20u32 {
            h.observe(&crate::history::Observation {
                outcome: if i == 5 || i == 12 {
                    crate::Outcome::Failed
                } else {
                    crate::Outcome::Passed
                },
                mixed: false,
                default_branch: true,
                commit: u64::from(i),
                at: i64::from(i) * 3600,
                run: u64::from(i),
                duration_ms: None,
                failure_signature: None,
                outage: false,
                touched: false,
            });
        }
        let a = assess(&h, &config);
        assert_eq!(a.state, State::Flaky);
        let r = reasons(&h, &a, &config);
        let rules: Vec<(&str, bool)> = r.iter().map(|r| (r.rule, r.holds)).collect();
        assert_eq!(
            rules,
            [
                ("broken", false),
                ("flaky: same commit", false),
                ("flaky: isolated failures", true),
                ("judged", true)
            ]
        );
        assert!(
            r[2].observed.starts_with("2 isolated failure episode(s)"),
            "{}",
            r[2].observed
        );
        assert!(
            r[2].threshold.starts_with("2 episodes make it flaky"),
            "{}",
            r[2].threshold
        );
        assert!(
            r[1].observed
                .contains("never failed and passed on the same commit")
        );
    }

    #[test]
    fn listing_shows_what_needs_attention_most_urgent_first() {
        let config = FlakinessConfig::default();
        let a = |state, score| Assessment {
            state,
            score,
            uncertainty: 0.0,
            evidence: Evidence::default(),
        };
        let quiet = TestHistory::default();
        let failed_once = TestHistory {
            db_failures: 1,
            ..TestHistory::default()
        };
        let check = |h: &TestHistory, state, score, expected| {
            assert_eq!(
                worth_listing(h, &a(state, score), &config),
                expected,
                "{state:?} {score}"
            );
        };
        check(&quiet, State::Flaky, 0.0, true);
        check(&quiet, State::Broken, 0.0, true);
        check(&quiet, State::New, 0.9, false);
        check(&failed_once, State::New, 0.0, true);
        check(&quiet, State::Stable, config.report_floor, false);
        check(&quiet, State::Stable, config.report_floor + 0.01, true);
        let mut states = [State::Stable, State::New, State::Flaky, State::Broken];
        states.sort_by_key(|s| s.urgency());
        assert_eq!(
            states,
            [State::Broken, State::Flaky, State::New, State::Stable]
        );
    }
    use crate::history::Observation;
    use crate::report::Outcome;

    /// Build a history from a pattern: `P` pass, `F` fail, `M` fail-then-pass inside the run,
    /// `r` before a letter means "re-run on the previous commit".
    fn history(pattern: &str) -> TestHistory {
        let mut h = TestHistory::default();
        let mut commit = 0u64;
        let mut rerun = false;
        for (i, ch) in pattern.chars().enumerate() {
            if ch == 'r' {
                rerun = true;
                continue;
            }
            if !rerun {
                commit += 1;
            }
            rerun = false;
            let outcome = if ch == 'F' {
                Outcome::Failed
            } else {
                Outcome::Passed
            };
            h.observe(&Observation {
                outcome,
                mixed: ch == 'M',
                default_branch: true,
                commit,
                at: 1_000 + i as i64,
                run: i as u64 + 1,
                duration_ms: Some(10),
                failure_signature: (ch != 'P').then_some(42.into()),
                outage: false,
                touched: false,
            });
        }
        h
    }

    fn check(pattern: &str, expected: State) -> Assessment {
        let a = assess(&history(pattern), &FlakinessConfig::default());
        assert_eq!(a.state, expected, "{pattern}: {a:?}");
        a
    }

    /// A history from steps: `P`/`F`, the failure's message signature, whether the commit
    /// touched the test's code. Every step is a new commit.
    fn steps(steps: &[(char, Option<u32>, bool)]) -> TestHistory {
        let mut h = TestHistory::default();
        for (i, &(ch, sig, touched)) in steps.iter().enumerate() {
            h.observe(&step(i, ch == 'F', i as u64 + 1, sig, touched));
        }
        h
    }

    /// Result `i` of a default-branch history.
    fn step(i: usize, failed: bool, commit: u64, sig: Option<u32>, touched: bool) -> Observation {
        Observation {
            outcome: if failed {
                Outcome::Failed
            } else {
                Outcome::Passed
            },
            mixed: false,
            default_branch: true,
            commit,
            at: 1_000 + i as i64,
            run: i as u64 + 1,
            duration_ms: Some(10),
            failure_signature: if failed { sig.map(Into::into) } else { None },
            outage: false,
            touched,
        }
    }

    fn pass(n: usize) -> Vec<(char, Option<u32>, bool)> {
        vec![('P', None, false); n]
    }

    #[test]
    fn two_one_commit_regressions_with_new_messages_are_not_a_flake() {
        let mut s = pass(20);
        s.push(('F', Some(1), false));
        s.extend(pass(20));
        s.push(('F', Some(2), false));
        s.extend(pass(5));
        let h = steps(&s);
        let config = FlakinessConfig::default();
        let a = assess(&h, &config);
        assert_eq!(a.state, State::Stable, "{a:?}");
        assert_eq!(
            (a.evidence.short_episodes, a.evidence.novel_episodes),
            (2, 2)
        );
        let without = FlakinessConfig {
            message_evidence: false,
            ..config
        };
        assert_eq!(assess(&h, &without).state, State::Flaky);
        // The same failures with one message, twice: that is a flake repeating itself.
        s[40 + 1].1 = Some(1);
        assert_eq!(assess(&steps(&s), &config).state, State::Flaky);
    }

    #[test]
    fn a_failure_fixed_by_the_next_change_to_the_test_s_code_is_a_regression() {
        let mut s = pass(20);
        s.extend([('F', Some(1), true), ('P', None, true)]);
        s.extend(pass(20));
        s.extend([('F', Some(1), true), ('P', None, true)]);
        s.extend(pass(5));
        let config = FlakinessConfig::default();
        let a = assess(&steps(&s), &config);
        assert_eq!(a.state, State::Stable, "{a:?}");
        assert_eq!(
            (a.evidence.fixed_by_change, a.evidence.short_episodes),
            (2, 0)
        );
        let r = reasons(&steps(&s), &a, &config);
        assert!(
            r.last().is_some_and(|r| r
                .observed
                .contains("2 isolated failure(s) on a commit that changed the test's code")),
            "{r:?}"
        );
        let without = FlakinessConfig {
            change_evidence: false,
            ..config
        };
        assert_eq!(assess(&steps(&s), &without).state, State::Flaky);
        // A change on one side only is no evidence: a flake on a commit that touched the test.
        s[21].2 = false;
        s[43].2 = false;
        let a = assess(&steps(&s), &config);
        assert_eq!((a.state, a.evidence.fixed_by_change), (State::Flaky, 0));
    }

    #[test]
    fn a_failure_and_a_pass_on_one_touched_commit_stays_a_flake() {
        let mut h = TestHistory::default();
        for (i, failed) in [false, false, false, false, false, true, false, false]
            .into_iter()
            .enumerate()
        {
            // Commit 6 fails and then passes on a re-run; both results touched the test's code.
            let commit = if i == 6 { 6 } else { i as u64 + 1 };
            h.observe(&step(i, failed, commit, Some(3), i == 5 || i == 6));
        }
        let a = assess(&h, &FlakinessConfig::default());
        assert_eq!(
            (a.state, a.evidence.fixed_by_change),
            (State::Flaky, 0),
            "{a:?}"
        );
    }

    #[test]
    fn a_regression_is_broken_not_flaky() {
        let a = check(&format!("{}FFFF", "P".repeat(30)), State::Broken);
        assert_eq!(a.evidence.fail_streak, 4);
    }

    #[test]
    fn alternating_failures_are_flaky() {
        let a = check(&"PPPFPPPPFPPPPPPF".repeat(3), State::Flaky);
        assert!(a.evidence.short_episodes >= 4);
        assert!(a.score > 0.05, "{a:?}");
    }

    #[test]
    fn one_same_commit_flake_is_enough() {
        check(
            &format!("{}FrP{}", "P".repeat(20), "P".repeat(10)),
            State::Flaky,
        );
        check(
            &format!("{}M{}", "P".repeat(20), "P".repeat(10)),
            State::Flaky,
        );
    }

    #[test]
    fn a_failure_confirmed_by_a_rerun_is_not_a_flake() {
        // Broken on one commit, confirmed by a re-run, fixed on the next: a regression.
        let a = check(
            &format!(
                "{}FrF{}FrF{}",
                "P".repeat(20),
                "P".repeat(20),
                "P".repeat(20)
            ),
            State::Stable,
        );
        assert_eq!(a.evidence.regressions, 2);
        assert_eq!(a.evidence.short_episodes, 0);
    }

    #[test]
    fn a_fixed_regression_is_stable() {
        check(
            &format!("{}{}{}", "P".repeat(20), "F".repeat(6), "P".repeat(20)),
            State::Stable,
        );
    }

    #[test]
    fn a_very_flaky_test_is_not_called_broken_after_three_failures() {
        let a = check(
            &format!("{}FFF", "PFPFFPPFPFPPFPFFPPFP".repeat(3)),
            State::Flaky,
        );
        assert!(a.evidence.broken_streak > 3, "{a:?}");
    }

    #[test]
    fn a_proven_flaky_test_failing_half_the_time_needs_a_long_streak_to_be_broken() {
        // Same-commit flakes prove it flaky; it fails about half the time, so five in a row is
        // ordinary for it (found by the simulator: a 55% test was called broken).
        let history = format!("{}FFFFF", "FrPPFFPFFPPFPPFFFP".repeat(4));
        let a = check(&history, State::Flaky);
        assert!(a.evidence.broken_streak > 5, "{a:?}");
        // The same test really broken for good: the streak grows past what flakiness explains.
        check(
            &format!("{}{}", "FrPPFFPFFPPFPPFFFP".repeat(4), "F".repeat(12)),
            State::Broken,
        );
    }

    #[test]
    fn old_same_commit_evidence_is_renewed_by_a_flake_with_a_known_message() {
        // A retry that passed long ago, then one isolated failure with the same message: flaky.
        let long_ago = format!("M{}F{}", "P".repeat(110), "P".repeat(5));
        check(&long_ago, State::Flaky);
        // A new message is a new cause: the old evidence stays stale.
        let mut h = history(&long_ago);
        h.last_failure_signature = 99;
        let a = assess(&h, &FlakinessConfig::default());
        assert_eq!(a.state, State::Stable, "{a:?}");
        let without = FlakinessConfig {
            message_evidence: false,
            ..FlakinessConfig::default()
        };
        assert_eq!(assess(&history(&long_ago), &without).state, State::Stable);
    }

    #[test]
    fn flakiness_goes_stale_after_enough_clean_runs() {
        check(&format!("FrP{}", "P".repeat(99)), State::Flaky);
        check(&format!("FrP{}", "P".repeat(100)), State::Stable);
    }

    #[test]
    fn few_runs_are_new() {
        check("PPP", State::New);
        check("PPPPP", State::Stable);
    }

    #[test]
    fn a_new_message_is_not_excused() {
        let h = history(&format!("{}FrP{}", "P".repeat(10), "P".repeat(5)));
        let a = assess(&h, &FlakinessConfig::default());
        assert_eq!(judge_failure(&a, &h, Some(42.into())), Verdict::Excused);
        assert_eq!(judge_failure(&a, &h, Some(7.into())), Verdict::NewMessage);
        let stable = history("PPPPPPPP");
        let b = assess(&stable, &FlakinessConfig::default());
        assert_eq!(
            judge_failure(&b, &stable, Some(42.into())),
            Verdict::NotFlaky
        );
    }

    #[test]
    fn explanation_gives_the_span_of_same_commit_flakes() {
        let mut h = history("PPPPPP");
        h.flake_events = 3;
        h.flake_times[..3].copy_from_slice(&[15 * 86_400, 8 * 86_400, 86_400 + 5]);
        let text = explain(&assess(&h, &FlakinessConfig::default()));
        assert!(
            text.starts_with("failed and passed on the same commit 3 times in 14 days;"),
            "{text}"
        );
    }

    #[test]
    fn explanation_names_the_numbers() {
        let a = assess(
            &history(&format!("{}FrP{}F{}", "P".repeat(10), "P".repeat(5), "PP")),
            &FlakinessConfig::default(),
        );
        let text = explain(&a);
        assert!(
            text.contains("failed and passed on the same commit 1 time;"),
            "{text}"
        );
        assert!(
            text.contains("2 of the last 20 default-branch runs failed"),
            "{text}"
        );
    }
}
