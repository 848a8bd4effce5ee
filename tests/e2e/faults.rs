//! Fault injection: crashes, locks, permissions, full disks and hostile files never lose history
//! or manual quarantine entries, and Omen's own trouble never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use omen_tests::{omen, run};

fn python() -> String {
    std::env::var("OMEN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A pytest-style report of `cases` tests in `suites` files, `failing` of them failing.
fn report(dir: &Path, name: &str, cases: usize, failing: &[usize]) -> PathBuf {
    let mut xml = String::from("<testsuites><testsuite name=\"pytest\">\n");
    for i in 0..cases {
        if failing.contains(&i) {
            xml.push_str(&format!(
                "<testcase classname=\"tests.test_m{}\" name=\"test_{i}\" time=\"0.01\"><failure message=\"boom {i}\">trace</failure></testcase>\n",
                i % 50
            ));
        } else {
            xml.push_str(&format!(
                "<testcase classname=\"tests.test_m{}\" name=\"test_{i}\" time=\"0.01\"/>\n",
                i % 50
            ));
        }
    }
    xml.push_str("</testsuite></testsuites>\n");
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

fn ingest_cmd(dir: &Path, db: &str, run_id: u32, report: &Path) -> Command {
    let mut cmd = omen(dir);
    cmd.args([
        "ingest",
        "--db",
        db,
        "--branch",
        "main",
        "--default-branch",
        "main",
        "--commit",
        &format!("c{run_id}"),
        "--run-id",
        &run_id.to_string(),
        "--timestamp",
        &format!("2026-03-01T00:{:02}:{:02}Z", run_id / 60, run_id % 60),
    ])
    .arg(report);
    cmd
}

fn runs(db: &Path) -> i64 {
    omen_store::Store::open_read_only(db)
        .unwrap()
        .stats()
        .unwrap()
        .runs as i64
}

fn set_aside_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".corrupt-"))
        .collect()
}

/// A history of `n` small default-branch runs in `dir/db`.
fn base_history(dir: &Path, db: &str, n: u32) {
    for i in 1..=n {
        let r = report(dir, &format!("base{i}.xml"), 40, &[]);
        run(&mut ingest_cmd(dir, db, i, &r)).code(0);
    }
}

#[test]
fn a_crash_s_hot_journal_is_replayed_by_every_command_never_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base_history(d, "h.db", 5);
    // A process that dies mid-commit: pages already in the file, the journal that undoes them.
    let crash = r#"
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA cache_size = 1")
c.execute("BEGIN IMMEDIATE")
c.execute("UPDATE tests SET history = zeroblob(length(history))")
c.execute("DELETE FROM runs")
sys.stdout.flush()
os._exit(0)
"#;
    for command in ["ingest", "flaky", "quarantine", "ci"] {
        let db = format!("{command}.db");
        std::fs::copy(d.join("h.db"), d.join(&db)).unwrap();
        let status = Command::new(python())
            .args(["-c", crash])
            .arg(d.join(&db))
            .status()
            .unwrap();
        assert!(status.success());
        let journal = d.join(format!("{db}-journal"));
        assert!(
            std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0),
            "the simulated crash left no hot journal"
        );
        let r = report(d, "next.xml", 40, &[]);
        let out = match command {
            "ingest" => run(&mut ingest_cmd(d, &db, 6, &r)),
            "flaky" => run(omen(d).args(["flaky", "--format", "json", "--db", &db])),
            "quarantine" => run(omen(d).args(["quarantine", "--db", &db])),
            _ => run(&mut ci_cmd(d, "next.xml", &db, "c6", "6")),
        };
        out.code(0);
        assert!(!out.stderr.contains("unusable"), "{command}: {out}");
        assert!(
            set_aside_files(d).is_empty(),
            "{command} set the database aside\n{out}"
        );
        let expected = if matches!(command, "ingest" | "ci") {
            6
        } else {
            5
        };
        assert_eq!(
            runs(&d.join(&db)),
            expected,
            "{command}: history lost\n{out}"
        );
        if command == "flaky" {
            let json = out.json();
            assert!(json.get("error").is_none(), "{out}");
            assert_eq!(json["tests"].as_array().unwrap().len(), 0);
        }
    }
}

