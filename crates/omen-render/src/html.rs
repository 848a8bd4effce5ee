//! The run's report as one self-contained HTML page: GitLab has no job summary, so Omen keeps
//! this page as a job artifact and links it from the note (GitHub users get it as a workflow
//! artifact). No external assets and no script: the styles are inline, the charts inline SVG,
//! and a Content-Security-Policy forbids everything else, so even a page opened from an
//! artifact server can load and run nothing. Every string from the run passes through
//! [`escape::html`].

use std::fmt::Write as _;

use crate::{CiReport, FailureClass, FailureRow, GateVerdict, Seen, TrendPoint, escape, short};

/// A flaky test for the page's chart: the default branch's flakiest tests.
#[derive(Debug, Clone, PartialEq)]
pub struct FlakyBar {
    /// Runner-native selector (untrusted).
    pub name: String,
    /// Flakiness score, 0–1.
    pub score: f64,
    /// Its state in words (`flaky`, `quarantined`, …).
    pub state: String,
}

/// At most this many flaky tests are charted.
pub const FLAKY_BARS: usize = 15;

/// Colours the charts draw with (the page's tests look for them in a screenshot).
pub const PASS_RATE_COLOUR: &str = "#1a7f37";
/// Bars of the duration chart.
pub const DURATION_COLOUR: &str = "#0969da";
/// Bars of the flaky-test chart.
pub const FLAKY_COLOUR: &str = "#bf8700";

const STYLE: &str = "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:980px;padding:0 1rem;color:#1f2328;background:#fff}\
h1{font-size:1.5rem;margin:0 0 .5rem}h3{font-size:.95rem;margin:1rem 0 0;color:#59636e}h2{font-size:1.15rem;margin:1.75rem 0 .5rem;border-bottom:1px solid #d1d9e0;padding-bottom:.25rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #d1d9e0;padding:.3rem .5rem;text-align:left;vertical-align:top;word-break:break-word}\
th{background:#f6f8fa}code{font:.85rem ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}\
.muted{color:#59636e}.charts svg{display:block;margin:.5rem 0 1rem;max-width:100%;height:auto}footer{margin-top:2rem;font-size:.8rem;color:#59636e}";

/// The page for `report`, with `flaky` (the default branch's flakiest tests, at most
/// [`FLAKY_BARS`] are shown) charted.
pub fn page(report: &CiReport, flaky: &[FlakyBar]) -> String {
    let mut s = String::with_capacity(16 * 1024);
    let title = match report.commit.as_deref() {
        Some(c) => format!("Omen report · {}", short(c)),
        None => "Omen report".to_owned(),
    };
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape::html(&title, 100)
    );
    let headline = crate::headline(report);
    let _ = writeln!(
        s,
        "<h1>{}</h1>",
        escape::html(headline.trim_start_matches("### "), 300)
    );
    totals(&mut s, report);
    if let Some(r) = &report.risk {
        risk(&mut s, r);
    }
    log(&mut s, report);
    causes(&mut s, report);
    systemic(&mut s, report);
    failures(&mut s, report);
    quarantine_changes(&mut s, report);
    slow(&mut s, report);
    if !report.unusable.is_empty() {
        let _ = writeln!(s, "<h2 id=\"unusable\">Unusable reports</h2><ul>");
        for (path, reason) in &report.unusable {
            let _ = writeln!(
                s,
                "<li><code>{}</code>: {}</li>",
                escape::html(path, 300),
                escape::html(reason, 500)
            );
        }
        let _ = writeln!(s, "</ul>");
    }
    let _ = writeln!(s, "<div class=\"charts\">");
    trend_charts(&mut s, report);
    flaky_chart(&mut s, flaky);
    let _ = writeln!(s, "</div>");
    let _ = writeln!(
        s,
        "<footer>Written by Omen {}; this page loads nothing and runs no script.</footer>\n</body></html>",
        env!("CARGO_PKG_VERSION")
    );
    s
}

fn totals(s: &mut String, report: &CiReport) {
    let t = &report.totals;
    let _ = write!(
        s,
        "<p id=\"totals\"><strong>{} test{}</strong>: {} passed, {} failed, {} skipped, {} flaky",
        t.tests,
        if t.tests == 1 { "" } else { "s" },
        t.passed,
        t.failed,
        t.skipped,
        t.flaky
    );
    if let Some(c) = report.commit.as_deref() {
        let _ = write!(s, " · commit <code>{}</code>", escape::html(&short(c), 12));
    }
    if let (Some(b), Some(base)) = (report.default_branch.as_deref(), report.base) {
        let _ = write!(
            s,
            " <span class=\"muted\">(the latest <code>{}</code> run: {} tests, {} failed)</span>",
            escape::html(b, 60),
            base.tests,
            base.failed
        );
    }
    let _ = writeln!(s, "</p>");
}

