//! `omen perf`: the change points the default branch's durations went through, and
//! `omen perf detect`: the change-point detector on one series, for scoring it on any annotated
//! data.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use omen_core::perf::changepoint::{DetectConfig, detect};
use omen_jobs::perf::{PerfSettings, SuiteTrend};
use omen_metadata::perf::{
    ChangePointJson, DetectReport, PERF_REPORT_VERSION, PerfReport, SCAN_REPORT_VERSION,
    ScanReport, ShardGroupJson, ShardJson, SuiteTrendJson, TestTrendJson,
};
use omen_store::{ChangePointRow, Store};

use crate::{Format, Outcome, output};

/// Arguments of `omen perf`.
#[derive(Debug, clap::Args)]
pub struct PerfArgs {
    /// What to do; without one, list the change points.
    #[command(subcommand)]
    pub command: Option<PerfCommand>,
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
    /// List at most this many change points, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// `omen perf` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PerfCommand {
    /// Search the whole stored default-branch history for change points, every job and test,
    /// and record those not known yet: for a history merged from elsewhere (`omen merge`) or
    /// after changing the `[perf]` settings. After each run, `omen ci` searches only what the
    /// run changed.
    Scan {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
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
pub fn run(args: &PerfArgs, config: &crate::config::Config) -> anyhow::Result<Outcome> {
    match &args.command {
        Some(PerfCommand::Detect { input, format }) => detect_file(input, *format),
        Some(PerfCommand::Scan { format }) => scan(&args.db, *format, &config.perf),
        None => list(args, &config.perf),
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
            let shown = || omen_render::escape::line(&t.chars().take(40).collect::<String>());
            let v = t.parse::<f64>().with_context(|| {
                format!("`{}` line {}: `{}` is not a number", path.display(), i + 1, shown())
            })?;
            // `inf` and `1e400` parse, but the detector would take them for missing values.
            if !v.is_finite() {
                bail!(
                    "`{}` line {}: `{}` is not a finite number (`nan` or an empty line is a missing value)",
                    path.display(),
                    i + 1,
                    shown()
                );
            }
            Ok(v)
        })
        .collect()
}

/// `v` with at least five significant digits, no exponent and no trailing zeros (`99.684`,
/// `120.25`, `2605569`).
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = v.abs().log10().floor() as i32;
    let decimals = usize::try_from(4 - digits).unwrap_or(0);
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
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
                    significant(c.before),
                    significant(c.after),
                    c.relative() * 100.0,
                    c.p_value
                ));
            }
            output::print(&s);
        }
    }
    Ok(Outcome::OK)
}

/// A stored change point as `omen perf` lists it.
fn change_point_json(store: &Store, c: &ChangePointRow) -> anyhow::Result<ChangePointJson> {
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
    Ok(ChangePointJson {
        test: test
            .as_ref()
            .map(|t| omen_core::identity::key_of(&t.scope, &t.name)),
        selector: test.map(|t| t.selector),
        job: c.job.clone(),
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
    })
}

/// `omen perf scan`: the whole history searched, what was new recorded. A history that cannot
/// be opened or written is reported, not fatal: nothing was lost, and the next scan tries
/// again.
fn scan(db: &Path, format: Format, settings: &PerfSettings) -> anyhow::Result<Outcome> {
    let now = crate::now();
    // Nothing to search is not a reason to create a database.
    let opened = if db.exists() {
        Store::open(db, now).map_err(anyhow::Error::from)
    } else {
        Err(anyhow::anyhow!(
            "no history database at `{}`",
            omen_render::escape::line(&db.display().to_string())
        ))
    };
    let scanned = opened.and_then(|opened| {
        let mut store = opened.store;
        let scan = omen_jobs::perf::scan(&mut store, settings, now)?;
        let new = scan
            .new
            .iter()
            .map(|f| change_point_json(&store, &f.row))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((scan, new))
    });
    let (scan, new, error) = match scanned {
        Ok((scan, new)) => (scan, new, None),
        Err(err) => {
            tracing::warn!("{err:#}");
            (
                omen_jobs::perf::Scan::default(),
                Vec::new(),
                Some(format!("{err:#}")),
            )
        }
    };
    let trouble = error.is_some();
    match format {
        Format::Json => output::print_json(&ScanReport {
            version: SCAN_REPORT_VERSION,
            jobs: scan.jobs,
            runs: scan.runs,
            series: scan.series,
            found: scan.found,
            new,
            error,
        })?,
        Format::Text if !trouble => {
            let mut s = format!(
                "omen: searched {} series over {} default-branch run{} in {} job{}: {} change point{}, {} new\n",
                scan.series,
                scan.runs,
                if scan.runs == 1 { "" } else { "s" },
                scan.jobs,
                if scan.jobs == 1 { "" } else { "s" },
                scan.found,
                if scan.found == 1 { "" } else { "s" },
                new.len()
            );
            s.push_str(&change_lines(&new));
            output::print(&s);
        }
        Format::Text => {}
    }
    Ok(Outcome::with_trouble(trouble))
}

