//! `omen merge`: combine databases from parallel shards or matrix jobs.

use omen_render::escape::line;
use std::path::PathBuf;

use omen_metadata::merge::{MERGE_REPORT_VERSION, MergeReport, SourceReport};
use omen_store::{Store, StoreConfig};

use crate::{Format, Outcome, output};

/// Arguments of `omen merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The database to merge into (created if missing).
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// Databases to merge from.
    #[arg(required = true, value_name = "DB")]
    pub sources: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Run `omen merge`.
pub fn run(args: &MergeArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let opened = omen_store::Store::open(&args.db, crate::now())?;
    let mut trouble = false;
    let mut target = opened.store;
    let config: StoreConfig = config.store;
    let mut sources = Vec::new();
    for path in &args.sources {
        let mut report = SourceReport {
            path: path.display().to_string(),
            runs_added: 0,
            runs_already_present: 0,
            runs_without_results: 0,
            results: 0,
            runs_out_of_order: 0,
            histories_rebuilt: false,
            error: None,
        };
        let merged =
            Store::open_read_only(path).and_then(|source| target.merge_from(&source, &config));
        match merged {
            Ok(o) => {
                report.runs_added = o.runs_added;
                report.runs_already_present = o.runs_already_present;
                report.runs_without_results = o.runs_without_results;
                report.results = o.results;
                report.runs_out_of_order = o.out_of_order;
                report.histories_rebuilt = o.rebuilt;
            }
            Err(err) => {
                tracing::warn!("{err}; the other databases are still merged");
                report.error = Some(err.to_string());
                trouble = true;
            }
        }
        sources.push(report);
    }
    let report = MergeReport {
        version: MERGE_REPORT_VERSION,
        database: args.db.display().to_string(),
        sources,
    };
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Text => {
            let mut text = String::new();
            for s in &report.sources {
                text.push_str(&match &s.error {
                    Some(e) => format!("omen: skipped {}: {}\n", line(&s.path), line(e)),
                    None => format!(
                        "omen: merged {}: {} run(s) added, {} already present, {} compacted and not mergeable\n",
                        line(&s.path), s.runs_added, s.runs_already_present, s.runs_without_results
                    ),
                });
            }
            output::print(&text);
        }
    }
    Ok(Outcome::with_trouble(trouble))
}
