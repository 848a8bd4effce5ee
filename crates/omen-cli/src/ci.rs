//! `omen ci`: the one command the GitHub Action runs. Ingest → classify → (default branch)
//! refresh the quarantine → render → post → outputs → exit code. Locally it prints what it would
//! post.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use omen_core::flakiness::{State, Verdict, assess, explain, judge_failure};
use omen_core::history::failure_signature;
use omen_core::run::TestResult;
use omen_forge::{ForgeError, GitHub, RetryPolicy, Token};
use omen_metadata::exit_code;
use omen_metadata::quarantine::{Mode, QUARANTINE_VERSION, QuarantineFile};
use omen_render::{
    CiReport, FailureClass, FailureRow, GateVerdict, RiskSection, SlowRow, Totals, TrendPoint,
};
use omen_store::Store;

use crate::{Outcome, RunArgs, output};

/// When to post the pull-request comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommentMode {
    /// Only when something failed or the quarantine changed; an existing comment is kept current.
    Auto,
    /// On every pull-request run.
    Always,
    /// Never.
    Off,
}

/// When the step fails the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// A test failed that is neither quarantined nor a known flaky failure.
    UnexcusedFailures,
    /// Never.
    Never,
}

/// Whether `omen ci` scores the change's deploy risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RiskMode {
    /// When the working directory is a git checkout.
    Auto,
    /// Never.
    Off,
}

