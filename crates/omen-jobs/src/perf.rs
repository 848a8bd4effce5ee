//! The performance job after each run: on the default branch, find new change points in the
//! durations of the tests this run ran and of the run's total, and remember them; on a pull
//! request, compare this run's durations with the default branch's. Decisions are
//! `omen_core::perf`'s; this reads the series and records what it found.

use std::collections::{HashMap, HashSet};

use omen_core::perf::anomaly::{Anomaly, AnomalyConfig, assess};
use omen_core::perf::changepoint::{ChangePoint, DetectConfig, detect};
use omen_core::perf::common::{run_factor, run_factors};
use omen_core::perf::compare::{CompareConfig, Slowdown, compare};
use omen_core::perf::trend::{Reach, Trend, TrendConfig, fit};
use omen_store::{ChangePointRow, ChangeRecord, DurationWindow, RunRow, Store};

use crate::JobError;

/// Settings of the performance job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfSettings {
    /// Default-branch runs a change point is searched in (the newest ones).
    pub window: u32,
    /// Default-branch runs a pull request is compared with.
    pub baseline_runs: u32,
    /// The detector on one test's passing duration.
    pub test_detect: DetectConfig,
    /// The detector on the run's total test time.
    pub suite_detect: DetectConfig,
    /// The pull-request comparison.
    pub compare: CompareConfig,
    /// Unusual runs.
    pub anomaly: AnomalyConfig,
    /// Default-branch runs an unusual run is judged against.
    pub anomaly_runs: u32,
    /// When more than this share of the judged tests (and at least ten) is slower, they are one
    /// cause — a slower machine, or something they share — reported together, not test by test.
    pub together_share: f64,
    /// The suite time's trend.
    pub trend: TrendConfig,
    /// The suite time, in seconds, the trend's forecast counts down to (30 minutes).
    pub suite_budget_s: f64,
}

impl PerfSettings {
    /// A change found within this many runs of a stored one (of the same series) is that one,
    /// placed again with more runs, not a new change: two of the detector's shortest segments.
    pub fn same_change_runs(&self) -> usize {
        2 * self
            .test_detect
            .min_segment
            .max(self.suite_detect.min_segment)
            .max(1)
    }
}

impl Default for PerfSettings {
    fn default() -> Self {
        PerfSettings {
            window: 100,
            baseline_runs: 30,
            test_detect: DetectConfig::durations(50.0),
            suite_detect: DetectConfig::durations(1000.0),
            compare: CompareConfig::default(),
            together_share: 0.05,
            anomaly: AnomalyConfig::default(),
            anomaly_runs: 200,
            trend: TrendConfig::default(),
            suite_budget_s: 1800.0,
        }
    }
}

/// A change point found by this run, with the commits it is attributed to.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundChange {
    /// As stored.
    pub row: ChangePointRow,
    /// Commit of the first run at the new level: the culprit (or the first good commit).
    pub commit: Option<String>,
    /// Commit of the last run at the old level; the change lies in `(previous_commit, commit]`.
    pub previous_commit: Option<String>,
    /// When the first run at the new level ran, unix seconds.
    pub at: i64,
}

/// This run's passing durations, ms, by test id.
fn passing_durations(store: &Store, run: &RunRow) -> Result<HashMap<i64, f64>, JobError> {
    Ok(store
        .run_results(run.id)?
        .into_iter()
        .filter(|r| r.outcome == omen_core::Outcome::Passed)
        .filter_map(|r| r.duration_ms.map(|ms| (r.test_id, f64::from(ms))))
        .collect())
}

/// After default-branch run `run` (already stored): look for change points in the series of
/// the tests that passed in it and of the run's total, in the newest [`PerfSettings::window`]
/// runs of the same job, and record those not known yet. Only series that got a new point are
/// searched, and only their recent window. Returns the new change points.
pub fn after_default_run(
    store: &mut Store,
    run: &RunRow,
    settings: &PerfSettings,
    now: i64,
) -> Result<Vec<FoundChange>, JobError> {
    let job = run.job.clone().unwrap_or_default();
    let tests: HashSet<i64> = passing_durations(store, run)?.into_keys().collect();
    let window = store.duration_window(Some(&job), settings.window, Some(&tests))?;
    let runs = &window.runs;
    // Only a window that ends with this run says anything about this run.
    if runs.last().map(|r| r.id) != Some(run.id) {
        return Ok(Vec::new());
    }
    let candidates = window_changes(&window, settings);
    record(store, &job, &window, candidates, run.id, settings, now)
}

