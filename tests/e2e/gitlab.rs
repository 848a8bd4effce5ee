//! The GitLab client against a fake GitLab API on 127.0.0.1 (`omen_tests::fake_gitlab`), and
//! `omen ci` in a GitLab merge request pipeline.

use std::time::Duration;

use omen_forge::{ForgeError, GitLab, RetryPolicy, Token};
use omen_tests::fake_gitlab::{self, BOT, FakeGitLab, MR, PERSON, PROJECT_ID, PROJECT_PATH};

const MARKER: &str = "<!-- omen:report -->";

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
        budget: Duration::from_secs(5),
    }
}

fn client(fake: &FakeGitLab, project: &str) -> GitLab {
    GitLab::new(
        &fake.api_url,
        &Token::new(fake_gitlab::TOKEN),
        project,
        Some("https://gitlab.example.com/omen-ci/widgets"),
        quick(),
    )
    .unwrap()
}

#[test]
fn omen_s_note_on_page_3_of_250_is_found_and_updated_not_duplicated() {
    let fake = FakeGitLab::start();
    for i in 0..230 {
        if i % 3 == 0 {
            fake.seed_note(PERSON, &format!("looks good {i}"), false);
        } else {
            fake.seed_note(PERSON, &format!("added {i} commit"), true);
        }
    }
    let ours = fake.seed_note(BOT, &format!("{MARKER}\nold report"), false);
    for i in 0..19 {
        fake.seed_note(PERSON, &format!("later {i}"), false);
    }
    assert_eq!(fake.notes().len(), 250);
    let gl = client(&fake, &PROJECT_ID.to_string());
    let posted = gl
        .upsert_comment(MR, MARKER, &format!("{MARKER}\nnew report"))
        .unwrap();
    assert!(posted.updated);
    assert_eq!(
        posted.url,
        format!("https://gitlab.example.com/omen-ci/widgets/-/merge_requests/{MR}#note_{ours}")
    );
    let notes = fake.notes();
    assert_eq!(notes.len(), 250, "no second note");
    let note = notes.iter().find(|n| n.id == ours).unwrap();
    assert_eq!(note.body, format!("{MARKER}\nnew report"));
    let seen = fake.seen();
    let pages: Vec<_> = seen
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/notes"))
        .map(|s| s.path.clone())
        .collect();
    // 100 a page: Omen's note (the 231st) is on page 3.
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].ends_with("per_page=100&page=3"), "{pages:?}");
    assert!(seen.iter().all(|s| s.credential == "private"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|s| s.method == "PUT" && s.path.ends_with(&format!("/notes/{ours}")))
    );
}

#[test]
fn the_first_run_creates_one_note_and_the_next_updates_it() {
    let fake = FakeGitLab::start();
    fake.seed_note(PERSON, "please look at the flaky test", false);
    let gl = client(&fake, PROJECT_PATH);
    let first = gl
        .upsert_comment(MR, MARKER, &format!("{MARKER}\none"))
        .unwrap();
    assert!(!first.updated);
    let second = gl
        .upsert_comment(MR, MARKER, &format!("{MARKER}\ntwo"))
        .unwrap();
    assert!(second.updated);
    let ours: Vec<_> = fake
        .notes()
        .into_iter()
        .filter(|n| n.author == BOT)
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].body, format!("{MARKER}\ntwo"));
    // The project path is sent URL-encoded, as GitLab requires.
    assert!(
        fake.seen().iter().all(|s| s.path == "/api/v4/user"
            || s.path.starts_with("/api/v4/projects/omen-ci%2Fwidgets/")),
        "{:?}",
        fake.seen()
    );
}

#[test]
fn a_note_with_omen_s_marker_written_by_someone_else_is_never_edited() {
    let fake = FakeGitLab::start();
    let quoted = fake.seed_note(PERSON, &format!("> {MARKER}\n> quoted Omen report"), false);
    let gl = client(&fake, "42");
    let posted = gl
        .upsert_comment(MR, MARKER, &format!("{MARKER}\nreport"))
        .unwrap();
    assert!(!posted.updated);
    let notes = fake.notes();
    assert_eq!(notes.len(), 2);
    assert_eq!(
        notes.iter().find(|n| n.id == quoted).unwrap().body,
        format!("> {MARKER}\n> quoted Omen report")
    );
    assert!(!fake.seen().iter().any(|s| s.method == "PUT"));
    // A clean run with nothing of Omen's to update posts nothing.
    let fake = FakeGitLab::start();
    fake.seed_note(PERSON, &format!("> {MARKER}"), false);
    let gl = client(&fake, "42");
    assert_eq!(gl.update_comment_if_present(MR, MARKER, "x").unwrap(), None);
    assert_eq!(fake.notes().len(), 1);
}

