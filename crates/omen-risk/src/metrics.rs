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
    let ranks = midranks(xs.iter().map(|x| x.score));
    let (mut rank_sum, mut pos) = (0.0, 0usize);
    for (x, r) in xs.iter().zip(&ranks) {
        if x.risky {
            rank_sum += r;
            pos += 1;
        }
    }
    let neg = xs.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The 1-based rank of each value in ascending order, tied values sharing their mean rank.
fn midranks(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let values: Vec<f64> = values.collect();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        for &k in &order[i..=j] {
            ranks[k] = mean_rank;
        }
        i = j + 1;
    }
    ranks
}

/// Two scorers' AUCs on the same changes compared, with the uncertainty of the difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AucDifference {
    /// The first scorer's AUC minus the second's.
    pub difference: f64,
    /// Standard error of the difference (DeLong).
    pub std_error: f64,
}

impl AucDifference {
    /// The two-sided 95% confidence interval, normal approximation.
    pub fn ci95(&self) -> (f64, f64) {
        const Z: f64 = 1.959_963_984_540_054;
        (
            self.difference - Z * self.std_error,
            self.difference + Z * self.std_error,
        )
    }
}

/// Paired comparison of the AUCs of two scorers of the same changes (`a[i]` and `b[i]` score
/// one change): DeLong, DeLong and Clarke-Pearson's method (Biometrics, 1988), computed from
/// midranks as Sun and Xu give it (IEEE Signal Processing Letters, 2014). The two AUCs are
/// correlated because they are measured on one sample, which is why the difference's error is
/// smaller than either AUC's. `None` when the slices describe different outcomes or there are
/// fewer than two changes of either class.
pub fn auc_difference(a: &[Scored], b: &[Scored]) -> Option<AucDifference> {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.risky != y.risky) {
        return None;
    }
    let (pa, na) = placements(a)?;
    let (pb, nb) = placements(b)?;
    let d_pos: Vec<f64> = pa.iter().zip(&pb).map(|(x, y)| x - y).collect();
    let d_neg: Vec<f64> = na.iter().zip(&nb).map(|(x, y)| x - y).collect();
    let (mean_pos, var_pos) = mean_and_sample_variance(&d_pos);
    let (_, var_neg) = mean_and_sample_variance(&d_neg);
    Some(AucDifference {
        difference: mean_pos,
        std_error: (var_pos / d_pos.len() as f64 + var_neg / d_neg.len() as f64).sqrt(),
    })
}

/// DeLong's placement values: for each risky change (in input order) the share of safe changes
/// it outscores, and for each safe change the share of risky changes that outscore it, ties
/// counting one half. Both means are the AUC. `None` with fewer than two of either class.
fn placements(xs: &[Scored]) -> Option<(Vec<f64>, Vec<f64>)> {
    let all = midranks(xs.iter().map(|x| x.score));
    let among_risky = midranks(xs.iter().filter(|x| x.risky).map(|x| x.score));
    let among_safe = midranks(xs.iter().filter(|x| !x.risky).map(|x| x.score));
    let (m, n) = (among_risky.len(), among_safe.len());
    if m < 2 || n < 2 {
        return None;
    }
    let (mut risky, mut safe) = (among_risky.iter(), among_safe.iter());
    let (mut pos, mut neg) = (Vec::with_capacity(m), Vec::with_capacity(n));
    for (x, rank) in xs.iter().zip(&all) {
        // A change's rank among all minus its rank in its own class counts the other class's
        // changes below it.
        if x.risky {
            let own = risky.next()?;
            pos.push((rank - own) / n as f64);
        } else {
            let own = safe.next()?;
            neg.push(1.0 - (rank - own) / m as f64);
        }
    }
    Some((pos, neg))
}

