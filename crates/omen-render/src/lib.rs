//! Rendering what Omen found in a CI run: the pull-request comment, the job summary, the
//! workflow annotations and GitLab's Code Quality report.
//!
//! Architecture invariant: no I/O, and every string that came from a test report passes through
//! [`escape`] before it reaches Markdown or a workflow command.

pub mod escape;
pub mod html;

use std::fmt::Write as _;

/// Hidden marker that finds Omen's comment again, so it is updated instead of duplicated.
pub const MARKER: &str = "<!-- omen:pr-comment v1 -->";

/// GitHub's limit on a comment body, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// GitHub shows at most this many annotations of one level per step.
pub const ANNOTATION_CAP: usize = 10;

/// Rows shown in a table before the rest go into a collapsed list.
const VISIBLE_ROWS: usize = 10;

/// Totals of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Tests that ran or were skipped.
    pub tests: u64,
    /// Passed.
    pub passed: u64,
    /// Failed (failures and errors).
    pub failed: u64,
    /// Skipped.
    pub skipped: u64,
    /// Passed after failing within the run.
    pub flaky: u64,
}

/// Why a test failed, as far as Omen can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureClass {
    /// Not failing on the default branch, not flaky: most likely this change.
    New,
    /// Also failing on the default branch.
    FailingOnDefault {
        /// Commit that started the default branch's failing streak, when known.
        since: Option<String>,
    },
    /// A known flaky test failing the way it usually does.
    KnownFlaky {
        /// Flakiness score.
        score: f64,
        /// The evidence in words.
        evidence: String,
    },
    /// In the quarantine file.
    Quarantined {
        /// The entry's mode.
        mode: String,
    },
}

impl FailureClass {
    /// True when the failure does not fail the build under `fail-on: unexcused-failures`.
    pub fn is_excused(&self) -> bool {
        matches!(
            self,
            FailureClass::KnownFlaky { .. } | FailureClass::Quarantined { .. }
        )
    }
}

/// One failed test.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRow {
    /// Runner-native selector (untrusted).
    pub name: String,
    /// Source file (untrusted).
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// First line of the failure message (untrusted).
    pub message: Option<String>,
    /// The classification.
    pub class: FailureClass,
}

/// A test that got slower than its history.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowRow {
    /// Test (untrusted).
    pub name: String,
    /// The default branch's median passing duration, ms.
    pub baseline_ms: f64,
    /// This pull request's duration, ms, with the whole run's factor divided out.
    pub current_ms: f64,
    /// One-sided p-value, adjusted for the tests judged.
    pub p_value: f64,
}

/// Where a default-branch duration series changed level, found by this run.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// Test (untrusted); `None` for the run's total test time.
    pub name: Option<String>,
    /// Median before, ms.
    pub before_ms: f64,
    /// Median after, ms.
    pub after_ms: f64,
    /// First commit at the new level.
    pub commit: Option<String>,
    /// Last commit at the old level.
    pub previous_commit: Option<String>,
    /// When the first run at the new level ran, unix seconds.
    pub at: i64,
    /// Two-sided p-value of the rank test between the levels.
    pub p_value: f64,
}

/// One of the run's slowest tests.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeRow {
    /// Test (untrusted).
    pub name: String,
    /// Its duration in this run, ms.
    pub ms: f64,
}

/// Durations: slower than the default branch, level changes on it, where the time goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerfSection {
    /// Tests slower than on the default branch beyond the tolerance, most slowed first (capped).
    pub slow: Vec<SlowRow>,
    /// How many tests were slower in all.
    pub slow_total: usize,
    /// So many tests were slower at once that they are one cause (a machine, a shared fixture).
    pub together: bool,
    /// Change points this default-branch run found.
    pub changes: Vec<ChangeRow>,
    /// The run's slowest tests, slowest first.
    pub slowest: Vec<TimeRow>,
    /// The run's total test time, ms.
    pub total_ms: f64,
    /// The run is unusual against the default branch's recent runs.
    pub unusual: Option<UnusualRun>,
    /// This job is one shard of several: how even the default branch's newest sharded run was.
    pub shards: Option<ShardRow>,
}

/// How evenly a group of shard jobs took their time (`omen_core::perf::shards`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardRow {
    /// The jobs' common name (untrusted).
    pub group: String,
    /// Shards in that run.
    pub jobs: usize,
    /// The slowest shard's test time, ms.
    pub slowest_ms: f64,
    /// The slowest over the mean.
    pub imbalance: f64,
    /// The slowest shard's time with the suggested split, ms.
    pub suggested_slowest_ms: f64,
    /// Its ratio to the mean.
    pub suggested_imbalance: f64,
}

/// An unusual run (`omen_core::perf::anomaly`). Every string is Omen's own.
#[derive(Debug, Clone, PartialEq)]
pub struct UnusualRun {
    /// `low`, `medium`, `high` or `critical`.
    pub severity: &'static str,
    /// Isolation Forest score, 0..1.
    pub score: f64,
    /// Metrics out of their range, largest deviation first.
    pub metrics: Vec<UnusualMetric>,
}

