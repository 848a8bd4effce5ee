//! `omen failures --format json`: a stored run's failures grouped into causes.

use serde::Serialize;

/// Version of the `omen failures --format json` document.
pub const FAILURES_REPORT_VERSION: u32 = 1;

/// `omen failures --format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailuresReport {
    /// [`FAILURES_REPORT_VERSION`].
    pub version: u32,
    /// The run reported; `null` when there is none (an empty history, or an error).
    pub run: Option<RunRef>,
    /// Failures recorded in the run (failed results, and results that passed on a retry).
    pub failures: usize,
    /// The causes, the largest first.
    pub causes: Vec<CauseJson>,
    /// Set when the history could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    /// Row id (`omen failures --run ID`).
    pub id: i64,
    /// Commit SHA.
    pub commit: Option<String>,
    /// Branch.
    pub branch: Option<String>,
    /// Job name.
    pub job: Option<String>,
    /// When it ran (RFC 3339).
    pub at: String,
}

/// One cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CauseJson {
    /// The members' common first line, `<*>` where they differ.
    pub headline: String,
    /// The signature the history counts it by (16 hex digits).
    pub signature: String,
    /// `infrastructure`, `dependency`, `test`, `application`, `security`, `build`, or `null`
    /// when nothing decided.
    pub category: Option<&'static str>,
    /// Why: the rule's reason in words, `labelled`, or the learned layer's strongest words.
    pub reason: Option<String>,
    /// What decided the category: `label`, `user rule`, `rule` or `learned`.
    pub decided_by: Option<&'static str>,
    /// The learned layer's probability; `null` when a label or a rule decided.
    pub confidence: Option<f64>,
    /// Other runs that failed with it: 0 is new.
    pub known_runs: u64,
    /// When it was first seen (RFC 3339); `null` when new.
    pub first_seen: Option<String>,
    /// Some of those other runs were on the default branch.
    pub on_default_branch: bool,
    /// Its failures.
    pub tests: Vec<CauseTest>,
}

/// One failure of a cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CauseTest {
    /// The test's runner-native selector.
    pub selector: String,
    /// `failed`, or `passed on retry`.
    pub outcome: &'static str,
    /// Its first line.
    pub first_line: String,
}