#[test]
fn kill_9_at_several_points_of_a_large_ingest_keeps_every_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base_history(d, "h.db", 4);
    let big = report(d, "big.xml", 150_000, &[7, 70_000]);
    // Kill when the journal first appears (mid-commit), and at fixed points before and after.
    // `None`: kill while the commit writes the database file, the journal beside it (the moment
    // a runner's cancellation or an OOM kill can hit); `Some`: kill at a fixed point.
    let points: [Option<Duration>; 4] = [
        None,
        None,
        Some(Duration::from_millis(300)),
        Some(Duration::from_millis(1500)),
    ];
    let mut killed_mid_commit = 0;
    for (trial, point) in points.iter().enumerate() {
        let before = runs(&d.join("h.db"));
        let db_before = std::fs::metadata(d.join("h.db")).unwrap();
        let mut child = ingest_cmd(d, "h.db", 100 + trial as u32, &big)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let journal = d.join("h.db-journal");
        let start = Instant::now();
        match point {
            None => {
                while start.elapsed() < Duration::from_secs(60) {
                    let db_now = std::fs::metadata(d.join("h.db")).ok();
                    let db_written = db_now.is_some_and(|m| {
                        m.len() != db_before.len() || m.modified().ok() != db_before.modified().ok()
                    });
                    if db_written && std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
                        unsafe_kill(&child);
                        killed_mid_commit += 1;
                        break;
                    }
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            Some(after) => std::thread::sleep(*after),
        }
        let _ = child.kill();
        let _ = child.wait();
        // The next ingest of a small run must keep every earlier run and add its own.
        let small = report(d, "small.xml", 40, &[]);
        let out = run(&mut ingest_cmd(d, "h.db", 200 + trial as u32, &small));
        out.code(0);
        assert!(
            set_aside_files(d).is_empty(),
            "trial {trial}: set aside\n{out}"
        );
        let after = runs(&d.join("h.db"));
        assert!(
            after == before + 1 || after == before + 2,
            "trial {trial}: {before} runs before, {after} after\n{out}"
        );
        // Re-running the killed ingest stores it once.
        run(&mut ingest_cmd(d, "h.db", 100 + trial as u32, &big)).code(0);
        let again = run(&mut ingest_cmd(d, "h.db", 100 + trial as u32, &big));
        again.code(0);
        assert_eq!(runs(&d.join("h.db")), before + 2, "trial {trial}");
    }
    assert!(killed_mid_commit > 0, "no trial landed mid-commit");
}

/// SIGKILL at once, without the few milliseconds `Child::kill`'s bookkeeping could add.
fn unsafe_kill(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_lock_held_by_another_process_is_waited_for_not_taken_for_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base_history(d, "lk.db", 2);
    let mut holder = Command::new(python())
        .args([
            "-c",
            "import sqlite3,sys,time\nc=sqlite3.connect(sys.argv[1],isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\ntime.sleep(6)\nc.execute('COMMIT')",
        ])
        .arg(d.join("lk.db"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let r = report(d, "r.xml", 40, &[]);
    let start = Instant::now();
    let out = run(&mut ingest_cmd(d, "lk.db", 3, &r));
    out.code(0);
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "did not wait for the lock\n{out}"
    );
    assert!(out.stderr.contains("waiting"), "no progress message\n{out}");
    assert!(set_aside_files(d).is_empty(), "{out}");
    holder.wait().unwrap();
    assert_eq!(runs(&d.join("lk.db")), 3, "{out}");
}

#[test]
fn parallel_shards_writing_one_database_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards: Vec<PathBuf> = (0..6)
        .map(|i| report(d, &format!("shard{i}.xml"), 40_000, &[i]))
        .collect();
    let children: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, r)| {
            ingest_cmd(d, "h.db", 10 + i as u32, r)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut logs = String::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
        logs.push_str(&stderr);
    }
    // Every shard's run lands: none is lost to another shard creating the new database (each
    // reads the schema version again under the write lock).
    assert_eq!(runs(&d.join("h.db")), 6, "{logs}");
    assert!(set_aside_files(d).is_empty());
}