/// One metric of an unusual run.
#[derive(Debug, Clone, PartialEq)]
pub struct UnusualMetric {
    /// `tests`, `test time`, …
    pub name: &'static str,
    /// The values are milliseconds, shown as durations; else counts.
    pub ms: bool,
    /// This run's value.
    pub actual: f64,
    /// The usual value.
    pub expected: f64,
    /// The usual range.
    pub range: (f64, f64),
    /// `spike` or `drop`.
    pub kind: &'static str,
}

/// One point of the default-branch trend.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    /// Commit (shortened when shown).
    pub commit: String,
    /// Share of non-skipped tests that passed, 0–100.
    pub pass_rate: f64,
    /// Sum of test durations, seconds.
    pub duration_s: f64,
    /// The level of the duration series at this run (the median of its segment between change
    /// points), seconds; drawn as a line over the bars so a change shows as a step.
    pub level_s: Option<f64>,
}

pub use omen_core::failure::Seen;
pub use omen_core::gate::GateVerdict;

/// The deploy-risk section. Every string is Omen's own wording, but it is escaped like the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskSection {
    /// The level.
    pub level: omen_core::risk_level::RiskLevel,
    /// Calibrated probability, 0–1.
    pub probability: f64,
    /// Percentile among the repository's past changes.
    pub percentile: f64,
    /// Which model answered, and its scorer (e.g. `repository (logistic+forest)`).
    pub model: String,
    /// Strongest factors, `+ …`/`− …`.
    pub factors: Vec<String>,
    /// Review hints from the diff.
    pub hints: Vec<String>,
    /// CI and deploy signals.
    pub signals: Vec<String>,
    /// Features that could not be computed fully.
    pub missing: Vec<String>,
    /// The gate, when it ran: threshold and verdict.
    pub gate: Option<(f64, GateVerdict)>,
    /// The label that accepts the risk.
    pub accept_label: String,
}

impl RiskSection {
    /// Worth a comment on its own (`comment: auto`): high or critical, or blocked.
    pub fn is_notable(&self) -> bool {
        self.level.is_notable() || matches!(self.gate, Some((_, GateVerdict::Blocked)))
    }
}

/// Everything the renderers show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CiReport {
    /// Commit under test.
    pub commit: Option<String>,
    /// Default branch name.
    pub default_branch: Option<String>,
    /// This run's totals.
    pub totals: Totals,
    /// The latest default-branch run's totals, for deltas.
    pub base: Option<Totals>,
    /// Failed tests.
    pub failures: Vec<FailureRow>,
    /// Quarantine changes.
    pub quarantine_changes: Vec<omen_core::quarantine::QuarantineChange>,
    /// Durations against the default branch.
    pub perf: PerfSection,
    /// Recent default-branch runs, oldest first.
    pub trend: Vec<TrendPoint>,
    /// Reports that could not be read: (path, reason).
    pub unusable: Vec<(String, String)>,
    /// Link to the full report (GitHub's job summary, or the HTML page in a GitLab job's
    /// artifacts), for when the comment is cut.
    pub summary_url: Option<String>,
    /// The change's deploy risk, when it was scored.
    pub risk: Option<RiskSection>,
    /// The failures grouped by cause (`omen_core::failure`), largest first.
    pub causes: Vec<CauseRow>,
    /// The failing step of the job's log (`omen ci --log`), when no test failed.
    pub log: Option<LogCause>,
    /// Groups of tests that fail together on the default branch, two or more of which failed
    /// here.
    pub systemic: Vec<SystemicRow>,
}

/// Tests that fail together across default-branch runs (`omen_core::failure::systemic`), some
/// of which failed in this run.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemicRow {
    /// Indices into [`CiReport::failures`]: the group's tests that failed here.
    pub failures: Vec<usize>,
    /// The group's tests.
    pub size: usize,
    /// Default-branch runs in which at least half of them failed.
    pub together: usize,
    /// Default-branch runs in which any of them failed.
    pub any: usize,
    /// Default-branch runs looked at.
    pub runs: usize,
}

/// What broke in the job's log (`omen_core::failure::log`): a compile error, a dependency
/// install, an OOM kill — a failure no test report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCause {
    /// The log file as given (untrusted).
    pub path: String,
    /// The 1-based line of the headline.
    pub line: usize,
    /// The line that names the cause (untrusted).
    pub headline: String,
    /// Its category and what decided it, as in [`CauseRow::kind`].
    pub kind: Option<String>,
    /// What the history knows of its signature.
    pub known: Option<Seen>,
    /// The error block, bounded (untrusted).
    pub excerpt: Vec<String>,
}

/// One cause: failures of this run whose signatures group together.
#[derive(Debug, Clone, PartialEq)]
pub struct CauseRow {
    /// The members' common first line, `<*>` where they differ (untrusted).
    pub headline: String,
    /// Indices into [`CiReport::failures`].
    pub failures: Vec<usize>,
    /// What the history knows of it; `None` without a usable history.
    pub known: Option<Seen>,
    /// Its category and the rule's reason (`infrastructure: connection refused or reset`), when
    /// a rule of `omen_core::failure::RULES` matched.
    pub kind: Option<String>,
}

