//! Helpers for Omen's end-to-end tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod fake_github;
pub mod fake_gitlab;
pub mod fake_http;

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

/// The Python that has pytest and pytest-omen installed (`tests/run.sh` sets it up); panics,
/// never skips, when it cannot import them.
pub fn python() -> PathBuf {
    let python = std::env::var_os("OMEN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/py/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import pytest, pytest_omen"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import pytest and pytest_omen: run the suite with `bash tests/run.sh`, which installs them",
        python.display()
    );
    python
}

/// Real pytest in `dir` writing `junit`, with `env` set and nothing inherited that steers
/// pytest-omen (`OMEN_QUARANTINE`); add the test selection and run it.
pub fn pytest_cmd(dir: &Path, junit: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(python());
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        ".",
    ])
    .arg(format!("--junitxml={junit}"))
    .current_dir(dir)
    .env_remove("OMEN_QUARANTINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `omen ingest --db h.db REPORT` in `dir` as default-branch run `run` (branch and default
/// branch `main`), dated 2026-03-`day`, at `commit` (else the checkout's `HEAD`).
pub fn ingest_main(
    dir: &Path,
    run_id: u32,
    day: u32,
    commit: Option<&str>,
    report: impl AsRef<std::ffi::OsStr>,
) -> Run {
    let mut cmd = omen(dir);
    cmd.args([
        "ingest",
        "--db",
        "h.db",
        "--branch",
        "main",
        "--default-branch",
        "main",
    ])
    .args(["--run-id", &run_id.to_string()])
    .args(["--timestamp", &format!("2026-03-{day:02}T00:00:00Z")]);
    if let Some(c) = commit {
        cmd.args(["--commit", c]);
    }
    run(cmd.arg(report))
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

/// `omen ci` in `cwd` on its junit.xml into h.db, without deploy risk: what most end-to-end
/// runs of `omen ci` start from (the caller adds the run, the environment and the outputs).
pub fn omen_ci(cwd: &Path) -> Command {
    let mut cmd = omen(cwd);
    cmd.args([
        "ci",
        "--reports",
        "junit.xml",
        "--db",
        "h.db",
        "--risk",
        "off",
    ]);
    cmd
}

/// Run `git args` in `dir` as `author` (`<author>@example.com`), with author and committer
/// time `unix_time`; panics with git's stderr on failure. Returns trimmed stdout.
pub fn git_as(dir: &Path, author: &str, unix_time: i64, args: &[&str]) -> String {
    let date = format!("{unix_time} +0000");
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", author)
        .env("GIT_AUTHOR_EMAIL", format!("{author}@example.com"))
        .env("GIT_COMMITTER_NAME", author)
        .env("GIT_COMMITTER_EMAIL", format!("{author}@example.com"))
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .unwrap_or_else(|e| panic!("git {args:?} could not run: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
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

/// A static file server on 127.0.0.1 serving `root` (GET only, 404 for anything missing).
pub struct StaticServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticServer {
    /// Serve `root`.
    pub fn start(root: &Path) -> StaticServer {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (st, root) = (stop.clone(), root.to_owned());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_owned();
                let file = root.join(&path);
                let mut stream = reader.into_inner();
                let response = match std::fs::read(&file) {
                    Ok(bytes) if !path.contains("..") => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            bytes.len()
                        )
                        .into_bytes();
                        r.extend(bytes);
                        r
                    }
                    _ => {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response);
            }
        });
        StaticServer {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `program` when `program --version` runs; panics (never skips) with how to install it.
pub fn require_tool(program: PathBuf, name: &str) -> PathBuf {
    let ok = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{name} is missing: run the suite with `bash tests/run.sh`, which installs it"
    );
    program
}
