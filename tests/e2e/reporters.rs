//! The reporters, exercised with the real test runners: pytest (the plugin's own pytester suite,
//! and the loop back into Omen through `--junitxml`) and cargo-nextest (the generated config
//! against a fixture crate).

use std::path::Path;
use std::process::Command;

use omen_tests::{ingest_main, omen, pytest_cmd, python, repo_root, run};

#[test]
fn pytest_plugin_suite_passes_under_real_pytest() {
    let out = run(Command::new(python())
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "reporters/pytest-omen/tests",
        ])
        .current_dir(repo_root()));
    out.code(0);
    assert!(out.stdout.contains(" passed"), "{out}");
    assert!(
        !out.stdout.contains("skipped"),
        "no plugin test may skip\n{out}"
    );
}

#[test]
fn a_quarantined_pytest_failure_passes_the_build_and_omen_still_learns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test_app.py"),
        "def test_ok():\n    pass\n\ndef test_flaky():\n    assert False, 'timeout talking to the cache'\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join(".omen")).unwrap();
    std::fs::write(
        dir.path().join(".omen/quarantine.json"),
        r#"{"version": 1, "tests": [{"id": "test_app::test_flaky", "selector": "test_app.py::test_flaky", "runner": "pytest",
            "classname": "test_app", "name": "test_flaky", "reason": "flaky", "added": "2026-01-01T00:00:00Z",
            "expires": "2099-01-01T00:00:00Z", "mode": "run-ignore", "source": "auto", "auto_release": true}]}"#,
    )
    .unwrap();
    let pytest = run(Command::new(python())
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--junitxml=junit.xml",
            "--rootdir",
            ".",
        ])
        .current_dir(dir.path()));
    pytest.code(0);
    assert!(
        pytest
            .stdout
            .contains("omen: 1 quarantined test (0 passed, 1 failed and was ignored)"),
        "{pytest}"
    );

    let ingest = run(omen(dir.path()).args([
        "ingest",
        "--format",
        "json",
        "--db",
        "h.db",
        "--commit",
        "c1",
        "junit.xml",
    ]));
    ingest.code(0);
    let totals = &ingest.json()["totals"];
    assert_eq!(
        (totals["passed"].as_u64(), totals["failures"].as_u64()),
        (Some(1), Some(1)),
        "{ingest}"
    );
    let store = omen_store::Store::open_read_only(&dir.path().join("h.db")).unwrap();
    let mut ids = Vec::new();
    store.for_each_test(|row| ids.push(row.id)).unwrap();
    let failures: Vec<String> = ids
        .into_iter()
        .filter_map(|id| store.last_failure(id).unwrap())
        .map(|(_, f)| f.message.unwrap_or_default())
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let message = &failures[0];
    assert!(
        message.contains("timeout talking to the cache"),
        "{message}"
    );
}

fn nextest(fixture: &Path, state: &Path, extra: &[&str]) -> omen_tests::Run {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "nextest",
        "run",
        "--no-fail-fast",
        "--color",
        "never",
        "--manifest-path",
    ])
    .arg(fixture.join("Cargo.toml"))
    .args(extra)
    .env("CARGO_TARGET_DIR", fixture.join("target"))
    .env("OMEN_FIXTURE_STATE", state);
    // Nothing from the outer test run may steer the inner one.
    for (key, _) in std::env::vars() {
        if key.starts_with("NEXTEST") || (key.starts_with("CARGO_") && key != "CARGO_HOME") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("CARGO_TARGET_DIR", fixture.join("target"));
    run(&mut cmd)
}

/// In `dir`: a quarantine with the fixture's flaky test (`run-ignore`) and the test that must not
/// run (`skip`), and the nextest tool config `omen quarantine --format nextest EXTRA` makes from
/// it; returns the `--tool-config-file` argument.
fn nextest_tool_config(dir: &Path, extra: &[&str]) -> String {
    let entry = |test: &str, mode: &str| {
        format!(
            r#"{{"id": "omen-nextest-fixture::{test}", "selector": "omen-nextest-fixture {test}", "runner": "nextest",
                "classname": "omen-nextest-fixture", "name": "{test}", "reason": "flaky", "added": "2026-01-01T00:00:00Z",
                "expires": "2099-01-01T00:00:00Z", "mode": "{mode}", "source": "manual", "auto_release": false}}"#
        )
    };
    std::fs::write(
        dir.join("q.json"),
        format!(
            r#"{{"version": 1, "tests": [{}, {}]}}"#,
            entry("quarantine::flaky", "run-ignore"),
            entry("quarantine::skipped_by_quarantine", "skip")
        ),
    )
    .unwrap();
    let config = run(omen(dir)
        .args([
            "quarantine",
            "--format",
            "nextest",
            "--quarantine-file",
            "q.json",
        ])
        .args(extra));
    config.code(0);
    let config_path = dir.join("omen-nextest.toml");
    std::fs::write(&config_path, &config.stdout).unwrap();
    format!("omen:{}", config_path.display())
}

