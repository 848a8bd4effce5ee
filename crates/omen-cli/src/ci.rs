//! `omen ci`: the one command the GitHub Action runs. Ingest → classify → (default branch)
//! refresh the quarantine → render → post → outputs → exit code. Locally it prints what it would
//! post.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use omen_core::classify::{Classification, Failing, classify_failure};
use omen_core::gate::{ACCEPT_LABEL, Gate};
use omen_core::history::FailureSignature;
use omen_core::perf::changepoint::{detect, levels};
use omen_core::quarantine::QuarantineChange;
use omen_core::risk_level::RiskLevel;
use omen_core::run::TestResult;
use omen_forge::{Forge, ForgeError, GitHub, GitLab, RetryPolicy, Token};
use omen_jobs::quarantine::{Refresh, Refreshed, refresh};
use omen_metadata::exit_code;
use omen_metadata::quarantine::{Mode, QuarantineFile};
use omen_render::{
    CauseRow, ChangeRow, CiReport, FailureClass, FailureRow, GateVerdict, PerfSection, RiskSection,
    Seen, SlowRow, TimeRow, Totals, TrendPoint, UnusualMetric, UnusualRun,
};
use omen_store::Store;

use crate::{Outcome, RunArgs, output};

/// When to post the pull-request comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommentMode {
    /// Only when something failed, the quarantine changed, a test got slower than on the default
    /// branch or the deploy risk is high; an existing comment is kept current.
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
    /// The committed quarantine file (read on every branch; refreshed on the default branch).
    /// Deliberately not `OMEN_QUARANTINE`: `omen setup` points that at this run's copy for the
    /// test runners, and refreshing or proposing the copy would lose the committed file's state.
    #[arg(long, default_value = ".omen/quarantine.json")]
    pub quarantine_file: PathBuf,
    /// Failure categories given by hand (`omen failures label`); a missing file is no labels.
    #[arg(long, default_value = crate::labels::DEFAULT_PATH, env = "OMEN_LABELS")]
    pub labels: PathBuf,
    /// A saved job log (e.g. `cargo build 2>&1 | tee build.log`). When no test failed, its last
    /// error block — a compile error, a failed install, an OOM kill — is reported, classified
    /// and counted across runs like a test failure.
    #[arg(long, value_name = "FILE", env = "OMEN_LOG")]
    pub log: Option<PathBuf>,
    /// Where the comment body is saved when it cannot be posted.
    #[arg(long, value_name = "PATH")]
    pub comment_file: Option<PathBuf>,
    /// Write the run's report as one self-contained HTML page here (charts included; no
    /// external assets, no script). On GitLab, where there is no job summary, the note links to
    /// it in the job's artifacts.
    #[arg(long, value_name = "PATH", env = "OMEN_HTML")]
    pub html: Option<PathBuf>,
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
    /// On the default branch, when the refresh changed the quarantine, propose the new file as
    /// one pull request (branch `omen/quarantine`) kept up to date. Needs `contents: write` and
    /// `pull-requests: write`; never runs on pull requests.
    #[arg(long)]
    pub propose_quarantine: bool,
    /// The gate's threshold (default: `[risk] gate_threshold`, 0.7).
    #[arg(long, value_name = "P", value_parser = crate::gate_arg)]
    pub risk_threshold: Option<Gate>,
    /// A reviewer accepted the risk: report, never block. Also set by the pull request label
    /// `omen:accept-risk` or `OMEN_ACCEPT_RISK=true`.
    #[arg(long, env = "OMEN_ACCEPT_RISK")]
    pub accept_risk: bool,
    /// Run metadata overrides.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The CI environment `omen ci` acts in, read once at the start.
#[derive(Debug, Default)]
struct CiEnv {
    /// Running inside GitHub Actions (`GITHUB_ACTIONS=true`): annotations are printed, the
    /// comment is not echoed to the log.
    in_actions: bool,
    /// `GITHUB_STEP_SUMMARY`: where the job summary is appended.
    step_summary: Option<PathBuf>,
    /// `GITHUB_OUTPUT`: where the step's outputs are appended.
    outputs: Option<PathBuf>,
    /// This run's page, for the comment's link to the job summary.
    run_url: Option<String>,
    /// `CI_JOB_URL`: the GitLab job, whose artifacts hold the HTML report.
    job_url: Option<String>,
    /// `RUNNER_TEMP`: where an unposted comment is saved by default.
    runner_temp: Option<PathBuf>,
    /// The forge to talk to, when its API, project and token are all known.
    forge: Option<ForgeAccess>,
    /// Where this job's queue time can be read.
    queue: Option<QueueAccess>,
    /// Why there is no forge, in one line that says how to add one.
    no_forge: String,
    /// The pull request carries [`ACCEPT_LABEL`] (read only when the risk gate is on: it means
    /// reading the event payload again).
    accept_label: bool,
    /// A GitLab merge request's risk range, (base, head) (see
    /// [`crate::ci_env::gitlab_risk_range`]).
    risk_range: Option<(String, String)>,
    /// `OMEN_DOTENV`: where the outputs go as a GitLab `dotenv` report.
    dotenv: Option<PathBuf>,
    /// `OMEN_CODEQUALITY`: where GitLab's Code Quality report goes.
    code_quality: Option<PathBuf>,
    /// `OMEN_METRICS`: where the run's figures go as a GitLab metrics report.
    metrics: Option<PathBuf>,
}

