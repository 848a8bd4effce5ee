//! Fitting a [`RiskModel`]: time-ordered hold-out, imbalance, calibration.
//!
//! The procedure, fixed in advance (never tuned on a test period):
//! 1. Changes are sorted by time. The newest `holdout` share (20%) is the validation set; the
//!    older changes are the fitting set. There is no random split anywhere.
//! 2. Features are `ln(1+x)`-transformed and standardised on the fitting set.
//! 3. Logistic regression (L2 `alpha`; smartcore's objective, solved by Newton's method in
//!    [`crate::logistic`]; each input piecewise-linear with `knots` hinges) and a forest of
//!    smartcore decision trees are fitted. Imbalance: each tree sees a *balanced* bootstrap (as
//!    many safe as risky changes, drawn with replacement) and a random subset of the features;
//!    logistic regression is fitted on the data as it is (its ranking does not depend on the
//!    class ratio), and only on the last `logistic_days` (365) of its changes, because what makes
//!    a change risky drifts (see `logistic_start`); the forest sees every change.
//! 4. Each part is calibrated on the hold-out by Platt scaling (a one-feature logistic
//!    regression). The blend averages the two calibrated probabilities.
//! 5. The blend is kept unless the logistic or the forest alone beats it on the hold-out by
//!    [`PART_OVER_BLEND`] AUC (without a forest, the logistic); the F1-best threshold is read
//!    off the hold-out.
//! 6. The chosen parts are refitted on all changes with the same settings and keep the hold-out
//!    calibration (as scikit-learn's `CalibratedClassifierCV(ensemble=False)` does), so the
//!    newest changes inform the model.

use ndarray::{Array1, Array2};
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters, SplitCriterion,
};

use crate::features::{Feature, LabelledChange};
use crate::logistic;
use crate::metrics::{self, Confusion, Scored};
use crate::model::{
    Logistic, ModelKind, Platt, RiskModel, Tree, TreeNode, Validation, forest_margin,
};

/// Training settings. The defaults are the ones every figure in the docs was measured with.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Features to use.
    pub features: Vec<Feature>,
    /// Newest share of changes held out for calibration and model choice.
    pub holdout: f64,
    /// L2 penalty of the logistic regression.
    pub alpha: f64,
    /// Trees in the forest (0 disables the forest).
    pub trees: usize,
    /// Maximum tree depth.
    pub max_depth: u16,
    /// Minimum changes in a leaf.
    pub min_leaf: usize,
    /// Share of the features each tree sees.
    pub feature_share: f64,
    /// Cap on each tree's bootstrap size (per class), to bound training time.
    pub max_per_class: usize,
    /// Seed for bootstraps and feature subsets.
    pub seed: u64,
    /// Fewest labelled changes, and fewest of each class, worth training on.
    pub min_samples: usize,
    /// Fewest risky (and safe) changes worth training on.
    pub min_per_class: usize,
    /// Threads fitting the forest (0: as many as the machine has).
    pub threads: usize,
    /// Knots per feature of the logistic part, at evenly spaced quantiles of the fitting set
    /// (0: linear).
    pub knots: usize,
    /// The logistic part learns from the changes of the last this many days before the newest
    /// one it is fitted on (0: from all of them). The forest always sees every change.
    pub logistic_days: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            features: Feature::PUBLIC.to_vec(),
            holdout: 0.2,
            alpha: 1.0,
            trees: 80,
            max_depth: 7,
            min_leaf: 20,
            feature_share: 0.6,
            max_per_class: 1500,
            seed: 0x6f6d_656e,
            min_samples: 200,
            min_per_class: 30,
            threads: 0,
            knots: 2,
            logistic_days: 365.0,
        }
    }
}

/// Why a model could not be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// Too few labelled changes, or too few of one class.
    #[error(
        "not enough labelled changes: {samples} with {positives} risky (need {need} and {need_per_class} of each class)"
    )]
    TooFew {
        /// Labelled changes available.
        samples: usize,
        /// Risky ones among them.
        positives: usize,
        /// Minimum total.
        need: usize,
        /// Minimum per class.
        need_per_class: usize,
    },
    /// smartcore refused the data.
    #[error("fitting failed: {0}")]
    Fit(String),
}