impl CiReport {
    /// Failures that fail the build under `fail-on: unexcused-failures`.
    pub fn unexcused(&self) -> usize {
        self.failures
            .iter()
            .filter(|f| !f.class.is_excused())
            .count()
    }

    /// The causes of two or more failures: those the report shows as one row.
    pub fn shared_causes(&self) -> Vec<&CauseRow> {
        self.causes
            .iter()
            .filter(|c| c.failures.len() >= 2)
            .collect()
    }

    /// Failures of one kind.
    fn of(&self, pick: impl Fn(&FailureClass) -> bool) -> Vec<&FailureRow> {
        self.failures.iter().filter(|f| pick(&f.class)).collect()
    }

    /// The run's figures: what `omen ci` publishes as step outputs, dotenv variables and
    /// metrics.
    pub fn figures(&self) -> Figures {
        let count = |pick: fn(&FailureClass) -> bool| self.of(pick).len() as u64;
        Figures {
            tests: self.totals.tests,
            failed: self.totals.failed,
            skipped: self.totals.skipped,
            new_failures: count(|c| matches!(c, FailureClass::New)),
            flaky: count(|c| matches!(c, FailureClass::KnownFlaky { .. })),
            quarantined: count(|c| matches!(c, FailureClass::Quarantined { .. })),
            unexcused: self.unexcused() as u64,
            risk: self.risk.as_ref().map(|r| r.probability),
        }
    }
}

/// A run's figures (see [`CiReport::figures`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Tests that ran or were skipped.
    pub tests: u64,
    /// Failed.
    pub failed: u64,
    /// Skipped.
    pub skipped: u64,
    /// Failures most likely caused by this change.
    pub new_failures: u64,
    /// Failures of known flaky tests.
    pub flaky: u64,
    /// Failures of quarantined tests.
    pub quarantined: u64,
    /// Failures that fail the build under `fail-on: unexcused-failures`.
    pub unexcused: u64,
    /// The change's deploy risk, when it was scored.
    pub risk: Option<f64>,
}

/// The figures as OpenMetrics text, for GitLab's metrics report (`artifacts:reports:metrics`),
/// which shows each one's change against the target branch in the merge request.
pub fn metrics(f: &Figures) -> String {
    let mut rows = vec![
        (
            "omen_tests",
            "Tests that ran or were skipped",
            f.tests as f64,
        ),
        ("omen_failed_tests", "Failed tests", f.failed as f64),
        ("omen_skipped_tests", "Skipped tests", f.skipped as f64),
        (
            "omen_new_failures",
            "Failures most likely caused by this change",
            f.new_failures as f64,
        ),
        (
            "omen_flaky_failures",
            "Failures of known flaky tests",
            f.flaky as f64,
        ),
        (
            "omen_quarantined_failures",
            "Failures of quarantined tests",
            f.quarantined as f64,
        ),
        (
            "omen_unexcused_failures",
            "Failures neither the quarantine nor known flakiness excuses",
            f.unexcused as f64,
        ),
    ];
    if let Some(p) = f.risk {
        rows.push(("omen_deploy_risk", "The change's deploy risk, 0 to 1", p));
    }
    let mut out = String::new();
    for (name, help, value) in rows {
        let value = if value.fract() == 0.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.4}")
        };
        out.push_str(&format!(
            "# TYPE {name} gauge\n# HELP {name} {help}.\n{name} {value}\n"
        ));
    }
    out.push_str("# EOF\n");
    out
}

/// The body of the pull request that proposes a quarantine update: every change, with the
/// evidence of each added test, from the default branch's history at `commit`.
pub fn quarantine_proposal(
    changes: &[omen_core::quarantine::QuarantineChange],
    file: Option<&omen_metadata::quarantine::QuarantineFile>,
    commit: Option<&str>,
) -> String {
    let mut s = String::from(
        "Omen proposes this quarantine update from the default branch's history. Merge it to make \
         it the committed file; Omen keeps this pull request current until then.\n\n",
    );
    if let Some(c) = commit {
        let _ = writeln!(s, "History as of commit `{}`.\n", short(c));
    }
    let _ = writeln!(s, "| change | test | evidence |\n| --- | --- | --- |");
    for change in changes {
        let evidence = file
            .and_then(|f| f.tests.iter().find(|e| e.id == change.key))
            .and_then(|e| e.evidence.as_deref())
            .map(|e| escape::inline(e, 300))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {} | {evidence} |",
            change.kind.describe(),
            escape::inline(&change.selector, 300)
        );
    }
    s
}

/// The pull-request comment: marker first, at most [`COMMENT_LIMIT`] characters.
pub fn comment(report: &CiReport) -> String {
    // Try the full body; when too long, show fewer rows per section until it fits.
    for rows in [usize::MAX, 50, 20, 10, 5, 1] {
        let body = format!("{MARKER}\n{}", body(report, rows, false));
        if body.chars().count() <= COMMENT_LIMIT {
            return body;
        }
    }
    let pointer = "\n\n… cut to fit the comment limit: the full report has everything.\n";
    let mut body = format!("{MARKER}\n{}", body(report, 1, false));
    let keep = COMMENT_LIMIT - pointer.chars().count();
    body = body.chars().take(keep).collect();
    body.push_str(pointer);
    body
}

