//! Durations: `omen perf detect` on annotated series, change points found by `omen ci` on the
//! default branch and listed by `omen perf`, and a pull request's slowdowns in its comment.

use std::path::Path;

use omen_tests::{corpus, omen, omen_ci, run};

const HOSTILE: &str = "test_\u{1b}[31mred\u{1b}[0m_<img src=x onerror=alert(1)>_@everyone";

fn detect_json(dir: &Path, input: &Path) -> Vec<u64> {
    let out = run(omen(dir)
        .args(["perf", "detect", "--format", "json", "--input"])
        .arg(input));
    out.code(0);
    out.json()["change_points"]
        .as_array()
        .unwrap_or_else(|| panic!("no change_points\n{out}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn detect_reads_a_tcpd_series_or_one_number_per_line() {
    let dir = tempfile::tempdir().unwrap();
    // No annotator saw a change in `bank`; all five saw one near 146 in `shanghai_license`.
    assert_eq!(
        detect_json(dir.path(), &corpus("changepoint/bank.json")),
        Vec::<u64>::new()
    );
    let shanghai = detect_json(dir.path(), &corpus("changepoint/shanghai_license.json"));
    assert!(
        shanghai.iter().any(|&i| i.abs_diff(146) <= 5),
        "{shanghai:?}"
    );
    // A text file: a step at line 51 (index 50), missing values as `nan` and empty lines.
    let mut lines: Vec<String> = (0..100)
        .map(|i| {
            let level = if i < 50 { 100.0 } else { 140.0 };
            format!("{}", level + ((i * 37) % 7) as f64 - 3.0)
        })
        .collect();
    lines[10] = "nan".into();
    lines[70] = String::new();
    std::fs::write(dir.path().join("series.txt"), lines.join("\n")).unwrap();
    assert_eq!(
        detect_json(dir.path(), &dir.path().join("series.txt")),
        vec![50]
    );
    let text = run(omen(dir.path()).args(["perf", "detect", "--input", "series.txt"]));
    text.code(0);
    assert!(text.stdout.contains("100 points, 1 change point"), "{text}");
    assert!(text.stdout.contains("     50  100 → 140 (+40.0%"), "{text}");
    // A line that is not a number is an error naming the file and the line.
    std::fs::write(dir.path().join("bad.txt"), "1\n2\nthree\u{1b}[31m\n").unwrap();
    let bad = run(omen(dir.path()).args(["--strict", "perf", "detect", "--input", "bad.txt"]));
    assert_ne!(bad.code, 0, "{bad}");
    assert!(bad.stderr.contains("bad.txt` line 3"), "{bad}");
    assert!(!bad.stderr.contains('\u{1b}'), "{bad}");
    // A number too large for a float parses as infinity, which the detector would read as a
    // missing value: an error too.
    std::fs::write(dir.path().join("huge.txt"), "1\n1e400\n3\n").unwrap();
    let huge = run(omen(dir.path()).args(["--strict", "perf", "detect", "--input", "huge.txt"]));
    assert_ne!(huge.code, 0, "{huge}");
    assert!(huge.stderr.contains("huge.txt` line 2"), "{huge}");
    assert!(huge.stderr.contains("not a finite number"), "{huge}");
}

/// A report of 30 tests around 200–500 ms (±3%, deterministic), with `slow` (name → factor)
/// applied on top.
fn report(dir: &Path, run: u32, slow: &[(&str, f64)]) {
    report_of(dir, run, slow, 30);
}

/// [`report`] with `count` numbered tests instead of 30.
fn report_of(dir: &Path, run: u32, slow: &[(&str, f64)], count: usize) {
    let mut xml = String::from("<testsuite name=\"pytest\">\n");
    let mut names: Vec<String> = (0..count).map(|i| format!("test_{i}")).collect();
    names.push("test_export".into());
    names.push(HOSTILE.into());
    for (i, name) in names.iter().enumerate() {
        let base = 200.0 + 10.0 * i as f64;
        let wobble = 1.0
            + 0.03 * ((((run as usize + 3) * (i + 7) * 2654435761) % 1000) as f64 / 500.0 - 1.0);
        let factor = slow
            .iter()
            .find(|(n, _)| n == name)
            .map_or(1.0, |(_, f)| *f);
        let escaped = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\u{1b}', "&#27;");
        xml.push_str(&format!(
            "<testcase classname=\"tests.test_io\" name=\"{escaped}\" file=\"tests/test_io.py\" time=\"{:.3}\"/>\n",
            base * wobble * factor / 1000.0
        ));
    }
    xml.push_str("</testsuite>\n");
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
}

fn commit(run: u32) -> String {
    format!(
        "{:012x}{}",
        0xabc0_0000_u64 + u64::from(run),
        "0".repeat(28)
    )
}

/// `omen ci` as default-branch run `run`; returns the job summary it wrote.
fn ci_main(dir: &Path, run_no: u32) -> String {
    let summary = dir.join(format!("summary-{run_no}.md"));
    let out = run(omen_ci(dir)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args([
            "--branch",
            "main",
            "--default-branch",
            "main",
            "--job",
            "test",
        ])
        .args(["--run-id", &run_no.to_string(), "--commit", &commit(run_no)])
        .args([
            "--timestamp",
            &format!("2026-03-{:02}T{:02}:00:00Z", 1 + run_no / 24, run_no % 24),
        ]));
    out.code(0);
    assert!(!out.stderr.contains("not analysed"), "{out}");
    std::fs::read_to_string(&summary).unwrap_or_default()
}

#[test]
fn a_slowdown_on_the_default_branch_is_found_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut found_at = None;
    for r in 0..40 {
        // test_export becomes 60% slower from run 25 on (its commit is the culprit).
        let slow: &[(&str, f64)] = if r >= 25 {
            &[("test_export", 1.6)]
        } else {
            &[]
        };
        report(dir.path(), r, slow);
        let summary = ci_main(dir.path(), r);
        if summary.contains("Duration changes on the default branch") && found_at.is_none() {
            found_at = Some((r, summary));
        }
    }
    let (r, summary) = found_at.unwrap_or_else(|| panic!("no change reported in 40 runs"));
    // Found within five runs of the change, in the summary of the run that found it.
    assert_eq!(r, 29, "found at run {r}\n{summary}");
    assert!(
        summary.contains("tests/test\\_io.py::test\\_export"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("`{}`..`{}`", &commit(24)[..12], &commit(25)[..12])),
        "{summary}"
    );
    // `omen perf` lists it, once, at the culprit commit.
    let out = run(omen(dir.path()).args(["perf", "--db", "h.db", "--format", "json"]));
    out.code(0);
    let points = out.json()["change_points"].as_array().unwrap().clone();
    let export: Vec<_> = points
        .iter()
        .filter(|p| p["selector"] == "tests/test_io.py::test_export")
        .collect();
    assert_eq!(export.len(), 1, "{out}");
    assert_eq!(export[0]["commit"], commit(25), "{out}");
    assert_eq!(export[0]["previous_commit"], commit(24), "{out}");
    assert_eq!(export[0]["kind"], "regression");
    let rel = export[0]["relative"].as_f64().unwrap();
    assert!((rel - 0.6).abs() < 0.06, "{out}");
    // No other test changed.
    assert_eq!(
        points.iter().filter(|p| !p["selector"].is_null()).count(),
        1,
        "{out}"
    );
    let text = run(omen(dir.path()).args(["perf", "--db", "h.db"]));
    text.code(0);
    assert!(
        text.stdout
            .contains("tests/test_io.py::test_export  501 ms → 800 ms"),
        "{text}"
    );
    assert!(
        text.stdout.contains("(0000abc00018..0000abc00019)"),
        "{text}"
    );
}

/// `omen ci` on `dir`'s junit.xml into h.db, without deploy risk, never failing, saving the
/// comment it would post to `body`; the caller says which run it is.
fn ci_commenting(dir: &Path, body: &Path) -> std::process::Command {
    let mut cmd = omen_ci(dir);
    cmd.args(["--comment", "auto", "--fail-on", "never", "--comment-file"])
        .arg(body);
    cmd
}

/// `omen ci` as pull request 9's run; returns the comment it saved.
fn ci_pr(dir: &Path, run_no: u32) -> String {
    let body = dir.join(format!("comment-{run_no}.md"));
    let out = run(ci_commenting(dir, &body)
        .args([
            "--branch",
            "feature",
            "--default-branch",
            "main",
            "--job",
            "test",
        ])
        .args(["--pull-request", "9", "--run-id", &run_no.to_string()])
        .args([
            "--commit",
            &format!("{:040x}", 0xfeed_0000_u64 + u64::from(run_no)),
        ])
        .args(["--timestamp", "2026-03-05T00:00:00Z"]));
    out.code(0);
    std::fs::read_to_string(&body).unwrap_or_default()
}

#[test]
fn a_pull_request_that_slows_a_test_says_so_and_an_unchanged_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    for r in 0..30 {
        report(dir.path(), r, &[]);
        ci_main(dir.path(), r);
    }
    // Unchanged: nothing about durations (and, all passing, nothing to say at all).
    report(dir.path(), 100, &[]);
    let same = ci_pr(dir.path(), 100);
    assert!(!same.contains("slower"), "{same}");
    // The hostile test twice as slow.
    report(dir.path(), 101, &[(HOSTILE, 2.0)]);
    let slow = ci_pr(dir.path(), 101);
    assert!(
        slow.contains("#### 🐢 1 test slower than on the default branch"),
        "{slow}"
    );
    assert!(slow.contains("| +100% (+"), "{slow}");
    assert!(slow.contains("p < 0.001"), "{slow}");
    assert!(!slow.contains("<img"), "{slow}");
    assert!(!slow.contains('\u{1b}'), "{slow}");
    assert!(!slow.contains("@everyone"), "{slow}");
    assert!(
        !same.contains("Unusual run") && !slow.contains("Unusual run"),
        "{slow}"
    );
    // A run where a third of the suite was not collected: nothing failed, but it is unusual.
    report_of(dir.path(), 102, &[], 10);
    let short = ci_pr(dir.path(), 102);
    assert!(
        short.contains(
            "#### ⚠️ Unusual run (critical): -73% test time (3.06 s here, usually 11.36 s)"
        ),
        "{short}"
    );
    assert!(
        short.contains("| tests | 12 | 32 | 29 – 35 | drop |"),
        "{short}"
    );
    // Eight tests failing for eight different causes is unusual for a branch that never failed:
    // by failures, and by causes. Eight failing for one cause is unusual by failures only.
    let failing = |run: u32, message: &dyn Fn(usize) -> String| {
        report(dir.path(), run, &[]);
        let path = dir.path().join("junit.xml");
        let mut xml = std::fs::read_to_string(&path).unwrap();
        for i in 0..8 {
            let name = format!("name=\"test_{i}\" ");
            let at = xml.find(&name).unwrap();
            let end = at + xml[at..].find("/>").unwrap();
            xml.replace_range(
                end..end + 2,
                &format!("><failure message=\"{}\"/></testcase>", message(i)),
            );
        }
        std::fs::write(&path, xml).unwrap();
        ci_pr(dir.path(), run)
    };
    let causes = [
        "timeout",
        "KeyError",
        "refused",
        "disk",
        "TypeError",
        "404",
        "OOM",
        "EOF",
    ];
    let many = failing(103, &|i| format!("{} in step {i}", causes[i]));
    assert!(many.contains("Unusual run"), "{many}");
    assert!(many.contains("| failed | 8 | 0 |"), "{many}");
    assert!(many.contains("| failure causes | 8 | 0 |"), "{many}");
    let one = failing(104, &|_| "connection refused".to_owned());
    assert!(one.contains("| failed | 8 | 0 |"), "{one}");
    assert!(!one.contains("failure causes"), "{one}");
}