impl CiEnv {
    fn read(risk_gate: bool) -> CiEnv {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let run_url = match (
            env("GITHUB_SERVER_URL"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repo), Some(run)) => {
                Some(format!("{server}/{repo}/actions/runs/{run}"))
            }
            _ => None,
        };
        // Read once: the forge and the queue lookup both use it.
        let gitlab = crate::ci_env::in_gitlab(&env).then(|| crate::ci_env::GitLabEnv::read(&env));
        let (forge, no_forge) = match &gitlab {
            Some(Ok(gitlab)) => ForgeAccess::gitlab(gitlab),
            Some(Err(why)) => (None, why.clone()),
            None => ForgeAccess::github(&env),
        };
        let run_url = run_url.or_else(|| env("CI_JOB_URL"));
        let queue = match &gitlab {
            Some(gitlab) => gitlab.as_ref().ok().and_then(QueueAccess::gitlab),
            None => QueueAccess::github(&env, forge.as_ref()),
        };
        CiEnv {
            queue,
            job_url: env("CI_JOB_URL"),
            in_actions: env("GITHUB_ACTIONS").as_deref() == Some("true"),
            step_summary: env("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            outputs: env("GITHUB_OUTPUT").map(PathBuf::from),
            run_url,
            runner_temp: env("RUNNER_TEMP").map(PathBuf::from),
            forge,
            no_forge,
            accept_label: risk_gate && crate::risk::pr_has_label(ACCEPT_LABEL),
            risk_range: crate::ci_env::gitlab_risk_range(&env),
            dotenv: env("OMEN_DOTENV").map(PathBuf::from),
            code_quality: env("OMEN_CODEQUALITY").map(PathBuf::from),
            metrics: env("OMEN_METRICS").map(PathBuf::from),
        }
    }

    /// The forge client, or `None` without a token and project (outside CI, a fork's pipeline).
    fn forge(&self, retry: RetryPolicy) -> Option<Result<Box<dyn Forge>, ForgeError>> {
        Some(match self.forge.as_ref()? {
            ForgeAccess::GitHub {
                api,
                repository,
                token,
            } => GitHub::new(api, token, repository, retry).map(|f| Box::new(f) as Box<dyn Forge>),
            ForgeAccess::GitLab {
                api,
                project,
                project_url,
                token,
            } => GitLab::new(api, token, project, project_url.as_deref(), retry)
                .map(|f| Box::new(f) as Box<dyn Forge>),
        })
    }

    /// What to do when the token may not comment, for the one-line warning.
    fn forbidden_hint(&self, pr: u64) -> String {
        match self.forge {
            Some(ForgeAccess::GitLab { .. }) => {
                "The token needs the `api` scope and at least the Reporter role in the project"
                    .to_owned()
            }
            _ => format!(
                "For pull requests from forks, publish it from a `workflow_run` workflow with \
                 `omen comment --body <file> --pull-request {pr}` (see examples/github/)"
            ),
        }
    }
}

/// Where `omen ci` reads how long its job waited for a runner.
#[derive(Debug)]
enum QueueAccess {
    /// The jobs of this workflow run (`GITHUB_RUN_ID`, `GITHUB_RUN_ATTEMPT`), the one on
    /// `RUNNER_NAME`; `GITHUB_TOKEN` needs `actions: read`.
    GitHub {
        api: String,
        repository: String,
        token: Token,
        run_id: String,
        attempt: u32,
        runner: String,
    },
    /// `GET /job` with `CI_JOB_TOKEN`.
    GitLab {
        api: String,
        project: String,
        job_token: Token,
    },
}

impl QueueAccess {
    /// In a GitLab pipeline: its API and project, with the job token.
    fn gitlab(gitlab: &crate::ci_env::GitLabEnv) -> Option<QueueAccess> {
        Some(QueueAccess::GitLab {
            api: gitlab.api.clone(),
            project: gitlab.project.clone(),
            job_token: gitlab.job_token.clone()?,
        })
    }

    /// In a GitHub workflow: the forge's API, repository and token, and the run and runner from
    /// the environment.
    fn github(
        env: &dyn Fn(&str) -> Option<String>,
        forge: Option<&ForgeAccess>,
    ) -> Option<QueueAccess> {
        let Some(ForgeAccess::GitHub {
            api,
            repository,
            token,
        }) = forge
        else {
            return None;
        };
        Some(QueueAccess::GitHub {
            api: api.clone(),
            repository: repository.clone(),
            token: token.clone(),
            run_id: env("GITHUB_RUN_ID")?,
            attempt: env("GITHUB_RUN_ATTEMPT")
                .and_then(|a| a.parse().ok())
                .unwrap_or(1),
            runner: env("RUNNER_NAME")?,
        })
    }

    /// How long this job waited for a runner, seconds. Any trouble is only logged: the metric is
    /// then unknown for this run, as it is outside CI.
    fn seconds(&self) -> Option<f64> {
        let read = || -> Result<Option<f64>, ForgeError> {
            match self {
                QueueAccess::GitHub {
                    api,
                    repository,
                    token,
                    run_id,
                    attempt,
                    runner,
                } => {
                    let job = GitHub::new(api, token, repository, LOOKUP_RETRY)?
                        .running_job(run_id, *attempt, runner)?;
                    Ok(job.and_then(|j| {
                        let created = crate::parse_time(&j.created_at).ok()?;
                        let started = crate::parse_time(j.started_at.as_deref()?).ok()?;
                        (started >= created).then(|| (started - created) as f64)
                    }))
                }
                QueueAccess::GitLab {
                    api,
                    project,
                    job_token,
                } => GitLab::with_job_token(api, job_token, project, LOOKUP_RETRY)?
                    .job_queued_seconds(),
            }
        };
        match read() {
            Ok(seconds) => seconds,
            Err(err) => {
                tracing::info!("this job's queue time could not be read: {err}");
                None
            }
        }
    }
}