/// The job summary: the comment's facts plus the default-branch trend.
pub fn summary(report: &CiReport) -> String {
    let mut s = body(report, usize::MAX, true);
    if report.trend.len() >= 2 {
        s.push_str(&trend(&report.trend));
    }
    s
}

/// Workflow commands for annotations: new failures with a file as errors, known-flaky ones as
/// warnings, each capped at [`ANNOTATION_CAP`].
pub fn annotations(report: &CiReport) -> Vec<String> {
    let mut out = Vec::new();
    let mut errors = 0;
    let mut warnings = 0;
    for f in &report.failures {
        let (level, title) = match &f.class {
            FailureClass::New => ("error", "New test failure"),
            FailureClass::KnownFlaky { .. } => ("warning", "Known flaky test failed"),
            _ => continue,
        };
        let Some(file) = &f.file else { continue };
        let count = if level == "error" {
            &mut errors
        } else {
            &mut warnings
        };
        if *count >= ANNOTATION_CAP {
            continue;
        }
        *count += 1;
        let mut props = format!("file={}", escape::command_property(file));
        if let Some(line) = f.line {
            props.push_str(&format!(",line={line}"));
        }
        props.push_str(&format!(
            ",title={}",
            escape::command_property(&format!("{title}: {}", f.name))
        ));
        let message = f.message.as_deref().unwrap_or("failed");
        out.push(format!(
            "::{level} {props}::{}",
            escape::command_data(message)
        ));
    }
    out
}

/// GitLab's Code Quality issues, the counterpart of [`annotations`]: new failures with a file as
/// `major`, known-flaky ones as `minor`, at most [`CODE_QUALITY_CAP`] of each. Descriptions are
/// one line of plain text with control characters made visible ([`escape::line`]).
pub fn code_quality(report: &CiReport) -> Vec<omen_metadata::code_quality::Issue> {
    use omen_metadata::code_quality::{Issue, Lines, Location, Severity};
    let mut out = Vec::new();
    let (mut major, mut minor) = (0, 0);
    for f in &report.failures {
        let (severity, check, title, count) = match &f.class {
            FailureClass::New => (
                Severity::Major,
                "omen/new-failure",
                "New test failure",
                &mut major,
            ),
            FailureClass::KnownFlaky { .. } => (
                Severity::Minor,
                "omen/flaky-test",
                "Known flaky test failed",
                &mut minor,
            ),
            _ => continue,
        };
        let Some(file) = &f.file else { continue };
        if *count >= CODE_QUALITY_CAP {
            continue;
        }
        *count += 1;
        let message = f.message.as_deref().unwrap_or("failed");
        let description: String = escape::line(&format!("{title}: {}: {message}", f.name))
            .chars()
            .take(500)
            .collect();
        let fingerprint = omen_core::hash::fnv1a64(format!("{check}\0{}", f.name).as_bytes());
        out.push(Issue {
            description,
            check_name: check.to_owned(),
            fingerprint: format!("{fingerprint:016x}"),
            severity,
            location: Location {
                path: file.clone(),
                lines: Lines {
                    begin: f.line.unwrap_or(1).max(1),
                },
            },
        });
    }
    out
}

/// Code Quality issues of one kind per report: the widget lists them all, and a broken suite
/// should not write a megabyte of them.
pub const CODE_QUALITY_CAP: usize = 200;

fn body(report: &CiReport, rows: usize, full: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", headline(report));
    totals_line(&mut s, report);
    if let Some(r) = &report.risk {
        risk_section(&mut s, r, rows);
    }
    log_section(&mut s, report);
    causes_section(&mut s, report, rows);
    systemic_section(&mut s, report, rows);
    failure_sections(&mut s, report, rows);
    quarantine_changes(&mut s, report, rows);
    unusual_section(&mut s, &report.perf);
    slow_section(&mut s, &report.perf, rows);
    if full {
        changes_section(&mut s, &report.perf, rows);
        time_section(&mut s, &report.perf);
    }
    for (path, reason) in &report.unusable {
        let _ = writeln!(
            s,
            "> unusable report {}: {}\n",
            escape::inline(path, 200),
            escape::inline(reason, 300)
        );
    }
    if !full && let Some(url) = report.summary_url.as_deref().filter(|u| safe_url(u)) {
        let _ = writeln!(s, "<sub>Details in the [full report]({url}).</sub>");
    }
    s
}

