//! `omen flaky` and `omen quarantine` end to end.

use std::path::Path;
use std::process::Command;

use omen_tests::{omen, run};

/// Write a report where each test has the given outcome: 'P' pass, 'F' fail.
fn report(dir: &Path, name: &str, tests: &[(&str, char)]) -> String {
    let mut xml = String::from("<testsuite name=\"pytest\">\n");
    for (test, outcome) in tests {
        match outcome {
            'F' => xml.push_str(&format!(
                "<testcase classname=\"tests.test_app\" name=\"{test}\" file=\"tests/test_app.py\"><failure message=\"{test} failed: timeout\">trace</failure></testcase>\n"
            )),
            _ => xml.push_str(&format!("<testcase classname=\"tests.test_app\" name=\"{test}\" file=\"tests/test_app.py\"/>\n")),
        }
    }
    xml.push_str("</testsuite>\n");
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path.display().to_string()
}

struct History<'a> {
    dir: &'a Path,
    n: u32,
}

impl History<'_> {
    /// Ingest one run on `branch` at commit `commit`.
    fn run(&mut self, commit: &str, branch: &str, tests: &[(&str, char)]) {
        self.n += 1;
        let file = report(self.dir, &format!("r{}.xml", self.n), tests);
        let mut cmd = omen(self.dir);
        cmd.args([
            "ingest",
            "--db",
            "h.db",
            "--commit",
            commit,
            "--branch",
            branch,
            "--default-branch",
            "main",
        ])
        .args([
            "--run-id",
            &self.n.to_string(),
            "--timestamp",
            &format!("2026-03-{:02}T00:00:00Z", self.n.min(28)),
        ])
        .arg(&file);
        if branch != "main" {
            cmd.args(["--pull-request", "9"]);
        }
        run(&mut cmd).code(0);
    }
}

/// stable_a always passes; flaky_b fails once and passes on a re-run of the same commit;
/// broken_c breaks at commit c7; pr_d fails only on a pull request.
fn build(dir: &Path) {
    let mut h = History { dir, n: 0 };
    for i in 1..=10 {
        let commit = format!("c{i}");
        let b = if i == 4 { 'F' } else { 'P' };
        let c = if i >= 7 { 'F' } else { 'P' };
        h.run(
            &commit,
            "main",
            &[
                ("test_stable_a", 'P'),
                ("test_flaky_b", b),
                ("test_broken_c", c),
                ("test_pr_d", 'P'),
            ],
        );
        if i == 4 {
            // The failed job is re-run on the same commit and passes.
            h.run(
                &commit,
                "main",
                &[
                    ("test_stable_a", 'P'),
                    ("test_flaky_b", 'P'),
                    ("test_broken_c", 'P'),
                    ("test_pr_d", 'P'),
                ],
            );
        }
        if i % 3 == 0 {
            h.run(
                &format!("pr{i}"),
                "feature",
                &[
                    ("test_stable_a", 'P'),
                    ("test_flaky_b", 'P'),
                    ("test_broken_c", c),
                    ("test_pr_d", 'F'),
                ],
            );
        }
    }
}

#[test]
fn flaky_lists_flaky_and_broken_tests_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let out = run(omen(dir.path()).args(["flaky", "--db", "h.db", "--format", "json"]));
    out.code(0);
    let json = out.json();
    let tests = json["tests"].as_array().unwrap();
    let names: Vec<(&str, &str)> = tests
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("test_broken_c", "broken"), ("test_flaky_b", "flaky")],
        "{out}"
    );
    let broken = &tests[0];
    assert_eq!(broken["broken_since"], "c7");
    assert_eq!(broken["evidence"]["fail_streak"], 4);
    let flaky = &tests[1];
    assert_eq!(flaky["selector"], "tests/test_app.py::test_flaky_b");
    assert_eq!(flaky["classname"], "tests.test_app");
    assert_eq!(flaky["file"], "tests/test_app.py");
    assert_eq!(flaky["evidence"]["same_commit_flakes"], 1);
    assert_eq!(flaky["last_failure"]["commit"], "c4");
    assert_eq!(
        flaky["last_failure"]["message"],
        "test_flaky_b failed: timeout"
    );
    assert!(
        flaky["explanation"]
            .as_str()
            .unwrap()
            .starts_with("failed and passed on the same commit 1 time")
    );
    assert!(flaky["score"].as_f64().unwrap() > 0.0 && flaky["uncertainty"].as_f64().unwrap() > 0.0);

    let text = run(omen(dir.path()).args(["flaky", "--db", "h.db"]));
    assert!(text.stdout.contains("1 broken, 1 flaky"), "{text}");
    assert!(text.stdout.contains("broken since commit c7"), "{text}");
    assert!(
        !text.stdout.contains("test_pr_d"),
        "a pull request's failures are not evidence\n{text}"
    );
}

