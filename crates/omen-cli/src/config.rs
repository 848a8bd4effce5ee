//! `.omen/config.toml`: every threshold of the models and the store, in one optional file.
//!
//! Precedence: a command-line flag, then the file, then the default (whose reason is documented
//! beside it in `omen-core` / `omen-store`). Unknown keys are errors naming the file, so a typo
//! never silently leaves a default in place.
//!
//! Each key is declared once, in the table passed to `config_file!` below: its section, name,
//! type, meaning, where its value lives in [`Config`] and how it is set. The TOML reader, the list
//! of keys and [`defaults_toml`] (the list in `docs/reference.md`, checked by a test) come from it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use omen_core::flakiness::FlakinessConfig;
use omen_core::gate::Gate;
use omen_core::quarantine::QuarantinePolicy;
use omen_store::StoreConfig;
use serde::Deserialize;

/// Default location, relative to the working directory.
pub const DEFAULT_PATH: &str = ".omen/config.toml";

/// The resolved configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Store settings (raw-results window, outage rule).
    pub store: StoreConfig,
    /// Flakiness model thresholds.
    pub flakiness: FlakinessConfig,
    /// Quarantine thresholds.
    pub quarantine: QuarantinePolicy,
    /// Retries of GitHub API calls.
    pub github: omen_forge::RetryPolicy,
    /// Deploy-risk settings.
    pub risk: RiskConfig,
    /// Performance: change points, pull-request slowdowns, unusual runs, the suite's trend.
    pub perf: omen_jobs::perf::PerfSettings,
    /// `[[failures.rules]]`: the repository's failure-classification rules, asked before the
    /// shipped ones.
    pub failure_rules: Vec<omen_core::failure::UserRule>,
}

/// `[failures]`: not scalar keys, so outside the `config_file!` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailuresSection {
    #[serde(default)]
    rules: Vec<RuleEntry>,
}

/// One `[[failures.rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    category: String,
    reason: String,
    needles: Vec<String>,
}

impl FailuresSection {
    fn apply(&self, c: &mut Config) -> anyhow::Result<()> {
        for (i, r) in self.rules.iter().enumerate() {
            let category = r
                .category
                .parse()
                .map_err(|e| anyhow::anyhow!("failures.rules[{i}].category: {e}"))?;
            let rule = omen_core::failure::UserRule::new(category, &r.reason, &r.needles)
                .map_err(|e| anyhow::anyhow!("failures.rules[{i}]: {e}"))?;
            c.failure_rules.push(rule);
        }
        Ok(())
    }
}

/// `[risk]`: deploy-risk levels, gate and labelling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskConfig {
    /// Level thresholds on the calibrated probability (0.2 / 0.5 / 0.8).
    pub levels: omen_risk::assess::Levels,
    /// `omen risk gate` blocks at or above this probability (0.7, the seed design's default).
    pub gate: Gate,
    /// Changes younger than this many days (relative to the newest observed change) are not
    /// counted as safe yet: their bugs may not have been found (90).
    pub label_latency_days: f64,
    /// Seconds one run may spend on SZZ blame; the rest continues next run (10).
    pub szz_budget_s: f64,
    /// Retrain when the stored model is older than this many days (30).
    pub retrain_days: f64,
    /// The repository's model answers only with at least this hold-out AUC (0.6).
    pub min_auc: f64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            levels: Default::default(),
            gate: Gate::DEFAULT,
            label_latency_days: 90.0,
            szz_budget_s: 10.0,
            retrain_days: 30.0,
            min_auc: 0.6,
        }
    }
}