/// `### Omen: …`: all passed, or how many failed and of which kind.
fn headline(report: &CiReport) -> String {
    let t = &report.totals;
    if report.failures.is_empty() {
        if let Some(log) = &report.log {
            let what = log
                .kind
                .as_deref()
                .and_then(|k| k.split(':').next())
                .map(|k| format!(" ({k})"))
                .unwrap_or_default();
            return format!(
                "### Omen: the job failed outside the tests{what} — {} test{} passed",
                t.passed,
                if t.passed == 1 { "" } else { "s" }
            );
        }
        return match t.tests {
            1 => "### Omen: the 1 test passed".to_owned(),
            n => format!("### Omen: all {n} tests passed"),
        };
    }
    let count = |pick: fn(&FailureClass) -> bool| report.of(pick).len();
    let mut parts = Vec::new();
    for (n, what) in [
        (count(|c| matches!(c, FailureClass::New)), "new"),
        (
            count(|c| matches!(c, FailureClass::FailingOnDefault { .. })),
            "also failing on the default branch",
        ),
        (
            count(|c| matches!(c, FailureClass::KnownFlaky { .. })),
            "known flaky, excused",
        ),
        (
            count(|c| matches!(c, FailureClass::Quarantined { .. })),
            "quarantined",
        ),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    format!(
        "### Omen: {} test{} failed — {}",
        report.failures.len(),
        if report.failures.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// The counts, with their change against the latest default-branch run.
fn totals_line(s: &mut String, report: &CiReport) {
    let t = &report.totals;
    let delta = |now: u64, base: Option<u64>| match base {
        Some(b) if b != now => format!(" ({:+})", now as i64 - b as i64),
        _ => String::new(),
    };
    let base = report.base;
    let _ = writeln!(
        s,
        "**{} test{}**{}: {} passed{}, {} failed{}, {} skipped, {} flaky{}{}\n",
        t.tests,
        if t.tests == 1 { "" } else { "s" },
        delta(t.tests, base.map(|b| b.tests)),
        t.passed,
        delta(t.passed, base.map(|b| b.passed)),
        t.failed,
        delta(t.failed, base.map(|b| b.failed)),
        t.skipped,
        t.flaky,
        report
            .default_branch
            .as_deref()
            .filter(|_| base.is_some())
            .map(|b| format!(
                " (changes against the latest `{}` run)",
                escape::inline(b, 60)
            ))
            .unwrap_or_default(),
        report
            .commit
            .as_deref()
            .map(|c| format!(" · commit `{}`", short(c)))
            .unwrap_or_default(),
    );
}

/// One table per kind of failure, most actionable first.
fn failure_sections(s: &mut String, report: &CiReport, rows: usize) {
    section(
        s,
        "❌ New failures — likely from this change",
        &report.of(|c| matches!(c, FailureClass::New)),
        rows,
        |f| {
            f.message
                .as_deref()
                .map(|m| escape::inline(m, 200))
                .unwrap_or_default()
        },
    );
    section(
        s,
        "⚠️ Also failing on the default branch",
        &report.of(|c| matches!(c, FailureClass::FailingOnDefault { .. })),
        rows,
        |f| match &f.class {
            FailureClass::FailingOnDefault { since: Some(c) } => {
                format!("broken since `{}`", short(c))
            }
            _ => "failing there too".to_owned(),
        },
    );
    section(
        s,
        "🔁 Known flaky — excused",
        &report.of(|c| matches!(c, FailureClass::KnownFlaky { .. })),
        rows,
        |f| match &f.class {
            FailureClass::KnownFlaky { score, evidence } => {
                format!("{:.1}% · {}", score * 100.0, escape::inline(evidence, 200))
            }
            _ => String::new(),
        },
    );
    section(
        s,
        "🧊 Quarantined",
        &report.of(|c| matches!(c, FailureClass::Quarantined { .. })),
        rows,
        |f| match &f.class {
            FailureClass::Quarantined { mode } => escape::inline(mode, 20),
            _ => String::new(),
        },
    );
}

/// The log's failing step: its headline, category and whether it is known, and the block in a
/// collapsed code block.
fn log_section(s: &mut String, report: &CiReport) {
    let Some(log) = &report.log else { return };
    let _ = writeln!(
        s,
        "#### 🪵 The job failed outside the tests\n\n{} line {}: **{}**",
        escape::inline(&log.path, 120),
        log.line,
        escape::inline(&log.headline, 240)
    );
    let mut facts = Vec::new();
    if let Some(k) = &log.kind {
        facts.push(escape::inline(k, 80));
    }
    let seen = seen_text(log.known, report.default_branch.as_deref());
    if !seen.is_empty() {
        facts.push(seen);
    }
    if !facts.is_empty() {
        let _ = writeln!(s, "\n{}", facts.join(" · "));
    }
    let _ = writeln!(
        s,
        "\n<details><summary>the log's last error block</summary>\n\n{}\n</details>\n",
        escape::code_block(&log.excerpt)
    );
}

/// Failures that share a cause, one row per cause with two or more failures: "30 failures, 1
/// cause". Single failures stay in the tables below only.
fn causes_section(s: &mut String, report: &CiReport, rows: usize) {
    let shared = report.shared_causes();
    if shared.is_empty() {
        return;
    }
    let grouped: usize = shared.iter().map(|c| c.failures.len()).sum();
    let _ = writeln!(
        s,
        "#### 🧩 {grouped} failures, {} cause{}\n\n| cause | kind | failures | seen | tests |\n| --- | --- | ---: | --- | --- |",
        shared.len(),
        if shared.len() == 1 { "" } else { "s" }
    );
    for c in shared.iter().take(rows.clamp(1, 10)) {
        let members: Vec<&FailureRow> = c
            .failures
            .iter()
            .filter_map(|&i| report.failures.get(i))
            .collect();
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for f in &members {
            let kind = match f.class {
                FailureClass::New => "new",
                FailureClass::FailingOnDefault { .. } => "failing on the default branch",
                FailureClass::KnownFlaky { .. } => "known flaky",
                FailureClass::Quarantined { .. } => "quarantined",
            };
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let names: Vec<String> = members
            .iter()
            .take(3)
            .map(|f| escape::inline(&f.name, 120))
            .collect();
        let more = members.len().saturating_sub(3);
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} | {}{} |",
            escape::inline(&c.headline, 240),
            c.kind
                .as_deref()
                .map(|k| escape::inline(k, 80))
                .unwrap_or_default(),
            members.len(),
            kinds.join(", "),
            seen_text(c.known, report.default_branch.as_deref()),
            names.join("<br>"),
            if more > 0 {
                format!("<br>… and {more} more")
            } else {
                String::new()
            }
        );
    }
    if shared.len() > rows.clamp(1, 10) {
        let _ = writeln!(
            s,
            "\n… and {} more causes in the full report.",
            shared.len() - rows.clamp(1, 10)
        );
    }
    s.push('\n');
}

/// Failing tests that belong to a group that fails together on the default branch: likelier
/// one shared cause than many bugs.
fn systemic_section(s: &mut String, report: &CiReport, rows: usize) {
    if report.systemic.is_empty() {
        return;
    }
    let branch = report
        .default_branch
        .as_deref()
        .unwrap_or("the default branch");
    let _ = writeln!(s, "#### 🔗 Tests that fail together\n");
    for g in report.systemic.iter().take(rows.clamp(1, 5)) {
        let names: Vec<String> = g
            .failures
            .iter()
            .filter_map(|&i| report.failures.get(i))
            .take(5)
            .map(|f| escape::inline(&f.name, 120))
            .collect();
        let more = g.failures.len().saturating_sub(names.len());
        let _ = writeln!(
            s,
            "- **{} failing tests** are {} of a group of {} that fail together on `{}`: most of them failed in {} of the {} runs where any of them failed (last {} runs). One shared cause — a fixture, a service, the machine — is likelier than {} separate bugs: {}{}",
            g.failures.len(),
            if g.failures.len() == g.size {
                "all"
            } else {
                "part"
            },
            g.size,
            escape::inline(branch, 60).replace('`', "'"),
            g.together,
            g.any,
            g.runs,
            g.failures.len(),
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    s.push('\n');
}

/// `new`, or `known: 14 runs since 2026-10-02, also on `main``.
fn seen_text(known: Option<Seen>, default_branch: Option<&str>) -> String {
    match known {
        None => String::new(),
        Some(k) if k.runs == 0 => "new".to_owned(),
        Some(k) => {
            let date: String = omen_core::time::format_rfc3339(k.since)
                .chars()
                .take(10)
                .collect();
            let also = if k.on_default {
                format!(
                    ", also on `{}`",
                    escape::inline(default_branch.unwrap_or("the default branch"), 60)
                )
            } else {
                String::new()
            };
            format!(
                "known: {} run{} since {date}{also}",
                k.runs,
                if k.runs == 1 { "" } else { "s" }
            )
        }
    }
}

fn quarantine_changes(s: &mut String, report: &CiReport, rows: usize) {
    if report.quarantine_changes.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "<details><summary>Quarantine changes ({})</summary>\n",
        report.quarantine_changes.len()
    );
    for change in report.quarantine_changes.iter().take(rows.max(20)) {
        let _ = writeln!(
            s,
            "- {}: {}",
            change.kind.describe(),
            escape::inline(&change.selector, 300)
        );
    }
    let _ = writeln!(s, "\n</details>\n");
}

/// `p < 0.001`, or the value.
fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p:.3}")
    }
}

