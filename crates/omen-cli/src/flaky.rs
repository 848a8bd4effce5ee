//! `omen flaky`: every test that is not plainly stable, with its evidence.

use std::path::PathBuf;

use omen_core::flakiness::{
    Assessment, FlakinessConfig, State, assess, explain, reasons, worth_listing,
};
use omen_metadata::flaky::{
    EvidenceJson, FLAKY_REPORT_VERSION, FlakyReport, FlakyTest, LastFailure, ReasonJson,
};
use omen_store::{Store, TestRow};

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
    /// Explain these tests instead of listing those worth a look: every test whose selector or
    /// stored key equals or contains PATTERN, with each rule, the value observed and its threshold.
    #[arg(long, value_name = "PATTERN")]
    pub test: Option<String>,
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
        a.state
            .urgency()
            .cmp(&b.state.urgency())
            .then(b.score.total_cmp(&a.score))
            .then(ra.scope.cmp(&rb.scope))
            .then(ra.name.cmp(&rb.name))
    });
    Ok(listed)
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
        reasons: None,
    })
}

/// Every test whose selector or stored key equals or contains `pattern`, assessed, most urgent
/// first.
pub fn matching(
    store: &Store,
    pattern: &str,
    config: &FlakinessConfig,
) -> anyhow::Result<Vec<(TestRow, Assessment)>> {
    let mut found = Vec::new();
    store.for_each_test(|row| {
        let key = omen_core::identity::key_of(&row.scope, &row.name);
        if row.selector.contains(pattern) || key.contains(pattern) {
            let a = assess(&row.history, config);
            found.push((row, a));
        }
    })?;
    found.sort_by(|(ra, a), (rb, b)| {
        let partial = |r: &TestRow| {
            r.selector != pattern && omen_core::identity::key_of(&r.scope, &r.name) != pattern
        };
        partial(ra)
            .cmp(&partial(rb))
            .then(a.state.urgency().cmp(&b.state.urgency()))
            .then(ra.selector.cmp(&rb.selector))
    });
    Ok(found)
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
    let listed = match &args.test {
        Some(pattern) => matching(&store, pattern, &config.flakiness)?,
        None => assess_all(&store, &config.flakiness)?,
    };
    let mut tests = Vec::with_capacity(listed.len());
    for (row, a) in &listed {
        let mut t = describe(&store, row, a)?;
        if args.test.is_some() {
            t.reasons = Some(
                reasons(&row.history, a, &config.flakiness)
                    .into_iter()
                    .map(|r| ReasonJson {
                        rule: r.rule.to_owned(),
                        observed: r.observed,
                        threshold: r.threshold,
                        holds: r.holds,
                    })
                    .collect(),
            );
        }
        tests.push(t);
    }
    match args.format {
        Format::Json => output::print_json(&FlakyReport {
            version: FLAKY_REPORT_VERSION,
            tests,
            error: None,
        })?,
        Format::Text => match &args.test {
            Some(pattern) => output::print(&render_explained(pattern, &tests)),
            None => output::print(&render_text(&tests)),
        },
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

fn render_explained(pattern: &str, tests: &[FlakyTest]) -> String {
    use omen_render::escape::line;
    use std::fmt::Write;
    if tests.is_empty() {
        return format!(
            "omen: no test in the history matches `{}` (a selector, a key or part of one)\n",
            line(pattern)
        );
    }
    let mut out = format!("omen: {} test(s) match `{}`\n", tests.len(), line(pattern));
    for t in tests {
        let _ = writeln!(
            out,
            "\n  {}: {} (score {:.1}% ± {:.1}%)",
            line(&t.selector),
            t.state,
            t.score * 100.0,
            t.uncertainty * 100.0
        );
        for r in t.reasons.iter().flatten() {
            let mark = if r.holds { "yes" } else { "no " };
            let _ = writeln!(
                out,
                "    {mark}  {}: {}; {}",
                line(&r.rule),
                line(&r.observed),
                line(&r.threshold)
            );
        }
        if let Some(f) = &t.last_failure
            && let Some(m) = &f.message
        {
            let m: String = m.chars().take(120).collect();
            let _ = writeln!(out, "         last failure: {}", line(&m));
        }
    }
    out
}
