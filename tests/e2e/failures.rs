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
    let body = dir.join("comment.md");
    let out = run(omen(dir)
        .args([
            "ci",
            "--reports",
            "junit.xml",
            "--db",
            "h.db",
            "--risk",
            "off",
        ])
        .args([
            "--comment",
            "always",
            "--fail-on",
            "never",
            "--comment-file",
        ])
        .arg(&body)
        .args([
            "--branch",
            "feature",
            "--default-branch",
            "main",
            "--pull-request",
            "3",
        ]));
    out.code(0);
    std::fs::read_to_string(&body).unwrap_or_else(|e| panic!("{e}\n{out}"))
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