/// Arguments of `omen ci` (the action's inputs).
#[derive(Debug, clap::Args)]
pub struct CiArgs {
    /// Report files, directories or globs.
    #[arg(long = "reports", required = true, num_args = 1.., value_name = "REPORTS")]
    pub reports: Vec<String>,
    /// History database.
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// When to post the pull-request comment.
    #[arg(long, value_enum, default_value_t = CommentMode::Auto)]
    pub comment: CommentMode,
    /// When to fail the job.
    #[arg(long, value_enum, default_value_t = FailOn::UnexcusedFailures)]
    pub fail_on: FailOn,
    /// The quarantine file (read on every branch; refreshed on the default branch).
    #[arg(long, default_value = ".omen/quarantine.json", env = "OMEN_QUARANTINE")]
    pub quarantine_file: PathBuf,
    /// Where the comment body is saved when it cannot be posted.
    #[arg(long, value_name = "PATH")]
    pub comment_file: Option<PathBuf>,
    /// Exit 3 on Omen's own trouble (default: warn, exit 0).
    #[arg(long)]
    pub strict: bool,
    /// Score the change's deploy risk (base branch...HEAD of the checkout in `--repo`).
    #[arg(long, value_enum, default_value_t = RiskMode::Auto)]
    pub risk: RiskMode,
    /// The git checkout whose change is scored.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// On pull request runs, fail the step (exit 1) when the deploy risk is at or above the
    /// threshold.
    #[arg(long)]
    pub risk_gate: bool,
    /// The gate's threshold (default: `[risk] gate_threshold`, 0.7).
    #[arg(long, value_name = "P")]
    pub risk_threshold: Option<f64>,
    /// A reviewer accepted the risk: report, never block. Also set by the pull request label
    /// `omen:accept-risk` or `OMEN_ACCEPT_RISK=true`.
    #[arg(long, env = "OMEN_ACCEPT_RISK")]
    pub accept_risk: bool,
    /// Run metadata overrides.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Run `omen ci`.
pub fn run(args: &CiArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let now = crate::now();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    // Omen's trouble in storing the run is a warning: the comment still tells what failed.
    let run = crate::ingest::ingest_run(
        &args.reports,
        1 << 30,
        &args.db,
        &args.run,
        &config.store,
        true,
    )?;
    let (meta, mut store) = (run.meta, run.store);
    let mut trouble = run.trouble;
    let is_default = meta.is_default_branch();

    // A quarantine file Omen cannot read is never replaced: it may hold someone's manual entries.
    let (quarantine, readable) = match crate::quarantine::read_file(&args.quarantine_file) {
        Ok(file) => (
            file.unwrap_or(QuarantineFile {
                version: QUARANTINE_VERSION,
                tests: vec![],
            }),
            true,
        ),
        Err(err) => {
            tracing::warn!(
                "{err:#}; nothing is treated as quarantined, and the file is left untouched"
            );
            trouble = true;
            (
                QuarantineFile {
                    version: QUARANTINE_VERSION,
                    tests: vec![],
                },
                false,
            )
        }
    };

    // On the default branch, refresh the quarantine from the history just updated.
    let mut quarantine_changes = Vec::new();
    if is_default
        && readable
        && let Some(s) = store.as_ref()
    {
        match crate::quarantine::refresh(
            s,
            &args.quarantine_file,
            &quarantine,
            &config.quarantine,
            &config.flakiness,
            Mode::RunIgnore,
            now,
            false,
        ) {
            Ok(crate::quarantine::Refreshed::Refused(refusal)) => {
                tracing::warn!("quarantine not updated: {refusal}");
            }
            Ok(crate::quarantine::Refreshed::Written { changes, .. }) => {
                for (what, ids) in [
                    ("added", changes.added),
                    ("released", changes.released),
                    ("removed, broken", changes.broken),
                    ("dropped", changes.dropped),
                ] {
                    quarantine_changes.extend(ids.into_iter().map(|id| (what.to_owned(), id)));
                }
            }
            Err(err) => {
                tracing::warn!("quarantine not updated: {err:#}");
                trouble = true;
            }
        }
    }

    let threshold = args.risk_threshold.unwrap_or(config.risk.gate_threshold);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(crate::UsageError(anyhow::anyhow!(
            "--risk-threshold must be between 0 and 1, got {threshold}"
        ))
        .into());
    }
    let mut report = build_report(
        &run.results,
        &run.totals,
        &run.files,
        &quarantine,
        store.as_ref(),
        &meta,
        config,
        now,
        quarantine_changes,
    );
    let mut ci_signals = ci_signals(&report);
    // A push's commit has no pull request event, but the merged pull request that produced it
    // says how long it was reviewed: the signal is then known for the predictions the default
    // branch keeps, which are the ones the second stage learns from.
    if args.risk != RiskMode::Off
        && is_default
        && meta.pull_request.is_none()
        && store.is_some()
        && let Some(gh) =
            github_client(LOOKUP_RETRY).and_then(|c| c.map_err(|e| tracing::info!("{e}")).ok())
        && let Ok(sha) = crate::git::rev_parse(&args.repo, "HEAD")
    {
        ci_signals.merged_pull = merged_pull(&gh, &sha);
    }
    let risk = match (args.risk, store.as_mut()) {
        (RiskMode::Off, _) => None,
        (RiskMode::Auto, None) => {
            tracing::warn!("deploy risk not scored: the history database is unavailable");
            None
        }
        (RiskMode::Auto, Some(s)) if crate::git::is_work_tree(&args.repo) => {
            // Only the default branch's database is kept, so SZZ labelling runs there only.
            let budget = if is_default {
                std::time::Duration::from_secs_f64(config.risk.szz_budget_s)
            } else {
                std::time::Duration::ZERO
            };
            match crate::risk::score_in(
                s,
                &args.repo,
                None,
                "HEAD",
                &config.risk,
                budget,
                &ci_signals,
                now,
            ) {
                Ok(r) => Some(r),
                Err(err) => {
                    tracing::warn!("deploy risk could not be scored: {err:#}");
                    trouble = true;
                    None
                }
            }
        }
        (RiskMode::Auto, Some(_)) => {
            tracing::info!(
                "deploy risk not scored: {} is not a git checkout",
                args.repo.display()
            );
            None
        }
    };
    // The gate guards merges: on a push the change is already in, and the pull request's
    // `omen:accept-risk` label is no longer visible, so it would block what a reviewer accepted.
    // Deploy jobs gate with `omen risk gate`.
    if args.risk_gate && meta.pull_request.is_none() {
        tracing::info!(
            "the risk gate applies to pull request runs; this run only reports the risk (use `omen risk gate` in a deploy job)"
        );
    }
    let gate = risk
        .as_ref()
        .filter(|_| args.risk_gate && meta.pull_request.is_some())
        .map(|r| {
            let accepted = args.accept_risk || crate::risk::pr_has_label(crate::risk::ACCEPT_LABEL);
            let over = r.probability >= threshold;
            let verdict = match (over, accepted) {
                (false, _) => GateVerdict::Passes,
                (true, true) => GateVerdict::Accepted,
                (true, false) => GateVerdict::Blocked,
            };
            (threshold, verdict)
        });

