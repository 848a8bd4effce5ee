//! `omen merge --format json`.

use serde::Serialize;

/// Version of the `omen merge --format json` document.
pub const MERGE_REPORT_VERSION: u32 = 1;

/// The JSON document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeReport {
    /// [`MERGE_REPORT_VERSION`].
    pub version: u32,
    /// The database merged into.
    pub database: String,
    /// One entry per source, in the order given.
    pub sources: Vec<SourceReport>,
}

/// What merging one source did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceReport {
    /// The source database.
    pub path: String,
    /// Runs copied in.
    pub runs_added: u64,
    /// Runs the target already had (same run key).
    pub runs_already_present: u64,
    /// Runs whose raw results had been compacted in the source and could not be replayed.
    pub runs_without_results: u64,
    /// Results copied in.
    pub results: u64,
    /// Runs older than the target's newest run; the histories were rebuilt in time order when
    /// `histories_rebuilt`.
    pub runs_out_of_order: u64,
    /// The histories were rebuilt in time order.
    pub histories_rebuilt: bool,
    /// Why this source could not be merged (the others still were).
    pub error: Option<String>,
}
