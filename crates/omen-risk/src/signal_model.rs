//! The second stage: the model's probability adjusted by CI and deploy signals.
//!
//! A model bootstrapped from git history cannot learn what a run's new test failures or the
//! time since the last deploy say about risk: its past changes have no CI runs or deploys. Omen's
//! own recorded predictions do. Each one keeps the first stage's probability (the *base*
//! probability, before any adjustment, so this stage never learns from its own output) and the
//! change's [`Signals`]; once the change has a label it is a training row.
//!
//! The stage is one logistic regression on the base logit plus, per signal, its transformed value
//! and whether it was known at all (an unknown value is imputed with the mean of the known ones,
//! so it contributes through the flag alone). It answers only when it ranks the newest 30% of
//! labelled predictions better than the base probability does (AUC gain ≥ 0.01) without a worse
//! Brier score, after fitting on the older 70%; it is then refitted on every row.

use ndarray::Array2;

use crate::logistic::{self, FitError};
use crate::metrics::{self, Scored};
use crate::model::{Logistic, logit, sigmoid};
use crate::signals::{Signal, Signals};

/// One recorded prediction whose change now has a label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackedRow {
    /// When it was made, unix seconds (rows are split by this, oldest first).
    pub at: i64,
    /// The first stage's probability.
    pub base_probability: f64,
    /// The change's signals at the time.
    pub signals: Signals,
    /// The label the change got later.
    pub risky: bool,
}

/// When the stage is trusted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalConfig {
    /// Fewest labelled predictions to learn from.
    pub min_samples: usize,
    /// Fewest of each outcome among them.
    pub min_per_class: usize,
    /// Newest share held out to compare with the base probability.
    pub holdout: f64,
    /// Fewest of each outcome in the hold-out.
    pub min_holdout_per_class: usize,
    /// Hold-out AUC the stage must add to the base probability's.
    pub min_auc_gain: f64,
    /// L2 penalty.
    pub alpha: f64,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            min_samples: 200,
            min_per_class: 20,
            holdout: 0.3,
            min_holdout_per_class: 5,
            min_auc_gain: 0.01,
            alpha: 1.0,
        }
    }
}

/// Why the stage does not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unused {
    /// Not enough labelled predictions yet.
    #[error(
        "{samples} labelled predictions ({risky} risky) so far; it needs {min_samples} with {min_per_class} of each outcome"
    )]
    TooFew {
        /// Labelled predictions with signals.
        samples: usize,
        /// Of which risky.
        risky: usize,
        /// [`SignalConfig::min_samples`].
        min_samples: usize,
        /// [`SignalConfig::min_per_class`].
        min_per_class: usize,
    },
    /// The newest predictions lack one outcome, so nothing can be compared.
    #[error("the newest {0} labelled predictions do not have enough of both outcomes to compare")]
    ThinHoldout(usize),
    /// The signals did not improve on the model alone.
    #[error(
        "on the newest {} labelled predictions the signals did not beat the model alone (AUC {:.3} → {:.3}, Brier {:.3} → {:.3})",
        .0.n, .0.auc_before, .0.auc_after, .0.brier_before, .0.brier_after
    )]
    NoGain(Holdout),
    /// The regression could not be fitted.
    #[error("fitting failed: {0}")]
    Fit(#[from] FitError),
}

/// Hold-out figures of an accepted stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holdout {
    /// Predictions held out.
    pub n: usize,
    /// AUC of the base probability.
    pub auc_before: f64,
    /// AUC with the signals.
    pub auc_after: f64,
    /// Brier score of the base probability.
    pub brier_before: f64,
    /// Brier score with the signals.
    pub brier_after: f64,
}

/// A fitted, accepted second stage.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalModel {
    fitted: Fitted,
    /// Rows learned from.
    pub samples: usize,
    /// Of which risky.
    pub risky: usize,
    /// How it compared with the base probability on the newest predictions.
    pub holdout: Holdout,
}