    report.risk = risk.as_ref().map(|r| risk_section(r, gate));
    let comment = omen_render::comment(&report);
    let summary = omen_render::summary(&report);

    // Job summary and annotations.
    if let Some(path) = env("GITHUB_STEP_SUMMARY") {
        append(Path::new(&path), &summary).unwrap_or_else(|e| {
            tracing::warn!("cannot write the job summary: {e:#}");
        });
    }
    let in_actions = env("GITHUB_ACTIONS").as_deref() == Some("true");
    if in_actions {
        let lines = omen_render::annotations(&report);
        if !lines.is_empty() {
            output::print(&(lines.join("\n") + "\n"));
        }
    }

    // The comment.
    let wants_comment = match args.comment {
        CommentMode::Off => false,
        CommentMode::Always => true,
        CommentMode::Auto => {
            !report.failures.is_empty()
                || !report.quarantine_changes.is_empty()
                || report.risk.as_ref().is_some_and(|r| r.is_notable())
        }
    };
    let mut comment_url = String::new();
    match (meta.pull_request, args.comment) {
        (_, CommentMode::Off) => {}
        (None, _) => {
            if !in_actions {
                output::print(&comment);
            }
        }
        (Some(pr), mode) => {
            match github_client(config.github) {
                Some(client) => {
                    let posted = client.and_then(|gh| {
                        if wants_comment {
                            gh.upsert_comment(pr, omen_render::MARKER, &comment)
                                .map(Some)
                        } else if mode == CommentMode::Auto {
                            // A clean run posts nothing new, but keeps an earlier comment truthful.
                            gh.update_comment_if_present(pr, omen_render::MARKER, &comment)
                        } else {
                            Ok(None)
                        }
                    });
                    match posted {
                        Ok(Some(p)) => comment_url = p.url,
                        Ok(None) => {}
                        Err(ForgeError::Forbidden {
                            status, message, ..
                        }) => {
                            let saved = save_comment(args, &comment);
                            tracing::warn!(
                                "the token cannot comment on this pull request (HTTP {status}: {message}); nothing was posted. \
                                 The comment was saved to {saved}. For pull requests from forks, publish it from a \
                                 `workflow_run` workflow with `omen comment --body <file> --pr {pr}` (see examples/github/)"
                            );
                        }
                        Err(err) => {
                            let saved = save_comment(args, &comment);
                            tracing::warn!("{err}; the comment was saved to {saved}");
                            trouble = true;
                        }
                    }
                }
                None => {
                    let saved = save_comment(args, &comment);
                    tracing::warn!(
                        "GITHUB_TOKEN or GITHUB_REPOSITORY is not set: nothing posted; the comment was saved to {saved}"
                    );
                    if !in_actions {
                        output::print(&comment);
                    }
                }
            }
        }
    }