fn mean_and_sample_variance(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
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
    fn auc_difference_matches_a_hand_computed_delong() {
        // Risky {0.9, 0.6}, safe {0.7, 0.2, 0.1}; `b` scores everything alike (AUC ½).
        // Placements of `a`: risky 1 and 2/3, safe 1/2, 1, 1 (AUC 5/6). Differences from
        // `b`'s ½: risky {1/2, 1/6} (sample variance 1/18), safe {0, 1/2, 1/2} (1/12).
        // Variance 1/18 / 2 + 1/12 / 3 = 1/18.
        let a = [
            s(0.9, true, 1.0),
            s(0.7, false, 1.0),
            s(0.6, true, 1.0),
            s(0.2, false, 1.0),
            s(0.1, false, 1.0),
        ];
        let b = a.map(|x| Scored { score: 0.5, ..x });
        let d = auc_difference(&a, &b).unwrap();
        assert!((d.difference - 1.0 / 3.0).abs() < 1e-12, "{d:?}");
        assert!(
            (d.std_error - (1.0f64 / 18.0).sqrt()).abs() < 1e-12,
            "{d:?}"
        );
        let (lo, hi) = d.ci95();
        assert!((hi - lo - 2.0 * 1.959_964 * d.std_error).abs() < 1e-6);
        // Reversed, the difference changes sign and keeps its error.
        let r = auc_difference(&b, &a).unwrap();
        assert!((r.difference + d.difference).abs() < 1e-12);
        assert!((r.std_error - d.std_error).abs() < 1e-12);
        // A scorer against itself differs by exactly nothing.
        assert_eq!(auc_difference(&a, &a).map(|d| d.std_error), Some(0.0));
    }

    #[test]
    fn placements_agree_with_counting_pairs() {
        // Scores on a coarse grid so many tie, within and across classes.
        let mut rng = crate::train::SplitMix(12345);
        let xs: Vec<Scored> = (0..200)
            .map(|_| {
                s(
                    (rng.next_u64() % 7) as f64,
                    rng.next_u64().is_multiple_of(3),
                    1.0,
                )
            })
            .collect();
        let (pos, neg) = placements(&xs).unwrap();
        let risky: Vec<f64> = xs.iter().filter(|x| x.risky).map(|x| x.score).collect();
        let safe: Vec<f64> = xs.iter().filter(|x| !x.risky).map(|x| x.score).collect();
        let psi = |r: f64, s: f64| match r.total_cmp(&s) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        };
        for (r, p) in risky.iter().zip(&pos) {
            let counted = safe.iter().map(|&s| psi(*r, s)).sum::<f64>() / safe.len() as f64;
            assert!((counted - p).abs() < 1e-12);
        }
        for (s, p) in safe.iter().zip(&neg) {
            let counted = risky.iter().map(|&r| psi(r, *s)).sum::<f64>() / risky.len() as f64;
            assert!((counted - p).abs() < 1e-12);
        }
        let mean = pos.iter().sum::<f64>() / pos.len() as f64;
        assert!((mean - auc(&xs).unwrap()).abs() < 1e-12);
        // Different outcomes, or a class of one, cannot be compared.
        let mut flipped = xs.clone();
        flipped[0].risky = !flipped[0].risky;
        assert!(auc_difference(&xs, &flipped).is_none());
        let one_risky = [s(0.9, true, 1.0), s(0.2, false, 1.0), s(0.1, false, 1.0)];
        assert!(auc_difference(&one_risky, &one_risky).is_none());
    }

    #[test]
    fn delong_error_agrees_with_a_paired_bootstrap() {
        // Two correlated noisy scorers of 2,000 changes, 40% risky so both classes' terms
        // weigh; resampling changes with replacement 1,000 times spreads the AUC difference as
        // DeLong's error says, within the bootstrap's own noise (about 2%). Leaving out the
        // safe changes' term puts the ratio at 1.25.
        let mut rng = crate::train::SplitMix(99);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..2_000 {
            let risky = rng.unit() < 0.4;
            let signal = if risky { 0.6 } else { 0.0 } + rng.unit();
            let shared = rng.unit();
            a.push(s(signal + shared + rng.unit(), risky, 1.0));
            b.push(s(0.5 * signal + shared + rng.unit(), risky, 1.0));
        }
        let d = auc_difference(&a, &b).unwrap();
        let mut diffs = Vec::new();
        for _ in 0..1_000 {
            let pick: Vec<usize> = (0..a.len())
                .map(|_| ((rng.unit() * a.len() as f64) as usize).min(a.len() - 1))
                .collect();
            let ra: Vec<Scored> = pick.iter().map(|&i| a[i]).collect();
            let rb: Vec<Scored> = pick.iter().map(|&i| b[i]).collect();
            diffs.push(auc(&ra).unwrap() - auc(&rb).unwrap());
        }
        let (_, var) = mean_and_sample_variance(&diffs);
        let ratio = var.sqrt() / d.std_error;
        assert!(d.difference > 0.03, "{d:?}");
        assert!(
            (0.9..1.1).contains(&ratio),
            "bootstrap / DeLong = {ratio}, {d:?}"
        );
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