#[test]
fn an_unreadable_database_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    base_history(d, "h.db", 3);
    let original = std::fs::read(d.join("h.db")).unwrap();
    let r = report(d, "r.xml", 40, &[]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&r, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(d.join("h.db"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file, so the check runs as an unprivileged user, as a CI job would.
    let cmd = ingest_cmd(d, "h.db", 4, &r);
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut as_nobody = Command::new("setpriv");
    as_nobody
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("HOME", d)
        .current_dir(d);
    let out = run(&mut as_nobody);
    out.code(0);
    assert!(out.stderr.contains("cannot be used now"), "{out}");
    assert!(set_aside_files(d).is_empty(), "{out}");
    std::fs::set_permissions(d.join("h.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(std::fs::read(d.join("h.db")).unwrap(), original);
    let strict = {
        as_nobody.arg("--strict");
        std::fs::set_permissions(d.join("h.db"), std::fs::Permissions::from_mode(0o000)).unwrap();
        run(&mut as_nobody)
    };
    assert_eq!(strict.code, 3, "{strict}");
}

#[test]
fn a_directory_named_as_the_database_is_never_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("h.db")).unwrap();
    std::fs::write(d.join("h.db/keep"), "x").unwrap();
    let r = report(d, "r.xml", 10, &[]);
    let out = run(&mut ingest_cmd(d, "h.db", 1, &r));
    out.code(0);
    assert!(out.stderr.contains("is a directory"), "{out}");
    assert!(d.join("h.db/keep").exists());
    assert!(set_aside_files(d).is_empty(), "{out}");
    let out = run(ingest_cmd(d, "h.db", 1, &r).arg("--strict"));
    assert_eq!(out.code, 3, "{out}");
}

#[test]
fn a_database_half_created_on_a_full_disk_is_completed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = report(d, "r.xml", 20_000, &[]);
    // RLIMIT_FSIZE stands in for a full disk: writes past 64 KiB fail with EFBIG, which stops the
    // schema's creation part-way (measured: a 40 KiB file at schema version 2).
    let out = run(&mut under(
        "trap '' XFSZ; ulimit -f 64",
        &ingest_cmd(d, "h.db", 1, &r),
    ));
    out.code(0);
    assert!(
        out.stderr.contains("NOT stored") || out.stderr.contains("failed"),
        "{out}"
    );
    let half = std::fs::metadata(d.join("h.db")).map_or(0, |m| m.len());
    assert!(
        half > 0,
        "the full disk did not leave a half-created database\n{out}"
    );
    // The next run (with room) either finds a healthy database or sets the broken one aside.
    let small = report(d, "s.xml", 10, &[]);
    let out = run(&mut ingest_cmd(d, "h.db", 2, &small));
    out.code(0);
    let n = runs(&d.join("h.db"));
    assert_eq!(n, 1, "the half-written run must not be there\n{out}");
    let json = run(omen(d).args(["flaky", "--format", "json", "--db", "h.db"]));
    json.code(0);
    assert!(json.json().get("error").is_none(), "{json}");
}

/// Files Omen cannot read as a quarantine: each must survive `omen ci` and `omen quarantine`
/// byte for byte, and fail `omen quarantine --check`.
const UNREADABLE: &[(&str, &str)] = &[
    ("invalid", "{not json at all"),
    ("trailing-comma", "{\"version\": 1, \"tests\": [],}"),
    (
        "truncated",
        "{\"version\": 1, \"tests\": [{\"id\": \"tests.t::test_x\", \"sel",
    ),
    ("version-2", "{\"version\": 2, \"tests\": []}"),
    ("no-version", "{\"tests\": []}"),
    (
        "unknown-field",
        "{\"version\": 1, \"tests\": [], \"extra\": true}",
    ),
    ("bom", "\u{feff}{\"version\": 1, \"tests\": []}"),
    (
        "comment",
        "// manual entries\n{\"version\": 1, \"tests\": []}",
    ),
];

fn flaky_history(d: &Path) {
    let write = |name: &str, fails: bool| {
        let failure = if fails {
            "<failure message=\"timeout\"/>"
        } else {
            ""
        };
        std::fs::write(
            d.join(name),
            format!("<testsuite name=\"pytest\"><testcase classname=\"tests.t\" name=\"test_flaky\">{failure}</testcase><testcase classname=\"tests.t\" name=\"test_ok\"/></testsuite>"),
        )
        .unwrap();
        d.join(name)
    };
    for i in 1..=6u32 {
        let r = write("h.xml", i == 3);
        run(&mut ingest_cmd(d, "h.db", i, &r)).code(0);
        if i == 3 {
            let r = write("h.xml", false);
            run(ingest_cmd(d, "h.db", i, &r).args(["--attempt", "2"])).code(0);
        }
    }
}

/// `omen ci` on the default branch `main`: no comment, never failing the step for tests.
fn ci_cmd(d: &Path, report: &str, db: &str, commit: &str, run_id: &str) -> Command {
    let mut cmd = omen(d);
    cmd.args(["ci", "--reports", report, "--db", db, "--comment", "off"])
        .args([
            "--fail-on",
            "never",
            "--branch",
            "main",
            "--default-branch",
            "main",
        ])
        .args(["--commit", commit, "--run-id", run_id]);
    cmd
}

fn ci_on_main(d: &Path, report: &str, run_id: &str) -> omen_tests::Run {
    run(&mut ci_cmd(d, report, "h.db", "c7", run_id))
}

/// `cmd` run by bash after `limits` (e.g. `ulimit -f 64`), with the same clean environment.
fn under(limits: &str, cmd: &Command) -> Command {
    let mut limited = Command::new("bash");
    limited
        .arg("-c")
        .arg(format!("{limits}; exec \"$@\""))
        .arg("bash")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .env("RUST_LOG", "warn");
    if let Some(dir) = cmd.get_current_dir() {
        limited.current_dir(dir);
    }
    limited
}

#[test]
fn an_unreadable_quarantine_file_survives_ci_and_quarantine_and_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    flaky_history(d);
    std::fs::create_dir_all(d.join(".omen")).unwrap();
    let q = d.join(".omen/quarantine.json");
    std::fs::copy(d.join("h.xml"), d.join("r.xml")).unwrap();
    for (n, (what, text)) in UNREADABLE.iter().enumerate() {
        std::fs::write(&q, text).unwrap();
        let out = ci_on_main(d, "r.xml", &format!("{}", 50 + n));
        out.code(0);
        assert_eq!(
            std::fs::read_to_string(&q).unwrap(),
            *text,
            "omen ci rewrote the {what} file\n{out}"
        );
        assert!(out.stderr.contains("left untouched"), "{what}: {out}");
        let out = run(omen(d).args(["quarantine", "--db", "h.db"]));
        assert_eq!(
            std::fs::read_to_string(&q).unwrap(),
            *text,
            "omen quarantine rewrote the {what} file\n{out}"
        );
        let out = run(omen(d).args(["quarantine", "--db", "h.db", "--check"]));
        assert_eq!(out.code, 1, "--check passed the {what} file\n{out}");
    }
    // Sanity: a readable file is refreshed, so the checks above could fail.
    std::fs::remove_file(&q).unwrap();
    ci_on_main(d, "r.xml", "99").code(0);
    assert!(
        std::fs::read_to_string(&q)
            .unwrap()
            .contains("tests.t::test_flaky")
    );
}