#[test]
fn server_errors_and_rate_limits_are_retried_within_the_budget() {
    let fake = FakeGitLab::start();
    fake.script(502, &[], "<html>bad gateway</html>");
    fake.script(429, &[("retry-after", "1")], r#"{"message":"Retry later"}"#);
    let gl = client(&fake, "42");
    let started = std::time::Instant::now();
    let posted = gl
        .upsert_comment(MR, MARKER, &format!("{MARKER}\nr"))
        .unwrap();
    assert!(!posted.updated);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let statuses: Vec<u16> = fake.seen().iter().map(|s| s.status).collect();
    assert_eq!(&statuses[..3], &[502, 429, 200], "{statuses:?}");
    // Still failing after the attempts: an error naming GitLab, nothing posted.
    let fake = FakeGitLab::start();
    for _ in 0..3 {
        fake.script(503, &[], r#"{"message":"maintenance"}"#);
    }
    let err = client(&fake, "42")
        .upsert_comment(MR, MARKER, "x")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::Failed {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("GitLab"), "{err}");
    assert!(fake.notes().is_empty());
}

#[test]
fn a_report_over_gitlab_s_limit_is_cut_at_a_row_and_accepted() {
    let fake = FakeGitLab::start();
    let row = "| `tests/test_x.py::test_case` | failed | new |\n";
    let body = format!("{MARKER}\n{}", row.repeat(1_000_000 / row.len() + 100));
    assert!(body.chars().count() > 1_000_000);
    client(&fake, "42")
        .upsert_comment(MR, MARKER, &body)
        .unwrap();
    let note = &fake.notes()[0];
    assert!(note.body.chars().count() <= 1_000_000);
    assert!(note.body.starts_with(MARKER));
    assert!(note.body.contains("Cut to fit GitLab's note limit"));
}

#[test]
fn a_wrong_token_is_refused_and_the_merged_request_of_a_commit_is_found() {
    let fake = FakeGitLab::start();
    let bad = GitLab::new(
        &fake.api_url,
        &Token::new("glpat-wrong"),
        "42",
        None,
        quick(),
    )
    .unwrap();
    let err = bad.upsert_comment(MR, MARKER, "x").unwrap_err();
    assert!(
        matches!(err, ForgeError::Forbidden { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("glpat"), "{err}");
    let sha = "0123456789abcdef0123456789abcdef01234567";
    fake.seed_merged_request(sha, 12, "2026-11-30T08:00:00Z", "2026-12-01T09:30:00Z");
    let mr = client(&fake, "42").merged_pull_of(sha).unwrap().unwrap();
    assert_eq!(
        (mr.number, mr.merged_at.as_str()),
        (12, "2026-12-01T09:30:00Z")
    );
    assert_eq!(
        client(&fake, "42").merged_pull_of(&"f".repeat(40)).unwrap(),
        None
    );
}

/// A merge request pipeline's job: `omen ci` with GitLab's predefined variables.
fn gitlab_ci(
    dir: &std::path::Path,
    fake: &FakeGitLab,
    pipeline: u32,
    token: &[(&str, &str)],
    args: &[&str],
) -> omen_tests::Run {
    let mut cmd = omen_tests::omen(dir);
    cmd.args(["ci", "--reports", "junit.xml", "--db", "h.db"])
        .args(args)
        .env("GITLAB_CI", "true")
        .env("CI_API_V4_URL", &fake.api_url)
        .env("CI_PROJECT_ID", PROJECT_ID.to_string())
        .env("CI_PROJECT_PATH", PROJECT_PATH)
        .env(
            "CI_PROJECT_URL",
            "https://gitlab.example.com/omen-ci/widgets",
        )
        .env("CI_PROJECT_DIR", dir)
        .env("CI_PIPELINE_ID", pipeline.to_string())
        .env("CI_PIPELINE_SOURCE", "merge_request_event")
        .env("CI_JOB_ID", (1000 + pipeline).to_string())
        .env("CI_JOB_NAME", "omen")
        .env(
            "CI_JOB_URL",
            format!(
                "https://gitlab.example.com/omen-ci/widgets/-/jobs/{}",
                1000 + pipeline
            ),
        )
        .env("CI_COMMIT_SHA", format!("{pipeline:0>40}"))
        .env("CI_COMMIT_REF_NAME", "feature")
        .env("CI_MERGE_REQUEST_IID", MR.to_string())
        .env("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature")
        .env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")
        .env("CI_DEFAULT_BRANCH", "main")
        .env("CI_JOB_TOKEN", fake_gitlab::JOB_TOKEN)
        .env("OMEN_DOTENV", dir.join("omen.env"))
        .env("OMEN_CODEQUALITY", dir.join("gl-code-quality.json"));
    for (k, v) in token {
        cmd.env(k, v);
    }
    omen_tests::run(&mut cmd)
}

fn junit(dir: &std::path::Path, failing: &str) {
    std::fs::write(
        dir.join("junit.xml"),
        format!(
            r#"<testsuite name="pytest"><testcase classname="tests.test_app" name="test_ok" file="tests/test_app.py"/>
<testcase classname="tests.test_app" name="{failing}" file="tests/test_app.py" line="3"><failure message="boom">trace</failure></testcase></testsuite>"#
        ),
    )
    .unwrap();
}

#[test]
fn omen_ci_in_a_merge_request_pipeline_keeps_one_note_current() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGitLab::start();
    fake.seed_note(PERSON, "a reviewer's note", false);
    let token = [("OMEN_GITLAB_TOKEN", fake_gitlab::TOKEN)];
    junit(dir.path(), "test_first");
    // A new failure decides the pipeline's fate (`fail-on`), as on GitHub.
    let first = gitlab_ci(dir.path(), &fake, 1, &token, &[]);
    first.code(1);
    junit(dir.path(), "test_second");
    gitlab_ci(dir.path(), &fake, 2, &token, &[]).code(1);
    let ours: Vec<_> = fake
        .notes()
        .into_iter()
        .filter(|n| n.author == BOT)
        .collect();
    assert_eq!(ours.len(), 1, "{first}");
    assert!(ours[0].body.starts_with("<!-- omen"), "{}", ours[0].body);
    // Test names are Markdown-escaped in the note.
    assert!(ours[0].body.contains(r"test\_second"), "{}", ours[0].body);
    assert!(
        !ours[0].body.contains(r"test\_first"),
        "the note is current: {}",
        ours[0].body
    );
    // The new failure is a Code Quality issue at the test's line, for the widget and the diff.
    let issues: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("gl-code-quality.json")).unwrap(),
    )
    .unwrap();
    let issues = issues.as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = &issues[0];
    assert_eq!(issue["severity"], "major");
    assert_eq!(issue["check_name"], "omen/new-failure");
    assert_eq!(issue["location"]["path"], "tests/test_app.py");
    assert_eq!(issue["location"]["lines"]["begin"], 3);
    assert!(
        issue["description"]
            .as_str()
            .unwrap()
            .contains("test_second")
    );
    assert_eq!(issue["fingerprint"].as_str().map(str::len), Some(16));
    // The outputs, as a GitLab dotenv report for later jobs.
    let dotenv = std::fs::read_to_string(dir.path().join("omen.env")).unwrap();
    let expected = format!(
        "OMEN_TESTS=2\nOMEN_FAILED=1\nOMEN_NEW_FAILURES=1\nOMEN_FLAKY=0\nOMEN_QUARANTINED=0\n\
         OMEN_RISK=\nOMEN_RISK_LEVEL=\nOMEN_NOTE_URL=https://gitlab.example.com/omen-ci/widgets/-/merge_requests/{MR}#note_{}\n",
        ours[0].id
    );
    assert_eq!(dotenv, expected);
    // The access token does the notes; the job token only reads this job (its queue time) from
    // the same API; no token is printed.
    assert!(
        fake.seen().iter().all(|s| s.credential == "private"
            || (s.credential == "job" && s.method == "GET" && s.path == "/api/v4/job")),
        "{:?}",
        fake.seen()
    );
    assert!(
        !first.stdout.contains(fake_gitlab::TOKEN) && !first.stderr.contains(fake_gitlab::TOKEN)
    );
}

#[test]
fn without_an_access_token_nothing_is_posted_and_one_line_says_how_to_add_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGitLab::start();
    junit(dir.path(), "test_broken");
    // Omen's own trouble never fails the job: only the tests' failures could, and `never` says
    // they should not.
    let out = gitlab_ci(dir.path(), &fake, 1, &[], &["--fail-on", "never"]);
    out.code(0);
    // Only this job was read, with the job token (its queue time); nothing was written.
    assert!(
        fake.seen()
            .iter()
            .all(|s| s.method == "GET" && s.path == "/api/v4/job" && s.credential == "job"),
        "{:?}",
        fake.seen()
    );
    let hint: Vec<_> = out
        .stderr
        .lines()
        .filter(|l| l.contains("OMEN_GITLAB_TOKEN"))
        .collect();
    assert_eq!(hint.len(), 1, "{out}");
    assert!(
        hint[0].contains("masked but not protected") && hint[0].contains("api"),
        "{out}"
    );
    // The report is in the job log and saved for an artifact.
    assert!(out.stdout.contains(r"test\_broken"), "{out}");
    let saved = std::fs::read_to_string(dir.path().join(".omen/omen-comment.md")).unwrap();
    assert!(saved.contains(r"test\_broken"));
    // The token's variable can be renamed (the component's `token-variable` input).
    let renamed = [
        ("OMEN_TOKEN_VARIABLE", "MY_NOTES_TOKEN"),
        ("MY_NOTES_TOKEN", fake_gitlab::TOKEN),
    ];
    gitlab_ci(dir.path(), &fake, 2, &renamed, &["--fail-on", "never"]).code(0);
    assert_eq!(fake.notes().iter().filter(|n| n.author == BOT).count(), 1);
}