fn risk(s: &mut String, r: &crate::RiskSection) {
    let _ = writeln!(
        s,
        "<h2 id=\"risk\">Deploy risk: {} — {:.0}%</h2><p>Riskier than {:.0}% of past changes.",
        escape::html(r.level.name(), 20),
        r.probability * 100.0,
        r.percentile
    );
    match r.gate {
        Some((t, GateVerdict::Blocked)) => {
            let _ = write!(
                s,
                " <strong>Gate: blocked</strong> (threshold {:.0}%); the label <code>{}</code> accepts the risk.",
                t * 100.0,
                escape::html(&r.accept_label, 60)
            );
        }
        Some((t, GateVerdict::Accepted)) => {
            let _ = write!(
                s,
                " Gate: over the threshold ({:.0}%), risk accepted by a reviewer.",
                t * 100.0
            );
        }
        Some((_, GateVerdict::Passes)) | None => {}
    }
    let _ = writeln!(s, "</p>");
    let items: Vec<String> = r
        .factors
        .iter()
        .cloned()
        .chain(r.hints.iter().map(|h| format!("hint: {h}")))
        .chain(r.signals.iter().cloned())
        .chain(r.missing.iter().map(|m| format!("not computed: {m}")))
        .collect();
    if !items.is_empty() {
        let _ = writeln!(s, "<ul>");
        for item in items.iter().take(30) {
            let _ = writeln!(s, "<li>{}</li>", escape::html(item, 300));
        }
        let _ = writeln!(s, "</ul>");
    }
    let _ = writeln!(
        s,
        "<p class=\"muted\">Model: {}.</p>",
        escape::html(&r.model, 300)
    );
}

fn causes(s: &mut String, report: &CiReport) {
    let shared = report.shared_causes();
    if shared.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "<h2 id=\"causes\">{} failures, {} cause{}</h2>\n<table><thead><tr><th>cause</th><th>kind</th><th>failures</th><th>seen</th><th>tests</th></tr></thead><tbody>",
        shared.iter().map(|c| c.failures.len()).sum::<usize>(),
        shared.len(),
        if shared.len() == 1 { "" } else { "s" }
    );
    for c in shared {
        let names: Vec<String> = c
            .failures
            .iter()
            .filter_map(|&i| report.failures.get(i))
            .map(|f| format!("<code>{}</code>", escape::html(&f.name, 200)))
            .collect();
        let seen = seen(c.known);
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape::html(&c.headline, 400),
            c.kind
                .as_deref()
                .map(|k| escape::html(k, 80))
                .unwrap_or_default(),
            c.failures.len(),
            seen,
            names.join("<br>")
        );
    }
    let _ = writeln!(s, "</tbody></table>");
}

/// `new`, or `known: 14 runs since 2026-10-02, also on the default branch`.
fn seen(known: Option<Seen>) -> String {
    match known {
        None => String::new(),
        Some(k) if k.runs == 0 => "new".to_owned(),
        Some(k) => format!(
            "known: {} run{} since {}{}",
            k.runs,
            if k.runs == 1 { "" } else { "s" },
            omen_core::time::format_rfc3339(k.since)
                .chars()
                .take(10)
                .collect::<String>(),
            if k.on_default {
                ", also on the default branch"
            } else {
                ""
            }
        ),
    }
}

/// Failing tests of groups that fail together on the default branch.
fn systemic(s: &mut String, report: &CiReport) {
    if report.systemic.is_empty() {
        return;
    }
    let _ = writeln!(s, "<h2 id=\"systemic\">Tests that fail together</h2><ul>");
    for g in &report.systemic {
        let names: Vec<String> = g
            .failures
            .iter()
            .filter_map(|&i| report.failures.get(i))
            .map(|f| format!("<code>{}</code>", escape::html(&f.name, 200)))
            .collect();
        let _ = writeln!(
            s,
            "<li><strong>{} failing tests</strong> of a group of {} that fail together on the default branch: most of them failed in {} of the {} runs where any of them failed (last {} runs): {}</li>",
            g.failures.len(),
            g.size,
            g.together,
            g.any,
            g.runs,
            names.join(", ")
        );
    }
    let _ = writeln!(s, "</ul>");
}