fn manual_entries(n: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "    {{\n      \"id\": \"tests.manual::test_{i:03}\",\n      \"selector\": \"tests/manual.py::test_{i:03}\",\n      \"runner\": \"pytest\",\n      \"classname\": \"tests.manual\",\n      \"name\": \"test_{i:03}\",\n      \"reason\": \"tracked in JIRA-{i}: an external service the team cannot fix this quarter\",\n      \"added\": \"2026-01-01T00:00:00Z\",\n      \"expires\": \"2099-01-01T00:00:00Z\",\n      \"mode\": \"run-ignore\",\n      \"source\": \"manual\",\n      \"auto_release\": false\n    }}"
            )
        })
        .collect();
    format!(
        "{{\n  \"version\": 1,\n  \"tests\": [\n{}\n  ]\n}}\n",
        entries.join(",\n")
    )
}

#[test]
fn the_quarantine_file_is_replaced_atomically_through_symlinks_never_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    flaky_history(d);
    std::fs::copy(d.join("h.xml"), d.join("r.xml")).unwrap();
    let text = manual_entries(20);
    let check = run(omen(d).args([
        "quarantine",
        "--db",
        "h.db",
        "--quarantine-file",
        "probe.json",
    ]));
    check.code(0);
    std::fs::create_dir_all(d.join(".omen")).unwrap();
    let q = d.join(".omen/quarantine.json");
    std::fs::write(&q, &text).unwrap();
    assert!(text.len() > 8 * 1024);
    std::fs::write(d.join(".omen/quarantine.json.tmp"), "someone's file").unwrap();

    // A full disk: the new file cannot be written; the old one stays whole, no temp file left.
    // The last stored run again (c6, run 6): a duplicate, so the history is not written.
    let out = run(&mut under(
        "trap '' XFSZ; ulimit -f 8",
        &ci_cmd(d, "r.xml", "h.db", "c6", "6"),
    ));
    out.code(0);
    assert!(out.stderr.contains("quarantine not updated"), "{out}");
    assert_eq!(std::fs::read_to_string(&q).unwrap(), text, "{out}");
    let mut names: Vec<String> = std::fs::read_dir(d.join(".omen"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["quarantine.json", "quarantine.json.tmp"], "{out}");
    assert_eq!(
        std::fs::read_to_string(d.join(".omen/quarantine.json.tmp")).unwrap(),
        "someone's file"
    );

    // A symlinked quarantine file: the link stays a link, its target gets the new text.
    std::fs::create_dir_all(d.join("shared")).unwrap();
    std::fs::rename(&q, d.join("shared/q.json")).unwrap();
    std::os::unix::fs::symlink("../shared/q.json", &q).unwrap();
    let out = ci_on_main(d, "r.xml", "77");
    out.code(0);
    assert!(
        q.symlink_metadata().unwrap().file_type().is_symlink(),
        "{out}"
    );
    let refreshed = std::fs::read_to_string(d.join("shared/q.json")).unwrap();
    assert!(refreshed.contains("tests.t::test_flaky"), "{out}");
    assert_eq!(refreshed.matches("\"source\": \"manual\"").count(), 20);
    assert_eq!(
        std::fs::read_to_string(d.join(".omen/quarantine.json.tmp")).unwrap(),
        "someone's file"
    );
}

