//! Turning a model's probability into what a reviewer reads: level, percentile, which model
//! answered, and the factors behind the score in plain words.

use crate::features::{Feature, FeatureVector};
use crate::model::{Logistic, ModelKind, Platt, RiskModel};

/// Which model of the fallback chain answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Trained on this repository's own labelled changes and validated on its newest ones.
    Repository,
    /// Trained on public data (OpenStack and Qt, ISSTA'21 datasets), shipped with Omen.
    Prior,
    /// Fixed, hand-set weights: used when no model can be trusted.
    Heuristic,
}

impl Source {
    /// Name in output.
    pub fn name(self) -> &'static str {
        match self {
            Source::Repository => "repository",
            Source::Prior => "prior",
            Source::Heuristic => "heuristic",
        }
    }
}

pub use omen_core::risk_level::RiskLevel;

/// Probability thresholds of the levels. Levels are read off the *calibrated* probability, so
/// "HIGH" means "at least half of such changes turned out risky", a statement that holds across
/// repositories; the percentile is shown beside it for the repository-relative view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    /// MEDIUM from here (default 0.2).
    pub medium: f64,
    /// HIGH from here (default 0.5).
    pub high: f64,
    /// CRITICAL from here (default 0.8).
    pub critical: f64,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            medium: 0.2,
            high: 0.5,
            critical: 0.8,
        }
    }
}

impl Levels {
    /// The level of probability `p`.
    pub fn of(&self, p: f64) -> RiskLevel {
        if p >= self.critical {
            RiskLevel::Critical
        } else if p >= self.high {
            RiskLevel::High
        } else if p >= self.medium {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }
}

/// One reason behind a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// The feature, or for a fact several inputs measure, the one that names it (see
    /// [`topic`]).
    pub feature: Feature,
    /// How much the probability moves because of this value, compared with a typical change
    /// (every input of the fact at its training mean); positive raises risk.
    pub effect: f64,
    /// Plain words, e.g. "touches 14 files in 5 directories".
    pub text: String,
}

impl Factor {
    /// `+ text` or `− text`.
    pub fn line(&self) -> String {
        format!(
            "{} {}",
            if self.effect >= 0.0 { "+" } else { "−" },
            self.text
        )
    }
}

/// The full answer for one change.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Calibrated probability that the change is risky.
    pub probability: f64,
    /// Percentile among the changes the model learned from (0–100).
    pub percentile: f64,
    /// The level.
    pub level: RiskLevel,
    /// Which model answered.
    pub source: Source,
    /// Its scorer.
    pub kind: ModelKind,
    /// Strongest factors first (at most `max_factors`).
    pub factors: Vec<Factor>,
}

/// Smallest change of probability worth naming as a factor.
pub const MIN_EFFECT: f64 = 0.005;

/// The fact a reviewer reads `f` as, named by its lead feature. A ratio or a second measure of
/// the same thing is explained with its lead: NUC and NUC/NF are one fact ("these files were
/// changed 19 times before, 9.5 times each"), so it is never listed twice, once raising the risk
/// and once lowering it, as correlated inputs with opposite weights would otherwise be.
pub fn topic(f: Feature) -> Feature {
    match f {
        Feature::Nd => Feature::Nf,
        Feature::LaPerLt => Feature::La,
        Feature::LdPerLt => Feature::Ld,
        Feature::LtPerNf => Feature::Lt,
        Feature::NucPerNf => Feature::Nuc,
        Feature::Rexp | Feature::ExpTypical | Feature::ExpVsTypical => Feature::Exp,
        Feature::NdevTypical | Feature::NdevVsTypical => Feature::Ndev,
        f => f,
    }
}

/// Score `raw` with `model`, explain it with its `max_factors` strongest factors.
///
/// A factor's effect is measured by occlusion: the probability minus the probability with the
/// inputs of one fact ([`topic`]) set to their training means. This works the same for every
/// scorer (logistic, forest, blend), and its sign says which way the value pushes.
pub fn assess(
    model: &RiskModel,
    source: Source,
    raw: &FeatureVector,
    levels: &Levels,
    max_factors: usize,
) -> Assessment {
    let z = model.inputs(raw);
    let p = model.probability_of_inputs(&z);
    let mut topics: Vec<Feature> = Vec::new();
    for f in &model.features {
        if !topics.contains(&topic(*f)) {
            topics.push(topic(*f));
        }
    }
    let mut factors: Vec<Factor> = Vec::new();
    for t in topics {
        let mut zi = z.clone();
        for (i, f) in model.features.iter().enumerate() {
            if topic(*f) == t {
                zi[i] = 0.0;
            }
        }
        let effect = p - model.probability_of_inputs(&zi);
        if effect.abs() >= MIN_EFFECT {
            factors.push(Factor {
                feature: t,
                effect,
                text: describe(t, raw),
            });
        }
    }
    factors.sort_by(|a, b| b.effect.abs().total_cmp(&a.effect.abs()));
    factors.truncate(max_factors);
    Assessment {
        probability: p,
        percentile: model.percentile(p),
        level: levels.of(p),
        source,
        kind: model.kind,
        factors,
    }
}

