//! Reading a repository's history with the `git` command: commits with per-file line counts,
//! the diff of a change, and the blame that SZZ labels need. Errors name the git command.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use omen_risk::features::DiffHints;
use omen_risk::history::{Commit, FileChange};

/// Run git in `repo` and return its stdout.
pub fn git(repo: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .with_context(|| format!("could not run `git {}`", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// `git` output as trimmed text.
pub fn git_text(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&git(repo, args)?).trim().to_owned())
}

/// Resolve a revision to a full commit id.
pub fn rev_parse(repo: &Path, rev: &str) -> anyhow::Result<String> {
    git_text(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .with_context(|| format!("`{rev}` is not a commit in {}", repo.display()))
}

/// Is the checkout shallow (CI's default `fetch-depth: 1`)?
pub fn is_shallow(repo: &Path) -> bool {
    git_text(repo, &["rev-parse", "--is-shallow-repository"]).is_ok_and(|s| s == "true")
}

/// `from..to`, or all of `to`'s history without `from`.
fn range(from: Option<&str>, to: &str) -> String {
    match from {
        Some(f) => format!("{f}..{to}"),
        None => to.to_owned(),
    }
}

/// Non-merge commits reachable from `to` but not from `from` (all history when `from` is
/// `None`), oldest first, with per-file added/deleted lines and renames.
pub fn commits(repo: &Path, from: Option<&str>, to: &str) -> anyhow::Result<Vec<Commit>> {
    let range = range(from, to);
    let out = git(
        repo,
        &[
            "-c",
            "core.quotepath=off",
            "log",
            "--reverse",
            "--topo-order",
            "--no-merges",
            "-M",
            "-z",
            "--numstat",
            "--format=%x1e%H%x1f%ae%x1f%at%x1f%B%x1f",
            &range,
            "--",
        ],
    )?;
    parse_log(&out)
}

/// Parse `git log -z --numstat --format=%x1e%H%x1f%ae%x1f%at%x1f%B%x1f` output.
pub fn parse_log(out: &[u8]) -> anyhow::Result<Vec<Commit>> {
    let text = String::from_utf8_lossy(out);
    let mut commits = Vec::new();
    for chunk in text
        .split('\x1e')
        .filter(|c| !c.trim_matches(['\0', '\n']).is_empty())
    {
        let mut head = chunk.splitn(5, '\x1f');
        let (Some(id), Some(author), Some(time), Some(message), rest) = (
            head.next(),
            head.next(),
            head.next(),
            head.next(),
            head.next().unwrap_or(""),
        ) else {
            bail!(
                "unexpected `git log` output near {:?}",
                chunk.chars().take(60).collect::<String>()
            );
        };
        let time: i64 = time
            .trim()
            .parse()
            .with_context(|| format!("bad commit time {time:?} for {id}"))?;
        commits.push(Commit {
            id: id.trim().to_owned(),
            author: author.trim().to_lowercase(),
            time,
            message: message.trim().to_owned(),
            files: parse_numstat(rest),
        });
    }
    Ok(commits)
}

/// Parse `--numstat -z` entries: `A\tD\tpath\0`, or `A\tD\t\0old\0new\0` for a rename.
fn parse_numstat(rest: &str) -> Vec<FileChange> {
    let mut files = Vec::new();
    let mut tokens = rest.split('\0');
    while let Some(token) = tokens.next() {
        let token = token.trim_start_matches('\n');
        if token.is_empty() {
            continue;
        }
        let mut parts = token.splitn(3, '\t');
        let (Some(a), Some(d), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // Binary files report `-`: no line counts.
        let added = a.parse().unwrap_or(0);
        let deleted = d.parse().unwrap_or(0);
        if path.is_empty() {
            let (Some(old), Some(new)) = (tokens.next(), tokens.next()) else {
                break;
            };
            files.push(FileChange {
                path: new.to_owned(),
                old_path: Some(old.to_owned()),
                added,
                deleted,
            });
        } else {
            files.push(FileChange {
                path: path.to_owned(),
                old_path: None,
                added,
                deleted,
            });
        }
    }
    files
}

/// Call `f(commit, line)` for every added line of a `-U0` patch: a `git diff`, or a `git log -p`
/// whose commits start with `\x1e<id>`. File headers (`+++ b/…`) are not added lines, even when
/// an added line itself starts with `++`.
pub fn for_each_added_line<'a>(patch: &'a str, mut f: impl FnMut(&'a str, &'a str)) {
    let mut commit = "";
    let mut in_hunk = false;
    for line in patch.lines() {
        if let Some(id) = line.strip_prefix('\x1e') {
            commit = id.trim();
            in_hunk = false;
        } else if line.starts_with("diff --git ") {
            in_hunk = false;
        } else if line.starts_with("@@") {
            in_hunk = true;
        } else if in_hunk && let Some(added) = line.strip_prefix('+') {
            f(commit, added);
        }
    }
}

/// The diff hints ([`DiffHints`]) of every non-merge commit in `from..to` (all history when
/// `from` is `None`), by commit id: one `git log -p -U0` pass.
pub fn diff_hints(
    repo: &Path,
    from: Option<&str>,
    to: &str,
) -> anyhow::Result<std::collections::HashMap<String, DiffHints>> {
    let range = range(from, to);
    let out = git(
        repo,
        &[
            "log",
            "--no-merges",
            "-M",
            "-p",
            "-U0",
            "--no-color",
            "--no-ext-diff",
            "--format=%x1e%H",
            &range,
            "--",
        ],
    )?;
    let text = String::from_utf8_lossy(&out);
    let mut hints: std::collections::HashMap<String, DiffHints> = Default::default();
    for_each_added_line(&text, |commit, line| {
        if let Some(h) = hints.get_mut(commit) {
            h.add_line(line);
        } else {
            let mut h = DiffHints::default();
            h.add_line(line);
            hints.insert(commit.to_owned(), h);
        }
    });
    Ok(hints)
}

/// Is `sha` a commit present in the checkout?
pub fn has_commit(repo: &Path, sha: &str) -> bool {
    git(repo, &["cat-file", "-e", &format!("{sha}^{{commit}}")]).is_ok()
}

/// The paths `commit` (which the checkout has) changed since `base` (`base..commit`), or since
/// its first parent when `base` is unknown, is not in the checkout, or is not an ancestor. `None`
/// when the checkout cannot tell (a shallow clone without the parent).
pub fn changed_paths(repo: &Path, base: Option<&str>, commit: &str) -> Option<Vec<String>> {
    let base = base
        .filter(|b| {
            has_commit(repo, b) && git(repo, &["merge-base", "--is-ancestor", b, commit]).is_ok()
        })
        .map(str::to_owned)
        .or_else(|| {
            let parent = format!("{commit}^1");
            has_commit(repo, &parent).then_some(parent)
        })?;
    let out = git(
        repo,
        &[
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            &base,
            commit,
            "--",
        ],
    )
    .map_err(|err| tracing::info!("change evidence unavailable: {err:#}"))
    .ok()?;
    Some(
        out.split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

/// Is `dir` inside a git work tree?
pub fn is_work_tree(dir: &Path) -> bool {
    git_text(dir, &["rev-parse", "--is-inside-work-tree"]).is_ok_and(|t| t.trim() == "true")
}

/// Distinct author emails of the non-merge commits in `base..head` (a pull request's merge
/// commit is authored by the forge, not by a person).
pub fn authors(repo: &Path, base: &str, head: &str) -> anyhow::Result<usize> {
    let text = git_text(
        repo,
        &[
            "log",
            "--no-merges",
            "--format=%ae",
            &format!("{base}..{head}"),
        ],
    )?;
    let set: std::collections::BTreeSet<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    Ok(set.len())
}

/// The change `base..head` as one commit (files of `git diff base...head`, the head's author
/// and time, every message in the range), plus the added lines of its diff.
pub fn change(repo: &Path, base: &str, head: &str) -> anyhow::Result<(Commit, Vec<String>)> {
    let numstat = git(
        repo,
        &[
            "-c",
            "core.quotepath=off",
            "diff",
            "-M",
            "-z",
            "--numstat",
            &format!("{base}...{head}"),
            "--",
        ],
    )?;
    let files = parse_numstat(&String::from_utf8_lossy(&numstat));
    let meta = git_text(repo, &["log", "-1", "--format=%ae%x1f%at", head])?;
    let (author, time) = meta.split_once('\x1f').unwrap_or((&meta, "0"));
    let message = git_text(repo, &["log", "--format=%B", &format!("{base}..{head}")])?;
    let diff = git(
        repo,
        &[
            "diff",
            "-U0",
            "--no-color",
            &format!("{base}...{head}"),
            "--",
        ],
    )?;
    let mut added = Vec::new();
    for_each_added_line(&String::from_utf8_lossy(&diff), |_, line| {
        added.push(line.to_owned())
    });
    Ok((
        Commit {
            id: head.to_owned(),
            author: author.trim().to_lowercase(),
            time: time.trim().parse().unwrap_or(0),
            message,
            files,
        },
        added,
    ))
}

/// SZZ for one fix commit: the commits that last touched the lines `fix` deleted or changed
/// (`git blame` of the fix's parent over each deleted range). Whitespace-only changes are
/// ignored (`-w`). Returns distinct commit ids.
pub fn szz_blame(repo: &Path, fix: &str) -> anyhow::Result<Vec<String>> {
    let diff = git(
        repo,
        &[
            "diff",
            "-U0",
            "-M",
            "--no-color",
            "-w",
            &format!("{fix}^"),
            fix,
            "--",
        ],
    )?;
    let diff = String::from_utf8_lossy(&diff);
    let mut ranges: Vec<(String, u64, u64)> = Vec::new();
    let mut old_path: Option<String> = None;
    for line in diff.lines() {
        if let Some(p) = line.strip_prefix("--- ") {
            old_path = p.strip_prefix("a/").map(str::to_owned);
        } else if let Some(h) = line.strip_prefix("@@ -") {
            let Some(path) = &old_path else { continue };
            let spec = h.split(' ').next().unwrap_or("");
            let (start, count) = match spec.split_once(',') {
                Some((s, c)) => (s.parse().unwrap_or(0), c.parse().unwrap_or(0)),
                None => (spec.parse().unwrap_or(0), 1),
            };
            if count > 0 && start > 0 {
                ranges.push((path.clone(), start, start + count - 1));
            }
        }
    }
    let parent = format!("{fix}^");
    let mut found: Vec<String> = Vec::new();
    let mut by_file: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (path, a, b) in &ranges {
        by_file.entry(path).or_default().push(format!("{a},{b}"));
    }
    for (path, lines) in by_file {
        let mut args: Vec<&str> = vec!["blame", "--porcelain", "-w"];
        for l in &lines {
            args.push("-L");
            args.push(l);
        }
        args.push(&parent);
        args.push("--");
        args.push(path);
        let out = git(repo, &args)?;
        for line in String::from_utf8_lossy(&out).lines() {
            let Some(sha) = line.split(' ').next() else {
                continue;
            };
            if sha.len() == 40
                && sha.bytes().all(|b| b.is_ascii_hexdigit())
                && !found.iter().any(|f| f == sha)
            {
                found.push(sha.to_owned());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_skip_headers_but_not_lines_that_start_with_plus_plus() {
        let patch = "\x1eaaa\n\ndiff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -1,0 +2,2 @@\n+++i; // TODO\n+int y;\n-old\ndiff --git a/n.c b/n.c\nnew file mode 100644\n--- /dev/null\n+++ b/n.c\n@@ -0,0 +1 @@\n+n\n\x1ebbb\n\ndiff --git a/z b/z\n--- a/z\n+++ b/z\n@@ -3 +3 @@\n-a\n+b\n\\ No newline at end of file\n";
        let mut seen = Vec::new();
        for_each_added_line(patch, |c, l| seen.push((c, l)));
        assert_eq!(
            seen,
            [
                ("aaa", "++i; // TODO"),
                ("aaa", "int y;"),
                ("aaa", "n"),
                ("bbb", "b")
            ]
        );
    }

    #[test]
    fn parses_log_with_renames_binaries_and_multiline_messages() {
        let out = b"\x1eaaa\x1fA@X.org\x1f100\x1fFirst\n\nbody\x1f\n\n3\t1\tsrc/a.rs\x00-\t-\tlogo.png\x00\x1ebbb\x1fb@x\x1f200\x1fMove\x1f\n\n2\t0\t\x00old.py\x00new.py\x00";
        let c = parse_log(out).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].id.as_str(), c[0].author.as_str(), c[0].time),
            ("aaa", "a@x.org", 100)
        );
        assert_eq!(c[0].message, "First\n\nbody");
        assert_eq!(
            c[0].files,
            vec![
                FileChange {
                    path: "src/a.rs".into(),
                    old_path: None,
                    added: 3,
                    deleted: 1
                },
                FileChange {
                    path: "logo.png".into(),
                    old_path: None,
                    added: 0,
                    deleted: 0
                },
            ]
        );
        assert_eq!(
            c[1].files,
            vec![FileChange {
                path: "new.py".into(),
                old_path: Some("old.py".into()),
                added: 2,
                deleted: 0
            }]
        );
    }
}
