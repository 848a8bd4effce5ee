//! `omen restore`: on GitLab, before anything reads the history, fetch the copy the default
//! branch published (a job artifact) into the database path.
//!
//! GitLab's cache is per runner and last-writer-wins, so the default-branch pipeline publishes
//! the database as an artifact of Omen's job, and every pipeline starts from the newest one
//! (`GET /projects/:id/jobs/artifacts/:ref/raw/:path?job=:name`, with the job token). Which copy
//! wins when one is already on disk is [`omen_core::carrier::choose`]'s decision.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use omen_core::carrier::{self, Keep};
use omen_forge::{ForgeError, GitLab};
use omen_store::Store;
use serde::Serialize;

use crate::ci_env::GitLabEnv;
use crate::{Format, Outcome, output};

/// Arguments of `omen restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Where the history database goes.
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// The job whose artifacts hold the database (Omen's job) [default: `$OMEN_HISTORY_JOB`,
    /// else this job, `$CI_JOB_NAME`].
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// The database's path inside the artifacts [default: `--db`, relative to the project
    /// directory].
    #[arg(long, value_name = "PATH")]
    pub artifact_path: Option<String>,
    /// The branch whose newest artifact is fetched [default: `$CI_DEFAULT_BRANCH`].
    #[arg(long = "ref", value_name = "NAME")]
    pub ref_name: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// What `omen restore --format json` prints.
#[derive(Debug, Serialize)]
struct RestoreReport {
    version: u32,
    /// `artifact` (the published copy is now at `db`), `local` (the copy on disk was kept) or
    /// `none` (there is no history yet).
    source: &'static str,
    db: String,
    /// Runs in the database now at `db`.
    runs: u64,
    /// Its newest default-branch run (RFC 3339).
    newest_default_run: Option<String>,
}

/// Run `omen restore`.
pub fn run(args: &RestoreArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let gitlab = match GitLabEnv::read(&env) {
        Ok(g) => g,
        Err(why) => {
            tracing::warn!("not restoring the history: {why} (omen restore runs in GitLab CI)");
            return Ok(Outcome::with_trouble(true));
        }
    };
    let ref_name = args.ref_name.clone().or_else(|| env("CI_DEFAULT_BRANCH"));
    let job = args
        .job
        .clone()
        .or_else(|| env("OMEN_HISTORY_JOB"))
        .or_else(|| env("CI_JOB_NAME"));
    let (Some(ref_name), Some(job)) = (ref_name, job) else {
        anyhow::bail!("the default branch or the job is unknown: pass --ref and --job");
    };
    let artifact_path = match &args.artifact_path {
        Some(p) => p.clone(),
        None => artifact_path_of(&args.db, env("CI_PROJECT_DIR").as_deref())?,
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let on_default_branch = crate::ci_env::detect(&env, &cwd, 0).0.is_default_branch();

    let mut trouble = false;
    let mut fork_refused = false;
    let fetched = match fetch(&gitlab, config.github, &ref_name, &artifact_path, &job) {
        Ok(bytes) => bytes,
        // A fork's job token may not read the target project: expected, not Omen's trouble.
        Err(ForgeError::Forbidden { .. }) if gitlab.fork => {
            fork_refused = true;
            None
        }
        Err(e) => {
            tracing::warn!("{e}; starting from the history already on disk, if any");
            trouble = true;
            None
        }
    };
    let dir = args
        .db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    // The download is checked where it lands, beside the database, and renamed over it only
    // when it wins: a broken download never replaces a usable copy.
    let landing = PathBuf::from(format!("{}.omen-restore", args.db.display()));
    let candidate = match fetched {
        Some(bytes) => {
            std::fs::write(&landing, &bytes)
                .with_context(|| format!("cannot write `{}`", landing.display()))?;
            match summary(&landing) {
                Ok(copy) => Some(copy),
                Err(e) => {
                    tracing::warn!(
                        "the published history (`{artifact_path}` of job `{job}` on `{ref_name}`) is unusable: {e}"
                    );
                    trouble = true;
                    None
                }
            }
        }
        None => None,
    };
    let local = summary(&args.db).ok();
    let keep = carrier::choose(candidate, local, on_default_branch);
    let source = match (keep, candidate) {
        (Keep::Fetched, Some(_)) => {
            // The journal beside the old copy belongs to it, never to the one replacing it.
            for side in ["-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{side}", args.db.display()));
            }
            std::fs::rename(&landing, &args.db)
                .with_context(|| format!("cannot replace `{}`", args.db.display()))?;
            "artifact"
        }
        _ if local.is_some() => "local",
        _ => "none",
    };
    for side in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", landing.display()));
    }
    let (runs, newest) = match Store::open_read_only(&args.db) {
        Ok(store) => (
            store.stats().map(|s| s.runs).unwrap_or(0),
            newest_default_run(&store),
        ),
        Err(_) => (0, None),
    };
    let report = RestoreReport {
        version: 1,
        source,
        db: args.db.display().to_string(),
        runs,
        newest_default_run: newest.map(omen_core::time::format_rfc3339),
    };
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Text if fork_refused && report.source != "artifact" => output::print(
            "omen: this pipeline runs in a fork, whose job token may not read the target project's history; running without it\n",
        ),
        Format::Text => output::print(&render_text(&report, &ref_name, &job, &artifact_path)),
    }
    Ok(Outcome::with_trouble(trouble))
}

