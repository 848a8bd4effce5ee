//! `omen risk score|gate|evaluate` and `omen deploy record`: deploy risk at the edges.
//!
//! The flow of `score`: bring the stored repository history up to the base commit (one `git log`
//! of the new commits), label what can be labelled (reverts, SZZ within a time budget, failed
//! deploys), retrain when due, pick a model down the fallback chain, score `base...head`,
//! record the prediction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use omen_metadata::risk::{
    AucGain, EvalBaselines, EvalFigures, EvaluationReport, GateReport, RISK_REPORT_VERSION,
    RiskReport, SignalsStage,
};
use omen_risk::assess;
use omen_risk::choice::{self, Chosen};
use omen_risk::features::{DiffHints, Feature, FeatureVector, LabelledChange};
use omen_risk::history::RepoHistory;
use omen_risk::model::RiskModel;
use omen_risk::review::{self, feature_vector, hints, repository_features};
use omen_risk::signal_model::{self, SignalConfig, TrackedRow};
use omen_risk::signals::{Signal, Signals};
use omen_risk::train::{TrainConfig, TrainError};
use omen_store::{ChangeRow, ModelRow, Store};

use crate::config::{Config, RiskConfig};
use crate::{Format, Outcome, git, output};

/// `omen risk …`
#[derive(Debug, clap::Args)]
pub struct RiskArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RiskCommand,
}

/// Risk subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RiskCommand {
    /// Score the change base...head: probability, percentile, level, model, factors.
    Score(ScoreArgs),
    /// Score, then exit 1 when the probability is at or above the threshold.
    Gate(GateArgs),
    /// Train and test on a public JIT dataset, time-ordered, against two baselines.
    Evaluate(EvaluateArgs),
}

/// Arguments of `omen risk score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// History database.
    #[arg(
        long,
        default_value = ".omen/history.db",
        value_name = "PATH",
        env = "OMEN_DB"
    )]
    pub db: PathBuf,
    /// The git checkout.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Base of the change (default: the PR's base branch in CI, else HEAD^).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Head of the change.
    #[arg(long, default_value = "HEAD", value_name = "REF")]
    pub head: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Arguments of `omen risk gate`.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// Everything `score` takes.
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Block at or above this probability (default: `[risk] gate_threshold`, 0.7; `--threshold`
    /// is an older spelling).
    #[arg(
        long = "risk-threshold",
        alias = "threshold",
        value_name = "P",
        value_parser = crate::gate_arg
    )]
    pub threshold: Option<omen_core::gate::Gate>,
    /// A reviewer accepted the risk: report, never block. Also set by the pull request label
    /// `omen:accept-risk` or `OMEN_ACCEPT_RISK=true`.
    #[arg(long, env = "OMEN_ACCEPT_RISK")]
    pub accept_risk: bool,
}

/// Arguments of `omen risk evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The dataset (CSV).
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Its layout (default: detected from the header).
    #[arg(long, value_name = "issta21|kamei|apachejit", value_parser = parse_layout)]
    pub layout: Option<omen_risk::dataset::Layout>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Newest share of changes used as the test period.
    #[arg(long, default_value_t = 0.35)]
    pub test_share: f64,
    /// Days left out between training and test.
    #[arg(long, default_value_t = 30.0)]
    pub gap_days: f64,
}

/// `omen deploy …`
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DeployCommand,
}

/// Deploy subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DeployCommand {
    /// Record a deploy's outcome; a failed or rolled-back deploy labels its commit risky.
    Record(RecordArgs),
}

/// Arguments of `omen deploy record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// History database.
    #[arg(
        long,
        default_value = ".omen/history.db",
        value_name = "PATH",
        env = "OMEN_DB"
    )]
    pub db: PathBuf,
    /// Deployed commit.
    #[arg(long, value_name = "SHA")]
    pub commit: String,
    /// Environment name.
    #[arg(long, value_name = "NAME")]
    pub environment: String,
    /// Outcome.
    #[arg(long, value_name = "success|failure|rolled-back", value_parser = parse_outcome)]
    pub outcome: DeployOutcome,
    /// When (RFC 3339; default now).
    #[arg(long, value_name = "RFC3339", value_parser = crate::time_arg)]
    pub at: Option<i64>,
}

use omen_core::deploy::DeployOutcome;
pub use omen_core::gate::ACCEPT_LABEL;
use omen_core::label::LabelSource;

fn parse_layout(name: &str) -> Result<omen_risk::dataset::Layout, String> {
    omen_risk::dataset::Layout::from_name(name)
        .ok_or_else(|| format!("unknown layout `{name}`: expected issta21, kamei or apachejit"))
}

fn parse_outcome(text: &str) -> Result<DeployOutcome, String> {
    DeployOutcome::from_name(text)
        .ok_or_else(|| format!("must be success, failure or rolled-back, got `{text}`"))
}

/// Run `omen risk …`.
pub fn run(args: &RiskArgs, config: &Config) -> anyhow::Result<Outcome> {
    match &args.command {
        RiskCommand::Score(a) => score_command(a, None, config),
        RiskCommand::Gate(g) => score_command(&g.score, Some(g), config),
        RiskCommand::Evaluate(a) => evaluate_command(a),
    }
}