#[test]
fn flaky_test_explains_why_a_test_is_or_is_not_flaky() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // By selector: the rule that decided, its observation and its threshold.
    let out = run(omen(dir.path()).args([
        "flaky",
        "--db",
        "h.db",
        "--test",
        "tests/test_app.py::test_flaky_b",
    ]));
    out.code(0);
    assert!(
        out.stdout
            .contains("tests/test_app.py::test_flaky_b: flaky (score"),
        "{out}"
    );
    assert!(
        out.stdout.contains(
            "yes  flaky: same commit: 1 pass-and-fail event(s) on one commit, the latest"
        ),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("one within the last 100 default-branch runs makes it flaky"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("no   broken: 0 consecutive default-branch failure(s) now"),
        "{out}"
    );
    // A pull request's failures never count: the PR-only failing test is explained as stable.
    let pr = run(omen(dir.path()).args([
        "flaky",
        "--db",
        "h.db",
        "--test",
        "test_pr_d",
        "--format",
        "json",
    ]));
    pr.code(0);
    let json = pr.json();
    let t = &json["tests"][0];
    assert_eq!(t["state"], "stable", "{pr}");
    let reasons = t["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .all(|r| r["rule"] == "judged" || r["holds"] == false),
        "{pr}"
    );
    // By stored key and by part of a name: every match, the broken one first.
    let many = run(omen(dir.path()).args([
        "flaky",
        "--db",
        "h.db",
        "--test",
        "tests.test_app::test_",
        "--format",
        "json",
    ]));
    let json = many.json();
    let states: Vec<&str> = json["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 4, "{many}");
    assert_eq!(states[0], "broken", "{many}");
    let broken = &json["tests"][0]["reasons"][0];
    assert_eq!(
        (broken["rule"].as_str(), broken["holds"].as_bool()),
        (Some("broken"), Some(true))
    );
    // Nothing matches: said plainly.
    let none = run(omen(dir.path()).args(["flaky", "--db", "h.db", "--test", "no_such"]));
    none.code(0);
    assert!(
        none.stdout
            .contains("no test in the history matches `no_such`"),
        "{none}"
    );
    // The listing without --test has no reasons.
    let plain = run(omen(dir.path()).args(["flaky", "--db", "h.db", "--format", "json"]));
    assert!(plain.json()["tests"][0].get("reasons").is_none(), "{plain}");
}

#[test]
fn setup_falls_back_to_the_committed_file_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manual = r#"{"version": 1, "tests": [{"id": "tests.test_app::test_x", "selector": "tests/test_app.py::test_x", "runner": "pytest",
        "classname": "tests.test_app", "name": "test_x", "reason": "mine", "added": "2026-01-01T00:00:00Z",
        "expires": "2099-01-01T00:00:00Z", "mode": "skip", "source": "manual", "auto_release": false}]}"#;
    std::fs::create_dir(d.join(".omen")).unwrap();
    std::fs::write(d.join(".omen/quarantine.json"), manual).unwrap();
    let setup = |extra: &[&str]| {
        run(omen(d)
            .args([
                "setup",
                "--db",
                "h.db",
                "--out-dir",
                "run",
                "--format",
                "json",
            ])
            .args(extra))
    };
    // No history yet: the committed file as it is, a warning, and the step does not fail.
    let none = setup(&[]);
    none.code(0);
    assert_eq!(none.json()["source"], "committed", "{none}");
    assert_eq!(none.json()["manual"], 1, "{none}");
    assert!(none.stderr.contains("h.db"), "{none}");
    assert!(
        std::fs::read_to_string(d.join("run/quarantine.json"))
            .unwrap()
            .contains("test_x")
    );
    // With history: automatic entries from it, the manual one kept.
    build(d);
    let with = setup(&[]);
    with.code(0);
    let json = with.json();
    assert_eq!(
        (
            json["source"].as_str(),
            json["automatic"].as_u64(),
            json["manual"].as_u64()
        ),
        (Some("history"), Some(1), Some(1)),
        "{with}"
    );
    // An unreadable committed file: the history's entries, Omen's trouble reported (exit 3 when
    // strict), the file never written.
    std::fs::write(d.join(".omen/quarantine.json"), "{ not json").unwrap();
    let broken = setup(&[]);
    broken.code(0);
    assert!(
        broken.stderr.contains("manual entries are missing"),
        "{broken}"
    );
    run(omen(d).args(["--strict", "setup", "--db", "h.db", "--out-dir", "run"])).code(3);
    assert_eq!(
        std::fs::read_to_string(d.join(".omen/quarantine.json")).unwrap(),
        "{ not json"
    );
    // `default` cannot be extended: a usage error.
    setup(&["--nextest-profile", "default"]).code(2);
}

