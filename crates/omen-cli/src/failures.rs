//! `omen failures`: a stored run's failures grouped into causes, with what the history knows of
//! each. `omen failures cluster FILE` groups the lines of any text file, one message per line, so
//! the grouping can be judged on labelled data.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use omen_core::failure::{Category, FailureText, GroupConfig, group_lines, headline};
use omen_metadata::failures::{
    CauseJson, CauseTest, FAILURES_REPORT_VERSION, FailuresReport, RunRef,
};
use omen_store::Store;
use serde::Serialize;

use crate::{Format, Outcome, output};

/// Arguments of `omen failures`.
#[derive(Debug, clap::Args)]
pub struct FailuresArgs {
    /// What to do; without one, the causes of a stored run's failures.
    #[command(subcommand)]
    pub command: Option<FailuresCommand>,
    /// The run: `latest` (the run stored last) or its id (`omen failures --format json` gives
    /// it as `run.id`).
    #[arg(long, default_value = "latest", value_parser = run_arg)]
    pub run: RunChoice,
    /// History database.
    #[arg(
        long,
        default_value = ".omen/history.db",
        env = "OMEN_DB",
        global = true
    )]
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Tests listed per cause in text (JSON lists them all).
    #[arg(long, default_value_t = 5)]
    pub tests: usize,
    /// Labels given with `omen failures label` (a missing file is no labels).
    #[arg(long, default_value = crate::labels::DEFAULT_PATH, env = "OMEN_LABELS", global = true)]
    pub labels: PathBuf,
}

/// Which run `omen failures` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunChoice {
    /// The run stored last.
    Latest,
    /// A run by its row id.
    Id(i64),
}

