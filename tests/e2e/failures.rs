//! `omen failures cluster` and failures grouped by cause in `omen ci`'s comment.

use omen_tests::{omen, run};

#[test]
fn cluster_puts_every_line_in_exactly_one_cluster_with_the_common_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(format!(
            "ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:{}",
            5400 + i * 7
        ));
        if i % 4 == 0 {
            lines.push(format!(
                "worker {} finished job {} in {} ms",
                i % 3,
                900 + i,
                10 + i
            ));
        }
    }
    lines.push(String::new());
    lines.push("\u{1b}]8;;https://evil.example\u{7}click\u{1b}]8;;\u{7} here".to_owned());
    std::fs::write(dir.path().join("log.txt"), lines.join("\n")).unwrap();
    let out = run(omen(dir.path()).args(["failures", "cluster", "log.txt", "--format", "json"]));
    out.code(0);
    let clusters = out.json()["clusters"].as_array().unwrap().clone();
    let mut seen: Vec<u64> = clusters
        .iter()
        .flat_map(|c| {
            c["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_u64().unwrap())
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..lines.len() as u64).collect::<Vec<_>>(), "{out}");
    let conn = clusters
        .iter()
        .find(|c| c["lines"].as_array().unwrap().len() == 40)
        .unwrap_or_else(|| panic!("no cluster of the 40 connection lines\n{out}"));
    assert_eq!(
        conn["template"],
        "ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:<*>"
    );
    assert!(
        clusters
            .iter()
            .any(|c| c["template"] == "worker <*> finished job <*> in <*> ms"),
        "{out}"
    );
    // Text output: counts first, and nothing raw reaches the terminal.
    let text = run(omen(dir.path()).args(["failures", "cluster", "log.txt"]));
    text.code(0);
    assert!(
        text.stdout.contains("     40  ConnectionRefusedError"),
        "{text}"
    );
    assert!(!text.stdout.contains('\u{1b}'), "{text}");
    // A missing file is a clear error.
    let missing = run(omen(dir.path()).args(["--strict", "failures", "cluster", "nope.txt"]));
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("nope.txt"), "{missing}");
}

/// `omen ci` on `dir`'s junit.xml as pull request 3's run (no forge: the comment is saved), and
/// the comment it wrote.
fn pr_comment(dir: &std::path::Path) -> String {
    let (body, out) = pr_ci(dir, &["--comment", "always"]);
    out.code(0);
    body
}

/// `omen ci` on `dir`'s junit.xml as a run of pull request 3 with `extra` arguments (global
/// ones such as `--strict` first): the comment it saved (empty when none) and the run.
fn pr_ci(dir: &std::path::Path, extra: &[&str]) -> (String, omen_tests::Run) {
    let body = dir.join("comment.md");
    let _ = std::fs::remove_file(&body);
    let (global, rest): (Vec<&str>, Vec<&str>) = extra.iter().partition(|a| **a == "--strict");
    let out = run(omen(dir)
        .args(global)
        .args([
            "ci",
            "--reports",
            "junit.xml",
            "--db",
            "h.db",
            "--risk",
            "off",
        ])
        .args(["--fail-on", "never", "--comment-file"])
        .arg(&body)
        .args([
            "--branch",
            "feature",
            "--default-branch",
            "main",
            "--pull-request",
            "3",
        ])
        .args(rest));
    (std::fs::read_to_string(&body).unwrap_or_default(), out)
}

