//! `omen ci` and `omen comment` end to end, against a fake GitHub on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use omen_tests::fake_github::{FakeGitHub, PR, REPO, TOKEN};
use omen_tests::{git_as, omen, run};

const EVIL: &str = "<img src=x onerror=alert(1)> @everyone [x](javascript:alert(1))";

struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Runner {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("event.json"),
            format!(r#"{{"pull_request": {{"number": {PR}}}, "repository": {{"default_branch": "main"}}}}"#),
        )
        .unwrap();
        Runner { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn report(&self, cases: &[(&str, bool)]) {
        let mut xml = String::from("<testsuite name=\"pytest\">\n");
        for (name, failed) in cases {
            let esc = name
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;");
            if *failed {
                xml.push_str(&format!(
                    "<testcase classname=\"tests.test_app\" name=\"{esc}\" file=\"tests/test_app.py\" line=\"3\"><failure message=\"{esc} broke\">trace</failure></testcase>\n"
                ));
            } else {
                xml.push_str(&format!("<testcase classname=\"tests.test_app\" name=\"{esc}\" file=\"tests/test_app.py\"/>\n"));
            }
        }
        xml.push_str("</testsuite>\n");
        std::fs::write(self.path("junit.xml"), xml).unwrap();
    }

    /// `omen ci` as the action runs it on a pull request.
    fn ci(&self, gh: &FakeGitHub, run_id: &str, extra: &[&str]) -> omen_tests::Run {
        let mut cmd = self.actions(gh, run_id, extra);
        cmd.env("GITHUB_EVENT_NAME", "pull_request")
            .env("GITHUB_EVENT_PATH", self.path("event.json"))
            .env("GITHUB_HEAD_REF", "feature")
            .env("GITHUB_REF_NAME", format!("{PR}/merge"));
        run(&mut cmd)
    }

    /// `omen ci` as the action runs it on a push to the default branch `main`.
    fn push(&self, gh: &FakeGitHub, run_id: &str, extra: &[&str]) -> omen_tests::Run {
        std::fs::write(
            self.path("push.json"),
            r#"{"ref": "refs/heads/main", "repository": {"default_branch": "main"}}"#,
        )
        .unwrap();
        let mut cmd = self.actions(gh, run_id, extra);
        cmd.env("GITHUB_EVENT_NAME", "push")
            .env("GITHUB_EVENT_PATH", self.path("push.json"))
            .env("GITHUB_REF_NAME", "main");
        run(&mut cmd)
    }

    /// `omen ci` in GitHub Actions, before the event's own variables.
    fn actions(&self, gh: &FakeGitHub, run_id: &str, extra: &[&str]) -> Command {
        for f in ["summary.md", "output.txt"] {
            let _ = std::fs::remove_file(self.path(f));
        }
        let mut cmd: Command = omen(self.dir.path());
        cmd.args(["ci", "--reports", "junit.xml", "--db", "h.db"])
            .args(extra)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", REPO)
            .env("GITHUB_API_URL", &gh.url)
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_SHA", format!("{run_id:0>40}"))
            .env("GITHUB_RUN_ID", run_id)
            .env("GITHUB_RUN_ATTEMPT", "1")
            .env("GITHUB_JOB", "test")
            .env("GITHUB_STEP_SUMMARY", self.path("summary.md"))
            .env("GITHUB_OUTPUT", self.path("output.txt"))
            .env("RUNNER_TEMP", self.dir.path());
        cmd
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_default()
    }
}

fn writes(gh: &FakeGitHub) -> Vec<(String, u16)> {
    gh.seen()
        .into_iter()
        .filter(|s| s.method != "GET")
        .map(|s| (s.method, s.status))
        .collect()
}

#[test]
fn first_run_creates_second_run_updates_the_same_comment() {
    let gh = FakeGitHub::start();
    let r = Runner::new();
    r.report(&[("test_ok", false), ("test_new_bug", true)]);
    let first = r.ci(&gh, "1", &[]);
    first.code(1); // an unexcused failure fails the job by default
    assert_eq!(writes(&gh), [("POST".to_owned(), 201)], "{first}");
    for s in gh.seen() {
        assert_eq!(s.auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        assert!(
            !first.stdout.contains(TOKEN) && !first.stderr.contains(TOKEN),
            "the token is never printed"
        );
    }
    let list = &gh.seen()[0];
    assert_eq!(
        list.path,
        format!("/repos/{REPO}/issues/{PR}/comments?per_page=100&page=1")
    );
    let comments = gh.comments();
    assert_eq!(comments.len(), 1);
    assert!(comments[0].1.starts_with("<!-- omen:pr-comment v1 -->"));
    assert!(
        comments[0]
            .1
            .contains("New failures — likely from this change (1)")
    );
    // Outputs, summary and annotations.
    let outputs = r.read("output.txt");
    assert!(
        outputs.contains("tests=2\nfailed=1\nnew-failures=1\nflaky=0\nquarantined=0\n"),
        "{outputs}"
    );
    assert!(
        outputs.contains(&format!(
            "comment-url=https://github.com/{REPO}/pull/{PR}#issuecomment-"
        )),
        "{outputs}"
    );
    assert!(r.read("summary.md").contains("New failures"));
    assert!(first.stdout.contains("::error file=tests/test_app.py,line=3,title=New test failure%3A tests/test_app.py%3A%3Atest_new_bug::test_new_bug broke"), "{first}");

    r.report(&[("test_ok", false), ("test_new_bug", false)]);
    let second = r.ci(&gh, "2", &["--comment", "always"]);
    second.code(0);
    assert_eq!(
        writes(&gh),
        [("POST".to_owned(), 201), ("PATCH".to_owned(), 200)]
    );
    let comments = gh.comments();
    assert_eq!(comments.len(), 1, "never a second comment");
    assert!(
        comments[0].1.contains("all 2 tests passed"),
        "{}",
        comments[0].1
    );
}

#[test]
fn the_marker_is_found_on_page_two() {
    let gh = FakeGitHub::start();
    gh.seed_comments(150);
    let id = gh.seed_comment("<!-- omen:pr-comment v1 -->\nold");
    let r = Runner::new();
    r.report(&[("test_new_bug", true)]);
    r.ci(&gh, "1", &["--fail-on", "never"]).code(0);
    assert_eq!(writes(&gh), [("PATCH".to_owned(), 200)]);
    let pages: Vec<String> = gh
        .seen()
        .iter()
        .filter(|s| s.method == "GET")
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].ends_with("page=2"));
    assert!(
        gh.comments()
            .iter()
            .any(|(cid, b)| *cid == id && b.contains("New failures"))
    );
    assert_eq!(gh.comments().len(), 151);
}