/// Declare the config file's keys once: section, key, type, meaning, the value in [`Config`]
/// (`get`) and how a value from the file is applied (`set`, which may reject it with `?`).
macro_rules! config_file {
    ($( [$section:ident] $( $key:ident : $ty:ty, $doc:literal, |$c:ident| $get:expr, |$cs:ident, $v:ident| $set:expr; )* )*) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            $( #[serde(default)] $section: sections::$section, )*
            #[serde(default)]
            failures: FailuresSection,
        }

        #[allow(non_camel_case_types)]
        mod sections {
            use serde::Deserialize;
            $(
                #[derive(Debug, Default, Deserialize)]
                #[serde(deny_unknown_fields)]
                pub struct $section { $( pub $key: Option<$ty>, )* }
            )*
        }

        /// Apply the values the file sets over `c`.
        fn overlay(file: &File, c: &mut Config) -> anyhow::Result<()> {
            $( $(
                if let Some($v) = file.$section.$key {
                    let $cs = &mut *c;
                    $set;
                }
            )* )*
            Ok(())
        }

        /// Every key, as `section.key`, in declaration order.
        pub const KEYS: &[&str] = &[ $( $( concat!(stringify!($section), ".", stringify!($key)), )* )* ];

        /// The whole file with every default and what each key means.
        pub fn defaults_toml() -> String {
            defaults_toml_of(&Config::default())
        }

        /// The whole file with the values of `config`.
        fn defaults_toml_of(config: &Config) -> String {
            let defaults = config;
            let mut out = String::new();
            $(
                out.push_str(concat!("[", stringify!($section), "]\n"));
                $( {
                    let $c = defaults;
                    let value: $ty = $get;
                    out.push_str(&format!("{} = {}  # {}\n", stringify!($key), Show(value), $doc));
                } )*
            )*
            out
        }
    };
}

/// A default as TOML writes it: floats keep their point.
struct Show<T>(T);

impl std::fmt::Display for Show<f64> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

macro_rules! show_plain {
    ($($t:ty),*) => { $( impl std::fmt::Display for Show<$t> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}", self.0) }
    } )* };
}
show_plain!(u32, u64, i64, bool);

