//! The JSON printed by `omen ingest --format json`.

use serde::{Deserialize, Serialize};

/// Version of [`IngestReport`].
pub const INGEST_REPORT_VERSION: u32 = 1;

/// What one `omen ingest` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// [`INGEST_REPORT_VERSION`].
    pub version: u32,
    /// One entry per input file, in the order they were found.
    pub files: Vec<FileSummary>,
    /// Sums over the files that could be used.
    pub totals: Counts,
    /// True when this exact run (run id, attempt, job and report content) was already stored, so
    /// nothing changed.
    pub duplicate: bool,
    /// The run the results were stored under.
    pub run: RunInfo,
    /// Where the history database is, and what happened to it.
    pub database: DatabaseInfo,
    /// True when a report was cut short (see [`FileSummary::truncated`]): the results read count,
    /// but the run may have had more tests than were stored.
    #[serde(default)]
    pub incomplete: bool,
}

/// Per-testcase totals, counted by the rules in `tests/corpus/junit/MANIFEST.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// `<testcase>` elements.
    pub tests: u64,
    /// Passed (flaky passes included).
    pub passed: u64,
    /// Failed by `<failure>`.
    pub failures: u64,
    /// Failed by `<error>`.
    pub errors: u64,
    /// Skipped, disabled, ignored.
    pub skipped: u64,
    /// Passed after a failed attempt inside the same `<testcase>`.
    pub flaky: u64,
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    /// The path as found (relative paths stay relative).
    pub path: String,
    /// The file's counts (all zero when `error` is set).
    #[serde(flatten)]
    pub counts: Counts,
    /// Runner detected from the report (`pytest`, `nextest`, `junit`).
    pub runner: Option<String>,
    /// Why the file could not be used, or null.
    pub error: Option<FileError>,
    /// Where the file ends unexpectedly, when it was cut between two test cases; its cases still
    /// count. Absent for a complete file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<FileError>,
}

/// Why a file could not be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileError {
    /// Human-readable reason.
    pub message: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<u64>,
    /// 1-based column in bytes, when the problem has a place in the file.
    pub column: Option<u64>,
}

/// The run's metadata, from the CI environment, git, or flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Commit SHA under test.
    pub commit: Option<String>,
    /// Branch (for a PR, its head branch).
    pub branch: Option<String>,
    /// The repository's default branch.
    pub default_branch: Option<String>,
    /// True when `branch` is the default branch: only such runs feed flakiness evidence.
    pub is_default_branch: bool,
    /// CI run or pipeline id.
    pub run_id: Option<String>,
    /// Attempt number of the run (re-runs increase it).
    pub attempt: u32,
    /// Job name.
    pub job: Option<String>,
    /// Merge/pull request number, when the run is for one.
    pub pull_request: Option<u64>,
    /// When the run happened, RFC 3339.
    pub timestamp: String,
    /// Where the metadata came from: `github`, `gitlab`, `git`, `flags`.
    pub source: String,
}

/// The history database after the ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    /// Path of the database.
    pub path: String,
    /// Results stored by this ingest (one per test after folding retries).
    pub stored: u64,
    /// Where a corrupt, truncated or newer database was moved, when that happened.
    pub set_aside: Option<String>,
    /// True when the results could not be stored (see the warnings on stderr).
    pub failed: bool,
}