#[test]
fn auto_mode_posts_nothing_for_a_clean_run() {
    let gh = FakeGitHub::start();
    let r = Runner::new();
    r.report(&[("test_ok", false)]);
    r.ci(&gh, "1", &[]).code(0);
    assert!(writes(&gh).is_empty(), "{:?}", gh.seen());
    assert!(gh.comments().is_empty());
    assert!(
        r.read("summary.md").contains("the 1 test passed"),
        "the job summary is still written"
    );
}

#[test]
fn a_read_only_token_posts_nothing_and_saves_the_comment() {
    let gh = FakeGitHub::start();
    gh.read_only();
    let r = Runner::new();
    r.report(&[("test_new_bug", true)]);
    let out = r.ci(&gh, "1", &["--fail-on", "never"]);
    out.code(0);
    assert!(gh.comments().is_empty());
    assert_eq!(writes(&gh), [("POST".to_owned(), 403)]);
    assert!(
        r.read("summary.md").contains("New failures"),
        "summary written"
    );
    let saved = r.read("omen-comment.md");
    assert!(
        saved.starts_with("<!-- omen:pr-comment v1 -->"),
        "comment saved for later"
    );
    assert!(
        out.stderr.contains("workflow_run") && out.stderr.contains("omen comment"),
        "says how to publish it\n{out}"
    );

    // `omen comment` publishes the saved body later (the workflow_run pattern).
    let gh2 = FakeGitHub::start();
    let posted = run(omen(r.dir.path())
        .args([
            "comment",
            "--body",
            "omen-comment.md",
            "--pr",
            &PR.to_string(),
        ])
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", REPO)
        .env("GITHUB_API_URL", &gh2.url));
    posted.code(0);
    assert_eq!(gh2.comments().len(), 1);
    assert!(
        posted.stdout.contains("created https://github.com/"),
        "{posted}"
    );
}