#[test]
fn thirty_failures_of_one_cause_are_one_row_of_the_comment() {
    let dir = tempfile::tempdir().unwrap();
    let mut xml = String::from("<testsuite name=\"pytest\">\n");
    for i in 0..30 {
        xml.push_str(&format!(
            "<testcase classname=\"tests.test_orders\" name=\"test_{i}\" file=\"tests/test_orders.py\"><failure type=\"ConnectionRefusedError\" message=\"ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:{}\">Traceback (most recent call last):\n  File \"/app/tests/test_orders.py\", line {}, in test_{i}\n    load()\n  File \"/app/app/db.py\", line {}, in connect\n    sock.connect()\n</failure></testcase>\n",
            5400 + i,
            10 + i,
            40 + i % 3
        ));
    }
    xml.push_str("<testcase classname=\"tests.test_cart\" name=\"test_total\" file=\"tests/test_cart.py\"><failure message=\"AssertionError: assert 3 == 4\">  File \"/app/tests/test_cart.py\", line 9, in test_total</failure></testcase>\n</testsuite>\n");
    std::fs::write(dir.path().join("junit.xml"), xml).unwrap();
    let text = pr_comment(dir.path());
    assert!(text.contains("#### 🧩 30 failures, 1 cause"), "{text}");
    assert!(
        text.contains(
            "Connection refused: 127.0.0.1:&lt;\\*&gt; | infrastructure: connection refused or reset | 30 (30 new) | new |"
        ),
        "{text}"
    );
    // The assertion in another place is not part of that cause.
    assert!(!text.contains("31 failures"), "{text}");
}

/// A report where tests `names` fail with a refused connection at `port` (one cause), plus
/// `extra` (a message) failing in `test_extra`.
fn refused(dir: &std::path::Path, names: &[&str], port: u32, extra: Option<&str>) {
    let mut xml = String::from(
        "<testsuite name=\"pytest\">\n<testcase classname=\"tests.test_ok\" name=\"test_fine\" file=\"tests/test_ok.py\"/>\n",
    );
    for name in names {
        xml.push_str(&format!(
            "<testcase classname=\"tests.test_orders\" name=\"{name}\" file=\"tests/test_orders.py\"><failure message=\"ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:{port}\">  File \"/app/app/db.py\", line 40, in connect</failure></testcase>\n"
        ));
    }
    if let Some(m) = extra {
        xml.push_str(&format!(
            "<testcase classname=\"tests.test_cart\" name=\"test_extra_a\" file=\"tests/test_cart.py\"><failure message=\"{m}\">  File \"/app/app/cart.py\", line 9, in total</failure></testcase>\n<testcase classname=\"tests.test_cart\" name=\"test_extra_b\" file=\"tests/test_cart.py\"><failure message=\"{m}\">  File \"/app/app/cart.py\", line 9, in total</failure></testcase>\n"
        ));
    }
    xml.push_str("</testsuite>\n");
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
}

