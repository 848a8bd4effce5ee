//! `omen quarantine`: regenerate the quarantine file from default-branch evidence, check that the
//! committed one is current, or turn it into nextest configuration.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use omen_core::flakiness::{Assessment, FlakinessConfig, State, assess, explain};
use omen_core::hash::fnv1a64;
use omen_core::quarantine::{
    ChangeKind, Decision, Existing, QuarantineChange, QuarantinePolicy, decide, guard,
};
use omen_metadata::exit_code;
use omen_metadata::quarantine::{
    Mode, QUARANTINE_VERSION, QuarantineEntry, QuarantineFile, Source,
};
use omen_store::{Store, TestRow};

use crate::{Outcome, format_time, output, parse_time};

/// Output of `omen quarantine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuarantineFormat {
    /// Write the quarantine file (JSON) to `--out`.
    Json,
    /// Print a nextest tool config for the quarantined nextest tests.
    Nextest,
    /// Print only the filterset expression that excludes `skip` entries (for `-E`).
    NextestFilter,
}

/// Arguments of `omen quarantine`.
#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    /// History database (its default-branch evidence decides).
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// The quarantine file: read (manual entries, history of entries) and rewritten (`--out` is
    /// an older spelling).
    #[arg(
        long = "quarantine-file",
        alias = "out",
        default_value = ".omen/quarantine.json",
        env = "OMEN_QUARANTINE",
        value_name = "PATH"
    )]
    pub out: PathBuf,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = QuarantineFormat::Json)]
    pub format: QuarantineFormat,
    /// Do not write: exit 1 with a diff when the file at `--out` is not what Omen would write.
    #[arg(long)]
    pub check: bool,
    /// Write even when the quarantine would exceed `--max-share` of the suite.
    #[arg(long)]
    pub force: bool,
    /// Mode of newly added entries.
    #[arg(long, value_enum, default_value_t = ModeArg::RunIgnore)]
    pub mode: ModeArg,
    /// Days before an entry must be renewed [default: `quarantine.expires_days` in the config file, else built in].
    #[arg(long)]
    pub expires_days: Option<i64>,
    /// Clean default-branch runs before an automatic release [default: `quarantine.release_runs` in the config file, else built in].
    #[arg(long)]
    pub release_runs: Option<u32>,
    /// Days without a failure before an automatic release [default: `quarantine.release_days` in the config file, else built in].
    #[arg(long)]
    pub release_days: Option<i64>,
    /// Largest share of the suite that may be quarantined [default: `quarantine.max_share` in the config file, else built in].
    #[arg(long)]
    pub max_share: Option<f64>,
    /// Time to decide at (RFC 3339), for reproducible output; default now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// `--format nextest`: the nextest profile to define (select it with `cargo nextest run --profile`).
    #[arg(long, default_value = "omen", value_name = "NAME")]
    pub nextest_profile: String,
    /// `--format nextest`: the profile it inherits from, e.g. your CI profile.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub nextest_inherits: String,
}

/// Entry modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// The test runs; its failure does not fail the build.
    RunIgnore,
    /// The test does not run.
    Skip,
}

/// What regeneration changed, in the order it happened.
pub type Changes = Vec<QuarantineChange>;

fn change(kind: ChangeKind, entry: &QuarantineEntry) -> QuarantineChange {
    QuarantineChange {
        kind,
        key: entry.id.clone(),
        selector: entry.selector.clone(),
    }
}