fn score_command(
    args: &ScoreArgs,
    gate: Option<&GateArgs>,
    config: &Config,
) -> anyhow::Result<Outcome> {
    let report = match score(args, &config.risk, crate::now()) {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!("deploy risk could not be scored: {err:#}");
            return Ok(Outcome::with_trouble(true));
        }
    };
    let mut report = report;
    let mut code = omen_metadata::exit_code::OK;
    let mut blocked = None;
    if let Some(g) = gate {
        let gate = g.threshold.unwrap_or(config.risk.gate);
        let accepted = g.accept_risk || pr_has_label(ACCEPT_LABEL);
        let verdict = gate.judge(report.probability, accepted);
        report.gate = Some(GateReport {
            threshold: gate.threshold(),
            over: verdict != omen_core::gate::GateVerdict::Passes,
            accepted,
            blocked: verdict == omen_core::gate::GateVerdict::Blocked,
        });
        if verdict == omen_core::gate::GateVerdict::Blocked {
            code = omen_metadata::exit_code::GATE;
            blocked = Some(gate.blocked_message(report.probability, &report.level));
        }
    }
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Text => output::print(&render_text(&report)),
    }
    if let Some(message) = blocked {
        tracing::error!("{message}");
    }
    Ok(Outcome { code })
}

/// Plain-text rendering of a report.
pub fn render_text(r: &RiskReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Deploy risk: {} ({:.0}%, riskier than {:.0}% of past changes) — model: {} ({})",
        r.level,
        r.probability * 100.0,
        r.percentile,
        r.model,
        r.kind
    );
    if let Some(why) = &r.fallback_reason {
        let _ = writeln!(s, "  (repository model not used: {why})");
    }
    if let Some(stage) = &r.signals_stage {
        if stage.applied {
            let _ = writeln!(
                s,
                "  adjusted by CI signals from {:.0}%: {}",
                stage.base_probability * 100.0,
                stage.detail
            );
        } else {
            let _ = writeln!(s, "  (CI signals not learned: {})", stage.detail);
        }
    }
    for f in &r.factors {
        let _ = writeln!(s, "  {f}");
    }
    for h in &r.hints {
        let _ = writeln!(s, "  hint: {h}");
    }
    for m in &r.missing {
        let _ = writeln!(s, "  missing: {m}");
    }
    if let Some(g) = &r.gate {
        let verdict = match (g.over, g.accepted) {
            (false, _) => "passes",
            (true, true) => "over the threshold, risk accepted",
            (true, false) => "BLOCKED",
        };
        let _ = writeln!(s, "Gate (threshold {:.2}): {verdict}", g.threshold);
    }
    s
}

/// This run's GitHub event payload.
fn event() -> Option<serde_json::Value> {
    crate::ci_env::read_event(std::env::var("GITHUB_EVENT_PATH").ok().as_deref())
}

/// Does the pull request of this GitHub event, or this GitLab merge request, carry `label`?
pub(crate) fn pr_has_label(label: &str) -> bool {
    crate::ci_env::gitlab_has_label(&|k| std::env::var(k).ok(), label) || github_pr_has_label(label)
}

fn github_pr_has_label(label: &str) -> bool {
    event()
        .and_then(|e| e.pointer("/pull_request/labels")?.as_array().cloned())
        .is_some_and(|labels| {
            labels
                .iter()
                .any(|l| l.get("name").and_then(|n| n.as_str()) == Some(label))
        })
}

/// Open (or create) the history database; an unusable one is set aside with a warning.
fn open_store(db: &Path, now: i64) -> anyhow::Result<Store> {
    let opened = Store::open(db, now)?;
    if let Some((path, why)) = &opened.set_aside {
        tracing::warn!(
            "the history database was unusable ({why}); it was moved to {}",
            path.display()
        );
    }
    Ok(opened.store)
}

/// Default base: the PR's base branch on GitHub (`origin/<GITHUB_BASE_REF>`) or GitLab
/// (`origin/<CI_MERGE_REQUEST_TARGET_BRANCH_NAME>`), else `HEAD^` (on a pull request's merge
/// commit, as `actions/checkout` makes it, that is the base branch's tip).
fn default_base(repo: &Path) -> anyhow::Result<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(b) = var("GITHUB_BASE_REF").or_else(|| var("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")) {
        match git::rev_parse(repo, &format!("origin/{b}")) {
            Ok(sha) => return Ok(sha),
            Err(e) => {
                tracing::info!("origin/{b} is not in the checkout ({e:#}); scoring HEAD^...HEAD")
            }
        }
    }
    git::rev_parse(repo, "HEAD^")
}

/// Score `base...head` (see the module docs).
pub fn score(args: &ScoreArgs, config: &RiskConfig, now: i64) -> anyhow::Result<RiskReport> {
    let mut store = open_store(&args.db, now)?;
    score_in(
        &mut store,
        &args.repo,
        args.base.as_deref(),
        &args.head,
        config,
        Duration::from_secs_f64(config.szz_budget_s),
        &CiSignals::default(),
        now,
    )
}

