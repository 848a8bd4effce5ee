//! The prior model shipped with Omen, for repositories without enough labelled history.
//!
//! `prior.bin` is a logistic regression (no forest: trees do not transfer across projects) on
//! the public features, trained by `cargo run -p omen-bench -- gen-prior` on the OpenStack and Qt
//! datasets of the ISSTA'21 benchmark (MIT licence; copies in `tests/corpus/jit/`). The
//! end-to-end suite retrains it and checks the bytes are identical.

use crate::features::Feature;
use crate::model::{ModelDecodeError, RiskModel};
use crate::train::TrainConfig;

/// The encoded prior.
pub const PRIOR_BYTES: &[u8] = include_bytes!("prior.bin");

/// Decode the shipped prior.
pub fn prior_model() -> Result<RiskModel, ModelDecodeError> {
    RiskModel::decode(PRIOR_BYTES)
}

/// The prior's training settings: logistic regression only, on the public features, from every
/// change of both datasets (it is to be typical of many projects, not of one project's latest
/// year, so the logistic window is off).
pub fn training_config() -> TrainConfig {
    TrainConfig {
        features: Feature::PUBLIC.to_vec(),
        trees: 0,
        logistic_days: 0.0,
        ..TrainConfig::default()
    }
}
