//! Rendering tests. Snapshots of what people read are files in `src/snapshots/`; run with
//! `OMEN_UPDATE_SNAPSHOTS=1` to rewrite them after an intended change, then review the diff.

use super::*;

const EVIL: &str = "<img src=x onerror=alert(1)> @everyone [x](javascript:alert(1))";

fn report() -> CiReport {
    CiReport {
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        default_branch: Some("main".into()),
        totals: Totals {
            tests: 812,
            passed: 790,
            failed: 4,
            skipped: 14,
            flaky: 5,
        },
        base: Some(Totals {
            tests: 810,
            passed: 796,
            failed: 0,
            skipped: 14,
            flaky: 2,
        }),
        failures: vec![
            FailureRow {
                name: "tests/test_api.py::test_create_order".into(),
                file: Some("tests/test_api.py".into()),
                line: Some(42),
                message: Some("AssertionError: assert 500 == 201".into()),
                class: FailureClass::New,
            },
            FailureRow {
                name: EVIL.into(),
                file: Some("tests/evil, file:1.py".into()),
                line: None,
                message: Some(format!("{EVIL}\nsecond line")),
                class: FailureClass::New,
            },
            FailureRow {
                name: "tests/test_db.py::test_migrate".into(),
                file: None,
                line: None,
                message: Some("relation does not exist".into()),
                class: FailureClass::FailingOnDefault {
                    since: Some("fedcba9876543210".into()),
                },
            },
            FailureRow {
                name: "tests/test_cache.py::test_ttl".into(),
                file: Some("tests/test_cache.py".into()),
                line: Some(7),
                message: Some("TimeoutError".into()),
                class: FailureClass::KnownFlaky {
                    score: 0.071,
                    evidence: "failed and passed on the same commit 3 times in 14 days".into(),
                },
            },
            FailureRow {
                name: "tests/test_net.py::test_dns".into(),
                file: None,
                line: None,
                message: None,
                class: FailureClass::Quarantined {
                    mode: "run-ignore".into(),
                },
            },
        ],
        quarantine_changes: vec![omen_core::quarantine::QuarantineChange {
            kind: omen_core::quarantine::ChangeKind::Added,
            key: "tests.test_cache::test_ttl".into(),
            selector: "tests/test_cache.py::test_ttl".into(),
        }],
        perf: PerfSection {
            slow: vec![
                SlowRow {
                    name: "tests/test_api.py::test_bulk".into(),
                    baseline_ms: 2_100.0,
                    current_ms: 3_045.0,
                    p_value: 0.0000012,
                },
                SlowRow {
                    name: format!("tests/test_x.py::test_{EVIL}"),
                    baseline_ms: 180.0,
                    current_ms: 260.0,
                    p_value: 0.004,
                },
            ],
            slow_total: 2,
            together: false,
            changes: vec![
                ChangeRow {
                    name: Some(format!("tests/test_y.py::test_{EVIL}")),
                    before_ms: 400.0,
                    after_ms: 520.0,
                    commit: Some("c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00".into()),
                    previous_commit: Some("beef0000beef0000beef0000beef0000beef0000".into()),
                    at: 1_780_000_000,
                    p_value: 0.00001,
                },
                ChangeRow {
                    name: None,
                    before_ms: 312_000.0,
                    after_ms: 290_000.0,
                    commit: Some("`](javascript:x)".into()),
                    previous_commit: None,
                    at: 1_780_003_600,
                    p_value: 0.0002,
                },
            ],
            slowest: vec![
                TimeRow {
                    name: "tests/test_api.py::test_bulk".into(),
                    ms: 3_045.0,
                },
                TimeRow {
                    name: format!("tests/test_z.py::test_{EVIL}"),
                    ms: 1_200.0,
                },
            ],
            total_ms: 330_500.0,
            shards: Some(ShardRow {
                group: format!("test {EVIL}"),
                jobs: 4,
                slowest_ms: 252_000.0,
                imbalance: 1.62,
                suggested_slowest_ms: 162_000.0,
                suggested_imbalance: 1.01,
            }),
            unusual: Some(UnusualRun {
                severity: "critical",
                score: 0.71,
                metrics: vec![UnusualMetric {
                    name: "tests",
                    ms: false,
                    actual: 487.0,
                    expected: 812.0,
                    range: (788.0, 836.0),
                    kind: "drop",
                }],
            }),
        },
        trend: vec![
            TrendPoint {
                commit: "aaaaaaaaaaaa".into(),
                pass_rate: 99.2,
                duration_s: 312.0,
                level_s: Some(312.0),
            },
            TrendPoint {
                commit: "bbbbbbbbbbbb".into(),
                pass_rate: 98.7,
                duration_s: 330.5,
                level_s: Some(290.0),
            },
        ],
        unusable: vec![],
        summary_url: Some("https://github.com/o/r/actions/runs/1".into()),
        risk: Some(RiskSection {
            level: omen_core::risk_level::RiskLevel::High,
            probability: 0.62,
            percentile: 91.0,
            model: "repository (logistic+forest)".into(),
            factors: vec![
                "+ touches 14 files in 5 directories".into(),
                "− the author has changed these files 120 times".into(),
            ],
            hints: vec!["adds 2 TODO/FIXME lines".into()],
            signals: vec!["2 authors in this change".into()],
            missing: vec![],
            gate: Some((0.5, GateVerdict::Blocked)),
            accept_label: "omen:accept-risk".into(),
        }),
        causes: vec![
            CauseRow {
                headline: format!("{EVIL} <*>"),
                failures: vec![0, 1],
                kind: Some("infrastructure: connection refused or reset".into()),
                known: Some(Seen {
                    runs: 14,
                    since: 1_790_000_000,
                    on_default: true,
                }),
            },
            CauseRow {
                headline: "relation does not exist".into(),
                failures: vec![2],
                kind: None,
                known: Some(Seen {
                    runs: 0,
                    since: 1_790_000_000,
                    on_default: false,
                }),
            },
        ],
        log: None,
        systemic: vec![SystemicRow {
            failures: vec![0, 1],
            size: 12,
            together: 9,
            any: 10,
            runs: 100,
        }],
    }
}