/// The regression and how its columns are prepared.
#[derive(Debug, Clone, PartialEq)]
struct Fitted {
    /// Training mean of each column.
    mean: [f64; COLUMNS],
    /// Training standard deviation of each column (0 for a constant column, which then adds
    /// nothing).
    scale: [f64; COLUMNS],
    /// Mean of each signal's known transformed values, imputed for unknown ones.
    fill: [f64; Signal::ALL.len()],
    /// Weights on the standardised columns.
    logistic: Logistic,
}

/// One signal's effect on an adjusted probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalEffect {
    /// The signal.
    pub signal: Signal,
    /// Probability minus the probability with this signal at its typical value.
    pub effect: f64,
}

/// Columns: the base logit, then per signal (value, known).
const COLUMNS: usize = 1 + 2 * Signal::ALL.len();

/// The value a signal enters as: logs for counts and hours, the rate as is.
fn transform(s: Signal, v: f64) -> f64 {
    match s {
        Signal::TestDelta => v.signum() * v.abs().ln_1p(),
        Signal::ChangeFailureRate => v,
        Signal::NewFailures | Signal::Authors | Signal::HoursSinceDeploy | Signal::ReviewHours => {
            v.max(0.0).ln_1p()
        }
    }
}

/// The base probability as a logit, kept finite.
fn base_logit(p: f64) -> f64 {
    logit(p.clamp(1e-4, 1.0 - 1e-4))
}

fn raw_row(
    base_probability: f64,
    signals: &Signals,
    fill: &[f64; Signal::ALL.len()],
) -> [f64; COLUMNS] {
    let mut row = [0.0; COLUMNS];
    row[0] = base_logit(base_probability);
    for (i, s) in Signal::ALL.into_iter().enumerate() {
        match signals.get(s) {
            Some(v) => {
                row[1 + 2 * i] = transform(s, v);
                row[2 + 2 * i] = 1.0;
            }
            None => row[1 + 2 * i] = fill[i],
        }
    }
    row
}

/// Fit on `rows` (any order) and return the stage if it beats the base probability.
pub fn fit(rows: &[TrackedRow], config: &SignalConfig) -> Result<SignalModel, Unused> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r.at);
    let risky = rows.iter().filter(|r| r.risky).count();
    let samples = rows.len();
    if !crate::choice::enough_per_class(samples, risky, config.min_samples, config.min_per_class) {
        return Err(Unused::TooFew {
            samples,
            risky,
            min_samples: config.min_samples,
            min_per_class: config.min_per_class,
        });
    }
    let cut = ((samples as f64) * (1.0 - config.holdout)).round() as usize;
    let (older, newest) = rows.split_at(cut.min(samples));
    let newest_risky = newest.iter().filter(|r| r.risky).count();
    let older_risky = older.iter().filter(|r| r.risky).count();
    if newest_risky < config.min_holdout_per_class
        || newest.len() - newest_risky < config.min_holdout_per_class
        || older_risky == 0
        || older_risky == older.len()
    {
        return Err(Unused::ThinHoldout(newest.len()));
    }
    let trial = Fitted::fit(older, config.alpha)?;
    let scored = |p: &dyn Fn(&TrackedRow) -> f64| -> Vec<Scored> {
        newest
            .iter()
            .map(|r| Scored {
                score: p(r),
                risky: r.risky,
                effort: 1.0,
            })
            .collect()
    };
    let before = scored(&|r| r.base_probability);
    let after = scored(&|r| trial.probability(r.base_probability, &r.signals));
    let holdout = Holdout {
        n: newest.len(),
        auc_before: metrics::auc(&before).unwrap_or(0.5),
        auc_after: metrics::auc(&after).unwrap_or(0.5),
        brier_before: metrics::brier(&before),
        brier_after: metrics::brier(&after),
    };
    if holdout.auc_after < holdout.auc_before + config.min_auc_gain
        || holdout.brier_after > holdout.brier_before
    {
        return Err(Unused::NoGain(holdout));
    }
    Ok(SignalModel {
        fitted: Fitted::fit(&rows, config.alpha)?,
        samples,
        risky,
        holdout,
    })
}

