//! `omen perf --format json`, `omen perf scan --format json` and `omen perf detect --format json`.

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
    /// The suite time's trend, one per job that has enough default-branch runs.
    pub trends: Vec<SuiteTrendJson>,
    /// Tests whose passing duration grows significantly (≥ 10% and ≥ 50 ms a month), the
    /// fastest-growing first (at most 10).
    pub test_trends: Vec<TestTrendJson>,
    /// Sharded jobs: the newest default-branch run of each group, and a more even split.
    pub shards: Vec<ShardGroupJson>,
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

/// The trend of one job's suite time (the run's total test time) on the default branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteTrendJson {
    /// Job of the series (`""` when runs have none).
    pub job: String,
    /// Runs fitted.
    pub runs: usize,
    /// Calendar days they cover.
    pub span_days: f64,
    /// The fitted suite time at the newest run, ms.
    pub level_ms: f64,
    /// Relative change per 30 days at that level (Theil–Sen), with its 95% interval.
    pub per_month: f64,
    /// Low end of the interval.
    pub per_month_low: f64,
    /// High end of the interval.
    pub per_month_high: f64,
    /// The interval excludes zero.
    pub significant: bool,
    /// The budget the forecast counts down to, ms.
    pub budget_ms: f64,
    /// Days until the fitted suite time passes the budget at this rate; `null` unless it grows
    /// significantly and is still under it.
    pub budget_in_days: Option<f64>,
    /// The soonest and latest of that, from the interval's ends.
    pub budget_in_days_range: Option<[f64; 2]>,
}

/// One test whose passing duration grows on the default branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestTrendJson {
    /// The test's stored key.
    pub test: String,
    /// Its runner-native selector.
    pub selector: String,
    /// Job of the series (`""` when runs have none).
    pub job: String,
    /// Runs fitted.
    pub runs: usize,
    /// Calendar days they cover.
    pub span_days: f64,
    /// The fitted duration at the newest run, ms.
    pub level_ms: f64,
    /// Change per 30 days, ms (Theil–Sen).
    pub ms_per_month: f64,
    /// Relative change per 30 days at that level, with its 95% interval.
    pub per_month: f64,
    /// Low end of the interval.
    pub per_month_low: f64,
    /// High end of the interval.
    pub per_month_high: f64,
}

/// One group of shard jobs in one CI run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardGroupJson {
    /// The jobs' common name.
    pub group: String,
    /// The CI run id they share.
    pub run_id: Option<String>,
    /// Their commit.
    pub commit: Option<String>,
    /// Each shard, by index.
    pub jobs: Vec<ShardJson>,
    /// The slowest shard's test time, ms: the wall time the shards take.
    pub slowest_ms: f64,
    /// The slowest shard's time over the mean (1.0: even).
    pub imbalance: f64,
    /// The same two for the suggested split.
    pub suggested_slowest_ms: f64,
    /// See `suggested_slowest_ms`.
    pub suggested_imbalance: f64,
    /// The suggested split: each shard's tests (runner-native selectors), the slowest first.
    pub suggested: Vec<Vec<String>>,
}

/// One shard as it ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardJson {
    /// Its job name.
    pub job: String,
    /// Timed tests it ran.
    pub tests: usize,
    /// Their summed time, ms.
    pub ms: f64,
}

/// Version of the `omen perf scan --format json` document.
pub const SCAN_REPORT_VERSION: u32 = 1;

/// `omen perf scan --format json`: what a search of the whole stored history found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanReport {
    /// [`SCAN_REPORT_VERSION`].
    pub version: u32,
    /// Jobs whose default-branch runs were read.
    pub jobs: usize,
    /// Default-branch runs read, over all jobs.
    pub runs: usize,
    /// Series searched: each job's tests with a duration, and its suite total.
    pub series: usize,
    /// Change points found, known before or not.
    pub found: usize,
    /// Those not known before, now recorded, in the order found.
    pub new: Vec<ChangePointJson>,
    /// Set when the history could not be read or written: nothing was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `omen perf detect --format json`, exactly as the issue specifies it (no version: it is a
/// scoring interface, one list).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectReport {
    /// 0-based indices where a new segment starts.
    pub change_points: Vec<usize>,
}
