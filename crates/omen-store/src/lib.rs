//! Omen's history database: one SQLite file, carried between CI runs by the cache.
//!
//! Architecture invariants:
//! - This is the only crate that speaks SQL.
//! - A file is set aside only on evidence of corruption: a corrupt, truncated, foreign or
//!   newer-schema database is moved aside (`<name>.corrupt-<unix seconds>`), never overwritten,
//!   and a fresh one is created. A lock, a permission, a directory, a full disk or a crash's hot
//!   journal is never such evidence: the file is left as it is ([`StoreError::Unavailable`]).
//! - Ingest is idempotent: a run is keyed by run id, attempt, job and a SHA-256 of the report
//!   content; storing the same key twice changes nothing.
//! - Scoring reads one row per test ([`omen_core::history::TestHistory`]), never the raw results,
//!   so its cost does not grow with the length of the history.

mod error;
mod ingest;
mod merge;
mod migrate;
mod open;
pub mod packed;
mod perf;
mod query;
mod risk;
#[cfg(test)]
mod testing;

pub use error::StoreError;
pub use ingest::{IngestOutcome, ResultRecord, StoreConfig, TestsRead, read_ahead_pays};
pub use merge::MergeOutcome;
pub use open::{DEFAULT_LOCK_WAIT, Opened, SCHEMA_VERSION};
pub use perf::{ChangePointRow, ChangeRecord, DurationWindow};
pub use query::{RunRow, SignatureRow, Stats, TestRow};
pub use risk::{
    ChangeRow, DeployRow, ModelRow, NewPrediction, PredictionRow, RiskState, TrackedPrediction,
};

use std::path::{Path, PathBuf};

/// An open history database.
#[derive(Debug)]
pub struct Store {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl Store {
    /// The database's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