#[test]
fn nextest_quarantine_config_with_real_cargo_nextest() {
    let fixture = repo_root().join("reporters/nextest/fixture");
    let dir = tempfile::tempdir().unwrap();
    let tool = nextest_tool_config(dir.path(), &[]);

    // Without Omen: the flaky test, the bug and the quarantined test all fail the run.
    let state = tempfile::tempdir().unwrap();
    let plain = nextest(&fixture, state.path(), &[]);
    assert_ne!(plain.code, 0, "{plain}");
    for t in [
        "quarantine::flaky",
        "quarantine::always_fails",
        "quarantine::skipped_by_quarantine",
    ] {
        assert!(
            plain
                .stderr
                .lines()
                .any(|l| l.trim_start().starts_with("FAIL [") && l.contains(t)),
            "{t} should fail\n{plain}"
        );
    }

    // With Omen's config and without the real bug: the quarantined failures no longer fail the run.
    let state = tempfile::tempdir().unwrap();
    let quarantined = nextest(
        &fixture,
        state.path(),
        &[
            "--profile",
            "omen",
            "--tool-config-file",
            &tool,
            "-E",
            "not test(=quarantine::always_fails)",
        ],
    );
    quarantined.code(0);
    assert!(
        quarantined.stderr.contains("FLAKY") && quarantined.stderr.contains("quarantine::flaky"),
        "{quarantined}"
    );
    assert!(
        !quarantined
            .stderr
            .contains("quarantine::skipped_by_quarantine"),
        "the skip entry must not run\n{quarantined}"
    );

    // With Omen's config and the real bug: the bug still fails the run, and it is the only failure.
    let state = tempfile::tempdir().unwrap();
    let all = nextest(
        &fixture,
        state.path(),
        &["--profile", "omen", "--tool-config-file", &tool],
    );
    assert_ne!(all.code, 0, "{all}");
    let failing: Vec<&str> = all
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("FAIL ["))
        .collect();
    assert!(
        !failing.is_empty()
            && failing
                .iter()
                .all(|l| l.contains("quarantine::always_fails")),
        "{all}"
    );
}

/// A copy of the fixture whose `.config/nextest.toml` defines `[profile.ci]` (with `settings`)
/// writing its JUnit to `junit`, as users define their CI profile.
fn fixture_with_ci_profile(settings: &str, junit: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    copy_fixture(repo.path());
    std::fs::create_dir_all(repo.path().join(".config")).unwrap();
    std::fs::write(
        repo.path().join(".config/nextest.toml"),
        format!(
            "[profile.ci]\nfail-fast = false\n{settings}\n[profile.ci.junit]\npath = \"{junit}\"\n"
        ),
    )
    .unwrap();
    repo
}

/// Copy the nextest fixture's sources (not its target) to `to`.
fn copy_fixture(to: &Path) {
    let fixture = repo_root().join("reporters/nextest/fixture");
    std::fs::create_dir_all(to.join("src")).unwrap();
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs"] {
        std::fs::copy(fixture.join(file), to.join(file)).unwrap();
    }
}