/// gitlab-ci-local 4.65.1 (`tests/run.sh` installs it into target/node); panics, never skips,
/// when it is missing.
fn gitlab_ci_local() -> std::path::PathBuf {
    let local = omen_tests::repo_root().join("target/node/node_modules/.bin/gitlab-ci-local");
    let found = if local.exists() {
        local
    } else {
        std::path::PathBuf::from("gitlab-ci-local")
    };
    omen_tests::require_tool(found, "gitlab-ci-local")
}

/// A scratch project that includes the component the way gitlab-ci-local resolves it (the local
/// `templates/`), with a test job that writes a JUnit report with one failure.
fn component_project(inputs: &str) -> tempfile::TempDir {
    component_project_with(TESTS_JOB, inputs)
}

/// The test job of [`component_project`]: one pass, one failure.
const TESTS_JOB: &str = r#"tests:
  stage: test
  script:
    - printf '<testsuite name="pytest"><testcase classname="tests.test_app" name="test_ok" file="tests/test_app.py"/><testcase classname="tests.test_app" name="test_bad" file="tests/test_app.py" line="3"><failure message="boom">trace</failure></testcase></testsuite>' > junit.xml
  artifacts:
    when: always
    paths: [junit.xml]
"#;

/// [`component_project`] with another test job.
fn component_project_with(tests_job: &str, inputs: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let templates = omen_tests::repo_root().join("gitlab-ci-component/templates/omen");
    std::fs::create_dir_all(root.join("templates/omen")).unwrap();
    std::fs::copy(
        templates.join("template.yml"),
        root.join("templates/omen/template.yml"),
    )
    .unwrap();
    let bin = root.join("omen-install/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(omen_tests::omen_bin(), bin.join("omen")).unwrap();
    std::fs::write(
        root.join(".gitlab-ci.yml"),
        format!(
            r#"stages: [test]
{tests_job}include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/omen@$CI_COMMIT_SHA
    inputs:
      needs: [tests]
{inputs}"#
        ),
    )
    .unwrap();
    std::fs::write(root.join(".gitignore"), "omen-install/\n").unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "-m",
            "init",
        ],
        &[
            "remote",
            "add",
            "origin",
            "https://gitlab.example.com/omen-ci/widgets.git",
        ],
    ] {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }
    dir
}