    // Outputs.
    if let Some(path) = env("GITHUB_OUTPUT") {
        let count = |pick: fn(&FailureClass) -> bool| {
            report.failures.iter().filter(|f| pick(&f.class)).count()
        };
        let outputs = format!(
            "tests={}\nfailed={}\nnew-failures={}\nflaky={}\nquarantined={}\nrisk={}\nrisk-level={}\ncomment-url={}\n",
            report.totals.tests,
            report.totals.failed,
            count(|c| matches!(c, FailureClass::New)),
            count(|c| matches!(c, FailureClass::KnownFlaky { .. })),
            count(|c| matches!(c, FailureClass::Quarantined { .. })),
            risk.as_ref()
                .map(|r| format!("{:.4}", r.probability))
                .unwrap_or_default(),
            risk.as_ref().map(|r| r.level.clone()).unwrap_or_default(),
            comment_url,
        );
        append(Path::new(&path), &outputs)
            .unwrap_or_else(|e| tracing::warn!("cannot write outputs: {e:#}"));
    }

    let unexcused = report.unexcused();
    let mut blocked = false;
    if args.fail_on == FailOn::UnexcusedFailures && unexcused > 0 {
        tracing::error!(
            "{unexcused} test failure(s) are not excused by quarantine or known flakiness"
        );
        blocked = true;
    }
    if let (Some(r), Some((t, GateVerdict::Blocked))) = (&risk, gate) {
        tracing::error!(
            "deploy risk {:.2} ({}) is at or above the gate threshold {t:.2}. To merge anyway, add the label `{}` to the pull request and re-run, or set the action input `accept-risk: true` (OMEN_ACCEPT_RISK=true).",
            r.probability,
            r.level,
            crate::risk::ACCEPT_LABEL
        );
        blocked = true;
    }
    if blocked {
        return Ok(Outcome {
            code: exit_code::GATE,
        });
    }
    Ok(Outcome::with_trouble(trouble, args.strict))
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    results: &[TestResult],
    totals: &omen_metadata::ingest::Counts,
    files: &[omen_metadata::ingest::FileSummary],
    quarantine: &QuarantineFile,
    store: Option<&Store>,
    meta: &omen_core::run::RunMeta,
    config: &crate::config::Config,
    now: i64,
    quarantine_changes: Vec<(String, String)>,
) -> CiReport {
    let active: std::collections::HashMap<&str, &str> = quarantine
        .tests
        .iter()
        .filter(|e| crate::parse_time(&e.expires).is_ok_and(|t| t >= now))
        .map(|e| (e.id.as_str(), e.mode.as_str()))
        .collect();
    let mut failures = Vec::new();
    let mut slow = Vec::new();
    for r in results {
        let id = &r.identity;
        let known = store.and_then(|s| s.find_test(&id.scope, &id.name).ok().flatten());
        if !r.outcome.is_failure() {
            // Slowest regressions: far above the test's usual passing time on the default branch.
            if let (Some(ms), Some(row)) = (r.duration_ms, known.as_ref()) {
                let h = &row.history;
                let mean = f64::from(h.duration_mean);
                let sd = f64::from(h.duration_stddev().unwrap_or(0.0));
                if h.duration_count >= 5
                    && f64::from(ms) > (2.0 * mean).max(mean + 3.0 * sd)
                    && f64::from(ms) - mean >= 1000.0
                {
                    slow.push(SlowRow {
                        name: id.selector.clone(),
                        duration_ms: ms,
                        baseline_ms: mean,
                    });
                }
            }
            continue;
        }
        let message = r
            .failure
            .as_ref()
            .and_then(|f| f.headline())
            .map(str::to_owned);
        let class = if let Some(mode) = active.get(format!("{}::{}", id.scope, id.name).as_str()) {
            FailureClass::Quarantined {
                mode: (*mode).to_owned(),
            }
        } else if let Some(row) = known.as_ref() {
            let a = assess(&row.history, &config.flakiness);
            let verdict =
                judge_failure(&a, &row.history, message.as_deref().map(failure_signature));
            if verdict == Verdict::Excused {
                FailureClass::KnownFlaky {
                    score: a.score,
                    evidence: explain(&a),
                }
            } else if a.state == State::Broken
                || (!meta.is_default_branch() && row.history.fail_streak > 0)
            {
                let since = store
                    .and_then(|s| s.run(row.history.streak_run as i64).ok().flatten())
                    .and_then(|run| run.commit);
                FailureClass::FailingOnDefault { since }
            } else {
                FailureClass::New
            }
        } else {
            FailureClass::New
        };
        failures.push(FailureRow {
            name: id.selector.clone(),
            file: id.file.clone(),
            line: r.line,
            message,
            class,
        });
    }
    slow.sort_by(|a, b| {
        (b.duration_ms as f64 - b.baseline_ms).total_cmp(&(a.duration_ms as f64 - a.baseline_ms))
    });
    slow.truncate(10);

    let mut base = None;
    let mut trend = Vec::new();
    if let Some(s) = store {
        let runs = s.recent_default_runs(20).unwrap_or_default();
        // The latest default-branch run other than this one.
        base = runs
            .iter()
            .rev()
            .find(|r| r.commit != meta.commit || r.attempt != meta.attempt)
            .map(|r| Totals {
                tests: r.tests,
                passed: r.tests - r.failed - r.skipped,
                failed: r.failed,
                skipped: r.skipped,
                flaky: r.mixed,
            });
        trend = runs
            .iter()
            .map(|r| {
                let ran = (r.tests - r.skipped).max(1) as f64;
                TrendPoint {
                    commit: r.commit.clone().unwrap_or_default(),
                    pass_rate: (r.tests - r.skipped - r.failed) as f64 / ran * 100.0,
                    duration_s: r.duration_ms as f64 / 1000.0,
                }
            })
            .collect();
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let summary_url = match (
        env("GITHUB_SERVER_URL"),
        env("GITHUB_REPOSITORY"),
        env("GITHUB_RUN_ID"),
    ) {
        (Some(server), Some(repo), Some(run)) => {
            Some(format!("{server}/{repo}/actions/runs/{run}"))
        }
        _ => None,
    };
    CiReport {
        commit: meta.commit.clone(),
        default_branch: meta.default_branch.clone(),
        totals: Totals {
            tests: totals.tests,
            passed: totals.passed,
            failed: totals.failures + totals.errors,
            skipped: totals.skipped,
            flaky: totals.flaky,
        },
        base,
        failures,
        quarantine_changes,
        slow,
        trend,
        unusable: files
            .iter()
            .filter_map(|f| {
                f.error
                    .as_ref()
                    .map(|e| (f.path.clone(), e.message.clone()))
            })
            .collect(),
        summary_url,
        risk: None,
    }
}

/// Retries for lookups that only enrich the report: a few seconds at most, never the budget a
/// comment gets.
const LOOKUP_RETRY: RetryPolicy = RetryPolicy {
    attempts: 2,
    backoff: std::time::Duration::from_secs(1),
    budget: std::time::Duration::from_secs(5),
};

/// A GitHub client from the Actions environment (`GITHUB_TOKEN`, `GITHUB_REPOSITORY`,
/// `GITHUB_API_URL`), or `None` without a token or repository (outside GitHub Actions).
fn github_client(retry: RetryPolicy) -> Option<Result<GitHub, ForgeError>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let token = Token::new(env("GITHUB_TOKEN")?);
    let repository = env("GITHUB_REPOSITORY")?;
    let api = env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned());
    Some(GitHub::new(&api, &token, &repository, retry))
}

