//! A pull request's durations against the default branch's recent ones: only slowdowns beyond
//! the tolerance, with their evidence.
//!
//! One duration from the pull request is judged by a prediction interval: on the log scale, the
//! default branch's median and robust spread give how far above the median a single new run of
//! an unchanged test lands with probability `max_p`. Several durations of the same code (re-runs
//! and retries of one commit) are judged by a one-sided Mann–Whitney test with the
//! Hodges–Lehmann shift. Either way the slowdown must also pass the relative tolerance and the
//! absolute floor, measured from the default branch's median.
//!
//! A whole run can be slow (a slower runner, a cold cache): [`super::common::run_factor`]
//! measures that across tests, and [`compare`] judges each test after dividing it out, so a slow machine does not make
//! every test "slower" and a test that got slower on a fast machine is still seen.

use super::stats::{hodges_lehmann, mad_sigma, mann_whitney, median, normal_sf};

/// Settings of [`compare`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareConfig {
    /// Smallest slowdown reported, as a fraction of the default branch's median (0.2 = 20%).
    pub tolerance: f64,
    /// Smallest slowdown reported, in milliseconds.
    pub min_absolute_ms: f64,
    /// Largest one-sided p-value reported, family-wise over the run: each test's p-value is
    /// multiplied by the number of tests judged (Bonferroni), so a run of 400 tests is not 400
    /// chances of a false alarm.
    pub max_p: f64,
    /// Fewest default-branch durations a test needs to be judged.
    pub min_baseline: usize,
    /// Smallest spread assumed on the log scale (durations are whole milliseconds, and a test
    /// that always took 10 ms has not become 10× less noisy).
    pub min_log_spread: f64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            tolerance: 0.2,
            min_absolute_ms: 50.0,
            max_p: 0.001,
            min_baseline: 10,
            min_log_spread: 0.03,
        }
    }
}

/// How a slowdown was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One duration against a prediction interval.
    PredictionInterval,
    /// Several durations, rank test and Hodges–Lehmann shift.
    RankTest,
}

/// A test that is slower on the pull request than on the default branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Slowdown {
    /// The default branch's median, ms.
    pub baseline_ms: f64,
    /// The pull request's duration (its median, or the shifted baseline for the rank test), ms,
    /// after dividing out the run's overall factor.
    pub current_ms: f64,
    /// `current / baseline - 1`.
    pub relative: f64,
    /// `current - baseline`, ms.
    pub delta_ms: f64,
    /// One-sided p-value, Bonferroni-adjusted for the tests judged with it (at most 1).
    pub p_value: f64,
    /// How it was judged.
    pub method: Method,
}