fn list(args: &PerfArgs, settings: &PerfSettings) -> anyhow::Result<Outcome> {
    let store = match Store::open_read_only(&args.db) {
        Ok(store) => store,
        Err(err) => {
            tracing::warn!("{err}");
            if args.format == Format::Json {
                output::print_json(&PerfReport {
                    version: PERF_REPORT_VERSION,
                    change_points: vec![],
                    trends: vec![],
                    test_trends: vec![],
                    shards: vec![],
                    error: Some(err.to_string()),
                })?;
            }
            return Ok(Outcome::with_trouble(true));
        }
    };
    let mut points = Vec::new();
    for c in store.change_points(args.limit)? {
        points.push(change_point_json(&store, &c)?);
    }
    let budget_ms = settings.suite_budget_s * 1000.0;
    let trends: Vec<SuiteTrendJson> = omen_jobs::perf::suite_trends(&store, settings)?
        .iter()
        .map(|t| trend_json(t, budget_ms))
        .collect();
    let mut test_trends = Vec::new();
    for t in omen_jobs::perf::test_trends(&store, settings)? {
        let (month, low, high) = t.trend.per_month();
        let r4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
        let row = store.test(t.test_id)?;
        test_trends.push(TestTrendJson {
            test: row.as_ref().map_or_else(
                || format!("#{}", t.test_id),
                |r| omen_core::identity::key_of(&r.scope, &r.name),
            ),
            selector: row.map_or_else(|| format!("test #{}", t.test_id), |r| r.selector),
            job: t.job,
            runs: t.trend.points,
            span_days: round1(t.trend.span_days),
            level_ms: round1(t.trend.level),
            ms_per_month: round1(t.trend.per_day * 30.0),
            per_month: r4(month),
            per_month_low: r4(low),
            per_month_high: r4(high),
        });
    }
    let mut shards = Vec::new();
    for g in omen_jobs::perf::shard_groups(&store)? {
        shards.push(shard_json(&store, &g)?);
    }
    match args.format {
        Format::Json => output::print_json(&PerfReport {
            version: PERF_REPORT_VERSION,
            change_points: points,
            trends,
            test_trends,
            shards,
            error: None,
        })?,
        Format::Text => {
            let mut s = render_text(&points);
            for t in &trends {
                s.push_str(&trend_line(t));
            }
            for t in &test_trends {
                s.push_str(&test_trend_line(t));
            }
            for g in &shards {
                s.push_str(&shard_line(g));
            }
            output::print(&s);
        }
    }
    Ok(Outcome::OK)
}

/// "tests/test_export.py::test_big (job `test`): 820 ms, grows 14.0% a month (+115 ms; 9.0% to
/// 19.0%) over the last 60 default-branch runs (31 days)".
fn test_trend_line(t: &TestTrendJson) -> String {
    use omen_render::escape::line;
    let job = if t.job.is_empty() {
        String::new()
    } else {
        format!(" (job `{}`)", line(&t.job))
    };
    format!(
        "{}{job}: {:.0} ms, grows {:.1}% a month (+{:.0} ms; {:.1}% to {:.1}%) over the last {} default-branch runs ({:.0} days)\n",
        line(&t.selector),
        t.level_ms,
        t.per_month * 100.0,
        t.ms_per_month,
        t.per_month_low * 100.0,
        t.per_month_high * 100.0,
        t.runs,
        t.span_days
    )
}

fn trend_json(t: &SuiteTrend, budget_ms: f64) -> SuiteTrendJson {
    let (month, low, high) = t.trend.per_month();
    let r4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
    SuiteTrendJson {
        job: t.job.clone(),
        runs: t.trend.points,
        span_days: round1(t.trend.span_days),
        level_ms: round1(t.trend.level),
        per_month: r4(month),
        per_month_low: r4(low),
        per_month_high: r4(high),
        significant: t.trend.significant(),
        budget_ms,
        budget_in_days: t.reach.map(|r| round1(r.days)),
        budget_in_days_range: t
            .reach
            .map(|r| [round1(r.soonest_days), round1(r.latest_days)]),
    }
}