/// `(number, hours open)` of the merged pull request that produced `sha`. Any trouble is only
/// logged: the signal is then unknown, as it is for a direct push.
fn merged_pull(gh: &GitHub, sha: &str) -> Option<(u64, f64)> {
    let pull = match gh.merged_pull_of(sha) {
        Ok(p) => p?,
        Err(e) => {
            tracing::info!("the pull request of {sha} could not be looked up: {e}");
            return None;
        }
    };
    let times = crate::parse_time(&pull.created_at)
        .and_then(|c| Ok((c, crate::parse_time(&pull.merged_at)?)));
    match times {
        Ok((created, merged)) => Some((pull.number, (merged - created).max(0) as f64 / 3600.0)),
        Err(e) => {
            tracing::info!("pull request #{}: {e:#}", pull.number);
            None
        }
    }
}

/// This run's own CI signals: new failures, and the change in the number of tests.
fn ci_signals(report: &CiReport) -> crate::risk::CiSignals {
    let new = report
        .failures
        .iter()
        .filter(|f| matches!(f.class, FailureClass::New))
        .count();
    crate::risk::CiSignals {
        merged_pull: None,
        new_failures: Some(new as u64),
        test_delta: report
            .base
            .map(|base| report.totals.tests as i64 - base.tests as i64),
    }
}