/// A run whose tests passed and whose log says why the job failed, with hostile text.
fn log_report() -> CiReport {
    let mut r = report();
    r.failures.clear();
    r.causes.clear();
    r.systemic.clear();
    r.risk = None;
    r.log = Some(LogCause {
        path: format!("build-{EVIL}.log"),
        line: 1234,
        headline: format!("error[E0425]: cannot find value `x` {EVIL}"),
        kind: Some("build: compile error".into()),
        known: Some(Seen {
            runs: 0,
            since: 1_790_000_000,
            on_default: false,
        }),
        excerpt: vec![
            "   Compiling app v0.1.0".into(),
            format!("error[E0425]: cannot find value `x` {EVIL}"),
            "```".into(),
            "::error::injected \u{1b}[2J".into(),
            "</details><img src=x>".into(),
        ],
    });
    r
}

fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/snapshots")
        .join(name);
    if std::env::var_os("OMEN_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set OMEN_UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "snapshot {name} changed; review and update with OMEN_UPDATE_SNAPSHOTS=1"
    );
}

fn assert_inert(text: &str) {
    assert!(!text.contains("<img"), "raw HTML survived:\n{text}");
    assert!(!text.contains("@everyone"), "a mention survived:\n{text}");
    assert!(!text.contains("](javascript"), "a link survived:\n{text}");
    assert!(
        !text.contains("javascript:"),
        "a javascript: scheme survived:\n{text}"
    );
}

#[test]
fn comment_snapshot_and_untrusted_text_is_inert() {
    let c = comment(&report());
    assert!(c.starts_with(MARKER));
    assert_inert(&c);
    assert!(c.contains("### Omen: 5 tests failed — 2 new, 1 also failing on the default branch, 1 known flaky, excused, 1 quarantined"));
    assert!(c.contains("790 passed (-6)"));
    snapshot("comment.md", &c);
}

