//! A CI-history simulator with known truth, for evaluating the flakiness model.
//!
//! Every test has a ground truth: stable, flaky at a rate drawn from FlakeFlagger's 10,000-rerun
//! table (possibly fixed part-way), a regression that starts at one commit and is fixed later, or
//! broken only on some pull-request branches. The simulated project runs its suite on every
//! default-branch commit and on pull requests; failed default-branch jobs are sometimes re-run on
//! the same commit; some jobs retry failed tests inside the run; one run is an outage; a few tests
//! are renamed. Runs come out as JUnit XML plus metadata, to be fed through `omen ingest`'s path.
//!
//! The hard cases: tests broken by two or three separate commits, each fixed by the very next
//! commit (isolated failures that are real bugs, each with its own message); rare flakes (0.5–2%)
//! whose failures come in bursts; regressions caused by a commit that changed none of the test's
//! code. Every default-branch commit carries the paths it changed, as `omen ingest` reads them
//! from git: a few random source files, plus the test's code for the commits that broke or fixed
//! it (unless the breakage came from elsewhere).

use std::fmt::Write as _;
use std::path::Path;

use omen_core::run::RunMeta;

use crate::generate::Rng;

/// What a test really is.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// Never fails for no reason.
    Stable,
    /// Fails with probability `rate` in every run before `fixed_at` (a main-run index).
    Flaky {
        /// Failure probability per run.
        rate: f64,
        /// Main-run index from which it no longer flakes.
        fixed_at: Option<usize>,
    },
    /// Fails in every run of main commits `start..end`.
    Regression {
        /// First failing main run.
        start: usize,
        /// First passing main run again.
        end: usize,
    },
    /// Passes on the default branch; some pull requests break it.
    PrBroken,
    /// Fails only on these main runs, each a regression fixed by the next commit, each with a
    /// message of its own.
    ShortRegressions {
        /// The failing main runs.
        at: Vec<usize>,
    },
}

impl Truth {
    /// A real bug, not flakiness: never to be labelled flaky or quarantined.
    pub fn is_real_bug(&self) -> bool {
        matches!(
            self,
            Truth::Regression { .. } | Truth::PrBroken | Truth::ShortRegressions { .. }
        )
    }
}

/// One simulated test.
#[derive(Debug, Clone)]
pub struct SimTest {
    /// Module (pytest classname).
    pub module: String,
    /// Name before the rename.
    pub name: String,
    /// Name from `renamed_at` on.
    pub renamed: Option<(usize, String)>,
    /// Ground truth.
    pub truth: Truth,
    /// For a bursty flake: its failure probability inside a burst, and the main runs in a burst.
    pub burst: Option<(f64, Vec<bool>)>,
    /// Main runs whose commit changed this test's code (the commits that broke or fixed it).
    pub code_changes: Vec<usize>,
}

impl SimTest {
    /// The name reported in main run `run`.
    pub fn name_at(&self, run: usize) -> &str {
        match &self.renamed {
            Some((at, new)) if run >= *at => new,
            _ => &self.name,
        }
    }
}

/// Simulation settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Tests in the suite.
    pub tests: usize,
    /// Default-branch commits (main runs).
    pub runs: usize,
    /// Seed.
    pub seed: u64,
    /// Share of tests that are flaky. FlakeFlagger found 3.6%; the evaluation uses more so the
    /// precision and recall figures rest on enough flaky tests.
    pub flaky_share: f64,
    /// Share of flaky tests whose flakiness is fixed half-way (to measure release).
    pub fixed_share: f64,
    /// Tests with a regression on the default branch.
    pub regressions: usize,
    /// Tests that pull requests break.
    pub pr_broken: usize,
    /// Pull-request runs per main run.
    pub pr_runs_per_main: f64,
    /// Probability that a failed default-branch job is re-run on the same commit.
    pub rerun_probability: f64,
    /// Probability that a job retries failed tests inside the run.
    pub retry_probability: f64,
    /// Main-run index of the outage (most of the suite fails), if any.
    pub outage_at: Option<usize>,
    /// Tests renamed half-way.
    pub renames: usize,
    /// Seconds between main runs.
    pub interval: i64,
    /// Tests broken by two or three separate commits, each fixed by the next commit.
    pub short_regressions: usize,
    /// Rare flakes (0.5–2%) whose failures come in bursts.
    pub bursty_rare: usize,
    /// Share of regressions whose breaking commit changed none of the test's code.
    pub untouched_share: f64,
    /// Default-branch runs carry the paths their commit changed.
    pub changes: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tests: 2000,
            runs: 200,
            seed: 7,
            flaky_share: 0.08,
            fixed_share: 0.15,
            regressions: 24,
            pr_broken: 40,
            pr_runs_per_main: 0.8,
            rerun_probability: 0.5,
            retry_probability: 0.3,
            outage_at: Some(120),
            renames: 10,
            interval: 3 * 3600,
            short_regressions: 20,
            bursty_rare: 16,
            untouched_share: 0.3,
            changes: true,
        }
    }
}