/// `850 ms`, `2.31 s`.
fn ms_text(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn unusual_section(s: &mut String, perf: &PerfSection) {
    let Some(u) = &perf.unusual else { return };
    let value = |m: &UnusualMetric, v: f64| {
        if m.ms { ms_text(v) } else { format!("{v:.0}") }
    };
    let Some(first) = u.metrics.first() else {
        return;
    };
    let change = if first.expected != 0.0 {
        format!("{:+.0}% ", (first.actual / first.expected - 1.0) * 100.0)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "#### ⚠️ Unusual run ({}): {}{} ({} here, usually {})\n",
        u.severity,
        change,
        first.name,
        value(first, first.actual),
        value(first, first.expected)
    );
    let _ = writeln!(
        s,
        "Unlike the default branch's recent runs (isolation score {:.2}). Nothing in the test results says why: a directory not collected, a slower machine, a changed setup.\n",
        u.score
    );
    let _ = writeln!(
        s,
        "| metric | this run | usual | usual range | |\n| --- | ---: | ---: | --- | --- |"
    );
    for m in &u.metrics {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} – {} | {} |",
            m.name,
            value(m, m.actual),
            value(m, m.expected),
            value(m, m.range.0.max(0.0)),
            value(m, m.range.1),
            m.kind
        );
    }
    s.push('\n');
}