/// Plain words for a feature's value.
pub fn describe(f: Feature, v: &FeatureVector) -> String {
    let n = |f: Feature| v.get(f).round() as i64;
    let s = |x: i64| if x == 1 { "" } else { "s" };
    match f {
        Feature::Ns => format!("touches {} subsystem{}", n(f), s(n(f))),
        Feature::Nd | Feature::Nf => format!(
            "touches {} file{} in {} director{}",
            n(Feature::Nf),
            s(n(Feature::Nf)),
            n(Feature::Nd),
            if n(Feature::Nd) == 1 { "y" } else { "ies" }
        ),
        Feature::Entropy => format!(
            "spreads its changes across files (entropy {:.2} bits)",
            v.get(f)
        ),
        Feature::La if v.get(Feature::Lt) >= 1.0 => format!(
            "adds {} line{} ({} of the touched files' size)",
            n(f),
            s(n(f)),
            percent(Feature::LaPerLt.raw(v))
        ),
        Feature::La => format!("adds {} line{}", n(f), s(n(f))),
        Feature::Ld if v.get(Feature::Lt) >= 1.0 => format!(
            "deletes {} line{} ({} of the touched files' lines)",
            n(f),
            s(n(f)),
            percent(Feature::LdPerLt.raw(v))
        ),
        Feature::Ld => format!("deletes {} line{}", n(f), s(n(f))),
        Feature::Lt if n(Feature::Nf) > 1 => format!(
            "the touched files had {} lines before ({:.0} per file)",
            n(f),
            Feature::LtPerNf.raw(v)
        ),
        Feature::Lt => format!("the touched files had {} lines before", n(f)),
        Feature::Fix => {
            if v.get(f) > 0.0 {
                "is a bug fix".into()
            } else {
                "is not a bug fix".into()
            }
        }
        Feature::Ndev | Feature::NdevVsTypical => format!(
            "{} developer{} changed these files before{}",
            n(Feature::Ndev),
            s(n(Feature::Ndev)),
            lately(v, Feature::NdevTypical)
        ),
        Feature::NdevTypical => format!(
            "changes lately touched files with {:.0} earlier developers (median)",
            v.get(f)
        ),
        Feature::Age => format!("the files last changed {:.0} days ago on average", v.get(f)),
        Feature::Nuc if n(Feature::Nf) > 1 => format!(
            "these files were changed {} time{} before ({:.1} per file)",
            n(f),
            s(n(f)),
            Feature::NucPerNf.raw(v)
        ),
        Feature::Nuc => format!("these files were changed {} time{} before", n(f), s(n(f))),
        Feature::Exp | Feature::ExpVsTypical => format!(
            "the author has made {} earlier change{}{}",
            n(Feature::Exp),
            s(n(Feature::Exp)),
            lately(v, Feature::ExpTypical)
        ),
        Feature::ExpTypical => format!(
            "authors of changes lately had made {:.0} earlier changes (median)",
            v.get(f)
        ),
        Feature::Rexp => format!(
            "the author's recent experience is {:.1} (changes weighted by recency)",
            v.get(f)
        ),
        Feature::Sexp => format!(
            "the author has changed these subsystems {} time{}",
            n(f),
            s(n(f))
        ),
        Feature::TodoAdded => format!("adds {} TODO/FIXME line{}", n(f), s(n(f))),
        Feature::LongLinesAdded => format!("adds {} line{} over 120 characters", n(f), s(n(f))),
        Feature::DepsTouched => {
            if v.get(f) > 0.0 {
                "changes dependency manifests or lockfiles".into()
            } else {
                "leaves dependencies alone".into()
            }
        }
        Feature::CiTouched => {
            if v.get(f) > 0.0 {
                "changes CI or build configuration".into()
            } else {
                "leaves CI configuration alone".into()
            }
        }
        Feature::CodeWithoutTests => {
            if v.get(f) > 0.0 {
                "changes source files without touching a test".into()
            } else {
                "touches tests along with the code".into()
            }
        }
        Feature::LaPerLt => format!(
            "adds {:.1}% relative to the touched files' size",
            100.0 * f.raw(v)
        ),
        Feature::LdPerLt => format!(
            "deletes {:.1}% of the touched files' lines",
            100.0 * f.raw(v)
        ),
        Feature::LtPerNf => format!("the touched files average {:.0} lines", f.raw(v)),
        Feature::NucPerNf => format!(
            "each touched file was changed {:.1} times before on average",
            f.raw(v)
        ),
    }
}