/// The forge API `omen ci` talks to and its credentials.
#[derive(Debug)]
enum ForgeAccess {
    /// GitHub (`GITHUB_TOKEN`, `GITHUB_REPOSITORY`, `GITHUB_API_URL`).
    GitHub {
        api: String,
        repository: String,
        token: Token,
    },
    /// GitLab (`CI_API_V4_URL`, `CI_PROJECT_ID`, the token in the variable that
    /// `OMEN_TOKEN_VARIABLE` names, `OMEN_GITLAB_TOKEN` by default).
    GitLab {
        api: String,
        project: String,
        project_url: Option<String>,
        token: Token,
    },
}

impl ForgeAccess {
    fn github(env: &dyn Fn(&str) -> Option<String>) -> (Option<ForgeAccess>, String) {
        match (env("GITHUB_TOKEN"), env("GITHUB_REPOSITORY")) {
            (Some(token), Some(repository)) => (
                Some(ForgeAccess::GitHub {
                    api: env("GITHUB_API_URL")
                        .unwrap_or_else(|| "https://api.github.com".to_owned()),
                    repository,
                    token: Token::new(token),
                }),
                String::new(),
            ),
            _ => (
                None,
                "GITHUB_TOKEN or GITHUB_REPOSITORY is not set".to_owned(),
            ),
        }
    }

    /// `CI_JOB_TOKEN` cannot write merge request notes, so without an access token there is no
    /// forge: Omen posts nothing and says how to add one.
    fn gitlab(gitlab: &crate::ci_env::GitLabEnv) -> (Option<ForgeAccess>, String) {
        match gitlab.token {
            Some(ref token) => (
                Some(ForgeAccess::GitLab {
                    api: gitlab.api.clone(),
                    project: gitlab.project.clone(),
                    project_url: gitlab.project_url.clone(),
                    token: token.clone(),
                }),
                String::new(),
            ),
            None => (
                None,
                format!(
                    "no GitLab token in ${} (the job token cannot write notes): {}",
                    gitlab.token_variable,
                    gitlab.add_token_hint()
                ),
            ),
        }
    }
}

