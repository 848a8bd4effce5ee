//! Evaluation metrics for risk scores: discrimination, calibration, classification at a
//! threshold, and the effort-aware figures JIT defect prediction papers report.
//!
//! Ranking convention everywhere: higher score first; ties are broken by smaller effort
//! (`la + ld`) first, then by input order, so every figure is deterministic.

/// One scored change with its outcome and review effort.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The score (a probability for models, any monotone number for rankings).
    pub score: f64,
    /// The true outcome.
    pub risky: bool,
    /// Review effort, `la + ld`.
    pub effort: f64,
}

/// Area under the ROC curve (Mann–Whitney, ties count one half). `None` without both classes.
pub fn auc(xs: &[Scored]) -> Option<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].score.total_cmp(&xs[b].score));
    let (mut rank_sum, mut pos, mut i) = (0.0, 0usize, 0usize);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]].score == xs[order[i]].score {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        for &k in &order[i..=j] {
            if xs[k].risky {
                rank_sum += mean_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = xs.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Mean squared error of probabilities against outcomes.
pub fn brier(xs: &[Scored]) -> f64 {
    squared_error(xs, |x| x.score)
}

/// Brier score of predicting `p` for every change in `xs` (the base-rate predictor).
pub fn brier_of_constant(xs: &[Scored], p: f64) -> f64 {
    squared_error(xs, |_| p)
}

fn squared_error(xs: &[Scored], score: impl Fn(&Scored) -> f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter()
        .map(|x| (score(x) - if x.risky { 1.0 } else { 0.0 }).powi(2))
        .sum::<f64>()
        / xs.len() as f64
}

/// Confusion counts of "score ≥ threshold means risky".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Risky and flagged.
    pub tp: u64,
    /// Safe but flagged.
    pub fp: u64,
    /// Safe and not flagged.
    pub tn: u64,
    /// Risky but not flagged.
    pub fn_: u64,
}

impl Confusion {
    /// Count `xs` at `threshold`.
    pub fn at(xs: &[Scored], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for x in xs {
            match (x.score >= threshold, x.risky) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    /// F1 of the risky class (0 when nothing is flagged or nothing is risky).
    pub fn f1(&self) -> f64 {
        let denom = 2 * self.tp + self.fp + self.fn_;
        if denom == 0 {
            0.0
        } else {
            2.0 * self.tp as f64 / denom as f64
        }
    }

    /// Matthews correlation coefficient (0 when a margin is empty).
    pub fn mcc(&self) -> f64 {
        let (tp, fp, tn, fn_) = (
            self.tp as f64,
            self.fp as f64,
            self.tn as f64,
            self.fn_ as f64,
        );
        let denom = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        if denom == 0.0 {
            0.0
        } else {
            (tp * tn - fp * fn_) / denom
        }
    }
}

/// Indices of `xs` in review order: highest score first, then smaller effort, then input order.
pub fn review_order(xs: &[Scored]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| {
        xs[b]
            .score
            .total_cmp(&xs[a].score)
            .then(xs[a].effort.total_cmp(&xs[b].effort))
            .then(a.cmp(&b))
    });
    order
}

/// Share of all risky changes found in the top `fraction` of changes (by count) in review
/// order: "gate the riskiest 10% of changes, catch X% of the risky ones".
pub fn capture(xs: &[Scored], fraction: f64) -> f64 {
    let total = xs.iter().filter(|x| x.risky).count();
    if total == 0 {
        return 0.0;
    }
    let k = (fraction * xs.len() as f64).ceil() as usize;
    let found = review_order(xs)
        .into_iter()
        .take(k)
        .filter(|&i| xs[i].risky)
        .count();
    found as f64 / total as f64
}

/// Share of risky changes found when reviewing in order until `fraction` of the total effort
/// (`la + ld`) is spent (a change is counted only if it fits in the budget).
pub fn recall_at_effort(xs: &[Scored], fraction: f64) -> f64 {
    let total_risky = xs.iter().filter(|x| x.risky).count();
    let total_effort: f64 = xs.iter().map(|x| x.effort).sum();
    if total_risky == 0 {
        return 0.0;
    }
    let budget = fraction * total_effort;
    let (mut spent, mut found) = (0.0, 0usize);
    for i in review_order(xs) {
        if spent + xs[i].effort > budget {
            break;
        }
        spent += xs[i].effort;
        found += usize::from(xs[i].risky);
    }
    found as f64 / total_risky as f64
}

/// Popt (Kamei et al. 2013): `1 − (area(optimal) − area(model)) / (area(optimal) − area(worst))`
/// over the curve of cumulative risky changes found against cumulative effort. The optimal
/// order reviews risky changes first, smallest first; the worst order the reverse.
pub fn popt(xs: &[Scored]) -> f64 {
    let model = area(xs, &review_order(xs));
    let mut best: Vec<usize> = (0..xs.len()).collect();
    best.sort_by(|&a, &b| {
        xs[b]
            .risky
            .cmp(&xs[a].risky)
            .then(xs[a].effort.total_cmp(&xs[b].effort))
    });
    let mut worst: Vec<usize> = (0..xs.len()).collect();
    worst.sort_by(|&a, &b| {
        xs[a]
            .risky
            .cmp(&xs[b].risky)
            .then(xs[b].effort.total_cmp(&xs[a].effort))
    });
    let (opt, wor) = (area(xs, &best), area(xs, &worst));
    if opt - wor <= f64::EPSILON {
        0.0
    } else {
        1.0 - (opt - model) / (opt - wor)
    }
}

/// Area under the cumulative-recall-over-cumulative-effort curve (trapezoids, both axes 0..1).
fn area(xs: &[Scored], order: &[usize]) -> f64 {
    let total_effort: f64 = xs.iter().map(|x| x.effort).sum();
    let total_risky = xs.iter().filter(|x| x.risky).count() as f64;
    if total_effort <= 0.0 || total_risky == 0.0 {
        return 0.0;
    }
    let (mut x0, mut y0, mut a) = (0.0, 0.0, 0.0);
    let (mut effort, mut found) = (0.0, 0.0);
    for &i in order {
        effort += xs[i].effort;
        found += if xs[i].risky { 1.0 } else { 0.0 };
        let (x1, y1) = (effort / total_effort, found / total_risky);
        a += (x1 - x0) * (y0 + y1) / 2.0;
        (x0, y0) = (x1, y1);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(score: f64, risky: bool, effort: f64) -> Scored {
        Scored {
            score,
            risky,
            effort,
        }
    }

    #[test]
    fn auc_counts_pairs_and_ties() {
        // Hand count: positives {0.9, 0.4}, negatives {0.5, 0.4, 0.1}.
        // Pairs won: 0.9 beats 3; 0.4 beats 0.1, ties 0.4 (½), loses to 0.5 → (3 + 1.5) / 6.
        let xs = [
            s(0.9, true, 1.0),
            s(0.5, false, 1.0),
            s(0.4, true, 1.0),
            s(0.4, false, 1.0),
            s(0.1, false, 1.0),
        ];
        assert_eq!(auc(&xs), Some(4.5 / 6.0));
        assert_eq!(auc(&[s(0.1, true, 1.0)]), None);
    }

    #[test]
    fn brier_and_confusion() {
        let xs = [
            s(1.0, true, 1.0),
            s(0.5, false, 1.0),
            s(0.0, false, 1.0),
            s(0.25, true, 1.0),
        ];
        assert_eq!(brier(&xs), (0.0 + 0.25 + 0.0 + 0.5625) / 4.0);
        let c = Confusion::at(&xs, 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert_eq!(c.f1(), 0.5);
        assert_eq!(c.mcc(), 0.0);
        let perfect = Confusion {
            tp: 3,
            fp: 0,
            tn: 5,
            fn_: 0,
        };
        assert_eq!(perfect.mcc(), 1.0);
    }

    #[test]
    fn capture_and_effort_recall_follow_review_order() {
        // Ten changes, three risky; the top 20% (2 changes) holds one risky change.
        let mut xs: Vec<Scored> = (0..10).map(|i| s(f64::from(10 - i), false, 10.0)).collect();
        xs[1].risky = true;
        xs[5].risky = true;
        xs[9].risky = true;
        assert_eq!(capture(&xs, 0.2), 1.0 / 3.0);
        assert_eq!(capture(&xs, 0.5), 1.0 / 3.0);
        assert_eq!(capture(&xs, 0.6), 2.0 / 3.0);
        // 20% of 100 effort = 2 changes of 10.
        assert_eq!(recall_at_effort(&xs, 0.2), 1.0 / 3.0);
    }

    #[test]
    fn popt_is_one_for_the_optimal_order_and_zero_for_the_worst() {
        let xs = [
            s(3.0, true, 1.0),
            s(2.0, true, 5.0),
            s(1.0, false, 2.0),
            s(0.0, false, 9.0),
        ];
        assert!((popt(&xs) - 1.0).abs() < 1e-12);
        let rev = [
            s(0.0, true, 1.0),
            s(1.0, true, 5.0),
            s(2.0, false, 2.0),
            s(3.0, false, 9.0),
        ];
        assert!(popt(&rev).abs() < 1e-12);
    }
}
