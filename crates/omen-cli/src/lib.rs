//! The `omen` command line. `main.rs` only parses arguments and maps the result to an exit code.
//!
//! Error policy: Omen's own trouble (an unusable report, an unwritable database) is a warning and
//! exit code 0, so Omen never breaks a build by itself; `--strict` turns it into exit code 3.
//! Usage errors exit 2, tripped gates 1 (see `omen_metadata::exit_code`).

pub mod ci;
pub mod ci_env;
pub mod config;
pub mod failures;
pub mod flaky;
pub mod git;
pub mod ingest;
pub mod labels;
pub mod merge;
pub mod nextest;
pub mod output;
pub mod perf;
pub mod quarantine;
pub mod restore;
pub mod risk;
pub mod setup;

use clap::{Parser, Subcommand};
use omen_core::run::RunMeta;
use omen_metadata::exit_code;

/// Omen learns from every CI run: flaky tests, quarantine, deploy risk.
#[derive(Debug, Parser)]
#[command(name = "omen", version, about, max_term_width = 100)]
pub struct Cli {
    /// Thresholds file (default: .omen/config.toml when it exists).
    #[arg(long, global = true, value_name = "PATH", env = "OMEN_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Exit 3 on Omen's own trouble (an unusable report or database, a failed post) instead of
    /// warning and exiting 0.
    #[arg(long, global = true)]
    pub strict: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Why a command line did not run to an [`Outcome`]; `main` maps each to an exit code. Flag
/// values are checked by clap's value parsers before anything runs (exit 2 from clap).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration file is unusable: exit 2.
    #[error("{0:#}")]
    Config(anyhow::Error),
    /// Omen itself failed: exit 0 with a warning, 3 with `--strict`.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl RunError {
    /// The exit code for this error.
    pub fn exit_code(&self, strict: bool) -> i32 {
        match self {
            RunError::Config(_) => exit_code::USAGE,
            RunError::Failed(_) if strict => exit_code::OMEN_FAILURE,
            RunError::Failed(_) => exit_code::OK,
        }
    }
}

/// `--risk-threshold`: a probability between 0 and 1.
pub fn gate_arg(text: &str) -> Result<omen_core::gate::Gate, String> {
    let p: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    omen_core::gate::Gate::new(p)
}

/// An RFC 3339 flag value, as unix seconds.
pub fn time_arg(text: &str) -> Result<i64, String> {
    omen_core::time::parse_rfc3339(text).map_err(|e| e.to_string())
}

/// Omen's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read JUnit XML reports and store the run in the history database.
    Ingest(ingest::IngestArgs),
    /// Merge history databases written by parallel shards or matrix jobs.
    Merge(merge::MergeArgs),
    /// List flaky and broken tests with their evidence (default-branch history only).
    Flaky(flaky::FlakyArgs),
    /// Failures grouped into causes; `cluster FILE` groups the lines of a text file.
    Failures(failures::FailuresArgs),
    /// Duration changes on the default branch; `detect --input FILE` runs the change-point
    /// detector on one series.
    Perf(perf::PerfArgs),
    /// Regenerate the quarantine file, check it, or print it as nextest configuration.
    Quarantine(quarantine::QuarantineArgs),
    /// On GitLab, first: fetch the history database the default branch published (the newest
    /// artifact of Omen's job) into the database path.
    Restore(restore::RestoreArgs),
    /// Before the tests: write this run's quarantine from the default branch's history (manual
    /// entries kept) and a nextest tool config, and export where they are.
    Setup(setup::SetupArgs),
    /// The CI step: ingest, classify failures, comment, summarise, annotate and gate.
    Ci(ci::CiArgs),
    /// Post or update Omen's pull-request comment from a file written by `omen ci`.
    Comment(ci::CommentArgs),
    /// Deploy risk of a change: score, gate, evaluate on public data.
    Risk(risk::RiskArgs),
    /// Record deploy outcomes, which label changes for the risk model.
    Deploy(risk::DeployArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Readable text.
    Text,
    /// One JSON object.
    Json,
}

/// Run metadata flags; each overrides what the CI environment or git says.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct RunArgs {
    /// Commit SHA under test.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Branch name (for a pull request, its head branch).
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// The repository's default branch; only its runs feed flakiness evidence.
    #[arg(long, value_name = "NAME")]
    pub default_branch: Option<String>,
    /// CI run or pipeline id.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Attempt number of the run.
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Job name.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// Pull/merge request number, when the run is for one.
    #[arg(long, value_name = "N")]
    pub pull_request: Option<u64>,
    /// When the run happened (RFC 3339, e.g. 2026-05-01T12:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = time_arg)]
    pub timestamp: Option<i64>,
    /// How long the job waited for a runner, in seconds (`omen ci` asks GitHub's or GitLab's
    /// API when it has a token).
    #[arg(long, value_name = "SECONDS")]
    pub queue_seconds: Option<f64>,
}

