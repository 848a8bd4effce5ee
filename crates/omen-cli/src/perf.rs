//! `omen perf`: the change points the default branch's durations went through, and
//! `omen perf detect`: the change-point detector on one series, for scoring it on any annotated
//! data.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use omen_core::perf::changepoint::{DetectConfig, detect};
use omen_metadata::perf::{ChangePointJson, DetectReport, PERF_REPORT_VERSION, PerfReport};
use omen_store::Store;

use crate::{Format, Outcome, output};

/// Arguments of `omen perf`.
#[derive(Debug, clap::Args)]
pub struct PerfArgs {
    /// What to do; without one, list the change points.
    #[command(subcommand)]
    pub command: Option<PerfCommand>,
    /// History database.
    #[arg(long, default_value = ".omen/history.db", env = "OMEN_DB")]
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// List at most this many change points, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// `omen perf` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PerfCommand {
    /// Run the change-point detector with its default settings on one series: a JSON file with
    /// the values in `series[0].raw` (`null` = missing), as in the TCPD benchmark, or a text file
    /// with one number per line (`nan` or an empty line = missing). Prints the 0-based indices
    /// where a new segment starts.
    Detect {
        /// The series.
        #[arg(long)]
        input: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Run `omen perf`.
pub fn run(args: &PerfArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        Some(PerfCommand::Detect { input, format }) => detect_file(input, *format),
        None => list(args),
    }
}

/// Read a series: TCPD JSON or one number per line.
fn read_series(path: &Path) -> anyhow::Result<Vec<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.trim_start().starts_with('{') {
        let doc: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not valid JSON", path.display()))?;
        let Some(raw) = doc
            .get("series")
            .and_then(|s| s.get(0))
            .and_then(|s| s.get("raw"))
            .and_then(serde_json::Value::as_array)
        else {
            bail!("`{}` has no `series[0].raw` array", path.display());
        };
        return raw
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                serde_json::Value::Null => Ok(f64::NAN),
                v => v.as_f64().with_context(|| {
                    format!("`{}`: series[0].raw[{i}] is not a number", path.display())
                }),
            })
            .collect();
    }
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let t = line.trim();
            if t.is_empty() || t.eq_ignore_ascii_case("nan") || t == "null" {
                return Ok(f64::NAN);
            }
            t.parse::<f64>().with_context(|| {
                format!(
                    "`{}` line {}: `{}` is not a number",
                    path.display(),
                    i + 1,
                    omen_render::escape::line(&t.chars().take(40).collect::<String>())
                )
            })
        })
        .collect()
}

fn detect_file(input: &Path, format: Format) -> anyhow::Result<Outcome> {
    let series = read_series(input)?;
    let found = detect(&series, &DetectConfig::default());
    match format {
        Format::Json => output::print_json(&DetectReport {
            change_points: found.iter().map(|c| c.index).collect(),
        })?,
        Format::Text => {
            let mut s = format!(
                "omen: {} point{}, {} change point{}\n",
                series.len(),
                if series.len() == 1 { "" } else { "s" },
                found.len(),
                if found.len() == 1 { "" } else { "s" }
            );
            for c in &found {
                s.push_str(&format!(
                    "{:>7}  {} → {} ({:+.1}%, p = {:.2e})\n",
                    c.index,
                    c.before,
                    c.after,
                    c.relative() * 100.0,
                    c.p_value
                ));
            }
            output::print(&s);
        }
    }
    Ok(Outcome::OK)
}

fn list(args: &PerfArgs) -> anyhow::Result<Outcome> {
    let store = match Store::open_read_only(&args.db) {
        Ok(store) => store,
        Err(err) => {
            tracing::warn!("{err}");
            if args.format == Format::Json {
                output::print_json(&PerfReport {
                    version: PERF_REPORT_VERSION,
                    change_points: vec![],
                    error: Some(err.to_string()),
                })?;
            }
            return Ok(Outcome::with_trouble(true));
        }
    };
    let mut points = Vec::new();
    for c in store.change_points(args.limit)? {
        let test = match c.test_id {
            Some(id) => store.test(id)?,
            None => None,
        };
        let run = store.run(c.run)?;
        let previous = match c.previous_run {
            Some(id) => store.run(id)?,
            None => None,
        };
        let relative = if c.before_ms > 0.0 {
            c.after_ms / c.before_ms - 1.0
        } else {
            0.0
        };
        points.push(ChangePointJson {
            test: test
                .as_ref()
                .map(|t| omen_core::identity::key_of(&t.scope, &t.name)),
            selector: test.map(|t| t.selector),
            job: c.job,
            before_ms: round1(c.before_ms),
            after_ms: round1(c.after_ms),
            relative: (relative * 10_000.0).round() / 10_000.0,
            p_value: c.p_value,
            kind: if relative > 0.0 {
                "regression"
            } else {
                "improvement"
            },
            commit: run.as_ref().and_then(|r| r.commit.clone()),
            previous_commit: previous.and_then(|r| r.commit),
            since: run.map(|r| omen_core::time::format_rfc3339(r.at)),
            detected_at: omen_core::time::format_rfc3339(c.detected_at),
        });
    }
    match args.format {
        Format::Json => output::print_json(&PerfReport {
            version: PERF_REPORT_VERSION,
            change_points: points,
            error: None,
        })?,
        Format::Text => output::print(&render_text(&points)),
    }
    Ok(Outcome::OK)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn render_text(points: &[ChangePointJson]) -> String {
    if points.is_empty() {
        return "omen: no duration changes on the default branch\n".to_owned();
    }
    let mut s = format!(
        "omen: {} duration change{} on the default branch, newest first\n",
        points.len(),
        if points.len() == 1 { "" } else { "s" }
    );
    for p in points {
        let name = p.selector.as_deref().unwrap_or("whole suite");
        let short = |c: &Option<String>| {
            c.as_deref()
                .map(|c| c.chars().take(12).collect::<String>())
                .unwrap_or_else(|| "?".to_owned())
        };
        s.push_str(&format!(
            "{:>+7.1}%  {}  {:.0} ms → {:.0} ms, p = {:.1e}, since {} ({}..{})\n",
            p.relative * 100.0,
            omen_render::escape::line(name),
            p.before_ms,
            p.after_ms,
            p.p_value,
            p.since.as_deref().and_then(|d| d.get(..10)).unwrap_or("?"),
            omen_render::escape::line(&short(&p.previous_commit)),
            omen_render::escape::line(&short(&p.commit)),
        ));
    }
    s
}