fn run_arg(s: &str) -> Result<RunChoice, String> {
    match s {
        "latest" => Ok(RunChoice::Latest),
        _ => s
            .parse::<i64>()
            .map(RunChoice::Id)
            .map_err(|_| format!("`{s}` is neither `latest` nor a run id")),
    }
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
    /// Tests that fail together across the default branch's newest 100 runs: one cause behind
    /// many failing tests.
    Systemic {
        /// Only the runs of this job (default: every job).
        #[arg(long)]
        job: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Give a signature (16 hex digits, as `omen failures` prints it) its category; written to
    /// the labels file, which `omen ci` and `omen failures` read. Commit it.
    Label {
        /// The signature.
        #[arg(value_parser = crate::labels::parse_signature)]
        signature: u64,
        /// Its category: infrastructure, dependency, build, test, application or security.
        #[arg(long = "as", value_parser = parse_category)]
        category: Category,
        /// The signature's masked first line, when the history database does not hold it.
        #[arg(long)]
        text: Option<String>,
    },
}

fn parse_category(s: &str) -> Result<Category, String> {
    s.parse()
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
pub fn run(args: &FailuresArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    match &args.command {
        Some(FailuresCommand::Cluster { file, format }) => cluster(file, *format),
        Some(FailuresCommand::Label {
            signature,
            category,
            text,
        }) => label(args, *signature, *category, text.as_deref()),
        Some(FailuresCommand::Systemic { job, format }) => systemic(args, job.as_deref(), *format),
        None => of_run(args, config),
    }
}

/// What `omen failures systemic --format json` prints.
#[derive(Debug, Serialize)]
struct SystemicReport {
    version: u32,
    /// Default-branch runs looked at.
    runs: usize,
    clusters: Vec<SystemicJson>,
}

#[derive(Debug, Serialize)]
struct SystemicJson {
    /// Selectors, the test that failed most first.
    tests: Vec<String>,
    /// Runs in which at least half of them failed.
    together: usize,
    /// Runs in which any of them failed.
    any: usize,
}

/// `omen failures systemic`: the clusters of tests that fail together on the default branch.
fn systemic(args: &FailuresArgs, job: Option<&str>, format: Format) -> anyhow::Result<Outcome> {
    let store = Store::open_read_only(&args.db)
        .with_context(|| format!("cannot read the history `{}`", args.db.display()))?;
    let config = omen_core::failure::systemic::SystemicConfig::default();
    let (runs, clusters) = omen_jobs::failures::systemic(&store, job, &config)?;
    let mut out = Vec::with_capacity(clusters.len());
    for c in &clusters {
        let mut tests = Vec::with_capacity(c.tests.len());
        for &id in &c.tests {
            let id = id as i64;
            tests.push(
                store
                    .test(id)?
                    .map_or_else(|| format!("test #{id}"), |t| t.selector),
            );
        }
        out.push(SystemicJson {
            tests,
            together: c.together,
            any: c.any,
        });
    }
    let report = SystemicReport {
        version: 1,
        runs,
        clusters: out,
    };
    match format {
        Format::Json => output::print_json(&report)?,
        Format::Text => output::print(&render_systemic(&report)),
    }
    Ok(Outcome::OK)
}

/// The text of `omen failures systemic`, every test name escaped.
fn render_systemic(report: &SystemicReport) -> String {
    use std::fmt::Write as _;
    if report.clusters.is_empty() {
        return format!(
            "omen: no tests fail together in the default branch's last {} runs\n",
            report.runs
        );
    }
    let mut s = String::new();
    for c in &report.clusters {
        let _ = writeln!(
            s,
            "{} tests fail together: most of them failed in {} of the {} runs where any of them failed (of the default branch's last {})",
            c.tests.len(),
            c.together,
            c.any,
            report.runs
        );
        for t in &c.tests {
            let _ = writeln!(s, "  {}", omen_render::escape::line(t));
        }
    }
    s
}

/// `omen failures label`: add or replace the signature's label in the labels file.
fn label(
    args: &FailuresArgs,
    signature: u64,
    category: Category,
    text: Option<&str>,
) -> anyhow::Result<Outcome> {
    let text = match text {
        Some(t) => t.to_owned(),
        None => {
            let store = Store::open_read_only(&args.db).with_context(|| {
                format!(
                    "cannot read the history `{}` for the signature's text (or give it with --text)",
                    args.db.display()
                )
            })?;
            store
                .signature(signature)?
                .with_context(|| {
                    format!(
                        "no run in `{}` failed with signature {signature:016x}; check it, or give its text with --text",
                        args.db.display()
                    )
                })?
                .masked
        }
    };
    let mut labels = crate::labels::load(&args.labels)?;
    let before = labels.iter().position(|l| l.signature == signature);
    let entry = omen_jobs::failures::Label {
        signature,
        category,
        text,
    };
    let verb = match before {
        Some(i) => {
            let old = std::mem::replace(&mut labels[i], entry);
            format!("relabelled (was {})", old.category)
        }
        None => {
            labels.push(entry);
            "labelled".to_owned()
        }
    };
    crate::labels::save(&args.labels, &labels)?;
    output::print(&format!(
        "omen: {verb} {signature:016x} as {category} in `{}`; commit it\n",
        args.labels.display()
    ));
    Ok(Outcome::OK)
}

fn of_run(args: &FailuresArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    let empty = |error: Option<String>| FailuresReport {
        version: FAILURES_REPORT_VERSION,
        run: None,
        failures: 0,
        causes: Vec::new(),
        error,
    };
    let store = match Store::open_read_only(&args.db) {
        Ok(store) => store,
        Err(err) => {
            tracing::warn!("{err}");
            if args.format == Format::Json {
                output::print_json(&empty(Some(err.to_string())))?;
            }
            return Ok(Outcome::with_trouble(true));
        }
    };
    let run = match args.run {
        RunChoice::Latest => store.latest_run()?,
        RunChoice::Id(id) => Some(
            store
                .run(id)?
                .with_context(|| format!("`{}` holds no run {id}", args.db.display()))?,
        ),
    };
    let Some(run) = run else {
        match args.format {
            Format::Json => output::print_json(&empty(None))?,
            Format::Text => output::print("omen: no run stored yet\n"),
        }
        return Ok(Outcome::OK);
    };
    let failures = store.run_failures(run.id)?;
    let retried: HashMap<i64, bool> = store
        .run_results(run.id)
        .map_err(|err| tracing::warn!("{err}"))
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.test_id, r.mixed && !r.outcome.is_failure()))
        .collect();
    let texts: Vec<FailureText<'_>> = failures.iter().map(|(_, f)| f.as_text()).collect();
    let labels = crate::labels::load_or_warn(&args.labels);
    let classifier =
        omen_jobs::failures::classifier(Some(&store), &labels, config.failure_rules.clone())?;
    let mut selectors: HashMap<i64, String> = HashMap::new();
    let mut causes = Vec::new();
    for c in omen_jobs::failures::group(&texts, &classifier) {
        let known = omen_jobs::failures::known(&store, c.signature, run.is_default)?;
        let mut tests = Vec::with_capacity(c.members.len());
        for &i in &c.members {
            let id = failures[i].0;
            let selector = match selectors.get(&id) {
                Some(s) => s.clone(),
                None => {
                    let s = store
                        .test(id)?
                        .map_or_else(|| format!("test #{id}"), |t| t.selector);
                    selectors.insert(id, s.clone());
                    s
                }
            };
            tests.push(CauseTest {
                selector,
                outcome: if retried.get(&id).copied().unwrap_or(false) {
                    "passed on retry"
                } else {
                    "failed"
                },
                first_line: texts[i].first_line().to_owned(),
            });
        }
        causes.push(CauseJson {
            headline: c.headline,
            signature: format!("{:016x}", c.signature),
            category: c.category.as_ref().map(|k| k.category.as_str()),
            decided_by: c.category.as_ref().map(|k| k.by.as_str()),
            confidence: c.category.as_ref().and_then(|k| k.confidence),
            reason: c.category.map(|k| k.reason),
            known_runs: known.runs,
            first_seen: (known.runs > 0).then(|| omen_core::time::format_rfc3339(known.since)),
            on_default_branch: known.on_default,
            tests,
        });
    }
    let report = FailuresReport {
        version: FAILURES_REPORT_VERSION,
        run: Some(RunRef {
            id: run.id,
            commit: run.commit.clone(),
            branch: run.branch.clone(),
            job: run.job.clone(),
            at: omen_core::time::format_rfc3339(run.at),
        }),
        failures: failures.len(),
        causes,
        error: None,
    };
    match args.format {
        Format::Json => output::print_json(&report)?,
        Format::Text => output::print(&render_causes(&report, args.tests)),
    }
    Ok(Outcome::OK)
}