/// Run `omen ci`: ingest → quarantine → classify → risk → gate → publish → outputs → exit code.
pub fn run(args: &CiArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let now = crate::now();
    let env = CiEnv::read(args.risk_gate);
    let risk_gate = args.risk_threshold.unwrap_or(config.risk.gate);
    // Omen's trouble in storing the run is a warning: the comment still tells what failed. The
    // job's queue time is one request to the CI's API, made while the reports are parsed and
    // stored, and written to the run's row after.
    let (run, queued) = std::thread::scope(|scope| {
        let lookup = env
            .queue
            .as_ref()
            .filter(|_| args.run.queue_seconds.is_none())
            .map(|q| scope.spawn(|| q.seconds()));
        let run = crate::ingest::ingest_run(
            &args.reports,
            1 << 30,
            &args.db,
            &args.run,
            &config.store,
            true,
        );
        let queued = lookup.and_then(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (run, queued)
    });
    let run = run?;
    let mut trouble = run.trouble;
    let mut store = run.store;
    let meta = run.meta;
    if let (Some(seconds), Some(s), Some(id), false) =
        (queued, store.as_mut(), run.run_id, run.duplicate)
        && let Some(ms) = crate::seconds_to_ms(seconds)
        && let Err(err) = s.set_queue_ms(id, ms)
    {
        tracing::warn!("{err}; the queue time is not kept");
        trouble = true;
    }

    let quarantine = read_quarantine(&args.quarantine_file, &mut trouble);
    let quarantine_changes = match (&quarantine, store.as_ref()) {
        (Some(q), Some(s)) if meta.is_default_branch() => {
            refresh_quarantine(s, &args.quarantine_file, q, config, now, &mut trouble)
        }
        _ => Vec::new(),
    };
    if args.propose_quarantine && meta.is_default_branch() && !quarantine_changes.is_empty() {
        propose_quarantine(args, config, &env, &meta, &quarantine_changes, &mut trouble);
    }
    let quarantine = quarantine.unwrap_or_else(omen_jobs::quarantine::empty);
    let labels = crate::labels::load(&args.labels).unwrap_or_else(|err| {
        tracing::warn!("{err:#}; failure labels are not used");
        trouble = true;
        Vec::new()
    });
    let mut report = build_report(
        &run.results,
        &run.totals,
        &run.files,
        &quarantine,
        store.as_ref(),
        &meta,
        config,
        &labels,
        now,
        quarantine_changes,
    );
    if let Some(path) = args.log.as_deref().filter(|_| report.failures.is_empty()) {
        report.log = log_cause(
            path,
            store.as_mut(),
            run.run_id,
            &meta,
            config,
            &labels,
            now,
            &mut trouble,
        );
    }
    report.perf = perf_step(
        store.as_mut(),
        run.run_id,
        &meta,
        &run.results,
        &config.perf,
        now,
        &mut trouble,
    );
    report.summary_url = match (&args.html, &env.job_url) {
        // GitLab has no job summary: the note links to the HTML page in the job's artifacts.
        (Some(page), Some(job)) if page.is_relative() => Some(format!(
            "{}/artifacts/file/{}",
            job.trim_end_matches('/'),
            page.display().to_string().trim_start_matches("./")
        )),
        _ => env.run_url.clone(),
    };

    let risk = score_risk(
        args,
        config,
        &env,
        &meta,
        store.as_mut(),
        &report,
        now,
        &mut trouble,
    );
    let gate = risk_gate_verdict(args, &env, &meta, risk.as_ref(), risk_gate);
    report.risk = risk.as_ref().map(|r| risk_section(r, gate));

    if let Some(page) = &args.html {
        write_html(page, &report, store.as_ref(), config, &mut trouble);
    }
    let comment_url = publish(args, config, &env, &meta, &report, &mut trouble);
    write_outputs(&env, &report, risk.as_ref(), &comment_url);

    let unexcused = report.unexcused();
    let mut blocked = false;
    if args.fail_on == FailOn::UnexcusedFailures && unexcused > 0 {
        tracing::error!(
            "{unexcused} test failure(s) are not excused by quarantine or known flakiness"
        );
        blocked = true;
    }
    if let (Some(r), Some((_, GateVerdict::Blocked))) = (&risk, gate) {
        tracing::error!("{}", risk_gate.blocked_message(r.probability, &r.level));
        blocked = true;
    }
    if blocked {
        return Ok(Outcome {
            code: exit_code::GATE,
        });
    }
    Ok(Outcome::with_trouble(trouble))
}

/// The quarantine file, or `None` when it cannot be read — it is then never replaced (it may
/// hold someone's manual entries) and nothing is treated as quarantined.
fn read_quarantine(path: &Path, trouble: &mut bool) -> Option<QuarantineFile> {
    match omen_jobs::quarantine::read_file(path) {
        Ok(file) => Some(file.unwrap_or_else(omen_jobs::quarantine::empty)),
        Err(err) => {
            tracing::warn!(
                "{err:#}; nothing is treated as quarantined, and the file is left untouched"
            );
            *trouble = true;
            None
        }
    }
}

/// On the default branch, refresh the quarantine from the history just updated; returns what
/// changed, for the comment.
fn refresh_quarantine(
    store: &Store,
    path: &Path,
    previous: &QuarantineFile,
    config: &crate::config::Config,
    now: i64,
    trouble: &mut bool,
) -> Vec<QuarantineChange> {
    let request = Refresh {
        previous,
        policy: &config.quarantine,
        flakiness: &config.flakiness,
        mode: Mode::RunIgnore,
        now,
        force: false,
    };
    match refresh(store, Some(path), &request) {
        Ok(Refreshed::Refused(refusal)) => {
            tracing::warn!("quarantine not updated: {refusal}");
            Vec::new()
        }
        Ok(Refreshed::Written(regenerated)) => {
            let mut changes = regenerated.changes;
            changes.sort_by_key(|c| c.kind);
            changes
        }
        Err(err) => {
            tracing::warn!("quarantine not updated: {err:#}");
            *trouble = true;
            Vec::new()
        }
    }
}

/// The branch Omen owns for its quarantine proposal.
pub const PROPOSAL_BRANCH: &str = "omen/quarantine";

/// Propose the refreshed quarantine file as one pull request into the default branch, kept up to
/// date; what went wrong is a warning.
fn propose_quarantine(
    args: &CiArgs,
    config: &crate::config::Config,
    env: &CiEnv,
    meta: &omen_core::run::RunMeta,
    changes: &[QuarantineChange],
    trouble: &mut bool,
) {
    let Some(base) = meta.default_branch.as_deref() else {
        return;
    };
    let forge = match env.forge(config.github) {
        Some(Ok(forge)) => forge,
        Some(Err(e)) => {
            tracing::warn!("quarantine not proposed: {e}");
            *trouble = true;
            return;
        }
        None => {
            tracing::warn!("quarantine not proposed: {}", env.no_forge);
            return;
        }
    };
    let path = args.quarantine_file.to_string_lossy().replace('\\', "/");
    let path = path.trim_start_matches("./");
    if args.quarantine_file.is_absolute() || path.split('/').any(|part| part == "..") {
        tracing::warn!(
            "quarantine not proposed: `{path}` is not a path inside the repository (pass --quarantine-file relative to the checkout)"
        );
        return;
    }
    let content = match std::fs::read_to_string(&args.quarantine_file) {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!("quarantine not proposed: cannot read `{path}`: {e}");
            *trouble = true;
            return;
        }
    };
    let file = omen_metadata::quarantine::QuarantineFile::parse(&content).ok();
    let body = omen_render::quarantine_proposal(changes, file.as_ref(), meta.commit.as_deref());
    let proposal = omen_forge::Proposal {
        base,
        branch: PROPOSAL_BRANCH,
        path,
        content: &content,
        message: "omen: update the quarantine from the default branch's history",
        title: "Omen: quarantine update",
        body: &body,
    };
    match forge.propose_file(&proposal) {
        Ok(p) => tracing::info!(
            "quarantine proposed in change request {} ({}): {}",
            p.number,
            if p.updated { "updated" } else { "opened" },
            p.url
        ),
        Err(e) => {
            tracing::warn!("quarantine not proposed: {e}");
            *trouble = true;
        }
    }
}

/// Score the change's deploy risk when asked and possible; trouble is a warning.
#[allow(clippy::too_many_arguments)]
fn score_risk(
    args: &CiArgs,
    config: &crate::config::Config,
    env: &CiEnv,
    meta: &omen_core::run::RunMeta,
    store: Option<&mut Store>,
    report: &CiReport,
    now: i64,
    trouble: &mut bool,
) -> Option<omen_metadata::risk::RiskReport> {
    if args.risk == RiskMode::Off {
        return None;
    }
    let Some(store) = store else {
        tracing::warn!("deploy risk not scored: the history database is unavailable");
        return None;
    };
    if !crate::git::is_work_tree(&args.repo) {
        tracing::info!(
            "deploy risk not scored: {} is not a git checkout",
            args.repo.display()
        );
        return None;
    }
    let is_default = meta.is_default_branch();
    let mut signals = ci_signals(report);
    // A push's commit has no pull request event, but the merged pull request that produced it
    // says how long it was reviewed: the signal is then known for the predictions the default
    // branch keeps, which are the ones the second stage learns from.
    if is_default
        && meta.pull_request.is_none()
        && let Some(forge) = env
            .forge(LOOKUP_RETRY)
            .and_then(|c| c.map_err(|e| tracing::info!("{e}")).ok())
        && let Ok(sha) = crate::git::rev_parse(&args.repo, "HEAD")
    {
        signals.merged_pull = merged_pull(forge.as_ref(), &sha);
    }
    // Only the default branch's database is kept, so SZZ labelling runs there only.
    let budget = if is_default {
        std::time::Duration::from_secs_f64(config.risk.szz_budget_s)
    } else {
        std::time::Duration::ZERO
    };
    // GitLab names the merge request's range; it is used when the checkout holds both ends.
    let range = env.risk_range.as_ref().filter(|(base, head)| {
        let known = crate::git::rev_parse(&args.repo, base).is_ok()
            && crate::git::rev_parse(&args.repo, head).is_ok();
        if !known {
            tracing::info!("the merge request's base {base} or head {head} is not in the checkout; scoring the default range");
        }
        known
    });
    let scored = crate::risk::score_in(
        store,
        &args.repo,
        range.map(|(base, _)| base.as_str()),
        range.map_or("HEAD", |(_, head)| head.as_str()),
        &config.risk,
        budget,
        &signals,
        now,
    );
    match scored {
        Ok(r) => Some(r),
        Err(err) => {
            tracing::warn!("deploy risk could not be scored: {err:#}");
            *trouble = true;
            None
        }
    }
}