const NOW: &str = "2026-03-20T00:00:00Z";

#[test]
fn quarantine_file_check_and_manual_entries() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let q = dir.path().join("q.json");
    let out = run(omen(dir.path()).args([
        "quarantine",
        "--db",
        "h.db",
        "--out",
        "q.json",
        "--now",
        NOW,
    ]));
    out.code(0);
    assert!(
        out.stdout
            .contains("added: tests/test_app.py::test_flaky_b"),
        "{out}"
    );
    let written = std::fs::read_to_string(&q).unwrap();
    // score = (prior 0.5 + 1 flaky failure) / (0.5 + 40 + 11 default-branch runs) = 0.0291
    let expected = r#"{
  "version": 1,
  "tests": [
    {
      "id": "tests.test_app::test_flaky_b",
      "selector": "tests/test_app.py::test_flaky_b",
      "runner": "pytest",
      "classname": "tests.test_app",
      "name": "test_flaky_b",
      "file": "tests/test_app.py",
      "reason": "flaky on the default branch",
      "score": 0.0291,
      "evidence": "failed and passed on the same commit 1 time; 1 of the last 11 default-branch runs failed; 1 isolated failure that passed again without a fix; 2 flips",
      "added": "2026-03-20T00:00:00Z",
      "expires": "2026-04-19T00:00:00Z",
      "mode": "run-ignore",
      "source": "auto",
      "auto_release": true
    }
  ]
}
"#;
    assert_eq!(
        written, expected,
        "the broken test is never quarantined; the PR-only failure is not evidence"
    );

    // Regenerating changes nothing, and --check agrees.
    run(omen(dir.path()).args([
        "quarantine",
        "--db",
        "h.db",
        "--out",
        "q.json",
        "--now",
        NOW,
    ]))
    .code(0);
    assert_eq!(std::fs::read_to_string(&q).unwrap(), expected);
    let check = run(omen(dir.path()).args([
        "quarantine",
        "--check",
        "--db",
        "h.db",
        "--out",
        "q.json",
        "--now",
        NOW,
    ]));
    check.code(0);

    // A committed file that lost the entry is out of date: exit 1 with a readable diff.
    std::fs::write(&q, "{\"version\": 1, \"tests\": []}\n").unwrap();
    let check = run(omen(dir.path()).args([
        "quarantine",
        "--check",
        "--db",
        "h.db",
        "--out",
        "q.json",
        "--now",
        NOW,
    ]));
    check.code(1);
    assert!(check.stdout.contains("is out of date"), "{check}");
    assert!(
        check
            .stdout
            .contains("+      \"id\": \"tests.test_app::test_flaky_b\","),
        "{check}"
    );
    assert_eq!(
        std::fs::read_to_string(&q).unwrap(),
        "{\"version\": 1, \"tests\": []}\n",
        "--check never writes"
    );

    // A manual entry survives regeneration untouched, even for a test Omen does not know.
    let manual = r#"{"version": 1, "tests": [{"id": "legacy::test_slow", "selector": "legacy::test_slow", "runner": "junit",
        "classname": "legacy", "name": "test_slow", "reason": "waits on a partner sandbox", "added": "2026-01-01T00:00:00Z",
        "expires": "2026-02-01T00:00:00Z", "owner": "@payments", "mode": "skip", "source": "manual", "auto_release": false}]}"#;
    std::fs::write(&q, manual).unwrap();
    run(omen(dir.path()).args([
        "quarantine",
        "--db",
        "h.db",
        "--out",
        "q.json",
        "--now",
        NOW,
    ]))
    .code(0);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&q).unwrap()).unwrap();
    let ids: Vec<&str> = file["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["legacy::test_slow", "tests.test_app::test_flaky_b"]);
    assert_eq!(file["tests"][0]["owner"], "@payments");
}

