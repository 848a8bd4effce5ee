//! The features a change is scored on: Kamei et al.'s 14 change metrics plus diff hints.
//!
//! Every public just-in-time defect dataset uses the 14 metrics, so a model trained on public
//! data (the prior) and a model trained on the repository's own git history share them. The diff
//! hints are computed by Omen from the real diff and only enter models trained on the
//! repository's own history.

/// One input of the risk model. The order of [`Feature::ALL`] is the order of stored vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// NS: subsystems (top-level directories) touched.
    Ns,
    /// ND: directories touched.
    Nd,
    /// NF: files touched.
    Nf,
    /// Entropy (base 2) of the changed lines across files.
    Entropy,
    /// LA: lines added.
    La,
    /// LD: lines deleted.
    Ld,
    /// LT: lines in the touched files before the change.
    Lt,
    /// FIX: the change says it fixes a bug (1) or not (0).
    Fix,
    /// NDEV: distinct developers who changed these files before.
    Ndev,
    /// AGE: mean days since the touched files' previous change.
    Age,
    /// NUC: unique earlier changes to these files.
    Nuc,
    /// EXP: the author's earlier changes.
    Exp,
    /// REXP: the author's earlier changes weighted by recency (1 / (years ago + 1)).
    Rexp,
    /// SEXP: the author's earlier changes in the subsystems touched.
    Sexp,
    /// Lines added that contain TODO, FIXME, XXX or HACK.
    TodoAdded,
    /// Lines added longer than 120 characters.
    LongLinesAdded,
    /// Dependency manifests or lockfiles touched (1/0).
    DepsTouched,
    /// CI or build configuration touched (1/0).
    CiTouched,
    /// Source files changed while no test file was touched (1/0).
    CodeWithoutTests,
    /// Derived: lines added per line of the touched files (`la / lt`, Kamei's normalisation).
    LaPerLt,
    /// Derived: lines deleted per line of the touched files (`ld / lt`).
    LdPerLt,
    /// Derived: lines per touched file (`lt / nf`).
    LtPerNf,
    /// Derived: earlier changes per touched file (`nuc / nf`).
    NucPerNf,
}

impl Feature {
    /// Every feature, in storage order.
    pub const ALL: [Feature; 23] = [
        Feature::Ns,
        Feature::Nd,
        Feature::Nf,
        Feature::Entropy,
        Feature::La,
        Feature::Ld,
        Feature::Lt,
        Feature::Fix,
        Feature::Ndev,
        Feature::Age,
        Feature::Nuc,
        Feature::Exp,
        Feature::Rexp,
        Feature::Sexp,
        Feature::TodoAdded,
        Feature::LongLinesAdded,
        Feature::DepsTouched,
        Feature::CiTouched,
        Feature::CodeWithoutTests,
        Feature::LaPerLt,
        Feature::LdPerLt,
        Feature::LtPerNf,
        Feature::NucPerNf,
    ];

    /// What public datasets allow: the 14 metrics and the ratios derived from them. The
    /// default feature set of models trained without diff hints.
    pub const PUBLIC: [Feature; 18] = [
        Feature::Ns,
        Feature::Nd,
        Feature::Nf,
        Feature::Entropy,
        Feature::La,
        Feature::Ld,
        Feature::Lt,
        Feature::Fix,
        Feature::Ndev,
        Feature::Age,
        Feature::Nuc,
        Feature::Exp,
        Feature::Rexp,
        Feature::Sexp,
        Feature::LaPerLt,
        Feature::LdPerLt,
        Feature::LtPerNf,
        Feature::NucPerNf,
    ];

    /// The 14 metrics of Kamei et al. 2013, which public datasets carry.
    pub const KAMEI: [Feature; 14] = [
        Feature::Ns,
        Feature::Nd,
        Feature::Nf,
        Feature::Entropy,
        Feature::La,
        Feature::Ld,
        Feature::Lt,
        Feature::Fix,
        Feature::Ndev,
        Feature::Age,
        Feature::Nuc,
        Feature::Exp,
        Feature::Rexp,
        Feature::Sexp,
    ];

