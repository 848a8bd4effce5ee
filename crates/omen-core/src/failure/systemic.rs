//! Systemic failures: tests that fail together across default-branch runs more often than chance
//! allows — one cause (a shared fixture, a service, a machine) behind many failing tests.
//!
//! Each test's failing runs are a set. Two tests are linked when they failed together in at
//! least [`SystemicConfig::min_support`] runs, their Jaccard index (runs where both failed over
//! runs where either did) is at least [`SystemicConfig::min_jaccard`], and a one-sided
//! hypergeometric test says so many shared runs are unlikely for independent tests
//! (p ≤ [`SystemicConfig::max_p`] over all pairs, Bonferroni-corrected). Clusters grow greedily from the test that failed most: a
//! test joins when it is linked to at least half of the cluster's members, so one chance link
//! does not chain two causes together.

/// Settings of [`clusters`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemicConfig {
    /// Runs two tests must have failed together in.
    pub min_support: usize,
    /// The least Jaccard index of a link.
    pub min_jaccard: f64,
    /// The family-wise chance of a link between independent tests: a pair's hypergeometric
    /// p-value must be at most this divided by the pairs tested.
    pub max_p: f64,
    /// The fewest tests of a reported cluster.
    pub min_size: usize,
    /// Tests considered, those that failed most (pairs grow with its square).
    pub max_tests: usize,
}

impl Default for SystemicConfig {
    fn default() -> SystemicConfig {
        SystemicConfig {
            min_support: 3,
            min_jaccard: 0.5,
            max_p: 0.01,
            min_size: 2,
            max_tests: 2_000,
        }
    }
}

/// Tests that fail together.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemicCluster {
    /// The tests, those that failed most first (ties by id).
    pub tests: Vec<u64>,
    /// Runs in which at least half of them failed.
    pub together: usize,
    /// Runs in which any of them failed.
    pub any: usize,
}

/// The clusters of tests in `failing` (per run, the tests that failed in it), largest first.
pub fn clusters(failing: &[Vec<u64>], config: &SystemicConfig) -> Vec<SystemicCluster> {
    let n = failing.len();
    let words = n.div_ceil(64);
    let mut sets: std::collections::HashMap<u64, Vec<u64>> = std::collections::HashMap::new();
    for (run, tests) in failing.iter().enumerate() {
        for &t in tests {
            let set = sets.entry(t).or_insert_with(|| vec![0; words]);
            set[run / 64] |= 1 << (run % 64);
        }
    }
    let count = |s: &[u64]| s.iter().map(|w| w.count_ones() as usize).sum::<usize>();
    let mut tests: Vec<(u64, Vec<u64>, usize)> = sets
        .into_iter()
        .map(|(t, s)| {
            let c = count(&s);
            (t, s, c)
        })
        .filter(|(_, _, c)| *c >= config.min_support)
        .collect();
    tests.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    tests.truncate(config.max_tests);
    let ln_fact = ln_factorials(n);
    let k = tests.len();
    // Pairs that fail together often enough, with their p-values.
    let mut candidates = Vec::new();
    for i in 0..k {
        for j in i + 1..k {
            let (a, b) = (&tests[i].1, &tests[j].1);
            let both: usize = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x & y).count_ones() as usize)
                .sum();
            if both < config.min_support {
                continue;
            }
            let either = tests[i].2 + tests[j].2 - both;
            if (both as f64) < config.min_jaccard * either as f64 {
                continue;
            }
            let p = hypergeometric_tail(both, n, tests[i].2, tests[j].2, &ln_fact);
            candidates.push((i, j, p));
        }
    }
    // Bonferroni over every pair of tests that failed often enough: thousands of pairs make
    // chance links otherwise (a family-wise error of `max_p`).
    let max_p = config.max_p / (k * k.saturating_sub(1) / 2).max(1) as f64;
    let mut links = vec![Vec::new(); k];
    for (i, j, p) in candidates {
        if p <= max_p {
            links[i].push(j);
            links[j].push(i);
        }
    }
    let mut assigned = vec![false; k];
    let mut out = Vec::new();
    for seed in 0..k {
        if assigned[seed] || links[seed].is_empty() {
            continue;
        }
        let mut members = vec![seed];
        assigned[seed] = true;
        // Candidates in the order they failed most, each asked once.
        let mut candidates: Vec<usize> = links[seed]
            .iter()
            .copied()
            .filter(|&c| !assigned[c])
            .collect();
        candidates.sort_unstable();
        for c in candidates {
            let linked = members.iter().filter(|m| links[c].contains(m)).count();
            if 2 * linked >= members.len() {
                members.push(c);
                assigned[c] = true;
            }
        }
        if members.len() < config.min_size {
            continue;
        }
        let failed_in = |run: usize| {
            members
                .iter()
                .filter(|&&m| tests[m].1[run / 64] & (1 << (run % 64)) != 0)
                .count()
        };
        let per_run: Vec<usize> = (0..n).map(failed_in).collect();
        out.push(SystemicCluster {
            tests: members.iter().map(|&m| tests[m].0).collect(),
            together: per_run.iter().filter(|&&f| 2 * f >= members.len()).count(),
            any: per_run.iter().filter(|&&f| f > 0).count(),
        });
    }
    out.sort_by(|a, b| {
        b.tests
            .len()
            .cmp(&a.tests.len())
            .then(b.together.cmp(&a.together))
    });
    out
}

