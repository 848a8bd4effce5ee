//! `omen-bench benchmarks-md`: write `BENCHMARKS.md` from the output of one benchmark run, with
//! the machine, the date and the commit, so the figures in the repository always come from a run
//! and are never edited by hand.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
        })
        .map_or("?".to_owned(), |kb| format!("{:.0}", kb / 1024.0 / 1024.0));
    format!("{cpus} cores ({model}), {memory_gib} GiB")
}

fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Write `out` from `log`, the captured output of `.ci/run`'s benchmark section.
pub fn write(log: &Path, out: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `omen-bench benchmarks-md` from one run of the benchmarks in `.ci/run`; never edited by hand.\n"
    );
    let _ = writeln!(md, "- date: {date}");
    let _ = writeln!(
        md,
        "- commit: {commit}{}",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "- machine: {}", machine());
    let _ = writeln!(
        md,
        "- this machine is shared: the same code has measured up to 1.6× slower when the host was busy. Times are best of 3 with the median beside them; CI fails a time target only beyond 1.5×, and every miss is printed `MISSED`.\n"
    );
    let mut section: Option<String> = None;
    let mut body = String::new();
    let flush = |md: &mut String, section: &Option<String>, body: &mut String| {
        if let Some(title) = section
            && !body.trim().is_empty()
        {
            let _ = writeln!(md, "## `{title}`\n\n```text\n{}\n```\n", body.trim_end());
        }
        body.clear();
    };
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("== bench: ") {
            flush(&mut md, &section, &mut body);
            section = Some(cmd.trim().to_owned());
        } else if section.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&mut md, &section, &mut body);
    std::fs::write(out, md).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