/// Train a model on `changes` (any order; they are sorted by time here). `now` is recorded as
/// the training time.
pub fn train(
    changes: &[LabelledChange],
    config: &TrainConfig,
    now: i64,
) -> Result<RiskModel, TrainError> {
    let mut sorted: Vec<&LabelledChange> = changes.iter().collect();
    sorted.sort_by_key(|c| c.time);
    let positives = sorted.iter().filter(|c| c.risky).count();
    let too_few = || TrainError::TooFew {
        samples: sorted.len(),
        positives,
        need: config.min_samples,
        need_per_class: config.min_per_class,
    };
    if !enough_to_train(&sorted, config) {
        return Err(too_few());
    }
    let n_fit = ((1.0 - config.holdout) * sorted.len() as f64).round() as usize;
    let (fit, hold) = sorted.split_at(n_fit.clamp(1, sorted.len() - 1));
    if !has_both(fit) || !has_both(hold) {
        return Err(too_few());
    }

    let p = config.features.len();
    let fit_raw = model_inputs(fit.iter().copied(), &config.features);
    let (fit_mean, fit_scale) = standardiser(&fit_raw, p);
    let fit_z = standardise(&fit_raw, &fit_mean, &fit_scale);
    let hold_z = standardise(
        &model_inputs(hold.iter().copied(), &config.features),
        &fit_mean,
        &fit_scale,
    );
    let fit_y: Vec<bool> = fit.iter().map(|c| c.risky).collect();
    let hold_y: Vec<bool> = hold.iter().map(|c| c.risky).collect();
    let hold_effort: Vec<f64> = hold.iter().map(|c| c.features.effort()).collect();

    // 3. Fit both parts on the older changes.
    let recent = logistic_start(fit, config);
    let lr = fit_spline_logistic(&fit_z[recent..], &fit_y[recent..], config)?;
    let forest = if config.trees > 0 {
        Some(fit_forest(&fit_z, &fit_y, config)?)
    } else {
        None
    };

    // 4. Calibrate each part on the hold-out.
    let lr_margins: Vec<f64> = hold_z.iter().map(|r| lr.margin(r)).collect();
    let lr_platt = fit_platt(&lr_margins, &hold_y)?;
    let rf = match forest {
        Some(trees) => {
            let margins: Vec<f64> = hold_z.iter().map(|r| forest_margin(&trees, r)).collect();
            let platt = fit_platt(&margins, &hold_y)?;
            Some((trees, platt, margins))
        }
        None => None,
    };

    // 5. Choose by hold-out AUC.
    let scored = |probs: &[f64]| -> Vec<Scored> {
        probs
            .iter()
            .zip(&hold_y)
            .zip(&hold_effort)
            .map(|((p, y), e)| Scored {
                score: *p,
                risky: *y,
                effort: *e,
            })
            .collect()
    };
    let lr_probs: Vec<f64> = lr_margins.iter().map(|m| lr_platt.apply(*m)).collect();
    let mut candidates = vec![(ModelKind::Logistic, lr_probs.clone())];
    if let Some((_, platt, margins)) = &rf {
        let rf_probs: Vec<f64> = margins.iter().map(|m| platt.apply(*m)).collect();
        let blend: Vec<f64> = lr_probs
            .iter()
            .zip(&rf_probs)
            .map(|(a, b)| (a + b) / 2.0)
            .collect();
        candidates.push((ModelKind::Forest, rf_probs));
        candidates.push((ModelKind::Blend, blend));
    }
    let Some((kind, auc, probs)) = choose(
        candidates
            .into_iter()
            .map(|(kind, probs)| {
                let auc = metrics::auc(&scored(&probs)).unwrap_or(0.5);
                (kind, auc, probs)
            })
            .collect(),
    ) else {
        return Err(TrainError::Fit("no candidate model".into()));
    };
    let hold_scored = scored(&probs);
    let base_rate = fit_y.iter().filter(|y| **y).count() as f64 / fit_y.len() as f64;
    let validation = Validation {
        auc,
        brier: metrics::brier(&hold_scored),
        base_brier: metrics::brier_of_constant(&hold_scored, base_rate),
        samples: hold.len() as u64,
    };
    let threshold = best_f1_threshold(&hold_scored);

    // 6. Refit the logistic part on every change, keeping the hold-out calibration.
    let all_raw = model_inputs(sorted.iter().copied(), &config.features);
    let (mean, scale) = standardiser(&all_raw, p);
    let all_z = standardise(&all_raw, &mean, &scale);
    let all_y: Vec<bool> = sorted.iter().map(|c| c.risky).collect();
    let logistic = match kind {
        ModelKind::Logistic | ModelKind::Blend => {
            let recent = logistic_start(&sorted, config);
            Some((
                fit_spline_logistic(&all_z[recent..], &all_y[recent..], config)?,
                lr_platt,
            ))
        }
        ModelKind::Forest => None,
    };
    let forest = match (kind, rf) {
        (ModelKind::Forest | ModelKind::Blend, Some((_, platt, _))) => {
            Some((fit_forest(&all_z, &all_y, config)?, platt))
        }
        _ => None,
    };
    let mut model = RiskModel {
        kind,
        features: config.features.clone(),
        mean,
        scale,
        logistic,
        forest,
        trained_at: now,
        samples: sorted.len() as u64,
        positives: positives as u64,
        validation,
        threshold,
        quantiles: Vec::new(),
    };
    let mut train_probs: Vec<f64> = all_z
        .iter()
        .map(|r| model.probability_of_inputs(r))
        .collect();
    model.quantiles = quantiles(&mut train_probs);
    Ok(model)
}

