//! The `omen` binary: parse arguments, run, map the outcome to an exit code.

use clap::Parser;
use omen_cli::{Cli, run};
use omen_metadata::exit_code;

// Ingest allocates a few strings per test case on two threads and SQLite allocates per row:
// mimalloc makes that cheaper than the system allocator (measured in BENCHMARKS.md's ingest).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(omen_cli::output::SafeStderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            std::process::exit(if err.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::OK
            });
        }
    };
    let code = match run(&cli) {
        Ok(outcome) => outcome.exit_code(cli.strict),
        Err(err) => {
            tracing::error!("{err}");
            let code = err.exit_code(cli.strict);
            if code == exit_code::OK {
                tracing::warn!(
                    "continuing with exit code 0: Omen's own trouble never fails the build (use --strict to change that)"
                );
            }
            code
        }
    };
    std::process::exit(code);
}