/// The text of `omen failures`: one block per cause, every untrusted string escaped.
fn render_causes(report: &FailuresReport, tests: usize) -> String {
    use omen_render::escape::line;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let Some(run) = &report.run else {
        return "omen: no run stored yet\n".to_owned();
    };
    let mut about = vec![format!("run {}", run.id)];
    if let Some(b) = &run.branch {
        about.push(format!("branch {}", line(b)));
    }
    if let Some(c) = &run.commit {
        about.push(format!(
            "commit {}",
            line(&c.chars().take(12).collect::<String>())
        ));
    }
    if let Some(j) = &run.job {
        about.push(format!("job {}", line(j)));
    }
    about.push(run.at.chars().take(10).collect());
    let mut s = format!(
        "omen: {}: {} in {}\n",
        about.join(", "),
        plural(report.failures, "failure"),
        plural(report.causes.len(), "cause")
    );
    for c in &report.causes {
        let known = if c.known_runs == 0 {
            "new".to_owned()
        } else {
            format!(
                "known: {} since {}{}",
                plural(c.known_runs as usize, "run"),
                c.first_seen
                    .as_deref()
                    .and_then(|d| d.get(..10))
                    .unwrap_or("?"),
                if c.on_default_branch {
                    ", also on the default branch"
                } else {
                    ""
                }
            )
        };
        s.push_str(&format!(
            "{:>6}  {}  [{}]  {}\n",
            c.tests.len(),
            line(&c.headline),
            match (c.category, c.confidence) {
                (Some(k), Some(p)) => format!("{k}, learned {:.0}%", p * 100.0),
                (Some(k), None) if c.decided_by == Some("label") => format!("{k}, labelled"),
                (Some(k), None) => k.to_owned(),
                (None, _) => "unclassified".to_owned(),
            },
            known
        ));
        for t in c.tests.iter().take(tests) {
            let retried = if t.outcome == "failed" {
                ""
            } else {
                " (passed on retry)"
            };
            s.push_str(&format!("        {}{retried}\n", line(&t.selector)));
        }
        if c.tests.len() > tests {
            s.push_str(&format!("        and {} more\n", c.tests.len() - tests));
        }
    }
    s
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
