//! What a whole run shares: a slower runner, a cold cache, a busy machine make every test of the
//! run slower together. Measured across tests and divided out, it stops hiding (or faking) one
//! test's change; the run's total keeps it, so a slower job is still seen there.

use super::stats::median_in_place;

/// Fewest tests a run's factor is measured from; with fewer, the factor is 1.
pub const MIN_TESTS: usize = 20;

/// Each run's factor: the median over tests of `duration / the test's median duration`, for
/// runs `0..runs` of `series` (one entry per run, NaN = no duration). 1.0 where fewer than
/// [`MIN_TESTS`] tests have a duration.
pub fn run_factors<'a>(series: impl IntoIterator<Item = &'a [f64]>, runs: usize) -> Vec<f64> {
    let series: Vec<&[f64]> = series.into_iter().collect();
    // Each half of the tests on its own thread: a suite of 10,000 tests is a million ratios.
    let ratios_of = |part: &[&[f64]]| {
        let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(part.len()); runs];
        let mut present = Vec::with_capacity(runs);
        for s in part {
            present.clear();
            present.extend(s.iter().copied().filter(|v| v.is_finite()));
            let Some(m) = median_in_place(&mut present).filter(|m| *m > 0.0) else {
                continue;
            };
            for (j, v) in s.iter().enumerate().take(runs) {
                if v.is_finite() {
                    ratios[j].push(v / m);
                }
            }
        }
        ratios
    };
    let factor = |r: &mut Vec<f64>| {
        if r.len() < MIN_TESTS {
            1.0
        } else {
            median_in_place(r).unwrap_or(1.0)
        }
    };
    if series.len() < 1000 {
        return ratios_of(&series).iter_mut().map(factor).collect();
    }
    let (first, second) = series.split_at(series.len() / 2);
    let (mut ratios, other) = crate::parallel::join(|| ratios_of(first), || ratios_of(second));
    for (r, o) in ratios.iter_mut().zip(other) {
        r.extend(o);
    }
    ratios.iter_mut().map(factor).collect()
}

/// One run's factor against baselines: the median over tests of `current / baseline median`,
/// from tests with at least five baseline durations whose median is at least `min_ms`; 1.0 when
/// fewer than [`MIN_TESTS`] qualify.
pub fn run_factor<'a>(pairs: impl IntoIterator<Item = (&'a [f64], f64)>, min_ms: f64) -> f64 {
    let mut base = Vec::new();
    let mut ratios: Vec<f64> = pairs
        .into_iter()
        .filter_map(|(b, cur)| {
            base.clear();
            base.extend_from_slice(b);
            let m = median_in_place(&mut base)?;
            (b.len() >= 5 && m >= min_ms && cur > 0.0).then(|| cur / m)
        })
        .collect();
    if ratios.len() < MIN_TESTS {
        return 1.0;
    }
    median_in_place(&mut ratios).unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_run_is_measured_across_tests() {
        // 30 tests of different sizes; run 2 ran 1.5× slower, run 4 had one test far slower.
        let series: Vec<Vec<f64>> = (0..30)
            .map(|i| {
                let base = 10.0 * (i + 1) as f64;
                (0..6)
                    .map(|j| match (i, j) {
                        (_, 2) => base * 1.5,
                        (0, 4) => base * 10.0,
                        (_, 5) if i % 2 == 0 => f64::NAN,
                        _ => base,
                    })
                    .collect()
            })
            .collect();
        let f = run_factors(series.iter().map(Vec::as_slice), 6);
        assert_eq!(f, vec![1.0, 1.0, 1.5, 1.0, 1.0, 1.0]);
        // Too few tests: nothing is measured.
        let f = run_factors(series.iter().take(5).map(Vec::as_slice), 6);
        assert_eq!(f, vec![1.0; 6]);
    }

    #[test]
    fn a_large_suite_is_measured_the_same_on_two_threads() {
        // 1,500 tests (two threads); run 3 ran 1.2× slower, and one half of the suite alone
        // would not give the factor of the whole.
        let series: Vec<Vec<f64>> = (0..1500)
            .map(|i| {
                let base = 5.0 + i as f64;
                (0..8)
                    .map(|j| match j {
                        3 => base * 1.2,
                        5 if i >= 750 => base * 2.0,
                        _ => base,
                    })
                    .collect()
            })
            .collect();
        let f = run_factors(series.iter().map(Vec::as_slice), 8);
        assert_eq!(f[3], 1.2);
        assert_eq!(f[5], 1.5);
        assert!(
            f.iter()
                .enumerate()
                .all(|(j, v)| j == 3 || j == 5 || *v == 1.0),
            "{f:?}"
        );
    }

    #[test]
    fn one_run_against_baselines() {
        let b: Vec<f64> = vec![100.0, 110.0, 90.0, 100.0, 105.0];
        let pairs: Vec<(&[f64], f64)> = (0..30).map(|_| (b.as_slice(), 150.0)).collect();
        assert!((run_factor(pairs, 10.0) - 1.5).abs() < 1e-9);
        let few: Vec<(&[f64], f64)> = (0..5).map(|_| (b.as_slice(), 150.0)).collect();
        assert_eq!(run_factor(few, 10.0), 1.0);
        // Baselines under the floor do not count.
        let pairs: Vec<(&[f64], f64)> = (0..30).map(|_| (b.as_slice(), 150.0)).collect();
        assert_eq!(run_factor(pairs, 200.0), 1.0);
    }
}