/// The comment's deploy-risk section: the score, its factors, and the signals (this run's own
/// among them, which `score_in` worded from the `CiSignals` it was given).
fn risk_section(
    r: &omen_metadata::risk::RiskReport,
    gate: Option<(f64, GateVerdict)>,
) -> RiskSection {
    let mut model = format!("{} ({})", r.model, r.kind);
    if let Some(stage) = r.signals_stage.as_ref().filter(|s| s.applied) {
        model.push_str(&format!(
            ", {:.0}% before CI signals, whose weights were learned from {} past predictions",
            stage.base_probability * 100.0,
            stage.samples
        ));
    }
    if let Some(why) = &r.fallback_reason {
        model.push_str(&format!(
            " — the repository's own model was not used: {why}"
        ));
    }
    RiskSection {
        level: r.level.clone(),
        probability: r.probability,
        percentile: r.percentile,
        model,
        factors: r.factors.clone(),
        hints: r.hints.clone(),
        signals: r.signals.clone(),
        missing: r.missing.clone(),
        gate,
        accept_label: crate::risk::ACCEPT_LABEL.to_owned(),
    }
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

fn save_comment(args: &CiArgs, body: &str) -> String {
    let path = args.comment_file.clone().unwrap_or_else(|| {
        std::env::var_os("RUNNER_TEMP")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".omen"))
            .join("omen-comment.md")
    });
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::write(&path, body) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("nowhere ({}: {e})", path.display()),
    }
}

/// Arguments of `omen comment`.
#[derive(Debug, clap::Args)]
pub struct CommentArgs {
    /// The comment body (written by `omen ci` when it could not post).
    #[arg(long, value_name = "FILE")]
    pub body: PathBuf,
    /// Pull request number.
    #[arg(long, value_name = "N")]
    pub pr: u64,
    /// Exit 3 when posting fails (default: warn, exit 0).
    #[arg(long)]
    pub strict: bool,
}

/// Run `omen comment`: post or update Omen's comment from a saved body (the `workflow_run`
/// pattern for pull requests from forks).
pub fn comment(args: &CommentArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let body = std::fs::read_to_string(&args.body)
        .with_context(|| format!("cannot read `{}`", args.body.display()))?;
    anyhow::ensure!(
        body.starts_with(omen_render::MARKER),
        "`{}` is not a comment written by `omen ci` (it lacks Omen's marker)",
        args.body.display()
    );
    let token = std::env::var("GITHUB_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Token::new)
        .context("GITHUB_TOKEN is not set")?;
    let repository = std::env::var("GITHUB_REPOSITORY").context("GITHUB_REPOSITORY is not set")?;
    let api =
        std::env::var("GITHUB_API_URL").unwrap_or_else(|_| "https://api.github.com".to_owned());
    let gh = GitHub::new(&api, &token, &repository, config.github)?;
    match gh.upsert_comment(args.pr, omen_render::MARKER, &body) {
        Ok(posted) => {
            output::print(&format!(
                "omen: {} {}\n",
                if posted.updated { "updated" } else { "created" },
                posted.url
            ));
            Ok(Outcome::OK)
        }
        Err(err) => {
            tracing::warn!("{err}");
            Ok(Outcome::with_trouble(true, args.strict))
        }
    }
}