config_file! {
    [store]
    keep_runs: u32, "runs whose raw per-test results are kept", |c| c.store.keep_runs, |c, v| c.store.keep_runs = v;
    [outage]
    failed_share: f64, "share of non-skipped tests failing that makes a run an outage", |c| c.store.outage.failed_share, |c, v| c.store.outage.failed_share = v;
    min_tests: u32, "smallest run the outage rule applies to", |c| c.store.outage.min_tests, |c, v| c.store.outage.min_tests = v;
    [flakiness]
    min_runs: u32, "default-branch results before a test is judged (without same-commit evidence)", |c| c.flakiness.min_runs, |c, v| c.flakiness.min_runs = v;
    prior_failures: f64, "Beta prior: pseudo-failures", |c| c.flakiness.prior_failures, |c, v| c.flakiness.prior_failures = v;
    prior_passes: f64, "Beta prior: pseudo-passes", |c| c.flakiness.prior_passes, |c, v| c.flakiness.prior_passes = v;
    short_episode: u32, "longest failure episode ending in a pass that looks like a flake", |c| c.flakiness.short_episode, |c, v| c.flakiness.short_episode = v;
    min_short_episodes: u32, "isolated failures needed without same-commit evidence", |c| c.flakiness.min_short_episodes, |c, v| c.flakiness.min_short_episodes = v;
    min_broken_streak: u32, "shortest failing streak called broken", |c| c.flakiness.min_broken_streak, |c, v| c.flakiness.min_broken_streak = v;
    broken_false_alarm: f64, "a streak is broken only if the own flake rate makes it this unlikely", |c| c.flakiness.broken_false_alarm, |c, v| c.flakiness.broken_false_alarm = v;
    max_broken_streak: u32, "the longest streak ever needed to call a test broken", |c| c.flakiness.max_broken_streak, |c, v| c.flakiness.max_broken_streak = v;
    stale_after_runs: u32, "clean default-branch runs before flaky evidence goes stale", |c| c.flakiness.stale_after_runs, |c, v| c.flakiness.stale_after_runs = v;
    report_floor: f64, "`omen flaky` also lists stable tests scoring above this", |c| c.flakiness.report_floor, |c, v| c.flakiness.report_floor = v;
    message_evidence: bool, "isolated failures count only if one repeats an earlier failure's message", |c| c.flakiness.message_evidence, |c, v| c.flakiness.message_evidence = v;
    change_evidence: bool, "a failure fixed by the next change to the test's code is a regression", |c| c.flakiness.change_evidence, |c, v| c.flakiness.change_evidence = v;
    [quarantine]
    expires_days: i64, "days an entry applies before it must be renewed", |c| c.quarantine.expires_days, |c, v| c.quarantine.expires_days = v;
    release_runs: u32, "clean default-branch runs before an automatic release", |c| c.quarantine.release_runs, |c, v| c.quarantine.release_runs = v;
    release_days: i64, "days without a failure before an automatic release", |c| c.quarantine.release_days, |c, v| c.quarantine.release_days = v;
    max_share: f64, "largest share of the suite that may be quarantined", |c| c.quarantine.max_share, |c, v| c.quarantine.max_share = v;
    [github]
    retry_attempts: u32, "attempts per API request, the first included", |c| c.github.attempts, |c, v| c.github.attempts = v;
    retry_backoff_ms: u64, "first backoff, doubled unless Retry-After says otherwise", |c| c.github.backoff.as_millis() as u64, |c, v| c.github.backoff = std::time::Duration::from_millis(v);
    retry_budget_s: u64, "the longest Omen waits for one request", |c| c.github.budget.as_secs(), |c, v| c.github.budget = std::time::Duration::from_secs(v);
    [risk]
    medium: f64, "MEDIUM from this calibrated probability", |c| c.risk.levels.medium, |c, v| c.risk.levels.medium = v;
    high: f64, "HIGH from this calibrated probability", |c| c.risk.levels.high, |c, v| c.risk.levels.high = v;
    critical: f64, "CRITICAL from this calibrated probability", |c| c.risk.levels.critical, |c, v| c.risk.levels.critical = v;
    gate_threshold: f64, "the risk gate blocks at or above this probability", |c| c.risk.gate.threshold(), |c, v| c.risk.gate = Gate::new(v).map_err(|e| anyhow::anyhow!("risk.gate_threshold: {e}"))?;
    label_latency_days: f64, "days before an unlabelled change counts as safe", |c| c.risk.label_latency_days, |c, v| c.risk.label_latency_days = v;
    szz_budget_s: f64, "seconds one run may spend on SZZ blame", |c| c.risk.szz_budget_s, |c, v| c.risk.szz_budget_s = v;
    retrain_days: f64, "retrain when the stored model is older than this", |c| c.risk.retrain_days, |c, v| c.risk.retrain_days = v;
    min_auc: f64, "hold-out AUC the repository's model needs to answer", |c| c.risk.min_auc, |c, v| c.risk.min_auc = v;
    [perf]
    window: u32, "newest default-branch runs a change point is searched in", |c| c.perf.window, |c, v| c.perf.window = v;
    min_relative: f64, "smallest change of the median a change point reports (0.05 = 5%)", |c| c.perf.test_detect.min_relative, |c, v| { c.perf.test_detect.min_relative = v; c.perf.suite_detect.min_relative = v };
    max_p: f64, "largest p-value of the rank and jump tests between a change point's levels", |c| c.perf.test_detect.max_p, |c, v| { c.perf.test_detect.max_p = v; c.perf.suite_detect.max_p = v };
    test_min_ms: f64, "smallest change of a test's median duration reported, ms", |c| c.perf.test_detect.min_absolute, |c, v| c.perf.test_detect.min_absolute = v;
    suite_min_ms: f64, "smallest change of the run's total test time reported, ms", |c| c.perf.suite_detect.min_absolute, |c, v| c.perf.suite_detect.min_absolute = v;
    baseline_runs: u32, "default-branch runs a pull request's durations are compared with", |c| c.perf.baseline_runs, |c, v| c.perf.baseline_runs = v;
    pr_tolerance: f64, "a pull request's test is reported this much slower (0.2 = 20%)", |c| c.perf.compare.tolerance, |c, v| c.perf.compare.tolerance = v;
    pr_min_ms: f64, "and at least this many ms slower", |c| c.perf.compare.min_absolute_ms, |c, v| c.perf.compare.min_absolute_ms = v;
    pr_max_p: f64, "largest p-value of a reported slowdown, after the correction over the tests judged", |c| c.perf.compare.max_p, |c, v| c.perf.compare.max_p = v;
    together_share: f64, "more than this share of the judged tests slower is one cause", |c| c.perf.together_share, |c, v| c.perf.together_share = v;
    anomaly_runs: u32, "default-branch runs an unusual run is judged against", |c| c.perf.anomaly_runs, |c, v| c.perf.anomaly_runs = v;
    suite_budget_minutes: f64, "the suite time the trend's forecast counts down to", |c| c.perf.suite_budget_s / 60.0, |c, v| c.perf.suite_budget_s = v * 60.0;
}

