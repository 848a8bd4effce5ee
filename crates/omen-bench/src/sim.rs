//! A CI-history simulator with known truth, for evaluating the flakiness model.
//!
//! Every test has a ground truth: stable, flaky at a rate drawn from FlakeFlagger's 10,000-rerun
//! table (possibly fixed part-way), a regression that starts at one commit and is fixed later, or
//! broken only on some pull-request branches. The simulated project runs its suite on every
//! default-branch commit and on pull requests; failed default-branch jobs are sometimes re-run on
//! the same commit; some jobs retry failed tests inside the run; one run is an outage; a few tests
//! are renamed. Runs come out as JUnit XML plus metadata, to be fed through `omen ingest`'s path.

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

/// Generate every run, in the order CI would produce them.
pub fn runs(config: &SimConfig, tests: &[SimTest]) -> Vec<SimRun> {
    let mut rng = Rng::new(config.seed ^ 0x5eed);
    let mut out = Vec::new();
    let t0 = 1_767_225_600; // 2026-01-01
    let mut pr_number = 0u64;
    for main in 0..config.runs {
        let at = t0 + main as i64 * config.interval;
        let commit = sha(&mut rng);
        let outage = config.outage_at == Some(main);
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
            || matches!(t.truth, Truth::Regression { start, end } if (start..end).contains(&main));
        let msg = message(t, outage, rng);
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
    match t.truth {
        Truth::Stable | Truth::PrBroken => false,
        Truth::Flaky { rate, fixed_at } => fixed_at.is_none_or(|f| main < f) && rng.f64() < rate,
        Truth::Regression { start, end } => (start..end).contains(&main),
    }
}

fn message(t: &SimTest, outage: bool, rng: &mut Rng) -> &'static str {
    if outage {
        return "OperationalError: could not connect to server: Connection refused";
    }
    match t.truth {
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
