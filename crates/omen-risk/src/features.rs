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
    /// NDEV typical of the repository lately: its median over the previous
    /// [`typical::WINDOW`](crate::typical::WINDOW) changes. Context for NDEV, not an input.
    NdevTypical,
    /// EXP typical of the repository lately, as [`Feature::NdevTypical`].
    ExpTypical,
    /// Derived: NDEV relative to what is typical lately, `(1 + ndev) / (1 + ndev_typical)`.
    NdevVsTypical,
    /// Derived: EXP relative to what is typical lately, `(1 + exp) / (1 + exp_typical)`.
    ExpVsTypical,
}

impl Feature {
    /// Every feature, in storage order.
    pub const ALL: [Feature; 27] = [
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
        Feature::NdevTypical,
        Feature::ExpTypical,
        Feature::NdevVsTypical,
        Feature::ExpVsTypical,
    ];

    /// What public datasets allow: the 14 metrics and the ratios derived from them, with NDEV
    /// and EXP relative to what is typical lately ([`crate::typical`]). The default feature set
    /// of models trained without diff hints.
    pub const PUBLIC: [Feature; 18] = [
        Feature::Ns,
        Feature::Nd,
        Feature::Nf,
        Feature::Entropy,
        Feature::La,
        Feature::Ld,
        Feature::Lt,
        Feature::Fix,
        Feature::NdevVsTypical,
        Feature::Age,
        Feature::Nuc,
        Feature::ExpVsTypical,
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
            Feature::NdevTypical => "ndev_typical",
            Feature::ExpTypical => "exp_typical",
            Feature::NdevVsTypical => "ndev_vs_typical",
            Feature::ExpVsTypical => "exp_vs_typical",
        }
    }

    /// The feature with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// For a derived feature, the (numerator, denominator) it is computed from.
    pub fn ratio_of(self) -> Option<(Feature, Feature)> {
        match self {
            Feature::LaPerLt => Some((Feature::La, Feature::Lt)),
            Feature::LdPerLt => Some((Feature::Ld, Feature::Lt)),
            Feature::LtPerNf => Some((Feature::Lt, Feature::Nf)),
            Feature::NucPerNf => Some((Feature::Nuc, Feature::Nf)),
            Feature::NdevVsTypical => Some((Feature::Ndev, Feature::NdevTypical)),
            Feature::ExpVsTypical => Some((Feature::Exp, Feature::ExpTypical)),
            _ => None,
        }
    }

    /// Is this a count relative to what is typical lately (`(1 + x) / (1 + typical)`)?
    fn is_relative(self) -> bool {
        matches!(self, Feature::NdevVsTypical | Feature::ExpVsTypical)
    }

    /// Does this feature read `other` (itself, or as part of a ratio)?
    pub fn reads(self, other: Feature) -> bool {
        self == other
            || self
                .ratio_of()
                .is_some_and(|(a, b)| a == other || b == other)
    }

    /// The raw value of this feature for a change (derived features are computed here).
    pub fn raw(self, v: &FeatureVector) -> f64 {
        match self.ratio_of() {
            Some((a, b)) if self.is_relative() => {
                (1.0 + v.get(a).max(0.0)) / (1.0 + v.get(b).max(0.0))
            }
            Some((a, b)) => v.get(a).max(0.0) / v.get(b).max(1.0),
            None => v.get(self),
        }
    }

    /// The model input for a change: [`Feature::raw`] then [`Feature::transform`].
    pub fn input(self, v: &FeatureVector) -> f64 {
        self.transform(self.raw(v))
    }

    /// The value the model sees: counts are heavy-tailed, so they enter as `ln(1 + x)`;
    /// entropy and flags enter as they are; a count relative to what is typical enters as the
    /// log of the ratio (0 when typical). Negative inputs (never valid) are clamped to 0.
    pub fn transform(self, raw: f64) -> f64 {
        if self.is_relative() {
            return if raw.is_finite() && raw > 0.0 {
                raw.ln()
            } else {
                0.0
            };
        }
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
    /// Added lines that define a function (Rust, Python, JavaScript/TypeScript, Go, Ruby,
    /// shell); a review hint only, not a model feature.
    pub functions: u32,
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
        if defines_function(line) {
            self.functions += 1;
        }
    }

    /// Write the counts into `v`.
    pub fn apply(&self, v: &mut FeatureVector) {
        v.set(Feature::TodoAdded, f64::from(self.todo));
        v.set(Feature::LongLinesAdded, f64::from(self.long));
    }
}

/// Does this source line start a function definition? Keyword-based, so it errs towards
/// missing definitions rather than inventing them.
fn defines_function(line: &str) -> bool {
    let mut t = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "export default ",
        "export ",
        "async ",
        "const ",
        "unsafe ",
        "static ",
    ] {
        t = t.strip_prefix(prefix).unwrap_or(t);
    }
    t = t.strip_prefix("async ").unwrap_or(t);
    let named = |rest: &str| {
        rest.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '(')
    };
    ["fn ", "def ", "function ", "func "]
        .iter()
        .any(|k| t.strip_prefix(k).is_some_and(named))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_their_parts_and_nothing_else() {
        assert!(Feature::LaPerLt.reads(Feature::Lt));
        assert!(Feature::LtPerNf.reads(Feature::Lt));
        assert!(Feature::Lt.reads(Feature::Lt));
        assert!(!Feature::La.reads(Feature::Lt));
        assert!(!Feature::NucPerNf.reads(Feature::Lt));
        let mut v = FeatureVector::default();
        v.set(Feature::La, 30.0);
        v.set(Feature::Lt, 0.0);
        // A zero denominator divides by 1, never by 0.
        assert_eq!(Feature::LaPerLt.raw(&v), 30.0);
        v.set(Feature::Lt, 60.0);
        assert_eq!(Feature::LaPerLt.raw(&v), 0.5);
    }

    #[test]
    fn function_definitions_are_recognised_across_languages() {
        for yes in [
            "pub fn parse(x: &str) -> u32 {",
            "    pub(crate) async fn load() {",
            "def handler(event):",
            "    async def fetch(self):",
            "export function render(props) {",
            "export default async function main() {",
            "func (s *Server) Start() error {",
            "function build() {",
            "def self.create(attrs)",
        ] {
            assert!(defines_function(yes), "{yes}");
        }
        for no in [
            "// define the function later",
            "let f = define(x);",
            "x.fn = 1",
            "default_function = None",
            "    return fn_table[i]",
        ] {
            assert!(!defines_function(no), "{no}");
        }
    }

    #[test]
    fn diff_hints_count_markers_and_long_lines() {
        let mut h = DiffHints::default();
        h.add_line("x = 1  # TODO: later");
        h.add_line("// FIXME");
        h.add_line(&"y".repeat(121));
        h.add_line(&"z".repeat(120));
        h.add_line("todo in lower case is prose");
        assert_eq!(
            h,
            DiffHints {
                todo: 2,
                long: 1,
                functions: 0
            }
        );
        let mut v = FeatureVector::default();
        h.apply(&mut v);
        assert_eq!(
            (v.get(Feature::TodoAdded), v.get(Feature::LongLinesAdded)),
            (2.0, 1.0)
        );
    }
}