/// Load the configuration from `explicit`, else `OMEN_CONFIG`, else [`DEFAULT_PATH`] if it exists.
/// An explicitly named file that does not exist is an error; a missing default file is not.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
    let (path, required): (PathBuf, bool) = match explicit {
        Some(p) => (p.to_owned(), true),
        None => match std::env::var_os("OMEN_CONFIG") {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Config::default());
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read config file `{}`", path.display()));
        }
    };
    parse(&text).with_context(|| format!("invalid config file `{}`", path.display()))
}

/// Parse a config file's text over the defaults.
pub fn parse(text: &str) -> anyhow::Result<Config> {
    let file: File = toml::from_str(text)?;
    let mut c = Config::default();
    overlay(&file, &mut c)?;
    file.failures.apply(&mut c)?;
    validate(&c)?;
    Ok(c)
}

fn validate(c: &Config) -> anyhow::Result<()> {
    let share = |name: &str, v: f64| {
        anyhow::ensure!(
            (0.0..=1.0).contains(&v),
            "{name} must be between 0 and 1, got {v}"
        );
        Ok(())
    };
    share("outage.failed_share", c.store.outage.failed_share)?;
    share("quarantine.max_share", c.quarantine.max_share)?;
    share("flakiness.report_floor", c.flakiness.report_floor)?;
    anyhow::ensure!(
        c.flakiness.broken_false_alarm > 0.0 && c.flakiness.broken_false_alarm < 1.0,
        "flakiness.broken_false_alarm must be between 0 and 1 (exclusive)"
    );
    anyhow::ensure!(
        c.flakiness.prior_failures > 0.0 && c.flakiness.prior_passes > 0.0,
        "flakiness.prior_failures and prior_passes must be positive"
    );
    anyhow::ensure!(c.store.keep_runs >= 1, "store.keep_runs must be at least 1");
    let l = c.risk.levels;
    anyhow::ensure!(
        0.0 < l.medium && l.medium <= l.high && l.high <= l.critical && l.critical <= 1.0,
        "risk.medium <= risk.high <= risk.critical must hold, all between 0 and 1"
    );
    anyhow::ensure!(
        c.github.attempts >= 1,
        "github.retry_attempts must be at least 1"
    );
    let p = &c.perf;
    share("perf.min_relative", p.test_detect.min_relative)?;
    share("perf.pr_tolerance", p.compare.tolerance)?;
    share("perf.together_share", p.together_share)?;
    anyhow::ensure!(
        p.test_detect.max_p > 0.0 && p.test_detect.max_p < 1.0,
        "perf.max_p must be between 0 and 1 (exclusive)"
    );
    anyhow::ensure!(
        p.compare.max_p > 0.0 && p.compare.max_p < 1.0,
        "perf.pr_max_p must be between 0 and 1 (exclusive)"
    );
    anyhow::ensure!(
        p.test_detect.min_absolute >= 0.0
            && p.suite_detect.min_absolute >= 0.0
            && p.compare.min_absolute_ms >= 0.0,
        "perf.test_min_ms, perf.suite_min_ms and perf.pr_min_ms must not be negative"
    );
    anyhow::ensure!(
        p.window as usize >= 2 * p.test_detect.min_segment,
        "perf.window must be at least {} runs (two segments)",
        2 * p.test_detect.min_segment
    );
    anyhow::ensure!(
        p.baseline_runs >= 1 && p.anomaly_runs >= 1,
        "perf.baseline_runs and perf.anomaly_runs must be at least 1"
    );
    anyhow::ensure!(
        p.suite_budget_s > 0.0,
        "perf.suite_budget_minutes must be positive"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.flakiness, FlakinessConfig::default());
        assert_eq!(c.quarantine, QuarantinePolicy::default());
        assert_eq!(c.store.keep_runs, StoreConfig::default().keep_runs);
    }

    #[test]
    fn values_override_defaults() {
        let c = parse("[flakiness]\nstale_after_runs = 50\n[quarantine]\nmax_share = 0.1\n[store]\nkeep_runs = 10\n").unwrap();
        assert_eq!(c.flakiness.stale_after_runs, 50);
        assert_eq!(c.quarantine.max_share, 0.1);
        assert_eq!(c.store.keep_runs, 10);
        assert_eq!(c.flakiness.min_runs, FlakinessConfig::default().min_runs);
    }

    #[test]
    fn every_key_is_read_and_the_reference_lists_every_default() {
        let defaults = defaults_toml();
        // The defaults written out read back as the defaults.
        let c = parse(&defaults).unwrap();
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
        let lines: Vec<&str> = defaults.lines().filter(|l| l.contains(" = ")).collect();
        assert_eq!(lines.len(), KEYS.len());
        // Each key, changed alone, changes the config: its `set` is wired to what `get` reads.
        for (key, line) in KEYS.iter().zip(&lines) {
            let (section, _) = key.split_once('.').unwrap();
            let (name, rest) = line.split_once(" = ").unwrap();
            let value = rest.split_once("  # ").unwrap().0;
            let changed = match (value.parse::<i64>(), value.parse::<bool>()) {
                (Ok(n), _) => (n + 1).to_string(),
                (_, Ok(b)) => (!b).to_string(),
                _ => format!("{:?}", value.parse::<f64>().unwrap() * 0.99),
            };
            let c = parse(&format!("[{section}]\n{name} = {changed}\n"))
                .unwrap_or_else(|e| panic!("{key} = {changed}: {e:#}"));
            assert_ne!(
                format!("{c:?}"),
                format!("{:?}", Config::default()),
                "{key}"
            );
            assert!(
                defaults_toml_of(&c).contains(&format!("{name} = {changed}  #")),
                "{key}"
            );
        }
        let reference = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference.md"),
        )
        .unwrap();
        let block = format!("```toml\n{defaults}```");
        if std::env::var_os("OMEN_UPDATE_SNAPSHOTS").is_some() && !reference.contains(&block) {
            panic!("docs/reference.md: replace the full config list with\n{block}");
        }
        assert!(
            reference.contains(&block),
            "docs/reference.md must list every key with its default, exactly:\n{block}"
        );
    }

    #[test]
    fn a_value_in_the_file_reaches_the_config() {
        let c = parse("[risk]\ngate_threshold = 0.4\nmin_auc = 0.7\n[github]\nretry_backoff_ms = 10\n[quarantine]\nexpires_days = 3\n").unwrap();
        assert_eq!(c.risk.gate.threshold(), 0.4);
        assert_eq!(c.risk.min_auc, 0.7);
        assert_eq!(c.github.backoff, std::time::Duration::from_millis(10));
        assert_eq!(c.quarantine.expires_days, 3);
        let err = parse("[risk]\ngate_threshold = 1.5\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("risk.gate_threshold"),
            "{err:#}"
        );
    }

    #[test]
    fn failure_rules_are_read_in_order_and_a_bad_one_names_itself() {
        let c = parse(
            "[[failures.rules]]\ncategory = \"infrastructure\"\nreason = \"the test database did not start\"\nneedles = [\"PG_ISREADY\", \"could not connect to server\"]\n\n[[failures.rules]]\ncategory = \"Test\"\nreason = \"golden file\"\nneedles = [\"golden mismatch\"]\n",
        )
        .unwrap();
        assert_eq!(c.failure_rules.len(), 2);
        assert_eq!(
            c.failure_rules[0].needles,
            ["pg_isready", "could not connect to server"]
        );
        assert_eq!(
            c.failure_rules[1].category,
            omen_core::failure::Category::Test
        );
        let err =
            parse("[[failures.rules]]\ncategory = \"infra\"\nreason = \"x\"\nneedles = [\"y\"]\n")
                .unwrap_err();
        assert!(
            format!("{err:#}").contains("failures.rules[0].category"),
            "{err:#}"
        );
        let err = parse("[[failures.rules]]\ncategory = \"test\"\nreason = \"x\"\nneedles = []\n")
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("needs at least one needle"),
            "{err:#}"
        );
        let err =
            parse("[[failures.rules]]\ncategory = \"test\"\nreason = \"x\"\nneedle = [\"y\"]\n")
                .unwrap_err();
        assert!(format!("{err:#}").contains("needle"), "{err:#}");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let err = parse("[flakiness]\nstale_after_run = 50\n").unwrap_err();
        assert!(format!("{err:#}").contains("stale_after_run"), "{err:#}");
        let err = parse("[quarantine]\nmax_share = 5\n").unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
    }
}
