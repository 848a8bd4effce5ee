//! Omen's risk model: what a fitted model is, how it scores, and its own stored format.
//!
//! Training (in [`crate::train`]) uses smartcore; what is kept is plain numbers: logistic
//! weights, tree splits and leaf values, calibration parameters. They are written in the
//! versioned binary format below, never in smartcore's serialized form (which does not load
//! across smartcore versions).

use crate::features::{Feature, FeatureVector};
use omen_core::codec::put_f64;

/// Which fitted scorer a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Logistic regression on standardised, log-transformed features.
    Logistic,
    /// A forest of decision trees (bagged, random feature subsets), averaged leaf rates.
    Forest,
    /// The mean of the calibrated logistic and forest probabilities.
    Blend,
}

impl ModelKind {
    /// Name used in output and storage.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Logistic => "logistic",
            ModelKind::Forest => "forest",
            ModelKind::Blend => "logistic+forest",
        }
    }
}

/// Logistic regression on standardised inputs `z`, each input entering as a piecewise-linear
/// function: `σ(b + Σ_j [w_j·z_j + Σ_k h_jk·max(0, z_j − t_jk)])`. With no knots it is the plain
/// linear model `σ(w·z + b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// One weight per model feature, then one per knot (features in order, knots in order).
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// Per model feature, the knots `t_jk` (in standardised units) where its slope may change.
    /// Empty (or all empty) for a linear model.
    pub knots: Vec<Vec<f64>>,
}

impl Logistic {
    /// A linear model (no knots).
    pub fn linear(weights: Vec<f64>, intercept: f64) -> Logistic {
        Logistic {
            weights,
            intercept,
            knots: Vec::new(),
        }
    }

    /// The linear predictor (the argument of `σ`).
    pub fn margin(&self, z: &[f64]) -> f64 {
        let p = z.len().min(self.weights.len());
        let mut m = self.intercept
            + self.weights[..p]
                .iter()
                .zip(z)
                .map(|(w, x)| w * x)
                .sum::<f64>();
        let mut k = p;
        for (x, knots) in z.iter().zip(&self.knots) {
            for t in knots {
                m += self.weights.get(k).copied().unwrap_or(0.0) * (x - t).max(0.0);
                k += 1;
            }
        }
        m
    }

    /// `z` followed by every hinge `max(0, z_j − t_jk)`: the row the weights multiply.
    pub fn expand(knots: &[Vec<f64>], z: &[f64]) -> Vec<f64> {
        let mut row = z.to_vec();
        for (x, ts) in z.iter().zip(knots) {
            row.extend(ts.iter().map(|t| (x - t).max(0.0)));
        }
        row
    }
}

/// One node of a stored tree. A leaf has `feature == LEAF`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeNode {
    /// Index into the model's features, or [`TreeNode::LEAF`].
    pub feature: u16,
    /// Go to `left` when `z[feature] <= threshold`, else `right`.
    pub threshold: f64,
    /// Child for `<=`.
    pub left: u32,
    /// Child for `>`.
    pub right: u32,
    /// For a leaf: the share of risky training changes that reached it.
    pub value: f64,
}

impl TreeNode {
    /// Marks a leaf.
    pub const LEAF: u16 = u16::MAX;
}

/// One decision tree, root at index 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// The nodes; children always point forward.
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    /// The leaf value `z` lands in.
    pub fn leaf_value(&self, z: &[f64]) -> f64 {
        self.leaf(z).map_or(0.0, |n| self.nodes[n].value)
    }

    /// Index of the leaf `z` lands in (`None` only for a malformed tree).
    pub fn leaf(&self, z: &[f64]) -> Option<usize> {
        let mut i = 0usize;
        for _ in 0..=self.nodes.len() {
            let node = self.nodes.get(i)?;
            if node.feature == TreeNode::LEAF {
                return Some(i);
            }
            let x = z.get(usize::from(node.feature)).copied().unwrap_or(0.0);
            i = if x <= node.threshold {
                node.left
            } else {
                node.right
            } as usize;
        }
        None
    }
}

/// Platt scaling: `p = σ(a·s + b)` maps a raw score to a calibrated probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Platt {
    /// Slope.
    pub a: f64,
    /// Offset.
    pub b: f64,
}

impl Platt {
    /// The identity on margins (`σ(s)`).
    pub const IDENTITY: Platt = Platt { a: 1.0, b: 0.0 };