impl Fitted {
    /// Standardise and fit, without any check.
    fn fit(rows: &[TrackedRow], alpha: f64) -> Result<Fitted, FitError> {
        let mut fill = [0.0; Signal::ALL.len()];
        for (i, s) in Signal::ALL.into_iter().enumerate() {
            let known: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.signals.get(s).map(|v| transform(s, v)))
                .collect();
            if !known.is_empty() {
                fill[i] = known.iter().sum::<f64>() / known.len() as f64;
            }
        }
        let raw: Vec<[f64; COLUMNS]> = rows
            .iter()
            .map(|r| raw_row(r.base_probability, &r.signals, &fill))
            .collect();
        let n = raw.len().max(1) as f64;
        let mut mean = [0.0; COLUMNS];
        let mut scale = [0.0; COLUMNS];
        for j in 0..COLUMNS {
            mean[j] = raw.iter().map(|r| r[j]).sum::<f64>() / n;
            let var = raw.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
            scale[j] = if var > 1e-12 { var.sqrt() } else { 0.0 };
        }
        let x = Array2::from_shape_fn((raw.len(), COLUMNS), |(i, j)| {
            standardise(raw[i][j], mean[j], scale[j])
        });
        let y: Vec<bool> = rows.iter().map(|r| r.risky).collect();
        let logistic = logistic::fit(x.view(), &y, alpha)?;
        Ok(Fitted {
            mean,
            scale,
            fill,
            logistic,
        })
    }

    fn inputs(&self, base_probability: f64, signals: &Signals) -> Vec<f64> {
        raw_row(base_probability, signals, &self.fill)
            .iter()
            .enumerate()
            .map(|(j, v)| standardise(*v, self.mean[j], self.scale[j]))
            .collect()
    }

    fn probability(&self, base_probability: f64, signals: &Signals) -> f64 {
        sigmoid(
            self.logistic
                .margin(&self.inputs(base_probability, signals)),
        )
    }
}

fn standardise(v: f64, mean: f64, scale: f64) -> f64 {
    if scale > 0.0 { (v - mean) / scale } else { 0.0 }
}

impl SignalModel {
    /// The adjusted probability.
    pub fn probability(&self, base_probability: f64, signals: &Signals) -> f64 {
        self.fitted.probability(base_probability, signals)
    }

    /// The signals worth naming as risk factors: known ones whose effect reaches
    /// [`crate::assess::MIN_EFFECT`], in words with their direction.
    pub fn factors(&self, base_probability: f64, signals: &Signals) -> Vec<crate::assess::Ranked> {
        self.effects(base_probability, signals)
            .into_iter()
            .filter_map(|e| {
                let v = signals.get(e.signal)?;
                (e.effect.abs() >= crate::assess::MIN_EFFECT).then(|| {
                    let sign = if e.effect >= 0.0 { '+' } else { '−' };
                    crate::assess::Ranked {
                        effect: e.effect,
                        line: format!("{sign} {}", e.signal.describe(v)),
                        signal: Some(e.signal),
                    }
                })
            })
            .collect()
    }