/// What [`scan`] read and found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scan {
    /// Jobs whose default-branch runs were read.
    pub jobs: usize,
    /// Default-branch runs read, over all jobs.
    pub runs: usize,
    /// Series searched: each job's tests with a duration, and its suite total.
    pub series: usize,
    /// Change points found, known or not.
    pub found: usize,
    /// Those not known before, now recorded.
    pub new: Vec<FoundChange>,
}

/// Search the whole default-branch history that still holds raw results, every job, every
/// test, and record the change points not known yet; a known one found again is placed
/// anew, as after a run. For a history that was never analysed run by run: one merged from
/// elsewhere, or read under other settings.
pub fn scan(store: &mut Store, settings: &PerfSettings, now: i64) -> Result<Scan, JobError> {
    let mut out = Scan::default();
    for job in store.default_jobs()? {
        let window = store.duration_window(Some(&job), u32::MAX, None)?;
        let Some(last) = window.runs.last().map(|r| r.id) else {
            continue;
        };
        out.jobs += 1;
        out.runs += window.runs.len();
        out.series += window.tests.len() + 1;
        let candidates = window_changes(&window, settings);
        out.found += candidates.len();
        out.new.extend(record(
            store, &job, &window, candidates, last, settings, now,
        )?);
    }
    Ok(out)
}

/// The change points of `window`'s suite total and of each test in it (run factors divided
/// out).
fn window_changes(
    window: &DurationWindow,
    settings: &PerfSettings,
) -> Vec<(Option<i64>, ChangePoint)> {
    let runs = &window.runs;
    let suite: Vec<f64> = runs.iter().map(|r| r.duration_ms as f64).collect();
    let mut candidates: Vec<(Option<i64>, ChangePoint)> = detect(&suite, &settings.suite_detect)
        .into_iter()
        .map(|c| (None, c))
        .collect();
    // Each test is judged after dividing out what its whole run shared (runner, cache); the
    // suite's total above keeps it.
    let factors = run_factors(window.all_series(), runs.len());
    candidates.extend(detect_tests(window, &factors, &settings.test_detect));
    candidates
}

/// Record `candidates` found in `window` of `job` by run `detected_run`; the new ones, with
/// the commits they are attributed to.
fn record(
    store: &mut Store,
    job: &str,
    window: &DurationWindow,
    candidates: Vec<(Option<i64>, ChangePoint)>,
    detected_run: i64,
    settings: &PerfSettings,
    now: i64,
) -> Result<Vec<FoundChange>, JobError> {
    let runs = &window.runs;
    let rows: Vec<ChangeRecord> = candidates
        .iter()
        .map(|(test_id, c)| {
            let row = ChangePointRow {
                test_id: *test_id,
                job: job.to_owned(),
                run: runs[c.index].id,
                previous_run: c.index.checked_sub(1).map(|i| runs[i].id),
                before_ms: c.before,
                after_ms: c.after,
                p_value: c.p_value,
                detected_run,
                detected_at: now,
            };
            // The same change found again a few runs later (or earlier) is not news. Found
            // within those runs of the window's start, its earlier side is cut short and its
            // place is a guess: what was stored stays.
            let reach = settings.same_change_runs();
            let near = (
                runs[c.index.saturating_sub(reach)].id,
                runs[(c.index + reach).min(runs.len() - 1)].id,
            );
            ChangeRecord {
                row,
                near,
                replace: c.index >= reach,
            }
        })
        .collect();
    let new = store.record_change_points(&rows)?;
    Ok(rows
        .into_iter()
        .zip(candidates)
        .zip(new)
        .filter(|(_, new)| *new)
        .map(|((ChangeRecord { row, .. }, (_, c)), _)| FoundChange {
            commit: runs[c.index].commit.clone(),
            previous_commit: c.index.checked_sub(1).and_then(|i| runs[i].commit.clone()),
            at: runs[c.index].at,
            row,
        })
        .collect())
}

/// Change points of every test of `window`, its run factors divided out, in test order. The
/// tests are split between two threads: each series is independent, and CI machines have at
/// least two cores.
fn detect_tests(
    window: &DurationWindow,
    factors: &[f64],
    config: &DetectConfig,
) -> Vec<(Option<i64>, ChangePoint)> {
    let detect_range = |range: std::ops::Range<usize>| {
        let mut found = Vec::new();
        let mut normalized = Vec::with_capacity(factors.len());
        for i in range {
            normalized.clear();
            normalized.extend(window.series(i).iter().zip(factors).map(|(v, f)| v / f));
            found.extend(
                detect(&normalized, config)
                    .into_iter()
                    .map(|c| (Some(window.tests[i]), c)),
            );
        }
        found
    };
    let n = window.tests.len();
    if n < 1000 {
        return detect_range(0..n);
    }
    let (mut found, rest) =
        omen_core::parallel::join(|| detect_range(0..n / 2), || detect_range(n / 2..n));
    found.extend(rest);
    found
}