#[test]
fn an_unreadable_quarantine_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    std::fs::write(
        dir.path().join("q.json"),
        "{ this is someone's half-edited file",
    )
    .unwrap();
    let out = run(omen(dir.path()).args(["quarantine", "--db", "h.db", "--out", "q.json"]));
    out.code(0);
    assert!(
        out.stderr.contains("q.json") && out.stderr.contains("left untouched"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("q.json")).unwrap(),
        "{ this is someone's half-edited file"
    );
    run(omen(dir.path()).args(["quarantine", "--strict", "--db", "h.db", "--out", "q.json"]))
        .code(3);
    let future = r#"{"version": 9, "tests": []}"#;
    std::fs::write(dir.path().join("q.json"), future).unwrap();
    let out = run(omen(dir.path()).args(["quarantine", "--db", "h.db", "--out", "q.json"]));
    assert!(out.stderr.contains("version 9 is not supported"), "{out}");
}

#[test]
fn the_guard_refuses_an_outage_sized_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History {
        dir: dir.path(),
        n: 0,
    };
    // Three tests, two flaky: far over 5% of the suite.
    for i in 1..=6 {
        let c = format!("c{i}");
        let f = if i == 3 { 'F' } else { 'P' };
        h.run(&c, "main", &[("t1", f), ("t2", f), ("t3", 'P')]);
        if i == 3 {
            h.run(&c, "main", &[("t1", 'P'), ("t2", 'P'), ("t3", 'P')]);
        }
    }
    let out = run(omen(dir.path()).args([
        "quarantine",
        "--db",
        "h.db",
        "--out",
        "q.json",
        "--now",
        NOW,
    ]));
    out.code(1);
    assert!(
        out.stderr.contains("refusing to quarantine 2 of 3 tests"),
        "{out}"
    );
    assert!(!dir.path().join("q.json").exists());
    run(omen(dir.path()).args([
        "quarantine",
        "--force",
        "--db",
        "h.db",
        "--out",
        "q.json",
        "--now",
        NOW,
    ]))
    .code(0);
    assert!(dir.path().join("q.json").exists());
}

#[test]
fn nextest_outputs_from_the_quarantine_file() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |selector: &str, mode: &str| {
        format!(
            r#"{{"id": "{selector}", "selector": "{selector}", "runner": "nextest", "classname": "c", "name": "n", "reason": "r",
                "added": "2026-01-01T00:00:00Z", "expires": "2099-01-01T00:00:00Z", "mode": "{mode}", "source": "manual", "auto_release": false}}"#
        )
    };
    let file = format!(
        r#"{{"version": 1, "tests": [{}, {}, {}]}}"#,
        entry("fixture quarantine::flaky", "run-ignore"),
        entry("fixture quarantine::odd(name,1)", "skip"),
        entry("fixture quarantine::expired", "skip").replace("2099", "2020")
    );
    std::fs::write(dir.path().join("q.json"), file).unwrap();
    let filter = run(omen(dir.path()).args([
        "quarantine",
        "--format",
        "nextest-filter",
        "--out",
        "q.json",
    ]));
    filter.code(0);
    assert_eq!(
        filter.stdout, "not ((binary_id(=fixture) & test(=quarantine::odd(name\\,1\\))))\n",
        "expired entries no longer apply"
    );
    let config =
        run(omen(dir.path()).args(["quarantine", "--format", "nextest", "--out", "q.json"]));
    config.code(0);
    assert!(
        config
            .stdout
            .contains("[profile.omen]\ninherits = \"default\"\n"),
        "{config}"
    );
    assert!(config.stdout.contains("[[profile.omen.overrides]]\nfilter = \"(binary_id(=fixture) & test(=quarantine::flaky))\"\nretries = 3"), "{config}");
}

