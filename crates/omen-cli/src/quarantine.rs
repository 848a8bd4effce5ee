//! `omen quarantine`: regenerate the quarantine file from default-branch evidence, check that the
//! committed one is current, or turn it into nextest configuration.

use std::path::{Path, PathBuf};

use omen_core::quarantine::{QuarantineChange, QuarantinePolicy, Regenerated};
use omen_jobs::quarantine::{Refresh, Refreshed, empty, preview, read_file, refresh};
use omen_metadata::exit_code;
use omen_metadata::quarantine::{Mode, QuarantineEntry};
use omen_store::Store;

use crate::{Outcome, output};

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
    #[arg(long, value_name = "RFC3339", value_parser = crate::time_arg)]
    pub now: Option<i64>,
    /// `--format nextest`: the profile to select with `cargo nextest run --profile`: Omen's own
    /// (`omen`), or one of yours (e.g. `ci`), which is extended with the quarantine and keeps its
    /// settings and JUnit path. Not `default`: nextest ignores that from tool configs.
    #[arg(
        long,
        default_value = crate::nextest::OMEN_PROFILE,
        value_name = "NAME",
        value_parser = nextest_profile_arg
    )]
    pub nextest_profile: String,
    /// `--format nextest`: the profile Omen's `omen` profile inherits from (default `default`);
    /// a profile of yours named here is extended with the quarantine too.
    #[arg(long, value_name = "NAME")]
    pub nextest_inherits: Option<String>,
}

/// `--nextest-profile`: any profile but `default`.
pub fn nextest_profile_arg(name: &str) -> Result<String, String> {
    crate::nextest::Profiles::new(name, None).map(|p| p.profile)
}

/// Entry modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// The test runs; its failure does not fail the build.
    RunIgnore,
    /// The test does not run.
    Skip,
}

/// Run `omen quarantine`.
pub fn run(args: &QuarantineArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let now = args.now.unwrap_or_else(crate::now);
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
            let file = previous.unwrap_or_else(empty);
            let active: Vec<&QuarantineEntry> = omen_core::quarantine::active(&file, now).collect();
            let text = if args.format == QuarantineFormat::Nextest {
                let profiles = crate::nextest::Profiles::new(
                    &args.nextest_profile,
                    args.nextest_inherits.as_deref(),
                )
                .map_err(|e| anyhow::anyhow!("--nextest-profile: {e}"))?;
                crate::nextest::tool_config(&active, &args.out, &profiles)
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
    let previous = previous.unwrap_or_else(empty);
    let request = Refresh {
        previous: &previous,
        policy: &policy,
        flakiness: &config.flakiness,
        mode,
        now,
        force: args.force,
    };
    if !args.check {
        return match refresh(&opened, Some(&args.out), &request)? {
            Refreshed::Refused(refusal) => {
                tracing::error!("{refusal}");
                tracing::error!("hint: look at `omen flaky`; pass --force to write it anyway");
                Ok(Outcome {
                    code: exit_code::GATE,
                })
            }
            Refreshed::Written(regenerated) => {
                output::print(&summary(&args.out, &regenerated));
                Ok(Outcome::OK)
            }
        };
    }
    let file = match preview(&opened, &request)? {
        Ok(regenerated) => regenerated.file,
        Err(refusal) => {
            tracing::error!("{refusal}");
            tracing::error!("hint: look at `omen flaky`; pass --force to check it anyway");
            return Ok(Outcome {
                code: exit_code::GATE,
            });
        }
    };
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

fn summary(path: &Path, r: &Regenerated) -> String {
    let mut s = format!(
        "omen: {} test(s) quarantined of {} in {}\n",
        r.file.tests.len(),
        r.suite,
        omen_render::escape::line(&path.display().to_string())
    );
    let mut sorted: Vec<&QuarantineChange> = r.changes.iter().collect();
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
