//! Kamei change metrics from a repository's history, computed incrementally.
//!
//! [`RepoHistory`] holds what the metrics need about the past: per file its line count, authors,
//! earlier changes and last change time; per author their change times and subsystems. Feeding it
//! commits oldest first ([`RepoHistory::observe`]) yields each commit's metrics as of just before
//! that commit. The state is plain data so a caller can store it and continue later with only
//! the new commits (a shallow CI checkout then still gets full features after the first run).

use std::collections::{HashMap, HashSet};

use crate::features::{Feature, FeatureVector};
use crate::typical::Typical;

/// One changed file of a commit, as `git log --numstat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path after the change (`/`-separated).
    pub path: String,
    /// Path before the change when it was renamed.
    pub old_path: Option<String>,
    /// Lines added (0 for binary files).
    pub added: u64,
    /// Lines deleted (0 for binary files).
    pub deleted: u64,
}

/// A commit as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full id.
    pub id: String,
    /// Author identity (email, lowercased by the caller).
    pub author: String,
    /// Author time, unix seconds.
    pub time: i64,
    /// The full message.
    pub message: String,
    /// Changed files.
    pub files: Vec<FileChange>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct FileState {
    lines: u64,
    last_change: i64,
    authors: Vec<u32>,
    changes: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct AuthorState {
    /// (time, change index) of earlier changes.
    times: Vec<i64>,
    /// Change indices by subsystem.
    subsystems: HashMap<String, Vec<u32>>,
}

/// Incremental per-file and per-author history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoHistory {
    files: HashMap<String, FileState>,
    authors: HashMap<String, u32>,
    author_states: Vec<AuthorState>,
    changes: u32,
    typical: Typical,
}

/// Seconds in a year for REXP's recency weight.
const YEAR: f64 = 365.25 * 86_400.0;

impl RepoHistory {
    /// Commits observed so far.
    pub fn len(&self) -> u32 {
        self.changes
    }

    /// True before the first commit.
    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    /// Metrics of `commit` given everything observed so far; does not change the state.
    pub fn metrics(&self, commit: &Commit) -> FeatureVector {
        let mut v = FeatureVector::default();
        let files: Vec<&FileChange> = commit.files.iter().collect();
        let subsystems: HashSet<&str> = files.iter().map(|f| subsystem(&f.path)).collect();
        let dirs: HashSet<&str> = files.iter().map(|f| directory(&f.path)).collect();
        v.set(Feature::Ns, subsystems.len() as f64);
        v.set(Feature::Nd, dirs.len() as f64);
        v.set(Feature::Nf, files.len() as f64);
        let churn: Vec<f64> = files.iter().map(|f| (f.added + f.deleted) as f64).collect();
        let total: f64 = churn.iter().sum();
        let entropy = if total > 0.0 {
            churn
                .iter()
                .filter(|c| **c > 0.0)
                .map(|c| -(c / total) * (c / total).log2())
                .sum()
        } else {
            0.0
        };
        v.set(Feature::Entropy, entropy);
        v.set(Feature::La, files.iter().map(|f| f.added as f64).sum());
        v.set(Feature::Ld, files.iter().map(|f| f.deleted as f64).sum());
        v.set(Feature::Fix, f64::from(u8::from(is_fix(&commit.message))));

        let (mut lt, mut ages, mut aged) = (0u64, 0.0, 0u32);
        let mut devs: HashSet<u32> = HashSet::new();
        let mut earlier: HashSet<u32> = HashSet::new();
        for f in &files {
            let before = self.files.get(f.old_path.as_deref().unwrap_or(&f.path));
            if let Some(s) = before {
                lt += s.lines;
                ages += (commit.time - s.last_change).max(0) as f64 / 86_400.0;
                aged += 1;
                devs.extend(&s.authors);
                earlier.extend(&s.changes);
            }
        }
        v.set(Feature::Lt, lt as f64);
        v.set(
            Feature::Age,
            if aged > 0 {
                ages / f64::from(aged)
            } else {
                0.0
            },
        );
        v.set(Feature::Ndev, devs.len() as f64);
        v.set(Feature::Nuc, earlier.len() as f64);

        if let Some(a) = self
            .authors
            .get(&commit.author)
            .and_then(|i| self.author_states.get(*i as usize))
        {
            v.set(Feature::Exp, a.times.len() as f64);
            let rexp: f64 = a
                .times
                .iter()
                .map(|t| 1.0 / (1.0 + ((commit.time - t).max(0) as f64 / YEAR)))
                .sum();
            v.set(Feature::Rexp, rexp);
            let mut sexp: HashSet<u32> = HashSet::new();
            for s in &subsystems {
                if let Some(ids) = a.subsystems.get(*s) {
                    sexp.extend(ids);
                }
            }
            v.set(Feature::Sexp, sexp.len() as f64);
        }

        let tests = files.iter().any(|f| is_test_path(&f.path));
        let code = files
            .iter()
            .any(|f| is_source_path(&f.path) && !is_test_path(&f.path));
        v.set(
            Feature::DepsTouched,
            flag(files.iter().any(|f| is_dependency_path(&f.path))),
        );
        v.set(
            Feature::CiTouched,
            flag(files.iter().any(|f| is_ci_path(&f.path))),
        );
        v.set(Feature::CodeWithoutTests, flag(code && !tests));
        self.typical.apply(&mut v);
        v
    }