#[test]
fn thresholds_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let states = |extra: &[&str]| -> Vec<(String, String)> {
        let out = run(omen(dir.path())
            .args(extra)
            .args(["flaky", "--db", "h.db", "--format", "json"]));
        out.code(0);
        out.json()["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_owned(),
                    t["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert!(states(&[]).contains(&("test_flaky_b".to_owned(), "flaky".to_owned())));
    // The flake was 7 clean runs ago: with evidence going stale after 5, it is no longer flaky.
    std::fs::create_dir_all(dir.path().join(".omen")).unwrap();
    std::fs::write(
        dir.path().join(".omen/config.toml"),
        "[flakiness]\nstale_after_runs = 5\n",
    )
    .unwrap();
    assert!(
        !states(&[]).iter().any(|(n, _)| n == "test_flaky_b"),
        "{:?}",
        states(&[])
    );
    // --config and OMEN_CONFIG name another file; a typo is an error naming the file and the key.
    std::fs::write(
        dir.path().join("typo.toml"),
        "[flakiness]\nstale_after = 5\n",
    )
    .unwrap();
    let out = run(omen(dir.path()).args(["--config", "typo.toml", "flaky", "--db", "h.db"]));
    out.code(2);
    assert!(
        out.stderr.contains("typo.toml") && out.stderr.contains("stale_after"),
        "{out}"
    );
    let out = run(omen(dir.path())
        .args(["flaky", "--db", "h.db"])
        .env("OMEN_CONFIG", "missing.toml"));
    out.code(2);
    assert!(out.stderr.contains("missing.toml"), "{out}");
}

/// The change evidence with real git: `omen ingest` reads what each default-branch commit changed
/// from the checkout. A test that failed twice, each time on a commit that changed its code and
/// was fixed by the next commit that changed it again, is a fixed regression; another test with
/// the same failures on commits that changed none of its code is flaky.
#[test]
fn failures_fixed_by_the_next_change_to_the_test_s_code_are_regressions_under_real_git() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    let git = |args: &[&str], at: i64| omen_tests::git_as(&repo, "dev", at, args);
    git(&["init", "-q", "-b", "main"], 0);
    // Which file each commit changes, and whether the export test fails on it.
    let plan: Vec<(&str, bool)> = [
        vec![("docs/a.md", false); 5],
        vec![("src/export.py", true), ("src/export.py", false)],
        vec![("docs/a.md", false); 6],
        vec![("src/export.py", true), ("src/export.py", false)],
        vec![("docs/a.md", false); 4],
    ]
    .concat();
    for (i, (file, export_fails)) in plan.iter().enumerate() {
        let at = 1_775_000_000 + i as i64 * 3600;
        let path = repo.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("revision {i}\n")).unwrap();
        std::fs::write(repo.join("tests/test_export.py"), "def test_csv(): pass\n").unwrap();
        std::fs::write(repo.join("tests/test_report.py"), "def test_pdf(): pass\n").unwrap();
        git(&["add", "-A"], at);
        git(&["commit", "-q", "-m", &format!("change {i}")], at);
        let sha = git(&["rev-parse", "HEAD"], at);
        // Both tests fail on the same commits with the same message each time; only the export
        // test's code changed on them.
        let case = |class: &str, name: &str, file: &str| {
            if *export_fails {
                format!(
                    "<testcase classname=\"{class}\" name=\"{name}\" file=\"{file}\"><failure message=\"AssertionError: assert 'a;b' == 'a,b'\">trace</failure></testcase>"
                )
            } else {
                format!("<testcase classname=\"{class}\" name=\"{name}\" file=\"{file}\"/>")
            }
        };
        let xml = format!(
            "<testsuite name=\"pytest\">{}{}{}</testsuite>",
            case("tests.test_export", "test_csv", "tests/test_export.py"),
            case("tests.test_report", "test_pdf", "tests/test_report.py"),
            (0..8)
                .map(|k| format!("<testcase classname=\"tests.test_misc\" name=\"test_{k}\" file=\"tests/test_misc.py\"/>"))
                .collect::<String>()
        );
        let report = dir.path().join(format!("run-{i}.xml"));
        std::fs::write(&report, xml).unwrap();
        omen_tests::ingest_main(&repo, i as u32 + 1, 1 + i as u32, Some(&sha), &report).code(0);
    }
    let explain = |test: &str| {
        let out =
            run(omen(&repo).args(["flaky", "--db", "h.db", "--test", test, "--format", "json"]));
        out.code(0);
        out.json()["tests"][0].clone()
    };
    let export = explain("tests/test_export.py::test_csv");
    assert_eq!(export["state"], "stable", "{export:#}");
    let ignored = export["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "not counted as flake evidence")
        .unwrap_or_else(|| panic!("{export:#}"));
    assert!(
        ignored["observed"]
            .as_str()
            .unwrap()
            .starts_with("2 isolated failure(s) on a commit that changed the test's code, fixed by the next commit that changed it again"),
        "{export:#}"
    );
    let report = explain("tests/test_report.py::test_pdf");
    assert_eq!(report["state"], "flaky", "{report:#}");
}

/// A CI checkout is shallow (`fetch-depth: 1`): on a default-branch run `omen ingest` fetches the
/// one parent it reads the change against, from the real remote.
#[test]
fn a_shallow_default_branch_checkout_fetches_the_parent_for_the_change_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    let git = |cwd: &Path, args: &[&str]| omen_tests::git_as(cwd, "dev", 1_775_000_000, args);
    git(&origin, &["init", "-q", "-b", "main"]);
    for i in 0..3 {
        std::fs::write(origin.join("export.py"), format!("{i}\n")).unwrap();
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-q", "-m", &format!("c{i}")]);
    }
    let url = format!("file://{}", origin.display());
    git(
        dir.path(),
        &["clone", "-q", "--depth", "1", &url, "checkout"],
    );
    let checkout = dir.path().join("checkout");
    let sha = git(&checkout, &["rev-parse", "HEAD"]);
    assert!(
        Command::new("git")
            .args(["rev-parse", "--verify", "-q", "HEAD^1"])
            .current_dir(&checkout)
            .output()
            .unwrap()
            .stdout
            .is_empty(),
        "the clone starts without the parent"
    );
    let report = dir.path().join("r.xml");
    std::fs::write(
        &report,
        "<testsuite><testcase classname=\"tests.test_export\" name=\"t\"/></testsuite>",
    )
    .unwrap();
    omen_tests::ingest_main(&checkout, 1, 1, Some(&sha), &report).code(0);
    let parent = git(&checkout, &["rev-parse", "HEAD^1"]);
    assert_eq!(parent.len(), 40, "the parent was fetched: {parent}");
    // Off the default branch nothing is fetched.
    git(dir.path(), &["clone", "-q", "--depth", "1", &url, "pr"]);
    let pr = dir.path().join("pr");
    let out = run(omen(&pr)
        .args([
            "ingest",
            "--db",
            "h.db",
            "--branch",
            "feature",
            "--default-branch",
            "main",
            "--commit",
            &sha,
        ])
        .arg(&report));
    out.code(0);
    assert_eq!(git(&pr, &["rev-parse", "--is-shallow-repository"]), "true");
    assert!(
        Command::new("git")
            .args(["rev-parse", "--verify", "-q", "HEAD^1"])
            .current_dir(&pr)
            .output()
            .unwrap()
            .stdout
            .is_empty()
    );
}