/// The risk gate's verdict. The gate guards merges: on a push the change is already in, and the
/// pull request's `omen:accept-risk` label is no longer visible, so it would block what a
/// reviewer accepted. Deploy jobs gate with `omen risk gate`.
fn risk_gate_verdict(
    args: &CiArgs,
    env: &CiEnv,
    meta: &omen_core::run::RunMeta,
    risk: Option<&omen_metadata::risk::RiskReport>,
    gate: Gate,
) -> Option<(f64, GateVerdict)> {
    if !args.risk_gate {
        return None;
    }
    if meta.pull_request.is_none() {
        tracing::info!(
            "the risk gate applies to pull request runs; this run only reports the risk (use `omen risk gate` in a deploy job)"
        );
        return None;
    }
    let accepted = args.accept_risk || env.accept_label;
    risk.map(|r| (gate.threshold(), gate.judge(r.probability, accepted)))
}

/// Job summary, annotations or the Code Quality report, and the pull request comment. Returns the
/// comment's URL, or "".
fn publish(
    args: &CiArgs,
    config: &crate::config::Config,
    env: &CiEnv,
    meta: &omen_core::run::RunMeta,
    report: &CiReport,
    trouble: &mut bool,
) -> String {
    let comment = omen_render::comment(report);
    if let Some(path) = &env.step_summary {
        append(path, &omen_render::summary(report)).unwrap_or_else(|e| {
            tracing::warn!("cannot write the job summary: {e:#}");
        });
    }
    if env.in_actions {
        let lines = omen_render::annotations(report);
        if !lines.is_empty() {
            output::print(&(lines.join("\n") + "\n"));
        }
    }
    if let Some(path) = &env.code_quality {
        // Written even when empty, so the job's artifact always exists.
        let issues = omen_render::code_quality(report);
        let written = serde_json::to_string_pretty(&issues)
            .map_err(anyhow::Error::from)
            .and_then(|json| std::fs::write(path, json + "\n").map_err(anyhow::Error::from));
        if let Err(e) = written {
            tracing::warn!(
                "cannot write the Code Quality report {}: {e:#}",
                path.display()
            );
            *trouble = true;
        }
    }
    let (pr, mode) = match (meta.pull_request, args.comment) {
        (_, CommentMode::Off) => return String::new(),
        (None, _) => {
            if !env.in_actions {
                output::print(&comment);
            }
            return String::new();
        }
        (Some(pr), mode) => (pr, mode),
    };
    let Some(client) = env.forge(config.github) else {
        let saved = save_comment(args, env, &comment);
        tracing::warn!(
            "{}: nothing posted; the comment was saved to {saved}",
            env.no_forge
        );
        if !env.in_actions {
            output::print(&comment);
        }
        return String::new();
    };
    let wants_comment = mode == CommentMode::Always
        || !report.failures.is_empty()
        || !report.quarantine_changes.is_empty()
        || !report.perf.slow.is_empty()
        || report.perf.unusual.is_some()
        || report.log.is_some()
        || report.risk.as_ref().is_some_and(|r| r.is_notable());
    let posted = client.and_then(|forge| {
        if wants_comment {
            forge
                .upsert_comment(pr, omen_render::MARKER, &comment)
                .map(Some)
        } else {
            // A clean run posts nothing new, but keeps an earlier comment truthful.
            forge.update_comment_if_present(pr, omen_render::MARKER, &comment)
        }
    });
    match posted {
        Ok(Some(p)) => return p.url,
        Ok(None) => {}
        Err(ForgeError::Forbidden {
            status, message, ..
        }) => {
            let saved = save_comment(args, env, &comment);
            tracing::warn!(
                "the token cannot comment on this change request (HTTP {status}: {message}); nothing was posted. \
                 The comment was saved to {saved}. {}",
                env.forbidden_hint(pr)
            );
        }
        Err(err) => {
            let saved = save_comment(args, env, &comment);
            tracing::warn!("{err}; the comment was saved to {saved}");
            *trouble = true;
        }
    }
    String::new()
}

/// The step's outputs (`GITHUB_OUTPUT`).
/// The HTML report, with the default branch's flakiest tests charted.
fn write_html(
    page: &std::path::Path,
    report: &CiReport,
    store: Option<&Store>,
    config: &crate::config::Config,
    trouble: &mut bool,
) {
    let flaky = match store.map(|s| crate::flaky::assess_all(s, &config.flakiness)) {
        Some(Ok(listed)) => listed
            .into_iter()
            .filter(|(_, a)| a.state == omen_core::flakiness::State::Flaky)
            .map(|(row, a)| omen_render::html::FlakyBar {
                name: row.selector,
                score: a.score,
                state: a.state.as_str().to_owned(),
            })
            .collect(),
        Some(Err(e)) => {
            tracing::warn!("the HTML report has no flaky-test chart: {e:#}");
            Vec::new()
        }
        None => Vec::new(),
    };
    let html = omen_render::html::page(report, &flaky);
    if let Err(e) = omen_jobs::quarantine::write_atomically(page, html.as_bytes()) {
        tracing::warn!("cannot write the HTML report: {e:#}");
        *trouble = true;
    }
}

