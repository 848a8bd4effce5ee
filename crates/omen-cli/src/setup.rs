//! `omen setup`: before the tests, write this run's quarantine from the default branch's history,
//! so the test runners see it (pytest-omen through `OMEN_QUARANTINE`, nextest through a tool
//! config), and say where it is. Never writes the history or the committed quarantine file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use omen_core::quarantine::QuarantinePolicy;
use omen_jobs::quarantine::{Refresh, empty, preview, read_file, write_atomically};
use omen_metadata::quarantine::{Mode, QuarantineEntry, QuarantineFile, Source};
use omen_store::Store;
use serde::Serialize;

use crate::{Format, Outcome, output};

/// Arguments of `omen setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// History database (restored from the default branch before this step).
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// The committed quarantine file: its manual entries are kept. It is read, never written.
    #[arg(
        long = "quarantine-file",
        default_value = ".omen/quarantine.json",
        value_name = "PATH"
    )]
    pub quarantine_file: PathBuf,
    /// Where to write this run's quarantine and nextest config [default: `$RUNNER_TEMP/omen`, else
    /// `.omen/run`].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The nextest profile to extend (see `omen quarantine --nextest-profile`).
    #[arg(
        long,
        default_value = crate::nextest::OMEN_PROFILE,
        value_name = "NAME",
        value_parser = crate::quarantine::nextest_profile_arg
    )]
    pub nextest_profile: String,
    /// The profile Omen's `omen` profile inherits from (see `omen quarantine --nextest-inherits`).
    #[arg(long, value_name = "NAME")]
    pub nextest_inherits: Option<String>,
    /// Append `OMEN_QUARANTINE=…` and `OMEN_NEXTEST_ARGS=…` here, one `KEY=value` per line
    /// [default: `$GITHUB_ENV` on GitHub Actions; on GitLab the component's `.omen-setup` passes a
    /// file and exports them].
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Time to decide at (RFC 3339), for reproducible output; default now.
    #[arg(long, value_name = "RFC3339", value_parser = crate::time_arg)]
    pub now: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// What `omen setup --format json` prints.
#[derive(Debug, Serialize)]
struct SetupReport {
    version: u32,
    /// This run's quarantine file.
    quarantine_file: String,
    /// The nextest tool config.
    nextest_config: String,
    /// Arguments for `cargo nextest run`.
    nextest_args: String,
    /// Entries in the file, automatic (from history) and manual (from the committed file).
    automatic: usize,
    manual: usize,
    /// Where the quarantine came from: `history`, or `committed` when the history could not
    /// decide (none yet, unreadable, or the guard refused).
    source: &'static str,
}

/// Run `omen setup`.
pub fn run(args: &SetupArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let now = args.now.unwrap_or_else(crate::now);
    let mut trouble = false;
    let committed = match read_file(&args.quarantine_file) {
        Ok(file) => file.unwrap_or_else(empty),
        Err(err) => {
            tracing::warn!(
                "{err}; this run's quarantine has only what the history decides (its manual entries are missing)"
            );
            trouble = true;
            empty()
        }
    };
    let (file, source) = match from_history(&args.db, &committed, config, now) {
        Ok(file) => (file, "history"),
        Err(why) => {
            tracing::warn!("{why}; using the committed quarantine file as it is");
            trouble |= why.trouble;
            (committed, "committed")
        }
    };
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        std::env::var_os("RUNNER_TEMP")
            .map(|t| PathBuf::from(t).join("omen"))
            .unwrap_or_else(|| PathBuf::from(".omen/run"))
    });
    let out_dir = std::path::absolute(&out_dir).unwrap_or(out_dir);
    let quarantine_path = out_dir.join("quarantine.json");
    let nextest_path = out_dir.join("omen-nextest.toml");
    write_atomically(&quarantine_path, file.render().as_bytes())?;
    let active: Vec<&QuarantineEntry> = omen_core::quarantine::active(&file, now).collect();
    let profiles =
        crate::nextest::Profiles::new(&args.nextest_profile, args.nextest_inherits.as_deref())
            .map_err(|e| anyhow::anyhow!("--nextest-profile: {e}"))?;
    write_atomically(
        &nextest_path,
        crate::nextest::tool_config(&active, &quarantine_path, &profiles).as_bytes(),
    )?;
    let nextest_args = format!(
        "--profile {} --tool-config-file omen:{}",
        profiles.profile,
        nextest_path.display()
    );
    let env_file = args
        .env_file
        .clone()
        .or_else(|| std::env::var_os("GITHUB_ENV").map(PathBuf::from));
    if let Some(env_file) = &env_file {
        export(
            env_file,
            &[
                ("OMEN_QUARANTINE", quarantine_path.display().to_string()),
                ("OMEN_NEXTEST_ARGS", nextest_args.clone()),
            ],
        )?;
    }
    let manual = file
        .tests
        .iter()
        .filter(|e| e.source == Source::Manual)
        .count();
    let report = SetupReport {
        version: 1,
        quarantine_file: quarantine_path.display().to_string(),
        nextest_config: nextest_path.display().to_string(),
        nextest_args,
        automatic: file.tests.len() - manual,
        manual,
        source,
    };
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Text => output::print(&render_text(&report, env_file.as_deref())),
    }
    Ok(Outcome::with_trouble(trouble))
}