impl RunArgs {
    /// Apply the flags that were given on top of `meta`.
    pub fn apply(&self, meta: &mut RunMeta) {
        let set = |field: &mut Option<String>, value: &Option<String>| {
            if let Some(v) = value {
                *field = Some(v.clone());
            }
        };
        set(&mut meta.commit, &self.commit);
        set(&mut meta.branch, &self.branch);
        set(&mut meta.default_branch, &self.default_branch);
        set(&mut meta.run_id, &self.run_id);
        set(&mut meta.job, &self.job);
        if let Some(a) = self.attempt {
            meta.attempt = a;
        }
        if self.pull_request.is_some() {
            meta.pull_request = self.pull_request;
        }
        if let Some(at) = self.timestamp {
            meta.at = at;
        }
        if let Some(ms) = self.queue_seconds.and_then(seconds_to_ms) {
            meta.queue_ms = Some(ms);
        }
    }
}

/// Whole milliseconds of a duration in seconds; `None` for a negative or non-finite one.
fn seconds_to_ms(seconds: f64) -> Option<u64> {
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The process exit code.
    pub code: i32,
}

impl Outcome {
    /// Success.
    pub const OK: Outcome = Outcome {
        code: exit_code::OK,
    };

    /// Exit 0, or [`exit_code::OMEN_FAILURE`] when Omen had trouble of its own. `main` turns
    /// that into 0 with a warning unless `--strict` was given: the one place strictness decides.
    pub fn with_trouble(trouble: bool) -> Outcome {
        Outcome {
            code: if trouble {
                exit_code::OMEN_FAILURE
            } else {
                exit_code::OK
            },
        }
    }

    /// The process exit code under `strict`.
    pub fn exit_code(self, strict: bool) -> i32 {
        if self.code == exit_code::OMEN_FAILURE && !strict {
            exit_code::OK
        } else {
            self.code
        }
    }
}

/// Run a parsed command line.
pub fn run(cli: &Cli) -> Result<Outcome, RunError> {
    let config = config::load(cli.config.as_deref()).map_err(RunError::Config)?;
    Ok(match &cli.command {
        Command::Ingest(args) => ingest::run(args, &config),
        Command::Merge(args) => merge::run(args, &config),
        Command::Flaky(args) => flaky::run(args, &config),
        Command::Failures(args) => failures::run(args, &config),
        Command::Perf(args) => perf::run(args, &config),
        Command::Quarantine(args) => quarantine::run(args, &config),
        Command::Restore(args) => restore::run(args, &config),
        Command::Setup(args) => setup::run(args, &config),
        Command::Ci(args) => ci::run(args, &config),
        Command::Comment(args) => ci::comment(args, &config),
        Command::Risk(args) => risk::run(args, &config),
        Command::Deploy(args) => risk::deploy(args, now()),
    }?)
}

/// Current time, unix seconds. The one clock read of the binary.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Parse an RFC 3339 timestamp to unix seconds (a flag's or a file's value).
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    Ok(omen_core::time::parse_rfc3339(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness_decides_only_the_exit_code_of_omen_s_own_trouble() {
        let check = |outcome: Outcome, strict: bool, expected: i32| {
            assert_eq!(
                outcome.exit_code(strict),
                expected,
                "{outcome:?} strict={strict}"
            );
        };
        let gate = Outcome {
            code: exit_code::GATE,
        };
        check(Outcome::OK, false, exit_code::OK);
        check(Outcome::OK, true, exit_code::OK);
        check(Outcome::with_trouble(true), false, exit_code::OK);
        check(Outcome::with_trouble(true), true, exit_code::OMEN_FAILURE);
        check(Outcome::with_trouble(false), true, exit_code::OK);
        check(gate, false, exit_code::GATE);
        check(gate, true, exit_code::GATE);
    }

    #[test]
    fn strict_is_accepted_before_and_after_the_command() {
        for argv in [
            &["omen", "--strict", "flaky"][..],
            &["omen", "flaky", "--strict"][..],
        ] {
            let cli = <Cli as Parser>::try_parse_from(argv).unwrap();
            assert!(cli.strict, "{argv:?}");
        }
        let cli = <Cli as Parser>::try_parse_from(["omen", "flaky"]).unwrap();
        assert!(!cli.strict);
    }
}
