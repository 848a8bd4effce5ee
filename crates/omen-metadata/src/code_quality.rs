//! GitLab's Code Quality report (`artifacts:reports:codequality`): the subset of the Code Climate
//! issue format GitLab reads, so new failures and flaky tests show in the merge request widget and
//! beside the test's line in the diff. The format is GitLab's; it carries no `version` of Omen's.

use serde::Serialize;

/// One issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// What is wrong, in one line of plain text.
    pub description: String,
    /// Which check found it (`omen/new-failure`, `omen/flaky-test`).
    pub check_name: String,
    /// Stable across runs for the same test and check, so GitLab can tell new issues from old.
    pub fingerprint: String,
    /// How bad.
    pub severity: Severity,
    /// Where.
    pub location: Location,
}

/// GitLab's severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Minor.
    Minor,
    /// Major.
    Major,
    /// Critical.
    Critical,
    /// Blocker.
    Blocker,
}

/// A file and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Path relative to the repository root.
    pub path: String,
    /// The line.
    pub lines: Lines,
}

/// A line range; Omen knows where a test starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lines {
    /// First line (1-based).
    pub begin: u32,
}