/// Day `day` counted from 2026-02-01, at 06:00 UTC.
fn date(day: u32) -> String {
    if day < 28 {
        format!("2026-02-{:02}T06:00:00Z", day + 1)
    } else {
        format!("2026-03-{:02}T06:00:00Z", day - 27)
    }
}

#[test]
fn omen_perf_gives_the_suite_time_s_trend_and_when_it_passes_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    // One default-branch run a day for 40 days in each of two jobs: `grows` gets 1% of its
    // first day's time slower every day, `flat` stays level (±3%).
    for day in 0..40u32 {
        for (job, growth) in [("grows", 0.01), ("flat", 0.0)] {
            let factor = 1.0 + growth * f64::from(day);
            let slow: Vec<(String, f64)> = (0..30)
                .map(|i| (format!("test_{i}"), factor))
                .chain([
                    ("test_export".to_owned(), factor),
                    (HOSTILE.to_owned(), factor),
                ])
                .collect();
            let slow: Vec<(&str, f64)> = slow.iter().map(|(n, f)| (n.as_str(), *f)).collect();
            report(dir.path(), day, &slow);
            let out = run(omen(dir.path())
                .args(["ingest", "junit.xml", "--db", "h.db", "--job", job])
                .args(["--branch", "main", "--default-branch", "main"])
                .args([
                    "--run-id",
                    &format!("{job}-{day}"),
                    "--commit",
                    &commit(day),
                ])
                .args(["--timestamp", &date(day)]));
            out.code(0);
        }
    }
    std::fs::write(
        dir.path().join("omen.toml"),
        "[perf]\nsuite_budget_minutes = 0.5\n",
    )
    .unwrap();
    let out = run(omen(dir.path()).args([
        "--config",
        "omen.toml",
        "perf",
        "--db",
        "h.db",
        "--format",
        "json",
    ]));
    out.code(0);
    let trends = out.json()["trends"].as_array().unwrap().clone();
    let job = |name: &str| {
        trends
            .iter()
            .find(|t| t["job"] == name)
            .unwrap_or_else(|| panic!("no trend for {name}\n{out}"))
            .clone()
    };
    let grows = job("grows");
    assert_eq!(grows["runs"], 40, "{out}");
    assert_eq!(grows["significant"], true, "{out}");
    // 1% of day 0's time a day is 30% a month of day 0's, 30/1.39 = 21.6% of day 39's level.
    let per_month = grows["per_month"].as_f64().unwrap();
    assert!((per_month - 0.216).abs() < 0.03, "{out}");
    let low = grows["per_month_low"].as_f64().unwrap();
    let high = grows["per_month_high"].as_f64().unwrap();
    assert!(low < per_month && per_month < high, "{out}");
    // The forecast agrees with the fit: (budget - level) / slope.
    let level = grows["level_ms"].as_f64().unwrap();
    assert_eq!(grows["budget_ms"], 30_000.0, "{out}");
    let days = grows["budget_in_days"].as_f64().unwrap();
    let expected = (30_000.0 - level) / (per_month * level / 30.0);
    assert!((days - expected).abs() < 1.0, "{days} vs {expected}\n{out}");
    let range = grows["budget_in_days_range"].as_array().unwrap();
    assert!(range[0].as_f64().unwrap() <= days && days <= range[1].as_f64().unwrap());
    let flat = job("flat");
    assert_eq!(flat["significant"], false, "{out}");
    assert!(flat["budget_in_days"].is_null(), "{out}");
    // Per test: the ten fastest-growing, all of job `grows` (each adds 1% of its first day's
    // time a day: 2 to 5 ms), none of `flat` (±3% noise), the slowest test first.
    let tests = out.json()["test_trends"].as_array().unwrap().clone();
    assert_eq!(tests.len(), 10, "{out}");
    assert!(tests.iter().all(|t| t["job"] == "grows"), "{out}");
    assert!(
        tests[0]["selector"].as_str().unwrap().contains("img src"),
        "{out}"
    );
    assert_eq!(
        tests[1]["selector"], "tests/test_io.py::test_export",
        "{out}"
    );
    for t in &tests {
        let m = t["per_month"].as_f64().unwrap();
        assert!((m - 0.216).abs() < 0.04, "{t}");
        assert!(t["per_month_low"].as_f64().unwrap() > 0.0, "{t}");
    }
    // 510 ms on day 0, 1% of it a day: about 153 ms a month.
    let ms = tests[0]["ms_per_month"].as_f64().unwrap();
    assert!((ms - 153.0).abs() < 20.0, "{out}");
    let text = run(omen(dir.path()).args(["--config", "omen.toml", "perf", "--db", "h.db"]));
    text.code(0);
    assert!(text.stdout.contains("suite time (job `grows`): "), "{text}");
    assert!(
        text.stdout
            .contains("tests/test_io.py::test_export (job `grows`): "),
        "{text}"
    );
    assert!(!text.stdout.contains('\u{1b}'), "{text}");
    assert!(text.stdout.contains("a month ("), "{text}");
    assert!(
        text.stdout
            .contains("; at this rate it passes 0.5 min in about"),
        "{text}"
    );
    assert!(
        text.stdout.contains("suite time (job `flat`): ")
            && text.stdout.contains("no significant trend"),
        "{text}"
    );
}

