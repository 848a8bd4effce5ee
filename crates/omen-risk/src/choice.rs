//! Which model scores a change: when to retrain, whether there are enough labelled changes of each
//! class, whether a trained model is good enough, and the fallback chain repository → prior →
//! heuristic. Pure decisions; the caller reads and writes the model rows.

use crate::assess::{self, Source};
use crate::metrics::{Scored, auc};
use crate::model::RiskModel;

/// `risk_models.kind` of a recorded failed training attempt (its model bytes hold the reason).
/// Failed attempts are recorded like models so a repository without enough labels is not retrained
/// on every run, only when retraining is due again.
const FAILED_TRAINING: &str = "failed";

/// What a stored model row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind {
    /// A trained model (its kind's name, e.g. `logistic+forest`).
    Trained,
    /// A training attempt that failed; the row's bytes are the reason.
    FailedTraining,
}

impl StoredKind {
    /// Read the stored `kind` column.
    pub fn of(kind: &str) -> StoredKind {
        if kind == FAILED_TRAINING {
            StoredKind::FailedTraining
        } else {
            StoredKind::Trained
        }
    }

    /// The `kind` column of a failed attempt.
    pub fn failed_training() -> &'static str {
        FAILED_TRAINING
    }
}

/// The one "enough of each class" rule, for training and for the CI-signal stage: at least
/// `min_samples` labelled examples, `min_per_class` of them positive and as many negative.
pub fn enough_per_class(
    samples: usize,
    positives: usize,
    min_samples: usize,
    min_per_class: usize,
) -> bool {
    samples >= min_samples
        && positives >= min_per_class
        && samples.saturating_sub(positives) >= min_per_class
}

/// The newest model row, as far as retraining cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest {
    /// When it was trained (or training was attempted), unix seconds.
    pub created_at: i64,
    /// Labelled changes it was trained on.
    pub samples: usize,
    /// Its hold-out AUC (0 for a failed attempt).
    pub auc: f64,
}

/// A past prediction whose change has a label now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracked {
    /// When it was made.
    pub at: i64,
    /// The model's own probability, before CI signals adjusted it.
    pub base_probability: f64,
    /// The label the change got.
    pub risky: bool,
}

/// Fewest tracked predictions made since a model was trained before their AUC can call it drifted.
pub const DRIFT_MIN_PREDICTIONS: usize = 50;
/// AUC drop of tracked predictions against the hold-out AUC that makes retraining due.
pub const DRIFT_AUC_DROP: f64 = 0.1;
/// Growth of the labelled set that makes retraining due.
pub const GROWTH: f64 = 1.2;

/// True when a model should be (re)trained now: there is none; it is older than `retrain_days`;
/// the labelled set grew by [`GROWTH`]; or the predictions made since it was trained (and labelled
/// since) rank changes worse than its hold-out did by [`DRIFT_AUC_DROP`]. Older predictions judged
/// its predecessor and are not counted, or retraining would be due on every run.
pub fn retraining_due(
    latest: Option<Latest>,
    labelled: usize,
    tracked: &[Tracked],
    now: i64,
    retrain_days: f64,
) -> bool {
    let Some(m) = latest else { return true };
    let old = (now - m.created_at) as f64 > retrain_days * 86_400.0;
    let grew = labelled as f64 >= GROWTH * m.samples as f64;
    let since: Vec<Scored> = tracked
        .iter()
        .filter(|t| t.at >= m.created_at)
        .map(|t| Scored {
            score: t.base_probability,
            risky: t.risky,
            effort: 1.0,
        })
        .collect();
    let drifted = since.len() >= DRIFT_MIN_PREDICTIONS
        && auc(&since).is_some_and(|a| a < m.auc - DRIFT_AUC_DROP);
    old || grew || drifted
}

/// Why a trained model may not answer, or `None` when it may: its hold-out AUC is below `min_auc`
/// or its Brier score does not beat always predicting the base rate.
pub fn rejection(model: &RiskModel, min_auc: f64) -> Option<String> {
    let v = &model.validation;
    (v.auc < min_auc || v.brier >= v.base_brier).then(|| {
        format!(
            "its hold-out AUC {:.2} (minimum {min_auc:.2}) or Brier {:.3} (base rate {:.3}) is not good enough",
            v.auc, v.brier, v.base_brier
        )
    })
}

/// The model that answers, where it came from, and why a better one did not.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The model.
    pub model: RiskModel,
    /// Which link of the chain.
    pub source: Source,
    /// The stored row of a repository model.
    pub model_id: Option<i64>,
    /// Why the repository model was not used, when it was not.
    pub reason: Option<String>,
}

/// The repository model as stored: decoded, or why it cannot be used.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// No row.
    None,
    /// A failed training attempt and its reason.
    Failed(String),
    /// A row whose model could not be decoded.
    Unreadable(String),
    /// A decoded model and its row id.
    Model(i64, Box<RiskModel>),
}