/// Labelled past predictions read on each run (the newest), for the second stage and the
/// accuracy check: enough to learn six signals' weights, and bounded so a long-lived repository's
/// runs stay fast (reading and fitting 45,000 took 0.3 s more than 5,000). Older predictions are
/// pruned.
const TRACKED_PREDICTIONS: usize = 5_000;

/// What `omen ci` knows about this run that `omen risk score` does not.
#[derive(Debug, Clone, Copy, Default)]
pub struct CiSignals {
    /// Failing tests that are neither known flaky nor failing on the default branch.
    pub new_failures: Option<u64>,
    /// Tests in this run minus tests in the latest default-branch run.
    pub test_delta: Option<i64>,
    /// On a default-branch push: the merged pull request that brought the commit in, as
    /// (number, hours it was open before merging). Pull request runs read their own event.
    pub merged_pull: Option<(u64, f64)>,
}

/// Score `base...head` of the checkout `repo` with the history in `store`. Without `base`, the
/// pull request's base branch in CI, else `HEAD^`. SZZ labelling may spend `szz_budget`. The
/// prediction is recorded with the change's signals (`ci` and those read here).
#[allow(clippy::too_many_arguments)]
pub fn score_in(
    store: &mut Store,
    repo: &Path,
    base: Option<&str>,
    head: &str,
    config: &RiskConfig,
    szz_budget: Duration,
    ci: &CiSignals,
    now: i64,
) -> anyhow::Result<RiskReport> {
    let mut missing = Vec::new();
    if git::is_shallow(repo) {
        deepen(store, repo, &mut missing);
    }
    let head = git::rev_parse(repo, head)?;
    let base = match base {
        Some(b) => git::rev_parse(repo, b)?,
        None => default_base(repo)?,
    };
    let history = sync_history(store, repo, &base, now, &mut missing)?;
    label_szz(store, repo, szz_budget)?;
    let latency = (config.label_latency_days * 86_400.0) as i64;
    let (labelled_n, risky_n, newest) = store.label_counts(latency)?;
    let tracked = store.predictions_with_outcomes(newest - latency, TRACKED_PREDICTIONS)?;
    if let (TRACKED_PREDICTIONS, Some(oldest)) = (tracked.len(), tracked.first()) {
        // Older predictions will never be read again: every labelled one is outside the newest
        // TRACKED_PREDICTIONS for good, and an unlabelled one that old (its commit never reached
        // the default branch) stays unlabelled. Dropping them keeps the cached database small.
        let pruned = store.prune_predictions(oldest.at)?;
        if pruned > 0 {
            tracing::debug!("pruned {pruned} predictions older than the tracked ones");
        }
    }
    let Chosen {
        model,
        source,
        model_id,
        reason: fallback_reason,
    } = choose_model(store, config, (labelled_n, risky_n), &tracked, now)?;

    let (commit, added_lines) = git::change(repo, &base, &head)?;
    let mut features = history.metrics(&commit);
    let mut diff_hints = DiffHints::default();
    for line in &added_lines {
        diff_hints.add_line(line);
    }
    diff_hints.apply(&mut features);
    const MAX_FACTORS: usize = 5;
    let a = assess::assess(&model, source, &features, &config.levels, MAX_FACTORS);
    let (signal_lines, values) = signals(store, repo, &base, &head, ci, now);
    let (probability, stage_report, signal_factors) =
        adjust_by_signals(&tracked, a.probability, &values);
    // The model's factors and, when the signals answered, theirs.
    let model_factors = a.factors.iter().map(assess::Ranked::from);
    let (factors, signals) = assess::rank(
        model_factors.chain(signal_factors).collect(),
        signal_lines,
        MAX_FACTORS,
    );
    store.record_prediction(&omen_store::NewPrediction {
        head: &head,
        base: Some(&base),
        at: now,
        probability,
        base_probability: a.probability,
        source: source.name(),
        model_id,
        signals: Some(&values.encode()),
    })?;
    Ok(RiskReport {
        version: RISK_REPORT_VERSION,
        base,
        head,
        probability: round4(probability),
        percentile: (model.percentile(probability) * 10.0).round() / 10.0,
        level: config.levels.of(probability).name().into(),
        model: source.name().into(),
        kind: a.kind.name().into(),
        fallback_reason,
        factors,
        hints: hints(&features, &diff_hints),
        signals,
        signals_stage: Some(stage_report),
        missing,
        features: Feature::ALL
            .iter()
            .map(|f| (f.name().to_owned(), round4(f.raw(&features))))
            .collect::<BTreeMap<_, _>>(),
        gate: None,
    })
}