#[test]
fn a_log_cause_is_its_own_section_and_its_text_stays_inert() {
    let r = log_report();
    let c = comment(&r);
    assert!(
        c.contains("### Omen: the job failed outside the tests (build) — 790 tests passed"),
        "{c}"
    );
    assert!(
        c.contains("#### 🪵 The job failed outside the tests"),
        "{c}"
    );
    assert!(c.contains("build: compile error · new"), "{c}");
    // The excerpt is in a code block its own backticks cannot close.
    assert!(c.contains("````text\n"), "{c}");
    assert!(!c.contains('\u{1b}'), "{c}");
    let outside_code: String = c.split("````").step_by(2).collect();
    assert_inert(&outside_code);
    assert!(!outside_code.contains("</details><img"), "{c}");
    snapshot("comment-log.md", &c);
    let page = html::page(&r, &[]);
    assert!(page.contains("<h2 id=\"log\">"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;/details&gt;&lt;img src=x&gt;"), "{page}");
}

#[test]
fn summary_snapshot_has_the_trend() {
    let s = summary(&report());
    assert_inert(&s);
    assert!(s.contains("```mermaid\nxychart-beta"));
    assert!(!s.contains(MARKER));
    snapshot("summary.md", &s);
}

#[test]
fn annotations_snapshot_escapes_and_caps() {
    // Annotations are plain text in GitHub's UI (no HTML, no Markdown, no notifications); what a
    // hostile name must not do there is break out of the workflow command.
    let lines = annotations(&report());
    for line in &lines {
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        let rest = line
            .strip_prefix("::error ")
            .or_else(|| line.strip_prefix("::warning "))
            .unwrap();
        let (props, _message) = rest.split_once("::").unwrap();
        for prop in props.split(',') {
            let (key, value) = prop.split_once('=').unwrap();
            assert!(["file", "line", "title"].contains(&key), "{line}");
            assert!(
                !value.contains(':') && !value.contains(','),
                "unescaped property in {line}"
            );
        }
    }
    snapshot("annotations.txt", &lines.join("\n"));
    let mut many = report();
    many.failures = (0..30)
        .map(|i| FailureRow {
            name: format!("t{i}"),
            file: Some("f.py".into()),
            line: Some(i),
            message: None,
            class: if i % 2 == 0 {
                FailureClass::New
            } else {
                FailureClass::KnownFlaky {
                    score: 0.1,
                    evidence: String::new(),
                }
            },
        })
        .collect();
    let a = annotations(&many);
    assert_eq!(
        a.iter().filter(|l| l.starts_with("::error")).count(),
        ANNOTATION_CAP
    );
    assert_eq!(
        a.iter().filter(|l| l.starts_with("::warning")).count(),
        ANNOTATION_CAP
    );
}

#[test]
fn an_oversized_comment_is_cut_cleanly_under_the_limit() {
    let mut big = report();
    big.failures = (0..5_000)
        .map(|i| FailureRow {
            name: format!("tests/test_generated.py::test_case_{i}[{}]", "x".repeat(40)),
            file: Some("tests/test_generated.py".into()),
            line: Some(i),
            message: Some("AssertionError: ".to_owned() + &"y".repeat(150)),
            class: FailureClass::New,
        })
        .collect();
    let c = comment(&big);
    assert!(
        c.chars().count() <= COMMENT_LIMIT,
        "{} chars",
        c.chars().count()
    );
    assert!(c.starts_with(MARKER));
    assert!(c.contains("5000 new"));
    assert!(
        c.contains("more in the full report"),
        "the cut says where the rest is"
    );
    assert!(
        c.trim_end().ends_with("</sub>"),
        "cut at a row boundary, not mid-markup"
    );
}

#[test]
fn a_clean_run_says_so() {
    let mut clean = report();
    clean.failures.clear();
    clean.totals.failed = 0;
    assert!(comment(&clean).contains("### Omen: all 812 tests passed"));
    assert_eq!(clean.unexcused(), 0);
    assert_eq!(report().unexcused(), 3);
}

#[test]
fn only_plain_https_links() {
    let mut r = report();
    r.summary_url = Some("javascript:alert(1)".into());
    assert!(!comment(&r).contains("full report]("));
    r.summary_url = Some("https://x/y) [a](b".into());
    assert!(!comment(&r).contains("full report]("));
}

#[test]
fn risk_section_shows_level_factors_and_how_to_override_a_blocked_gate() {
    let r = report();
    let c = comment(&r);
    assert!(
        c.contains("Deploy risk: HIGH — 62%, riskier than 91% of past changes"),
        "{c}"
    );
    assert!(c.contains("**Gate: blocked** (threshold 50%)"), "{c}");
    assert!(c.contains("`omen:accept-risk`"), "{c}");
    // Escaped Markdown: renders as "+ touches 14 files in 5 directories".
    assert!(c.contains("- \\+ touches 14 files in 5 directories"), "{c}");
    assert!(c.contains("hint: adds 2 TODO/FIXME lines"), "{c}");
    assert!(r.risk.as_ref().unwrap().is_notable());
    // Accepted: no block, and a LOW passing change is not worth a comment on its own.
    let mut low = r.risk.clone().unwrap();
    low.level = omen_core::risk_level::RiskLevel::Low;
    low.gate = Some((0.5, GateVerdict::Passes));
    assert!(!low.is_notable());
    low.gate = Some((0.5, GateVerdict::Accepted));
    let mut r2 = report();
    r2.risk = Some(low);
    let c2 = comment(&r2);
    assert!(c2.contains("risk accepted by a reviewer"), "{c2}");
    assert!(!c2.contains("Gate: blocked"), "{c2}");
}

#[test]
fn risk_text_is_escaped() {
    let mut r = report();
    let risk = r.risk.as_mut().unwrap();
    risk.factors = vec!["+ <img src=x onerror=alert(1)> [x](javascript:y)".into()];
    let c = comment(&r);
    assert!(!c.contains("<img"), "{c}");
    assert!(!c.contains("](javascript:"), "{c}");
}

#[test]
fn one_test_is_singular() {
    let mut one = report();
    one.failures.clear();
    one.base = None;
    one.totals = Totals {
        tests: 1,
        passed: 1,
        ..Totals::default()
    };
    let c = comment(&one);
    assert!(c.contains("### Omen: the 1 test passed"), "{c}");
    assert!(c.contains("**1 test**: 1 passed"), "{c}");
}

#[test]
fn a_quarantine_proposal_lists_each_change_with_its_evidence_escaped() {
    use omen_core::quarantine::{ChangeKind, QuarantineChange};
    let changes = [
        QuarantineChange {
            kind: ChangeKind::Added,
            key: "m::t".into(),
            selector: "tests/m.py::t[<b>|x]".into(),
        },
        QuarantineChange {
            kind: ChangeKind::Released,
            key: "m::u".into(),
            selector: "tests/m.py::u".into(),
        },
    ];
    let file = omen_metadata::quarantine::QuarantineFile::parse(
        r#"{"version": 1, "tests": [{"id": "m::t", "selector": "tests/m.py::t[<b>|x]", "runner": "pytest",
            "classname": "m", "name": "t", "reason": "flaky", "evidence": "failed and passed on the same commit 2 times",
            "added": "2026-01-01T00:00:00Z", "expires": "2099-01-01T00:00:00Z", "mode": "run-ignore",
            "source": "auto", "auto_release": true}]}"#,
    )
    .unwrap();
    let body = crate::quarantine_proposal(&changes, Some(&file), Some("0123456789abcdef"));
    assert!(body.contains("commit `0123456789`"), "{body}");
    assert!(body.contains("| added | "), "{body}");
    assert!(
        body.contains("failed and passed on the same commit 2 times"),
        "{body}"
    );
    assert!(
        body.contains("| released after clean runs | tests/m.py::u |  |"),
        "{body}"
    );
    assert!(!body.contains("<b>"), "untrusted names are escaped\n{body}");
}