/// What is typical lately for a count, in words (nothing before the repository has a past).
fn lately(v: &FeatureVector, typical: Feature) -> String {
    let t = v.get(typical);
    if t >= 1.0 {
        format!(" (typical lately: {t:.0})")
    } else {
        String::new()
    }
}

/// A share as a percentage: one decimal below 10%, none above.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// The last link of the fallback chain: fixed weights on standardised-by-hand inputs, chosen to
/// rank like the published findings (size, spread and fix-ness raise risk; experience lowers
/// it), never fitted to any data. Its probabilities are rough, which the output says.
pub fn heuristic_model() -> RiskModel {
    // (feature, typical ln(1+x), spread, weight)
    let spec: [(Feature, f64, f64, f64); 9] = [
        (Feature::La, 3.0, 1.8, 0.6),
        (Feature::Nf, 1.0, 0.7, 0.3),
        (Feature::Entropy, 0.5, 0.8, 0.2),
        (Feature::Fix, 0.3, 0.45, 0.2),
        (Feature::Exp, 4.0, 2.0, -0.3),
        (Feature::Ndev, 1.5, 1.0, 0.1),
        (Feature::DepsTouched, 0.05, 0.2, 0.15),
        (Feature::CiTouched, 0.05, 0.2, 0.1),
        (Feature::CodeWithoutTests, 0.5, 0.5, 0.15),
    ];
    RiskModel {
        kind: ModelKind::Logistic,
        features: spec.iter().map(|s| s.0).collect(),
        mean: spec.iter().map(|s| s.1).collect(),
        scale: spec.iter().map(|s| s.2).collect(),
        logistic: Some((
            Logistic::linear(spec.iter().map(|s| s.3).collect(), -1.4),
            Platt::IDENTITY,
        )),
        forest: None,
        trained_at: 0,
        samples: 0,
        positives: 0,
        validation: Default::default(),
        threshold: 0.5,
        // σ(-1.4 ± …): spread of the heuristic over typical inputs, for a rough percentile.
        quantiles: (0..=100)
            .map(|q| crate::model::sigmoid(-1.4 + (f64::from(q) - 50.0) / 25.0))
            .collect(),
    }
}

/// A factor of the model or of the second stage, ranked with the others by size.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// Change of probability it explains.
    pub effect: f64,
    /// `+ words` or `− words`.
    pub line: String,
    /// The signal, for a second-stage factor.
    pub signal: Option<crate::signals::Signal>,
}

impl From<&Factor> for Ranked {
    fn from(f: &Factor) -> Ranked {
        Ranked {
            effect: f.effect,
            line: f.line(),
            signal: None,
        }
    }
}

/// What the report shows: the `max` largest factors of model and signals together, and the
/// signal lines not already shown as a factor (with its direction, a signal is not listed twice).
pub fn rank(
    mut factors: Vec<Ranked>,
    signal_lines: Vec<(crate::signals::Signal, String)>,
    max: usize,
) -> (Vec<String>, Vec<String>) {
    factors.sort_by(|x, y| y.effect.abs().total_cmp(&x.effect.abs()));
    factors.truncate(max);
    let lines = signal_lines
        .into_iter()
        .filter(|(s, _)| !factors.iter().any(|f| f.signal == Some(*s)))
        .map(|(_, line)| line)
        .collect();
    (factors.into_iter().map(|f| f.line).collect(), lines)
}

#[cfg(test)]
mod tests {
    #[test]
    fn factors_rank_by_size_and_a_signal_shown_as_one_is_not_listed_again() {
        use crate::signals::Signal;
        let f = |effect: f64, line: &str, signal| Ranked {
            effect,
            line: line.to_owned(),
            signal,
        };
        let (factors, signals) = rank(
            vec![
                f(0.02, "+ small", None),
                f(-0.30, "− big", None),
                f(0.10, "+ 3 authors", Some(Signal::Authors)),
                f(0.05, "+ mid", None),
            ],
            vec![
                (Signal::Authors, "3 authors in this change".to_owned()),
                (Signal::ReviewHours, "pull request open for 5 h".to_owned()),
            ],
            3,
        );
        assert_eq!(factors, ["− big", "+ 3 authors", "+ mid"]);
        assert_eq!(signals, ["pull request open for 5 h"]);
        let (factors, signals) = rank(
            vec![
                f(0.2, "+ a", None),
                f(0.1, "+ 3 authors", Some(Signal::Authors)),
            ],
            vec![(Signal::Authors, "3 authors in this change".to_owned())],
            1,
        );
        assert_eq!(factors, ["+ a"]);
        assert_eq!(
            signals,
            ["3 authors in this change"],
            "cut from the factors, so listed"
        );
    }