/// Where the logistic part's changes start in the time-sorted `cs`: at the first change within
/// `config.logistic_days` of the newest, or at 0 when the window is off or holds fewer changes
/// (or fewer of either class) than training needs.
///
/// Why a window: the properties of risky changes drift as a project ages (McIntosh and Kamei,
/// "Are Fix-Inducing Changes a Moving Target?", TSE 2018, on the same Qt and OpenStack data),
/// and a logistic regression fits one global weight per input, so old changes pull it towards
/// what used to matter. The forest splits locally and keeps every change.
fn logistic_start(cs: &[&LabelledChange], config: &TrainConfig) -> usize {
    let Some(newest) = cs.last().map(|c| c.time) else {
        return 0;
    };
    if config.logistic_days <= 0.0 {
        return 0;
    }
    let from = newest.saturating_sub((config.logistic_days * 86_400.0) as i64);
    let start = cs.partition_point(|c| c.time < from);
    if enough_to_train(&cs[start..], config) {
        start
    } else {
        0
    }
}

/// True when `cs` has the changes training needs: `min_samples` in all, `min_per_class` of each
/// class.
fn enough_to_train(cs: &[&LabelledChange], config: &TrainConfig) -> bool {
    let risky = cs.iter().filter(|c| c.risky).count();
    crate::choice::enough_per_class(cs.len(), risky, config.min_samples, config.min_per_class)
}

fn has_both(cs: &[&LabelledChange]) -> bool {
    cs.iter().any(|c| c.risky) && cs.iter().any(|c| !c.risky)
}

/// Each change's transformed model inputs, in `features` order.
fn model_inputs<'a>(
    changes: impl Iterator<Item = &'a LabelledChange>,
    features: &[Feature],
) -> Vec<Vec<f64>> {
    changes
        .map(|c| features.iter().map(|f| f.input(&c.features)).collect())
        .collect()
}

/// `(x − mean) / scale` per column.
fn standardise(rows: &[Vec<f64>], mean: &[f64], scale: &[f64]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(j, v)| (v - mean[j]) / scale[j])
                .collect()
        })
        .collect()
}