#[test]
fn code_quality_issues_are_one_plain_line_each_stable_and_capped() {
    use omen_metadata::code_quality::Severity;
    let mut r = report();
    r.failures.push(FailureRow {
        name: "tests/test_x.py::test_y".into(),
        file: Some("tests/test_x.py".into()),
        line: None,
        message: Some("line one\n::error::forged\u{1b}[2J".into()),
        class: FailureClass::KnownFlaky {
            score: 0.2,
            evidence: String::new(),
        },
    });
    let issues = code_quality(&r);
    // Failures without a file (the default-branch one) have no place in the diff.
    let places: Vec<_> = issues
        .iter()
        .map(|i| (i.severity, i.location.path.as_str(), i.location.lines.begin))
        .collect();
    assert_eq!(
        places,
        [
            (Severity::Major, "tests/test_api.py", 42),
            (Severity::Major, "tests/evil, file:1.py", 1),
            (Severity::Minor, "tests/test_cache.py", 7),
            (Severity::Minor, "tests/test_x.py", 1),
        ]
    );
    let flaky = &issues[3];
    assert_eq!(flaky.check_name, "omen/flaky-test");
    assert!(
        !flaky.description.contains('\n') && !flaky.description.contains('\u{1b}'),
        "{}",
        flaky.description
    );
    // The same test and check give the same fingerprint in every run; another test another one.
    assert_eq!(code_quality(&r)[3].fingerprint, flaky.fingerprint);
    assert_ne!(issues[0].fingerprint, issues[1].fingerprint);
    assert_eq!(flaky.fingerprint.len(), 16);
    let mut many = report();
    many.failures = (0..500)
        .map(|i| FailureRow {
            name: format!("t{i}"),
            file: Some("f.py".into()),
            line: Some(i),
            message: None,
            class: FailureClass::New,
        })
        .collect();
    assert_eq!(code_quality(&many).len(), CODE_QUALITY_CAP);
}