fn write_outputs(
    env: &CiEnv,
    report: &CiReport,
    risk: Option<&omen_metadata::risk::RiskReport>,
    comment_url: &str,
) {
    let figures = report.figures();
    // (the action's output, the dotenv variable, the value)
    let outputs = [
        ("tests", "OMEN_TESTS", figures.tests.to_string()),
        ("failed", "OMEN_FAILED", figures.failed.to_string()),
        (
            "new-failures",
            "OMEN_NEW_FAILURES",
            figures.new_failures.to_string(),
        ),
        ("flaky", "OMEN_FLAKY", figures.flaky.to_string()),
        (
            "quarantined",
            "OMEN_QUARANTINED",
            figures.quarantined.to_string(),
        ),
        (
            "risk",
            "OMEN_RISK",
            risk.map(|r| format!("{:.4}", r.probability))
                .unwrap_or_default(),
        ),
        (
            "risk-level",
            "OMEN_RISK_LEVEL",
            risk.map(|r| r.level.clone()).unwrap_or_default(),
        ),
        ("comment-url", "OMEN_NOTE_URL", comment_url.to_owned()),
    ];
    // One line each, whatever a value holds.
    let line = |name: &str, value: &str| format!("{name}={}\n", value.replace(['\n', '\r'], " "));
    if let Some(path) = &env.outputs {
        let text: String = outputs.iter().map(|(name, _, v)| line(name, v)).collect();
        append(path, &text).unwrap_or_else(|e| tracing::warn!("cannot write outputs: {e:#}"));
    }
    if let Some(path) = &env.dotenv {
        let text: String = outputs.iter().map(|(_, name, v)| line(name, v)).collect();
        std::fs::write(path, text).unwrap_or_else(|e| {
            tracing::warn!("cannot write the dotenv report {}: {e}", path.display())
        });
    }
    if let Some(path) = &env.metrics {
        std::fs::write(path, omen_render::metrics(&figures)).unwrap_or_else(|e| {
            tracing::warn!("cannot write the metrics report {}: {e}", path.display())
        });
    }
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
    labels: &[omen_jobs::failures::Label],
    now: i64,
    quarantine_changes: Vec<QuarantineChange>,
) -> CiReport {
    let active: std::collections::HashMap<&str, &str> =
        omen_core::quarantine::active(quarantine, now)
            .map(|e| (e.id.as_str(), e.mode.as_str()))
            .collect();
    let mut failures = Vec::new();
    let mut texts = Vec::new();
    // The stored test id of each failure, when the history knows the test.
    let mut failure_ids = Vec::new();
    for r in results {
        let id = &r.identity;
        if !r.outcome.is_failure() {
            continue;
        }
        let known = store.and_then(|s| s.find_test(&id.scope, &id.name).ok().flatten());
        let message = r
            .failure
            .as_ref()
            .and_then(|f| f.headline())
            .map(str::to_owned);
        let failing = Failing {
            quarantined: active.get(id.key.as_str()).copied(),
            history: known.as_ref().map(|row| &row.history),
            signature: r.failure.as_ref().and_then(FailureSignature::of),
            on_default_branch: meta.is_default_branch(),
        };
        let class = match classify_failure(&failing, &config.flakiness) {
            Classification::New => FailureClass::New,
            Classification::FailingOnDefault { streak_run } => FailureClass::FailingOnDefault {
                since: store
                    .and_then(|s| s.run(streak_run as i64).ok().flatten())
                    .and_then(|run| run.commit),
            },
            Classification::KnownFlaky { score, evidence } => {
                FailureClass::KnownFlaky { score, evidence }
            }
            Classification::Quarantined { mode } => FailureClass::Quarantined { mode },
        };
        texts.push(r.failure.as_ref().map(|f| f.as_text()).unwrap_or_default());
        failure_ids.push(known.as_ref().map(|row| row.id));
        failures.push(FailureRow {
            name: id.selector.clone(),
            file: id.file.clone(),
            line: r.line,
            message,
            class,
        });
    }
    // The learned layer trains on the history's signatures: only when something failed.
    let classifier = if texts.is_empty() {
        Default::default()
    } else {
        classifier(store, labels, config)
    };
    let causes: Vec<CauseRow> = omen_jobs::failures::group(&texts, &classifier)
        .into_iter()
        .map(|c| CauseRow {
            headline: c.headline,
            known: store.and_then(|s| seen(s, c.signature, meta)),
            kind: c.category.map(kind_text),
            failures: c.members,
        })
        .collect();
    let systemic = match store {
        Some(s) if failure_ids.iter().flatten().nth(1).is_some() => {
            systemic_rows(s, meta, &failure_ids)
        }
        _ => Vec::new(),
    };
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
        // The suite time's level between change points, as the detector sees these runs.
        // Found on milliseconds, the unit of the detector's floor; drawn in seconds.
        let ms: Vec<f64> = runs.iter().map(|r| r.duration_ms as f64).collect();
        let changes = detect(&ms, &config.perf.suite_detect);
        let seconds: Vec<f64> = ms.iter().map(|v| v / 1000.0).collect();
        let levels = levels(&seconds, &changes);
        trend = runs
            .iter()
            .zip(levels)
            .map(|(r, level)| {
                let ran = (r.tests - r.skipped).max(1) as f64;
                TrendPoint {
                    commit: r.commit.clone().unwrap_or_default(),
                    pass_rate: (r.tests - r.skipped - r.failed) as f64 / ran * 100.0,
                    duration_s: r.duration_ms as f64 / 1000.0,
                    level_s: level.is_finite().then_some(level),
                }
            })
            .collect();
    }
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
        perf: PerfSection::default(),
        trend,
        unusable: files
            .iter()
            .filter_map(|f| {
                f.error
                    .as_ref()
                    .map(|e| (f.path.clone(), e.message.clone()))
            })
            .collect(),
        summary_url: None,
        risk: None,
        causes,
        log: None,
        systemic,
    }
}