/// Run the pipeline as a merge request pipeline against the fake GitLab.
fn run_pipeline(dir: &std::path::Path, fake: &FakeGitLab, token: Option<&str>) -> omen_tests::Run {
    run_pipeline_as(dir, fake, token, true)
}

/// Run the pipeline against the fake GitLab: a merge request pipeline, or a push to `main`.
fn run_pipeline_as(
    dir: &std::path::Path,
    fake: &FakeGitLab,
    token: Option<&str>,
    merge_request: bool,
) -> omen_tests::Run {
    let mut cmd = std::process::Command::new(gitlab_ci_local());
    cmd.current_dir(dir).arg("--force-shell-executor");
    let install = dir.join("omen-install");
    let mut vars = vec![
        ("OMEN_INSTALL_DIR".to_owned(), install.display().to_string()),
        ("CI_API_V4_URL".to_owned(), fake.api_url.clone()),
        ("CI_PROJECT_ID".to_owned(), PROJECT_ID.to_string()),
        (
            "CI_PROJECT_URL".to_owned(),
            "https://gitlab.example.com/omen-ci/widgets".to_owned(),
        ),
        ("CI_DEFAULT_BRANCH".to_owned(), "main".to_owned()),
        ("CI_JOB_TOKEN".to_owned(), fake_gitlab::JOB_TOKEN.to_owned()),
    ];
    if merge_request {
        vars.extend([
            (
                "CI_PIPELINE_SOURCE".to_owned(),
                "merge_request_event".to_owned(),
            ),
            ("CI_MERGE_REQUEST_IID".to_owned(), MR.to_string()),
            (
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME".to_owned(),
                "feature".to_owned(),
            ),
            // GitLab gives merge request pipelines no branch.
            ("CI_COMMIT_BRANCH".to_owned(), String::new()),
        ]);
    } else {
        vars.extend([
            ("CI_PIPELINE_SOURCE".to_owned(), "push".to_owned()),
            ("CI_COMMIT_BRANCH".to_owned(), "main".to_owned()),
        ]);
    }
    if let Some(token) = token {
        vars.push(("OMEN_GITLAB_TOKEN".to_owned(), token.to_owned()));
    }
    for (k, v) in vars {
        cmd.arg("--variable").arg(format!("{k}={v}"));
    }
    omen_tests::run(&mut cmd)
}

#[test]
fn the_component_keeps_one_note_current_under_gitlab_ci_local() {
    let dir = component_project("      reports: junit.xml\n");
    let fake = FakeGitLab::start();
    // The new failure fails the Omen job (`fail-on`), and so the pipeline.
    let first = run_pipeline(dir.path(), &fake, Some(fake_gitlab::TOKEN));
    assert_ne!(first.code, 0, "{first}");
    assert!(first.stdout.contains("FAIL  omen"), "{first}");
    run_pipeline(dir.path(), &fake, Some(fake_gitlab::TOKEN));
    let ours: Vec<_> = fake
        .notes()
        .into_iter()
        .filter(|n| n.author == BOT)
        .collect();
    assert_eq!(ours.len(), 1, "{first}");
    assert!(ours[0].body.contains(r"test\_bad"), "{}", ours[0].body);
    assert_eq!(
        fake.seen().iter().filter(|s| s.method == "PUT").count(),
        1,
        "the second pipeline updated the note"
    );
    // GitLab-native reports for the widget and later jobs.
    let quality = std::fs::read_to_string(dir.path().join("gl-code-quality-omen.json")).unwrap();
    assert!(quality.contains("\"omen/new-failure\""), "{quality}");
    let dotenv = std::fs::read_to_string(
        dir.path()
            .join(".gitlab-ci-local/artifacts/omen/.gitlab-ci-reports/dotenv/omen.env"),
    )
    .unwrap();
    assert!(dotenv.contains("OMEN_NEW_FAILURES=1\n"), "{dotenv}");
    assert!(!first.stdout.contains(fake_gitlab::TOKEN), "{first}");
    // The HTML report is kept with the job's artifacts (GitLab has no job summary).
    let page = std::fs::read_to_string(
        dir.path()
            .join(".gitlab-ci-local/artifacts/omen/omen-report.html"),
    )
    .unwrap();
    assert!(page.contains("id=\"failures-new\""), "{page}");
}