/// The log's failing step (`omen ci --log`).
fn log(s: &mut String, report: &CiReport) {
    let Some(log) = &report.log else { return };
    let mut facts = vec![format!(
        "<code>{}</code> line {}",
        escape::html(&log.path, 300),
        log.line
    )];
    if let Some(k) = &log.kind {
        facts.push(escape::html(k, 120));
    }
    let seen = seen(log.known);
    if !seen.is_empty() {
        facts.push(seen);
    }
    let excerpt: Vec<String> = log.excerpt.iter().map(|l| escape::html(l, 400)).collect();
    let _ = writeln!(
        s,
        "<h2 id=\"log\">The job failed outside the tests</h2>\n<p><strong>{}</strong></p>\n<p>{}</p>\n<pre>{}</pre>",
        escape::html(&log.headline, 400),
        facts.join(" · "),
        excerpt.join("\n")
    );
}

fn failures(s: &mut String, report: &CiReport) {
    /// (anchor, title, which failures)
    type Kind = (&'static str, &'static str, fn(&FailureClass) -> bool);
    let kinds: [Kind; 4] = [
        ("new", "New failures — likely from this change", |c| {
            matches!(c, FailureClass::New)
        }),
        (
            "failing-on-default",
            "Also failing on the default branch",
            |c| matches!(c, FailureClass::FailingOnDefault { .. }),
        ),
        ("flaky", "Known flaky — excused", |c| {
            matches!(c, FailureClass::KnownFlaky { .. })
        }),
        ("quarantined", "Quarantined", |c| {
            matches!(c, FailureClass::Quarantined { .. })
        }),
    ];
    for (id, title, pick) in kinds {
        let rows = report.of(pick);
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "<h2 id=\"failures-{id}\">{title} ({})</h2>\n<table><thead><tr><th>test</th><th>where</th><th></th></tr></thead><tbody>",
            rows.len()
        );
        for f in rows {
            let _ = writeln!(
                s,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape::html(&f.name, 400),
                place(f),
                detail(f)
            );
        }
        let _ = writeln!(s, "</tbody></table>");
    }
}

fn place(f: &FailureRow) -> String {
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{}:{line}", escape::html(file, 300)),
        (Some(file), None) => escape::html(file, 300),
        _ => String::new(),
    }
}

fn detail(f: &FailureRow) -> String {
    match &f.class {
        FailureClass::New => f
            .message
            .as_deref()
            .map(|m| escape::html(m, 500))
            .unwrap_or_default(),
        FailureClass::FailingOnDefault { since: Some(c) } => {
            format!("broken since <code>{}</code>", escape::html(&short(c), 12))
        }
        FailureClass::FailingOnDefault { since: None } => "failing there too".to_owned(),
        FailureClass::KnownFlaky { score, evidence } => {
            format!("{:.1}% · {}", score * 100.0, escape::html(evidence, 300))
        }
        FailureClass::Quarantined { mode } => escape::html(mode, 20),
    }
}

fn quarantine_changes(s: &mut String, report: &CiReport) {
    if report.quarantine_changes.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "<h2 id=\"quarantine\">Quarantine changes ({})</h2><ul>",
        report.quarantine_changes.len()
    );
    for change in &report.quarantine_changes {
        let _ = writeln!(
            s,
            "<li>{}: <code>{}</code></li>",
            escape::html(change.kind.describe(), 60),
            escape::html(&change.selector, 400)
        );
    }
    let _ = writeln!(s, "</ul>");
}

fn slow(s: &mut String, report: &CiReport) {
    let perf = &report.perf;
    if perf.slow.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "<h2 id=\"slow\">Slower than the default branch ({}{})</h2>\n<table><thead><tr><th>test</th><th>default branch</th><th>this run</th><th>change</th></tr></thead><tbody>",
        perf.slow_total,
        if perf.together {
            ", together: one cause"
        } else {
            ""
        }
    );
    for r in &perf.slow {
        let _ = writeln!(
            s,
            "<tr><td><code>{}</code></td><td>{:.0} ms</td><td>{:.0} ms</td><td>{:+.0}%</td></tr>",
            escape::html(&r.name, 400),
            r.baseline_ms,
            r.current_ms,
            (r.current_ms / r.baseline_ms - 1.0) * 100.0
        );
    }
    let _ = writeln!(s, "</tbody></table>");
}

const W: f64 = 900.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// A commit as a chart label: only its letters and digits.
fn label(p: &TrendPoint) -> String {
    short(&p.commit).chars().take(7).collect()
}

fn x_of(i: usize, n: usize) -> f64 {
    let inner = W - LEFT - RIGHT;
    if n <= 1 {
        LEFT + inner / 2.0
    } else {
        LEFT + inner * i as f64 / (n - 1) as f64
    }
}

/// The frame of a chart: y grid lines with labels, x labels every few points.
fn frame(s: &mut String, points: &[TrendPoint], max: f64, unit: &str) {
    let inner_h = H - TOP - BOTTOM;
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let y = TOP + inner_h - inner_h * f64::from(k) / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#d1d9e0\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#59636e\">{v:.0}{unit}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let every = points.len().div_ceil(12).max(1);
    for (i, p) in points.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#59636e\">{}</text>",
            x_of(i, points.len()),
            H - BOTTOM + 16.0,
            escape::html(&label(p), 12)
        );
    }
}

