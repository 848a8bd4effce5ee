//! Omen's deploy-risk model.
//!
//! - [`features`]: the change metrics (Kamei et al.'s 14 plus diff hints) and their transforms.
//! - [`typical`]: what NDEV and EXP are lately (trailing medians), which they enter relative to.
//! - [`dataset`]: readers for public JIT defect datasets (ISSTA'21, Kamei 2013, ApacheJIT).
//! - [`train`]: fitting (smartcore trees), time-ordered hold-out, calibration, model choice.
//! - [`logistic`]: L2 logistic regression by Newton's method on ndarray.
//! - [`model`]: a fitted model in Omen's own versioned format, scoring, percentiles.
//! - [`signals`]: CI and deploy signals of a scored change, recorded with its prediction.
//! - [`signal_model`]: the second stage, which learns the signals' weight from Omen's own
//!   labelled predictions and adjusts the model's probability when that helps.
//! - [`metrics`] and [`evaluate`]: AUC, Brier, F1, MCC, capture, effort-aware figures.
//!
//! Like `omen-core`, this crate does no I/O: callers hand it rows and the current time.

pub mod assess;
pub mod choice;
pub mod dataset;
pub mod evaluate;
pub mod features;
pub mod history;
pub mod labels;
pub mod logistic;
pub mod metrics;
pub mod model;
pub mod prior;
pub mod review;
pub mod signal_model;
pub mod signals;
pub mod train;
pub mod typical;