#[test]
fn hostile_text_never_starts_a_line_or_reaches_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A report whose file name holds a newline and a workflow command, and is malformed.
    let evil_name = "bad\n::warning::pwned.xml";
    std::fs::write(d.join(evil_name), "<testsuite><testcase name=\"x\"").unwrap();
    // Test names and messages with a newline entity, OSC 52, cursor moves and a bidi override.
    let good = "<testsuite name=\"pytest\">\
        <testcase classname=\"tests.t\" file=\"tests/t.py\" name=\"test_osc&#x1b;]52;c;ZXZpbA==&#x7;\"><failure message=\"x&#10;::error::injected\">t</failure></testcase>\
        <testcase classname=\"tests.t\" file=\"tests/t&#10;::error::f.py\" name=\"test_bidi\u{202e}cod\"><failure message=\"&#x1b;[2J&#x1b;[H\u{202e}gnp.exe\">t</failure></testcase>\
        </testsuite>";
    for i in 1..=4u32 {
        std::fs::write(d.join("good.xml"), good).unwrap();
        let mut cmd = ingest_cmd(d, "h.db", i, &d.join("good.xml"));
        cmd.arg(d.join(evil_name));
        let out = run(&mut cmd);
        out.code(0);
        assert_safe("ingest", &out);
    }
    let flaky = run(omen(d).args(["flaky", "--db", "h.db"]));
    flaky.code(0);
    assert!(flaky.stdout.contains("test_osc"), "{flaky}");
    assert_safe("flaky", &flaky);
    let ci = run(ci_cmd(d, "good.xml", "fresh.db", "c9", "9").env("GITHUB_ACTIONS", "true"));
    ci.code(0);
    assert!(
        ci.stdout.contains("::error"),
        "no annotations were printed\n{ci}"
    );
    assert_safe("ci", &ci);
}

fn assert_safe(what: &str, out: &omen_tests::Run) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for line in text.lines() {
            let injected = line.trim_start().starts_with("::")
                && !line.starts_with("::error ")
                && !line.starts_with("::warning ")
                && !line.starts_with("::notice ");
            assert!(
                !injected,
                "{what}: {stream} line starts a workflow command: {line:?}\n{out}"
            );
            for c in line.chars() {
                assert!(
                    !(omen_bidi(c) || (c.is_control() && c != '\t')),
                    "{what}: {stream} carries a raw {c:?}: {line:?}\n{out}"
                );
            }
        }
    }
}