/// Regenerate the quarantine from `store` and the `previous` file.
pub fn regenerate(
    store: &Store,
    previous: &QuarantineFile,
    policy: &QuarantinePolicy,
    config: &FlakinessConfig,
    mode: Mode,
    now: i64,
) -> anyhow::Result<(QuarantineFile, Changes, Vec<u64>, usize)> {
    // Entries are matched to tests by identity hash; identity strings are read only for tests that
    // are in the file or about to enter it.
    let previous_hashes: HashSet<u64> = previous
        .tests
        .iter()
        .map(|e| fnv1a64(e.id.as_bytes()))
        .collect();
    let mut wanted = Vec::new();
    let mut suite = 0usize;
    store.for_each_history(|id, key_hash, history| {
        if history.db_runs > 0 {
            suite += 1;
        }
        let a = assess(history, config);
        if a.state == State::Flaky || previous_hashes.contains(&key_hash) {
            wanted.push((id, a));
        }
    })?;
    let previous_ids: HashSet<&str> = previous.tests.iter().map(|e| e.id.as_str()).collect();
    let mut known: HashMap<String, (TestRow, Assessment)> = HashMap::new();
    let mut flaky_ids = Vec::new();
    for (id, a) in wanted {
        let Some(row) = store.test(id)? else { continue };
        let key = omen_core::identity::key_of(&row.scope, &row.name);
        if a.state == State::Flaky && !previous_ids.contains(key.as_str()) {
            flaky_ids.push(key.clone());
        }
        known.insert(key, (row, a));
    }
    flaky_ids.sort();
    let released_before = store.released_tests()?;
    let mut changes = Changes::new();
    let mut entries = Vec::new();
    let mut releases = Vec::new();
    let expires = format_time(now + policy.expires_days * 86_400);
    for entry in &previous.tests {
        let existing = Existing {
            manual: entry.source == Source::Manual,
            auto_release: entry.auto_release,
            expires_at: parse_time(&entry.expires).unwrap_or(0),
        };
        let k = known.get(&entry.id);
        let released = k.is_some_and(|(row, _)| released_before.contains(&row.key_hash));
        match decide(
            Some(existing),
            k.map(|(r, a)| (&r.history, a)),
            released,
            now,
            policy,
        ) {
            Decision::Keep | Decision::Leave | Decision::Add { .. } => entries.push(entry.clone()),
            Decision::Renew => {
                let mut renewed = entry.clone();
                renewed.expires = expires.clone();
                entries.push(renewed);
            }
            Decision::Release => {
                changes.push(change(ChangeKind::Released, entry));
                if let Some((row, _)) = k {
                    releases.push(row.key_hash);
                }
            }
            Decision::RemoveBroken => changes.push(change(ChangeKind::RemovedBroken, entry)),
            Decision::DropUnknown => changes.push(change(ChangeKind::Dropped, entry)),
        }
    }
    for id in flaky_ids {
        let Some((row, a)) = known.get(&id) else {
            continue;
        };
        let released = released_before.contains(&row.key_hash);
        if let Decision::Add { auto_release } =
            decide(None, Some((&row.history, a)), released, now, policy)
        {
            changes.push(QuarantineChange {
                kind: ChangeKind::Added,
                key: id.clone(),
                selector: row.selector.clone(),
            });
            entries.push(QuarantineEntry {
                id,
                selector: row.selector.clone(),
                runner: row.runner.clone(),
                classname: row.scope.clone(),
                name: row.name.clone(),
                file: row.file.clone(),
                reason: if auto_release {
                    "flaky on the default branch".to_owned()
                } else {
                    "flaky again after an automatic release: release it by hand".to_owned()
                },
                score: Some((a.score * 10_000.0).round() / 10_000.0),
                evidence: Some(explain(a)),
                added: format_time(now),
                expires: expires.clone(),
                owner: None,
                mode,
                source: Source::Auto,
                auto_release,
            });
        }
    }
    let file = QuarantineFile {
        version: QUARANTINE_VERSION,
        tests: entries,
    };
    Ok((file, changes, releases, suite))
}

/// What [`refresh`] did.
#[derive(Debug)]
pub enum Refreshed {
    /// The file now holds `file` (it was rewritten only if its text changed); releases recorded.
    Written {
        /// The quarantine as written.
        file: QuarantineFile,
        /// What changed against the previous file.
        changes: Changes,
        /// Tests with default-branch history.
        suite: usize,
    },
    /// The guard refused the new quarantine; nothing was written or recorded.
    Refused(String),
}