fn standardiser(rows: &[Vec<f64>], p: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0; p];
    for r in rows {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n;
        }
    }
    let mut var = vec![0.0; p];
    for r in rows {
        for j in 0..p {
            var[j] += (r[j] - mean[j]).powi(2) / n;
        }
    }
    // A constant feature gets scale 1: it contributes nothing and never divides by zero.
    let scale = var
        .into_iter()
        .map(|v| if v.sqrt() < 1e-9 { 1.0 } else { v.sqrt() })
        .collect();
    (mean, scale)
}

fn matrix(rows: &[Vec<f64>], cols: &[usize]) -> Array2<f64> {
    let mut m = Array2::<f64>::zeros((rows.len(), cols.len()));
    for (i, r) in rows.iter().enumerate() {
        for (k, &j) in cols.iter().enumerate() {
            m[[i, k]] = r[j];
        }
    }
    m
}

/// Logistic regression by Newton's method (see [`crate::logistic`] for why not smartcore's).
fn fit_logistic(z: &[Vec<f64>], y: &[bool], alpha: f64) -> Result<Logistic, TrainError> {
    let p = z.first().map_or(0, Vec::len);
    let cols: Vec<usize> = (0..p).collect();
    logistic::fit(matrix(z, &cols).view(), y, alpha).map_err(|e| TrainError::Fit(e.to_string()))
}

/// AUC a single part must gain over the blend on the hold-out to replace it. A hold-out of a
/// few thousand changes measures AUC to about ±0.01, and averaging two calibrated parts is the
/// sturdier choice when they are about as good (the same margin the second stage must clear).
pub const PART_OVER_BLEND: f64 = 0.01;

/// The candidate to keep, given each one's hold-out AUC: the blend when there is one, unless a
/// part beats it by [`PART_OVER_BLEND`]; otherwise the best (on a tie, the first listed).
fn choose(candidates: Vec<(ModelKind, f64, Vec<f64>)>) -> Option<(ModelKind, f64, Vec<f64>)> {
    let (blend, parts): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|(kind, _, _)| *kind == ModelKind::Blend);
    let mut best_part: Option<(ModelKind, f64, Vec<f64>)> = None;
    for part in parts {
        if best_part
            .as_ref()
            .is_none_or(|(_, a, _)| part.1 > *a + 1e-9)
        {
            best_part = Some(part);
        }
    }
    match (blend.into_iter().next(), best_part) {
        (Some(blend), Some(part)) if part.1 > blend.1 + PART_OVER_BLEND => Some(part),
        (Some(blend), _) => Some(blend),
        (None, part) => part,
    }
}

/// The logistic part: each input enters piecewise-linearly, with `config.knots` knots at
/// evenly spaced quantiles of its values in `z` (knots that coincide, or sit at the extremes, are
/// dropped: a flag gets none).
fn fit_spline_logistic(
    z: &[Vec<f64>],
    y: &[bool],
    config: &TrainConfig,
) -> Result<Logistic, TrainError> {
    let p = z.first().map_or(0, Vec::len);
    let knots: Vec<Vec<f64>> = (0..p)
        .map(|j| {
            let mut col: Vec<f64> = z.iter().map(|r| r[j]).collect();
            col.sort_by(f64::total_cmp);
            let (lo, hi) = (col[0], col[col.len() - 1]);
            let mut ts: Vec<f64> = (1..=config.knots)
                .map(|k| {
                    let q = k as f64 / (config.knots + 1) as f64;
                    col[((col.len() - 1) as f64 * q).round() as usize]
                })
                .filter(|t| *t > lo && *t < hi)
                .collect();
            ts.dedup();
            ts
        })
        .collect();
    if knots.iter().all(Vec::is_empty) {
        return fit_logistic(z, y, config.alpha);
    }
    let rows: Vec<Vec<f64>> = z.iter().map(|r| Logistic::expand(&knots, r)).collect();
    let mut lr = fit_logistic(&rows, y, config.alpha)?;
    lr.knots = knots;
    Ok(lr)
}

/// Platt scaling: a one-input logistic regression of outcomes on raw margins.
fn fit_platt(margins: &[f64], y: &[bool]) -> Result<Platt, TrainError> {
    let rows: Vec<Vec<f64>> = margins.iter().map(|m| vec![*m]).collect();
    let lr = fit_logistic(&rows, y, 1e-3)?;
    Ok(Platt {
        a: lr.weights[0],
        b: lr.intercept,
    })
}

