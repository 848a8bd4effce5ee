//! `omen ingest` and `omen merge` end to end: real files, real SQLite, the real binary.

use std::path::Path;

use omen_tests::{omen, run};

const GOOD: &str = r#"<?xml version="1.0"?>
<testsuite name="pytest" tests="3">
  <testcase classname="tests.test_math" name="test_add" time="0.01"/>
  <testcase classname="tests.test_math" name="test_sub" time="0.02"><failure message="assert 1 == 2">E   assert 1 == 2</failure></testcase>
  <testcase classname="tests.test_math" name="test_skip"><skipped/></testcase>
</testsuite>"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn ingest(dir: &Path, extra: &[&str]) -> omen_tests::Run {
    run(omen(dir)
        .args([
            "ingest",
            "--format",
            "json",
            "--db",
            "h.db",
            "--commit",
            "abc123",
            "--branch",
            "main",
            "--default-branch",
            "main",
            "--run-id",
            "1",
        ])
        .args(extra))
}

fn stats(db: &Path) -> omen_store::Stats {
    omen_store::Store::open_read_only(db)
        .unwrap()
        .stats()
        .unwrap()
}

#[test]
fn same_run_twice_is_a_duplicate_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "reports/a.xml", GOOD);
    let first = ingest(dir.path(), &["reports"]);
    first.code(0);
    let json = first.json();
    assert_eq!(json["duplicate"], false);
    assert_eq!(json["database"]["stored"], 3);
    assert_eq!(json["run"]["commit"], "abc123");
    assert_eq!(json["run"]["is_default_branch"], true);
    assert_eq!(json["totals"]["failures"], 1);
    let bytes = std::fs::read(dir.path().join("h.db")).unwrap();

    let second = ingest(dir.path(), &["reports"]);
    second.code(0);
    assert_eq!(second.json()["duplicate"], true, "{second}");
    assert_eq!(
        std::fs::read(dir.path().join("h.db")).unwrap(),
        bytes,
        "a duplicate ingest must not write"
    );

    // A new attempt of the same run is a new run (a re-run on the same commit).
    let third = ingest(dir.path(), &["--attempt", "2", "reports"]);
    assert_eq!(third.json()["duplicate"], false);
    assert_eq!(stats(&dir.path().join("h.db")).runs, 2);
}

#[test]
fn a_corrupt_database_is_set_aside_and_this_run_still_stored() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.xml", GOOD);
    std::fs::write(
        dir.path().join("h.db"),
        b"SQLite format 3\0 but then garbage follows",
    )
    .unwrap();
    let out = ingest(dir.path(), &["a.xml"]);
    out.code(0);
    let json = out.json();
    let aside = json["database"]["set_aside"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(aside.contains("h.db.corrupt-"), "{aside}");
    assert_eq!(
        std::fs::read(dir.path().join(aside)).unwrap(),
        b"SQLite format 3\0 but then garbage follows",
        "the unusable file is kept byte for byte"
    );
    assert_eq!(json["database"]["stored"], 3);
    assert!(
        out.stderr.contains("moved aside"),
        "a warning says what happened\n{out}"
    );
}

#[test]
fn one_bad_report_never_hides_the_others() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "r/good.xml", GOOD);
    write(
        dir.path(),
        "r/broken.xml",
        "<testsuite>\n  <testcase name=\"x\">\n    <failure><![CDATA[never closed\n",
    );
    write(
        dir.path(),
        "r/pom.xml",
        "<project><modelVersion>4.0.0</modelVersion></project>",
    );
    let out = ingest(dir.path(), &["r"]);
    out.code(0);
    let json = out.json();
    let files = json["files"].as_array().unwrap();
    let by_name = |n: &str| {
        files
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(n))
            .unwrap()
    };
    let broken = &by_name("broken.xml")["error"];
    assert_eq!(
        (broken["line"].as_u64(), broken["column"].as_u64()),
        (Some(3), Some(14)),
        "{broken}"
    );
    let pom = &by_name("pom.xml")["error"];
    assert!(
        pom["message"]
            .as_str()
            .unwrap()
            .contains("not a JUnit report"),
        "{pom}"
    );
    assert!(by_name("good.xml")["error"].is_null());
    assert_eq!(json["database"]["stored"], 3);
    assert!(
        out.stderr.contains("broken.xml:3:14"),
        "the warning names file, line and column\n{out}"
    );

    // --strict turns Omen's trouble into exit code 3, and still stores what was good.
    let strict =
        run(omen(dir.path()).args(["ingest", "--strict", "--db", "s.db", "--commit", "x", "r"]));
    strict.code(3);
    assert_eq!(stats(&dir.path().join("s.db")).tests, 3);
}

#[test]
fn oversized_reports_and_unmatched_patterns_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.xml", GOOD);
    let out = ingest(
        dir.path(),
        &["--max-report-size", "100", "a.xml", "nothing/*.xml"],
    );
    out.code(0);
    let files = out.json()["files"].as_array().unwrap().clone();
    let messages: Vec<&str> = files
        .iter()
        .map(|f| f["error"]["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("no file matches")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("over the 100-byte limit")),
        "{messages:?}"
    );
    assert!(out.stderr.contains("no usable report"), "{out}");
}

#[test]
fn external_entities_are_never_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "secret.txt", "TOP-SECRET-VALUE");
    let xml = format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file://{}">]>
