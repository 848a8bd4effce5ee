//! Unusual runs: a run whose totals (time, tests, failures, skips, flaky results) are unlike
//! the default branch's recent runs. Robust z-scores (median and MAD per metric) say which
//! metric is off, with the expected value and range; an Isolation Forest (Liu, Ting and Zhou
//! 2008: 100 trees of 256 samples) scores how isolated the run is among them all.
//!
//! A run is unusual when one metric is far out (`min_z`), or when the forest isolates it
//! (`min_score`) and some metric is at least moderately out (`joint_z`): the forest sees
//! combinations no single metric shows. The forest alone does not decide: its splits are drawn
//! inside the history's range, so a run outside that range on one metric lands in the edge
//! leaf with the history's extremes (measured in the tests: a 40% drop in tests scored 0.52, the
//! median ordinary run 0.55).

use super::stats::{mad_sigma, median};
use crate::rng::SplitMix as Rng;

/// Settings of [`assess`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyConfig {
    /// Trees in the forest.
    pub trees: usize,
    /// Samples per tree.
    pub samples: usize,
    /// Fewest earlier runs needed to judge a run.
    pub min_history: usize,
    /// Smallest forest score (0..1; 0.5 is ordinary) of a run unusual as a whole.
    pub min_score: f64,
    /// A metric this far out (robust z) makes the run unusual by itself.
    pub min_z: f64,
    /// With the forest's score at `min_score`, a metric this far out explains it.
    pub joint_z: f64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            trees: 100,
            samples: 256,
            min_history: 30,
            min_score: 0.68,
            min_z: 8.0,
            joint_z: 5.0,
        }
    }
}

/// How unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// z up to 8.
    Low,
    /// z from 8 to 15.
    Medium,
    /// z from 15 to 30.
    High,
    /// z above 30.
    Critical,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn of(z: f64) -> Severity {
        match z.abs() {
            z if z > 30.0 => Severity::Critical,
            z if z > 15.0 => Severity::High,
            z if z > 8.0 => Severity::Medium,
            _ => Severity::Low,
        }
    }
}

/// One metric that is far from its usual value.
#[derive(Debug, Clone, PartialEq)]
pub struct Deviation {
    /// Index of the metric in the caller's metric list.
    pub metric: usize,
    /// This run's value.
    pub actual: f64,
    /// The usual value (median of the history).
    pub expected: f64,
    /// The usual range: `expected ± 3 robust deviations`.
    pub range: (f64, f64),
    /// Robust z-score.
    pub z: f64,
    /// `spike` (above the range) or `drop` (below).
    pub kind: &'static str,
}

/// An unusual run.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// Isolation Forest score, 0..1.
    pub score: f64,
    /// From the largest deviation.
    pub severity: Severity,
    /// Metrics far out, largest first.
    pub deviations: Vec<Deviation>,
}

/// Judge `current` (one value per metric) against `history` (earlier runs, same metrics).
/// `seed` makes the forest reproducible. `None` when the run is ordinary or the history short.
pub fn assess(
    history: &[Vec<f64>],
    current: &[f64],
    seed: u64,
    config: &AnomalyConfig,
) -> Option<Anomaly> {
    if history.len() < config.min_history || history.iter().any(|h| h.len() != current.len()) {
        return None;
    }
    let mut deviations: Vec<Deviation> = (0..current.len())
        .filter_map(|m| {
            let column: Vec<f64> = history.iter().map(|h| h[m]).collect();
            let expected = median(&column)?;
            // A metric that never moved (a suite of exactly 400 tests) still has a scale: 1% of
            // its level, and at least one unit.
            let spread = mad_sigma(&column)?.max(0.01 * expected.abs()).max(1.0);
            let z = (current[m] - expected) / spread;
            (z.abs() >= config.joint_z).then(|| Deviation {
                metric: m,
                actual: current[m],
                expected,
                range: (expected - 3.0 * spread, expected + 3.0 * spread),
                z,
                kind: if z > 0.0 { "spike" } else { "drop" },
            })
        })
        .collect();
    if deviations.is_empty() {
        return None;
    }
    deviations.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
    let score = Forest::fit(history, config.trees, config.samples, seed).score(current);
    if deviations[0].z.abs() < config.min_z && score < config.min_score {
        return None;
    }
    Some(Anomaly {
        score,
        severity: Severity::of(deviations[0].z),
        deviations,
    })
}

/// An Isolation Forest.
#[derive(Debug, Clone)]
pub struct Forest {
    trees: Vec<Node>,
    samples: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf {
        size: usize,
    },
    Split {
        metric: usize,
        at: f64,
        left: Box<Node>,
        right: Box<Node>,
    },
}

/// Average path length of an unsuccessful search in a binary search tree of `n` points.
fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        n => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_9) - 2.0 * (n - 1.0) / n
        }
    }
}

impl Forest {
    /// Grow `trees` trees, each on `samples` points drawn without replacement from `data`.
    pub fn fit(data: &[Vec<f64>], trees: usize, samples: usize, seed: u64) -> Forest {
        let mut rng = Rng(seed);
        let psi = samples.min(data.len()).max(1);
        let limit = (psi as f64).log2().ceil() as usize;
        let trees = (0..trees)
            .map(|_| {
                let mut idx: Vec<usize> = (0..data.len()).collect();
                for i in 0..psi {
                    let j = i + rng.below(idx.len() - i);
                    idx.swap(i, j);
                }
                idx.truncate(psi);
                grow(data, &mut idx, 0, limit, &mut rng)
            })
            .collect();
        Forest {
            trees,
            samples: psi,
        }
    }

