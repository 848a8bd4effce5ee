//! Performance: change points in duration series, a pull request's slowdowns against the default
//! branch, the suite time's trend, and the statistics they share. Pure functions of the numbers they are handed.

pub mod anomaly;
pub mod changepoint;
pub mod common;
pub mod compare;
pub mod shards;
pub mod stats;
pub mod trend;