/// A pull request's run against the default branch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    /// How much slower the whole run was (`omen_core::perf::common::run_factor`), already
    /// divided out of `slowdowns`.
    pub factor: f64,
    /// Tests slower beyond the tolerance: test id and the evidence, most slowed first.
    pub slowdowns: Vec<(i64, Slowdown)>,
    /// The slowdowns are too many to be separate ([`PerfSettings::together_share`]): one cause.
    pub together: bool,
    /// Tests that had enough default-branch history to be judged.
    pub judged: usize,
}

/// Compare the passing durations of run `run` (a pull request's, already stored) with the
/// newest [`PerfSettings::baseline_runs`] default-branch runs of the same job. Other runs of the
/// same commit (re-runs, retries) join the evidence (a rank test instead of a prediction
/// interval).
pub fn compare_pull_request(
    store: &Store,
    run: &RunRow,
    settings: &PerfSettings,
) -> Result<Comparison, JobError> {
    let current = passing_durations(store, run)?;
    let tests: HashSet<i64> = current.keys().copied().collect();
    let window = store.duration_window(
        Some(run.job.as_deref().unwrap_or_default()),
        settings.baseline_runs,
        Some(&tests),
    )?;
    // The baseline without what its runs shared, like the detector sees it.
    let factors = run_factors(window.all_series(), window.runs.len());
    let baselines: Vec<(i64, Vec<f64>)> = window
        .tests
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let b: Vec<f64> = window
                .series(i)
                .iter()
                .zip(&factors)
                .filter(|(v, _)| v.is_finite())
                .map(|(v, f)| v / f)
                .collect();
            (*id, b)
        })
        .filter(|(_, b)| b.len() >= settings.compare.min_baseline)
        .collect();
    let earlier = match &run.commit {
        Some(c) => store.same_commit_durations(c, run.id, 10, &tests)?,
        None => HashMap::new(),
    };
    let factor = run_factor(
        baselines
            .iter()
            .filter_map(|(id, b)| current.get(id).map(|c| (b.as_slice(), *c))),
        settings.compare.min_absolute_ms,
    );
    let mut comparison = Comparison {
        factor,
        judged: baselines.len(),
        ..Comparison::default()
    };
    let mut durations = Vec::new();
    for (id, base) in &baselines {
        let Some(&now) = current.get(id) else {
            continue;
        };
        durations.clear();
        durations.push(now);
        if let Some(more) = earlier.get(id) {
            durations.extend(more);
        }
        if let Some(s) = compare(base, &durations, factor, baselines.len(), &settings.compare) {
            comparison.slowdowns.push((*id, s));
        }
    }
    comparison
        .slowdowns
        .sort_by(|a, b| b.1.delta_ms.total_cmp(&a.1.delta_ms).then(a.0.cmp(&b.0)));
    comparison.together = comparison.slowdowns.len() >= 10
        && comparison.slowdowns.len() as f64 > settings.together_share * comparison.judged as f64;
    Ok(comparison)
}

/// One run-level metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunMetric {
    /// How it is named in the comment.
    pub name: &'static str,
    /// Its values are milliseconds (shown as durations), not counts.
    pub ms: bool,
}

/// The run-level metrics an unusual run is judged on, in [`run_metrics`]'s order.
pub const RUN_METRICS: [RunMetric; 7] = [
    RunMetric {
        name: "test time",
        ms: true,
    },
    RunMetric {
        name: "tests",
        ms: false,
    },
    RunMetric {
        name: "failed",
        ms: false,
    },
    RunMetric {
        name: "skipped",
        ms: false,
    },
    RunMetric {
        name: "flaky",
        ms: false,
    },
    RunMetric {
        name: "failure causes",
        ms: false,
    },
    RunMetric {
        name: "queue time",
        ms: true,
    },
];

/// `run`'s values of [`RUN_METRICS`]; NaN where a run stored before Omen measured it has none.
pub fn run_metrics(run: &RunRow) -> Vec<f64> {
    vec![
        run.duration_ms as f64,
        run.tests as f64,
        run.failed as f64,
        run.skipped as f64,
        run.mixed as f64,
        run.causes.map_or(f64::NAN, |n| n as f64),
        run.queue_ms.map_or(f64::NAN, |ms| ms as f64),
    ]
}