fn trend_charts(s: &mut String, report: &CiReport) {
    let points = &report.trend;
    let _ = writeln!(
        s,
        "<h2 id=\"trend\">Default branch, last {} runs</h2>",
        points.len()
    );
    if points.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"muted\">No default-branch runs in the history yet.</p>"
        );
        return;
    }
    let inner_h = H - TOP - BOTTOM;
    // Pass rate, a line over 0–100 %.
    let _ = write!(
        s,
        "<h3>Pass rate</h3><svg id=\"chart-pass-rate\" role=\"img\" aria-label=\"Pass rate of the last {n} default-branch runs\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\"><title>Pass rate (%)</title>",
        n = points.len()
    );
    frame(s, points, 100.0, "%");
    let y_rate = |p: &TrendPoint| TOP + inner_h - inner_h * p.pass_rate.clamp(0.0, 100.0) / 100.0;
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x_of(i, points.len()), y_rate(p)))
        .collect();
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"{PASS_RATE_COLOUR}\" stroke-width=\"3\" points=\"{}\"/>",
        line.join(" ")
    );
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{PASS_RATE_COLOUR}\"><title>{}: {:.1}%</title></circle>",
            x_of(i, points.len()),
            y_rate(p),
            escape::html(&label(p), 12),
            p.pass_rate
        );
    }
    let _ = writeln!(s, "</svg>");
    // Test time, bars from 0 to the longest run.
    let max = points
        .iter()
        .map(|p| p.duration_s)
        .fold(1.0_f64, f64::max)
        .ceil();
    let _ = write!(
        s,
        "<h3>Test time</h3><svg id=\"chart-duration\" role=\"img\" aria-label=\"Test time of the last {n} default-branch runs\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\"><title>Test time (s)</title>",
        n = points.len()
    );
    frame(s, points, max, " s");
    let slot = (W - LEFT - RIGHT) / points.len().max(1) as f64;
    let bar = (slot * 0.6).clamp(2.0, 40.0);
    for (i, p) in points.iter().enumerate() {
        let h = inner_h * (p.duration_s.max(0.0) / max).min(1.0);
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{DURATION_COLOUR}\"><title>{}: {:.1} s</title></rect>",
            x_of(i, points.len()) - bar / 2.0,
            TOP + inner_h - h,
            h.max(1.0),
            escape::html(&label(p), 12),
            p.duration_s
        );
    }
    let _ = writeln!(s, "</svg>");
}

fn flaky_chart(s: &mut String, flaky: &[FlakyBar]) {
    let _ = writeln!(
        s,
        "<h2 id=\"flaky\">Flakiest tests on the default branch</h2>"
    );
    if flaky.is_empty() {
        let _ = writeln!(s, "<p class=\"muted\">No flaky tests in the history.</p>");
        return;
    }
    let shown = &flaky[..flaky.len().min(FLAKY_BARS)];
    let row = 34.0;
    let height = TOP + row * shown.len() as f64 + 8.0;
    let bar_left = 16.0;
    let inner = W - bar_left - 80.0;
    let _ = write!(
        s,
        "<svg id=\"chart-flaky\" role=\"img\" aria-label=\"Flakiness of the {} flakiest tests\" viewBox=\"0 0 {W} {height:.0}\" width=\"{W}\" height=\"{height:.0}\" xmlns=\"http://www.w3.org/2000/svg\"><title>Flakiness score (%)</title>",
        shown.len()
    );
    for (i, f) in shown.iter().enumerate() {
        let y = TOP + row * i as f64;
        let width = (inner * f.score.clamp(0.0, 1.0)).max(2.0);
        let _ = write!(
            s,
            "<text x=\"{bar_left}\" y=\"{:.1}\" font-size=\"11\" fill=\"#1f2328\">{} <tspan fill=\"#59636e\">({})</tspan></text>\
             <rect x=\"{bar_left}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"12\" fill=\"{FLAKY_COLOUR}\"><title>{:.1}%</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#59636e\">{:.1}%</text>",
            y + 10.0,
            escape::html(&f.name, 120),
            escape::html(&f.state, 20),
            y + 14.0,
            f.score * 100.0,
            bar_left + width + 6.0,
            y + 24.0,
            f.score * 100.0
        );
    }
    let _ = writeln!(s, "</svg>");
    if flaky.len() > shown.len() {
        let _ = writeln!(
            s,
            "<p class=\"muted\">… and {} more: <code>omen flaky</code> lists them all.</p>",
            flaky.len() - shown.len()
        );
    }
}