<testsuite name="s"><testcase classname="C" name="t"><failure message="&xxe;">&xxe;</failure></testcase></testsuite>"#,
        secret.display()
    );
    write(dir.path(), "xxe.xml", &xml);
    let out = ingest(dir.path(), &["xxe.xml"]);
    out.code(0);
    assert_eq!(out.json()["totals"]["failures"], 1);
    let store = omen_store::Store::open_read_only(&dir.path().join("h.db")).unwrap();
    let test = store
        .find_test("C", "t")
        .unwrap()
        .expect("the test is stored");
    let (_, failure) = store
        .last_failure(test.id)
        .unwrap()
        .expect("its failure is stored");
    let (message, text) = (
        failure.message.unwrap_or_default(),
        failure.text.unwrap_or_default(),
    );
    assert!(
        !message.contains("TOP-SECRET") && !text.contains("TOP-SECRET"),
        "{message} / {text}"
    );
    assert_eq!(text, "&xxe;", "the reference is kept as literal text");
}

#[test]
fn github_actions_environment_describes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.xml", GOOD);
    let event = write(
        dir.path(),
        "event.json",
        r#"{"repository": {"default_branch": "main"}}"#,
    );
    let out = run(omen(dir.path())
        .args(["ingest", "--format", "json", "--db", "h.db", "a.xml"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_RUN_ID", "987")
        .env("GITHUB_RUN_ATTEMPT", "3")
        .env("GITHUB_JOB", "tests")
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_EVENT_PATH", &event));
    out.code(0);
    let runinfo = &out.json()["run"];
    assert_eq!(runinfo["source"], "github");
    assert_eq!(runinfo["run_id"], "987");
    assert_eq!(runinfo["attempt"], 3);
    assert_eq!(runinfo["job"], "tests");
    assert_eq!(runinfo["default_branch"], "main");
    assert_eq!(runinfo["is_default_branch"], true);

    // Flags override the environment.
    let out = run(omen(dir.path())
        .args([
            "ingest",
            "--format",
            "json",
            "--db",
            "h.db",
            "--branch",
            "feature",
            "--timestamp",
            "2026-01-02T03:04:05Z",
            "a.xml",
        ])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_EVENT_PATH", &event));
    let runinfo = &out.json()["run"];
    assert_eq!(runinfo["branch"], "feature");
    assert_eq!(runinfo["is_default_branch"], false);
    assert_eq!(runinfo["timestamp"], "2026-01-02T03:04:05Z");
}

#[test]
fn one_test_reported_two_ways_has_one_identity() {
    let dir = tempfile::tempdir().unwrap();
    // Run 1: classname, a ./ path. Run 2: no classname (suite name instead), Windows separators,
    // extra whitespace.
    write(
        dir.path(),
        "r1.xml",
        r#"<testsuite name="x"><testcase classname="pkg.MathTest" name="adds[1-2]" file="./src/math_test.py"/></testsuite>"#,
    );
    write(
        dir.path(),
        "r2.xml",
        r#"<testsuite name="pkg.MathTest"><testcase classname="" name=" adds[1-2] " file="src\math_test.py"/></testsuite>"#,
    );
    ingest(dir.path(), &["r1.xml"]).code(0);
    run(omen(dir.path()).args([
        "ingest", "--db", "h.db", "--commit", "b", "--run-id", "2", "r2.xml",
    ]))
    .code(0);
    let db = dir.path().join("h.db");
    assert_eq!(stats(&db).runs, 2);
    assert_eq!(stats(&db).tests, 1, "both reports name the same test");
}

#[test]
fn merge_combines_shards_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s1.xml",
        r#"<testsuite><testcase classname="A" name="one"/></testsuite>"#,
    );
    write(
        dir.path(),
        "s2.xml",
        r#"<testsuite><testcase classname="B" name="two"><error message="boom"/></testcase></testsuite>"#,
    );
    for (db, report, job) in [("1.db", "s1.xml", "shard-1"), ("2.db", "s2.xml", "shard-2")] {
        run(omen(dir.path()).args([
            "ingest", "--db", db, "--commit", "c", "--run-id", "5", "--job", job, report,
        ]))
        .code(0);
    }
    std::fs::write(dir.path().join("bad.db"), "not a database").unwrap();
    let out = run(omen(dir.path()).args([
        "merge", "--format", "json", "--db", "all.db", "1.db", "2.db", "1.db", "bad.db",
    ]));
    out.code(0);
    let json = out.json();
    let added: Vec<u64> = json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["runs_added"].as_u64().unwrap())
        .collect();
    assert_eq!(added, [1, 1, 0, 0], "{out}");
    assert!(
        json["sources"][3]["error"]
            .as_str()
            .unwrap()
            .contains("bad.db")
    );
    let all = dir.path().join("all.db");
    assert_eq!(stats(&all).runs, 2);
    assert_eq!(stats(&all).results, 2);
    assert_eq!(
        std::fs::read(dir.path().join("bad.db")).unwrap(),
        b"not a database",
        "sources are never modified"
    );
    run(omen(dir.path()).args(["merge", "--strict", "--db", "all.db", "bad.db"])).code(3);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    run(omen(dir.path()).args(["ingest"])).code(2);
    run(omen(dir.path()).args(["ingest", "--bogus", "x.xml"])).code(2);
    let out = run(omen(dir.path()).args(["ingest", "--timestamp", "yesterday", "x.xml"]));
    assert!(out.stderr.contains("not an RFC 3339 timestamp"), "{out}");
}