    /// Compute `commit`'s metrics, then add it to the history.
    pub fn observe(&mut self, commit: &Commit) -> FeatureVector {
        let v = self.metrics(commit);
        self.typical.observe(&v);
        let index = self.changes;
        self.changes += 1;
        let next = self.author_states.len() as u32;
        let author = *self.authors.entry(commit.author.clone()).or_insert(next);
        if author == next {
            self.author_states.push(AuthorState::default());
        }
        for f in &commit.files {
            let mut state = match &f.old_path {
                Some(old) => self.files.remove(old).unwrap_or_default(),
                None => self.files.remove(&f.path).unwrap_or_default(),
            };
            state.lines = (state.lines + f.added).saturating_sub(f.deleted);
            state.last_change = commit.time;
            if !state.authors.contains(&author) {
                state.authors.push(author);
            }
            state.changes.push(index);
            self.files.insert(f.path.clone(), state);
        }
        if let Some(a) = self.author_states.get_mut(author as usize) {
            a.times.push(commit.time);
            let subs: HashSet<&str> = commit.files.iter().map(|f| subsystem(&f.path)).collect();
            for s in subs {
                a.subsystems.entry(s.to_owned()).or_default().push(index);
            }
        }
        v
    }

    /// Encode the state for storage (a caller-defined container adds versioning).
    pub fn encode(&self) -> Vec<u8> {
        use omen_core::codec::{put_i64, put_u64};
        let mut out = Vec::new();
        put_u64(&mut out, u64::from(self.changes));
        let mut authors: Vec<(&String, &u32)> = self.authors.iter().collect();
        authors.sort_by_key(|(_, i)| **i);
        put_u64(&mut out, authors.len() as u64);
        for (name, i) in authors {
            put_bytes(&mut out, name.as_bytes());
            let a = &self.author_states[*i as usize];
            put_u64(&mut out, a.times.len() as u64);
            for t in &a.times {
                put_i64(&mut out, *t);
            }
            put_u64(&mut out, a.subsystems.len() as u64);
            for (s, ids) in &a.subsystems {
                put_bytes(&mut out, s.as_bytes());
                put_ids(&mut out, ids);
            }
        }
        put_u64(&mut out, self.files.len() as u64);
        for (path, s) in &self.files {
            put_bytes(&mut out, path.as_bytes());
            put_u64(&mut out, s.lines);
            put_i64(&mut out, s.last_change);
            put_ids(&mut out, &s.authors);
            put_ids(&mut out, &s.changes);
        }
        self.typical.encode(&mut out);
        out
    }