/// The one quarantine refresh, used by `omen quarantine` and `omen ci`: regenerate from `store`
/// and the `previous` file (which must have been read successfully — a file Omen cannot read is
/// never replaced), apply the guard unless `force`, write atomically to `path`, and record the
/// releases so a test that bounces back is not released automatically again. Every error is
/// returned, none dropped.
#[allow(clippy::too_many_arguments)]
pub fn refresh(
    store: &Store,
    path: &Path,
    previous: &QuarantineFile,
    policy: &QuarantinePolicy,
    config: &FlakinessConfig,
    mode: Mode,
    now: i64,
    force: bool,
) -> anyhow::Result<Refreshed> {
    let (file, changes, releases, suite) = regenerate(store, previous, policy, config, mode, now)?;
    // Only automatic entries count: a person's manual entries are not a sign of an outage.
    let automatic = file
        .tests
        .iter()
        .filter(|e| e.source == Source::Auto)
        .count();
    if let Some(refusal) = guard(automatic, suite, policy) {
        if !force {
            return Ok(Refreshed::Refused(refusal));
        }
        tracing::warn!("{refusal}; writing it anyway because of --force");
    }
    let text = file.render();
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        write_atomically(path, text.as_bytes())?;
    }
    for key in &releases {
        store
            .record_release(*key, now)
            .context("cannot record a quarantine release in the history")?;
    }
    Ok(Refreshed::Written {
        file,
        changes,
        suite,
    })
}

/// Replace `path` with `bytes` so that a reader sees the old file or the new one, never a part:
/// write a fresh temporary file beside it (a new name, so an existing `<out>.tmp` is never
/// touched), flush it to disk, rename it over. A symlink is followed and its target replaced, so
/// the link stays. On failure the temporary file is removed and `path` is as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let is_link = path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        std::fs::canonicalize(path)
            .with_context(|| format!("cannot follow the symlink `{}`", path.display()))?
    } else {
        path.to_owned()
    };
    let dir = match target.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_owned(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in `{}`", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write `{}`", target.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the permissions of `{}`", target.display()))?;
    }
    tmp.persist(&target)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace `{}`", target.display()))?;
    Ok(())
}

/// Read the quarantine file at `path`; a missing file is an empty quarantine.
pub fn read_file(path: &Path) -> anyhow::Result<Option<QuarantineFile>> {
    match std::fs::read_to_string(path) {
        Ok(text) => QuarantineFile::parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("quarantine file `{}`: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("cannot read quarantine file `{}`", path.display()))
        }
    }
}