/// The default branch's groups of tests that fail together (this job's runs), each with the
/// failures of this run (`failure_ids`: each failure's stored test id) that belong to it, when
/// two or more do.
fn systemic_rows(
    store: &Store,
    meta: &omen_core::run::RunMeta,
    failure_ids: &[Option<i64>],
) -> Vec<omen_render::SystemicRow> {
    let config = omen_core::failure::systemic::SystemicConfig::default();
    let (runs, clusters) = match omen_jobs::failures::systemic(store, meta.job.as_deref(), &config)
    {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!("{err}; tests that fail together are not looked for");
            return Vec::new();
        }
    };
    clusters
        .into_iter()
        .filter_map(|c| {
            let members: std::collections::HashSet<u64> = c.tests.iter().copied().collect();
            let failures: Vec<usize> = failure_ids
                .iter()
                .enumerate()
                .filter(|(_, id)| id.is_some_and(|id| members.contains(&(id as u64))))
                .map(|(i, _)| i)
                .collect();
            (failures.len() >= 2).then_some(omen_render::SystemicRow {
                failures,
                size: c.tests.len(),
                together: c.together,
                any: c.any,
                runs,
            })
        })
        .collect()
}

/// How even the default branch's newest run of shard group `group` was.
fn shard_row(store: &Store, group: &str) -> Option<omen_render::ShardRow> {
    let groups = omen_jobs::perf::shard_groups(store)
        .map_err(|err| tracing::warn!("{err}; the shards' balance is not shown"))
        .ok()?;
    let g = groups.into_iter().find(|g| g.group == group)?;
    let (slowest_ms, suggested_slowest_ms) = g.balance.slowest_ms();
    Some(omen_render::ShardRow {
        group: g.group,
        jobs: g.jobs.len(),
        slowest_ms,
        imbalance: g.balance.imbalance(),
        suggested_slowest_ms,
        suggested_imbalance: g.balance.suggested_imbalance(),
    })
}

/// The failure classifier of this repository (labels, its rules, the shipped rules, the learned
/// layer); without the history's signatures when they cannot be read.
fn classifier(
    store: Option<&Store>,
    labels: &[omen_jobs::failures::Label],
    config: &crate::config::Config,
) -> omen_core::failure::Classifier {
    omen_jobs::failures::classifier(store, labels, config.failure_rules.clone()).unwrap_or_else(
        |err| {
            tracing::warn!("{err}; failures are classified by the rules only");
            omen_core::failure::Classifier {
                user_rules: config.failure_rules.clone(),
                ..Default::default()
            }
        },
    )
}

/// `infrastructure: connection refused or reset`, or `application: learned, 92%: words`.
fn kind_text(k: omen_core::failure::Categorized) -> String {
    match k.confidence {
        Some(p) => format!(
            "{}: learned, {:.0}%: {}",
            k.category.as_str(),
            p * 100.0,
            k.reason
        ),
        None => format!("{}: {}", k.category.as_str(), k.reason),
    }
}

/// What the history knows of signature `hash`, this run left out.
fn seen(store: &Store, hash: u64, meta: &omen_core::run::RunMeta) -> Option<Seen> {
    omen_jobs::failures::known(store, hash, meta.is_default_branch())
        .map_err(|err| tracing::warn!("{err}"))
        .ok()
}

/// A log's tail read at most: the error block is at its end.
const LOG_TAIL_BYTES: u64 = 16 << 20;

/// The cause of a job's log (`--log`): its last error block, classified and counted in the
/// history as this run's. Omen's trouble reading it is a warning.
#[allow(clippy::too_many_arguments)]
fn log_cause(
    path: &Path,
    store: Option<&mut Store>,
    run_id: Option<i64>,
    meta: &omen_core::run::RunMeta,
    config: &crate::config::Config,
    labels: &[omen_jobs::failures::Label],
    now: i64,
    trouble: &mut bool,
) -> Option<omen_render::LogCause> {
    let (text, skipped_lines) = match read_log_tail(path, LOG_TAIL_BYTES) {
        Ok(read) => read,
        Err(err) => {
            tracing::warn!("{err:#}; the log is not used");
            *trouble = true;
            return None;
        }
    };
    let Some(block) = omen_core::failure::log::error_block(&text) else {
        tracing::info!("{}: no line of the log reports an error", path.display());
        return None;
    };
    let trace = block.excerpt.join("\n");
    let failure = omen_core::failure::FailureText {
        kind: None,
        message: Some(&block.headline),
        trace: Some(&trace),
    };
    let signature = omen_core::failure::Signature::of(&failure);
    let kind = classifier(store.as_deref(), labels, config)
        .classify(&failure, &signature)
        .map(kind_text);
    let known = match (store, run_id) {
        (Some(store), Some(run)) => {
            if let Err(err) = store.record_run_signature(
                run,
                now,
                meta.is_default_branch(),
                signature.hash,
                &signature.masked,
            ) {
                tracing::warn!("{err}; the log's cause is not counted");
                *trouble = true;
            }
            seen(store, signature.hash, meta)
        }
        _ => None,
    };
    Some(omen_render::LogCause {
        path: path.display().to_string(),
        line: skipped_lines + block.line,
        headline: block.headline,
        kind,
        known,
        excerpt: block.excerpt,
    })
}