/// Is run `run` unusual against the newest [`PerfSettings::anomaly_runs`] default-branch runs
/// of its job (itself left out)? Outage runs are left out of the history too. A metric some runs
/// lack (stored before Omen measured it) is judged only once enough runs have it: the history is
/// the runs that have every metric judged.
pub fn unusual_run(
    store: &Store,
    run: &RunRow,
    settings: &PerfSettings,
) -> Result<Option<Anomaly>, JobError> {
    let history: Vec<Vec<f64>> = store
        .recent_default_runs(settings.anomaly_runs)?
        .iter()
        .filter(|r| r.id != run.id && r.job == run.job && !r.outage)
        .map(run_metrics)
        .collect();
    let current = run_metrics(run);
    // The history's runs that have every metric in `used`, on those metrics.
    let rows_with = |used: &[usize]| -> Vec<Vec<f64>> {
        history
            .iter()
            .filter(|h| used.iter().all(|&m| h[m].is_finite()))
            .map(|h| used.iter().map(|&m| h[m]).collect())
            .collect()
    };
    let mut used: Vec<usize> = (0..current.len())
        .filter(|&m| current[m].is_finite())
        .collect();
    let mut rows = rows_with(&used);
    if rows.len() < settings.anomaly.min_history {
        used.retain(|&m| history.iter().all(|h| h[m].is_finite()));
        rows = rows_with(&used);
    }
    let judged: Vec<f64> = used.iter().map(|&m| current[m]).collect();
    Ok(
        assess(&rows, &judged, run.id as u64, &settings.anomaly).map(|mut a| {
            for d in &mut a.deviations {
                d.metric = used[d.metric];
            }
            a
        }),
    )
}

/// The suite time's trend in one job's default-branch runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteTrend {
    /// The job (`""` when runs have none).
    pub job: String,
    /// The fit of the run's total test time, in ms.
    pub trend: Trend,
    /// When it passes [`PerfSettings::suite_budget_s`] at this rate, if it grows significantly.
    pub reach: Option<Reach>,
}

/// Default-branch runs read for the trends, at most: enough for the newest
/// [`TrendConfig::max_points`] of a few jobs.
const TREND_RUNS: u32 = 3000;

/// The suite time's trend per job, over the newest default-branch runs (outages left out: a run
/// that mostly failed stopped early). Jobs with too few runs or too short a span have none.
pub fn suite_trends(store: &Store, settings: &PerfSettings) -> Result<Vec<SuiteTrend>, JobError> {
    let runs = store.recent_default_runs(TREND_RUNS)?;
    let mut by_job: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    for r in runs.iter().filter(|r| !r.outage && r.tests > r.skipped) {
        let job = r.job.clone().unwrap_or_default();
        let point = (r.at, r.duration_ms as f64);
        match by_job.iter_mut().find(|(j, _)| *j == job) {
            Some((_, points)) => points.push(point),
            None => by_job.push((job, vec![point])),
        }
    }
    Ok(by_job
        .into_iter()
        .filter_map(|(job, points)| {
            let trend = fit(&points, &settings.trend)?;
            let reach = trend.reaches(settings.suite_budget_s * 1000.0);
            Some(SuiteTrend { job, trend, reach })
        })
        .collect())
}

/// A test whose passing duration grows on the default branch.
#[derive(Debug, Clone, PartialEq)]
pub struct TestTrend {
    /// The test's row id.
    pub test_id: i64,
    /// The job of its runs (`""` when runs have none).
    pub job: String,
    /// The fit of its passing durations, in ms.
    pub trend: Trend,
}

/// Runs of each job a test's trend is fitted on: Theil–Sen compares every pair of points.
const TEST_TREND_RUNS: u32 = 100;

/// Tests listed, the fastest-growing in ms a month first.
const TEST_TRENDS: usize = 10;

/// A test's growth is news when it adds at least this share a month…
const TEST_TREND_MIN_RELATIVE: f64 = 0.10;

/// …and at least this much, in ms a month: a 2 ms test getting slower is not.
const TEST_TREND_MIN_MS: f64 = 50.0;