/// The second stage: `base` adjusted by this change's signal `values` when a stage fitted on
/// `tracked` beats the model alone. Returns the probability, what the report says about the
/// stage, and the signals' factors.
fn adjust_by_signals(
    tracked: &[omen_store::TrackedPrediction],
    base: f64,
    values: &Signals,
) -> (f64, SignalsStage, Vec<assess::Ranked>) {
    match signal_model::fit(&training_rows(tracked), &SignalConfig::default()) {
        Ok(m) => {
            let factors = m.factors(base, values);
            let h = &m.holdout;
            let detail = format!(
                "learned from {} labelled predictions ({} risky); on the newest {} the signals raised AUC {:.3} → {:.3}, Brier {:.3} → {:.3}",
                m.samples, m.risky, h.n, h.auc_before, h.auc_after, h.brier_before, h.brier_after
            );
            let stage = SignalsStage {
                applied: true,
                base_probability: round4(base),
                samples: m.samples,
                detail,
            };
            (m.probability(base, values), stage, factors)
        }
        Err(why) => {
            let stage = SignalsStage {
                applied: false,
                base_probability: round4(base),
                samples: 0,
                detail: why.to_string(),
            };
            (base, stage, Vec::new())
        }
    }
}

/// Second-stage training rows: labelled predictions that recorded their signals.
fn training_rows(tracked: &[omen_store::TrackedPrediction]) -> Vec<TrackedRow> {
    tracked
        .iter()
        .filter_map(|t| {
            let signals = Signals::decode(t.signals.as_deref()?).ok()?;
            Some(TrackedRow {
                at: t.at,
                base_probability: t.base_probability,
                signals,
                risky: t.risky,
            })
        })
        .collect()
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// CI and deploy signals that are not model inputs (see [`RiskReport::signals`]), read from the
/// checkout, the history and the event, then put in words by `omen_risk::signals::observe`.
fn signals(
    store: &Store,
    repo: &Path,
    base: &str,
    head: &str,
    ci: &CiSignals,
    now: i64,
) -> (Vec<(Signal, String)>, Signals) {
    let authors = git::authors(repo, base, head)
        .map_err(|e| tracing::debug!("authors of {base}..{head}: {e:#}"))
        .ok();
    let deploys = store.deploys().unwrap_or_else(|e| {
        tracing::warn!("deploys could not be read: {e}");
        Vec::new()
    });
    let deploys: Vec<omen_risk::signals::Deploy<'_>> = deploys
        .iter()
        .map(|d| omen_risk::signals::Deploy {
            at: d.at,
            outcome: d.outcome,
            environment: &d.environment,
        })
        .collect();
    omen_risk::signals::observe(
        &omen_risk::signals::Observed {
            new_failures: ci.new_failures,
            test_delta: ci.test_delta,
            authors,
            deploys: &deploys,
            pr_opened_at: pr_opened_at(),
            merged_pull: ci.merged_pull,
        },
        now,
    )
}

/// When the pull request of this GitHub event was opened.
fn pr_opened_at() -> Option<i64> {
    let created = event()?
        .pointer("/pull_request/created_at")?
        .as_str()?
        .to_owned();
    crate::parse_time(&created).ok()
}

/// Fetch the history a shallow checkout (CI's default `fetch-depth: 1`) lacks. With a stored
/// history, fetching back to a day before its newest change is enough for an incremental update;
/// otherwise, or when that does not bring the stored commit in, the whole history is fetched.
fn deepen(store: &Store, repo: &Path, missing: &mut Vec<String>) {
    let stored_last = store.risk_state().ok().flatten().map(|s| s.last_commit);
    let newest = store
        .label_counts(0)
        .map(|(_, _, newest)| newest)
        .unwrap_or(0);
    if let Some(last) = stored_last.filter(|_| newest > 0) {
        let since = format!(
            "--shallow-since={}",
            omen_core::time::format_rfc3339(newest - 86_400)
        );
        match git::git(repo, &["fetch", "--quiet", &since]) {
            Ok(_) if git::has_commit(repo, &last) => {
                tracing::info!(
                    "deepened the shallow checkout back to the stored history ({since})"
                );
                return;
            }
            Ok(_) => tracing::info!("{since} did not reach the stored history's {last}"),
            Err(e) => tracing::info!("`git fetch {since}` failed: {e:#}"),
        }
    }
    match git::git(repo, &["fetch", "--quiet", "--unshallow"]) {
        Ok(_) => tracing::info!("deepened the shallow checkout for full change history"),
        Err(e) => {
            tracing::warn!("shallow checkout and `git fetch --unshallow` failed: {e:#}");
            missing.push(
                "shallow history: ndev, age, nuc, exp, rexp and sexp count only the fetched commits (use `fetch-depth: 0` on actions/checkout)"
                    .into(),
            );
        }
    }
}

/// Bring the stored history up to `base`, returning the history as of `base`.
fn sync_history(
    store: &mut Store,
    repo: &Path,
    base: &str,
    now: i64,
    missing: &mut Vec<String>,
) -> anyhow::Result<RepoHistory> {
    let stored = store.risk_state()?;
    // Also says whether the history was seeded, so that it is stored seeded.
    let decoded = |bytes: &[u8]| -> Result<(RepoHistory, bool), omen_core::codec::DecodeError> {
        let mut h = RepoHistory::decode(bytes)?;
        let mut seeded = false;
        if h.needs_typical() {
            // Stored by an earlier version: what is typical lately comes from the stored changes.
            match store.recent_change_features(omen_risk::typical::WINDOW) {
                Ok(rows) => {
                    let recent: Vec<FeatureVector> =
                        rows.iter().map(|r| feature_vector(r)).collect();
                    h.seed_typical(&recent);
                    seeded = true;
                }
                Err(e) => tracing::warn!(
                    "recent changes could not be read ({e}); NDEV and EXP are compared with this run's changes only"
                ),
            }
        }
        Ok((h, seeded))
    };
    let (mut history, from) = match stored {
        Some(omen_store::RiskState {
            history: bytes,
            last_commit: last,
            ..
        }) => match decoded(&bytes) {
            Ok((h, seeded)) if last == base => {
                // No new commit to record it with: store the seeded history now, so the next
                // run does not seed it again.
                if seeded && let Err(e) = store.record_changes(&[], &h.encode(), h.len(), base, now)
                {
                    tracing::warn!("the seeded repository history could not be stored: {e}");
                }
                return Ok(h);
            }
            Ok((h, _)) if git::git(repo, &["merge-base", "--is-ancestor", &last, base]).is_ok() => {
                (h, Some(last))
            }
            Ok(_) => {
                tracing::warn!(
                    "stored history ends at {last}, which is not an ancestor of {base}; rebuilding it"
                );
                (RepoHistory::default(), None)
            }
            Err(e) => {
                tracing::warn!("stored repository history could not be read ({e}); rebuilding it");
                (RepoHistory::default(), None)
            }
        },
        None => (RepoHistory::default(), None),
    };
    // The TODO and long-line counts need the patches, which numstat does not carry: a second
    // `git log`, run beside the first.
    let (commits, diff_hints) = std::thread::scope(|scope| {
        let patches = scope.spawn(|| git::diff_hints(repo, from.as_deref(), base));
        let commits = git::commits(repo, from.as_deref(), base);
        let patches = patches
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the `git log -p` reader panicked")));
        (commits, patches)
    });
    let commits = commits?;
    let diff_hints = diff_hints.unwrap_or_else(|e| {
        tracing::warn!("diff hints of the history could not be read: {e:#}");
        missing.push("TODO and long-line counts of past changes (`git log -p` failed)".into());
        Default::default()
    });
    let first_seq = i64::from(history.len());
    let mut rows = Vec::with_capacity(commits.len());
    let mut reverts: Vec<String> = Vec::new();
    for (i, c) in commits.iter().enumerate() {
        let mut v = history.observe(c);
        if let Some(h) = diff_hints.get(&c.id) {
            h.apply(&mut v);
        }
        if let Some(sha) = omen_risk::labels::reverted_commit(&c.message) {
            reverts.push(sha.to_owned());
        }
        rows.push(ChangeRow {
            sha: c.id.clone(),
            seq: first_seq + i as i64,
            at: c.time,
            author: c.author.clone(),
            fix: v.get(Feature::Fix) > 0.0,
            features: v.0.to_vec(),
            risky: None,
            label_source: None,
        });
    }
    store.record_changes(&rows, &history.encode(), history.len(), base, now)?;
    if !reverts.is_empty() {
        // Abbreviated ids in revert messages are resolved by git.
        let full: Vec<String> = reverts
            .iter()
            .filter_map(|r| git::rev_parse(repo, r).ok())
            .collect();
        store.label_risky(&full, LabelSource::Revert, None)?;
    }
    Ok(history)
}

/// Run SZZ on pending fix commits, newest first, until the time budget is spent.
fn label_szz(store: &mut Store, repo: &Path, budget: Duration) -> anyhow::Result<()> {
    if budget.is_zero() {
        return Ok(());
    }
    let start = Instant::now();
    let pending = store.fixes_pending_szz()?;
    for (done, fix) in pending.iter().enumerate() {
        if start.elapsed() >= budget {
            tracing::info!(
                "SZZ: {} fix commits left for later runs (budget {:?})",
                pending.len() - done,
                budget
            );
            break;
        }
        match git::szz_blame(repo, fix) {
            Ok(inducing) => {
                let inducing: Vec<String> = inducing.into_iter().filter(|s| s != fix).collect();
                store.label_risky(&inducing, LabelSource::Szz, Some(fix))?;
            }
            Err(e) => {
                // A root commit or a fix outside the fetched history: nothing to blame.
                tracing::debug!("SZZ skipped {fix}: {e:#}");
                store.label_risky(&[], LabelSource::Szz, Some(fix))?;
            }
        }
    }
    Ok(())
}

/// Labelled training changes by `omen_risk::review::training_set`'s rule, from the store's rows.
pub fn training_set(rows: &[ChangeRow], latency_days: f64) -> Vec<LabelledChange> {
    let observed: Vec<review::Observed<'_>> = rows
        .iter()
        .map(|r| review::Observed {
            id: &r.sha,
            at: r.at,
            features: &r.features,
            risky: r.risky,
        })
        .collect();
    review::training_set(&observed, latency_days)
}

/// Retrain when `omen_risk::choice` says it is due, record the attempt, then walk the fallback
/// chain. `labels`: (labelled, risky) changes, as [`Store::label_counts`] gives them. `tracked`:
/// labelled past predictions, whose accuracy can make retraining due.
fn choose_model(
    store: &mut Store,
    config: &RiskConfig,
    (labelled_n, risky_n): (i64, i64),
    tracked: &[omen_store::TrackedPrediction],
    now: i64,
) -> anyhow::Result<Chosen> {
    let cfg = TrainConfig {
        features: repository_features(),
        ..TrainConfig::default()
    };
    let (labelled, risky) = (labelled_n.max(0) as usize, risky_n.max(0) as usize);
    let mut current = store.latest_model()?;
    let latest = current.as_ref().map(|m| choice::Latest {
        created_at: m.created_at,
        samples: m.samples.max(0) as usize,
        auc: m.auc,
    });
    let tracked: Vec<choice::Tracked> = tracked
        .iter()
        .map(|t| choice::Tracked {
            at: t.at,
            base_probability: t.base_probability,
            risky: t.risky,
        })
        .collect();
    let mut reason = None;
    if choice::retraining_due(latest, labelled, &tracked, now, config.retrain_days) {
        if choice::enough_per_class(labelled, risky, cfg.min_samples, cfg.min_per_class) {
            current = Some(train_and_record(
                store,
                config,
                &cfg,
                (labelled_n, risky_n),
                now,
            )?);
        } else {
            reason = Some(format!(
                "only {labelled_n} labelled changes ({risky_n} risky) to learn from; it needs {} with {} of each class",
                cfg.min_samples, cfg.min_per_class
            ));
        }
    }
    let candidate = match current {
        None => choice::Candidate::None,
        Some(row) => match choice::StoredKind::of(&row.kind) {
            choice::StoredKind::FailedTraining => {
                choice::Candidate::Failed(String::from_utf8_lossy(&row.model).into_owned())
            }
            choice::StoredKind::Trained => match RiskModel::decode(&row.model) {
                Ok(m) => choice::Candidate::Model(row.id, Box::new(m)),
                Err(e) => choice::Candidate::Unreadable(e.to_string()),
            },
        },
    };
    let prior = omen_risk::prior::prior_model()
        .map_err(|e| tracing::warn!("the shipped prior model could not be read: {e}"))
        .ok();
    Ok(choice::fallback(candidate, reason, prior, config.min_auc))
}

/// Train on the store's labelled changes and record the model, or the failed attempt and its
/// reason (so the attempt is repeated only when retraining is due again, not on every run).
fn train_and_record(
    store: &mut Store,
    config: &RiskConfig,
    cfg: &TrainConfig,
    (labelled_n, risky_n): (i64, i64),
    now: i64,
) -> anyhow::Result<ModelRow> {
    let labelled = training_set(&store.changes()?, config.label_latency_days);
    let row = match omen_risk::train::train(&labelled, cfg, now) {
        Ok(model) => ModelRow {
            id: 0,
            created_at: now,
            kind: model.kind.name().into(),
            samples: model.samples as i64,
            positives: model.positives as i64,
            auc: model.validation.auc,
            brier: model.validation.brier,
            features: model
                .features
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(","),
            model: model.encode(),
        },
        Err(e) => {
            let why = match e {
                TrainError::TooFew {
                    samples, positives, ..
                } => format!(
                    "only {samples} labelled changes ({positives} risky) to learn from, or a time-ordered hold-out (the newest 20%) without both outcomes"
                ),
                e => format!("training failed: {e}"),
            };
            ModelRow {
                id: 0,
                created_at: now,
                kind: choice::StoredKind::failed_training().into(),
                samples: labelled_n,
                positives: risky_n,
                auc: 0.0,
                brier: 0.0,
                features: String::new(),
                model: why.into_bytes(),
            }
        }
    };
    let id = store.save_model(&row)?;
    Ok(ModelRow { id, ..row })
}

fn figures(f: &omen_risk::evaluate::Figures) -> EvalFigures {
    let r = |x: f64| (x * 10_000.0).round() / 10_000.0;
    EvalFigures {
        auc: r(f.auc),
        brier: f.brier.map(r),
        f1: r(f.f1),
        mcc: r(f.mcc),
        capture: ["5", "10", "20", "50"]
            .iter()
            .zip(f.capture)
            .map(|(k, v)| ((*k).to_owned(), r(v)))
            .collect(),
        recall_at_20_effort: r(f.recall_at_20_effort),
        popt: r(f.popt),
    }
}

fn evaluate_command(args: &EvaluateArgs) -> anyhow::Result<Outcome> {
    let layout = args.layout;
    let text = std::fs::read_to_string(&args.dataset)
        .with_context(|| format!("cannot read dataset `{}`", args.dataset.display()))?;
    let (layout, rows) = omen_risk::dataset::read(&text, layout)
        .with_context(|| format!("dataset `{}`", args.dataset.display()))?;
    let split = omen_risk::evaluate::SplitConfig {
        test_share: args.test_share,
        gap_days: args.gap_days,
    };
    // A column the layout lacks reads as 0: leave it, and the ratios built on it, out.
    let missing = layout.missing();
    let config = TrainConfig {
        features: TrainConfig::default()
            .features
            .into_iter()
            .filter(|f| !missing.iter().any(|m| f.reads(*m)))
            .collect(),
        ..TrainConfig::default()
    };
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|f| f.name()).collect();
        tracing::info!(
            "layout {} has no {} column: those features and their ratios are not used",
            layout.name(),
            names.join(", ")
        );
    }
    let ev = omen_risk::evaluate::evaluate(&rows, &split, &config)
        .with_context(|| format!("evaluating on `{}`", args.dataset.display()))?;
    let report = EvaluationReport {
        dataset: args.dataset.display().to_string(),
        layout: layout.name().into(),
        train: ev.train,
        gap: ev.gap,
        test: ev.test,
        test_base_rate: round4(ev.test_base_rate),
        base_rate_brier: round4(ev.base_rate_brier),
        model_kind: ev.model_kind.into(),
        model: figures(&ev.model),
        baselines: EvalBaselines {
            la_rank: figures(&ev.la_rank),
            lapredict: figures(&ev.lapredict),
        },
        gain_over_lapredict: ev.gain_over_lapredict.map(|d| {
            let (low, high) = d.ci95();
            AucGain {
                auc: round4(d.difference),
                std_error: round4(d.std_error),
                ci95: [round4(low), round4(high)],
            }
        }),
    };
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Text => {
            let line = |name: &str, f: &EvalFigures| {
                format!(
                    "{name:<10} AUC {:.4}  Brier {}  F1 {:.3}  MCC {:.3}  capture@10% {:.3}  recall@20%effort {:.3}  Popt {:.3}\n",
                    f.auc,
                    f.brier.map_or("  -   ".into(), |b| format!("{b:.4}")),
                    f.f1,
                    f.mcc,
                    f.capture.get("10").copied().unwrap_or(0.0),
                    f.recall_at_20_effort,
                    f.popt
                )
            };
            let mut s = format!(
                "{} ({}): train {}, gap {}, test {} (risky {:.1}%, base-rate Brier {:.4})\n",
                report.dataset,
                report.layout,
                report.train,
                report.gap,
                report.test,
                report.test_base_rate * 100.0,
                report.base_rate_brier
            );
            s += &line(
                &format!(
                    "omen/{}",
                    if report.model_kind == "logistic+forest" {
                        "blend"
                    } else {
                        &report.model_kind
                    }
                ),
                &report.model,
            );
            s += &line("la_rank", &report.baselines.la_rank);
            s += &line("lapredict", &report.baselines.lapredict);
            if let Some(g) = &report.gain_over_lapredict {
                s += &format!(
                    "AUC gain over lapredict {:+.4} (standard error {:.4}, 95% CI {:+.4} to {:+.4}, DeLong)\n",
                    g.auc, g.std_error, g.ci95[0], g.ci95[1]
                );
            }
            output::print(&s);
        }
    }
    Ok(Outcome::OK)
}