    /// Calibrated probability of raw score `s`.
    pub fn apply(&self, s: f64) -> f64 {
        sigmoid(self.a * s + self.b)
    }
}

/// Validation figures recorded with a model (time-ordered hold-out, newest changes).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Validation {
    /// Area under the ROC curve on the hold-out.
    pub auc: f64,
    /// Brier score on the hold-out.
    pub brier: f64,
    /// Brier score of always predicting the training base rate, on the same hold-out.
    pub base_brier: f64,
    /// Hold-out size.
    pub samples: u64,
}

/// A fitted risk model in Omen's own format.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskModel {
    /// The scorer in use.
    pub kind: ModelKind,
    /// Input features, in the order weights and splits index them.
    pub features: Vec<Feature>,
    /// Per-feature mean of transformed training values.
    pub mean: Vec<f64>,
    /// Per-feature standard deviation of transformed training values (≥ a small floor).
    pub scale: Vec<f64>,
    /// The logistic part, with its calibration.
    pub logistic: Option<(Logistic, Platt)>,
    /// The forest part, with its calibration (applied to the logit of the mean leaf value).
    pub forest: Option<(Vec<Tree>, Platt)>,
    /// Unix seconds when it was trained.
    pub trained_at: i64,
    /// Labelled changes it was trained on.
    pub samples: u64,
    /// Of which risky.
    pub positives: u64,
    /// Hold-out figures.
    pub validation: Validation,
    /// Probability at or above which a change counts as risky for F1/MCC (F1-best on hold-out).
    pub threshold: f64,
    /// Sorted calibrated probabilities of the training changes at 101 quantiles, for percentiles.
    pub quantiles: Vec<f64>,
}

/// Why stored model bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelDecodeError {
    /// Not an Omen model.
    #[error("not an Omen risk model")]
    Magic,
    /// Written by a newer Omen.
    #[error("risk model format {0} is newer than this build reads ({FORMAT_VERSION})")]
    Version(u8),
    /// Truncated or inconsistent.
    #[error("risk model data is damaged: {0}")]
    Damaged(&'static str),
    /// A feature this build does not know.
    #[error("risk model uses unknown feature `{0}`")]
    Feature(String),
}

/// The stored format's version. Bump on any layout change; older versions must stay readable or
/// be retrained (the store retrains when decoding fails).
pub const FORMAT_VERSION: u8 = 2;
const MAGIC: &[u8; 4] = b"OMRM";