/// "suite time (job `test`): 12.3 min, grows 3.1% a month (1.2% to 5.0%); at this rate it
/// passes 30 min in about 6 weeks (4 to 15)".
fn trend_line(t: &SuiteTrendJson) -> String {
    let job = if t.job.is_empty() {
        String::new()
    } else {
        format!(" (job `{}`)", omen_render::escape::line(&t.job))
    };
    let minutes = |ms: f64| ms / 60_000.0;
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let mut s = format!(
        "suite time{job}: {:.1} min over the last {} default-branch runs ({:.0} days), ",
        minutes(t.level_ms),
        t.runs,
        t.span_days
    );
    if !t.significant {
        s.push_str(&format!(
            "no significant trend ({} to {} a month)\n",
            pct(t.per_month_low),
            pct(t.per_month_high)
        ));
        return s;
    }
    s.push_str(&format!(
        "{} {} a month ({} to {})",
        if t.per_month > 0.0 {
            "grows"
        } else {
            "shrinks"
        },
        pct(t.per_month.abs()),
        pct(t.per_month_low),
        pct(t.per_month_high)
    ));
    match (t.budget_in_days, t.budget_in_days_range) {
        (Some(days), Some([soonest, latest])) => s.push_str(&format!(
            "; at this rate it passes {} min in about {} ({} to {})\n",
            whole_or_tenths(minutes(t.budget_ms)),
            span(days),
            span(soonest),
            span(latest)
        )),
        _ => s.push('\n'),
    }
    s
}

fn shard_json(store: &Store, g: &omen_jobs::perf::ShardGroup) -> anyhow::Result<ShardGroupJson> {
    let b = &g.balance;
    let mut suggested = Vec::with_capacity(b.suggested.len());
    for shard in &b.suggested {
        let mut names = Vec::with_capacity(shard.len());
        for &i in shard {
            let id = g.tests[i];
            names.push(
                store
                    .test(id)?
                    .map_or_else(|| format!("test #{id}"), |t| t.selector),
            );
        }
        suggested.push(names);
    }
    let (slowest, suggested_slowest) = b.slowest_ms();
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(ShardGroupJson {
        group: g.group.clone(),
        run_id: g.run_id.clone(),
        commit: g.commit.clone(),
        jobs: g
            .jobs
            .iter()
            .zip(&b.shard_ms)
            .map(|((job, tests), ms)| ShardJson {
                job: job.clone(),
                tests: *tests,
                ms: round1(*ms),
            })
            .collect(),
        slowest_ms: round1(slowest),
        imbalance: r3(b.imbalance()),
        suggested_slowest_ms: round1(suggested_slowest),
        suggested_imbalance: r3(b.suggested_imbalance()),
        suggested,
    })
}

/// "shards of `test` (3 jobs, commit 0123456789ab): the slowest takes 4.2 min, 1.62× the mean;
/// split by duration, longest test first, the slowest would take 2.7 min (1.01×)".
fn shard_line(g: &ShardGroupJson) -> String {
    let minutes = |ms: f64| ms / 60_000.0;
    let commit = g
        .commit
        .as_deref()
        .map(|c| {
            format!(
                ", commit {}",
                omen_render::escape::line(&c.chars().take(12).collect::<String>())
            )
        })
        .unwrap_or_default();
    format!(
        "shards of `{}` ({} jobs{commit}): the slowest takes {:.1} min, {:.2}× the mean; split by duration, longest test first, the slowest would take {:.1} min ({:.2}×; the split is in --format json)\n",
        omen_render::escape::line(&g.group),
        g.jobs.len(),
        minutes(g.slowest_ms),
        g.imbalance,
        minutes(g.suggested_slowest_ms),
        g.suggested_imbalance
    )
}

/// `30` for 30.0, `0.5` for 0.5.
fn whole_or_tenths(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Days as a person says them: days under three weeks, then weeks, then months.
fn span(days: f64) -> String {
    if days < 21.0 {
        format!("{:.0} days", days.max(1.0))
    } else if days < 120.0 {
        format!("{:.0} weeks", days / 7.0)
    } else {
        format!("{:.0} months", days / 30.0)
    }
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
    s.push_str(&change_lines(points));
    s
}

/// One line per change point: "+45.0%  test_export  120 ms → 174 ms, p = 1.0e-4, since
/// 2026-11-02 (abc..def)".
fn change_lines(points: &[ChangePointJson]) -> String {
    let mut s = String::new();
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

#[cfg(test)]
mod tests {
    use super::significant;

    #[test]
    fn levels_show_five_significant_digits() {
        assert_eq!(significant(99.684_365_409_052_97), "99.684");
        assert_eq!(significant(120.250_439_208_231_68), "120.25");
        assert_eq!(significant(2_605_569.0), "2605569");
        assert_eq!(significant(140.0), "140");
        assert_eq!(significant(-0.000_123_456_7), "-0.00012346");
        assert_eq!(significant(0.0), "0");
    }
}
