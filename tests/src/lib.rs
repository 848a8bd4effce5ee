//! Helpers for Omen's end-to-end tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod fake_github;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A committed test corpus file; panics (never skips) when it is missing.
pub fn corpus(relative: &str) -> PathBuf {
    let path = repo_root().join("tests/corpus").join(relative);
    assert!(
        path.exists(),
        "test data {} is missing: the corpus is committed with the repository and tests never skip without it",
        path.display()
    );
    path
}

/// Path of the `omen` binary, built once per test process so it is never stale.
pub fn omen_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/e2e-<hash>
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", "omen-cli", "--bin", "omen"])
            .current_dir(repo_root());
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the omen binary failed");
        profile_dir.join(format!("omen{}", std::env::consts::EXE_SUFFIX))
    })
}

/// A command for the `omen` binary with a clean environment: no CI variables leak in from the
/// machine running the tests, so every test states the environment it simulates.
pub fn omen(cwd: &Path) -> Command {
    let mut cmd = Command::new(omen_bin());
    cmd.env_clear().current_dir(cwd);
    for key in ["PATH", "HOME", "SYSTEMROOT", "TMPDIR"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// The result of running a command, with everything needed to understand a failure.
#[derive(Debug)]
pub struct Run {
    /// What ran.
    pub command: String,
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Parse stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }

    /// Assert the exit code.
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(self.code, expected, "unexpected exit code\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// Run a command to completion.
pub fn run(cmd: &mut Command) -> Run {
    let command = format!("{cmd:?}");
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap_or_else(|e| panic!("{command}: {e}"));
    Run {
        command,
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