    /// Index in [`Feature::ALL`] and in a [`FeatureVector`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The short name used in stored models, JSON and datasets.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Ns => "ns",
            Feature::Nd => "nd",
            Feature::Nf => "nf",
            Feature::Entropy => "entropy",
            Feature::La => "la",
            Feature::Ld => "ld",
            Feature::Lt => "lt",
            Feature::Fix => "fix",
            Feature::Ndev => "ndev",
            Feature::Age => "age",
            Feature::Nuc => "nuc",
            Feature::Exp => "exp",
            Feature::Rexp => "rexp",
            Feature::Sexp => "sexp",
            Feature::TodoAdded => "todo_added",
            Feature::LongLinesAdded => "long_lines_added",
            Feature::DepsTouched => "deps_touched",
            Feature::CiTouched => "ci_touched",
            Feature::CodeWithoutTests => "code_without_tests",
            Feature::LaPerLt => "la_per_lt",
            Feature::LdPerLt => "ld_per_lt",
            Feature::LtPerNf => "lt_per_nf",
            Feature::NucPerNf => "nuc_per_nf",
        }
    }

    /// The feature with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The raw value of this feature for a change (derived features are computed here).
    pub fn raw(self, v: &FeatureVector) -> f64 {
        let ratio = |a: Feature, b: Feature| v.get(a).max(0.0) / v.get(b).max(1.0);
        match self {
            Feature::LaPerLt => ratio(Feature::La, Feature::Lt),
            Feature::LdPerLt => ratio(Feature::Ld, Feature::Lt),
            Feature::LtPerNf => ratio(Feature::Lt, Feature::Nf),
            Feature::NucPerNf => ratio(Feature::Nuc, Feature::Nf),
            f => v.get(f),
        }
    }

    /// The model input for a change: [`Feature::raw`] then [`Feature::transform`].
    pub fn input(self, v: &FeatureVector) -> f64 {
        self.transform(self.raw(v))
    }

    /// The value the model sees: counts are heavy-tailed, so they enter as `ln(1 + x)`;
    /// entropy and flags enter as they are. Negative inputs (never valid) are clamped to 0.
    pub fn transform(self, raw: f64) -> f64 {
        let raw = if raw.is_finite() { raw.max(0.0) } else { 0.0 };
        match self {
            Feature::Entropy
            | Feature::Fix
            | Feature::DepsTouched
            | Feature::CiTouched
            | Feature::CodeWithoutTests => raw,
            _ => raw.ln_1p(),
        }
    }
}

/// Raw feature values of one change, indexed by [`Feature::index`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FeatureVector(pub [f64; Feature::ALL.len()]);

impl FeatureVector {
    /// The raw value of `f`.
    pub fn get(&self, f: Feature) -> f64 {
        self.0[f.index()]
    }

    /// Set the raw value of `f`.
    pub fn set(&mut self, f: Feature, v: f64) {
        self.0[f.index()] = v;
    }

    /// Churn (`la + ld`): the review effort effort-aware metrics charge for a change.
    pub fn effort(&self) -> f64 {
        self.get(Feature::La) + self.get(Feature::Ld)
    }
}

/// The diff hints counted over a change's added lines: TODO-style markers and long lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffHints {
    /// Added lines containing TODO, FIXME, XXX or HACK.
    pub todo: u32,
    /// Added lines longer than [`DiffHints::LONG_LINE`] characters.
    pub long: u32,
}

impl DiffHints {
    /// Characters beyond which an added line counts as long.
    pub const LONG_LINE: usize = 120;
    /// Markers of unfinished work.
    pub const MARKERS: [&'static str; 4] = ["TODO", "FIXME", "XXX", "HACK"];

    /// Count one added line (without its leading `+`).
    pub fn add_line(&mut self, line: &str) {
        if Self::MARKERS.iter().any(|k| line.contains(k)) {
            self.todo += 1;
        }
        if line.chars().count() > Self::LONG_LINE {
            self.long += 1;
        }
    }

    /// Write the counts into `v`.
    pub fn apply(&self, v: &mut FeatureVector) {
        v.set(Feature::TodoAdded, f64::from(self.todo));
        v.set(Feature::LongLinesAdded, f64::from(self.long));
    }
}

/// One change with a known outcome, as training and evaluation see it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledChange {
    /// Commit id.
    pub id: String,
    /// Commit time, unix seconds.
    pub time: i64,
    /// Raw feature values.
    pub features: FeatureVector,
    /// The change later turned out to be risky (bug-inducing, reverted or a failed deploy).
    pub risky: bool,
}