#[test]
fn nextest_quarantine_extends_the_repository_s_own_ci_profile() {
    // A repository that defines its CI profile where users do, with a JUnit path and settings.
    let repo = fixture_with_ci_profile("test-threads = 1\n", "junit-ci.xml");
    let dir = tempfile::tempdir().unwrap();
    // The documented command, with the user's profile as the base.
    let tool = nextest_tool_config(dir.path(), &["--nextest-inherits", "ci"]);
    let target = repo.path().join("target");
    let junit = |profile: &str| target.join(format!("nextest/{profile}/junit-ci.xml"));

    for profile in ["ci", "omen"] {
        let state = tempfile::tempdir().unwrap();
        let out = nextest(
            repo.path(),
            state.path(),
            &[
                "--profile",
                profile,
                "--tool-config-file",
                &tool,
                "-E",
                "not test(=quarantine::always_fails)",
            ],
        );
        out.code(0);
        assert!(
            out.stderr.contains("FLAKY") && out.stderr.contains("quarantine::flaky"),
            "--profile {profile}: the flaky test passes on a retry\n{out}"
        );
        assert!(
            !out.stderr.contains("quarantine::skipped_by_quarantine"),
            "--profile {profile}: the skip entry must not run\n{out}"
        );
        // The user's JUnit settings apply: the file is where their profile puts it.
        let xml = std::fs::read_to_string(junit(profile)).unwrap_or_else(|e| {
            panic!(
                "--profile {profile}: no JUnit at {}: {e}\n{out}",
                junit(profile).display()
            )
        });
        assert!(xml.contains("quarantine::flaky"), "{xml}");
    }
    // A real bug still fails the run under the user's profile.
    let state = tempfile::tempdir().unwrap();
    let all = nextest(
        repo.path(),
        state.path(),
        &["--profile", "ci", "--tool-config-file", &tool],
    );
    assert_ne!(all.code, 0, "{all}");
    assert!(all.stderr.contains("quarantine::always_fails"), "{all}");
    // `default` cannot be extended from a tool config: a usage error, before anything runs.
    let refused = run(omen(dir.path()).args([
        "quarantine",
        "--format",
        "nextest",
        "--nextest-profile",
        "default",
        "--quarantine-file",
        "q.json",
    ]));
    refused.code(2);
    assert!(refused.stderr.contains("[profile.default]"), "{refused}");
}

/// Run real pytest in `dir` with `env`, writing `junit`.
fn pytest(dir: &Path, junit: &str, env: &[(&str, &str)]) -> omen_tests::Run {
    run(&mut pytest_cmd(dir, junit, env))
}

#[test]
fn the_quarantine_loop_closes_without_a_hand_step_under_real_pytest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("test_app.py"),
        "import os\n\n\
         def test_ok():\n    pass\n\n\
         def test_flaky():\n    assert os.environ.get('FLAKE') != '1', 'timeout talking to the cache'\n\n\
         def test_bug():\n    assert os.environ.get('BUG') != '1', 'wrong total'\n",
    )
    .unwrap();
    // The default branch's history: test_flaky fails alone twice, each time fixed by nothing.
    for i in 1..=10u32 {
        let flake = if i == 3 || i == 7 { "1" } else { "0" };
        let junit = format!("main{i}.xml");
        let out = pytest(d, &junit, &[("FLAKE", flake)]);
        assert_eq!(out.code, if flake == "1" { 1 } else { 0 }, "{out}");
        ingest_main(d, i, i, Some(&format!("c{i}")), &junit).code(0);
    }
    // The committed file holds a person's entry, which the run's quarantine keeps.
    std::fs::create_dir(d.join(".omen")).unwrap();
    std::fs::write(
        d.join(".omen/quarantine.json"),
        r#"{"version": 1, "tests": [{"id": "test_app::test_ok", "selector": "test_app.py::test_ok", "runner": "pytest",
            "classname": "test_app", "name": "test_ok", "reason": "watching it", "added": "2026-01-01T00:00:00Z",
            "expires": "2099-01-01T00:00:00Z", "mode": "run-ignore", "source": "manual", "auto_release": false}]}"#,
    )
    .unwrap();
    let committed = std::fs::read(d.join(".omen/quarantine.json")).unwrap();

    // A pull request's setup step, before its tests: no hand step, no committed automatic entry.
    let setup = run(omen(d).args([
        "setup",
        "--db",
        "h.db",
        "--out-dir",
        "run",
        "--env-file",
        "env.txt",
        "--format",
        "json",
    ]));
    setup.code(0);
    let report = setup.json();
    assert_eq!(
        (
            report["source"].as_str(),
            report["automatic"].as_u64(),
            report["manual"].as_u64()
        ),
        (Some("history"), Some(1), Some(1)),
        "{setup}"
    );
    let env = std::fs::read_to_string(d.join("env.txt")).unwrap();
    let quarantine = env
        .lines()
        .find_map(|l| l.strip_prefix("OMEN_QUARANTINE="))
        .expect("OMEN_QUARANTINE exported");
    assert!(Path::new(quarantine).is_absolute(), "{env}");
    assert!(
        env.lines()
            .any(|l| l.starts_with("OMEN_NEXTEST_ARGS=--profile omen --tool-config-file omen:/")),
        "{env}"
    );
    let text = std::fs::read_to_string(quarantine).unwrap();
    assert!(
        text.contains("test_app.py::test_flaky") && text.contains("\"source\": \"auto\""),
        "{text}"
    );
    assert_eq!(
        std::fs::read(d.join(".omen/quarantine.json")).unwrap(),
        committed,
        "setup never writes the committed file"
    );

    // The PR's tests: the flaky failure no longer fails the build...
    let flaky = pytest(
        d,
        "pr.xml",
        &[("FLAKE", "1"), ("OMEN_QUARANTINE", quarantine)],
    );
    flaky.code(0);
    assert!(
        flaky
            .stdout
            .contains("omen: 2 quarantined tests (1 passed, 1 failed and was ignored)"),
        "{flaky}"
    );
    // ...a real bug still does...
    let bug = pytest(
        d,
        "pr2.xml",
        &[
            ("FLAKE", "1"),
            ("BUG", "1"),
            ("OMEN_QUARANTINE", quarantine),
        ],
    );
    bug.code(1);
    assert!(bug.stdout.contains("wrong total"), "{bug}");
    // ...and without the setup step the same flaky failure fails it.
    let without = pytest(d, "pr3.xml", &[("FLAKE", "1")]);
    without.code(1);
}