#[test]
fn metrics_are_openmetrics_gauges_with_numeric_values_and_an_eof() {
    let figures = Figures {
        tests: 120,
        failed: 3,
        skipped: 4,
        new_failures: 2,
        flaky: 1,
        quarantined: 0,
        unexcused: 2,
        risk: Some(0.73),
    };
    let text = metrics(&figures);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("\nomen_new_failures 2\n"), "{text}");
    assert!(text.contains("\nomen_deploy_risk 0.7300\n"), "{text}");
    let samples: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(samples.len(), 8, "{text}");
    for sample in samples {
        let (name, value) = sample.split_once(' ').unwrap();
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{sample}"
        );
        assert!(value.parse::<f64>().is_ok(), "{sample}");
        assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
    }
    let unscored = metrics(&Figures {
        risk: None,
        ..figures
    });
    assert!(!unscored.contains("omen_deploy_risk"), "{unscored}");
}

#[test]
fn the_html_page_is_self_contained_and_untrusted_text_stays_text() {
    let mut r = report();
    r.trend = vec![
        TrendPoint {
            commit: "aaaaaaa1".into(),
            pass_rate: 97.5,
            duration_s: 12.0,
            level_s: None,
        },
        TrendPoint {
            commit: "<b>bbbbbb2".into(),
            pass_rate: 99.0,
            duration_s: 14.5,
            level_s: None,
        },
    ];
    let flaky = [html::FlakyBar {
        name: EVIL.into(),
        score: 0.42,
        state: "flaky".into(),
    }];
    let page = html::page(&r, &flaky);
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Nothing to load, nothing to run: no script, no external reference, a CSP that forbids both.
    assert!(page.contains("default-src 'none'"), "{page}");
    for banned in ["<script", "<img", "<link", "<iframe", "http://", "https://"] {
        assert!(
            !page
                .replace("http://www.w3.org/2000/svg", "")
                .contains(banned),
            "{banned} in the page"
        );
    }
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    // The commit label in the chart keeps only letters and digits.
    assert!(!page.contains("<b>"), "{page}");
    for id in [
        "chart-pass-rate",
        "chart-duration",
        "chart-flaky",
        "failures-new",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    // No trend, no flaky tests: the page says so instead of drawing empty charts.
    let mut bare = report();
    bare.trend.clear();
    let page = html::page(&bare, &[]);
    assert!(page.contains("No default-branch runs in the history yet."));
    assert!(page.contains("No flaky tests in the history."));
    assert!(!page.contains("<svg"), "{page}");
    // Control characters become visible escapes.
    assert_eq!(
        escape::html("a\u{1b}[31m\u{202e}b\n", 100),
        "a\\u{1b}[31m\\u{202e}b\\n"
    );
}

#[test]
fn failures_sharing_a_cause_are_one_row_with_hostile_text_escaped() {
    let r = report();
    let c = comment(&r);
    let section = c
        .split("#### 🧩 2 failures, 1 cause")
        .nth(1)
        .unwrap_or_else(|| panic!("no causes section:\n{c}"));
    let rows: Vec<&str> = section
        .lines()
        .skip(4)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "a cause of one failure is not a row: {rows:?}"
    );
    assert!(
        rows[0].contains(
            "| infrastructure: connection refused or reset | 2 (2 new) | known: 14 runs since 2026-09-21, also on `main` |"
        ),
        "{}",
        rows[0]
    );
    assert!(!rows[0].contains("<img"), "{}", rows[0]);
    assert!(rows[0].contains("&lt;img"), "{}", rows[0]);
    let mut single = report();
    single.causes.retain(|c| c.failures.len() == 1);
    assert!(!comment(&single).contains("🧩"));
}