/// `ln(i!)` for `i` in `0..=n`.
fn ln_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    let mut acc = 0.0;
    out.push(0.0);
    for i in 1..=n {
        acc += (i as f64).ln();
        out.push(acc);
    }
    out
}

/// P(X ≥ `k`) for X hypergeometric: `draws` of `total` runs, `marked` of them marked.
fn hypergeometric_tail(
    k: usize,
    total: usize,
    marked: usize,
    draws: usize,
    ln_fact: &[f64],
) -> f64 {
    let ln_choose = |n: usize, r: usize| ln_fact[n] - ln_fact[r] - ln_fact[n - r];
    let denominator = ln_choose(total, draws);
    let hi = marked.min(draws);
    let lo = (marked + draws).saturating_sub(total);
    (k.max(lo)..=hi)
        .map(|x| (ln_choose(marked, x) + ln_choose(total - marked, draws - x) - denominator).exp())
        .sum::<f64>()
        .min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    #[test]
    fn the_hypergeometric_tail_matches_hand_figures() {
        let f = ln_factorials(10);
        // 10 runs, 2 marked, 2 drawn: P(both marked) = 1/45.
        assert!((hypergeometric_tail(2, 10, 2, 2, &f) - 1.0 / 45.0).abs() < 1e-12);
        assert!((hypergeometric_tail(0, 10, 2, 2, &f) - 1.0).abs() < 1e-12);
    }

    /// 100 runs; a cluster of 12 tests, each failing in 9 of the 10 outage runs, a pair that
    /// fails together in 8 runs, and 50 tests that fail alone at random (5% of runs each).
    fn history(seed: u64) -> Vec<Vec<u64>> {
        let mut rng = SplitMix(seed);
        let mut runs = vec![Vec::new(); 100];
        for (i, run) in runs.iter_mut().enumerate() {
            if i % 10 == 3 {
                // Test t misses outage t % 10.
                let outage = (i / 10) as u64;
                run.extend((0..12u64).filter(|t| t % 10 != outage));
            }
            if i % 12 == 5 {
                run.extend([100, 101]);
            }
            for t in 200..250 {
                if rng.unit() < 0.05 {
                    run.push(t);
                }
            }
        }
        runs
    }

    #[test]
    fn tests_that_fail_together_are_one_cluster_and_independent_ones_none() {
        for seed in 1..=20 {
            let found = clusters(&history(seed), &SystemicConfig::default());
            let mut big = found[0].tests.clone();
            big.sort_unstable();
            assert_eq!(big, (0..12).collect::<Vec<_>>(), "seed {seed}: {found:?}");
            // Most of them failed in every outage run, and only a chance failure adds a run.
            assert_eq!(found[0].together, 10, "seed {seed}: {found:?}");
            assert!((10..=14).contains(&found[0].any), "seed {seed}: {found:?}");
            for c in &found {
                assert!(
                    c.tests.iter().all(|&t| t < 200),
                    "seed {seed}: chance cluster {c:?}"
                );
            }
            assert!(
                found.iter().any(|c| c.tests.len() == 2
                    && c.tests.contains(&100)
                    && c.tests.contains(&101)),
                "seed {seed}: {found:?}"
            );
        }
    }

    #[test]
    fn a_test_that_always_fails_is_not_linked_to_others_by_chance() {
        // Test 1 fails in every run; test 2 in a third of them: sharing runs is no evidence.
        let runs: Vec<Vec<u64>> = (0..60)
            .map(|i| if i % 3 == 0 { vec![1, 2] } else { vec![1] })
            .collect();
        assert!(clusters(&runs, &SystemicConfig::default()).is_empty());
        assert!(clusters(&[], &SystemicConfig::default()).is_empty());
    }
}
