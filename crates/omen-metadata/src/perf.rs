//! `omen perf --format json` and `omen perf detect --format json`.

use serde::Serialize;

/// Version of the `omen perf --format json` document.
pub const PERF_REPORT_VERSION: u32 = 1;

/// `omen perf --format json`: the change points the default branch's durations went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfReport {
    /// [`PERF_REPORT_VERSION`].
    pub version: u32,
    /// Newest first.
    pub change_points: Vec<ChangePointJson>,
    /// Set when the history could not be read: the list is then empty because nothing is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One change point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePointJson {
    /// The test's stored key, or `null` for the run's total test time.
    pub test: Option<String>,
    /// The test's runner-native selector (`null` for the total).
    pub selector: Option<String>,
    /// Job of the series (`""` when runs have none).
    pub job: String,
    /// Median passing duration before, ms.
    pub before_ms: f64,
    /// Median after, ms.
    pub after_ms: f64,
    /// `after / before - 1`.
    pub relative: f64,
    /// Two-sided p-value of the rank test between the levels.
    pub p_value: f64,
    /// `regression` (slower) or `improvement`.
    pub kind: &'static str,
    /// First commit at the new level.
    pub commit: Option<String>,
    /// Last commit at the old level: the change lies after it, up to `commit`.
    pub previous_commit: Option<String>,
    /// When the first run at the new level ran (RFC 3339).
    pub since: Option<String>,
    /// When it was first found (RFC 3339).
    pub detected_at: String,
}

/// `omen perf detect --format json`, exactly as the issue specifies it (no version: it is a
/// scoring interface, one list).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectReport {
    /// 0-based indices where a new segment starts.
    pub change_points: Vec<usize>,
}