#[test]
fn a_cause_seen_on_the_default_branch_is_known_and_a_new_one_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The default branch met the database outage twice.
    for (n, port) in [(1, 5432), (2, 6543)] {
        refused(d, &["test_a", "test_b"], port, None);
        omen_tests::ingest_main(d, n, n, Some(&format!("{n:0>40}")), "junit.xml").code(0);
    }
    // A pull request meets it again, and a cause of its own.
    refused(
        d,
        &["test_a", "test_c"],
        7000,
        Some("ZeroDivisionError: division by zero"),
    );
    let text = pr_comment(d);
    assert!(text.contains("#### 🧩 4 failures, 2 causes"), "{text}");
    assert!(
        text.contains("| known: 2 runs since 2026-03-01, also on `main` |"),
        "{text}"
    );
    let new_row = text
        .lines()
        .find(|l| l.contains("ZeroDivisionError"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(new_row.contains("| new |"), "{new_row}");
}

/// A pytest report: 30 tests refused a connection (each its own port), one assertion failed, one
/// test with a hostile name failed and passed on its retry, and 20 passed.
fn failing_report(dir: &std::path::Path) {
    let mut xml = String::from("<testsuite name=\"pytest\">\n");
    for i in 0..30 {
        xml.push_str(&format!(
            "<testcase classname=\"tests.test_db\" name=\"test_query_{i}\" file=\"tests/test_db.py\" time=\"0.01\"><failure type=\"ConnectionRefusedError\" message=\"ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:{}\">tests/test_db.py:{}: in test_query_{i}\n    conn = connect()\nE   ConnectionRefusedError: [Errno 111] Connection refused</failure></testcase>\n",
            5400 + i,
            10 + i
        ));
    }
    xml.push_str("<testcase classname=\"tests.test_math\" name=\"test_sum\" file=\"tests/test_math.py\" time=\"0.01\"><failure type=\"AssertionError\" message=\"AssertionError: assert 3 == 4\">E   assert 3 == 4</failure></testcase>\n");
    xml.push_str("<testcase classname=\"tests.test_ui\" name=\"test_&lt;img src=x onerror=alert(1)&gt;&#27;[31m\" file=\"tests/test_ui.py\" time=\"0.01\"><flakyFailure type=\"TimeoutError\" message=\"TimeoutError: timed out after 5 s\">E   TimeoutError</flakyFailure></testcase>\n");
    for i in 0..20 {
        xml.push_str(&format!(
            "<testcase classname=\"tests.test_ok\" name=\"test_{i}\" file=\"tests/test_ok.py\" time=\"0.01\"/>\n"
        ));
    }
    xml.push_str("</testsuite>\n");
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
}

#[test]
fn omen_failures_groups_a_stored_run_into_causes_and_knows_them_in_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    failing_report(dir.path());
    let ingest = |run_id: &str, branch: &str| {
        let out = run(omen(dir.path())
            .args(["ingest", "junit.xml", "--db", "h.db", "--job", "test"])
            .args(["--branch", branch, "--default-branch", "main"])
            .args(["--run-id", run_id, "--commit", &format!("{run_id:0>40}")]));
        out.code(0);
    };
    let failures = |args: &[&str]| {
        let out = run(omen(dir.path())
            .args(["failures", "--db", "h.db", "--format", "json"])
            .args(args));
        out.code(0);
        out
    };
    // Nothing stored yet: an empty report, not an error.
    let none = failures(&[]);
    assert!(none.json()["run"].is_null(), "{none}");
    ingest("1", "main");
    let out = failures(&[]);
    let report = out.json();
    assert_eq!(report["version"], 1);
    assert_eq!(report["run"]["id"], 1, "{out}");
    assert_eq!(report["failures"], 32, "{out}");
    let causes = report["causes"].as_array().unwrap().clone();
    assert_eq!(causes.len(), 3, "{out}");
    let refused = &causes[0];
    assert_eq!(refused["tests"].as_array().unwrap().len(), 30, "{out}");
    assert_eq!(
        refused["headline"],
        "ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:<*>",
        "{out}"
    );
    assert_eq!(refused["category"], "infrastructure", "{out}");
    assert_eq!(refused["known_runs"], 0, "{out}");
    assert!(refused["first_seen"].is_null(), "{out}");
    assert_eq!(
        refused["tests"][0]["selector"], "tests/test_db.py::test_query_0",
        "{out}"
    );
    let retried = causes
        .iter()
        .find(|c| c["tests"][0]["outcome"] == "passed on retry")
        .unwrap_or_else(|| panic!("the retried test is missing\n{out}"));
    assert_eq!(retried["category"], "infrastructure", "{out}");
    assert!(
        causes
            .iter()
            .any(|c| c["headline"] == "AssertionError: assert 3 == 4" && c["category"] == "test"),
        "{out}"
    );
    // The next run (a pull request) fails the same way: both failing causes are known, also on
    // main. The history counts runs that failed with a signature: a retry that passed is not one.
    ingest("2", "feature");
    let out = failures(&["--run", "latest"]);
    let causes = out.json()["causes"].as_array().unwrap().clone();
    assert_eq!(out.json()["run"]["id"], 2, "{out}");
    for c in &causes {
        let retried = c["tests"][0]["outcome"] == "passed on retry";
        assert_eq!(c["known_runs"], if retried { 0 } else { 1 }, "{out}");
        assert_eq!(c["on_default_branch"], !retried, "{out}");
        assert_eq!(c["first_seen"].is_string(), !retried, "{out}");
    }
    // An earlier run by its id, as it was.
    assert_eq!(failures(&["--run", "1"]).json()["run"]["id"], 1);
    // Text: counts, headline, class, what is known; hostile names escaped.
    let text = run(omen(dir.path()).args(["failures", "--db", "h.db", "--tests", "2"]));
    text.code(0);
    assert!(
        text.stdout
            .contains("run 2, branch feature, commit 000000000000, job test"),
        "{text}"
    );
    assert!(text.stdout.contains("32 failures in 3 causes"), "{text}");
    assert!(
        text.stdout.contains(
            "    30  ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:<*>  [infrastructure]  known: 1 run since "
        ),
        "{text}"
    );
    assert!(text.stdout.contains("        and 28 more\n"), "{text}");
    assert!(text.stdout.contains("(passed on retry)"), "{text}");
    assert!(!text.stdout.contains('\u{1b}'), "{text}");
    // A run that does not exist is an error naming it.
    let missing =
        run(omen(dir.path()).args(["--strict", "failures", "--db", "h.db", "--run", "99"]));
    assert_ne!(missing.code, 0, "{missing}");
    assert!(missing.stderr.contains("holds no run 99"), "{missing}");
    let bad = run(omen(dir.path()).args(["failures", "--db", "h.db", "--run", "newest"]));
    assert_ne!(bad.code, 0, "{bad}");
    assert!(
        bad.stderr.contains("neither `latest` nor a run id"),
        "{bad}"
    );
}