/// Walk the fallback chain: the repository model when it passes [`rejection`]; else the shipped
/// prior; else the heuristic. `reason` is a reason already known (e.g. too few labels to train).
pub fn fallback(
    repository: Candidate,
    mut reason: Option<String>,
    prior: Option<RiskModel>,
    min_auc: f64,
) -> Chosen {
    match repository {
        Candidate::None => {}
        Candidate::Failed(why) => {
            reason.get_or_insert(why);
        }
        Candidate::Unreadable(e) => reason = Some(format!("stored model unreadable: {e}")),
        Candidate::Model(id, model) => match rejection(&model, min_auc) {
            None => {
                return Chosen {
                    model: *model,
                    source: Source::Repository,
                    model_id: Some(id),
                    reason: None,
                };
            }
            Some(why) => reason = Some(why),
        },
    }
    match prior {
        Some(model) => Chosen {
            model,
            source: Source::Prior,
            model_id: None,
            reason,
        },
        None => Chosen {
            model: assess::heuristic_model(),
            source: Source::Heuristic,
            model_id: None,
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_of_each_class() {
        let check = |samples, positives, expected| {
            assert_eq!(
                enough_per_class(samples, positives, 200, 30),
                expected,
                "{samples} with {positives} positive"
            );
        };
        check(200, 30, true);
        check(199, 30, false);
        check(200, 29, false);
        check(200, 171, false);
        check(200, 170, true);
        check(0, 0, false);
        check(10, 40, false);
    }

    #[test]
    fn retraining_is_due_when_missing_old_outgrown_or_drifted() {
        const DAY: i64 = 86_400;
        let m = Latest {
            created_at: 100 * DAY,
            samples: 1000,
            auc: 0.8,
        };
        let check = |latest, labelled, tracked: &[Tracked], now, expected| {
            assert_eq!(
                retraining_due(latest, labelled, tracked, now, 30.0),
                expected,
                "{latest:?} {labelled} {now}"
            );
        };
        check(None, 0, &[], 0, true);
        check(Some(m), 1000, &[], 101 * DAY, false);
        check(Some(m), 1000, &[], 131 * DAY, true);
        check(Some(m), 1199, &[], 101 * DAY, false);
        check(Some(m), 1200, &[], 101 * DAY, true);
        // Predictions that rank changes backwards: drifted once there are 50 made since training.
        let backwards = |n: usize, at: i64| -> Vec<Tracked> {
            (0..n)
                .map(|i| Tracked {
                    at,
                    base_probability: if i % 2 == 0 { 0.9 } else { 0.1 },
                    risky: i % 2 == 1,
                })
                .collect()
        };
        check(Some(m), 1000, &backwards(50, 100 * DAY), 101 * DAY, true);
        check(Some(m), 1000, &backwards(49, 100 * DAY), 101 * DAY, false);
        check(Some(m), 1000, &backwards(80, 99 * DAY), 101 * DAY, false);
    }

    fn model(auc: f64, brier: f64, base_brier: f64) -> RiskModel {
        let mut m = assess::heuristic_model();
        m.validation.auc = auc;
        m.validation.brier = brier;
        m.validation.base_brier = base_brier;
        m
    }

    #[test]
    fn the_fallback_chain_explains_why_the_repository_model_did_not_answer() {
        let prior = Some(model(0.7, 0.1, 0.2));
        let good = fallback(
            Candidate::Model(7, Box::new(model(0.7, 0.1, 0.2))),
            None,
            prior.clone(),
            0.6,
        );
        assert_eq!(
            (good.source, good.model_id, good.reason),
            (Source::Repository, Some(7), None)
        );

        let weak = fallback(
            Candidate::Model(7, Box::new(model(0.55, 0.1, 0.2))),
            None,
            prior.clone(),
            0.6,
        );
        assert_eq!(weak.source, Source::Prior);
        assert!(weak.reason.unwrap().contains("AUC 0.55 (minimum 0.60)"));

        let no_better_than_base = fallback(
            Candidate::Model(7, Box::new(model(0.9, 0.2, 0.2))),
            None,
            prior.clone(),
            0.6,
        );
        assert_eq!(no_better_than_base.source, Source::Prior);

        let failed = fallback(
            Candidate::Failed("too few".into()),
            None,
            prior.clone(),
            0.6,
        );
        assert_eq!(
            (failed.source, failed.reason.as_deref()),
            (Source::Prior, Some("too few"))
        );
        let known = fallback(
            Candidate::Failed("old".into()),
            Some("now".into()),
            prior.clone(),
            0.6,
        );
        assert_eq!(
            known.reason.as_deref(),
            Some("now"),
            "the fresher reason wins"
        );

        let unreadable = fallback(Candidate::Unreadable("bad magic".into()), None, prior, 0.6);
        assert!(
            unreadable
                .reason
                .unwrap()
                .contains("stored model unreadable: bad magic")
        );

        let nothing = fallback(Candidate::None, None, None, 0.6);
        assert_eq!((nothing.source, nothing.reason), (Source::Heuristic, None));
        assert_eq!(
            StoredKind::of(StoredKind::failed_training()),
            StoredKind::FailedTraining
        );
        assert_eq!(StoredKind::of("logistic+forest"), StoredKind::Trained);
    }
}
