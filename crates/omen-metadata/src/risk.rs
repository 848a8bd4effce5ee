//! JSON printed by `omen risk score|gate --format json` and `omen risk evaluate --format json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of [`RiskReport`].
pub const RISK_REPORT_VERSION: u32 = 1;

/// The deploy-risk answer for one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskReport {
    /// Always [`RISK_REPORT_VERSION`].
    pub version: u32,
    /// Base commit.
    pub base: String,
    /// Head commit.
    pub head: String,
    /// Calibrated probability that the change is risky.
    pub probability: f64,
    /// Percentile among the repository's past changes (those the model learned from).
    pub percentile: f64,
    /// `LOW`, `MEDIUM`, `HIGH` or `CRITICAL`.
    pub level: String,
    /// Which model answered: `repository`, `prior` or `heuristic`.
    pub model: String,
    /// Its scorer: `logistic`, `forest` or `logistic+forest`.
    pub kind: String,
    /// Why the repository's own model did not answer, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Strongest factors: `+ …` raises risk, `− …` lowers it.
    pub factors: Vec<String>,
    /// Quiet review hints from the diff.
    pub hints: Vec<String>,
    /// CI and deploy signals shown beside the score: authors, time since the last deploy,
    /// recent change failure rate, how long the pull request has been open, and from `omen ci`
    /// the run's unexcused failures and test-count change. The model does not see them (the
    /// history it bootstraps from has no CI runs or deploys); the second stage
    /// ([`RiskReport::signals_stage`]) learns their weight from Omen's own past predictions.
    #[serde(default)]
    pub signals: Vec<String>,
    /// Whether the signals adjusted the probability, and why or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals_stage: Option<SignalsStage>,
    /// Features Omen could not compute fully, and why.
    pub missing: Vec<String>,
    /// Raw feature values by name.
    pub features: BTreeMap<String, f64>,
    /// Present for `omen risk gate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
}

/// The second stage: the model's probability adjusted by the CI and deploy signals, with
/// weights learned from Omen's own labelled predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalsStage {
    /// The signals adjusted the probability (they beat the model alone on the newest labelled
    /// predictions).
    pub applied: bool,
    /// The model's probability before any adjustment.
    pub base_probability: f64,
    /// Labelled predictions learned from (0 when not applied).
    pub samples: usize,
    /// The hold-out comparison when applied, else why not.
    pub detail: String,
}

/// The gate's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The threshold on the probability.
    pub threshold: f64,
    /// The change was over the threshold.
    pub over: bool,
    /// A reviewer accepted the risk (label or input).
    pub accepted: bool,
    /// The gate blocks (exit 1).
    pub blocked: bool,
}

/// Figures for one scorer in an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalFigures {
    /// Area under the ROC curve.
    pub auc: f64,
    /// Brier score (`null` for a ranking that is not a probability).
    pub brier: Option<f64>,
    /// F1 of the risky class.
    pub f1: f64,
    /// Matthews correlation coefficient.
    pub mcc: f64,
    /// Share of risky changes caught when gating the top 5/10/20/50%.
    pub capture: BTreeMap<String, f64>,
    /// Recall at 20% of the churn reviewed.
    pub recall_at_20_effort: f64,
    /// Popt.
    pub popt: f64,
}

/// Baselines run beside Omen's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalBaselines {
    /// Ranking by lines added.
    pub la_rank: EvalFigures,
    /// Logistic regression on lines added alone.
    pub lapredict: EvalFigures,
}

/// `omen risk evaluate --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    /// The dataset file.
    pub dataset: String,
    /// Its layout.
    pub layout: String,
    /// Training changes.
    pub train: usize,
    /// Changes between training and test left out by the gap.
    pub gap: usize,
    /// Test changes.
    pub test: usize,
    /// Risky share of the test period.
    pub test_base_rate: f64,
    /// Brier score of predicting the training base rate for every test change.
    pub base_rate_brier: f64,
    /// Omen's scorer as chosen on the training hold-out.
    pub model_kind: String,
    /// Omen's model.
    pub model: EvalFigures,
    /// The baselines.
    pub baselines: EvalBaselines,
    /// Omen's AUC minus LApredict's on the same test changes, with its uncertainty (`null`
    /// with fewer than two test changes of either class).
    #[serde(default)]
    pub gain_over_lapredict: Option<AucGain>,
}

/// A paired AUC difference between two scorers of the same changes (DeLong).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AucGain {
    /// The first scorer's AUC minus the second's.
    pub auc: f64,
    /// Standard error of that difference.
    pub std_error: f64,
    /// Two-sided 95% confidence interval, `[low, high]`.
    pub ci95: [f64; 2],
}
