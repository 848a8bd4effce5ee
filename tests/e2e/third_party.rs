//! A real third-party suite through the whole loop: more-itertools 11.2.1's recipe tests, from its
//! PyPI sdist (pinned by SHA-256), in a git repository with a scripted history — one real test
//! made flaky by a seeded conftest hook, one real regression (a patched `tail`) — run by real
//! pytest with pytest-omen, ingested by `omen`.

use std::path::{Path, PathBuf};
use std::process::Command;

use omen_tests::{git_as, ingest_main, omen, pytest_cmd, python, run};

const SDIST: &str = "more-itertools==11.2.1";
const SDIST_FILE: &str = "more_itertools-11.2.1.tar.gz";
const SDIST_SHA256: &str = "cbf08fd0af284dc69718b9b76a8e6203df624d70209ea511e4219d350c856f63";
/// The real test made flaky, and the real tests the regression breaks.
const FLAKY: &str = "tests/test_recipes.py::TakeTests::test_simple_take";
const BROKEN: &str = "tests/test_recipes.py::TailTests::test_iterator_greater";
/// The recipe tests minus the few slow ones (20 s of prime sieving): 135 tests, about a second.
const SELECT: &str = "not PrimeFunctionTests and not PolynomialFromRoots and not RunningMedian";

/// Download and unpack the pinned sdist into `dir`; its SHA-256 must match.
fn fetch_sdist(dir: &Path) -> PathBuf {
    let download = dir.join("download");
    run(Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-binary", ":all:", "--no-deps", "--dest"])
        .arg(&download)
        .arg(SDIST))
    .code(0);
    let sdist = download.join(SDIST_FILE);
    let sum = run(Command::new("sha256sum").arg(&sdist));
    sum.code(0);
    assert!(
        sum.stdout.starts_with(SDIST_SHA256),
        "{SDIST_FILE} is not the pinned file: {sum}"
    );
    run(Command::new("tar")
        .arg("xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(dir))
    .code(0);
    dir.join("more_itertools-11.2.1")
}

/// Run the selected tests as run `i`; the conftest hook fails FLAKY in the runs it picks.
fn pytest(repo: &Path, i: u32, junit: &str, extra_env: &[(&str, &str)]) -> omen_tests::Run {
    let run_id = i.to_string();
    let mut env = vec![("OMEN_RUN", run_id.as_str())];
    env.extend_from_slice(extra_env);
    run(pytest_cmd(repo, junit, &env)
        .args(["-k", SELECT])
        .arg("tests/test_recipes.py"))
}

#[test]
fn a_real_suite_quarantines_its_flaky_test_and_never_its_regression() {
    let work = tempfile::tempdir().unwrap();
    let repo = fetch_sdist(work.path());
    // A seeded 30% failure rate for one real test, decided per run, so the history is reproducible.
    std::fs::write(
        repo.join("conftest.py"),
        format!(
            "import os, random\nimport pytest\n\n\
             @pytest.hookimpl(tryfirst=True)\n\
             def pytest_runtest_call(item):\n\
             \x20   if item.nodeid == {FLAKY:?}:\n\
             \x20       run = int(os.environ.get('OMEN_RUN', '0'))\n\
             \x20       if random.Random(run * 7919).random() < 0.3:\n\
             \x20           raise AssertionError('flaky: timed out waiting for the cache')\n"
        ),
    )
    .unwrap();
    let day = 86_400;
    let t0 = 1_772_323_200; // 2026-03-01
    git_as(&repo, "dev", t0, &["init", "-q", "-b", "main"]);
    git_as(&repo, "dev", t0, &["add", "-A"]);
    git_as(
        &repo,
        "dev",
        t0,
        &["commit", "-q", "-m", "import more-itertools 11.2.1"],
    );
    // The same draws as the hook, asked of Python's own Random (not reimplemented here).
    let draws = Command::new(python())
        .args([
            "-c",
            "import random; print(' '.join(str(i) for i in range(1, 17) if random.Random(i * 7919).random() < 0.3))",
        ])
        .output()
        .unwrap();
    let flaky_runs: Vec<u32> = String::from_utf8_lossy(&draws.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        flaky_runs.len() >= 2,
        "the seed must make the test fail at least twice: {flaky_runs:?}"
    );
    for i in 1..=16u32 {
        if i == 10 {
            // A real regression: `tail` of an iterator returns one item too many.
            let recipes = repo.join("more_itertools/recipes.py");
            let text = std::fs::read_to_string(&recipes).unwrap();
            let patched = text.replacen(
                "deque(iterable, maxlen=n))",
                "deque(iterable, maxlen=n + 1))",
                1,
            );
            assert_ne!(patched, text, "the regression patch must apply");
            std::fs::write(&recipes, patched).unwrap();
        } else {
            std::fs::write(repo.join("CHANGES.txt"), format!("change {i}\n")).unwrap();
        }
        git_as(&repo, "dev", t0 + i64::from(i) * day, &["add", "-A"]);
        git_as(
            &repo,
            "dev",
            t0 + i64::from(i) * day,
            &["commit", "-q", "-m", &format!("change {i}")],
        );
        let junit = format!("main{i}.xml");
        let out = pytest(&repo, i, &junit, &[]);
        let expect_fail = flaky_runs.contains(&i) || i >= 10;
        assert_eq!(out.code, i32::from(expect_fail), "run {i}\n{out}");
        ingest_main(&repo, i, i + 1, None, &junit).code(0);
        // The default branch refreshes the quarantine after every run, as `omen ci` does.
        let q = run(omen(&repo).args([
            "quarantine",
            "--db",
            "h.db",
            "--now",
            &format!("2026-03-{:02}T01:00:00Z", i + 1),
        ]));
        q.code(0);
        let file = std::fs::read_to_string(repo.join(".omen/quarantine.json")).unwrap_or_default();
        assert!(
            !file.contains("TailTests"),
            "run {i}: a regression is never quarantined\n{file}"
        );
    }
    // The evidence the design requires: the flaky test is flaky, the regression broken.
    let explained = run(omen(&repo).args([
        "flaky",
        "--db",
        "h.db",
        "--test",
        "TakeTests::test_simple_take",
        "--format",
        "json",
    ]));
    explained.code(0);
    assert_eq!(
        explained.json()["tests"][0]["state"],
        "flaky",
        "{explained}"
    );
    let broken = run(omen(&repo).args([
        "flaky", "--db", "h.db", "--test", BROKEN, "--format", "json",
    ]));
    assert_eq!(broken.json()["tests"][0]["state"], "broken", "{broken}");
    let file = std::fs::read_to_string(repo.join(".omen/quarantine.json")).unwrap();
    assert!(file.contains(FLAKY), "{file}");

    // A pull request: setup writes the run's quarantine; only the flaky failure is excused.
    let setup = run(omen(&repo).args([
        "setup",
        "--db",
        "h.db",
        "--out-dir",
        "run",
        "--env-file",
        "env.txt",
    ]));
    setup.code(0);
    let env = std::fs::read_to_string(repo.join("env.txt")).unwrap();
    let quarantine = env
        .lines()
        .find_map(|l| l.strip_prefix("OMEN_QUARANTINE="))
        .unwrap()
        .to_owned();
    let failing_run = flaky_runs[0];
    let pr = pytest(
        &repo,
        failing_run,
        "pr.xml",
        &[("OMEN_QUARANTINE", &quarantine)],
    );
    pr.code(1);
    assert!(
        pr.stdout.contains("1 failed and was ignored"),
        "the flaky failure is excused\n{pr}"
    );
    assert!(
        pr.stdout.contains("test_iterator_greater"),
        "the regression still fails\n{pr}"
    );
    // With the regression fixed on the branch, the pull request is green despite the flake.
    let recipes = repo.join("more_itertools/recipes.py");
    let text = std::fs::read_to_string(&recipes).unwrap();
    std::fs::write(&recipes, text.replacen("maxlen=n + 1))", "maxlen=n))", 1)).unwrap();
    let fixed = pytest(
        &repo,
        failing_run,
        "pr2.xml",
        &[("OMEN_QUARANTINE", &quarantine)],
    );
    fixed.code(0);
}