#[test]
fn the_summary_s_level_line_steps_where_the_suite_time_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut summary = String::new();
    for r in 0..20u32 {
        // Every test twice as slow from run 10 on: the suite goes from about 11 s to 23 s.
        let factor = if r >= 10 { 2.0 } else { 1.0 };
        let names: Vec<String> = (0..30)
            .map(|i| format!("test_{i}"))
            .chain(["test_export".to_owned(), HOSTILE.to_owned()])
            .collect();
        let slow: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), factor)).collect();
        report(dir.path(), r, &slow);
        summary = ci_main(dir.path(), r);
    }
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("line [") && !l.contains("100.0"))
        .unwrap_or_else(|| panic!("no level line\n{summary}"));
    let levels: Vec<f64> = line
        .trim()
        .trim_start_matches("line [")
        .trim_end_matches(']')
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(levels.len(), 20, "{line}");
    // One level before run 10 and one from it on, twice as high.
    assert!(levels[..10].iter().all(|l| *l == levels[0]), "{line}");
    assert!(levels[10..].iter().all(|l| *l == levels[10]), "{line}");
    assert!((levels[10] / levels[0] - 2.0).abs() < 0.1, "{line}");
}

#[test]
fn omen_perf_finds_uneven_shards_and_suggests_an_even_split() {
    let dir = tempfile::tempdir().unwrap();
    // Three shards of one CI run: shard 1 got the slow tests (3 × 20 s), shards 2 and 3 ten
    // 1-second tests each. A job without an index in its name is not a shard.
    let shard = |path: &str, tests: &[(String, f64)]| {
        let mut xml = String::from("<testsuite name=\"pytest\">\n");
        for (name, secs) in tests {
            xml.push_str(&format!(
                "<testcase classname=\"tests.test_s\" name=\"{name}\" file=\"tests/test_s.py\" time=\"{secs}\"/>\n"
            ));
        }
        xml.push_str("</testsuite>\n");
        std::fs::write(dir.path().join(path), xml).unwrap();
    };
    shard(
        "s1.xml",
        &(0..3)
            .map(|i| (format!("test_slow_{i}"), 20.0))
            .collect::<Vec<_>>(),
    );
    shard(
        "s2.xml",
        &(0..10)
            .map(|i| (format!("test_a_{i}"), 1.0))
            .collect::<Vec<_>>(),
    );
    shard(
        "s3.xml",
        &(0..10)
            .map(|i| (format!("test_b_{i}"), 1.0))
            .collect::<Vec<_>>(),
    );
    shard("solo.xml", &[("test_solo".to_owned(), 5.0)]);
    for (file, job) in [
        ("s1.xml", "test (1/3)"),
        ("s2.xml", "test (2/3)"),
        ("s3.xml", "test (3/3)"),
        ("solo.xml", "lint"),
    ] {
        let out = run(omen(dir.path())
            .args(["ingest", file, "--db", "h.db", "--job", job])
            .args(["--branch", "main", "--default-branch", "main"])
            .args(["--run-id", "77", "--commit", &commit(1)]));
        out.code(0);
    }
    let out = run(omen(dir.path()).args(["perf", "--db", "h.db", "--format", "json"]));
    out.code(0);
    let shards = out.json()["shards"].as_array().unwrap().clone();
    assert_eq!(shards.len(), 1, "{out}");
    let g = &shards[0];
    assert_eq!(g["group"], "test", "{out}");
    assert_eq!(g["run_id"], "77", "{out}");
    let jobs: Vec<(String, u64, f64)> = g["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["job"].as_str().unwrap().to_owned(),
                j["tests"].as_u64().unwrap(),
                j["ms"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        vec![
            ("test (1/3)".to_owned(), 3, 60_000.0),
            ("test (2/3)".to_owned(), 10, 10_000.0),
            ("test (3/3)".to_owned(), 10, 10_000.0),
        ],
        "{out}"
    );
    assert_eq!(g["slowest_ms"], 60_000.0, "{out}");
    assert_eq!(g["imbalance"], 2.25, "{out}");
    // 80 s over three shards: one slow test each, the 1 s tests filling up to 27/27/26 s.
    assert_eq!(g["suggested_slowest_ms"], 27_000.0, "{out}");
    let suggested = g["suggested"].as_array().unwrap();
    assert_eq!(suggested.len(), 3);
    let mut all: Vec<&str> = suggested
        .iter()
        .flat_map(|s| s.as_array().unwrap().iter().map(|t| t.as_str().unwrap()))
        .collect();
    all.sort_unstable();
    assert_eq!(all.len(), 23, "{out}");
    assert!(all.contains(&"tests/test_s.py::test_slow_0"), "{out}");
    for s in suggested {
        let slow = s
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t.as_str().unwrap().contains("test_slow_"))
            .count();
        assert_eq!(slow, 1, "each shard gets one slow test\n{out}");
    }
    let text = run(omen(dir.path()).args(["perf", "--db", "h.db"]));
    text.code(0);
    assert!(
        text.stdout.contains("shards of `test` (3 jobs, commit 0000abc00001): the slowest takes 1.0 min, 2.25× the mean; split by duration, longest test first, the slowest would take 0.5 min (1.01×"),
        "{text}"
    );
    // A shard's `omen ci` says so in the job summary; a job that is not a shard does not.
    for (job, shown) in [("test (2/3)", true), ("lint", false)] {
        let summary = dir.path().join(format!("summary-{shown}.md"));
        let out = run(omen(dir.path())
            .args(["ci", "--reports", "s2.xml", "--db", "h.db", "--risk", "off"])
            .args(["--comment", "off", "--job", job, "--branch", "feature"])
            .args([
                "--default-branch",
                "main",
                "--pull-request",
                "5",
                "--run-id",
                "78",
            ])
            .env("GITHUB_STEP_SUMMARY", &summary));
        out.code(0);
        let text = std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(
            text.contains("Shards of test (3 jobs, the default branch's newest sharded run): the slowest takes "),
            shown,
            "{job}: {text}"
        );
        if shown {
            assert!(text.contains(", 2.25× the mean. Split by duration, longest test first, the slowest would take "), "{text}");
            assert!(
                text.contains(" (1.01×); `omen perf --format json` lists that split."),
                "{text}"
            );
        }
    }
}