fn slow_section(s: &mut String, perf: &PerfSection, rows: usize) {
    if perf.slow.is_empty() {
        return;
    }
    let n = perf.slow_total;
    if perf.together {
        let mut shifts: Vec<f64> = perf
            .slow
            .iter()
            .map(|r| r.current_ms / r.baseline_ms - 1.0)
            .collect();
        shifts.sort_unstable_by(f64::total_cmp);
        let median = shifts[shifts.len() / 2];
        let _ = writeln!(
            s,
            "#### 🐢 {n} tests slower together than on the default branch (typically {:+.0}%)\n\nSo many at once is one cause: a slower machine, or something they share. A re-run tells which.\n",
            median * 100.0
        );
    } else {
        let _ = writeln!(
            s,
            "#### 🐢 {n} test{} slower than on the default branch\n",
            if n == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(
        s,
        "<details><summary>Slower tests</summary>\n\n| test | default branch | this run | change |\n| --- | ---: | ---: | --- |"
    );
    for r in perf.slow.iter().take(rows.clamp(1, 10)) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:+.0}% (+{}; {}) |",
            escape::inline(&r.name, 200),
            ms_text(r.baseline_ms),
            ms_text(r.current_ms),
            (r.current_ms / r.baseline_ms - 1.0) * 100.0,
            ms_text(r.current_ms - r.baseline_ms),
            p_text(r.p_value)
        );
    }
    let _ = writeln!(s, "\n</details>\n");
}

fn changes_section(s: &mut String, perf: &PerfSection, rows: usize) {
    if perf.changes.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "#### Duration changes on the default branch ({})\n\n| series | before | after | change | since |\n| --- | ---: | ---: | --- | --- |",
        perf.changes.len()
    );
    for c in perf.changes.iter().take(rows.clamp(1, 20)) {
        let name = match &c.name {
            Some(n) => escape::inline(n, 200),
            None => "whole suite".to_owned(),
        };
        let since = match (&c.previous_commit, &c.commit) {
            (Some(p), Some(c)) => format!("{}..{}", hex_short(p), hex_short(c)),
            (None, Some(c)) => hex_short(c),
            _ => "?".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {:+.0}% ({}) | {since}, {} |",
            ms_text(c.before_ms),
            ms_text(c.after_ms),
            (c.after_ms / c.before_ms - 1.0) * 100.0,
            p_text(c.p_value),
            omen_core::time::format_rfc3339(c.at)
                .get(..10)
                .unwrap_or("")
        );
    }
    s.push('\n');
}

/// A commit shortened to hex only (it reaches Markdown raw).
fn hex_short(commit: &str) -> String {
    format!(
        "`{}`",
        commit
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(12)
            .collect::<String>()
    )
}

fn time_section(s: &mut String, perf: &PerfSection) {
    if perf.slowest.is_empty() || perf.total_ms <= 0.0 {
        return;
    }
    let shown: f64 = perf.slowest.iter().map(|r| r.ms).sum();
    let _ = writeln!(
        s,
        "<details><summary>Where the time goes: the {} slowest tests take {:.0}% of {}</summary>\n\n| test | time | share |\n| --- | ---: | ---: |",
        perf.slowest.len(),
        shown / perf.total_ms * 100.0,
        ms_text(perf.total_ms)
    );
    for r in &perf.slowest {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1}% |",
            escape::inline(&r.name, 200),
            ms_text(r.ms),
            r.ms / perf.total_ms * 100.0
        );
    }
    let _ = writeln!(s, "\n</details>\n");
    if let Some(g) = &perf.shards {
        let _ = writeln!(
            s,
            "Shards of {} ({} jobs, the default branch's newest sharded run): the slowest takes {}, {:.2}× the mean. Split by duration, longest test first, the slowest would take {} ({:.2}×); `omen perf --format json` lists that split.\n",
            escape::inline(&g.group, 120),
            g.jobs,
            ms_text(g.slowest_ms),
            g.imbalance,
            ms_text(g.suggested_slowest_ms),
            g.suggested_imbalance
        );
    }
}

