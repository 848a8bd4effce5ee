//! `omen ingest`: reports → test results → history database.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use omen_core::junit::{self, Limits, ParseError};
use omen_core::run::{RunMeta, TestResult, fold};
use omen_core::{Runner, TestCase};
use omen_metadata::ingest::{Counts, DatabaseInfo, FileError, FileSummary, IngestReport, RunInfo};
use omen_store::{ResultRecord, Store, StoreConfig};
use sha2::{Digest, Sha256};

use crate::ci_env::{self, Source};
use crate::discover::{Found, discover};
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

/// Reports parsed and folded, not yet stored.
#[derive(Debug)]
pub struct Parsed {
    /// One summary per input (unusable ones carry an error).
    pub files: Vec<FileSummary>,
    /// One result per test, retries folded.
    pub results: Vec<TestResult>,
    /// Sums over usable files.
    pub totals: Counts,
    /// SHA-256 over the usable files' contents (in sorted order of their hashes).
    pub content_hash: String,
    /// Number of inputs that could not be used.
    pub unusable: usize,
}

/// Parse every report that `patterns` find. Never fails as a whole: unusable files are listed
/// in `files` with their error and the rest still count.
pub fn parse_reports(patterns: &[String], max_size: u64, roots: &[String]) -> Parsed {
    let limits = Limits::default();
    let mut files = Vec::new();
    let mut cases: Vec<(TestCase, Runner)> = Vec::new();
    let mut hashes = Vec::new();
    let mut totals = Counts::default();
    let mut unusable = 0;
    for found in discover(patterns) {
        let path = match found {
            Found::File(path) => path,
            Found::Nothing { pattern, reason } => {
                tracing::warn!("{pattern}: {reason}");
                unusable += 1;
                files.push(summary_error(pattern, reason, None));
                continue;
            }
        };
        let shown = path.display().to_string();
        match parse_file(&path, max_size, limits) {
            Ok((runner, file_cases, counts, hash, truncated)) => {
                let counts = to_counts(counts);
                if let Some(cut) = &truncated {
                    let place = match (cut.line, cut.column) {
                        (Some(l), Some(c)) => format!(":{l}:{c}"),
                        _ => String::new(),
                    };
                    tracing::warn!(
                        "{shown}{place}: {}; its {} test(s) read still count",
                        cut.message,
                        counts.tests
                    );
                }
                add_counts(&mut totals, &counts);
                files.push(FileSummary {
                    path: shown.clone(),
                    counts,
                    runner: Some(runner.as_str().to_owned()),
                    error: None,
                    truncated,
                });
                hashes.push(hash);
                cases.extend(file_cases.into_iter().map(|c| (c, runner)));
            }
            Err(error) => {
                let place = match (error.line, error.column) {
                    (Some(l), Some(c)) => format!(":{l}:{c}"),
                    _ => String::new(),
                };
                tracing::warn!(
                    "{shown}{place}: {}; the other reports still count",
                    error.message
                );
                unusable += 1;
                files.push(FileSummary {
                    path: shown.clone(),
                    counts: Counts::default(),
                    runner: None,
                    error: Some(error),
                    truncated: None,
                });
            }
        }
    }
    hashes.sort();
    let mut combined = Sha256::new();
    for h in &hashes {
        combined.update(h);
    }
    Parsed {
        files,
        results: fold(cases, roots),
        totals,
        content_hash: hex(&combined.finalize()),
        unusable,
    }
}

type FileParse = (
    Runner,
    Vec<TestCase>,
    omen_core::Counts,
    [u8; 32],
    Option<FileError>,
);

