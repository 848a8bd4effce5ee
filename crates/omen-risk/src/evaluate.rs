//! Evaluate Omen's model against baselines on a labelled dataset, time-ordered.
//!
//! The newest `test_share` of changes (by commit time) is the test period. Training uses only
//! changes committed at least `gap_days` before the first test change: labels of the newest
//! changes are incomplete when a model is trained in practice, and a change's bug is often fixed
//! weeks later, inside the test period. Nothing dated after the training cut is read.

use crate::features::{Feature, LabelledChange};
use crate::metrics::{self, AucDifference, Confusion, Scored};
use crate::train::{self, TrainConfig, TrainError, best_f1_threshold};

/// Split settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// Newest share of changes used as the test period.
    pub test_share: f64,
    /// Days between the last training change and the first test change.
    pub gap_days: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            test_share: 0.35,
            gap_days: 30.0,
        }
    }
}

/// The figures reported for one scorer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Area under the ROC curve.
    pub auc: f64,
    /// Brier score; `None` for a ranking that is not a probability.
    pub brier: Option<f64>,
    /// F1 of the risky class at the scorer's threshold.
    pub f1: f64,
    /// Matthews correlation at the same threshold.
    pub mcc: f64,
    /// Share of risky changes among the top 5/10/20/50% gated.
    pub capture: [f64; 4],
    /// Recall when 20% of the total churn is reviewed.
    pub recall_at_20_effort: f64,
    /// Popt.
    pub popt: f64,
}

/// The shares of changes [`Figures::capture`] is measured at.
pub const CAPTURE_AT: [f64; 4] = [0.05, 0.10, 0.20, 0.50];

/// Result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Training changes.
    pub train: usize,
    /// Changes left out by the gap.
    pub gap: usize,
    /// Test changes.
    pub test: usize,
    /// Risky share of the test period.
    pub test_base_rate: f64,
    /// Brier score of always predicting the training base rate, on the test period.
    pub base_rate_brier: f64,
    /// Which scorer Omen's training chose.
    pub model_kind: &'static str,
    /// Omen's model.
    pub model: Figures,
    /// Ranking by lines added, no training.
    pub la_rank: Figures,
    /// Logistic regression on lines added alone.
    pub lapredict: Figures,
    /// Omen's AUC minus LApredict's on the same test changes, with DeLong's standard error;
    /// `None` with fewer than two test changes of either class.
    pub gain_over_lapredict: Option<AucDifference>,
}

/// Train on the older changes and score the test period; see the module docs.
pub fn evaluate(
    changes: &[LabelledChange],
    split: &SplitConfig,
    config: &TrainConfig,
) -> Result<Evaluation, TrainError> {
    let mut sorted: Vec<LabelledChange> = changes.to_vec();
    sorted.sort_by_key(|c| c.time);
    let n_test = ((split.test_share * sorted.len() as f64).round() as usize).min(sorted.len());
    let test_start = sorted.len() - n_test;
    let test = &sorted[test_start..];
    let cut = test.first().map_or(i64::MAX, |c| c.time) - (split.gap_days * 86_400.0) as i64;
    let train_set: Vec<LabelledChange> = sorted[..test_start]
        .iter()
        .filter(|c| c.time < cut)
        .cloned()
        .collect();
    let gap = test_start - train_set.len();
    let trained_at = train_set.last().map_or(0, |c| c.time);
    let model = train::train(&train_set, config, trained_at)?;

    let score = |f: &dyn Fn(&LabelledChange) -> f64| -> Vec<Scored> {
        test.iter()
            .map(|c| Scored {
                score: f(c),
                risky: c.risky,
                effort: c.features.effort(),
            })
            .collect()
    };
    let omen = score(&|c| model.probability(&c.features));
    let model_figures = figures(&omen, true, model.threshold);

    // Ranking by lines added: flag the top "training base rate" share for F1/MCC.
    let base_rate =
        train_set.iter().filter(|c| c.risky).count() as f64 / train_set.len().max(1) as f64;
    let la = score(&|c| c.features.get(Feature::La));
    let mut las: Vec<f64> = la.iter().map(|s| s.score).collect();
    las.sort_by(|a, b| b.total_cmp(a));
    let k = ((base_rate * las.len() as f64).round() as usize).clamp(1, las.len().max(1));
    let la_threshold = las.get(k - 1).copied().unwrap_or(0.0);
    let la_figures = figures(&la, false, la_threshold);

    // LApredict: a logistic regression on ln(1 + la) alone, threshold F1-best on training.
    let la_config = TrainConfig {
        features: vec![Feature::La],
        trees: 0,
        ..config.clone()
    };
    let la_model = train::fit_plain_logistic(&train_set, &la_config, trained_at)?;
    let train_scored: Vec<Scored> = train_set
        .iter()
        .map(|c| Scored {
            score: la_model.probability(&c.features),
            risky: c.risky,
            effort: c.features.effort(),
        })
        .collect();
    let lap = score(&|c| la_model.probability(&c.features));
    let lap_figures = figures(&lap, true, best_f1_threshold(&train_scored));

    Ok(Evaluation {
        train: train_set.len(),
        gap,
        test: test.len(),
        test_base_rate: test.iter().filter(|c| c.risky).count() as f64 / test.len().max(1) as f64,
        base_rate_brier: metrics::brier_of_constant(&omen, base_rate),
        model_kind: model.kind.name(),
        model: model_figures,
        la_rank: la_figures,
        lapredict: lap_figures,
        gain_over_lapredict: metrics::auc_difference(&omen, &lap),
    })
}

fn figures(xs: &[Scored], probability: bool, threshold: f64) -> Figures {
    let c = Confusion::at(xs, threshold);
    Figures {
        auc: metrics::auc(xs).unwrap_or(0.5),
        brier: probability.then(|| metrics::brier(xs)),
        f1: c.f1(),
        mcc: c.mcc(),
        capture: CAPTURE_AT.map(|f| metrics::capture(xs, f)),
        recall_at_20_effort: metrics::recall_at_effort(xs, 0.2),
        popt: metrics::popt(xs),
    }
}