#[test]
fn a_502_is_retried_once() {
    let gh = FakeGitHub::start();
    gh.script(Some("POST"), 502, &[], r#"{"message": "Server Error"}"#);
    let r = Runner::new();
    r.report(&[("test_new_bug", true)]);
    r.ci(&gh, "1", &["--fail-on", "never"]).code(0);
    assert_eq!(
        writes(&gh),
        [("POST".to_owned(), 502), ("POST".to_owned(), 201)]
    );
    assert_eq!(gh.comments().len(), 1);
}

#[test]
fn a_secondary_rate_limit_waits_for_retry_after() {
    let gh = FakeGitHub::start();
    gh.script(
        Some("POST"),
        403,
        &[("retry-after", "1")],
        r#"{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#,
    );
    let r = Runner::new();
    r.report(&[("test_new_bug", true)]);
    let start = Instant::now();
    r.ci(&gh, "1", &["--fail-on", "never"]).code(0);
    assert!(
        start.elapsed().as_secs_f64() >= 1.0,
        "waited for Retry-After"
    );
    assert_eq!(
        writes(&gh),
        [("POST".to_owned(), 403), ("POST".to_owned(), 201)]
    );
}

#[test]
fn a_hostile_test_name_is_rendered_inert() {
    let gh = FakeGitHub::start();
    let r = Runner::new();
    r.report(&[(EVIL, true)]);
    r.ci(&gh, "1", &["--fail-on", "never"]).code(0);
    let body = &gh.comments()[0].1;
    for text in [body.as_str(), &r.read("summary.md")] {
        assert!(!text.contains("<img"), "{text}");
        assert!(!text.contains("@everyone"), "{text}");
        assert!(!text.contains("javascript:"), "{text}");
        assert!(!text.contains("](javascript"), "{text}");
    }
}

#[test]
fn an_oversized_comment_is_cut_cleanly() {
    let gh = FakeGitHub::start();
    let r = Runner::new();
    let names: Vec<String> = (0..3000)
        .map(|i| format!("test_{i}_{}", "n".repeat(60)))
        .collect();
    let cases: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), true)).collect();
    r.report(&cases);
    r.ci(&gh, "1", &["--fail-on", "never"]).code(0);
    let body = &gh.comments()[0].1;
    assert!(body.chars().count() <= 65_536);
    assert!(body.contains("3000 tests failed"));
    assert!(body.contains("more in the full report"));
    assert!(
        r.read("summary.md")
            .matches("| tests/test\\_app.py::test\\_")
            .count()
            >= 3000,
        "the summary has them all"
    );
}

#[test]
fn locally_it_prints_what_it_would_post() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("junit.xml"),
        r#"<testsuite><testcase classname="C" name="t"><failure message="boom"/></testcase></testsuite>"#,
    )
    .unwrap();
    let out = run(omen(dir.path()).args([
        "ci",
        "--reports",
        "junit.xml",
        "--db",
        "h.db",
        "--commit",
        "c",
        "--branch",
        "x",
    ]));
    out.code(1);
    assert!(
        out.stdout.starts_with("<!-- omen:pr-comment v1 -->"),
        "{out}"
    );
    assert!(out.stderr.contains("not excused"), "{out}");
    let _ = Path::new("unused");
}

#[test]
fn the_action_passes_inputs_only_through_env() {
    // A `${{ }}` expression pasted into shell text is a script-injection hole; inputs must reach
    // the scripts through `env:`.
    let action = std::fs::read_to_string(omen_tests::repo_root().join("action.yml")).unwrap();
    let mut in_run = false;
    let mut run_indent = 0;
    let mut checked = 0;
    for line in action.lines() {
        let indent = line.len() - line.trim_start().len();
        if in_run && !line.trim().is_empty() && indent <= run_indent {
            in_run = false;
        }
        if in_run {
            assert!(!line.contains("${{"), "expression in shell text: {line}");
            checked += 1;
        }
        if let Some(rest) = line.trim_start().strip_prefix("run:") {
            assert!(!rest.contains("${{"), "expression in shell text: {line}");
            in_run = rest.trim() == "|";
            run_indent = indent;
            checked += 1;
        }
    }
    assert!(checked > 5, "found the run: blocks");
    for input in [
        "reports",
        "db-path",
        "cache",
        "comment",
        "fail-on",
        "quarantine-file",
        "github-token",
        "strict",
        "risk",
        "risk-gate",
        "risk-threshold",
        "accept-risk",
        "version",
    ] {
        assert!(
            action.contains(&format!("\n  {input}:\n")),
            "input {input} is declared"
        );
    }
}

#[test]
fn on_the_default_branch_ci_refreshes_the_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let report = |name: &str, flaky_fails: bool| {
        let failure = if flaky_fails {
            "<failure message=\"timeout\"/>"
        } else {
            ""
        };
        std::fs::write(
            dir.path().join(name),
            format!("<testsuite name=\"pytest\"><testcase classname=\"tests.t\" name=\"test_flaky\">{failure}</testcase><testcase classname=\"tests.t\" name=\"test_ok\"/></testsuite>"),
        )
        .unwrap();
    };
    let ci = |commit: &str, run: &str, attempt: &str, report_name: &str| {
        run_omen(
            dir.path(),
            &[
                "ci",
                "--reports",
                report_name,
                "--db",
                "h.db",
                "--fail-on",
                "never",
                "--comment",
                "off",
                "--commit",
                commit,
                "--branch",
                "main",
                "--default-branch",
                "main",
                "--run-id",
                run,
                "--attempt",
                attempt,
            ],
        )
    };
    for i in 1..=6 {
        let c = format!("c{i}");
        report("r.xml", i == 3);
        ci(&c, &i.to_string(), "1", "r.xml").code(0);
        if i == 3 {
            report("r.xml", false);
            ci(&c, &i.to_string(), "2", "r.xml").code(0);
        }
    }
    let q = std::fs::read_to_string(dir.path().join(".omen/quarantine.json")).unwrap();
    assert!(q.contains("\"id\": \"tests.t::test_flaky\""), "{q}");
    assert!(!q.contains("test_ok"));
}

