//! `omen flaky`: every test that is not plainly stable, with its evidence.

use std::path::PathBuf;

use omen_core::flakiness::{Assessment, FlakinessConfig, State, assess, explain};
use omen_core::history::TestHistory;
use omen_store::{Store, TestRow};
use serde::Serialize;

use crate::{Format, Outcome, output};

/// Arguments of `omen flaky`.
#[derive(Debug, clap::Args)]
pub struct FlakyArgs {
    /// History database.
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Version of the `omen flaky --format json` document.
pub const FLAKY_REPORT_VERSION: u32 = 1;

/// The JSON document.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
}

/// Evidence numbers (see `omen_core::flakiness::Evidence`).
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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

/// Assess every test; keep those worth listing. Costs one pass over the tests table.
pub fn assess_all(
    store: &Store,
    config: &FlakinessConfig,
) -> anyhow::Result<Vec<(TestRow, Assessment)>> {
    // One pass over the histories; identity strings are read only for the tests listed.
    let mut ids = Vec::new();
    store.for_each_history(|id, _, history| {
        let a = assess(history, config);
        if worth_listing(history, &a, config) {
            ids.push((id, a));
        }
    })?;
    let mut listed = Vec::with_capacity(ids.len());
    for (id, a) in ids {
        if let Some(row) = store.test(id)? {
            listed.push((row, a));
        }
    }
    listed.sort_by(|(ra, a), (rb, b)| {
        rank(a.state)
            .cmp(&rank(b.state))
            .then(b.score.total_cmp(&a.score))
            .then(ra.scope.cmp(&rb.scope))
            .then(ra.name.cmp(&rb.name))
    });
    Ok(listed)
}

fn worth_listing(history: &TestHistory, a: &Assessment, config: &FlakinessConfig) -> bool {
    match a.state {
        State::Flaky | State::Broken => true,
        // A new test is listed only once it has failed; otherwise a fresh database lists everything.
        State::New => history.db_failures > 0,
        State::Stable => a.score > config.report_floor,
    }
}

fn rank(state: State) -> u8 {
    match state {
        State::Broken => 0,
        State::Flaky => 1,
        State::New => 2,
        State::Stable => 3,
    }
}

/// Build the listed test with its last failure.
pub fn describe(store: &Store, row: &TestRow, a: &Assessment) -> anyhow::Result<FlakyTest> {
    let last_failure = match store.last_failure(row.id)? {
        Some((run_id, failure)) => {
            let run = store.run(run_id)?;
            Some(LastFailure {
                message: failure.headline().map(str::to_owned),
                commit: run.as_ref().and_then(|r| r.commit.clone()),
                run: run.as_ref().and_then(|r| r.run_id.clone()),
                at: run.as_ref().map(|r| omen_core::time::format_rfc3339(r.at)),
            })
        }
        None => None,
    };
    let broken_since = if a.state == State::Broken {
        store
            .run(row.history.streak_run as i64)?
            .and_then(|r| r.commit)
    } else {
        None
    };
    let e = &a.evidence;
    Ok(FlakyTest {
        id: omen_core::identity::key_of(&row.scope, &row.name),
        classname: row.scope.clone(),
        name: row.name.clone(),
        file: row.file.clone(),
        selector: row.selector.clone(),
        runner: row.runner.clone(),
        state: a.state.as_str(),
        score: round4(a.score),
        uncertainty: round4(a.uncertainty),
        explanation: explain(a),
        evidence: EvidenceJson {
            same_commit_flakes: e.same_commit_flakes,
            same_commit_span_days: e.same_commit_span_days.map(|d| (d * 10.0).round() / 10.0),
            runs_since_same_commit_flake: e.runs_since_same_commit_flake,
            window_runs: e.window_runs,
            window_failures: e.window_failures,
            retry_flakes: e.retry_flakes,
            flips: e.flips,
            short_episodes: e.short_episodes,
            regressions: e.regressions,
            fail_streak: e.fail_streak,
            broken_streak: e.broken_streak,
            clean_runs: e.clean_runs,
            outage_failures: e.outage_failures,
        },
        last_failure,
        broken_since,
    })
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Run `omen flaky`.
pub fn run(args: &FlakyArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let store = match Store::open_read_only(&args.db) {
        Ok(store) => store,
        Err(err) => {
            tracing::warn!("{err}");
            if matches!(err, omen_store::StoreError::Missing { .. }) {
                tracing::warn!(
                    "hint: run `omen ingest` on the default branch first to build the history"
                );
            }
            if args.format == Format::Json {
                output::print_json(&FlakyReport {
                    version: FLAKY_REPORT_VERSION,
                    tests: vec![],
                    error: Some(err.to_string()),
                })?;
            }
            return Ok(Outcome::with_trouble(true));
        }
    };
    let listed = assess_all(&store, &config.flakiness)?;
    let mut tests = Vec::with_capacity(listed.len());
    for (row, a) in &listed {
        tests.push(describe(&store, row, a)?);
    }
    match args.format {
        Format::Json => output::print_json(&FlakyReport {
            version: FLAKY_REPORT_VERSION,
            tests,
            error: None,
        })?,
        Format::Text => output::print(&render_text(&tests)),
    }
    Ok(Outcome::OK)
}

fn render_text(tests: &[FlakyTest]) -> String {
    use omen_render::escape::line;
    use std::fmt::Write;
    if tests.is_empty() {
        return "omen: no flaky or broken tests on the default branch\n".to_owned();
    }
    let count = |s: &str| tests.iter().filter(|t| t.state == s).count();
    let mut out = format!(
        "omen: {} broken, {} flaky, {} other test(s) worth a look\n",
        count("broken"),
        count("flaky"),
        tests.len() - count("broken") - count("flaky")
    );
    for t in tests {
        let score = if t.state == "broken" {
            "   —  ".to_owned()
        } else {
            format!("{:>5.1}%", t.score * 100.0)
        };
        let _ = writeln!(out, "\n  {:<7} {score}  {}", t.state, line(&t.selector));
        let _ = writeln!(out, "          {}", line(&t.explanation));
        if let Some(since) = &t.broken_since {
            let _ = writeln!(
                out,
                "          broken since commit {}",
                line(&since.chars().take(12).collect::<String>())
            );
        }
        if let Some(f) = &t.last_failure
            && let Some(m) = &f.message
        {
            let m: String = m.chars().take(120).collect();
            let _ = writeln!(out, "          last failure: {}", line(&m));
        }
    }
    out
}
