//! `.omen/config.toml`: every threshold of the models and the store, in one optional file.
//!
//! Precedence: a command-line flag, then the file, then the default (whose reason is documented
//! beside it in `omen-core` / `omen-store`). Unknown keys are errors naming the file, so a typo
//! never silently leaves a default in place.
//!
//! ```toml
//! [store]
//! keep_runs = 300
//!
//! [outage]
//! failed_share = 0.5
//! min_tests = 20
//!
//! [flakiness]
//! min_runs = 5
//! prior_failures = 0.5
//! prior_passes = 40.0
//! short_episode = 2
//! min_short_episodes = 2
//! min_broken_streak = 3
//! broken_false_alarm = 0.001
//! max_broken_streak = 10
//! stale_after_runs = 100
//! report_floor = 0.05
//!
//! [github]
//! retry_attempts = 4       # per request, the first included
//! retry_backoff_ms = 2000  # doubled each time unless Retry-After says otherwise
//! retry_budget_s = 60      # the longest Omen waits for one request
//!
//! [quarantine]
//! expires_days = 30
//! release_runs = 100
//! release_days = 14
//! max_share = 0.05
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use omen_core::flakiness::FlakinessConfig;
use omen_core::quarantine::QuarantinePolicy;
use omen_store::StoreConfig;
use serde::Deserialize;

/// Default location, relative to the working directory.
pub const DEFAULT_PATH: &str = ".omen/config.toml";

/// The resolved configuration.
#[derive(Debug, Clone, Copy, Default)]
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
}

/// `[risk]`: deploy-risk levels, gate and labelling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskConfig {
    /// Level thresholds on the calibrated probability (0.2 / 0.5 / 0.8).
    pub levels: omen_risk::assess::Levels,
    /// `omen risk gate` blocks at or above this probability (0.7, the seed design's default).
    pub gate_threshold: f64,
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
            gate_threshold: 0.7,
            label_latency_days: 90.0,
            szz_budget_s: 10.0,
            retrain_days: 30.0,
            min_auc: 0.6,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    outage: OutageSection,
    #[serde(default)]
    flakiness: FlakinessSection,
    #[serde(default)]
    quarantine: QuarantineSection,
    #[serde(default)]
    github: GitHubSection,
    #[serde(default)]
    risk: RiskSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskSection {
    medium: Option<f64>,
    high: Option<f64>,
    critical: Option<f64>,
    gate_threshold: Option<f64>,
    label_latency_days: Option<f64>,
    szz_budget_s: Option<f64>,
    retrain_days: Option<f64>,
    min_auc: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitHubSection {
    retry_attempts: Option<u32>,
    retry_backoff_ms: Option<u64>,
    retry_budget_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    keep_runs: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageSection {
    failed_share: Option<f64>,
    min_tests: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlakinessSection {
    min_runs: Option<u32>,
    prior_failures: Option<f64>,
    prior_passes: Option<f64>,
    short_episode: Option<u32>,
    min_short_episodes: Option<u32>,
    min_broken_streak: Option<u32>,
    broken_false_alarm: Option<f64>,
    max_broken_streak: Option<u32>,
    stale_after_runs: Option<u32>,
    report_floor: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineSection {
    expires_days: Option<i64>,
    release_runs: Option<u32>,
    release_days: Option<i64>,
    max_share: Option<f64>,
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
    let set = |target: &mut u32, v: Option<u32>| {
        if let Some(v) = v {
            *target = v;
        }
    };
    let set_f = |target: &mut f64, v: Option<f64>| {
        if let Some(v) = v {
            *target = v;
        }
    };
    set(&mut c.store.keep_runs, file.store.keep_runs);
    set_f(&mut c.store.outage.failed_share, file.outage.failed_share);
    set(&mut c.store.outage.min_tests, file.outage.min_tests);
    let f = &file.flakiness;
    set(&mut c.flakiness.min_runs, f.min_runs);
    set_f(&mut c.flakiness.prior_failures, f.prior_failures);
    set_f(&mut c.flakiness.prior_passes, f.prior_passes);
    set(&mut c.flakiness.short_episode, f.short_episode);
    set(&mut c.flakiness.min_short_episodes, f.min_short_episodes);
    set(&mut c.flakiness.min_broken_streak, f.min_broken_streak);
    set_f(&mut c.flakiness.broken_false_alarm, f.broken_false_alarm);
    set(&mut c.flakiness.max_broken_streak, f.max_broken_streak);
    set(&mut c.flakiness.stale_after_runs, f.stale_after_runs);
    set_f(&mut c.flakiness.report_floor, f.report_floor);
    let q = &file.quarantine;
    if let Some(v) = q.expires_days {
        c.quarantine.expires_days = v;
    }
    set(&mut c.quarantine.release_runs, q.release_runs);
    if let Some(v) = q.release_days {
        c.quarantine.release_days = v;
    }
    set_f(&mut c.quarantine.max_share, q.max_share);
    let g = &file.github;
    if let Some(v) = g.retry_attempts {
        c.github.attempts = v;
    }
    if let Some(v) = g.retry_backoff_ms {
        c.github.backoff = std::time::Duration::from_millis(v);
    }
    if let Some(v) = g.retry_budget_s {
        c.github.budget = std::time::Duration::from_secs(v);
    }
    let r = &file.risk;
    set_f(&mut c.risk.levels.medium, r.medium);
    set_f(&mut c.risk.levels.high, r.high);
    set_f(&mut c.risk.levels.critical, r.critical);
    set_f(&mut c.risk.gate_threshold, r.gate_threshold);
    set_f(&mut c.risk.label_latency_days, r.label_latency_days);
    set_f(&mut c.risk.szz_budget_s, r.szz_budget_s);
    set_f(&mut c.risk.retrain_days, r.retrain_days);
    set_f(&mut c.risk.min_auc, r.min_auc);
    let l = c.risk.levels;
    anyhow::ensure!(
        0.0 < l.medium && l.medium <= l.high && l.high <= l.critical && l.critical <= 1.0,
        "risk.medium <= risk.high <= risk.critical must hold, all between 0 and 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&c.risk.gate_threshold),
        "risk.gate_threshold must be between 0 and 1"
    );
    anyhow::ensure!(
        c.github.attempts >= 1,
        "github.retry_attempts must be at least 1"
    );
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
    fn typos_and_bad_values_are_errors() {
        let err = parse("[flakiness]\nstale_after_run = 50\n").unwrap_err();
        assert!(format!("{err:#}").contains("stale_after_run"), "{err:#}");
        let err = parse("[quarantine]\nmax_share = 5\n").unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
    }
}