/// Run `omen quarantine`.
pub fn run(args: &QuarantineArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let now = match &args.now {
        Some(t) => parse_time(t)?,
        None => crate::now(),
    };
    let previous = match read_file(&args.out) {
        Ok(file) => file,
        Err(err) if args.check && args.format == QuarantineFormat::Json => {
            // The staleness gate: a committed file Omen cannot read is not what it would write.
            output::print(&format!(
                "omen: {} cannot be read, so it is not up to date: {}\n",
                args.out.display(),
                omen_render::escape::line(&format!("{err:#}"))
            ));
            return Ok(Outcome {
                code: exit_code::GATE,
            });
        }
        Err(err) => {
            // Never overwrite a file we cannot read: it may hold someone's manual entries.
            tracing::warn!("{err:#}");
            tracing::warn!("hint: fix or delete the file; it was left untouched");
            return Ok(Outcome::with_trouble(true));
        }
    };
    match args.format {
        QuarantineFormat::Nextest | QuarantineFormat::NextestFilter => {
            let file = previous.unwrap_or(QuarantineFile {
                version: QUARANTINE_VERSION,
                tests: vec![],
            });
            let active: Vec<&QuarantineEntry> = file
                .tests
                .iter()
                .filter(|e| parse_time(&e.expires).is_ok_and(|t| t >= now))
                .collect();
            let text = if args.format == QuarantineFormat::Nextest {
                crate::nextest::tool_config(
                    &active,
                    &args.out,
                    &args.nextest_profile,
                    &args.nextest_inherits,
                )
            } else {
                let mut f =
                    crate::nextest::skip_filter(&active).unwrap_or_else(|| "all()".to_owned());
                f.push('\n');
                f
            };
            output::print(&text);
            return Ok(Outcome::OK);
        }
        QuarantineFormat::Json => {}
    }
    if !args.db.exists() {
        tracing::warn!("no history database at `{}`", args.db.display());
        tracing::warn!(
            "hint: the quarantine is computed from the default branch's history; run `omen ingest` there first"
        );
        return Ok(Outcome::with_trouble(true));
    }
    // Writing the file records releases in the history, so that path opens it for writing; the
    // check only reads, unless the schema needs migrating (opening for writing does that).
    let read_only = if args.check {
        Store::open_read_only(&args.db).map_err(Some)
    } else {
        Err(None)
    };
    let opened = match read_only {
        Ok(store) => store,
        Err(read_only) => match Store::open(&args.db, now) {
            Ok(opened) => opened.store,
            Err(err) => {
                if let Some(read_only) = read_only {
                    tracing::warn!("{read_only}");
                }
                tracing::warn!("{err}");
                return Ok(Outcome::with_trouble(true));
            }
        },
    };
    let defaults = config.quarantine;
    let policy = QuarantinePolicy {
        expires_days: args.expires_days.unwrap_or(defaults.expires_days),
        release_runs: args.release_runs.unwrap_or(defaults.release_runs),
        release_days: args.release_days.unwrap_or(defaults.release_days),
        max_share: args.max_share.unwrap_or(defaults.max_share),
    };
    let mode = match args.mode {
        ModeArg::RunIgnore => Mode::RunIgnore,
        ModeArg::Skip => Mode::Skip,
    };
    let previous = previous.unwrap_or(QuarantineFile {
        version: QUARANTINE_VERSION,
        tests: vec![],
    });
    if !args.check {
        return match refresh(
            &opened,
            &args.out,
            &previous,
            &policy,
            &config.flakiness,
            mode,
            now,
            args.force,
        )? {
            Refreshed::Refused(refusal) => {
                tracing::error!("{refusal}");
                tracing::error!("hint: look at `omen flaky`; pass --force to write it anyway");
                Ok(Outcome {
                    code: exit_code::GATE,
                })
            }
            Refreshed::Written {
                file,
                changes,
                suite,
            } => {
                output::print(&summary(&args.out, &file, &changes, suite));
                Ok(Outcome::OK)
            }
        };
    }
    let (file, _changes, _releases, suite) =
        regenerate(&opened, &previous, &policy, &config.flakiness, mode, now)?;
    let automatic = file
        .tests
        .iter()
        .filter(|e| e.source == Source::Auto)
        .count();
    if let Some(refusal) = guard(automatic, suite, &policy)
        && !args.force
    {
        tracing::error!("{refusal}");
        tracing::error!("hint: look at `omen flaky`; pass --force to check it anyway");
        return Ok(Outcome {
            code: exit_code::GATE,
        });
    }
    let new_text = file.render();
    let old_text = std::fs::read_to_string(&args.out).unwrap_or_default();
    if new_text == old_text {
        output::print(&format!("omen: {} is up to date\n", args.out.display()));
        return Ok(Outcome::OK);
    }
    let diff = similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .header(
            &format!("{} (committed)", args.out.display()),
            &format!("{} (from history)", args.out.display()),
        )
        .to_string();
    output::print(&format!(
        "omen: {} is out of date; run `omen quarantine` to update it\n{}",
        args.out.display(),
        diff.lines()
            .map(|l| format!("{}\n", omen_render::escape::line(l)))
            .collect::<String>()
    ));
    Ok(Outcome {
        code: exit_code::GATE,
    })
}

fn summary(path: &Path, file: &QuarantineFile, c: &Changes, suite: usize) -> String {
    let mut s = format!(
        "omen: {} test(s) quarantined of {suite} in {}\n",
        file.tests.len(),
        omen_render::escape::line(&path.display().to_string())
    );
    let mut sorted: Vec<&QuarantineChange> = c.iter().collect();
    sorted.sort_by_key(|ch| ch.kind);
    for ch in sorted {
        s.push_str(&format!(
            "  {}: {}\n",
            ch.kind.describe(),
            omen_render::escape::line(&ch.selector)
        ));
    }
    s
}