#[test]
fn the_component_without_a_token_posts_nothing_and_passes_with_fail_on_never() {
    let dir = component_project("      reports: junit.xml\n      fail-on: never\n");
    let fake = FakeGitLab::start();
    let out = run_pipeline(dir.path(), &fake, None);
    out.code(0);
    // The job token only fetched the default branch's history (none yet) and read this job (its
    // queue time); nothing was written.
    let seen = fake.seen();
    assert!(!seen.is_empty(), "{out}");
    assert!(
        seen.iter().all(|s| s.method == "GET"
            && s.credential == "job"
            && (s
                .path
                .contains("/jobs/artifacts/main/raw/.omen/history.db?job=omen")
                || s.path == "/api/v4/job")),
        "{seen:?}"
    );
    assert!(
        out.stdout.contains("OMEN_GITLAB_TOKEN") || out.stderr.contains("OMEN_GITLAB_TOKEN"),
        "{out}"
    );
}

#[test]
fn the_component_s_inputs_are_checked_and_never_run_as_script_text() {
    // GitLab's own validation rejects a value outside an input's options.
    let dir = component_project("      reports: junit.xml\n      comment: sometimes\n");
    let fake = FakeGitLab::start();
    let out = run_pipeline(dir.path(), &fake, None);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("not in the list of allowed options")
            || out.stderr.contains("not in the list of allowed options"),
        "{out}"
    );
    // A hostile value reaches the script as data: nothing it says is executed.
    let dir = component_project(
        "      reports: 'junit.xml $(touch PWNED) `touch PWNED2`'\n      fail-on: never\n",
    );
    let out = run_pipeline(dir.path(), &fake, None);
    out.code(0);
    assert!(
        !dir.path().join("PWNED").exists() && !dir.path().join("PWNED2").exists(),
        "{out}"
    );
}

fn job_client(fake: &FakeGitLab) -> GitLab {
    GitLab::with_job_token(
        &fake.api_url,
        &Token::new(fake_gitlab::JOB_TOKEN),
        &PROJECT_ID.to_string(),
        quick(),
    )
    .unwrap()
}

#[test]
fn the_default_branch_s_artifact_downloads_with_the_job_token_and_a_redirect_never_gets_it() {
    let fake = FakeGitLab::start();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    fake.publish_artifact("main", "omen", ".omen/history.db", b"older".to_vec());
    fake.publish_artifact("main", "omen", ".omen/history.db", bytes.clone());
    fake.publish_artifact("release/1.x", "omen", ".omen/history.db", b"r1".to_vec());
    let gl = job_client(&fake);
    // The newest copy, byte for byte (binary, not text).
    let got = gl
        .download_artifact("main", ".omen/history.db", "omen")
        .unwrap();
    assert_eq!(got.as_deref(), Some(&bytes[..]));
    let seen = fake.seen();
    assert_eq!(
        seen[0].path,
        "/api/v4/projects/42/jobs/artifacts/main/raw/.omen/history.db?job=omen"
    );
    assert_eq!(seen[0].credential, "job");
    // A branch with a slash is one URL segment.
    let got = gl
        .download_artifact("release/1.x", "./.omen/history.db", "omen")
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"r1"[..]));
    assert!(
        fake.seen()[1]
            .path
            .contains("/jobs/artifacts/release%2F1.x/raw/"),
        "{:?}",
        fake.seen()
    );
    // Nothing published for that job, ref or path: none, not an error.
    for (r, p, j) in [
        ("main", ".omen/history.db", "tests"),
        ("feature", ".omen/history.db", "omen"),
        ("main", "other.db", "omen"),
    ] {
        assert_eq!(gl.download_artifact(r, p, j).unwrap(), None, "{r} {p} {j}");
    }
    // GitLab.com sends artifacts to object storage: followed, with no token sent there.
    fake.redirect_artifacts();
    let got = gl
        .download_artifact("main", ".omen/history.db", "omen")
        .unwrap();
    assert_eq!(got.as_deref(), Some(&bytes[..]));
    let storage = fake.storage_seen();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert!(storage[0].0.starts_with("/objects/1?"), "{storage:?}");
    assert!(!storage[0].1, "a credential reached the object storage");
    // A server error is retried; a wrong token is refused.
    fake.script(503, &[], r#"{"message":"503"}"#);
    assert!(
        gl.download_artifact("main", ".omen/history.db", "omen")
            .unwrap()
            .is_some()
    );
    let wrong = GitLab::with_job_token(
        &fake.api_url,
        &Token::new("nope"),
        &PROJECT_ID.to_string(),
        quick(),
    )
    .unwrap();
    assert!(matches!(
        wrong.download_artifact("main", ".omen/history.db", "omen"),
        Err(ForgeError::Forbidden { status: 401, .. })
    ));
}

/// A history database with one default-branch run of `junit.xml`, dated 2026-03-`day`, as bytes.
fn history_bytes(day: u32, failing: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    junit(dir.path(), failing);
    omen_tests::ingest_main(
        dir.path(),
        day,
        day,
        Some(&format!("{day:0>40}")),
        "junit.xml",
    )
    .code(0);
    std::fs::read(dir.path().join("h.db")).unwrap()
}

