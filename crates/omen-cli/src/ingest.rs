//! `omen ingest`: reports → test results → history database.

use std::path::{Path, PathBuf};

use anyhow::Context;
use omen_core::run::{RunMeta, TestResult};
use omen_jobs::reports::{parse_reports, run_key};
use omen_metadata::ingest::{Counts, DatabaseInfo, FileSummary, IngestReport, RunInfo};
use omen_store::{ResultRecord, Store, StoreConfig};

use crate::ci_env::{self, Source};
use crate::{Format, Outcome, RunArgs, output};

/// Arguments of `omen ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Report files, directories (searched recursively for *.xml) or glob patterns.
    #[arg(required = true, value_name = "REPORTS")]
    pub reports: Vec<String>,
    /// History database.
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Refuse reports larger than this many bytes.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    pub max_report_size: u64,
    /// Keep raw per-test results for this many recent runs; older runs are compacted
    /// [default: 300, or `store.keep_runs` in the config file].
    #[arg(long, value_name = "RUNS")]
    pub keep_runs: Option<u32>,
    /// Run metadata overrides.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Resolve the run's metadata: CI environment or git, then flags on top.
pub fn resolve_run(args: &RunArgs, now: i64) -> anyhow::Result<(RunMeta, Source)> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (mut meta, source) = ci_env::detect(&|k| std::env::var(k).ok(), &cwd, now);
    args.apply(&mut meta);
    if meta.default_branch.is_none() {
        tracing::info!(
            "the default branch is unknown (pass --default-branch): this run will not feed flakiness evidence"
        );
    }
    Ok((meta, source))
}

/// One run read and stored: what `omen ingest` prints and what `omen ci` builds on.
#[derive(Debug)]
pub struct Ingested {
    /// The run's metadata.
    pub meta: RunMeta,
    /// Where the metadata came from.
    pub source: Source,
    /// Per-file summaries (unusable files carry their error).
    pub files: Vec<FileSummary>,
    /// Sums over the usable files.
    pub totals: Counts,
    /// The folded results, when the caller asked to keep them.
    pub results: Vec<TestResult>,
    /// The open database, unless it could not be opened.
    pub store: Option<Store>,
    /// What happened to the database.
    pub database: DatabaseInfo,
    /// The run was already stored.
    pub duplicate: bool,
    /// The stored run's row id (also when it was already stored).
    pub run_id: Option<i64>,
    /// Omen had trouble of its own (an unusable report, an unwritable database).
    pub trouble: bool,
}

/// Resolve the run, read `reports`, and store the run in `db`. Never fails for a bad report or
/// database: those are warnings and `trouble`. With `keep_results` the folded results are
/// returned too (`omen ci` classifies them); otherwise they are moved into the store.
pub fn ingest_run(
    reports: &[String],
    max_report_size: u64,
    db: &Path,
    run_args: &RunArgs,
    config: &StoreConfig,
    keep_results: bool,
) -> anyhow::Result<Ingested> {
    let now = crate::now();
    let (mut meta, source) = resolve_run(run_args, now)?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let roots = ci_env::roots(&|k| std::env::var(k).ok(), &cwd);
    // While the reports are parsed, the second core opens an existing database (integrity check
    // included), reads ahead a large run's tests, and asks git what the commit changed; a new
    // database is created only once there is something to store.
    let started = std::time::Instant::now();
    let (parsed, early, fresh_change) = std::thread::scope(|scope| {
        let meta = &meta;
        let cwd = cwd.as_path();
        let (opening, changing) = if db.exists() {
            let opening = scope.spawn(move || {
                let opened = Store::open(db, now)?;
                let read = opened
                    .store
                    .read_tests_for(omen_jobs::reports::total_bytes(reports))
                    .map_err(|err| tracing::debug!("tests not read ahead: {err:#}"))
                    .ok()
                    .flatten();
                let change = commit_change(meta, Some(&opened.store), cwd);
                Ok::<_, omen_store::StoreError>((opened, read, change))
            });
            (Some(opening), None)
        } else {
            (
                None,
                Some(scope.spawn(move || commit_change(meta, None, cwd))),
            )
        };
        let parsed = parse_reports(reports, max_report_size, &roots);
        let opened = opening.map(|handle| {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("opening {} panicked", db.display()))
        });
        let change = changing.and_then(|handle| handle.join().ok().flatten());
        (parsed, opened, change)
    });
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        results = parsed.results.len(),
        "reports parsed"
    );
    let mut trouble = parsed.unusable > 0;
    let key = run_key(&meta, &parsed.content_hash);
    let mut database = DatabaseInfo {
        path: db.display().to_string(),
        stored: 0,
        set_aside: None,
        failed: false,
    };
    let mut duplicate = false;
    let mut run_id = None;
    let mut store = None;
    let mut results = Vec::new();
    if parsed.files.iter().all(|f| f.error.is_some()) {
        tracing::warn!("no usable report: nothing was stored");
        trouble = true;
    } else {
        let records: Vec<ResultRecord> = if keep_results {
            results = parsed.results;
            results.iter().cloned().map(ResultRecord::from).collect()
        } else {
            parsed.results.into_iter().map(ResultRecord::from).collect()
        };
        let opened = match early {
            Some(opened) => opened.and_then(|o| o.map_err(anyhow::Error::from)),
            None => Store::open(db, now)
                .map(|opened| (opened, None, fresh_change))
                .map_err(anyhow::Error::from),
        };
        let stored = opened.and_then(|(opened, read, change)| {
            database.set_aside = opened.set_aside.map(|(path, _)| path.display().to_string());
            let mut s = opened.store;
            meta.change = change;
            let storing = std::time::Instant::now();
            let outcome = s.ingest_with(&meta, &key, records, config, read)?;
            tracing::debug!(
                elapsed_ms = storing.elapsed().as_millis() as u64,
                "run stored"
            );
            Ok((s, outcome))
        });
        match stored {
            Ok((s, outcome)) => {
                if outcome.outage {
                    tracing::warn!(
                        "most of the suite failed in this run: treated as an outage, not as flakiness evidence"
                    );
                }
                database.stored = outcome.stored;
                duplicate = outcome.duplicate;
                run_id = Some(outcome.run);
                store = Some(s);
            }
            Err(err) => {
                tracing::warn!("{err:#}");
                database.failed = true;
                trouble = true;
            }
        }
    }
    Ok(Ingested {
        meta,
        source,
        files: parsed.files,
        totals: parsed.totals,
        results,
        store,
        database,
        duplicate,
        run_id,
        trouble,
    })
}