fn parse_file(path: &Path, max_size: u64, limits: Limits) -> Result<FileParse, FileError> {
    let error = |message: String| FileError {
        message,
        line: None,
        column: None,
    };
    let file = File::open(path).map_err(|e| error(format!("cannot open the file: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| error(format!("cannot read the file's size: {e}")))?
        .len();
    if size > max_size {
        return Err(error(format!(
            "the file is {size} bytes, over the {max_size}-byte limit (raise it with --max-report-size)"
        )));
    }
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        HashingReader {
            inner: file,
            hasher: Sha256::new(),
        },
    );
    let mut cases = Vec::new();
    let parsed = junit::parse_with(&mut reader, limits, |case| cases.push(case));
    match parsed {
        Ok(summary) => {
            // Hash whatever follows the root element too, so the content hash covers every byte.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            let hash = reader.into_inner().hasher.finalize().into();
            let truncated = summary.truncated_at.map(|offset| {
                let (line, column) = File::open(path)
                    .ok()
                    .and_then(|f| junit::line_col(BufReader::new(f), offset).ok())
                    .map_or((None, None), |(l, c)| (Some(l), Some(c)));
                FileError {
                    message: "unexpected end of file: the report stops before its root element closes (a run that crashed mid-suite, or a cut upload)".to_owned(),
                    line,
                    column,
                }
            });
            Ok((summary.runner, cases, summary.counts, hash, truncated))
        }
        Err(err) => {
            let (line, column) = match err.offset() {
                Some(offset) => File::open(path)
                    .ok()
                    .and_then(|f| junit::line_col(BufReader::new(f), offset).ok())
                    .map_or((None, None), |(l, c)| (Some(l), Some(c))),
                None => (None, None),
            };
            let message = match &err {
                ParseError::Io(source) => format!("{err}: {source}"),
                _ => err.to_string(),
            };
            Err(FileError {
                message,
                line,
                column,
            })
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The idempotency key of a run: run id, attempt, job, commit and the reports' content.
pub fn run_key(meta: &RunMeta, content_hash: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        meta.run_id.as_deref().unwrap_or(""),
        &meta.attempt.to_string(),
        meta.job.as_deref().unwrap_or(""),
        meta.commit.as_deref().unwrap_or(""),
        content_hash,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// Resolve the run's metadata: CI environment or git, then flags on top.
pub fn resolve_run(args: &RunArgs, now: i64) -> anyhow::Result<(RunMeta, Source)> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (mut meta, source) = ci_env::detect(&|k| std::env::var(k).ok(), &cwd, now);
    args.apply(&mut meta)?;
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
    let (meta, source) = resolve_run(run_args, now)?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let roots = ci_env::roots(&|k| std::env::var(k).ok(), &cwd);
    let parsed = parse_reports(reports, max_report_size, &roots);
    let mut trouble = parsed.unusable > 0;
    let key = run_key(&meta, &parsed.content_hash);
    let mut database = DatabaseInfo {
        path: db.display().to_string(),
        stored: 0,
        set_aside: None,
        failed: false,
    };
    let mut duplicate = false;
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
        let stored = Store::open(db, now)
            .map_err(anyhow::Error::from)
            .and_then(|opened| {
                database.set_aside = opened.set_aside.map(|(path, _)| path.display().to_string());
                let mut s = opened.store;
                let outcome = s.ingest(&meta, &key, records, config)?;
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
        trouble,
    })
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
        timestamp: crate::format_time(meta.at),
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

fn to_counts(c: omen_core::Counts) -> Counts {
    Counts {
        tests: c.tests,
        passed: c.passed,
        failures: c.failures,
        errors: c.errors,
        skipped: c.skipped,
        flaky: c.flaky,
    }
}

fn add_counts(total: &mut Counts, c: &Counts) {
    total.tests += c.tests;
    total.passed += c.passed;
    total.failures += c.failures;
    total.errors += c.errors;
    total.skipped += c.skipped;
    total.flaky += c.flaky;
}

fn summary_error(path: String, message: String, line: Option<u64>) -> FileSummary {
    FileSummary {
        path,
        counts: Counts::default(),
        runner: None,
        error: Some(FileError {
            message,
            line,
            column: None,
        }),
        truncated: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