pub(crate) use omen_core::rng::SplitMix;

/// Bagged smartcore decision trees, each on a balanced bootstrap and a random feature subset.
/// Each fitted tree's splits are read (through smartcore's serde form) into Omen's [`Tree`],
/// and each leaf's value is the share of risky changes of the tree's bootstrap that reach it.
///
/// Trees are fitted on up to `config.threads` threads. Each tree draws from its own generator
/// (seeded by the tree's index), so the forest is the same whatever the thread count.
fn fit_forest(z: &[Vec<f64>], y: &[bool], config: &TrainConfig) -> Result<Vec<Tree>, TrainError> {
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, config.trees.max(1));
    let classes = Classes {
        pos: (0..y.len()).filter(|&i| y[i]).collect(),
        neg: (0..y.len()).filter(|&i| !y[i]).collect(),
    };
    let classes = &classes;
    if threads == 1 {
        return (0..config.trees)
            .map(|t| fit_tree(z, y, classes, config, t))
            .collect();
    }
    let mut slots: Vec<Option<Result<Tree, TrainError>>> = vec![None; config.trees];
    std::thread::scope(|scope| {
        let chunk = config.trees.div_ceil(threads);
        for (c, part) in slots.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (i, slot) in part.iter_mut().enumerate() {
                    *slot = Some(fit_tree(z, y, classes, config, c * chunk + i));
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(TrainError::Fit("a tree was not fitted".into()))))
        .collect()
}

/// Row indices of the risky (`pos`) and safe (`neg`) changes, shared by every tree.
struct Classes {
    pos: Vec<usize>,
    neg: Vec<usize>,
}