    /// The anomaly score of `point`: `2^(-E[h] / c(ψ))`, near 1 for isolated points, 0.5 or
    /// below for ordinary ones.
    pub fn score(&self, point: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.5;
        }
        let mean =
            self.trees.iter().map(|t| path(t, point, 0)).sum::<f64>() / self.trees.len() as f64;
        let norm = c(self.samples);
        if norm == 0.0 {
            return 0.5;
        }
        2f64.powf(-mean / norm)
    }
}

fn grow(data: &[Vec<f64>], idx: &mut [usize], depth: usize, limit: usize, rng: &mut Rng) -> Node {
    if idx.len() <= 1 || depth >= limit {
        return Node::Leaf { size: idx.len() };
    }
    let dims = data[idx[0]].len();
    // Only metrics that vary among these points can split them.
    let varying: Vec<(usize, f64, f64)> = (0..dims)
        .filter_map(|m| {
            let (lo, hi) = idx
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
                    (lo.min(data[i][m]), hi.max(data[i][m]))
                });
            (hi > lo).then_some((m, lo, hi))
        })
        .collect();
    if varying.is_empty() {
        return Node::Leaf { size: idx.len() };
    }
    let (metric, lo, hi) = varying[rng.below(varying.len())];
    let at = lo + rng.unit() * (hi - lo);
    let mut split = 0;
    for i in 0..idx.len() {
        if data[idx[i]][metric] < at {
            idx.swap(i, split);
            split += 1;
        }
    }
    let (left, right) = idx.split_at_mut(split);
    Node::Split {
        metric,
        at,
        left: Box::new(grow(data, left, depth + 1, limit, rng)),
        right: Box::new(grow(data, right, depth + 1, limit, rng)),
    }
}

fn path(node: &Node, point: &[f64], depth: usize) -> f64 {
    match node {
        Node::Leaf { size } => depth as f64 + c(*size),
        Node::Split {
            metric,
            at,
            left,
            right,
        } => {
            let next = if point[*metric] < *at { left } else { right };
            path(next, point, depth + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200 ordinary runs: ~400 tests, ~600 s ± 5%, a few skips and flaky results.
    fn history() -> Vec<Vec<f64>> {
        (0..200)
            .map(|i| {
                let wobble = ((i * 37) % 21) as f64 / 10.0 - 1.0;
                vec![
                    600_000.0 * (1.0 + 0.05 * wobble),
                    400.0 + (i % 3) as f64,
                    (i % 2) as f64,
                    3.0 + (i % 4) as f64,
                    (i % 5) as f64,
                ]
            })
            .collect()
    }

    #[test]
    fn c_matches_the_paper() {
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
        // c(256) ≈ 10.24 (2 H(255) − 2·255/256).
        assert!((c(256) - 10.24).abs() < 0.01, "{}", c(256));
    }

    #[test]
    fn ordinary_runs_are_not_unusual() {
        let h = history();
        for (i, run) in h.iter().enumerate().step_by(7) {
            assert_eq!(
                assess(&h, run, 1, &AnomalyConfig::default()),
                None,
                "run {i}"
            );
        }
    }

    #[test]
    fn fewer_tests_or_a_slow_run_is_unusual_and_explained() {
        let h = history();
        let dropped = [600_000.0, 240.0, 0.0, 4.0, 1.0];
        let a = assess(&h, &dropped, 1, &AnomalyConfig::default())
            .unwrap_or_else(|| panic!("a 40% drop in tests is unusual"));
        assert_eq!(a.deviations[0].metric, 1);
        assert_eq!(a.deviations[0].kind, "drop");
        assert_eq!(a.deviations[0].expected, 401.0);
        assert_eq!(a.severity, Severity::Critical);
        let slow = [1_200_000.0, 401.0, 0.0, 4.0, 1.0];
        let a = assess(&h, &slow, 1, &AnomalyConfig::default())
            .unwrap_or_else(|| panic!("a run twice as slow is unusual"));
        assert_eq!((a.deviations[0].metric, a.deviations[0].kind), (0, "spike"));
        // Too little history: nothing is judged.
        assert_eq!(assess(&h[..10], &slow, 1, &AnomalyConfig::default()), None);
    }

    #[test]
    fn the_forest_isolates_outliers_sooner() {
        // Sooner, but not by much when the point is outside the history's range on every metric:
        // why the forest is not the only judge.
        let h = history();
        let f = Forest::fit(&h, 100, 256, 7);
        let ordinary = f.score(&h[3]);
        let odd = f.score(&[300_000.0, 100.0, 50.0, 80.0, 40.0]);
        assert!(ordinary < 0.6, "{ordinary}");
        assert!(odd > ordinary, "{odd} {ordinary}");
        // Reproducible.
        assert_eq!(Forest::fit(&h, 100, 256, 7).score(&h[3]), ordinary);
    }
}