/// The last `max` bytes of the log at `path` (from a line start), as text, and how many lines
/// came before them.
fn read_log_tail(path: &Path, max: u64) -> anyhow::Result<(String, usize)> {
    use std::io::{BufRead as _, Read as _};
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the log {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read the log {}", path.display()))?
        .len();
    let mut reader = std::io::BufReader::new(file);
    let mut skipped_lines = 0;
    if len > max {
        // Count the lines before the tail, then start at the next line start.
        let mut counted = 0u64;
        let mut buf = Vec::new();
        while counted < len - max {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("cannot read the log {}", path.display()))?;
            if n == 0 {
                break;
            }
            counted += n as u64;
            skipped_lines += 1;
        }
    }
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the log {}", path.display()))?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), skipped_lines))
}

/// Durations: on the default branch, find and remember change points in the series this run
/// extended; elsewhere, compare this run with the default branch. Omen's trouble here is a
/// warning; the report goes on without the section.
fn perf_step(
    store: Option<&mut Store>,
    run_id: Option<i64>,
    meta: &omen_core::run::RunMeta,
    results: &[TestResult],
    settings: &omen_jobs::perf::PerfSettings,
    now: i64,
    trouble: &mut bool,
) -> PerfSection {
    let mut section = PerfSection::default();
    // Where the time goes, from this run alone.
    let mut timed: Vec<(&TestResult, f64)> = results
        .iter()
        .filter_map(|r| r.duration_ms.map(|ms| (r, f64::from(ms))))
        .collect();
    section.total_ms = timed.iter().map(|(_, ms)| ms).sum();
    timed.sort_by(|a, b| b.1.total_cmp(&a.1));
    section.slowest = timed
        .iter()
        .take(10)
        .map(|(r, ms)| TimeRow {
            name: r.identity.selector.clone(),
            ms: *ms,
        })
        .collect();
    let (Some(store), Some(run_id)) = (store, run_id) else {
        return section;
    };
    if let Some((group, _)) = meta
        .job
        .as_deref()
        .and_then(omen_core::perf::shards::shard_of)
    {
        section.shards = shard_row(store, group);
    }
    let outcome = (|| -> anyhow::Result<()> {
        let Some(run) = store.run(run_id)? else {
            return Ok(());
        };
        let name = |store: &Store, id: i64| -> anyhow::Result<String> {
            Ok(store
                .test(id)?
                .map_or_else(|| format!("test #{id}"), |t| t.selector))
        };
        if let Some(a) = omen_jobs::perf::unusual_run(store, &run, settings)? {
            section.unusual = Some(UnusualRun {
                severity: a.severity.as_str(),
                score: a.score,
                metrics: a
                    .deviations
                    .iter()
                    .map(|d| UnusualMetric {
                        name: omen_jobs::perf::RUN_METRICS[d.metric].name,
                        ms: omen_jobs::perf::RUN_METRICS[d.metric].ms,
                        actual: d.actual,
                        expected: d.expected,
                        range: d.range,
                        kind: d.kind,
                    })
                    .collect(),
            });
        }
        if meta.is_default_branch() {
            let found = omen_jobs::perf::after_default_run(store, &run, settings, now)?;
            for f in found {
                section.changes.push(ChangeRow {
                    name: match f.row.test_id {
                        Some(id) => Some(name(store, id)?),
                        None => None,
                    },
                    before_ms: f.row.before_ms,
                    after_ms: f.row.after_ms,
                    commit: f.commit,
                    previous_commit: f.previous_commit,
                    at: f.at,
                    p_value: f.row.p_value,
                });
            }
        } else {
            let c = omen_jobs::perf::compare_pull_request(store, &run, settings)?;
            section.slow_total = c.slowdowns.len();
            section.together = c.together;
            for (id, s) in c.slowdowns.iter().take(10) {
                section.slow.push(SlowRow {
                    name: name(store, *id)?,
                    baseline_ms: s.baseline_ms,
                    current_ms: s.current_ms,
                    p_value: s.p_value,
                });
            }
        }
        Ok(())
    })();
    if let Err(err) = outcome {
        tracing::warn!("durations not analysed: {err:#}");
        *trouble = true;
    }
    section
}

/// Retries for lookups that only enrich the report: a few seconds at most, never the budget a
/// comment gets.
const LOOKUP_RETRY: RetryPolicy = RetryPolicy {
    attempts: 2,
    backoff: std::time::Duration::from_secs(1),
    budget: std::time::Duration::from_secs(5),
};

/// `(number, hours open)` of the merged pull request that produced `sha`. Any trouble is only
/// logged: the signal is then unknown, as it is for a direct push.
fn merged_pull(gh: &dyn Forge, sha: &str) -> Option<(u64, f64)> {
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
        level: RiskLevel::from_name(&r.level).unwrap_or_else(|| {
            tracing::warn!("unknown risk level `{}`; shown as LOW", r.level);
            RiskLevel::Low
        }),
        probability: r.probability,
        percentile: r.percentile,
        model,
        factors: r.factors.clone(),
        hints: r.hints.clone(),
        signals: r.signals.clone(),
        missing: r.missing.clone(),
        gate,
        accept_label: ACCEPT_LABEL.to_owned(),
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

fn save_comment(args: &CiArgs, env: &CiEnv, body: &str) -> String {
    let path = args.comment_file.clone().unwrap_or_else(|| {
        env.runner_temp
            .clone()
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
    /// Pull request number (`--pr` is an older spelling).
    #[arg(long = "pull-request", alias = "pr", value_name = "N")]
    pub pr: u64,
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
    let env = CiEnv::read(false);
    let forge = env
        .forge(config.github)
        .with_context(|| env.no_forge.clone())??;
    match forge.upsert_comment(args.pr, omen_render::MARKER, &body) {
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
            Ok(Outcome::with_trouble(true))
        }
    }
}