    /// Each *known* signal's effect on the adjusted probability: the probability minus the
    /// probability with that signal's value and flag at their training means (a typical
    /// change). Strongest first.
    pub fn effects(&self, base_probability: f64, signals: &Signals) -> Vec<SignalEffect> {
        let z = self.fitted.inputs(base_probability, signals);
        let logistic = &self.fitted.logistic;
        let p = sigmoid(logistic.margin(&z));
        let mut out: Vec<SignalEffect> = Signal::ALL
            .into_iter()
            .enumerate()
            .filter(|(_, s)| signals.get(*s).is_some())
            .map(|(i, signal)| {
                let mut zi = z.clone();
                zi[1 + 2 * i] = 0.0;
                zi[2 + 2 * i] = 0.0;
                SignalEffect {
                    signal,
                    effect: p - sigmoid(logistic.margin(&zi)),
                }
            })
            .collect();
        out.sort_by(|a, b| b.effect.abs().total_cmp(&a.effect.abs()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::SplitMix;

    /// Rows whose outcome depends on the base probability and, with `weight`, on the run's new
    /// failures (known for half the rows). Review hours are never known.
    fn rows(n: usize, weight: f64, seed: u64) -> Vec<TrackedRow> {
        let mut rng = SplitMix(seed);
        (0..n)
            .map(|i| {
                let base = 0.05 + 0.4 * rng.unit();
                let failures = (rng.unit() * 4.0).floor();
                let mut signals = Signals::default();
                if i % 2 == 0 {
                    signals.set(Signal::NewFailures, failures);
                }
                signals.set(Signal::Authors, 1.0 + (rng.unit() * 2.0).floor());
                let known = if i % 2 == 0 { failures } else { 0.0 };
                let p = sigmoid(logit(base) + weight * (known - 1.0));
                TrackedRow {
                    at: i as i64 * 3600,
                    base_probability: base,
                    signals,
                    risky: rng.unit() < p,
                }
            })
            .collect()
    }

    #[test]
    fn a_signal_that_predicts_risk_is_learned_and_explained() {
        let data = rows(600, 1.2, 7);
        let m = fit(&data, &SignalConfig::default()).unwrap();
        assert_eq!(m.samples, 600);
        assert_eq!(m.risky, data.iter().filter(|r| r.risky).count());
        assert_eq!(m.holdout.n, 180);
        assert!(
            m.holdout.auc_after >= m.holdout.auc_before + 0.05,
            "{:?}",
            m.holdout
        );
        assert!(m.holdout.brier_after <= m.holdout.brier_before);

        let mut quiet = Signals::default();
        quiet.set(Signal::NewFailures, 0.0);
        quiet.set(Signal::Authors, 1.0);
        let mut loud = quiet;
        loud.set(Signal::NewFailures, 3.0);
        let (p_quiet, p_loud) = (m.probability(0.2, &quiet), m.probability(0.2, &loud));
        assert!(p_loud > p_quiet + 0.2, "{p_quiet} vs {p_loud}");
        // The base probability still counts.
        assert!(m.probability(0.4, &loud) > p_loud);

        let effects = m.effects(0.2, &loud);
        assert_eq!(effects[0].signal, Signal::NewFailures);
        assert!(effects[0].effect > 0.1, "{effects:?}");
        assert!(m.effects(0.2, &quiet)[0].effect < 0.0);
        // Unknown signals are not explained.
        assert!(effects.iter().all(|e| e.signal != Signal::ReviewHours));
    }

    #[test]
    fn signals_that_say_nothing_are_not_used() {
        let data = rows(600, 0.0, 11);
        match fit(&data, &SignalConfig::default()) {
            Err(Unused::NoGain(Holdout {
                n,
                auc_before,
                auc_after,
                ..
            })) => {
                assert_eq!(n, 180);
                assert!(auc_after < auc_before + 0.01, "{auc_before} {auc_after}");
            }
            other => panic!("expected NoGain, got {other:?}"),
        }
    }

    #[test]
    fn too_few_predictions_or_outcomes_are_refused() {
        let data = rows(150, 1.2, 3);
        assert!(matches!(
            fit(&data, &SignalConfig::default()),
            Err(Unused::TooFew { samples: 150, .. })
        ));
        let mut all_safe = rows(400, 1.2, 3);
        for r in &mut all_safe {
            r.risky = false;
        }
        all_safe[0].risky = true;
        let e = fit(&all_safe, &SignalConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "400 labelled predictions (1 risky) so far; it needs 200 with 20 of each outcome"
        );
        // Enough in all, but every risky one is old: the newest 30% cannot be compared.
        let mut old_risky = rows(400, 1.2, 5);
        for (i, r) in old_risky.iter_mut().enumerate() {
            r.risky = i < 40;
        }
        assert_eq!(
            fit(&old_risky, &SignalConfig::default()),
            Err(Unused::ThinHoldout(120))
        );
    }

    #[test]
    fn rows_are_split_by_time_not_by_input_order() {
        let data = rows(600, 1.2, 7);
        let mut shuffled = data.clone();
        shuffled.reverse();
        assert_eq!(
            fit(&data, &SignalConfig::default()),
            fit(&shuffled, &SignalConfig::default())
        );
    }
}