/// The tests whose passing duration grows significantly over each job's newest
/// 100 default-branch runs that keep their results, by at least 10% and 50 ms a
/// month; the 10 fastest-growing.
pub fn test_trends(store: &Store, settings: &PerfSettings) -> Result<Vec<TestTrend>, JobError> {
    let mut out = Vec::new();
    for job in store.default_jobs()? {
        let window = store.duration_window(Some(&job), TEST_TREND_RUNS, None)?;
        let at: Vec<i64> = window.runs.iter().map(|r| r.at).collect();
        for (i, series) in window.all_series().enumerate() {
            let points: Vec<(i64, f64)> = at
                .iter()
                .zip(series)
                .filter(|(_, v)| v.is_finite())
                .map(|(&t, &v)| (t, v))
                .collect();
            let Some(trend) = fit(&points, &settings.trend) else {
                continue;
            };
            let (relative, _, _) = trend.per_month();
            if trend.per_day_low > 0.0
                && relative >= TEST_TREND_MIN_RELATIVE
                && trend.per_day * 30.0 >= TEST_TREND_MIN_MS
            {
                out.push(TestTrend {
                    test_id: window.tests[i],
                    job: job.clone(),
                    trend,
                });
            }
        }
    }
    out.sort_by(|a, b| b.trend.per_day.total_cmp(&a.trend.per_day));
    out.truncate(TEST_TRENDS);
    Ok(out)
}

/// The newest default-branch run of one group of shard jobs, and a more even split.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardGroup {
    /// The jobs' common name (`test` for `test (1/4)` … `test (4/4)`).
    pub group: String,
    /// The CI run id the shards share.
    pub run_id: Option<String>,
    /// Their commit.
    pub commit: Option<String>,
    /// Each shard: its job name and how many timed tests it ran, ordered by shard index.
    pub jobs: Vec<(String, usize)>,
    /// The tests, in the order [`omen_core::perf::shards::Balance`]'s indices refer to.
    pub tests: Vec<i64>,
    /// How even the shards were, and the split suggested.
    pub balance: omen_core::perf::shards::Balance,
}

/// Default-branch runs searched for sharded jobs.
const SHARD_RUNS: u32 = 500;

/// For each group of shard jobs (named as `omen_core::perf::shards::shard_of` reads them), the
/// newest default-branch CI run in which two or more of its shards still hold their results.
pub fn shard_groups(store: &Store) -> Result<Vec<ShardGroup>, JobError> {
    use omen_core::perf::shards::{balance, shard_of};
    let runs = store.recent_default_runs(SHARD_RUNS)?;
    /// One group's shards in one CI run: (shard index, run).
    struct Seen<'r> {
        group: String,
        run_id: Option<String>,
        commit: Option<String>,
        shards: Vec<(u32, &'r RunRow)>,
    }
    // Newest CI run first.
    let mut seen: Vec<Seen<'_>> = Vec::new();
    for r in runs.iter().rev().filter(|r| r.has_results) {
        let Some((group, index)) = r.job.as_deref().and_then(shard_of) else {
            continue;
        };
        match seen
            .iter_mut()
            .find(|s| s.group == group && s.run_id == r.run_id && s.commit == r.commit)
        {
            Some(s) => {
                if s.shards.iter().all(|(i, _)| *i != index) {
                    s.shards.push((index, r));
                }
            }
            None => seen.push(Seen {
                group: group.to_owned(),
                run_id: r.run_id.clone(),
                commit: r.commit.clone(),
                shards: vec![(index, r)],
            }),
        }
    }
    let mut out: Vec<ShardGroup> = Vec::new();
    for Seen {
        group,
        run_id,
        commit,
        mut shards,
    } in seen
    {
        if shards.len() < 2 || out.iter().any(|g| g.group == group) {
            continue;
        }
        shards.sort_by_key(|(i, _)| *i);
        let mut durations = Vec::with_capacity(shards.len());
        let mut tests = Vec::new();
        let mut jobs = Vec::with_capacity(shards.len());
        for (_, run) in &shards {
            let timed: Vec<(i64, f64)> = store
                .run_results(run.id)?
                .into_iter()
                .filter_map(|p| p.duration_ms.map(|ms| (p.test_id, f64::from(ms))))
                .collect();
            jobs.push((run.job.clone().unwrap_or_default(), timed.len()));
            tests.extend(timed.iter().map(|(id, _)| *id));
            durations.push(timed.into_iter().map(|(_, ms)| ms).collect::<Vec<f64>>());
        }
        if let Some(balance) = balance(&durations) {
            out.push(ShardGroup {
                group,
                run_id,
                commit,
                jobs,
                tests,
                balance,
            });
        }
    }
    Ok(out)
}