/// `omen ingest` as default-branch run `run_no`, with `extra` arguments: stored, never analysed.
fn ingest_main(dir: &Path, run_no: u32, extra: &[&str]) {
    let out = run(omen(dir)
        .args(["ingest", "junit.xml", "--db", "h.db", "--job", "test"])
        .args(["--branch", "main", "--default-branch", "main"])
        .args(["--run-id", &run_no.to_string(), "--commit", &commit(run_no)])
        .args(extra)
        .args([
            "--timestamp",
            &format!("2026-03-{:02}T{:02}:00:00Z", 1 + run_no / 24, run_no % 24),
        ]));
    out.code(0);
}

#[test]
fn omen_perf_scan_finds_the_changes_of_a_history_stored_without_analysis() {
    let dir = tempfile::tempdir().unwrap();
    // `omen ingest` stores runs without looking for changes (as a history merged from shards
    // would be): test_export is 60% slower from run 25 on, the hostile test 50% faster from 15.
    for r in 0..40 {
        let mut slow: Vec<(&str, f64)> = Vec::new();
        if r >= 25 {
            slow.push(("test_export", 1.6));
        }
        if r >= 15 {
            slow.push((HOSTILE, 0.5));
        }
        report(dir.path(), r, &slow);
        ingest_main(dir.path(), r, &[]);
    }
    let listed = run(omen(dir.path()).args(["perf", "--db", "h.db", "--format", "json"]));
    listed.code(0);
    assert_eq!(
        listed.json()["change_points"],
        serde_json::json!([]),
        "{listed}"
    );

    let out = run(omen(dir.path()).args(["perf", "scan", "--db", "h.db", "--format", "json"]));
    out.code(0);
    let j = out.json();
    assert_eq!(j["version"], 1, "{out}");
    assert_eq!(j["jobs"], 1, "{out}");
    assert_eq!(j["runs"], 40, "{out}");
    // 32 tests and the suite's total.
    assert_eq!(j["series"], 33, "{out}");
    let new = j["new"].as_array().unwrap().clone();
    let by_test = |name: &str| -> Vec<serde_json::Value> {
        new.iter()
            .filter(|p| p["selector"] == format!("tests/test_io.py::{name}"))
            .cloned()
            .collect()
    };
    let export = by_test("test_export");
    assert_eq!(export.len(), 1, "{out}");
    assert_eq!(export[0]["commit"], commit(25), "{out}");
    assert_eq!(export[0]["previous_commit"], commit(24), "{out}");
    assert_eq!(export[0]["kind"], "regression", "{out}");
    let hostile = by_test(HOSTILE);
    assert_eq!(hostile.len(), 1, "{out}");
    assert_eq!(hostile[0]["commit"], commit(15), "{out}");
    assert_eq!(hostile[0]["kind"], "improvement", "{out}");
    // No other test changed; the suite total may (two of 32 tests moved).
    assert_eq!(
        new.iter().filter(|p| !p["selector"].is_null()).count(),
        2,
        "{out}"
    );
    assert_eq!(j["found"].as_u64().unwrap() as usize, new.len(), "{out}");

    // Recorded: `omen perf` lists them; a second scan finds the same and records nothing.
    let listed = run(omen(dir.path()).args(["perf", "--db", "h.db", "--format", "json"]));
    assert_eq!(
        listed.json()["change_points"].as_array().unwrap().len(),
        new.len(),
        "{listed}"
    );
    let again = run(omen(dir.path()).args(["perf", "scan", "--db", "h.db"]));
    again.code(0);
    assert!(
        again.stdout.contains(&format!(
            "searched 33 series over 40 default-branch runs in 1 job: {} change point{}, 0 new",
            new.len(),
            if new.len() == 1 { "" } else { "s" }
        )),
        "{again}"
    );
    // The runs merged into another database carry no change points; scanned in text there, the
    // hostile name reaches the terminal escaped.
    let merged = run(omen(dir.path()).args(["merge", "--db", "merged.db", "h.db"]));
    merged.code(0);
    let text = run(omen(dir.path()).args(["perf", "scan", "--db", "merged.db"]));
    text.code(0);
    assert!(
        text.stdout.contains(&format!("{} new", new.len())),
        "{text}"
    );
    assert!(text.stdout.contains("test_export"), "{text}");
    assert!(!text.stdout.contains('\u{1b}'), "{text}");
    // No database: said so, none created, and the step fails only in strict mode.
    let missing = run(omen(dir.path()).args(["perf", "scan", "--db", "missing.db"]));
    missing.code(0);
    assert!(
        missing
            .stderr
            .contains("no history database at `missing.db`"),
        "{missing}"
    );
    assert!(!dir.path().join("missing.db").exists());
    let strict = run(omen(dir.path()).args(["--strict", "perf", "scan", "--db", "missing.db"]));
    assert_ne!(strict.code, 0, "{strict}");
}