    use super::*;

    #[test]
    fn levels_and_factor_lines() {
        let l = Levels::default();
        assert_eq!(l.of(0.1), RiskLevel::Low);
        assert_eq!(l.of(0.2), RiskLevel::Medium);
        assert_eq!(l.of(0.79), RiskLevel::High);
        assert_eq!(l.of(0.8), RiskLevel::Critical);
        let mut v = FeatureVector::default();
        v.set(Feature::Nf, 14.0);
        v.set(Feature::Nd, 5.0);
        assert_eq!(
            describe(Feature::Nf, &v),
            "touches 14 files in 5 directories"
        );
        let f = Factor {
            feature: Feature::Exp,
            effect: -0.1,
            text: "the author has made 120 earlier changes".into(),
        };
        assert_eq!(f.line(), "− the author has made 120 earlier changes");
    }

    /// Correlated inputs of one fact, here with opposite weights, make one factor: their joint
    /// effect, worded once. Alone, NUC would read "−" and NUC/NF "+" for the same files.
    #[test]
    fn inputs_of_one_fact_make_one_factor() {
        let features = vec![Feature::Nuc, Feature::NucPerNf, Feature::Nf, Feature::Nd];
        let model = RiskModel {
            features: features.clone(),
            mean: vec![1.0; 4],
            scale: vec![1.0; 4],
            logistic: Some((
                Logistic::linear(vec![-1.0, 1.6, 0.8, -0.5], -1.0),
                Platt::IDENTITY,
            )),
            ..heuristic_model()
        };
        let mut v = FeatureVector::default();
        v.set(Feature::Nuc, 19.0);
        v.set(Feature::Nf, 2.0);
        v.set(Feature::Nd, 1.0);
        let a = assess(&model, Source::Prior, &v, &Levels::default(), 5);
        let lines: Vec<String> = a.factors.iter().map(Factor::line).collect();
        assert_eq!(a.factors.len(), 2, "{lines:?}");
        let z = model.inputs(&v);
        let without = |idx: &[usize]| {
            let mut zi = z.clone();
            for &i in idx {
                zi[i] = 0.0;
            }
            a.probability - model.probability_of_inputs(&zi)
        };
        let nuc = a
            .factors
            .iter()
            .find(|f| f.feature == Feature::Nuc)
            .unwrap();
        assert!((nuc.effect - without(&[0, 1])).abs() < 1e-12);
        assert_eq!(
            nuc.text,
            "these files were changed 19 times before (9.5 per file)"
        );
        let files = a.factors.iter().find(|f| f.feature == Feature::Nf).unwrap();
        assert!((files.effect - without(&[2, 3])).abs() < 1e-12);
        assert_eq!(files.text, "touches 2 files in 1 directory");
    }

    #[test]
    fn size_facts_carry_their_ratios() {
        let mut v = FeatureVector::default();
        v.set(Feature::La, 40.0);
        v.set(Feature::Ld, 3.0);
        v.set(Feature::Lt, 800.0);
        v.set(Feature::Nf, 4.0);
        assert_eq!(
            describe(Feature::La, &v),
            "adds 40 lines (5.0% of the touched files' size)"
        );
        assert_eq!(
            describe(Feature::Ld, &v),
            "deletes 3 lines (0.4% of the touched files' lines)"
        );
        assert_eq!(
            describe(Feature::Lt, &v),
            "the touched files had 800 lines before (200 per file)"
        );
        // New files: no size to compare with.
        v.set(Feature::Lt, 0.0);
        assert_eq!(describe(Feature::La, &v), "adds 40 lines");
    }

    #[test]
    fn heuristic_ranks_big_changes_by_newcomers_higher_and_explains_why() {
        let m = heuristic_model();
        let mut small = FeatureVector::default();
        small.set(Feature::La, 5.0);
        small.set(Feature::Nf, 1.0);
        small.set(Feature::Exp, 300.0);
        let mut big = FeatureVector::default();
        big.set(Feature::La, 2000.0);
        big.set(Feature::Nf, 40.0);
        big.set(Feature::Nd, 9.0);
        big.set(Feature::Entropy, 4.0);
        let a = assess(&m, Source::Heuristic, &small, &Levels::default(), 3);
        let b = assess(&m, Source::Heuristic, &big, &Levels::default(), 3);
        assert!(
            b.probability > a.probability + 0.3,
            "{} vs {}",
            b.probability,
            a.probability
        );
        assert!(b.level > a.level);
        assert_eq!(b.factors[0].line(), "+ adds 2000 lines");
        assert!(
            a.factors
                .iter()
                .any(|f| f.line() == "− the author has made 300 earlier changes"),
            "{:?}",
            a.factors
        );
    }
}
