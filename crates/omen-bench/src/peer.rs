//! `omen-bench ingest-peer`: the real `omen ingest` binary, whole process, against
//! EnricoMi/publish-unit-test-result-action's own parser on the same report, side by side in one
//! run (this shared machine's speed drifts, so figures written down earlier are never compared).
//!
//! The peer's unchanged code and timing script live in `../shared/peers/enricomi/`; its
//! requirements are installed into a virtual environment this benchmark makes itself. The peer's
//! figure is its own `seconds=` (parse + per-case processing, interpreter start-up excluded),
//! which favours the peer; Omen's is the wall time of the whole `omen ingest` process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// Omen must be at least this many times faster than the peer (issue: "ingest at the parser's
/// pace").
const TARGET_RATIO: f64 = 6.0;

fn peer_venv(data: &Path, peer: &Path) -> anyhow::Result<PathBuf> {
    let venv = data.join("peer-venv");
    let python = venv.join("bin/python");
    if python.exists()
        && Command::new(&python)
            .args(["-c", "import lxml, junitparser"])
            .status()
            .is_ok_and(|s| s.success())
    {
        return Ok(python);
    }
    eprintln!("installing the peer's requirements into {}", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("python3 -m venv")?;
    anyhow::ensure!(status.success(), "python3 -m venv failed");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(peer.join("python/requirements-3.11.txt"))
        .status()
        .context("pip install")?;
    anyhow::ensure!(
        status.success(),
        "installing the peer's requirements failed"
    );
    Ok(python)
}

fn time_peer(python: &Path, peer: &Path, report: &Path) -> anyhow::Result<(f64, u64)> {
    let out = Command::new(python)
        .arg(peer.join("bench.py"))
        .arg(peer.join("python"))
        .arg(report)
        .output()
        .context("running the peer")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("the peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_owned)
    };
    let seconds: f64 = field("seconds=")
        .context("the peer printed no seconds=")?
        .parse()?;
    let cases: u64 = field("cases=")
        .context("the peer printed no cases=")?
        .parse()?;
    Ok((seconds, cases))
}

fn time_omen(omen: &Path, report: &Path, db: &Path) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = Command::new(omen)
        .args([
            "ingest",
            "--format",
            "json",
            "--branch",
            "main",
            "--default-branch",
            "main",
        ])
        .args(["--commit", "peer-bench", "--run-id", "peer-bench", "--db"])
        .arg(db)
        .arg(report)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .context("running omen ingest")?;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "omen ingest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    anyhow::ensure!(
        json["database"]["stored"].as_u64().unwrap_or(0) > 0,
        "omen ingest stored nothing: {json}"
    );
    Ok(seconds)
}

fn best_and_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

/// Run the comparison on `report` (already generated), with `base` the 1,000,000-result
/// database. Prints the figures and marks the ratio target `ok` or `MISSED`; returns whether it
/// was met.
pub fn run(data: &Path, report: &Path, base: &Path, peer: &Path) -> anyhow::Result<bool> {
    anyhow::ensure!(
        peer.join("bench.py").exists(),
        "the peer is missing at {} (../shared/peers/enricomi beside the checkout)",
        peer.display()
    );
    let omen = std::env::current_exe()?.with_file_name("omen");
    anyhow::ensure!(
        omen.exists(),
        "{} is missing: build it with `cargo build --release -p omen-cli`",
        omen.display()
    );
    let python = peer_venv(data, peer)?;
    let (mut peer_s, mut fresh_s, mut full_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut peer_cases = 0;
    for _ in 0..3 {
        let (s, cases) = time_peer(&python, peer, report)?;
        peer_s.push(s);
        peer_cases = cases;
        let fresh = data.join("peer-fresh.db");
        let _ = std::fs::remove_file(&fresh);
        fresh_s.push(time_omen(&omen, report, &fresh)?);
        let full = data.join("peer-full.db");
        std::fs::copy(base, &full)?;
        full_s.push(time_omen(&omen, report, &full)?);
    }
    let size_mb = std::fs::metadata(report)?.len() as f64 / 1e6;
    let (peer_best, peer_median) = best_and_median(peer_s);
    let (fresh_best, fresh_median) = best_and_median(fresh_s);
    let (full_best, full_median) = best_and_median(full_s);
    println!(
        "ingest vs peer: {peer_cases} cases, {size_mb:.1} MB report, 3 rounds side by side (best, median)"
    );
    println!("  EnricoMi parse + process        {peer_best:.2} s, {peer_median:.2} s");
    let mut met = true;
    for (name, best, median) in [
        ("omen ingest, fresh database", fresh_best, fresh_median),
        ("omen ingest, 1,000,000 results", full_best, full_median),
    ] {
        let ratio = peer_best / best;
        let ok = ratio >= TARGET_RATIO;
        met &= ok;
        println!(
            "  {name:<32}{best:.2} s, {median:.2} s   {ratio:.1}× faster   target ≥ {TARGET_RATIO}×   {}",
            if ok { "ok" } else { "MISSED" }
        );
    }
    Ok(met)
}