impl RiskModel {
    /// Transform and standardise raw features into the model's input space.
    pub fn inputs(&self, raw: &FeatureVector) -> Vec<f64> {
        self.features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.input(raw) - self.mean[i]) / self.scale[i])
            .collect()
    }

    /// Calibrated probability that the change is risky.
    pub fn probability(&self, raw: &FeatureVector) -> f64 {
        self.probability_of_inputs(&self.inputs(raw))
    }

    /// Calibrated probability from standardised inputs.
    pub fn probability_of_inputs(&self, z: &[f64]) -> f64 {
        let lr = self.logistic.as_ref().map(|(m, c)| c.apply(m.margin(z)));
        let rf = self
            .forest
            .as_ref()
            .map(|(trees, c)| c.apply(forest_margin(trees, z)));
        match (self.kind, lr, rf) {
            (ModelKind::Logistic, Some(p), _) | (ModelKind::Forest, _, Some(p)) => p,
            (ModelKind::Blend, Some(a), Some(b)) => (a + b) / 2.0,
            (_, Some(p), None) | (_, None, Some(p)) => p,
            (_, None, None) => 0.0,
        }
    }

    /// Percentile (0–100) of probability `p` among the training changes.
    pub fn percentile(&self, p: f64) -> f64 {
        percentile_in(&self.quantiles, p)
    }

    /// Encode in Omen's stored format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(match self.kind {
            ModelKind::Logistic => 0,
            ModelKind::Forest => 1,
            ModelKind::Blend => 2,
        });
        put_len(&mut out, self.features.len());
        for f in &self.features {
            put_str(&mut out, f.name());
        }
        for v in self.mean.iter().chain(&self.scale) {
            put_f64(&mut out, *v);
        }
        match &self.logistic {
            None => out.push(0),
            Some((m, c)) => {
                out.push(1);
                // Knots per feature (format 2); the weights follow, linear ones first.
                for j in 0..self.features.len() {
                    let ts = m.knots.get(j).map_or(&[][..], Vec::as_slice);
                    put_len(&mut out, ts.len());
                    for t in ts {
                        put_f64(&mut out, *t);
                    }
                }
                for w in &m.weights {
                    put_f64(&mut out, *w);
                }
                put_f64(&mut out, m.intercept);
                put_f64(&mut out, c.a);
                put_f64(&mut out, c.b);
            }
        }
        match &self.forest {
            None => out.push(0),
            Some((trees, c)) => {
                out.push(1);
                put_f64(&mut out, c.a);
                put_f64(&mut out, c.b);
                put_len(&mut out, trees.len());
                for t in trees {
                    put_len(&mut out, t.nodes.len());
                    for n in &t.nodes {
                        omen_core::codec::put_u64(&mut out, u64::from(n.feature));
                        if n.feature == TreeNode::LEAF {
                            put_f64(&mut out, n.value);
                        } else {
                            put_f64(&mut out, n.threshold);
                            omen_core::codec::put_u64(&mut out, u64::from(n.left));
                            omen_core::codec::put_u64(&mut out, u64::from(n.right));
                        }
                    }
                }
            }
        }
        omen_core::codec::put_i64(&mut out, self.trained_at);
        omen_core::codec::put_u64(&mut out, self.samples);
        omen_core::codec::put_u64(&mut out, self.positives);
        put_f64(&mut out, self.validation.auc);
        put_f64(&mut out, self.validation.brier);
        put_f64(&mut out, self.validation.base_brier);
        omen_core::codec::put_u64(&mut out, self.validation.samples);
        put_f64(&mut out, self.threshold);
        put_len(&mut out, self.quantiles.len());
        for q in &self.quantiles {
            put_f64(&mut out, *q);
        }
        out
    }

    /// Decode Omen's stored format.
    pub fn decode(bytes: &[u8]) -> Result<RiskModel, ModelDecodeError> {
        let damaged = |_| ModelDecodeError::Damaged("truncated");
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(ModelDecodeError::Magic);
        }
        // Format 1 had linear logistic parts only; it reads as a model without knots.
        let version = bytes[4];
        if version == 0 || version > FORMAT_VERSION {
            return Err(ModelDecodeError::Version(version));
        }
        let kind = match bytes[5] {
            0 => ModelKind::Logistic,
            1 => ModelKind::Forest,
            2 => ModelKind::Blend,
            _ => return Err(ModelDecodeError::Damaged("unknown model kind")),
        };
        let mut c = omen_core::codec::Cursor::new(&bytes[6..]);
        let nf = get_len(&mut c, 64)?;
        let mut features = Vec::with_capacity(nf);
        for _ in 0..nf {
            let name = get_str(&mut c)?;
            features.push(Feature::from_name(&name).ok_or(ModelDecodeError::Feature(name))?);
        }
        let mut mean = Vec::with_capacity(nf);
        for _ in 0..nf {
            mean.push(get_f64(&mut c)?);
        }
        let mut scale = Vec::with_capacity(nf);
        for _ in 0..nf {
            scale.push(get_f64(&mut c)?);
        }
        let logistic = match c.u8().map_err(damaged)? {
            0 => None,
            _ => {
                let mut knots = Vec::new();
                if version >= 2 {
                    for _ in 0..nf {
                        let nk = get_len(&mut c, 64)?;
                        let mut ts = Vec::with_capacity(nk);
                        for _ in 0..nk {
                            ts.push(get_f64(&mut c)?);
                        }
                        knots.push(ts);
                    }
                }
                let nw = nf + knots.iter().map(Vec::len).sum::<usize>();
                let mut weights = Vec::with_capacity(nw);
                for _ in 0..nw {
                    weights.push(get_f64(&mut c)?);
                }
                let intercept = get_f64(&mut c)?;
                let platt = Platt {
                    a: get_f64(&mut c)?,
                    b: get_f64(&mut c)?,
                };
                Some((
                    Logistic {
                        weights,
                        intercept,
                        knots,
                    },
                    platt,
                ))
            }
        };
        let forest = match c.u8().map_err(damaged)? {
            0 => None,
            _ => {
                let platt = Platt {
                    a: get_f64(&mut c)?,
                    b: get_f64(&mut c)?,
                };
                let nt = get_len(&mut c, 100_000)?;
                let mut trees = Vec::with_capacity(nt);
                for _ in 0..nt {
                    let nn = get_len(&mut c, 10_000_000)?;
                    let mut nodes = Vec::with_capacity(nn);
                    for _ in 0..nn {
                        let feature = u16::try_from(c.u64().map_err(damaged)?)
                            .map_err(|_| ModelDecodeError::Damaged("feature index"))?;
                        if feature == TreeNode::LEAF {
                            nodes.push(TreeNode {
                                feature,
                                threshold: 0.0,
                                left: 0,
                                right: 0,
                                value: get_f64(&mut c)?,
                            });
                        } else {
                            if usize::from(feature) >= nf {
                                return Err(ModelDecodeError::Damaged("feature index"));
                            }
                            let threshold = get_f64(&mut c)?;
                            let left = c.u32().map_err(damaged)?;
                            let right = c.u32().map_err(damaged)?;
                            nodes.push(TreeNode {
                                feature,
                                threshold,
                                left,
                                right,
                                value: 0.0,
                            });
                        }
                    }
                    trees.push(Tree { nodes });
                }
                Some((trees, platt))
            }
        };
        let trained_at = c.i64().map_err(damaged)?;
        let samples = c.u64().map_err(damaged)?;
        let positives = c.u64().map_err(damaged)?;
        let validation = Validation {
            auc: get_f64(&mut c)?,
            brier: get_f64(&mut c)?,
            base_brier: get_f64(&mut c)?,
            samples: c.u64().map_err(damaged)?,
        };
        let threshold = get_f64(&mut c)?;
        let nq = get_len(&mut c, 10_000)?;
        let mut quantiles = Vec::with_capacity(nq);
        for _ in 0..nq {
            quantiles.push(get_f64(&mut c)?);
        }
        if !c.is_empty() {
            return Err(ModelDecodeError::Damaged("trailing bytes"));
        }
        Ok(RiskModel {
            kind,
            features,
            mean,
            scale,
            logistic,
            forest,
            trained_at,
            samples,
            positives,
            validation,
            threshold,
            quantiles,
        })
    }
}