/// Tree `t` of the forest: see [`fit_forest`].
fn fit_tree(
    z: &[Vec<f64>],
    y: &[bool],
    classes: &Classes,
    config: &TrainConfig,
    t: usize,
) -> Result<Tree, TrainError> {
    let p = z.first().map_or(0, Vec::len);
    let (pos, neg) = (&classes.pos, &classes.neg);
    if pos.is_empty() || neg.is_empty() || p == 0 {
        return Err(TrainError::Fit(
            "a tree needs both classes and a feature".into(),
        ));
    }
    let per_class = pos.len().min(neg.len()).min(config.max_per_class).max(1);
    let k = ((p as f64 * config.feature_share).round() as usize).clamp(1, p);
    let mut rng = SplitMix(config.seed ^ (t as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut rows: Vec<usize> = Vec::with_capacity(2 * per_class);
    for _ in 0..per_class {
        rows.push(pos[rng.below(pos.len())]);
        rows.push(neg[rng.below(neg.len())]);
    }
    let mut cols: Vec<usize> = (0..p).collect();
    for i in 0..k {
        let j = i + rng.below(p - i);
        cols.swap(i, j);
    }
    cols.truncate(k);
    cols.sort_unstable();
    let sample: Vec<Vec<f64>> = rows.iter().map(|&i| z[i].clone()).collect();
    let x = matrix(&sample, &cols);
    let yv: Array1<u32> = rows.iter().map(|&i| u32::from(y[i])).collect();
    let params = DecisionTreeClassifierParameters {
        criterion: SplitCriterion::Gini,
        max_depth: Some(config.max_depth),
        min_samples_leaf: config.min_leaf,
        min_samples_split: 2 * config.min_leaf,
        seed: Some(config.seed.wrapping_add(t as u64)),
    };
    let fitted =
        DecisionTreeClassifier::fit(&x, &yv, params).map_err(|e| TrainError::Fit(e.to_string()))?;
    let mut tree = tree_from_smartcore(&fitted, &cols)?;
    // Leaf values: the risky share of this tree's bootstrap in each leaf.
    let mut counts = vec![(0u32, 0u32); tree.nodes.len()];
    for &i in &rows {
        if let Some(leaf) = tree.leaf(&z[i]) {
            counts[leaf].0 += u32::from(y[i]);
            counts[leaf].1 += 1;
        }
    }
    for (node, (risky, all)) in tree.nodes.iter_mut().zip(counts) {
        if node.feature == TreeNode::LEAF {
            // Laplace smoothing keeps tiny leaves away from 0 and 1.
            node.value = (f64::from(risky) + 1.0) / (f64::from(all) + 2.0);
        }
    }
    Ok(tree)
}

/// Read a fitted smartcore tree's nodes (output, split feature and value, children) from its
/// serde form. `cols` maps the tree's column indices back to model feature indices.
pub(crate) fn tree_from_smartcore<T: serde::Serialize>(
    fitted: &T,
    cols: &[usize],
) -> Result<Tree, TrainError> {
    let bad = |what: &str| TrainError::Fit(format!("unexpected smartcore tree layout: {what}"));
    let value = serde_json::to_value(fitted).map_err(|e| TrainError::Fit(e.to_string()))?;
    let nodes = value
        .get("nodes")
        .and_then(|n| n.as_array())
        .ok_or_else(|| bad("no `nodes`"))?;
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let child = |k: &str| node.get(k).and_then(|v| v.as_u64());
        match (child("true_child"), child("false_child")) {
            (Some(left), Some(right)) => {
                let col = child("split_feature").ok_or_else(|| bad("split_feature"))? as usize;
                let feature = *cols
                    .get(col)
                    .ok_or_else(|| bad("split_feature out of range"))?;
                let threshold = node
                    .get("split_value")
                    .and_then(|v| v.as_f64())
                    .ok_or_else(|| bad("split_value"))?;
                out.push(TreeNode {
                    feature: u16::try_from(feature).map_err(|_| bad("feature index"))?,
                    threshold,
                    left: u32::try_from(left).map_err(|_| bad("child index"))?,
                    right: u32::try_from(right).map_err(|_| bad("child index"))?,
                    value: 0.0,
                });
            }
            _ => out.push(TreeNode {
                feature: TreeNode::LEAF,
                threshold: 0.0,
                left: 0,
                right: 0,
                value: 0.5,
            }),
        }
    }
    if out.is_empty() {
        return Err(bad("empty tree"));
    }
    Ok(Tree { nodes: out })
}

/// The probability threshold with the best F1 on `xs` (candidates: every distinct score).
pub(crate) fn best_f1_threshold(xs: &[Scored]) -> f64 {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[b].score.total_cmp(&xs[a].score));
    let total_pos = xs.iter().filter(|x| x.risky).count() as u64;
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut best, mut best_t) = (-1.0, 0.5);
    let mut i = 0;
    while i < order.len() {
        let s = xs[order[i]].score;
        while i < order.len() && xs[order[i]].score == s {
            if xs[order[i]].risky {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let c = Confusion {
            tp,
            fp,
            tn: 0,
            fn_: total_pos - tp,
        };
        if c.f1() > best {
            (best, best_t) = (c.f1(), s);
        }
    }
    best_t
}

/// 101 quantiles (minimum, 1%, …, maximum) of `xs` (sorted in place).
pub(crate) fn quantiles(xs: &mut [f64]) -> Vec<f64> {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return Vec::new();
    }
    (0..=100)
        .map(|q| xs[((xs.len() - 1) as f64 * f64::from(q) / 100.0).round() as usize])
        .collect()
}