/// One simulated CI run.
#[derive(Debug, Clone)]
pub struct SimRun {
    /// Metadata as `omen ingest` would read it.
    pub meta: RunMeta,
    /// Index of the main run this is (or follows, for PR runs).
    pub main_index: usize,
    /// The JUnit report.
    pub xml: String,
    /// Final outcome per test index on this run (true = failed), for the baselines.
    pub failed: Vec<bool>,
}

/// Flake rates of FlakeFlagger's flaky tests (failing runs / 10,000), from the committed table.
pub fn flakeflagger_rates(csv: &Path) -> anyhow::Result<Vec<f64>> {
    let text = std::fs::read_to_string(csv).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e} (the table is committed in tests/corpus/flaky/)",
            csv.display()
        )
    })?;
    let mut rates = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() >= 5 && cols[2] == "1" {
            let failing: f64 = cols[3].parse().unwrap_or(0.0);
            let passing: f64 = cols[4].parse().unwrap_or(0.0);
            if failing + passing > 0.0 {
                rates.push(failing / (failing + passing));
            }
        }
    }
    anyhow::ensure!(
        rates.len() > 100,
        "{} has too few flaky rows",
        csv.display()
    );
    Ok(rates)
}

/// Build the suite.
pub fn suite(config: &SimConfig, rates: &[f64]) -> Vec<SimTest> {
    let mut rng = Rng::new(config.seed);
    let mut tests: Vec<SimTest> = (0..config.tests)
        .map(|i| {
            let module = format!("tests.pkg_{}.test_area_{}", i % 7, i / 25);
            let name = if i % 5 == 0 {
                format!("test_case_{i}[variant-{}]", i % 3)
            } else {
                format!("test_case_{i}")
            };
            SimTest {
                module,
                name,
                renamed: None,
                truth: Truth::Stable,
                burst: None,
                code_changes: Vec::new(),
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..config.tests).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut next = order.into_iter();
    let flaky = (config.tests as f64 * config.flaky_share).round() as usize;
    for _ in 0..flaky {
        let Some(i) = next.next() else { break };
        let rate = rates[(rng.next_u64() % rates.len() as u64) as usize];
        let fixed_at = (rng.f64() < config.fixed_share).then_some(config.runs * 2 / 5);
        tests[i].truth = Truth::Flaky { rate, fixed_at };
    }
    for _ in 0..config.regressions {
        let Some(i) = next.next() else { break };
        let start = 5 + (rng.next_u64() % (config.runs as u64 - 40)) as usize;
        // Mostly multi-commit breakages; some fixed on the next commit.
        let len = if rng.f64() < 0.3 {
            1
        } else {
            3 + (rng.next_u64() % 25) as usize
        };
        tests[i].truth = Truth::Regression {
            start,
            end: start + len,
        };
    }
    for _ in 0..config.pr_broken {
        let Some(i) = next.next() else { break };
        tests[i].truth = Truth::PrBroken;
    }
    hard_cases(config, &mut tests, &mut next);
    // Renames: some stable, some flaky tests change name half-way.
    let mut renamed = 0;
    for t in tests.iter_mut() {
        if renamed >= config.renames {
            break;
        }
        if matches!(t.truth, Truth::Stable | Truth::Flaky { .. }) && rng.f64() < 0.02 {
            let new = format!(
                "{}_renamed",
                t.name.replace('[', "_v[").trim_end_matches('_')
            );
            t.renamed = Some((config.runs / 2, new));
            renamed += 1;
        }
    }
    tests
}

/// The hard cases, drawn from a generator of their own so the rest of the suite stays the same
/// with or without them: short regressions, bursty rare flakes, and which commits changed each
/// broken test's code.
fn hard_cases(config: &SimConfig, tests: &mut [SimTest], next: &mut impl Iterator<Item = usize>) {
    let mut rng = Rng::new(config.seed ^ 0x4a2d);
    let span = config.runs as u64 - 20;
    for _ in 0..config.short_regressions {
        let Some(i) = next.next() else { break };
        let episodes = 2 + (rng.next_u64() % 2) as usize;
        let mut at: Vec<usize> = Vec::new();
        while at.len() < episodes {
            let a = 5 + (rng.next_u64() % span) as usize;
            if at.iter().all(|b| a.abs_diff(*b) > 2) {
                at.push(a);
            }
        }
        at.sort_unstable();
        tests[i].truth = Truth::ShortRegressions { at };
    }
    for _ in 0..config.bursty_rare {
        let Some(i) = next.next() else { break };
        let rate = 0.005 + rng.f64() * 0.015;
        // Bursts of about three runs (stay with 0.7), about one run in ten inside one.
        let mut inside = false;
        let schedule: Vec<bool> = (0..config.runs)
            .map(|_| {
                inside = if inside {
                    rng.f64() < 0.7
                } else {
                    rng.f64() < 0.033
                };
                inside
            })
            .collect();
        let share = schedule.iter().filter(|b| **b).count().max(1) as f64 / config.runs as f64;
        tests[i].truth = Truth::Flaky {
            rate,
            fixed_at: None,
        };
        tests[i].burst = Some(((rate / share).min(0.6), schedule));
    }
    // The commits that broke a test and fixed it changed its code, unless the breakage came from
    // elsewhere (a dependency, shared configuration): then the fix did not touch it either.
    for t in tests.iter_mut() {
        let episodes: Vec<(usize, usize)> = match &t.truth {
            Truth::Regression { start, end } => vec![(*start, *end)],
            Truth::ShortRegressions { at } => at.iter().map(|a| (*a, a + 1)).collect(),
            _ => continue,
        };
        for (broke, fixed) in episodes {
            if rng.f64() >= config.untouched_share {
                t.code_changes.extend([broke, fixed]);
            }
        }
    }
}

/// The code a simulated test covers: `tests.pkg_3.test_area_6` covers `src/pkg_3/area_6.py`.
fn code_path(module: &str) -> String {
    let mut parts: Vec<&str> = module.split('.').skip(1).collect();
    let file = parts.pop().unwrap_or("x");
    format!(
        "src/{}/{}.py",
        parts.join("/"),
        file.trim_start_matches("test_")
    )
}

/// What main commit `main` changed: a few random source files, the code of the tests it broke
/// or fixed, and shared files for breakages that came from elsewhere.
fn commit_change(tests: &[SimTest], main: usize, rng: &mut Rng) -> omen_core::change::Change {
    let mut paths = Vec::new();
    for _ in 0..1 + rng.next_u64() % 3 {
        let t = &tests[(rng.next_u64() % tests.len() as u64) as usize];
        paths.push(code_path(&t.module));
    }
    if rng.f64() < 0.3 {
        paths.push("docs/usage.md".to_owned());
    }
    for t in tests {
        if t.code_changes.contains(&main) {
            paths.push(code_path(&t.module));
        }
        let elsewhere = match &t.truth {
            Truth::Regression { start, end } => *start == main || *end == main,
            Truth::ShortRegressions { at } => at.iter().any(|a| *a == main || a + 1 == main),
            _ => false,
        };
        if elsewhere && !t.code_changes.contains(&main) {
            paths.push(format!("config/shared_{}.toml", main % 5));
        }
    }
    omen_core::change::Change::from_paths(paths.iter().map(String::as_str))
}

/// Generate every run, in the order CI would produce them.
pub fn runs(config: &SimConfig, tests: &[SimTest]) -> Vec<SimRun> {
    let mut rng = Rng::new(config.seed ^ 0x5eed);
    let mut change_rng = Rng::new(config.seed ^ 0xc4a9);
    let mut out = Vec::new();
    let t0 = 1_767_225_600; // 2026-01-01
    let mut pr_number = 0u64;
    for main in 0..config.runs {
        let at = t0 + main as i64 * config.interval;
        let commit = sha(&mut rng);
        let outage = config.outage_at == Some(main);
        let change = config
            .changes
            .then(|| commit_change(tests, main, &mut change_rng));
        let mut attempt = 1;
        loop {
            let retries = rng.f64() < config.retry_probability;
            let run = one_run(tests, main, outage && attempt == 1, retries, &mut rng);
            let any_failed = run.1.iter().any(|f| *f);
            out.push(SimRun {
                meta: RunMeta {
                    commit: Some(commit.clone()),
                    branch: Some("main".into()),
                    default_branch: Some("main".into()),
                    run_id: Some(format!("main-{main}")),
                    attempt,
                    job: Some("test".into()),
                    pull_request: None,
                    at: at + i64::from(attempt - 1) * 600,
                    change: change.clone(),
                    ..Default::default()
                },
                main_index: main,
                xml: run.0,
                failed: run.1,
            });
            if any_failed && attempt < 3 && rng.f64() < config.rerun_probability {
                attempt += 1;
                continue;
            }
            break;
        }
        // Pull requests opened off this commit: each breaks a few PR-only tests.
        let mut prs = config.pr_runs_per_main;
        while prs > 0.0 {
            if prs < 1.0 && rng.f64() >= prs {
                break;
            }
            prs -= 1.0;
            pr_number += 1;
            let pr_commit = sha(&mut rng);
            // The PR breaks 1–3 PR-only tests.
            let candidates: Vec<usize> = tests
                .iter()
                .enumerate()
                .filter(|(_, t)| t.truth == Truth::PrBroken)
                .map(|(i, _)| i)
                .collect();
            let mut broken = Vec::new();
            if !candidates.is_empty() {
                for _ in 0..1 + rng.next_u64() % 3 {
                    broken.push(candidates[(rng.next_u64() % candidates.len() as u64) as usize]);
                }
            }
            let retries = rng.f64() < config.retry_probability;
            let run = one_run_with(tests, main, &broken, retries, &mut rng);
            out.push(SimRun {
                meta: RunMeta {
                    commit: Some(pr_commit),
                    branch: Some(format!("feature-{pr_number}")),
                    default_branch: Some("main".into()),
                    run_id: Some(format!("pr-{pr_number}")),
                    attempt: 1,
                    job: Some("test".into()),
                    pull_request: Some(pr_number),
                    at: at + 1800,
                    change: None,
                    ..Default::default()
                },
                main_index: main,
                xml: run.0,
                failed: run.1,
            });
        }
    }
    out
}

fn sha(rng: &mut Rng) -> String {
    format!(
        "{:016x}{:016x}{:08x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64() as u32
    )
}

/// (xml, failed per test, retries flag)
fn one_run(
    tests: &[SimTest],
    main: usize,
    outage: bool,
    retries: bool,
    rng: &mut Rng,
) -> (String, Vec<bool>, bool) {
    let mut xml = String::with_capacity(tests.len() * 160);
    xml.push_str(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<testsuites><testsuite name=\"pytest\">\n",
    );
    let mut failed = Vec::with_capacity(tests.len());
    for t in tests {
        let first_fails = outage && rng.f64() < 0.95 || fails(t, main, rng);
        let deterministic = outage
            || match &t.truth {
                Truth::Regression { start, end } => (*start..*end).contains(&main),
                Truth::ShortRegressions { at } => at.contains(&main),
                _ => false,
            };
        let msg = message(t, main, outage, rng);
        let mut final_failed = first_fails;
        let _ = write!(
            xml,
            "<testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            t.module,
            t.name_at(main),
            0.01 + rng.f64() * 0.2
        );
        if first_fails && retries {
            // Retried inside the run (Surefire/nextest style): a flaky failure usually passes.
            let second_fails = deterministic || fails(t, main, rng);
            if second_fails {
                let _ = writeln!(
                    xml,
                    "><failure message=\"{msg}\">{msg}</failure><rerunFailure message=\"{msg}\"/></testcase>"
                );
            } else {
                final_failed = false;
                let _ = writeln!(
                    xml,
                    "><flakyFailure message=\"{msg}\">{msg}</flakyFailure></testcase>"
                );
            }
        } else if first_fails {
            let _ = writeln!(
                xml,
                "><failure message=\"{msg}\">{msg}</failure></testcase>"
            );
        } else {
            xml.push_str("/>\n");
        }
        failed.push(final_failed);
    }
    xml.push_str("</testsuite></testsuites>\n");
    (xml, failed, retries)
}

fn one_run_with(
    tests: &[SimTest],
    main: usize,
    broken: &[usize],
    retries: bool,
    rng: &mut Rng,
) -> (String, Vec<bool>, bool) {
    let (xml, mut failed, _) = one_run(tests, main, false, retries, rng);
    // Rewrite the broken tests' cases as deterministic failures.
    let mut out = String::with_capacity(xml.len() + 200);
    for (i, line) in xml.lines().enumerate() {
        // Line 0 and 1 are the header; test i is on line i + 2.
        if i >= 2 && broken.contains(&(i - 2)) {
            let t = &tests[i - 2];
            let _ = writeln!(
                out,
                "<testcase classname=\"{}\" name=\"{}\" time=\"0.05\"><failure message=\"AssertionError: the change broke this\">AssertionError</failure></testcase>",
                t.module,
                t.name_at(main)
            );
            failed[i - 2] = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, failed, retries)
}

fn fails(t: &SimTest, main: usize, rng: &mut Rng) -> bool {
    match &t.truth {
        Truth::Stable | Truth::PrBroken => false,
        Truth::Flaky { rate, fixed_at } => {
            let rate = match &t.burst {
                Some((inside, schedule)) if schedule.get(main) == Some(&true) => *inside,
                Some(_) => 0.0,
                None => *rate,
            };
            fixed_at.is_none_or(|f| main < f) && rng.f64() < rate
        }
        Truth::Regression { start, end } => (*start..*end).contains(&main),
        Truth::ShortRegressions { at } => at.contains(&main),
    }
}

/// What each short regression of a test fails with: one message per bug.
const BUGS: &[&str] = &[
    "KeyError: 'customer_id'",
    "TypeError: unsupported operand type(s) for +: 'int' and 'NoneType'",
    "AttributeError: 'Order' object has no attribute 'total'",
    "AssertionError: assert response.status == 'done'",
    "ValueError: invalid literal for int() with base ten",
    "IndexError: list index out of range",
];

fn message(t: &SimTest, main: usize, outage: bool, rng: &mut Rng) -> &'static str {
    if outage {
        return "OperationalError: could not connect to server: Connection refused";
    }
    match &t.truth {
        Truth::ShortRegressions { at } => {
            let episode = at.iter().position(|a| *a == main).unwrap_or(0);
            let first = t.name.len() + t.module.len();
            BUGS[(first + episode) % BUGS.len()]
        }
        Truth::Flaky { .. } => {
            if rng.f64() < 0.7 {
                "TimeoutError: operation timed out after 5000 ms"
            } else {
                "AssertionError: expected 3 events, got 2 (race)"
            }
        }
        _ => "AssertionError: assert compute() == 42",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Vec<f64> {
        (1..=200).map(|i| f64::from(i) / 400.0).collect()
    }

    #[test]
    fn every_history_has_the_hard_cases() {
        let config = SimConfig::default();
        let tests = suite(&config, &rates());
        let short: Vec<&Vec<usize>> = tests
            .iter()
            .filter_map(|t| match &t.truth {
                Truth::ShortRegressions { at } => Some(at),
                _ => None,
            })
            .collect();
        assert_eq!(short.len(), config.short_regressions);
        for at in &short {
            assert!((2..=3).contains(&at.len()), "{at:?}");
            assert!(at.windows(2).all(|w| w[1] > w[0] + 2), "{at:?}");
        }
        let bursty: Vec<&SimTest> = tests.iter().filter(|t| t.burst.is_some()).collect();
        assert_eq!(bursty.len(), config.bursty_rare);
        for t in bursty {
            let Truth::Flaky { rate, .. } = t.truth else {
                panic!("{t:?}")
            };
            assert!((0.005..0.02).contains(&rate), "{rate}");
        }
        // Some breakages changed the test's code and some came from elsewhere.
        let broken: Vec<&SimTest> = tests.iter().filter(|t| t.truth.is_real_bug()).collect();
        let touched = broken.iter().filter(|t| !t.code_changes.is_empty()).count();
        assert!(
            touched > 0 && touched < broken.len(),
            "{touched} of {}",
            broken.len()
        );
    }

    #[test]
    fn a_commit_that_broke_a_test_s_code_touches_it_for_the_model() {
        let config = SimConfig::default();
        let tests = suite(&config, &rates());
        let t = tests
            .iter()
            .find(|t| {
                matches!(t.truth, Truth::ShortRegressions { .. }) && !t.code_changes.is_empty()
            })
            .expect("a short regression in the test's own code");
        let mut rng = Rng::new(1);
        for &main in &t.code_changes {
            let change = commit_change(&tests, main, &mut rng);
            assert!(
                change.touches(&t.module, &t.name, None),
                "{main}: {change:?}"
            );
        }
        // A stable test elsewhere is mostly not touched by a commit.
        let untouched = (0..50)
            .filter(|m| {
                !commit_change(&tests, *m, &mut rng).touches(&tests[0].module, &tests[0].name, None)
            })
            .count();
        assert!(untouched > 40, "{untouched} of 50");
    }
}