/// `omen restore` in `dir` as a GitLab job: a merge request pipeline, or with `default_branch`
/// a pipeline on `main`.
fn restore(dir: &std::path::Path, fake: &FakeGitLab, default_branch: bool) -> omen_tests::Run {
    let mut cmd = omen_tests::omen(dir);
    cmd.args(["restore", "--db", ".omen/history.db", "--format", "json"])
        .env("GITLAB_CI", "true")
        .env("CI_API_V4_URL", &fake.api_url)
        .env("CI_PROJECT_ID", PROJECT_ID.to_string())
        .env("CI_PROJECT_DIR", dir)
        .env("CI_DEFAULT_BRANCH", "main")
        .env("CI_JOB_NAME", "tests")
        .env("OMEN_HISTORY_JOB", "omen")
        .env("CI_COMMIT_SHA", "f".repeat(40))
        .env("CI_JOB_TOKEN", fake_gitlab::JOB_TOKEN);
    if default_branch {
        cmd.env("CI_COMMIT_BRANCH", "main")
            .env("CI_COMMIT_REF_NAME", "main")
            .env("CI_PIPELINE_SOURCE", "push");
    } else {
        cmd.env("CI_COMMIT_REF_NAME", "feature")
            .env("CI_PIPELINE_SOURCE", "merge_request_event")
            .env("CI_MERGE_REQUEST_IID", MR.to_string())
            .env("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature");
    }
    omen_tests::run(&mut cmd)
}