/// A plain logistic regression on all of `changes` with no hold-out and no calibration: the
/// "LApredict" baseline when `config.features` is `[la]`.
pub fn fit_plain_logistic(
    changes: &[LabelledChange],
    config: &TrainConfig,
    now: i64,
) -> Result<RiskModel, TrainError> {
    let positives = changes.iter().filter(|c| c.risky).count();
    if positives == 0 || positives == changes.len() {
        return Err(TrainError::TooFew {
            samples: changes.len(),
            positives,
            need: config.min_samples,
            need_per_class: 1,
        });
    }
    let p = config.features.len();
    let raw = model_inputs(changes.iter(), &config.features);
    let (mean, scale) = standardiser(&raw, p);
    let z = standardise(&raw, &mean, &scale);
    let y: Vec<bool> = changes.iter().map(|c| c.risky).collect();
    let logistic = fit_logistic(&z, &y, config.alpha)?;
    Ok(RiskModel {
        kind: ModelKind::Logistic,
        features: config.features.clone(),
        mean,
        scale,
        logistic: Some((logistic, Platt::IDENTITY)),
        forest: None,
        trained_at: now,
        samples: changes.len() as u64,
        positives: positives as u64,
        validation: Validation::default(),
        threshold: 0.5,
        quantiles: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureVector;
    use crate::model::sigmoid;

    /// `n` changes whose risk is U-shaped in `ln(1 + la)`: both tiny and huge changes are risky.
    fn u_shaped(n: usize, seed: u64) -> Vec<LabelledChange> {
        let mut rng = SplitMix(seed);
        let mut unit = move || rng.unit();
        (0..n)
            .map(|i| {
                let log_la = unit() * 8.0;
                let nf = 1.0 + (unit() * 10.0).floor();
                let risk = sigmoid(0.5 * (log_la - 4.0).powi(2) - 2.5);
                let mut features = FeatureVector::default();
                features.set(Feature::La, log_la.exp() - 1.0);
                features.set(Feature::Nf, nf);
                features.set(Feature::Fix, f64::from(u8::from(unit() < 0.3)));
                LabelledChange {
                    id: format!("c{i}"),
                    time: 1_600_000_000 + i as i64 * 3600,
                    features,
                    risky: unit() < risk,
                }
            })
            .collect()
    }

    fn auc_of(model: &RiskModel, changes: &[LabelledChange]) -> f64 {
        let scored: Vec<Scored> = changes
            .iter()
            .map(|c| Scored {
                score: model.probability(&c.features),
                risky: c.risky,
                effort: 1.0,
            })
            .collect();
        metrics::auc(&scored).unwrap()
    }

    fn config(knots: usize, trees: usize) -> TrainConfig {
        TrainConfig {
            features: vec![Feature::La, Feature::Nf, Feature::Fix],
            knots,
            trees,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn the_blend_stays_unless_a_part_beats_it_by_the_margin() {
        let kinds = |aucs: [f64; 3]| {
            [ModelKind::Logistic, ModelKind::Forest, ModelKind::Blend]
                .into_iter()
                .zip(aucs)
                .map(|(k, a)| (k, a, vec![a]))
                .collect::<Vec<_>>()
        };
        let kind = |c: Vec<(ModelKind, f64, Vec<f64>)>| choose(c).map(|(k, a, _)| (k, a));
        // The forest is 0.003 ahead: noise on a hold-out, the blend stays.
        assert_eq!(
            kind(kinds([0.79, 0.805, 0.802])),
            Some((ModelKind::Blend, 0.802))
        );
        // A part well ahead replaces it.
        assert_eq!(
            kind(kinds([0.83, 0.805, 0.812])),
            Some((ModelKind::Logistic, 0.83))
        );
        // Without a forest, the logistic.
        assert_eq!(
            kind(vec![(ModelKind::Logistic, 0.7, vec![])]),
            Some((ModelKind::Logistic, 0.7))
        );
        assert_eq!(kind(Vec::new()), None);
    }

    #[test]
    fn knots_capture_a_risk_that_is_not_monotonic() {
        let (train_set, test_set) = (u_shaped(4000, 1), u_shaped(4000, 2));
        let linear = train(&train_set, &config(0, 0), 0).unwrap();
        let spline = train(&train_set, &config(2, 0), 0).unwrap();
        let (a_linear, a_spline) = (auc_of(&linear, &test_set), auc_of(&spline, &test_set));
        // A straight line cannot rank a U: it stays near chance; two knots bend it.
        assert!(a_linear < 0.6, "linear AUC {a_linear}");
        assert!(a_spline > 0.7, "spline AUC {a_spline}");
        let (lr, _) = spline.logistic.as_ref().unwrap();
        assert_eq!(lr.knots[0].len(), 2, "la gets two knots");
        assert_eq!(
            lr.weights.len(),
            3 + lr.knots.iter().map(Vec::len).sum::<usize>()
        );
    }

    /// Changes 4 hours apart over 3.5 years: for the first 2 years risk follows `nf`, after
    /// that it follows `la`.
    fn drifting(seed: u64) -> Vec<LabelledChange> {
        let mut rng = SplitMix(seed);
        let mut unit = move || rng.unit();
        let step = 4 * 3600;
        let switch = 2 * 365 * 86_400 / step;
        (0..(3.5 * 365.0 * 86_400.0) as i64 / step)
            .map(|i| {
                let (a, b) = (unit(), unit());
                let driver = if i < switch { b } else { a };
                let mut features = FeatureVector::default();
                features.set(Feature::La, (a * 8.0).exp() - 1.0);
                features.set(Feature::Nf, (b * 4.0).exp());
                LabelledChange {
                    id: format!("c{i}"),
                    time: 1_500_000_000 + i * step,
                    features,
                    risky: unit() < sigmoid(6.0 * driver - 4.0),
                }
            })
            .collect()
    }

    #[test]
    fn the_logistic_part_learns_from_the_latest_year() {
        let changes = drifting(5);
        let newest = changes.last().map(|c| c.time).unwrap();
        let latest: Vec<LabelledChange> = changes
            .iter()
            .filter(|c| c.time > newest - 200 * 86_400)
            .cloned()
            .collect();
        let fit = |logistic_days| {
            let cfg = TrainConfig {
                logistic_days,
                ..config(0, 0)
            };
            let model = train(&changes, &cfg, 0).unwrap();
            let (lr, _) = model.logistic.as_ref().unwrap();
            // Inputs are standardised, so the weights compare: [la, nf, fix].
            (lr.weights[0], lr.weights[1], auc_of(&model, &latest))
        };
        let (la, nf, windowed) = fit(365.0);
        assert!(
            nf.abs() < 0.2 * la,
            "la {la}, nf {nf}: only the latest year"
        );
        let (la_all, nf_all, everything) = fit(0.0);
        assert!(
            nf_all > 0.5 * la_all,
            "la {la_all}, nf {nf_all}: every change"
        );
        assert!(
            windowed > everything + 0.03,
            "AUC on the latest changes: windowed {windowed}, all {everything}"
        );
    }

    #[test]
    fn a_window_with_too_few_changes_is_not_used() {
        let changes = u_shaped(1000, 6);
        let sorted: Vec<&LabelledChange> = changes.iter().collect();
        // 1,000 changes an hour apart: the last day holds 25, fewer than training needs.
        let day = TrainConfig {
            logistic_days: 1.0,
            ..config(0, 0)
        };
        assert_eq!(logistic_start(&sorted, &day), 0);
        let month = TrainConfig {
            logistic_days: 30.0,
            ..config(0, 0)
        };
        assert_eq!(logistic_start(&sorted, &month), 1000 - 30 * 24 - 1);
    }

    #[test]
    fn a_flag_gets_no_knots() {
        let model = train(&u_shaped(2000, 3), &config(2, 0), 0).unwrap();
        let (lr, _) = model.logistic.as_ref().unwrap();
        assert!(lr.knots[2].is_empty(), "fix is 0 or 1: {:?}", lr.knots[2]);
    }

    #[test]
    fn the_forest_does_not_depend_on_the_thread_count() {
        let changes = u_shaped(3000, 4);
        let features = config(0, 7).features;
        let z = model_inputs(changes.iter(), &features);
        let y: Vec<bool> = changes.iter().map(|c| c.risky).collect();
        let forest = |threads| {
            let cfg = TrainConfig {
                threads,
                ..config(0, 7)
            };
            fit_forest(&z, &y, &cfg).unwrap()
        };
        let one = forest(1);
        assert_eq!(one.len(), 7);
        assert!(one.iter().all(|t| t.nodes.len() > 1), "trees split");
        assert_eq!(forest(2), one);
        assert_eq!(forest(3), one);
    }
}