#[test]
fn the_quarantine_loop_closes_without_a_hand_step_under_real_nextest() {
    let repo = fixture_with_ci_profile("", "junit.xml");
    let junit = repo.path().join("target/nextest/ci/junit.xml");
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    // The default branch's history, from nextest's own JUnit: the flaky test fails and passes
    // within each run (nextest retried it); the real bug is not part of these runs.
    for i in 1..=3u32 {
        let state = tempfile::tempdir().unwrap();
        let out = nextest(
            repo.path(),
            state.path(),
            &[
                "--profile",
                "ci",
                "--retries",
                "1",
                "-E",
                "not test(=quarantine::always_fails) & not test(=quarantine::skipped_by_quarantine)",
            ],
        );
        out.code(0);
        let report = d.join(format!("main{i}.xml"));
        std::fs::copy(&junit, &report).unwrap();
        ingest_main(d, i, i, Some(&format!("c{i}")), &report).code(0);
    }
    // A pull request's setup step, extending the repository's own profile.
    let setup = run(omen(d).args([
        "setup",
        "--db",
        "h.db",
        "--out-dir",
        "run",
        "--env-file",
        "env.txt",
        "--nextest-profile",
        "ci",
    ]));
    setup.code(0);
    let env = std::fs::read_to_string(d.join("env.txt")).unwrap();
    let args: Vec<String> = env
        .lines()
        .find_map(|l| l.strip_prefix("OMEN_NEXTEST_ARGS="))
        .expect("OMEN_NEXTEST_ARGS exported")
        .split(' ')
        .map(str::to_owned)
        .collect();
    assert_eq!(args[..2], ["--profile", "ci"], "{env}");
    let with = |extra: &[&str]| {
        let state = tempfile::tempdir().unwrap();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        nextest(repo.path(), state.path(), &all)
    };
    // The PR's tests, no retries asked for: the flaky test passes on the quarantine's retry...
    let flaky = with(&[
        "-E",
        "not test(=quarantine::always_fails) & not test(=quarantine::skipped_by_quarantine)",
    ]);
    flaky.code(0);
    assert!(
        flaky.stderr.contains("FLAKY") && flaky.stderr.contains("quarantine::flaky"),
        "{flaky}"
    );
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("quarantine::flaky"),
        "JUnit where the user's profile puts it"
    );
    // ...the real bug still fails the run...
    let bug = with(&["-E", "not test(=quarantine::skipped_by_quarantine)"]);
    assert_ne!(bug.code, 0, "{bug}");
    assert!(bug.stderr.contains("quarantine::always_fails"), "{bug}");
    // ...and without the setup step's arguments the flaky test fails it.
    let state = tempfile::tempdir().unwrap();
    let without = nextest(
        repo.path(),
        state.path(),
        &[
            "--profile",
            "ci",
            "-E",
            "not test(=quarantine::always_fails) & not test(=quarantine::skipped_by_quarantine)",
        ],
    );
    assert_ne!(without.code, 0, "{without}");
}