#[test]
fn omen_restore_starts_every_pipeline_from_the_default_branch_s_published_history() {
    let fake = FakeGitLab::start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing published yet: no history, no trouble.
    let none = restore(dir.path(), &fake, false);
    none.code(0);
    assert_eq!(none.json()["source"], "none", "{none}");
    assert!(!dir.path().join(".omen/history.db").exists());

    fake.publish_artifact(
        "main",
        "omen",
        ".omen/history.db",
        history_bytes(10, "test_a"),
    );
    let got = restore(dir.path(), &fake, false);
    got.code(0);
    assert_eq!(got.json()["source"], "artifact", "{got}");
    assert_eq!(got.json()["runs"], 1, "{got}");
    assert_eq!(
        got.json()["newest_default_run"],
        "2026-03-10T00:00:00Z",
        "{got}"
    );
    assert!(fake.seen().iter().all(|s| s.credential == "job"));

    // A merge request pipeline never prefers the copy on disk, however new it claims to be.
    let db = dir.path().join(".omen/history.db");
    std::fs::write(&db, history_bytes(20, "test_b")).unwrap();
    let got = restore(dir.path(), &fake, false);
    assert_eq!(got.json()["source"], "artifact", "{got}");
    assert_eq!(
        got.json()["newest_default_run"],
        "2026-03-10T00:00:00Z",
        "{got}"
    );
    // The default branch keeps a newer run its cache holds (a failed pipeline's, which GitLab
    // does not serve as the branch's artifact)…
    std::fs::write(&db, history_bytes(20, "test_b")).unwrap();
    let got = restore(dir.path(), &fake, true);
    assert_eq!(got.json()["source"], "local", "{got}");
    assert_eq!(
        got.json()["newest_default_run"],
        "2026-03-20T00:00:00Z",
        "{got}"
    );
    // …and takes the published copy once it is the newer one.
    fake.publish_artifact(
        "main",
        "omen",
        ".omen/history.db",
        history_bytes(25, "test_c"),
    );
    let got = restore(dir.path(), &fake, true);
    assert_eq!(got.json()["source"], "artifact", "{got}");
    assert_eq!(
        got.json()["newest_default_run"],
        "2026-03-25T00:00:00Z",
        "{got}"
    );
    // Nothing is left beside the database.
    let mut left: Vec<_> = std::fs::read_dir(dir.path().join(".omen"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["history.db"]);
}

#[test]
fn an_unusable_download_never_replaces_a_usable_history() {
    let fake = FakeGitLab::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(".omen/history.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let good = history_bytes(10, "test_a");
    std::fs::write(&db, &good).unwrap();
    fake.publish_artifact(
        "main",
        "omen",
        ".omen/history.db",
        b"<html>a login page</html>".to_vec(),
    );
    let got = restore(dir.path(), &fake, false);
    // Omen's own trouble: a warning and exit 0; strict mode would exit 3.
    got.code(0);
    assert_eq!(got.json()["source"], "local", "{got}");
    assert!(got.stderr.contains("unusable"), "{got}");
    assert_eq!(std::fs::read(&db).unwrap(), good);
    // GitLab unreachable: the same.
    drop(fake);
    let gone = FakeGitLab::start();
    let api = gone.api_url.clone();
    drop(gone);
    std::fs::write(
        dir.path().join("quick.toml"),
        "[github]\nretry_attempts = 2\nretry_backoff_ms = 10\n",
    )
    .unwrap();
    let mut cmd = omen_tests::omen(dir.path());
    cmd.args(["--strict", "--config", "quick.toml", "restore"])
        .args(["--db", ".omen/history.db"])
        .env("GITLAB_CI", "true")
        .env("CI_API_V4_URL", api)
        .env("CI_PROJECT_ID", "42")
        .env("CI_DEFAULT_BRANCH", "main")
        .env("CI_JOB_NAME", "omen")
        .env("CI_JOB_TOKEN", fake_gitlab::JOB_TOKEN);
    let out = omen_tests::run(&mut cmd);
    out.code(3);
    assert_eq!(std::fs::read(&db).unwrap(), good);
    assert!(!out.stderr.contains(fake_gitlab::JOB_TOKEN), "{out}");
}

#[test]
fn the_default_branch_publishes_the_history_and_the_next_merge_request_pipeline_starts_from_it() {
    let fake = FakeGitLab::start();
    let main = component_project("      reports: junit.xml\n      fail-on: never\n");
    let pushed = run_pipeline_as(main.path(), &fake, None, false);
    pushed.code(0);
    assert!(pushed.stdout.contains("no history yet"), "{pushed}");
    let artifacts = main.path().join(".gitlab-ci-local/artifacts/omen");
    let published = std::fs::read(artifacts.join(".omen/history.db"))
        .unwrap_or_else(|e| panic!("no history artifact ({e})\n{pushed}"));
    // The run's figures for the merge request's metrics widget.
    let metrics = std::fs::read_to_string(main.path().join("omen-metrics.txt")).unwrap();
    assert!(metrics.contains("\nomen_new_failures 1\n"), "{metrics}");
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    // GitLab serves it to the next pipelines as the default branch's artifact.
    fake.publish_artifact("main", "omen", ".omen/history.db", published);

    let mr = component_project("      reports: junit.xml\n");
    let out = run_pipeline(mr.path(), &fake, Some(fake_gitlab::TOKEN));
    assert!(
        out.stdout.contains("restored the history from `main`"),
        "{out}"
    );
    // test_bad already failed on the default branch: not this change's failure.
    out.code(1);
    let ours: Vec<_> = fake
        .notes()
        .into_iter()
        .filter(|n| n.author == BOT)
        .collect();
    assert_eq!(ours.len(), 1, "{out}");
    assert!(
        ours[0].body.contains("also failing on the default branch"),
        "{}",
        ours[0].body
    );
    assert!(
        fake.seen()
            .iter()
            .any(|s| s.credential == "job" && s.path.contains("/jobs/artifacts/main/raw/")),
        "{:?}",
        fake.seen()
    );
    // A merge request's copy is neither published nor cached.
    assert!(
        !mr.path()
            .join(".gitlab-ci-local/artifacts/omen/.omen/history.db")
            .exists(),
        "{out}"
    );
}

#[test]
fn test_jobs_that_extend_omen_setup_get_this_run_s_quarantine_before_the_tests() {
    let fake = FakeGitLab::start();
    let history = history_bytes(10, "test_bad");
    fake.publish_artifact("main", "omen", ".omen/history.db", history);
    let tests_job = r#"tests:
  stage: test
  extends: [.omen-setup]
  script:
    - test -f "$OMEN_QUARANTINE"
    - echo "quarantine for the tests at $OMEN_QUARANTINE"
    - echo "nextest args $OMEN_NEXTEST_ARGS"
    - printf '<testsuite name="pytest"><testcase classname="tests.test_app" name="test_ok" file="tests/test_app.py"/></testsuite>' > junit.xml
  artifacts:
    when: always
    paths: [junit.xml]
"#;
    let dir = component_project_with(tests_job, "      reports: junit.xml\n");
    let out = run_pipeline(dir.path(), &fake, None);
    out.code(0);
    assert!(
        out.stdout.contains("restored the history from `main`"),
        "{out}"
    );
    assert!(
        out.stdout.contains("from the default branch's history"),
        "{out}"
    );
    assert!(
        out.stdout.contains("quarantine for the tests at /"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("nextest args --profile omen --tool-config-file omen:/"),
        "{out}"
    );
    // Without Omen (not installed), the tests still run: a warning, not a failure.
    let dir = component_project_with(tests_job, "      reports: junit.xml\n");
    std::fs::remove_dir_all(dir.path().join("omen-install")).unwrap();
    let out = run_pipeline(dir.path(), &fake, None);
    assert!(
        out.stdout
            .contains("the tests run without this run's quarantine"),
        "{out}"
    );
}

#[test]
fn the_note_links_to_the_html_report_in_the_job_s_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGitLab::start();
    junit(dir.path(), "test_first");
    let token = [("OMEN_GITLAB_TOKEN", fake_gitlab::TOKEN)];
    gitlab_ci(
        dir.path(),
        &fake,
        1,
        &token,
        &["--html", "omen-report.html", "--comment", "always"],
    )
    .code(1);
    let note = fake.notes().pop().unwrap();
    assert!(
        note.body.contains(
            "[full report](https://gitlab.example.com/omen-ci/widgets/-/jobs/1001/artifacts/file/omen-report.html)"
        ),
        "{}",
        note.body
    );
    let page = std::fs::read_to_string(dir.path().join("omen-report.html")).unwrap();
    assert!(page.contains("test_first"), "{page}");
}

#[test]
fn a_fork_s_pipeline_runs_without_the_target_s_history_quietly() {
    let fake = FakeGitLab::start();
    fake.publish_artifact(
        "main",
        "omen",
        ".omen/history.db",
        history_bytes(10, "test_a"),
    );
    // The target project does not let the fork's job token in.
    fake.script(403, &[], r#"{"message":"403 Forbidden"}"#);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = omen_tests::omen(dir.path());
    cmd.args(["--strict", "restore", "--db", ".omen/history.db"])
        .env("GITLAB_CI", "true")
        .env("CI_API_V4_URL", &fake.api_url)
        .env("CI_PROJECT_ID", "77")
        .env("CI_MERGE_REQUEST_PROJECT_ID", PROJECT_ID.to_string())
        .env("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "77")
        .env("CI_MERGE_REQUEST_IID", MR.to_string())
        .env("CI_DEFAULT_BRANCH", "main")
        .env("CI_JOB_NAME", "omen")
        .env("CI_JOB_TOKEN", "a-fork-s-job-token");
    let out = omen_tests::run(&mut cmd);
    // Not Omen's trouble, even in strict mode.
    out.code(0);
    assert!(out.stdout.contains("runs in a fork"), "{out}");
    assert!(!dir.path().join(".omen/history.db").exists());
    // It asked the target project, not the fork.
    assert!(
        fake.seen()[0].path.starts_with("/api/v4/projects/42/"),
        "{:?}",
        fake.seen()
    );
}

/// `omen ci` in a default-branch (push) pipeline on `main`.
fn gitlab_push(
    dir: &std::path::Path,
    fake: &FakeGitLab,
    pipeline: u32,
    args: &[&str],
) -> omen_tests::Run {
    let mut cmd = omen_tests::omen_ci(dir);
    cmd.args(args)
        .env("GITLAB_CI", "true")
        .env("CI_API_V4_URL", &fake.api_url)
        .env("CI_PROJECT_ID", PROJECT_ID.to_string())
        .env(
            "CI_PROJECT_URL",
            "https://gitlab.example.com/omen-ci/widgets",
        )
        .env("CI_PROJECT_DIR", dir)
        .env("CI_PIPELINE_ID", pipeline.to_string())
        .env("CI_PIPELINE_SOURCE", "push")
        .env("CI_JOB_NAME", "omen")
        .env("CI_COMMIT_SHA", format!("{pipeline:0>40}"))
        .env("CI_COMMIT_BRANCH", "main")
        .env("CI_COMMIT_REF_NAME", "main")
        .env("CI_DEFAULT_BRANCH", "main")
        .env("CI_JOB_TOKEN", fake_gitlab::JOB_TOKEN)
        .env("OMEN_GITLAB_TOKEN", fake_gitlab::TOKEN);
    omen_tests::run(&mut cmd)
}

#[test]
fn the_default_branch_proposes_its_quarantine_as_one_merge_request_kept_current() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fake = FakeGitLab::start();
    fake.seed_file("main", "README.md", "widgets\n");
    let junit = |flaky: &[&str]| {
        // A suite of 60, so that two flaky tests stay under the guard's 5%.
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
        std::fs::write(d.join("junit.xml"), xml).unwrap();
    };
    let path = ".omen/quarantine.json";
    // The first run that learns a flaky test: one commit on a branch from main, one MR.
    junit(&["test_flaky_a"]);
    let first = gitlab_push(d, &fake, 1, &["--propose-quarantine"]);
    first.code(0);
    let file = fake
        .file("omen/quarantine", path)
        .unwrap_or_else(|| panic!("the file is committed\n{first}"));
    assert!(file.contains("tests/test_app.py::test_flaky_a"), "{file}");
    assert_eq!(file, std::fs::read_to_string(d.join(path)).unwrap());
    assert_eq!(
        fake.file("omen/quarantine", "README.md").as_deref(),
        Some("widgets\n"),
        "the branch starts from main"
    );
    let mrs = fake.merge_requests();
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert_eq!(
        (mrs[0].source.as_str(), mrs[0].target.as_str()),
        ("omen/quarantine", "main")
    );
    assert!(
        mrs[0]
            .description
            .contains("failed and passed on the same commit"),
        "{}",
        mrs[0].description
    );
    for s in fake.seen().into_iter().filter(|s| s.path != "/api/v4/job") {
        assert_eq!(s.credential, "private", "{s:?}");
        assert!(
            s.status < 300 || (s.method == "GET" && s.status == 404),
            "every write is one GitLab accepts: {s:?}"
        );
    }
    // Main moves on (the proposal is not merged) and another test turns out flaky: the branch
    // is rebuilt from main and the same merge request brought up to date.
    fake.seed_file("main", "CHANGES.md", "new on main\n");
    std::fs::remove_file(d.join(path)).unwrap();
    junit(&["test_flaky_a", "test_flaky_b"]);
    gitlab_push(d, &fake, 2, &["--propose-quarantine"]).code(0);
    let mrs = fake.merge_requests();
    assert_eq!(mrs.len(), 1, "one merge request, kept current\n{mrs:?}");
    assert!(mrs[0].description.contains("flaky\\_b") || mrs[0].description.contains("flaky_b"));
    let file = fake.file("omen/quarantine", path).unwrap();
    assert!(
        file.contains("test_flaky_a") && file.contains("test_flaky_b"),
        "{file}"
    );
    assert!(
        fake.file("omen/quarantine", "CHANGES.md").is_some(),
        "rebuilt from main"
    );
    assert!(
        fake.commits()
            .iter()
            .all(|(b, start, force)| b == "omen/quarantine"
                && start.as_deref() == Some("main")
                && *force),
        "{:?}",
        fake.commits()
    );
    // Once main has the file, the commit updates it instead of creating it.
    fake.seed_file("main", path, "{}\n");
    junit(&["test_flaky_a", "test_flaky_b", "test_flaky_c"]);
    gitlab_push(d, &fake, 3, &["--propose-quarantine"]).code(0);
    assert_eq!(fake.commits().len(), 3, "{:?}", fake.seen());
    assert!(
        fake.file("omen/quarantine", path)
            .unwrap()
            .contains("test_flaky_c")
    );
}