/// Thirty default-branch runs stored by `omen ingest`, each job having waited `10 + r % 5`
/// seconds for a runner.
fn queued_history(dir: &Path) {
    for r in 0..30u32 {
        report(dir, r, &[]);
        ingest_main(dir, r, &["--queue-seconds", &(10 + r % 5).to_string()]);
    }
}

#[test]
fn a_job_that_waited_unusually_long_for_a_runner_on_github_says_so() {
    use omen_tests::fake_github::{FakeGitHub, PR, REPO, TOKEN};
    let dir = tempfile::tempdir().unwrap();
    queued_history(dir.path());
    let gh = FakeGitHub::start();
    // Another job of the run, and this one: queued 12 s, then 15 minutes.
    gh.seed_job(
        "500",
        1,
        "runner-9",
        "completed",
        "2026-03-05T00:00:00Z",
        "2026-03-05T00:00:02Z",
    );
    gh.seed_job(
        "500",
        1,
        "runner-1",
        "in_progress",
        "2026-03-05T00:00:00Z",
        "2026-03-05T00:00:12Z",
    );
    gh.seed_job(
        "501",
        1,
        "runner-1",
        "in_progress",
        "2026-03-05T01:00:00Z",
        "2026-03-05T01:15:00Z",
    );
    let ci = |run_id: &str| -> String {
        report(dir.path(), 40, &[]);
        let body = dir.path().join(format!("comment-{run_id}.md"));
        let out = run(ci_commenting(dir.path(), &body)
            .args(["--branch", "feature", "--default-branch", "main"])
            .args([
                "--pull-request",
                &PR.to_string(),
                "--commit",
                &format!("{run_id:0>40}"),
            ])
            .args(["--timestamp", "2026-03-05T02:00:00Z"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", REPO)
            .env("GITHUB_API_URL", &gh.url)
            .env("GITHUB_RUN_ID", run_id)
            .env("GITHUB_RUN_ATTEMPT", "1")
            .env("GITHUB_JOB", "test")
            .env("RUNNER_NAME", "runner-1"));
        out.code(0);
        assert!(
            !out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN),
            "{out}"
        );
        gh.comments()
            .last()
            .map(|c| c.1.clone())
            .unwrap_or_default()
    };
    let ordinary = ci("500");
    assert!(!ordinary.contains("Unusual run"), "{ordinary}");
    let waited = ci("501");
    assert!(
        waited.contains("#### ⚠️ Unusual run (critical): +")
            && waited.contains("queue time (900.00 s here, usually 12.00 s)"),
        "{waited}"
    );
    assert!(
        waited.contains("| queue time | 900.00 s | 12.00 s |"),
        "{waited}"
    );
    // The jobs were read with the token, for this run's attempt.
    let reads: Vec<_> = gh
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("/actions/runs/"))
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(
        reads[1]
            .path
            .starts_with(&format!("/repos/{REPO}/actions/runs/501/attempts/1/jobs"))
    );
    assert_eq!(
        reads[1].auth.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[test]
fn a_job_that_waited_unusually_long_for_a_runner_on_gitlab_says_so() {
    use omen_tests::fake_gitlab::{FakeGitLab, JOB_TOKEN, MR, PROJECT_ID};
    let dir = tempfile::tempdir().unwrap();
    queued_history(dir.path());
    let gl = FakeGitLab::start();
    let ci = |pipeline: u32| -> String {
        report(dir.path(), 40, &[]);
        let body = dir.path().join(format!("comment-{pipeline}.md"));
        let out = run(ci_commenting(dir.path(), &body)
            .args(["--timestamp", "2026-03-05T02:00:00Z"])
            .env("GITLAB_CI", "true")
            .env("CI_API_V4_URL", &gl.api_url)
            .env("CI_PROJECT_ID", PROJECT_ID.to_string())
            .env("CI_PIPELINE_ID", pipeline.to_string())
            .env("CI_JOB_ID", (1000 + pipeline).to_string())
            .env("CI_JOB_NAME", "test")
            .env("CI_COMMIT_SHA", format!("{pipeline:0>40}"))
            .env("CI_MERGE_REQUEST_IID", MR.to_string())
            .env("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature")
            .env("CI_DEFAULT_BRANCH", "main")
            .env("CI_JOB_TOKEN", JOB_TOKEN));
        out.code(0);
        assert!(
            !out.stdout.contains(JOB_TOKEN) && !out.stderr.contains(JOB_TOKEN),
            "{out}"
        );
        std::fs::read_to_string(&body).unwrap_or_default()
    };
    gl.set_queued(11.5);
    let ordinary = ci(600);
    assert!(!ordinary.contains("Unusual run"), "{ordinary}");
    gl.set_queued(900.0);
    let waited = ci(601);
    assert!(
        waited.contains("| queue time | 900.00 s | 12.00 s |"),
        "{waited}"
    );
    let reads: Vec<_> = gl
        .seen()
        .into_iter()
        .filter(|s| s.path == "/api/v4/job")
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(
        reads
            .iter()
            .all(|s| s.credential == "job" && s.status == 200),
        "{reads:?}"
    );
}