/// A report of one refused connection, one assertion and two tests failing with `ledger` (a
/// failure no shipped rule names), as `junit.xml` in `dir`.
fn domain_report(dir: &std::path::Path, ledger: &str) {
    let xml = format!(
        "<testsuite name=\"pytest\">\n\
         <testcase classname=\"tests.test_db\" name=\"test_q\" file=\"tests/test_db.py\"><failure message=\"ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:5432\"/></testcase>\n\
         <testcase classname=\"tests.test_math\" name=\"test_sum\" file=\"tests/test_math.py\"><failure message=\"AssertionError: assert 3 == 4\"/></testcase>\n\
         <testcase classname=\"tests.test_books\" name=\"test_close\" file=\"tests/test_books.py\"><failure message=\"{ledger}\"/></testcase>\n\
         <testcase classname=\"tests.test_books\" name=\"test_open\" file=\"tests/test_books.py\"><failure message=\"{ledger}\"/></testcase>\n\
         </testsuite>\n"
    );
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
}

#[test]
fn a_label_names_a_cause_no_rule_does_and_the_learned_layer_carries_it_to_a_similar_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let failures = |args: &[&str]| {
        let out = run(omen(d)
            .args(["failures", "--db", "h.db", "--format", "json"])
            .args(args));
        out.code(0);
        out
    };
    let cause = |out: &omen_tests::Run, needle: &str| {
        out.json()["causes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["headline"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no cause with {needle}\n{out}"))
            .clone()
    };
    domain_report(d, "LedgerDrift: balances of batch 7 disagree");
    omen_tests::ingest_main(d, 1, 1, Some(&"1".repeat(40)), "junit.xml").code(0);
    let out = failures(&[]);
    let ledger = cause(&out, "LedgerDrift");
    assert!(ledger["category"].is_null(), "{out}");
    assert_eq!(
        cause(&out, "Connection refused")["decided_by"],
        "rule",
        "{out}"
    );
    let signature = ledger["signature"].as_str().unwrap().to_owned();
    // Labelled by hand: written to the labels file, with the signature's text from the history.
    let label = run(omen(d)
        .args(["failures", "label", &signature, "--as", "application"])
        .args(["--db", "h.db"]));
    label.code(0);
    assert!(
        label
            .stdout
            .contains(&format!("labelled {signature} as application")),
        "{label}"
    );
    let file = std::fs::read_to_string(d.join(".omen/failure-labels.toml")).unwrap();
    assert!(
        file.contains("text = \"LedgerDrift: balances of batch <NUM> disagree\""),
        "{file}"
    );
    let out = failures(&[]);
    let ledger = cause(&out, "LedgerDrift");
    assert_eq!(
        (&ledger["category"], &ledger["decided_by"]),
        (&"application".into(), &"label".into()),
        "{out}"
    );
    // Relabelling replaces the label.
    let again = run(omen(d).args([
        "failures", "label", &signature, "--as", "test", "--db", "h.db",
    ]));
    again.code(0);
    assert!(
        again.stdout.contains("relabelled") && again.stdout.contains("(was application)"),
        "{again}"
    );
    run(omen(d).args([
        "failures",
        "label",
        &signature,
        "--as",
        "application",
        "--db",
        "h.db",
    ]))
    .code(0);
    // A similar failure with another signature: the learned layer names it, with its confidence
    // and the words that decided.
    domain_report(d, "LedgerDrift: balances of batch 9 in region eu disagree");
    omen_tests::ingest_main(d, 2, 2, Some(&"2".repeat(40)), "junit.xml").code(0);
    let out = failures(&[]);
    let similar = cause(&out, "region eu");
    assert_ne!(similar["signature"], signature.as_str(), "{out}");
    assert_eq!(similar["category"], "application", "{out}");
    assert_eq!(similar["decided_by"], "learned", "{out}");
    let p = similar["confidence"].as_f64().unwrap();
    assert!((0.6..1.0).contains(&p), "{out}");
    // The words that decided are the labelled failure's.
    let reason = similar["reason"].as_str().unwrap();
    assert!(!reason.is_empty(), "{out}");
    for word in reason.split(", ") {
        assert!(
            ["ledgerdrift", "balances", "of", "batch", "disagree"].contains(&word),
            "{word}: {out}"
        );
    }
    let text = run(omen(d).args(["failures", "--db", "h.db"]));
    assert!(text.stdout.contains("[application, learned "), "{text}");
    // The comment says so too, in the row of that cause.
    let comment = pr_comment(d);
    let row = comment
        .lines()
        .find(|l| l.contains("region eu"))
        .unwrap_or_else(|| panic!("{comment}"));
    assert!(row.contains("| application: learned, 9"), "{row}");
    // A repository rule comes before the shipped rules.
    std::fs::write(
        d.join(".omen/config.toml"),
        "[[failures.rules]]\ncategory = \"test\"\nreason = \"the test database fixture\"\nneedles = [\"CONNECTION REFUSED\"]\n",
    )
    .unwrap();
    let out = failures(&[]);
    let refused = cause(&out, "Connection refused");
    assert_eq!(
        (
            &refused["category"],
            &refused["decided_by"],
            &refused["reason"]
        ),
        (
            &"test".into(),
            &"user rule".into(),
            &"the test database fixture".into()
        ),
        "{out}"
    );
    // Mistakes are clear errors that change nothing.
    let bad = run(omen(d).args([
        "failures", "label", &signature, "--as", "infra", "--db", "h.db",
    ]));
    assert_ne!(bad.code, 0, "{bad}");
    assert!(
        bad.stderr.contains("infrastructure, dependency, build"),
        "{bad}"
    );
    let unknown = run(omen(d).args([
        "--strict",
        "failures",
        "label",
        "00000000000000aa",
        "--as",
        "test",
        "--db",
        "h.db",
    ]));
    assert_ne!(unknown.code, 0, "{unknown}");
    assert!(unknown.stderr.contains("--text"), "{unknown}");
    assert_eq!(
        std::fs::read_to_string(d.join(".omen/failure-labels.toml")).unwrap(),
        file
    );
}