/// The logit of a forest's mean leaf value (clamped away from 0 and 1), which its Platt
/// calibration maps to a probability.
pub fn forest_margin(trees: &[Tree], z: &[f64]) -> f64 {
    if trees.is_empty() {
        return 0.0;
    }
    let mean = trees.iter().map(|t| t.leaf_value(z)).sum::<f64>() / trees.len() as f64;
    logit(mean.clamp(1e-4, 1.0 - 1e-4))
}

/// Percentile (0–100) of `p` among sorted `quantiles` (101 points from minimum to maximum).
pub fn percentile_in(quantiles: &[f64], p: f64) -> f64 {
    if quantiles.len() < 2 {
        return 50.0;
    }
    let below = quantiles.partition_point(|q| *q < p);
    let last = (quantiles.len() - 1) as f64;
    (below as f64 / last * 100.0).min(100.0)
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The inverse of [`sigmoid`].
pub fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    omen_core::codec::put_u64(out, n as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn get_f64(c: &mut omen_core::codec::Cursor<'_>) -> Result<f64, ModelDecodeError> {
    c.f64().map_err(|_| ModelDecodeError::Damaged("truncated"))
}

fn get_len(c: &mut omen_core::codec::Cursor<'_>, max: usize) -> Result<usize, ModelDecodeError> {
    let n = c
        .u64()
        .map_err(|_| ModelDecodeError::Damaged("truncated"))?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or(ModelDecodeError::Damaged("length out of range"))
}

fn get_str(c: &mut omen_core::codec::Cursor<'_>) -> Result<String, ModelDecodeError> {
    let n = get_len(c, 256)?;
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        b.push(c.u8().map_err(|_| ModelDecodeError::Damaged("truncated"))?);
    }
    String::from_utf8(b).map_err(|_| ModelDecodeError::Damaged("feature name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spline() -> Logistic {
        // Feature 0 bends at −1 and 0.5; feature 1 is linear.
        Logistic {
            weights: vec![0.5, -2.0, 1.0, -3.0],
            intercept: 0.25,
            knots: vec![vec![-1.0, 0.5], vec![]],
        }
    }

    fn model(kind: ModelKind) -> RiskModel {
        RiskModel {
            kind,
            features: vec![Feature::La, Feature::Fix],
            mean: vec![1.5, 0.2],
            scale: vec![0.8, 0.4],
            logistic: Some((spline(), Platt { a: 0.9, b: -0.1 })),
            forest: Some((
                vec![Tree {
                    nodes: vec![
                        TreeNode {
                            feature: 0,
                            threshold: 0.3,
                            left: 1,
                            right: 2,
                            value: 0.0,
                        },
                        TreeNode {
                            feature: TreeNode::LEAF,
                            threshold: 0.0,
                            left: 0,
                            right: 0,
                            value: 0.2,
                        },
                        TreeNode {
                            feature: TreeNode::LEAF,
                            threshold: 0.0,
                            left: 0,
                            right: 0,
                            value: 0.7,
                        },
                    ],
                }],
                Platt { a: 1.1, b: 0.05 },
            )),
            trained_at: 1_700_000_000,
            samples: 1234,
            positives: 200,
            validation: Validation {
                auc: 0.77,
                brier: 0.14,
                base_brier: 0.17,
                samples: 250,
            },
            threshold: 0.31,
            quantiles: (0..=100).map(|q| f64::from(q) / 100.0).collect(),
        }
    }

    #[test]
    fn each_knot_adds_a_hinge() {
        let m = spline();
        // z = (2, 1): both hinges of feature 0 are active.
        let by_hand = 0.25 + 0.5 * 2.0 - 2.0 * 1.0 + 1.0 * (2.0 + 1.0) - 3.0 * (2.0 - 0.5);
        assert!((m.margin(&[2.0, 1.0]) - by_hand).abs() < 1e-12);
        // z = (−2, 0): below both knots, only the linear term of feature 0 counts.
        assert!((m.margin(&[-2.0, 0.0]) - (0.25 - 1.0)).abs() < 1e-12);
        // z = (0, 0): past the first knot only.
        assert!((m.margin(&[0.0, 0.0]) - (0.25 + 1.0)).abs() < 1e-12);
        assert_eq!(
            Logistic::expand(&m.knots, &[2.0, 1.0]),
            vec![2.0, 1.0, 3.0, 1.5]
        );
    }

    #[test]
    fn a_linear_model_is_the_dot_product() {
        let m = Logistic::linear(vec![0.5, -2.0], 0.25);
        assert!((m.margin(&[2.0, 1.0]) - (0.25 + 1.0 - 2.0)).abs() < 1e-12);
    }

    #[test]
    fn encoding_round_trips_knots_and_trees() {
        for kind in [ModelKind::Logistic, ModelKind::Forest, ModelKind::Blend] {
            let m = model(kind);
            let back = RiskModel::decode(&m.encode()).unwrap();
            assert_eq!(back, m);
            assert_eq!(
                back.probability_of_inputs(&[0.4, -1.0]),
                m.probability_of_inputs(&[0.4, -1.0])
            );
        }
    }

    #[test]
    fn format_1_still_reads_as_a_linear_model() {
        let mut m = model(ModelKind::Blend);
        if let Some((lr, _)) = &mut m.logistic {
            *lr = Logistic::linear(vec![0.5, -2.0], 0.25);
        }
        let v2 = m.encode();
        // Format 1 is format 2 without the knot counts (one zero byte per feature) after the
        // logistic part's presence flag.
        let header = 4 + 1 + 1 + 1 + (1 + 2) + (1 + 3) + 8 * 4;
        assert_eq!(v2[header], 1, "logistic flag");
        assert_eq!(&v2[header + 1..header + 3], &[0, 0], "two empty knot lists");
        let mut v1 = v2.clone();
        v1.drain(header + 1..header + 3);
        v1[4] = 1;
        let back = RiskModel::decode(&v1).unwrap();
        let (lr, _) = back.logistic.as_ref().unwrap();
        assert!(lr.knots.is_empty());
        assert_eq!(lr.weights, vec![0.5, -2.0]);
        assert_eq!(
            back.probability_of_inputs(&[0.4, -1.0]),
            m.probability_of_inputs(&[0.4, -1.0])
        );
    }

    #[test]
    fn newer_or_damaged_formats_are_refused() {
        let mut bytes = model(ModelKind::Blend).encode();
        bytes[4] = FORMAT_VERSION + 1;
        assert_eq!(
            RiskModel::decode(&bytes),
            Err(ModelDecodeError::Version(FORMAT_VERSION + 1))
        );
        let bytes = model(ModelKind::Blend).encode();
        assert!(matches!(
            RiskModel::decode(&bytes[..bytes.len() - 3]),
            Err(ModelDecodeError::Damaged(_))
        ));
        assert_eq!(RiskModel::decode(b"nope!!"), Err(ModelDecodeError::Magic));
    }
}