fn risk_section(s: &mut String, r: &RiskSection, rows: usize) {
    use omen_core::risk_level::RiskLevel;
    let icon = match r.level {
        RiskLevel::Critical => "🔴",
        RiskLevel::High => "🟠",
        RiskLevel::Medium => "🟡",
        RiskLevel::Low => "🟢",
    };
    let _ = writeln!(
        s,
        "#### {icon} Deploy risk: {} — {:.0}%, riskier than {:.0}% of past changes\n",
        r.level.name(),
        r.probability * 100.0,
        r.percentile
    );
    match r.gate {
        Some((t, GateVerdict::Blocked)) => {
            // Shown in a code span, where escapes would show literally: keep label characters.
            let label: String = r
                .accept_label
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || ":_.-/".contains(*c))
                .take(60)
                .collect();
            let _ = writeln!(
                s,
                "**Gate: blocked** (threshold {:.0}%). To merge anyway, a reviewer adds the label `{}` and re-runs the job.\n",
                t * 100.0,
                label
            );
        }
        Some((t, GateVerdict::Accepted)) => {
            let _ = writeln!(
                s,
                "Gate: over the threshold ({:.0}%), risk accepted by a reviewer.\n",
                t * 100.0
            );
        }
        Some((_, GateVerdict::Passes)) | None => {}
    }
    for f in r.factors.iter().take(rows.clamp(1, 5)) {
        let _ = writeln!(s, "- {}", escape::inline(f, 200));
    }
    if !r.factors.is_empty() {
        s.push('\n');
    }
    let notes: Vec<String> = r
        .hints
        .iter()
        .map(|h| format!("hint: {}", escape::inline(h, 200)))
        .chain(r.signals.iter().map(|x| escape::inline(x, 200)))
        .chain(
            r.missing
                .iter()
                .map(|m| format!("not computed: {}", escape::inline(m, 300))),
        )
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(
            s,
            "<details><summary>Review hints and signals ({})</summary>\n",
            notes.len()
        );
        for n in notes.iter().take(rows.max(10)) {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(s, "\n</details>\n");
    }
    let _ = writeln!(s, "<sub>Model: {}.</sub>\n", escape::inline(&r.model, 300));
}

fn section(
    s: &mut String,
    title: &str,
    rows_of: &[&FailureRow],
    rows: usize,
    detail: impl Fn(&FailureRow) -> String,
) {
    if rows_of.is_empty() {
        return;
    }
    let _ = writeln!(s, "#### {title} ({})\n", rows_of.len());
    let row = |f: &FailureRow| {
        let place = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{}:{line}", escape::inline(file, 200)),
            (Some(file), None) => escape::inline(file, 200),
            _ => String::new(),
        };
        format!(
            "| {} | {} | {} |\n",
            escape::inline(&f.name, 300),
            place,
            detail(f)
        )
    };
    let visible = VISIBLE_ROWS.min(rows);
    let _ = writeln!(s, "| test | where | |\n| --- | --- | --- |");
    for f in rows_of.iter().take(visible) {
        s.push_str(&row(f));
    }
    let rest = rows_of.len().saturating_sub(visible);
    if rest > 0 {
        let shown = rows.saturating_sub(visible).min(rest);
        let _ = writeln!(
            s,
            "\n<details><summary>{rest} more</summary>\n\n| test | where | |\n| --- | --- | --- |"
        );
        for f in rows_of.iter().skip(visible).take(shown) {
            s.push_str(&row(f));
        }
        if shown < rest {
            let _ = writeln!(s, "\n… and {} more in the full report.", rest - shown);
        }
        let _ = writeln!(s, "\n</details>");
    }
    s.push('\n');
}

fn trend(points: &[TrendPoint]) -> String {
    // Commits are hex from the database, but only hex reaches the chart either way.
    let labels: Vec<String> = points
        .iter()
        .map(|p| {
            short(&p.commit)
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .map(|l| format!("\"{l}\""))
        .collect();
    let rates: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1}", p.pass_rate))
        .collect();
    let durations: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1}", p.duration_s))
        .collect();
    let max_d = points
        .iter()
        .map(|p| p.duration_s.max(p.level_s.unwrap_or(0.0)))
        .fold(1.0_f64, f64::max)
        .ceil();
    // The level line shows a change point as a step; drawn only when every point has one.
    let levels: Option<Vec<String>> = points
        .iter()
        .map(|p| p.level_s.map(|l| format!("{l:.1}")))
        .collect();
    let (title, level_line) = match levels {
        Some(l) if points.len() >= 2 => (
            "Test time (s); the line is the level between change points",
            format!("    line [{}]\n", l.join(", ")),
        ),
        _ => ("Test time (s)", String::new()),
    };
    format!(
        "#### Default branch, last {n} runs\n\n```mermaid\nxychart-beta\n    title \"Pass rate (%)\"\n    x-axis [{labels}]\n    y-axis \"pass rate\" 0 --> 100\n    line [{rates}]\n```\n\n```mermaid\nxychart-beta\n    title \"{title}\"\n    x-axis [{labels}]\n    y-axis \"seconds\" 0 --> {max_d}\n    bar [{durations}]\n{level_line}```\n",
        n = points.len(),
        labels = labels.join(", "),
        rates = rates.join(", "),
        durations = durations.join(", "),
    )
}

/// Only a plain `https://` URL of unremarkable characters is ever rendered as a link.
fn safe_url(url: &str) -> bool {
    url.starts_with("https://")
        && url.len() < 400
        && url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#=&%".contains(c))
}

fn short(commit: &str) -> String {
    commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect()
}

#[cfg(test)]
mod tests;
