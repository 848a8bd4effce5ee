//! What a commit changed, as far as one test is concerned: the change evidence of the flakiness
//! model (DeFlaker's idea, without coverage).
//!
//! A failure on a commit that touched the test's own code, fixed by the next commit that touched
//! it again, is a regression that was fixed, not a flake. Without coverage data Omen asks a
//! narrower question: did the change touch the test's file, or a file named like the code the
//! test names (`tests/test_export.py` and `src/export.py`; `tests/pkg/test_area_6.py` and
//! `pkg/area_6.py`; nextest's `omen-store::ingest` and `crates/omen-store/src/ingest.rs`)?
//! Coarser names (a package, a crate) would make most changes touch most tests, and then every
//! flake would look like a regression. The rule and what it is worth are in
//! `docs/design/flakiness.md`.

use std::collections::HashSet;

/// The files one commit changed (against the previous default-branch commit Omen saw), reduced
/// to what [`Change::touches`] compares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// Changed paths, `/`-separated, relative to the repository root.
    paths: HashSet<String>,
    /// The normalised file stem of each changed path (see [`code_name`]).
    names: HashSet<String>,
}

impl Change {
    /// The change from its list of paths (as `git diff --name-only` prints them).
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Change {
        let mut change = Change::default();
        for path in paths {
            let path = path.trim().replace('\\', "/");
            if path.is_empty() {
                continue;
            }
            let stem = path.rsplit('/').next().unwrap_or(&path);
            let stem = stem.split('.').next().unwrap_or(stem);
            if let Some(name) = code_name(stem) {
                change.names.insert(name);
            }
            change.paths.insert(path);
        }
        change
    }

    /// The changed paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        let mut paths: Vec<&str> = self.paths.iter().map(String::as_str).collect();
        paths.sort_unstable();
        paths.into_iter()
    }

    /// Number of changed paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when nothing changed (an empty commit, or a re-run of the same commit).
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether the change touched the test: its own file, or a file named like the code the test
    /// names (its file's stem, the last part of its scope, the module path in its name).
    pub fn touches(&self, scope: &str, name: &str, file: Option<&str>) -> bool {
        if self.paths.is_empty() {
            return false;
        }
        if let Some(file) = file {
            if self.paths.contains(file) {
                return true;
            }
            let stem = file.rsplit('/').next().unwrap_or(file);
            let stem = stem.split('.').next().unwrap_or(stem);
            if code_name(stem).is_some_and(|n| self.names.contains(&n)) {
                return true;
            }
        }
        let last_scope = scope.rsplit(['.', ':', '/']).find(|s| !s.is_empty());
        // A nextest name is a module path (`ingest::tests::keeps_order`): its modules name code.
        let modules = name.split("::").collect::<Vec<_>>();
        let modules = &modules[..modules.len().saturating_sub(1)];
        last_scope
            .into_iter()
            .chain(modules.iter().copied())
            .filter_map(code_name)
            .any(|n| self.names.contains(&n))
    }
}

/// Words that name no code of their own: a change to `src/lib.rs` or `tests/__init__.py` says
/// nothing about which test it touches.
const STOP: &[&str] = &[
    "lib",
    "main",
    "mod",
    "index",
    "init",
    "__init__",
    "src",
    "test",
    "tests",
    "spec",
    "specs",
    "util",
    "utils",
    "common",
    "helpers",
    "conftest",
    "setup",
    "readme",
    "changelog",
    "cargo",
    "package",
    "build",
];

/// The name of the code a file stem or module stands for: lowercased, `-` read as `_`, without a
/// `test_`/`_test`/`_tests`/`_spec`/`Test` affix. `None` for names that stand for no code of
/// their own (`lib`, `utils`, `__init__`, …) or are shorter than three characters.
pub fn code_name(stem: &str) -> Option<String> {
    // `TestExport` (a JUnit class), not `testing`.
    let camel = stem
        .strip_prefix("Test")
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
    let mut n = camel.unwrap_or(stem).to_lowercase().replace('-', "_");
    for prefix in ["test_", "tests_"] {
        if let Some(rest) = n.strip_prefix(prefix) {
            n = rest.to_owned();
        }
    }
    for suffix in ["_tests", "_test", "_spec", "tests", "test", "spec"] {
        if n.len() > suffix.len()
            && let Some(rest) = n.strip_suffix(suffix)
        {
            n = rest.trim_end_matches('_').to_owned();
            break;
        }
    }
    (n.len() >= 3 && !STOP.contains(&n.as_str())).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_touches_the_test_file_and_the_code_it_is_named_for() {
        let c = Change::from_paths(["src/export.py", "docs/usage.md"]);
        assert!(c.touches(
            "tests.test_export",
            "test_csv",
            Some("tests/test_export.py")
        ));
        assert!(
            c.touches("ExportTest", "testCsv", None),
            "JUnit class named for the code"
        );
        assert!(!c.touches(
            "tests.test_import",
            "test_csv",
            Some("tests/test_import.py")
        ));
        let own = Change::from_paths(["tests/test_import.py"]);
        assert!(own.touches(
            "tests.test_import",
            "test_csv",
            Some("tests/test_import.py")
        ));
    }

    #[test]
    fn nextest_modules_name_the_code_they_test() {
        let c = Change::from_paths(["crates/omen-store/src/ingest.rs"]);
        assert!(c.touches("omen-store", "ingest::tests::keeps_order", None));
        assert!(!c.touches("omen-store", "merge::tests::keeps_order", None));
    }

    #[test]
    fn words_that_name_no_code_touch_nothing() {
        let c = Change::from_paths([
            "src/lib.rs",
            "tests/__init__.py",
            "tests/conftest.py",
            "a.c",
        ]);
        assert!(!c.touches("tests.test_lib", "test_x", Some("tests/test_lib.py")));
        assert!(!c.touches("omen-store", "tests::x", None));
        assert!(!c.touches("tests", "test_x", None));
        assert!(Change::default().is_empty());
        assert!(!Change::default().touches("a", "b", Some("x.py")));
    }

    #[test]
    fn code_names_drop_test_affixes() {
        assert_eq!(code_name("test_export").as_deref(), Some("export"));
        assert_eq!(code_name("export_test").as_deref(), Some("export"));
        assert_eq!(code_name("ExportTest").as_deref(), Some("export"));
        assert_eq!(code_name("TestExport").as_deref(), Some("export"));
        assert_eq!(code_name("testing").as_deref(), Some("testing"));
        assert_eq!(code_name("omen-store").as_deref(), Some("omen_store"));
        assert_eq!(code_name("test"), None);
        assert_eq!(code_name("io"), None);
    }
}