/// What a default-branch commit changed since the previous default-branch commit in `store`
/// (none: since its parent), read from the checkout: the flakiness model's change evidence.
/// `None` off the default branch, outside a git checkout, or when the checkout cannot tell (a
/// shallow clone).
fn commit_change(
    meta: &RunMeta,
    store: Option<&Store>,
    cwd: &Path,
) -> Option<omen_core::change::Change> {
    let commit = meta
        .commit
        .as_deref()
        .filter(|_| meta.is_default_branch())?;
    if !crate::git::is_work_tree(cwd) || !crate::git::has_commit(cwd, commit) {
        return None;
    }
    // CI checkouts are shallow by default (`fetch-depth: 1`): fetch the one parent the change is
    // read against. Quick, and only on the default branch; if it fails, the evidence is absent.
    let parent = format!("{commit}^1");
    if crate::git::is_shallow(cwd) && !crate::git::has_commit(cwd, &parent) {
        match crate::git::git(cwd, &["fetch", "--quiet", "--no-tags", "--deepen=1"]) {
            Ok(_) => tracing::info!("fetched the parent commit to read what this commit changed"),
            Err(err) => tracing::info!("change evidence unavailable: {err:#}"),
        }
    }
    let base = store.and_then(|store| {
        store
            .previous_default_commit(commit)
            .map_err(|err| tracing::warn!("{err:#}"))
            .ok()
            .flatten()
    });
    let paths = crate::git::changed_paths(cwd, base.as_deref(), commit)?;
    tracing::debug!(paths = paths.len(), base = ?base, "change evidence");
    Some(omen_core::change::Change::from_paths(
        paths.iter().map(String::as_str),
    ))
}

/// Run `omen ingest`.
pub fn run(args: &IngestArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let store_config = StoreConfig {
        keep_runs: args.keep_runs.unwrap_or(config.store.keep_runs),
        ..config.store
    };
    let run = ingest_run(
        &args.reports,
        args.max_report_size,
        &args.db,
        &args.run,
        &store_config,
        false,
    )?;
    let incomplete = run.files.iter().any(|f| f.truncated.is_some());
    let report = IngestReport {
        version: omen_metadata::ingest::INGEST_REPORT_VERSION,
        incomplete,
        files: run.files,
        totals: run.totals,
        duplicate: run.duplicate,
        run: run_info(&run.meta, run.source),
        database: run.database,
    };
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Text => output::print(&render_text(&report)),
    }
    Ok(Outcome::with_trouble(run.trouble))
}

/// The JSON `run` object.
pub fn run_info(meta: &RunMeta, source: Source) -> RunInfo {
    RunInfo {
        commit: meta.commit.clone(),
        branch: meta.branch.clone(),
        default_branch: meta.default_branch.clone(),
        is_default_branch: meta.is_default_branch(),
        run_id: meta.run_id.clone(),
        attempt: meta.attempt,
        job: meta.job.clone(),
        pull_request: meta.pull_request,
        timestamp: omen_core::time::format_rfc3339(meta.at),
        source: source.as_str().to_owned(),
    }
}

fn render_text(report: &IngestReport) -> String {
    use omen_render::escape::line;
    use std::fmt::Write;
    let mut s = String::new();
    let t = &report.totals;
    let usable = report.files.iter().filter(|f| f.error.is_none()).count();
    let run = &report.run;
    let _ = writeln!(
        s,
        "omen: {usable} of {} report(s) read for {}{}",
        report.files.len(),
        line(run.branch.as_deref().unwrap_or("(unknown branch)")),
        run.commit
            .as_deref()
            .map(|c| format!(" @ {}", line(&c.chars().take(12).collect::<String>())))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  {} tests: {} passed, {} failed, {} errors, {} skipped, {} flaky",
        t.tests, t.passed, t.failures, t.errors, t.skipped, t.flaky
    );
    for f in &report.files {
        if let Some(e) = &f.error {
            let place = match (e.line, e.column) {
                (Some(l), Some(c)) => format!(":{l}:{c}"),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  unusable: {}{place}: {}",
                line(&f.path),
                line(&e.message)
            );
        }
    }
    let db = &report.database;
    if let Some(aside) = &db.set_aside {
        let _ = writeln!(
            s,
            "  the old database was unusable and was moved to {}",
            line(aside)
        );
    }
    if report.duplicate {
        let _ = writeln!(
            s,
            "  this run was already stored in {}: nothing changed",
            line(&db.path)
        );
    } else if db.failed {
        let _ = writeln!(s, "  results were NOT stored (see the warning above)");
    } else if db.stored > 0 {
        let _ = writeln!(s, "  stored {} results in {}", db.stored, line(&db.path));
    }
    s
}