fn omen_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[test]
fn a_report_cut_between_two_testcases_is_reported_and_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("cut.xml"),
        "<testsuites>\n<testsuite name=\"pytest\">\n<testcase classname=\"t\" name=\"a\"/>\n<testcase classname=\"t\" name=\"b\"><failure/></testcase>\n",
    )
    .unwrap();
    let out = run(ingest_cmd(d, "h.db", 1, &d.join("cut.xml")).args(["--format", "json"]));
    out.code(0);
    let json = out.json();
    assert_eq!(json["incomplete"], true, "{out}");
    assert_eq!(json["totals"]["tests"], 2, "{out}");
    assert_eq!(json["database"]["stored"], 2, "{out}");
    let cut = &json["files"][0]["truncated"];
    assert_eq!(cut["line"], 5, "{out}");
    assert!(
        cut["message"]
            .as_str()
            .unwrap()
            .contains("unexpected end of file"),
        "{out}"
    );
    assert!(
        out.stderr.contains("cut.xml:5:1: unexpected end of file"),
        "{out}"
    );
    // A complete file says nothing of the kind.
    let whole = report(d, "whole.xml", 3, &[]);
    let out = run(ingest_cmd(d, "h.db", 2, &whole).args(["--format", "json"]));
    let json = out.json();
    assert_eq!(json["incomplete"], false, "{out}");
    assert!(json["files"][0].get("truncated").is_none(), "{out}");
}

/// Write a report whose one token (`attr`, `text` or `comment`) is `size` bytes, streaming.
fn huge_token_report(path: &Path, kind: &str, size: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(
        b"<testsuites><testsuite name=\"pytest\">\n<testcase classname=\"t\" name=\"first\"/>\n",
    )
    .unwrap();
    let (open, close): (&[u8], &[u8]) = match kind {
        "attr" => (b"<testcase classname=\"t\" name=\"", b"\"/>\n"),
        "text" => (
            b"<testcase classname=\"t\" name=\"fails\"><failure message=\"m\">",
            b"</failure></testcase>\n",
        ),
        _ => (b"<!--", b"-->\n"),
    };
    f.write_all(open).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..size / chunk.len() {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(close).unwrap();
    f.write_all(b"<testcase classname=\"t\" name=\"last\"/>\n</testsuite></testsuites>\n")
        .unwrap();
}

#[test]
fn a_256_mib_token_is_cut_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for kind in ["attr", "text", "comment"] {
        let report = d.join(format!("{kind}.xml"));
        huge_token_report(&report, kind, 256 << 20);
        // 300 MB of address space: a parser that buffers the token cannot even hold it once.
        let mut limited = under(
            "ulimit -v 300000",
            &ingest_cmd(d, &format!("{kind}.db"), 1, &report),
        );
        let out = run(limited.args(["--format", "json"]));
        out.code(0);
        let json = out.json();
        let expected = if kind == "comment" { 2 } else { 3 };
        assert_eq!(json["totals"]["tests"], expected, "{kind}: {out}");
        assert_eq!(json["database"]["stored"], expected, "{kind}: {out}");
        std::fs::remove_file(&report).unwrap();
        let store = omen_store::Store::open_read_only(&d.join(format!("{kind}.db"))).unwrap();
        let mut tests = Vec::new();
        store.for_each_test(|t| tests.push(t)).unwrap();
        let longest = tests
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(0);
        assert!(
            longest <= 4097,
            "{kind}: a {longest}-character name was stored"
        );
        for t in &tests {
            if let Some((_, f)) = store.last_failure(t.id).unwrap() {
                let stored = f.message.map_or(0, |m| m.len()) + f.text.map_or(0, |t| t.len());
                assert!(
                    stored <= 4096 + 1024 + 8,
                    "{kind}: {stored} bytes of failure text"
                );
            }
        }
        if kind == "attr" {
            let cut = tests
                .iter()
                .find(|t| t.name.len() > 100)
                .expect("the long name");
            assert!(cut.name.ends_with('…'), "a cut name ends with the marker");
        }
    }
}

#[test]
fn every_fuzz_corpus_input_gets_an_answer() {
    // Each input `omen-bench fuzz` starts from or found failing is parsed by the real binary:
    // reports through `omen ingest`, quarantine files through `omen quarantine --check`.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = omen_tests::corpus("fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let out = match path.extension().and_then(|e| e.to_str()) {
            Some("xml") => run(&mut ingest_cmd(d, "h.db", seen + 1, &path)),
            Some("json") => {
                std::fs::copy(&path, d.join("q.json")).unwrap();
                run(omen(d).args([
                    "quarantine",
                    "--check",
                    "--db",
                    "h.db",
                    "--quarantine-file",
                    "q.json",
                ]))
            }
            _ => continue,
        };
        seen += 1;
        assert!(matches!(out.code, 0 | 1), "{}: {out}", path.display());
        assert!(
            !out.stderr.contains("panicked"),
            "{}: {out}",
            path.display()
        );
    }
    assert!(seen >= 6, "the fuzz corpus is missing files");
}