    /// Decode [`RepoHistory::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<RepoHistory, omen_core::codec::DecodeError> {
        let mut c = omen_core::codec::Cursor::new(bytes);
        let mut h = RepoHistory {
            changes: c.u32()?,
            ..RepoHistory::default()
        };
        for i in 0..c.u64()? {
            let name = get_string(&mut c)?;
            let mut a = AuthorState::default();
            for _ in 0..c.u64()? {
                a.times.push(c.i64()?);
            }
            for _ in 0..c.u64()? {
                let s = get_string(&mut c)?;
                a.subsystems.insert(s, get_ids(&mut c)?);
            }
            h.authors.insert(name, i as u32);
            h.author_states.push(a);
        }
        for _ in 0..c.u64()? {
            let path = get_string(&mut c)?;
            let s = FileState {
                lines: c.u64()?,
                last_change: c.i64()?,
                authors: get_ids(&mut c)?,
                changes: get_ids(&mut c)?,
            };
            h.files.insert(path, s);
        }
        // Histories stored before the typical values (schema 7 and older) end here; see
        // [`RepoHistory::needs_typical`].
        if !c.is_empty() {
            h.typical = Typical::decode(&mut c)?;
        }
        Ok(h)
    }

    /// A history stored before Omen tracked what is typical lately has observed changes but no
    /// recent values: [`RepoHistory::seed_typical`] restores them from the stored changes.
    pub fn needs_typical(&self) -> bool {
        self.changes > 0 && self.typical.is_empty()
    }

    /// Count the latest observed changes' features, oldest first, towards what is typical
    /// (the last [`WINDOW`](crate::typical::WINDOW) of them matter).
    pub fn seed_typical<'a>(&mut self, recent: impl IntoIterator<Item = &'a FeatureVector>) {
        for v in recent {
            self.typical.observe(v);
        }
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    omen_core::codec::put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Sorted ids as deltas.
fn put_ids(out: &mut Vec<u8>, ids: &[u32]) {
    omen_core::codec::put_u64(out, ids.len() as u64);
    let mut prev = 0u32;
    for id in ids {
        omen_core::codec::put_u64(out, u64::from(id.wrapping_sub(prev)));
        prev = *id;
    }
}

fn get_ids(
    c: &mut omen_core::codec::Cursor<'_>,
) -> Result<Vec<u32>, omen_core::codec::DecodeError> {
    let n = c.u64()?;
    let mut out = Vec::with_capacity(n.min(1 << 20) as usize);
    let mut prev = 0u32;
    for _ in 0..n {
        prev = prev.wrapping_add(c.u32()?);
        out.push(prev);
    }
    Ok(out)
}

fn get_string(
    c: &mut omen_core::codec::Cursor<'_>,
) -> Result<String, omen_core::codec::DecodeError> {
    let n = c.u64()?;
    let mut b = Vec::with_capacity(n.min(4096) as usize);
    for _ in 0..n {
        b.push(c.u8()?);
    }
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// The subsystem of a path: its top-level directory (`""` for files at the root).
pub fn subsystem(path: &str) -> &str {
    path.split_once('/').map_or("", |(s, _)| s)
}

/// The directory of a path (`""` at the root).
pub fn directory(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Does a commit message say it fixes a bug? Word match on fix/fixes/fixed/bug/defect/patch/
/// hotfix/regression, case-insensitive (the keyword rule of Kamei et al. and commit.guru).
pub fn is_fix(message: &str) -> bool {
    const WORDS: [&str; 9] = [
        "fix",
        "fixes",
        "fixed",
        "fixing",
        "bug",
        "bugs",
        "defect",
        "hotfix",
        "regression",
    ];
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| WORDS.iter().any(|k| w.eq_ignore_ascii_case(k)))
}

/// A test file, by common conventions of the ecosystems Omen supports.
pub fn is_test_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.split('/')
        .any(|p| matches!(p, "test" | "tests" | "__tests__" | "spec" | "testing"))
        || name.starts_with("test_")
        || name.contains("_test.")
        || name.contains(".test.")
        || name.contains(".spec.")
        || name.ends_with("Test.java")
        || name.ends_with("Tests.java")
        || name.ends_with("Test.php")
}

/// A source file (by extension).
pub fn is_source_path(path: &str) -> bool {
    const EXT: [&str; 20] = [
        "rs", "py", "js", "jsx", "ts", "tsx", "go", "java", "kt", "c", "h", "cc", "cpp", "hpp",
        "cs", "rb", "php", "swift", "scala", "m",
    ];
    path.rsplit_once('.').is_some_and(|(_, e)| EXT.contains(&e))
}

/// A dependency manifest or lockfile.
pub fn is_dependency_path(path: &str) -> bool {
    const NAMES: [&str; 18] = [
        "Cargo.toml",
        "Cargo.lock",
        "package.json",
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "requirements.txt",
        "poetry.lock",
        "Pipfile",
        "Pipfile.lock",
        "pyproject.toml",
        "uv.lock",
        "go.mod",
        "go.sum",
        "pom.xml",
        "build.gradle",
        "Gemfile.lock",
        "composer.lock",
    ];
    let name = path.rsplit('/').next().unwrap_or(path);
    NAMES.contains(&name) || (name.starts_with("requirements") && name.ends_with(".txt"))
}

/// CI or build configuration.
pub fn is_ci_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.starts_with(".github/workflows/")
        || path.starts_with(".circleci/")
        || path.starts_with(".ci/")
        || name == ".gitlab-ci.yml"
        || name == "Jenkinsfile"
        || name == "Dockerfile"
        || name == "Makefile"
        || name == ".travis.yml"
        || name == "azure-pipelines.yml"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typical::fill as typical_fill;

    fn fc(path: &str, added: u64, deleted: u64) -> FileChange {
        FileChange {
            path: path.into(),
            old_path: None,
            added,
            deleted,
        }
    }

    fn commit(id: &str, author: &str, day: i64, message: &str, files: Vec<FileChange>) -> Commit {
        Commit {
            id: id.into(),
            author: author.into(),
            time: day * 86_400,
            message: message.into(),
            files,
        }
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        let mut h = RepoHistory::default();
        // Day 0: alice creates two files in `src`.
        h.observe(&commit(
            "a",
            "alice",
            0,
            "start",
            vec![fc("src/a.rs", 100, 0), fc("src/b.rs", 50, 0)],
        ));
        // Day 365: bob edits a.rs.
        h.observe(&commit(
            "b",
            "bob",
            365,
            "tweak",
            vec![fc("src/a.rs", 10, 5)],
        ));
        // Day 730: alice fixes a bug across a.rs, b.rs and docs/x.md.
        let c = commit(
            "c",
            "alice",
            730,
            "Fix crash on empty input",
            vec![
                fc("src/a.rs", 3, 1),
                fc("src/b.rs", 0, 4),
                fc("docs/x.md", 8, 0),
            ],
        );
        let v = h.metrics(&c);
        assert_eq!(v.get(Feature::Ns), 2.0); // src, docs
        assert_eq!(v.get(Feature::Nd), 2.0);
        assert_eq!(v.get(Feature::Nf), 3.0);
        assert_eq!(v.get(Feature::La), 11.0);
        assert_eq!(v.get(Feature::Ld), 5.0);
        // churn 4, 4, 8 of 16: entropy = 2·(¼·2) + ½·1 = 1.5 bits
        assert!((v.get(Feature::Entropy) - 1.5).abs() < 1e-12);
        // a.rs has 100+10-5 = 105 lines, b.rs 50, docs/x.md is new.
        assert_eq!(v.get(Feature::Lt), 155.0);
        assert_eq!(v.get(Feature::Fix), 1.0);
        assert_eq!(v.get(Feature::Ndev), 2.0); // alice, bob
        // a.rs last changed day 365 (365 days ago), b.rs day 0 (730 days ago): mean 547.5
        assert_eq!(v.get(Feature::Age), 547.5);
        assert_eq!(v.get(Feature::Nuc), 2.0); // commits a and b
        assert_eq!(v.get(Feature::Exp), 1.0); // alice's commit a
        // commit a was 2 years earlier: 1 / (1 + 2)
        assert!((v.get(Feature::Rexp) - 1.0 / 3.0).abs() < 1e-3);
        assert_eq!(v.get(Feature::Sexp), 1.0); // alice in `src`
        assert_eq!(v.get(Feature::CodeWithoutTests), 1.0);
        assert_eq!(v.get(Feature::DepsTouched), 0.0);
    }

    #[test]
    fn renames_carry_a_files_history() {
        let mut h = RepoHistory::default();
        h.observe(&commit("a", "alice", 0, "add", vec![fc("old.py", 40, 0)]));
        let rename = FileChange {
            path: "new.py".into(),
            old_path: Some("old.py".into()),
            added: 2,
            deleted: 2,
        };
        let v = h.observe(&commit("b", "bob", 10, "rename", vec![rename]));
        assert_eq!(v.get(Feature::Lt), 40.0);
        assert_eq!(v.get(Feature::Nuc), 1.0);
        let v = h.metrics(&commit("c", "carol", 20, "edit", vec![fc("new.py", 1, 0)]));
        assert_eq!(v.get(Feature::Lt), 40.0);
        assert_eq!(v.get(Feature::Ndev), 2.0);
        assert_eq!(v.get(Feature::Nuc), 2.0);
        assert_eq!(v.get(Feature::Age), 10.0);
    }

    #[test]
    fn state_round_trips() {
        let mut h = RepoHistory::default();
        h.observe(&commit(
            "a",
            "alice",
            0,
            "x",
            vec![fc("src/a.rs", 5, 0), fc("Cargo.toml", 1, 0)],
        ));
        h.observe(&commit("b", "bob", 3, "y", vec![fc("src/a.rs", 1, 1)]));
        let back = RepoHistory::decode(&h.encode()).unwrap();
        assert_eq!(back, h);
        let probe = commit(
            "c",
            "alice",
            9,
            "z",
            vec![fc("src/a.rs", 2, 0), fc("tests/t.rs", 9, 0)],
        );
        assert_eq!(back.metrics(&probe), h.metrics(&probe));
        assert_eq!(h.metrics(&probe).get(Feature::CodeWithoutTests), 0.0);
    }

    #[test]
    fn typical_values_agree_with_a_fill_over_the_same_changes() {
        let mut h = RepoHistory::default();
        let mut observed = Vec::new();
        for i in 0..40i64 {
            let author = ["alice", "bob", "carol"][(i % 3) as usize];
            let file = format!("src/f{}.rs", i % 7);
            observed.push(h.observe(&commit(
                &format!("c{i}"),
                author,
                i * 60,
                "edit",
                vec![fc(&file, 3, 1)],
            )));
        }
        let mut refilled = observed.clone();
        typical_fill(refilled.iter_mut());
        assert_eq!(refilled, observed);
        assert!(observed[39].get(Feature::NdevTypical) > 0.0);
        assert!(observed[39].get(Feature::ExpTypical) > 0.0);
    }

    #[test]
    fn a_history_stored_without_typical_values_is_seeded_from_the_stored_changes() {
        let mut h = RepoHistory::default();
        let mut observed = Vec::new();
        for i in 0..30i64 {
            let author = ["alice", "bob"][(i % 2) as usize];
            observed.push(h.observe(&commit(
                &format!("c{i}"),
                author,
                i * 60,
                "edit",
                vec![fc("src/a.rs", 1, 0)],
            )));
        }
        // The encoding of schema 7 ended after the files.
        let mut old = h.encode();
        let mut trailer = Vec::new();
        h.typical.encode(&mut trailer);
        old.truncate(old.len() - trailer.len());
        let mut back = RepoHistory::decode(&old).unwrap();
        assert!(back.needs_typical());
        assert!(!h.needs_typical());
        back.seed_typical(&observed);
        assert_eq!(back, h);
    }

    #[test]
    fn path_classes() {
        assert!(is_fix("Fixes #12"));
        assert!(is_fix("bug: off by one"));
        assert!(!is_fix("prefix handling"));
        assert!(is_test_path("tests/e2e/ci.rs"));
        assert!(is_test_path("pkg/foo_test.go"));
        assert!(!is_test_path("src/contest.rs"));
        assert!(is_dependency_path("crates/x/Cargo.toml"));
        assert!(is_ci_path(".github/workflows/ci.yml"));
    }
}