/// The published database, with the job token; with the access token when the job token may
/// not read artifacts through the API (GitLab tiers differ). `None`: nothing published yet.
fn fetch(
    gitlab: &GitLabEnv,
    retry: omen_forge::RetryPolicy,
    ref_name: &str,
    artifact_path: &str,
    job: &str,
) -> Result<Option<Vec<u8>>, ForgeError> {
    let credentials = [
        gitlab
            .job_token
            .as_ref()
            .map(|t| GitLab::with_job_token(&gitlab.api, t, &gitlab.project, retry)),
        gitlab
            .token
            .as_ref()
            .map(|t| GitLab::new(&gitlab.api, t, &gitlab.project, None, retry)),
    ];
    let mut refused = None;
    for client in credentials.into_iter().flatten() {
        match client?.download_artifact(ref_name, artifact_path, job) {
            Err(e @ ForgeError::Forbidden { .. }) => refused = Some(e),
            answer => return answer,
        }
    }
    match refused {
        Some(e) => Err(e),
        None => Err(ForgeError::Setup(format!(
            "neither CI_JOB_TOKEN nor ${} is set",
            gitlab.token_variable
        ))),
    }
}

/// `db` as a path inside the job's artifacts: relative to the project directory.
fn artifact_path_of(db: &Path, project_dir: Option<&str>) -> anyhow::Result<String> {
    let relative = if db.is_absolute() {
        let base = project_dir.context("--db is absolute and CI_PROJECT_DIR is not set")?;
        db.strip_prefix(base)
            .with_context(|| {
                format!(
                    "--db `{}` is outside the project directory, so it cannot be an artifact",
                    db.display()
                )
            })?
            .to_path_buf()
    } else {
        db.to_path_buf()
    };
    let text = relative.to_string_lossy().replace('\\', "/");
    Ok(text.trim_start_matches("./").to_owned())
}

/// What the choice needs to know of the database at `path`.
fn summary(path: &Path) -> Result<carrier::Copy, omen_store::StoreError> {
    let store = Store::open_read_only(path)?;
    Ok(carrier::Copy {
        newest_default_run: newest_default_run(&store),
    })
}

fn newest_default_run(store: &Store) -> Option<i64> {
    store
        .recent_default_runs(1)
        .ok()
        .and_then(|runs| runs.last().map(|r| r.at))
}

fn render_text(r: &RestoreReport, ref_name: &str, job: &str, artifact_path: &str) -> String {
    use omen_render::escape::line;
    let newest = r
        .newest_default_run
        .as_deref()
        .map_or_else(String::new, |t| format!(", the newest from {t}"));
    let runs = format!(
        "{} run{}{newest}",
        r.runs,
        if r.runs == 1 { "" } else { "s" }
    );
    match r.source {
        "artifact" => format!(
            "omen: restored the history from `{}` (job `{}`): {runs}\n",
            line(ref_name),
            line(job)
        ),
        "local" => format!(
            "omen: kept `{}` ({runs}): {}\n",
            line(&r.db),
            "nothing newer was published by the default branch"
        ),
        _ => format!(
            "omen: no history yet: `{}` has no artifact `{}` from a successful `{}` job; the first default-branch run starts one\n",
            line(ref_name),
            line(artifact_path),
            line(job)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_path_is_the_database_relative_to_the_project() {
        let rel = |db: &str, dir: Option<&str>| artifact_path_of(Path::new(db), dir);
        assert_eq!(rel(".omen/history.db", None).unwrap(), ".omen/history.db");
        assert_eq!(rel("./.omen/history.db", None).unwrap(), ".omen/history.db");
        assert_eq!(
            rel("/builds/g/p/.omen/h.db", Some("/builds/g/p")).unwrap(),
            ".omen/h.db"
        );
        assert!(rel("/tmp/h.db", Some("/builds/g/p")).is_err());
        assert!(rel("/tmp/h.db", None).is_err());
    }
}