/// `omen ci` on `dir`'s junit.xml with `--log log`, as run `run_id` of pull request 3; the
/// comment and the command's output.
fn pr_comment_with_log(
    dir: &std::path::Path,
    log: &str,
    run_id: u32,
    strict: bool,
) -> (String, omen_tests::Run) {
    let run_id = run_id.to_string();
    let mut extra = vec!["--comment", "auto", "--log", log, "--run-id", &run_id];
    if strict {
        extra.push("--strict");
    }
    pr_ci(dir, &extra)
}

#[test]
fn a_job_log_names_the_failure_no_test_report_shows_and_knows_it_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("junit.xml"),
        "<testsuite name=\"pytest\"><testcase classname=\"t\" name=\"test_ok\"/></testsuite>\n",
    )
    .unwrap();
    // A real failure: Python importing a module that is not installed, run through a script.
    std::fs::write(
        d.join("migrate.py"),
        "import json\nimport omen_no_such_module_xyz\n",
    )
    .unwrap();
    let python = std::process::Command::new("python3")
        .arg("migrate.py")
        .current_dir(d)
        .output()
        .expect("python3 runs");
    assert!(!python.status.success());
    let stderr = String::from_utf8(python.stderr).unwrap();
    assert!(stderr.contains("ModuleNotFoundError"), "{stderr}");
    // As GitHub shows a step's log: timestamps, colour, a progress bar, the wrap-up, and a
    // hostile earlier line far above.
    let mut log = String::from(
        "2026-12-01T10:00:00.0000000Z error: <img src=x onerror=alert(1)> @everyone\n",
    );
    for i in 0..20 {
        log.push_str(&format!(
            "2026-12-01T10:00:01.0000000Z \u{1b}[32mstep {i} ok\u{1b}[0m\n"
        ));
    }
    log.push_str("2026-12-01T10:00:02.0000000Z Downloading 10%\r50%\r100%\n");
    log.push_str("2026-12-01T10:00:02.5000000Z $ python3 migrate.py\n");
    for line in stderr.lines() {
        log.push_str(&format!("2026-12-01T10:00:03.0000000Z {line}\n"));
    }
    log.push_str("2026-12-01T10:00:04.0000000Z ##[error]Process completed with exit code 1.\n");
    std::fs::write(d.join("build.log"), &log).unwrap();

    let (text, out) = pr_comment_with_log(d, "build.log", 1, false);
    out.code(0);
    assert!(
        text.contains("### Omen: the job failed outside the tests (dependency) — 1 test passed"),
        "{text}\n{out}"
    );
    let headline_line = log
        .lines()
        .position(|l| l.contains("ModuleNotFoundError"))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!(
            "build.log line {headline_line}: **ModuleNotFoundError: No module named &#39;omen\\_no\\_such\\_module\\_xyz&#39;**"
        )),
        "{text}"
    );
    assert!(text.contains("dependency: missing module · new"), "{text}");
    assert!(
        text.contains("Traceback (most recent call last):"),
        "{text}"
    );
    assert!(text.contains("import omen_no_such_module_xyz"), "{text}");
    // The block is the end's, cleaned: no ANSI, no timestamps, nothing from the hostile line.
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(!text.contains("2026-12-01T10:00"), "{text}");
    assert!(
        !text.contains("<img") && !text.contains("@everyone"),
        "{text}"
    );

    // The next run of the pull request meets it again: the history knows it.
    let (again, out) = pr_comment_with_log(d, "build.log", 2, false);
    out.code(0);
    assert!(
        again.contains("dependency: missing module · known: 1 run since"),
        "{again}"
    );

    // A log without an error line adds nothing.
    std::fs::write(d.join("quiet.log"), "building\n3 passed in 0.1s\n").unwrap();
    let (quiet, out) = pr_comment_with_log(d, "quiet.log", 3, false);
    out.code(0);
    assert!(!quiet.contains("outside the tests"), "{quiet}");

    // A log that cannot be read is a warning, and an error only in strict mode.
    let (_, out) = pr_comment_with_log(d, "missing.log", 4, false);
    out.code(0);
    assert!(
        out.stderr.contains("cannot open the log missing.log"),
        "{out}"
    );
    let (_, out) = pr_comment_with_log(d, "missing.log", 5, true);
    assert_eq!(out.code, 3, "{out}");
}

