//! `omen failures`: failures grouped into causes. `omen failures cluster FILE` groups the lines
//! of any text file, one message per line, so the grouping can be judged on labelled data.

use std::path::PathBuf;

use anyhow::Context as _;
use omen_core::failure::{GroupConfig, group_lines, headline};
use serde::Serialize;

use crate::{Format, Outcome, output};

/// Arguments of `omen failures`.
#[derive(Debug, clap::Args)]
pub struct FailuresArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FailuresCommand,
}

/// `omen failures` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FailuresCommand {
    /// Group the lines of a text file (one message per line) into causes; every line is in
    /// exactly one cluster.
    Cluster {
        /// The file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// What `omen failures cluster --format json` prints.
#[derive(Debug, Serialize)]
struct ClusterReport {
    clusters: Vec<Cluster>,
}

#[derive(Debug, Serialize)]
struct Cluster {
    id: usize,
    /// The members' common text, `<*>` where they differ.
    template: String,
    /// 0-based line numbers.
    lines: Vec<usize>,
}

/// Run `omen failures`.
pub fn run(args: &FailuresArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        FailuresCommand::Cluster { file, format } => cluster(file, *format),
    }
}

fn cluster(file: &std::path::Path, format: Format) -> anyhow::Result<Outcome> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let groups = group_lines(lines.iter().copied(), GroupConfig::default());
    let clusters: Vec<Cluster> = groups
        .into_iter()
        .enumerate()
        .map(|(id, g)| Cluster {
            id,
            template: headline(g.members.iter().map(|&i| lines[i])),
            lines: g.members,
        })
        .collect();
    match format {
        Format::Json => output::print_json(&ClusterReport { clusters })?,
        Format::Text => {
            let mut sorted: Vec<&Cluster> = clusters.iter().collect();
            sorted.sort_by_key(|c| std::cmp::Reverse(c.lines.len()));
            let mut s = format!(
                "omen: {} line{} in {} cluster{}\n",
                lines.len(),
                if lines.len() == 1 { "" } else { "s" },
                clusters.len(),
                if clusters.len() == 1 { "" } else { "s" }
            );
            for c in sorted {
                s.push_str(&format!(
                    "{:>7}  {}\n",
                    c.lines.len(),
                    omen_render::escape::line(&c.template)
                ));
            }
            output::print(&s);
        }
    }
    Ok(Outcome::OK)
}