fn run_omen(dir: &Path, args: &[&str]) -> omen_tests::Run {
    run(omen(dir).args(args))
}

#[test]
fn when_github_keeps_failing_omen_warns_saves_the_comment_and_does_not_fail_the_build() {
    let gh = FakeGitHub::start();
    for _ in 0..3 {
        gh.script(Some("POST"), 502, &[], r#"{"message": "Server Error"}"#);
    }
    let r = Runner::new();
    std::fs::write(
        r.path("fast.toml"),
        "[github]\nretry_attempts = 3\nretry_backoff_ms = 10\n",
    )
    .unwrap();
    r.report(&[("test_new_bug", true)]);
    let out = r.ci(&gh, "1", &["--config", "fast.toml", "--fail-on", "never"]);
    out.code(0);
    assert_eq!(
        writes(&gh),
        [
            ("POST".to_owned(), 502),
            ("POST".to_owned(), 502),
            ("POST".to_owned(), 502)
        ]
    );
    assert!(
        out.stderr.contains("after 3 attempt(s)") && out.stderr.contains("saved to"),
        "{out}"
    );
    assert!(
        r.read("omen-comment.md")
            .starts_with("<!-- omen:pr-comment v1 -->")
    );
    // With --strict, Omen's own trouble fails the step.
    for _ in 0..3 {
        gh.script(Some("PATCH"), 502, &[], r#"{"message": "Server Error"}"#);
        gh.script(Some("POST"), 502, &[], r#"{"message": "Server Error"}"#);
    }
    r.ci(
        &gh,
        "2",
        &["--config", "fast.toml", "--fail-on", "never", "--strict"],
    )
    .code(3);
}

/// The CI and deploy signals stored with the newest prediction in `db`.
fn latest_prediction_signals(db: &Path) -> omen_risk::signals::Signals {
    let newest = omen_store::Store::open_read_only(db)
        .unwrap()
        .latest_prediction()
        .unwrap()
        .expect("a prediction was recorded");
    omen_risk::signals::Signals::decode(&newest.signals.expect("with its signals")).unwrap()
}

/// Commit everything in `dir` as `author`, `days` days after 2024-01-01.
fn commit_all(dir: &Path, author: &str, days: i64, message: &str) {
    let when = 1_704_067_200 + days * 86_400;
    git_as(dir, author, when, &["add", "-A", "src"]);
    git_as(dir, author, when, &["commit", "-q", "-m", message]);
}

/// A repository in `dir` whose first commit (alice's, on 2024-01-01) adds `src/app.py`.
fn init_app_repo(dir: &Path) {
    git_as(dir, "alice", 1_704_067_200, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/app.py"), "def f():\n    return 1\n").unwrap();
    commit_all(dir, "alice", 0, "start");
}

#[test]
fn deploy_risk_reaches_the_comment_the_outputs_and_the_gate() {
    let gh = FakeGitHub::start();
    let r = Runner::new();
    let d = r.dir.path();
    init_app_repo(d);
    // The change under review: many files, a TODO, no test touched.
    for i in 0..12 {
        std::fs::create_dir_all(d.join(format!("src/m{i}"))).unwrap();
        let body: String = (0..40)
            .map(|j| format!("x{j} = {j}  # TODO later\n"))
            .collect();
        std::fs::write(d.join(format!("src/m{i}/mod.py")), body).unwrap();
    }
    std::fs::write(d.join("src/m0/helper.py"), "def helper():\n    return 1\n").unwrap();
    commit_all(d, "bob", 1, "big change");
    r.report(&[("test_ok", false)]);

    // The gate at 0 blocks, and says how to override.
    let blocked = r.ci(&gh, "1", &["--risk-gate", "--risk-threshold", "0"]);
    blocked.code(1);
    assert!(blocked.stderr.contains("omen:accept-risk"), "{blocked}");
    let outputs = r.read("output.txt");
    let risk: f64 = outputs
        .lines()
        .find_map(|l| l.strip_prefix("risk="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..=1.0).contains(&risk), "{outputs}");
    let level = outputs
        .lines()
        .find_map(|l| l.strip_prefix("risk-level="))
        .unwrap();
    assert!(
        ["LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&level),
        "{outputs}"
    );
    // All tests passed, yet the blocked gate is worth a comment.
    let comments = gh.comments();
    assert_eq!(comments.len(), 1, "{blocked}");
    let body = &comments[0].1;
    assert!(body.contains(&format!("Deploy risk: {level}")), "{body}");
    assert!(body.contains("**Gate: blocked** (threshold 0%)"), "{body}");
    assert!(
        body.contains("adds 480 TODO/FIXME lines"),
        "the diff hint is shown\n{body}"
    );
    assert!(
        body.contains("adds 1 new function and touches no test file"),
        "{body}"
    );
    assert!(r.read("summary.md").contains("Deploy risk:"));
    // The prediction is recorded with the change's signals, unknown ones as unknown.
    let signals = latest_prediction_signals(&d.join("h.db"));
    use omen_risk::signals::Signal;
    assert_eq!(signals.get(Signal::NewFailures), Some(0.0));
    assert_eq!(signals.get(Signal::Authors), Some(1.0), "bob alone");
    assert_eq!(
        signals.get(Signal::TestDelta),
        None,
        "no default-branch run yet"
    );
    assert_eq!(
        signals.get(Signal::HoursSinceDeploy),
        None,
        "no deploy recorded"
    );
    assert_eq!(
        signals.get(Signal::ReviewHours),
        None,
        "the event has no created_at"
    );

    // The pull request label accepts the risk: same comment updated, the step passes.
    std::fs::write(
        d.join("event.json"),
        format!(r#"{{"pull_request": {{"number": {PR}, "labels": [{{"name": "omen:accept-risk"}}]}}, "repository": {{"default_branch": "main"}}}}"#),
    )
    .unwrap();
    let accepted = r.ci(&gh, "2", &["--risk-gate", "--risk-threshold", "0"]);
    accepted.code(0);
    let comments = gh.comments();
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].1.contains("risk accepted by a reviewer"),
        "{}",
        comments[0].1
    );

    // A threshold above the risk passes without the label; `--risk off` scores nothing.
    std::fs::write(
        d.join("event.json"),
        format!(
            r#"{{"pull_request": {{"number": {PR}}}, "repository": {{"default_branch": "main"}}}}"#
        ),
    )
    .unwrap();
    r.ci(&gh, "3", &["--risk-gate", "--risk-threshold", "1"])
        .code(0);
    // On a push the gate only reports: the accept label of the merged pull request is gone.
    let push = run(omen(d).args([
        "ci",
        "--reports",
        "junit.xml",
        "--db",
        "h.db",
        "--comment",
        "off",
        "--risk-gate",
        "--risk-threshold",
        "0",
        "--commit",
        "c0ffee",
        "--branch",
        "main",
        "--default-branch",
        "main",
    ]));
    push.code(0);
    let off = r.ci(&gh, "4", &["--risk", "off", "--risk-gate"]);
    off.code(0);
    assert!(
        r.read("output.txt").contains("\nrisk=\nrisk-level=\n"),
        "{off}"
    );
    // A failing test that is new, and one test more than the latest default-branch run.
    r.report(&[("test_ok", false), ("test_new", true)]);
    std::fs::write(
        d.join("event.json"),
        format!(
            r#"{{"pull_request": {{"number": {PR}, "created_at": "2024-01-01T00:00:00Z"}}, "repository": {{"default_branch": "main"}}}}"#
        ),
    )
    .unwrap();
    r.ci(&gh, "5", &["--fail-on", "never"]).code(0);
    let signals = latest_prediction_signals(&d.join("h.db"));
    assert_eq!(signals.get(Signal::NewFailures), Some(1.0));
    assert_eq!(signals.get(Signal::TestDelta), Some(1.0));
    assert!(signals.get(Signal::ReviewHours).is_some_and(|h| h > 0.0));
}

/// Labelled past predictions whose recorded signals tell risky changes apart while the model's
/// own probability (a constant 0.2) cannot: a run's new test failures make a change risky 4 times
/// in 5, their absence 1 time in 10. Changes are dated 2020, long past the label latency.
fn seed_labelled_predictions(db: &Path, from: usize, n: usize) {
    use omen_risk::features::Feature;
    use omen_risk::signals::{Signal, Signals};
    let mut store = omen_store::Store::open(db, 0).unwrap().store;
    let state = store
        .risk_state()
        .unwrap()
        .expect("a scored run stored the repository history");
    let mut changes = Vec::new();
    let mut risky_shas = Vec::new();
    for i in from..from + n {
        let sha = format!("5eed{i:036x}");
        let failures = if i % 3 == 0 { 2.0 } else { 0.0 };
        let risky = if failures > 0.0 {
            i % 5 != 0
        } else {
            i % 10 == 0
        };
        let at = 1_577_836_800 + i as i64 * 3600;
        changes.push(omen_store::ChangeRow {
            sha: sha.clone(),
            seq: i as i64 - 1_000_000,
            at,
            author: "seed".into(),
            fix: false,
            features: vec![0.0; Feature::ALL.len()],
            risky: None,
            label_source: None,
        });
        if risky {
            risky_shas.push(sha.clone());
        }
        let mut signals = Signals::default();
        signals.set(Signal::NewFailures, failures);
        signals.set(Signal::Authors, 1.0);
        store
            .record_prediction(&omen_store::NewPrediction {
                head: &sha,
                base: None,
                at,
                probability: 0.2,
                base_probability: 0.2,
                source: "prior",
                model_id: None,
                signals: Some(&signals.encode()),
            })
            .unwrap();
    }
    // The repository history state is written back unchanged.
    store
        .record_changes(
            &changes,
            &state.history,
            state.commits,
            &state.last_commit,
            0,
        )
        .unwrap();
    store
        .label_risky(&risky_shas, omen_core::label::LabelSource::Revert, None)
        .unwrap();
}

/// (probability, base probability) of the latest prediction.
fn latest_probabilities(db: &Path) -> (f64, f64) {
    let newest = omen_store::Store::open_read_only(db)
        .unwrap()
        .latest_prediction()
        .unwrap()
        .expect("a prediction was recorded");
    (newest.probability, newest.base_probability)
}

#[test]
fn learned_signals_adjust_the_score_once_they_beat_the_model_alone() {
    let gh = FakeGitHub::start();
    let r = Runner::new();
    let d = r.dir.path();
    init_app_repo(d);
    std::fs::write(d.join("src/app.py"), "def f():\n    return 2\n").unwrap();
    commit_all(d, "bob", 1, "change");

    // Without labelled predictions the signals are shown but do not move the score.
    r.report(&[("test_ok", false), ("test_new", true)]);
    r.ci(&gh, "1", &["--fail-on", "never"]).code(0);
    let (p, base) = latest_probabilities(&d.join("h.db"));
    assert_eq!(p, base);
    let body = gh.comments()[0].1.clone();
    assert!(!body.contains("before CI signals"));
    const FAILED: &str =
        "1 test failed in this run that is neither known flaky nor failing on the default branch";
    assert!(
        body.contains(&format!("- {FAILED}")),
        "a signal line\n{body}"
    );
    assert!(
        !body.contains(&format!("+ {FAILED}")),
        "not a factor\n{body}"
    );

    seed_labelled_predictions(&d.join("h.db"), 0, 400);
    // Same change, same new failure: now the learned signals raise the risk and say why.
    r.ci(&gh, "2", &["--fail-on", "never"]).code(0);
    let (with_failure, base) = latest_probabilities(&d.join("h.db"));
    assert!(
        with_failure > base + 0.1,
        "{with_failure} from the model's {base}"
    );
    let body = gh.comments()[0].1.clone();
    let model_line = format!(
        "{:.0}% before CI signals, whose weights were learned from 400 past predictions",
        base * 100.0
    );
    assert!(body.contains(&model_line), "{body}");
    assert!(body.contains(&format!("+ {FAILED}")), "{body}");
    assert_eq!(
        body.matches(FAILED).count(),
        1,
        "a factor, no longer also a signal line\n{body}"
    );

    // The same change without the failure scores lower, and the base probability recorded is
    // the model's alone.
    r.report(&[("test_ok", false), ("test_new", false)]);
    r.ci(&gh, "3", &["--fail-on", "never"]).code(0);
    let (without, base_again) = latest_probabilities(&d.join("h.db"));
    assert!(without < with_failure - 0.2, "{without} vs {with_failure}");
    assert_eq!(base_again, base);
    let body = gh.comments()[0].1.clone();
    assert!(
        body.contains("− no new test failures in this run"),
        "{body}"
    );

    // Past the 5,000 newest labelled predictions, older ones are never read again: pruned.
    seed_labelled_predictions(&d.join("h.db"), 400, 5_000);
    let count = |db: &Path| -> u64 {
        omen_store::Store::open_read_only(db)
            .unwrap()
            .prediction_count()
            .unwrap()
    };
    assert_eq!(count(&d.join("h.db")), 5_403);
    r.ci(&gh, "4", &["--fail-on", "never"]).code(0);
    // The newest 5,000 labelled (all seeded) and the 3 runs' own, unlabelled, plus this one's.
    assert_eq!(count(&d.join("h.db")), 5_004);
    let body = gh.comments()[0].1.clone();
    assert!(
        body.contains("weights were learned from 5000 past predictions"),
        "{body}"
    );
}

/// A push to the default branch has no pull request event, so `omen ci` asks GitHub which merged
/// pull request produced the commit and records how long it was open: the predictions the
/// default branch's database keeps then carry the review-time signal too. A failed lookup leaves
/// the signal unknown and costs the build nothing.
#[test]
fn a_push_records_how_long_its_merged_pull_request_was_open() {
    use omen_risk::signals::Signal;
    let gh = FakeGitHub::start();
    let r = Runner::new();
    let d = r.dir.path();
    init_app_repo(d);
    std::fs::write(d.join("src/app.py"), "def f():\n    return 2\n").unwrap();
    commit_all(d, "bob", 1, "Return 2 (#7)");
    let head = git_as(d, "bob", 0, &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    gh.seed_merged_pull(&head, 7, "2024-01-01T08:00:00Z", "2024-01-02T10:00:00Z");
    r.report(&[("test_ok", false)]);

    let push = r.push(&gh, "1", &[]);
    push.code(0);
    let signals = latest_prediction_signals(&d.join("h.db"));
    assert_eq!(signals.get(Signal::ReviewHours), Some(26.0), "{push}");
    let lookups: Vec<_> = gh
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("/pulls"))
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(lookups[0].method, "GET");
    assert_eq!(
        lookups[0].path,
        format!("/repos/{REPO}/commits/{head}/pulls")
    );
    assert_eq!(
        lookups[0].auth.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(lookups[0].status, 200);
    assert!(
        r.read("summary.md")
            .contains("7 was open for 26 h before it was merged"),
        "{}",
        r.read("summary.md")
    );
    assert!(!push.stderr.contains(TOKEN) && !push.stdout.contains(TOKEN));

    // A direct push (no pull request) and a lookup GitHub refuses both leave it unknown.
    std::fs::write(d.join("src/app.py"), "def f():\n    return 3\n").unwrap();
    commit_all(d, "bob", 2, "Return 3");
    r.push(&gh, "2", &[]).code(0);
    assert_eq!(
        latest_prediction_signals(&d.join("h.db")).get(Signal::ReviewHours),
        None
    );
    gh.script(
        Some("GET"),
        403,
        &[],
        r#"{"message": "Resource not accessible by integration"}"#,
    );
    std::fs::write(d.join("src/app.py"), "def f():\n    return 4\n").unwrap();
    commit_all(d, "bob", 3, "Return 4 (#8)");
    let refused = r.push(&gh, "3", &["--strict"]);
    refused.code(0);
    assert_eq!(
        latest_prediction_signals(&d.join("h.db")).get(Signal::ReviewHours),
        None
    );
    // Pull request runs read their own event and never look a commit up.
    let before = gh
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/pulls"))
        .count();
    r.ci(&gh, "4", &["--comment", "off"]).code(0);
    let after = gh
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/pulls"))
        .count();
    assert_eq!(before, after);
}

#[test]
fn the_default_branch_proposes_its_quarantine_as_one_pull_request_kept_current() {
    let gh = FakeGitHub::start();
    let main_sha = "a".repeat(40);
    gh.seed_branch("main", &main_sha);
    let r = Runner::new();
    let junit = |flaky: &[&str]| {
        // A suite of 60 so that two flaky tests stay under the guard's 5%.
        let mut xml = String::from("<testsuite name=\"pytest\">\n");
        for i in 0..60 {
            xml.push_str(&format!("<testcase classname=\"tests.test_app\" name=\"test_ok_{i}\" file=\"tests/test_app.py\"/>\n"));
        }
        for name in flaky {
            // Failed, then passed on a retry within the run: same-commit flakiness.
            xml.push_str(&format!(
                "<testcase classname=\"tests.test_app\" name=\"{name}\" file=\"tests/test_app.py\"><flakyFailure message=\"timeout talking to the cache\">trace</flakyFailure></testcase>\n"
            ));
        }
        xml.push_str("</testsuite>\n");
        std::fs::write(r.path("junit.xml"), xml).unwrap();
    };
    let proposal_requests = |gh: &FakeGitHub| {
        gh.seen()
            .into_iter()
            .filter(|s| {
                s.path.contains("/git/")
                    || s.path.contains("/contents/")
                    || s.path.contains("/pulls?")
                    || s.path.ends_with("/pulls")
            })
            .filter(|s| !s.path.contains("/commits/"))
            .count()
    };

    // First default-branch run that learns a flaky test: a branch, a commit, a pull request.
    junit(&["test_flaky_a"]);
    let first = r.push(&gh, "1", &["--propose-quarantine", "--risk", "off"]);
    first.code(0);
    let branch = gh
        .branch("omen/quarantine")
        .expect("the proposal branch exists");
    assert_ne!(
        branch, main_sha,
        "the file is committed on top of main\n{first}"
    );
    let file = gh
        .file("omen/quarantine", ".omen/quarantine.json")
        .expect("the file is committed");
    assert!(file.contains("tests/test_app.py::test_flaky_a"), "{file}");
    assert_eq!(
        file,
        r.read(".omen/quarantine.json"),
        "the proposed file is the refreshed one"
    );
    let pulls = gh.open_pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(
        (pulls[0].head.as_str(), pulls[0].base.as_str()),
        ("omen/quarantine", "main")
    );
    assert!(
        pulls[0]
            .body
            .contains("| added | tests/test\\_app.py::test\\_flaky\\_a |")
            || pulls[0].body.contains("test_flaky_a")
            || pulls[0].body.contains("test\\_flaky\\_a"),
        "{}",
        pulls[0].body
    );
    assert!(
        pulls[0]
            .body
            .contains("failed and passed on the same commit"),
        "{}",
        pulls[0].body
    );
    for s in gh.seen() {
        assert_eq!(
            s.auth.as_deref(),
            Some(&*format!("Bearer {TOKEN}")),
            "{s:?}"
        );
        let lookup_of_nothing = s.method == "GET" && s.status == 404;
        assert!(
            s.status < 300 || lookup_of_nothing,
            "every write is one GitHub accepts: {s:?}"
        );
    }
    assert!(!first.stderr.contains(TOKEN) && !first.stdout.contains(TOKEN));

    // Main moves on and another test turns out flaky: the same pull request, brought up to date.
    let main_sha = "b".repeat(40);
    gh.seed_branch("main", &main_sha);
    // A fresh checkout of main, where the proposal is not merged: no quarantine file.
    std::fs::remove_file(r.path(".omen/quarantine.json")).unwrap();
    junit(&["test_flaky_a", "test_flaky_b"]);
    let second = r.push(&gh, "2", &["--propose-quarantine", "--risk", "off"]);
    second.code(0);
    let pulls = gh.open_pulls();
    assert_eq!(pulls.len(), 1, "one pull request, kept current\n{pulls:?}");
    assert!(
        pulls[0].body.contains("flaky\\_b") || pulls[0].body.contains("flaky_b"),
        "{}",
        pulls[0].body
    );
    let file = gh.file("omen/quarantine", ".omen/quarantine.json").unwrap();
    assert!(
        file.contains("test_flaky_a") && file.contains("test_flaky_b"),
        "{file}"
    );
    let refs: Vec<_> = gh
        .seen()
        .into_iter()
        .filter(|s| s.method == "PATCH" && s.path.contains("/git/refs/heads/omen/quarantine"))
        .collect();
    assert_eq!(
        refs.len(),
        1,
        "the branch is moved onto the new main\n{refs:?}"
    );
    assert!(
        refs[0].body.contains("\"force\":true") && refs[0].body.contains(&main_sha),
        "{:?}",
        refs[0]
    );

    // The proposal merged (main has the file): nothing changed, nothing is proposed. A pull
    // request's run never proposes.
    let before = proposal_requests(&gh);
    let third = r.push(&gh, "3", &["--propose-quarantine", "--risk", "off"]);
    third.code(0);
    assert_eq!(
        proposal_requests(&gh),
        before,
        "an unchanged quarantine proposes nothing"
    );
    junit(&["test_flaky_c"]);
    let pr = r.ci(&gh, "4", &["--propose-quarantine", "--risk", "off"]);
    pr.code(0);
    assert_eq!(
        proposal_requests(&gh),
        before,
        "a pull request never proposes\n{pr}"
    );
    // A quarantine file outside the checkout is never proposed (it is not the committed one).
    let outside = tempfile::tempdir().unwrap();
    let abs = outside.path().join("quarantine.json");
    junit(&["test_flaky_a", "test_flaky_b", "test_flaky_d"]);
    let elsewhere = r.push(
        &gh,
        "5",
        &[
            "--propose-quarantine",
            "--risk",
            "off",
            "--quarantine-file",
            abs.to_str().unwrap(),
        ],
    );
    elsewhere.code(0);
    assert_eq!(proposal_requests(&gh), before, "{elsewhere}");
    assert!(
        elsewhere
            .stderr
            .contains("is not a path inside the repository"),
        "{elsewhere}"
    );
}