/// Judge `current` (this pull request's durations of one test, ms) against `baseline` (the
/// default branch's recent durations, ms) after dividing `current` by `factor`
/// ([`super::common::run_factor`]); `tests` is how many tests the run judges (for the
/// family-wise p-value). `None` when it is not slower beyond the tolerance, or cannot be judged.
pub fn compare(
    baseline: &[f64],
    current: &[f64],
    factor: f64,
    tests: usize,
    config: &CompareConfig,
) -> Option<Slowdown> {
    if baseline.len() < config.min_baseline || current.is_empty() {
        return None;
    }
    let factor = if factor.is_finite() && factor > 0.0 {
        factor
    } else {
        1.0
    };
    let logs = |v: &[f64]| -> Option<Vec<f64>> {
        v.iter()
            .map(|&ms| (ms.is_finite() && ms >= 0.0).then(|| ms.max(1.0).ln()))
            .collect()
    };
    let base_log = logs(baseline)?;
    let cur: Vec<f64> = current.iter().map(|ms| ms / factor).collect();
    let cur_log = logs(&cur)?;
    let baseline_ms = median(baseline)?;
    let (current_ms, p_value, method) = if cur.len() == 1 {
        let m = median(&base_log)?;
        let s = mad_sigma(&base_log)?.max(config.min_log_spread);
        let n = base_log.len() as f64;
        let z = (cur_log[0] - m) / (s * (1.0 + 1.0 / n).sqrt());
        (cur[0], normal_sf(z), Method::PredictionInterval)
    } else {
        let (z, _) = mann_whitney(&base_log, &cur_log);
        let shift = hodges_lehmann(&base_log, &cur_log)?;
        (baseline_ms * shift.exp(), normal_sf(z), Method::RankTest)
    };
    let p_value = (p_value * tests.max(1) as f64).min(1.0);
    let delta_ms = current_ms - baseline_ms;
    let relative = if baseline_ms > 0.0 {
        delta_ms / baseline_ms
    } else {
        f64::INFINITY
    };
    (p_value <= config.max_p && relative >= config.tolerance && delta_ms >= config.min_absolute_ms)
        .then_some(Slowdown {
            baseline_ms,
            current_ms,
            relative,
            delta_ms,
            p_value,
            method,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(level: f64) -> Vec<f64> {
        // ±4% around the level, deterministic.
        (0..30)
            .map(|i| level * (1.0 + 0.04 * (((i * 7) % 11) as f64 / 5.0 - 1.0)))
            .collect()
    }

    #[test]
    fn a_much_slower_single_run_is_reported() {
        let b = baseline(300.0);
        let s = compare(&b, &[450.0], 1.0, 1, &CompareConfig::default());
        let s = s.unwrap_or_else(|| panic!("not reported"));
        assert_eq!(s.method, Method::PredictionInterval);
        assert!((s.relative - 0.5).abs() < 0.03, "{s:?}");
        assert!(s.p_value < 1e-6, "{s:?}");
    }

    #[test]
    fn within_tolerance_or_under_the_floor_is_not() {
        let b = baseline(300.0);
        assert_eq!(
            compare(&b, &[330.0], 1.0, 1, &CompareConfig::default()),
            None
        );
        assert_eq!(
            compare(&b, &[300.0], 1.0, 1, &CompareConfig::default()),
            None
        );
        // +60% but only +12 ms.
        let b = baseline(20.0);
        assert_eq!(
            compare(&b, &[32.0], 1.0, 1, &CompareConfig::default()),
            None
        );
        // Too little history.
        assert_eq!(
            compare(&b[..5], &[3000.0], 1.0, 1, &CompareConfig::default()),
            None
        );
    }

    #[test]
    fn a_slow_machine_is_divided_out() {
        let b = baseline(300.0);
        assert!(compare(&b, &[450.0], 1.0, 1, &CompareConfig::default()).is_some());
        assert_eq!(
            compare(&b, &[450.0], 1.5, 1, &CompareConfig::default()),
            None
        );
    }

    #[test]
    fn many_tests_judged_need_stronger_evidence() {
        let b = baseline(300.0);
        // +20% is about five robust deviations above: enough for one test, not for one of a
        // million.
        assert!(compare(&b, &[361.0], 1.0, 1, &CompareConfig::default()).is_some());
        assert_eq!(
            compare(&b, &[361.0], 1.0, 1_000_000, &CompareConfig::default()),
            None
        );
    }

    #[test]
    fn several_runs_use_the_rank_test() {
        let b = baseline(300.0);
        let s = compare(
            &b,
            &[420.0, 430.0, 410.0, 425.0],
            1.0,
            1,
            &CompareConfig::default(),
        );
        let s = s.unwrap_or_else(|| panic!("not reported"));
        assert_eq!(s.method, Method::RankTest);
        assert!(s.relative > 0.3 && s.relative < 0.5, "{s:?}");
        // Three runs at the baseline's level: nothing.
        assert_eq!(
            compare(
                &b,
                &[300.0, 290.0, 310.0],
                1.0,
                1,
                &CompareConfig::default()
            ),
            None
        );
    }
}