/// Why the history could not decide this run's quarantine.
#[derive(Debug)]
struct NoDecision {
    message: String,
    /// Omen's own trouble (an unreadable history), not just no history yet.
    trouble: bool,
}

impl std::fmt::Display for NoDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The quarantine the default branch's history decides, over the committed file's entries.
/// Nothing is recorded: a pull request's setup never writes the history.
fn from_history(
    db: &Path,
    committed: &QuarantineFile,
    config: &crate::config::Config,
    now: i64,
) -> Result<QuarantineFile, NoDecision> {
    let store = Store::open_read_only(db).map_err(|e| NoDecision {
        trouble: !matches!(e, omen_store::StoreError::Missing { .. }),
        message: e.to_string(),
    })?;
    let policy: QuarantinePolicy = config.quarantine;
    let request = Refresh {
        previous: committed,
        policy: &policy,
        flakiness: &config.flakiness,
        mode: Mode::RunIgnore,
        now,
        force: false,
    };
    match preview(&store, &request) {
        Ok(Ok(regenerated)) => Ok(regenerated.file),
        Ok(Err(refusal)) => Err(NoDecision {
            message: format!("the history's quarantine was refused: {refusal}"),
            trouble: false,
        }),
        Err(e) => Err(NoDecision {
            message: e.to_string(),
            trouble: true,
        }),
    }
}

/// Append `KEY=value` lines (GitHub's `$GITHUB_ENV` and GitLab's dotenv format). Values are
/// paths and flags Omen built; one with a newline would inject a variable, so it is refused.
fn export(path: &Path, vars: &[(&str, String)]) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut text = String::new();
    for (key, value) in vars {
        anyhow::ensure!(
            !value.contains(['\n', '\r']),
            "{key} would span lines: {value:?}"
        );
        text.push_str(&format!("{key}={value}\n"));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot append to `{}`", path.display()))
}

fn render_text(r: &SetupReport, env_file: Option<&Path>) -> String {
    use omen_render::escape::line;
    let from = match r.source {
        "history" => "from the default branch's history",
        _ => "the committed file as it is",
    };
    let mut s = format!(
        "omen: this run's quarantine: {} automatic and {} manual entr{} ({from})\n  quarantine: {}\n  nextest:    cargo nextest run {}\n",
        r.automatic,
        r.manual,
        if r.manual == 1 { "y" } else { "ies" },
        line(&r.quarantine_file),
        line(&r.nextest_args),
    );
    match env_file {
        Some(p) => s.push_str(&format!(
            "  exported OMEN_QUARANTINE (pytest-omen reads it) and OMEN_NEXTEST_ARGS to {}\n",
            line(&p.display().to_string())
        )),
        None => s.push_str(&format!(
            "  for pytest-omen: export OMEN_QUARANTINE={}\n",
            line(&r.quarantine_file)
        )),
    }
    s
}