/// A report of tests `db_0`…`db_4`, `other_0`…`other_9` and `alone` in which `failing` fail.
fn group_report(dir: &std::path::Path, failing: &[String]) {
    let mut xml = String::from("<testsuite name=\"pytest\">\n");
    let names = (0..5)
        .map(|i| format!("db_{i}"))
        .chain((0..10).map(|i| format!("other_{i}")))
        .chain(["alone".to_owned()]);
    for name in names {
        xml.push_str(&format!(
            "<testcase classname=\"tests.test_group\" name=\"test_{name}\" file=\"tests/test_group.py\">"
        ));
        if failing.contains(&name) {
            xml.push_str(&format!(
                "<failure message=\"AssertionError: {name} broke\">  File \"/app/tests/test_group.py\", line 3, in test_{name}</failure>"
            ));
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("</testsuite>\n");
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
}

#[test]
fn tests_that_fail_together_on_the_default_branch_are_named_as_one_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 24 default-branch runs: the five db tests fail together in six of them (db_4 misses one),
    // each other test fails once, and `alone` three times on its own.
    for run in 0..24u32 {
        let mut failing = Vec::new();
        if run % 4 == 3 {
            failing.extend(
                (0..5)
                    .filter(|&i| !(i == 4 && run == 19))
                    .map(|i| format!("db_{i}")),
            );
        }
        if run < 10 {
            failing.push(format!("other_{run}"));
        }
        if [2, 5, 8].contains(&run) {
            failing.push("alone".to_owned());
        }
        group_report(d, &failing);
        omen_tests::ingest_main(
            d,
            run + 1,
            run + 1,
            Some(&format!("{:0>40}", run + 1)),
            "junit.xml",
        )
        .code(0);
    }
    let out = run(omen(d).args(["failures", "systemic", "--db", "h.db", "--format", "json"]));
    out.code(0);
    let json = out.json();
    assert_eq!(json["runs"], 24, "{out}");
    let clusters = json["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "{out}");
    let mut tests: Vec<&str> = clusters[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tests.sort_unstable();
    assert_eq!(
        tests,
        (0..5)
            .map(|i| format!("tests/test_group.py::test_db_{i}"))
            .collect::<Vec<_>>(),
        "{out}"
    );
    assert_eq!(clusters[0]["together"], 6, "{out}");
    assert_eq!(clusters[0]["any"], 6, "{out}");
    let text = run(omen(d).args(["failures", "systemic", "--db", "h.db"]));
    assert!(
        text.stdout.starts_with("5 tests fail together: most of them failed in 6 of the 6 runs where any of them failed (of the default branch's last 24)"),
        "{text}"
    );

    // A pull request where three of them fail, and `alone`: one line names the group.
    group_report(
        d,
        &["db_0".into(), "db_2".into(), "db_3".into(), "alone".into()],
    );
    let comment = pr_comment(d);
    assert!(
        comment.contains("#### 🔗 Tests that fail together"),
        "{comment}"
    );
    let line = comment
        .lines()
        .find(|l| l.contains("failing tests** are"))
        .unwrap_or_else(|| panic!("{comment}"));
    assert!(line.contains("**3 failing tests** are part of a group of 5 that fail together on `main`: most of them failed in 6 of the 6 runs"), "{line}");
    assert!(!line.contains("alone"), "{line}");
}