/// Run `omen deploy record`.
pub fn deploy(args: &DeployArgs, now: i64) -> anyhow::Result<Outcome> {
    let DeployCommand::Record(a) = &args.command;
    let at = a.at.unwrap_or(now);
    let result = (|| -> anyhow::Result<()> {
        let mut store = open_store(&a.db, now)?;
        store.record_deploy(&omen_store::DeployRow {
            commit_sha: a.commit.clone(),
            environment: a.environment.clone(),
            outcome: a.outcome,
            at,
        })?;
        if a.outcome.labels_risky() {
            let n =
                store.label_risky(std::slice::from_ref(&a.commit), LabelSource::Deploy, None)?;
            if n == 0 {
                tracing::info!(
                    "{} is not in the change history yet; its label applies once observed",
                    a.commit
                );
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(Outcome::OK),
        Err(e) => {
            tracing::warn!("could not record the deploy: {e:#}");
            Ok(Outcome::with_trouble(true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omen_risk::assess::Source;

    /// 400 changes a day apart, the newest a day before `now`, every feature of change `i` set
    /// to `size(i)`, and those `risky(i)` labelled risky.
    fn store_with(
        dir: &Path,
        now: i64,
        size: impl Fn(i64) -> f64,
        risky: impl Fn(i64) -> bool,
    ) -> Store {
        let mut store = Store::open(&dir.join("h.db"), now).unwrap().store;
        let day = 86_400;
        let rows: Vec<ChangeRow> = (0..400)
            .map(|i| ChangeRow {
                sha: format!("{i:040x}"),
                seq: i,
                at: now - (400 - i) * day,
                author: "a@x".into(),
                fix: false,
                features: vec![size(i); Feature::ALL.len()],
                risky: None,
                label_source: None,
            })
            .collect();
        store
            .record_changes(&rows, &RepoHistory::default().encode(), 0, "head", now)
            .unwrap();
        let risky: Vec<String> = (0..400)
            .filter(|i| risky(*i))
            .map(|i| format!("{i:040x}"))
            .collect();
        store
            .label_risky(&risky, LabelSource::Revert, None)
            .unwrap();
        store
    }

    /// `choose_model`'s label counts, as `score_in` reads them.
    fn labels(store: &Store, config: &RiskConfig) -> (i64, i64) {
        let (labelled, risky, _) = store
            .label_counts((config.label_latency_days * 86_400.0) as i64)
            .unwrap();
        (labelled, risky)
    }

    /// The oldest 100 changes alternate risky/safe, the rest are safe, so the time-ordered
    /// hold-out (newest 20%) has no risky change and training must fail.
    fn store_with_unusable_labels(dir: &Path, now: i64) -> Store {
        store_with(dir, now, |i| (i % 7) as f64, |i| i < 100 && i % 2 == 0)
    }

    #[test]
    fn training_compares_each_change_with_every_change_before_it() {
        // Rows as an earlier version stored them: 23 features, no typical values. Only the
        // risky ones and those older than the latency are labelled, but every change counts
        // towards what is typical.
        let day = 86_400;
        let rows: Vec<ChangeRow> = (0..5i64)
            .map(|i| {
                let mut features = vec![0.0; 23];
                features[Feature::Ndev.index()] = [4.0, 8.0, 2.0, 6.0, 1.0][i as usize];
                features[Feature::Exp.index()] = 10.0 * i as f64;
                ChangeRow {
                    sha: format!("c{i}"),
                    seq: i,
                    at: i * 100 * day,
                    author: "a@x".into(),
                    fix: false,
                    features,
                    risky: (i == 4).then_some(true),
                    label_source: None,
                }
            })
            .collect();
        let set = training_set(&rows, 150.0);
        let got: Vec<(&str, f64, f64)> = set
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.features.get(Feature::NdevTypical),
                    c.features.get(Feature::ExpTypical),
                )
            })
            .collect();
        // c3 is too new to count as safe; c4 is risky and compared with c0..c3, c3 included.
        assert_eq!(
            got,
            vec![
                ("c0", 4.0, 0.0),
                ("c1", 4.0, 0.0),
                ("c2", 6.0, 5.0),
                ("c4", 5.0, 15.0)
            ]
        );
    }

    #[test]
    fn retraining_is_due_when_the_models_own_tracked_accuracy_drops() {
        let dir = tempfile::tempdir().unwrap();
        let now = 2_000_000_000;
        // Bigger changes are riskier, all through time, so the model validates well.
        let size = |i: i64| ((i * 37) % 100) as f64;
        let mut store = store_with(dir.path(), now, size, |i| size(i) > 70.0 || i % 11 == 0);
        let config = RiskConfig {
            label_latency_days: 0.0,
            ..RiskConfig::default()
        };
        let l = labels(&store, &config);
        let chosen = choose_model(&mut store, &config, l, &[], now).unwrap();
        let (source, first, reason) = (chosen.source, chosen.model_id, chosen.reason);
        assert_eq!(source, Source::Repository, "{reason:?}");
        // 60 labelled predictions: `good` ranks them right, the other score inverts it.
        let tracked = |base_good: bool| -> Vec<omen_store::TrackedPrediction> {
            (0..60)
                .map(|i| {
                    let risky = i % 3 == 0;
                    let (good, bad) = if risky { (0.9, 0.1) } else { (0.1, 0.9) };
                    let (base_probability, probability) =
                        if base_good { (good, bad) } else { (bad, good) };
                    omen_store::TrackedPrediction {
                        head: format!("{i:040x}"),
                        at: now,
                        probability,
                        base_probability,
                        signals: None,
                        risky,
                    }
                })
                .collect()
        };
        // The second stage's output may be wrong; the model's own ranking is what counts.
        let same = choose_model(&mut store, &config, l, &tracked(true), now + 60)
            .unwrap()
            .model_id;
        assert_eq!(same, first);
        let retrained = choose_model(&mut store, &config, l, &tracked(false), now + 120)
            .unwrap()
            .model_id;
        assert!(retrained.is_some() && retrained != first, "{retrained:?}");
        // Those predictions came before the new model, so they do not judge it.
        let kept = choose_model(&mut store, &config, l, &tracked(false), now + 180)
            .unwrap()
            .model_id;
        assert_eq!(kept, retrained);
    }

    #[test]
    fn a_failed_training_is_recorded_and_not_retried_on_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let now = 2_000_000_000;
        let mut store = store_with_unusable_labels(dir.path(), now);
        let config = RiskConfig {
            label_latency_days: 0.0,
            ..RiskConfig::default()
        };
        let l = labels(&store, &config);
        let chosen = choose_model(&mut store, &config, l, &[], now).unwrap();
        assert_eq!(chosen.source, Source::Prior);
        let reason = chosen.reason.unwrap();
        assert!(reason.contains("hold-out"), "{reason}");
        let first = store.latest_model().unwrap().unwrap();
        assert_eq!(
            choice::StoredKind::of(&first.kind),
            choice::StoredKind::FailedTraining
        );
        // The next run reuses the recorded failure: same reason, no new attempt.
        let again = choose_model(&mut store, &config, l, &[], now + 60).unwrap();
        assert_eq!(again.source, Source::Prior);
        assert_eq!(again.reason.as_deref(), Some(reason.as_str()));
        assert_eq!(store.latest_model().unwrap().unwrap().id, first.id);
        // After `retrain_days` it is tried again.
        let later = now + 31 * 86_400;
        choose_model(&mut store, &config, l, &[], later).unwrap();
        assert_ne!(store.latest_model().unwrap().unwrap().id, first.id);
    }
}
