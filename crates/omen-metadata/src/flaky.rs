//! `omen flaky --format json`.

use serde::Serialize;

/// Version of the `omen flaky --format json` document.
pub const FLAKY_REPORT_VERSION: u32 = 1;

/// The JSON document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyReport {
    /// [`FLAKY_REPORT_VERSION`].
    pub version: u32,
    /// Tests, most urgent first: broken, then flaky, then the rest by score.
    pub tests: Vec<FlakyTest>,
    /// Set when the history could not be read: `tests` is then empty because nothing is known,
    /// not because no test is flaky.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One listed test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyTest {
    /// Stable identity.
    pub id: String,
    /// Class, suite or module.
    pub classname: String,
    /// Test name.
    pub name: String,
    /// Source file.
    pub file: Option<String>,
    /// Runner-native selector.
    pub selector: String,
    /// Runner.
    pub runner: String,
    /// `new`, `stable`, `flaky` or `broken`.
    pub state: &'static str,
    /// Posterior probability that a run fails for no code reason.
    pub score: f64,
    /// Posterior standard deviation of the score.
    pub uncertainty: f64,
    /// The evidence in words.
    pub explanation: String,
    /// The evidence in numbers.
    pub evidence: EvidenceJson,
    /// The newest failure still kept, when there is one.
    pub last_failure: Option<LastFailure>,
    /// For broken tests: the commit of the first failure of the streak.
    pub broken_since: Option<String>,
    /// With `--test`: every rule applied, the value observed and the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<ReasonJson>>,
}

/// One rule applied to a test (see `omen_core::flakiness::reasons`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonJson {
    /// What the rule decides.
    pub rule: String,
    /// What the history shows.
    pub observed: String,
    /// What the rule needs.
    pub threshold: String,
    /// Whether it holds.
    pub holds: bool,
}

/// Evidence numbers (see `omen_core::flakiness::Evidence`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct EvidenceJson {
    pub same_commit_flakes: u32,
    pub same_commit_span_days: Option<f64>,
    pub runs_since_same_commit_flake: Option<u32>,
    pub window_runs: u32,
    pub window_failures: u32,
    pub retry_flakes: u32,
    pub flips: u32,
    pub short_episodes: u32,
    pub regressions: u32,
    pub fail_streak: u32,
    pub broken_streak: u32,
    pub clean_runs: u32,
    pub outage_failures: u32,
}

/// The last failure of a test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastFailure {
    /// Headline of the failure message.
    pub message: Option<String>,
    /// Commit it failed on.
    pub commit: Option<String>,
    /// CI run id.
    pub run: Option<String>,
    /// When (RFC 3339).
    pub at: Option<String>,
}
