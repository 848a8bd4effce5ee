//! Stable test identity and runner-native selectors.
//!
//! The rule (also in `docs/design/identity-and-parsing.md`):
//!
//! 1. **Scope** is the `classname`; when it is empty, the innermost suite name; when that is empty
//!    too, the file path. A scope that looks like a path (has `/` or `\`, or ends in a source
//!    extension, and has no `::`) is normalised as a path and turned into a dotted module
//!    (`tests/test_x.py` → `tests.test_x`); `crate::bin/omen` stays as it is.
//! 2. **Paths** use `/`, lose `./` prefixes, doubled slashes, Windows drive letters, the checkout
//!    roots the caller passes (`GITHUB_WORKSPACE`, `CI_PROJECT_DIR`, the git top level) and the
//!    well-known runner prefixes `/home/runner/work/<repo>/<repo>/` and `/__w/<repo>/<repo>/`.
//! 3. **Names** keep their parameters (`test_x[a-1]` and `test_x[a-2]` are different tests) but
//!    runs of whitespace collapse to one space and memory addresses (`0x7f3a9c...`) become `0x…`,
//!    because object reprs in parametrized ids change every run.
//! 4. The **key** is `scope::name`; its FNV-1a hash is the stored identity.
//!
//! The runner-native selector is kept beside the identity because reporters need it: a pytest
//! node id (`tests/test_x.py::TestA::test_b[1]`) or a nextest `binary-id test::path`.

use crate::hash::fnv1a64;
use crate::report::{Runner, TestCase};

/// A test's stable identity plus what reporters need to find it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Normalised scope (class, suite or module).
    pub scope: String,
    /// Normalised name, parameters included.
    pub name: String,
    /// Normalised, root-relative file path, when known.
    pub file: Option<String>,
    /// `scope::name`.
    pub key: String,
    /// FNV-1a 64 of `key`: the identity stored in the history database.
    pub hash: u64,
    /// Runner-native selector (pytest node id, nextest `binary-id test`, else `scope::name`).
    pub selector: String,
    /// The runner the selector is for.
    pub runner: Runner,
    /// `selector` is what [`derive_selector`] gives from the stored fields, so the store need not
    /// keep it.
    pub selector_derived: bool,
}

/// Compute the identity of `case` as written by `runner`.
///
/// `roots` are checkout roots to strip from absolute paths; they may use either separator.
pub fn identify(case: &TestCase, runner: Runner, roots: &[String]) -> Identity {
    identify_cached(case, runner, roots, &mut IdentityCache::default())
}

/// The stored key of a test: `scope::name`, the one spelling used for matching quarantine
/// entries and history rows (humans see the selector instead).
pub fn key_of(scope: &str, name: &str) -> String {
    let mut key = String::with_capacity(scope.len() + 2 + name.len());
    key.push_str(scope);
    key.push_str("::");
    key.push_str(name);
    key
}

/// Normalised file paths and scopes already computed in a run. A report of 100,000 cases names
/// only a few hundred files and classes, so [`identify_cached`] normalises each once.
#[derive(Debug, Default)]
pub struct IdentityCache {
    files: std::collections::HashMap<String, Option<String>>,
    scopes: std::collections::HashMap<ScopeKey, Scope>,
    /// The last scope looked up, with its key: consecutive cases mostly share their class, and
    /// comparing borrowed strings costs less than building a key to look up.
    last: Option<(ScopeKey, Scope)>,
}

/// A case's raw class, suite and normalised file: what its scope is computed from.
type ScopeKey = (String, String, Option<String>);

#[derive(Debug, Clone)]
struct Scope {
    classname: String,
    suite: String,
    scope: String,
    /// The pytest node id of a test in this scope, up to its name.
    pytest_prefix: String,
}

/// [`identify`], reusing normalisations from `cache`.
pub fn identify_cached(
    case: &TestCase,
    runner: Runner,
    roots: &[String],
    cache: &mut IdentityCache,
) -> Identity {
    let file = match case.file.as_deref() {
        None => None,
        Some(raw) => match cache.files.get(raw) {
            Some(f) => f.clone(),
            None => {
                let f = Some(normalize_path(raw, roots)).filter(|f| !f.is_empty());
                cache.files.insert(raw.to_owned(), f.clone());
                f
            }
        },
    };
    let hit = |last: &(ScopeKey, Scope)| {
        let (c, s, f) = &last.0;
        *c == case.classname && *s == case.suite && *f == file
    };
    let last = match cache.last.take() {
        Some(last) if hit(&last) => last,
        _ => {
            let scope_key = (case.classname.clone(), case.suite.clone(), file.clone());
            let s = cache
                .scopes
                .entry(scope_key.clone())
                .or_insert_with(|| new_scope(case, file.as_deref(), roots))
                .clone();
            (scope_key, s)
        }
    };
    let Scope {
        classname,
        suite,
        scope,
        pytest_prefix,
    } = &cache.last.insert(last).1;
    let name = normalize_name(&case.name);
    let key = key_of(scope, &name);
    let hash = fnv1a64(key.as_bytes());
    let trimmed = case.name.trim();
    let (selector, same_inputs) = match runner {
        Runner::Nextest => {
            let binary = if suite.is_empty() { classname } else { suite };
            (format!("{binary} {trimmed}"), binary == scope)
        }
        Runner::Pytest => {
            let mut id = String::with_capacity(pytest_prefix.len() + trimmed.len());
            id.push_str(pytest_prefix);
            id.push_str(trimmed);
            (id, classname == scope)
        }
        Runner::Generic => (key.clone(), true),
    };
    let scope = scope.clone();
    // The same inputs give the same selector; otherwise compare (rare: a path-like class).
    let selector_derived = (same_inputs && trimmed == name)
        || derive_selector(runner, &scope, &name, file.as_deref()) == selector;
    Identity {
        scope,
        name,
        file,
        key,
        hash,
        selector,
        runner,
        selector_derived,
    }
}

/// Normalise a case's class, suite and scope (a path-like scope becomes a module).
fn new_scope(case: &TestCase, file: Option<&str>, roots: &[String]) -> Scope {
    let classname = collapse_whitespace(&case.classname);
    let suite = collapse_whitespace(&case.suite);
    let raw_scope = if !classname.is_empty() {
        classname.clone()
    } else if !suite.is_empty() {
        suite.clone()
    } else {
        file.map(str::to_owned).unwrap_or_default()
    };
    let scope = if looks_like_path(&raw_scope) {
        path_to_module(&normalize_path(&raw_scope, roots))
    } else {
        raw_scope
    };
    Scope {
        pytest_prefix: pytest_prefix(file, &classname),
        classname,
        suite,
        scope,
    }
}

/// The selector Omen would derive from stored identity fields alone.
///
/// The store keeps a selector only when it differs from this, which is rare: it saves about a
/// quarter of the space a test takes.
pub fn derive_selector(runner: Runner, scope: &str, name: &str, file: Option<&str>) -> String {
    match runner {
        Runner::Nextest => format!("{scope} {name}"),
        Runner::Pytest => pytest_node_id(file, scope, name),
        Runner::Generic => format!("{scope}::{name}"),
    }
}

/// Collapse every run of whitespace to one space and trim.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// Normalise a test name: collapse whitespace, mask memory addresses.
pub fn normalize_name(name: &str) -> String {
    let collapsed = collapse_whitespace(name);
    if !collapsed.contains("0x") {
        return collapsed;
    }
    let bytes = collapsed.as_bytes();
    let mut out = String::with_capacity(collapsed.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'0' && bytes.get(i + 1) == Some(&b'x') {
            let digits = bytes[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if digits >= 6 {
                out.push_str("0x…");
                i += 2 + digits;
                continue;
            }
        }
        let ch_len = collapsed[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&collapsed[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Normalise a file path: `/` separators, no `./`, no doubled slashes, no drive letter, no
/// checkout root.
pub fn normalize_path(path: &str, roots: &[String]) -> String {
    let mut p = path.trim().replace('\\', "/");
    while p.contains("//") {
        p = p.replace("//", "/");
    }
    // Windows drive letters: `C:/work/x` → `/work/x`.
    if p.len() >= 2 && p.as_bytes()[1] == b':' && p.as_bytes()[0].is_ascii_alphabetic() {
        p = p[2..].to_owned();
    }
    for root in roots {
        let mut root = root.trim().replace('\\', "/");
        if root.len() >= 2 && root.as_bytes()[1] == b':' && root.as_bytes()[0].is_ascii_alphabetic()
        {
            root = root[2..].to_owned();
        }
        let root = root.trim_end_matches('/');
        if root.is_empty() {
            continue;
        }
        if let Some(rest) = p.strip_prefix(root)
            && let Some(rest) = rest.strip_prefix('/')
        {
            p = rest.to_owned();
            break;
        }
    }
    for prefix in ["/home/runner/work/", "/__w/", "/a/"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            // `<repo>/<repo>/path`: GitHub-hosted runners check out twice-nested.
            let mut parts = rest.splitn(3, '/');
            if let (Some(a), Some(b), Some(tail)) = (parts.next(), parts.next(), parts.next())
                && a == b
            {
                p = tail.to_owned();
            }
            break;
        }
    }
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.to_owned();
    }
    p
}

const SOURCE_EXTENSIONS: &[&str] = &[
    ".py", ".rs", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".go", ".java", ".kt", ".php",
    ".rb", ".cs", ".swift", ".scala",
];

fn looks_like_path(s: &str) -> bool {
    // `crate::bin/omen` (a nextest binary id) and `ns::Class` are namespaces, not paths.
    if s.contains("::") {
        return false;
    }
    s.contains('/') || s.contains('\\') || SOURCE_EXTENSIONS.iter().any(|e| s.ends_with(e))
}

fn path_to_module(path: &str) -> String {
    let stem = SOURCE_EXTENSIONS
        .iter()
        .find_map(|e| path.strip_suffix(e))
        .unwrap_or(path);
    stem.trim_matches('/').replace('/', ".")
}

/// Build a pytest node id from the report's file, classname and name.
fn pytest_node_id(file: Option<&str>, classname: &str, name: &str) -> String {
    let mut id = pytest_prefix(file, classname);
    id.push_str(name);
    id
}

/// [`pytest_node_id`] up to the test's name: the file and classes, each followed by `::`.
fn pytest_prefix(file: Option<&str>, classname: &str) -> String {
    let parts: Vec<&str> = classname.split('.').filter(|p| !p.is_empty()).collect();
    let (file, classes): (String, Vec<&str>) = match file {
        Some(file) => {
            let module = path_to_module(file);
            let classes = match classname.strip_prefix(&module) {
                Some(rest) => rest.split('.').filter(|p| !p.is_empty()).collect(),
                None => parts
                    .iter()
                    .copied()
                    .skip_while(|p| !starts_uppercase(p))
                    .collect(),
            };
            (file.to_owned(), classes)
        }
        None => {
            let split = parts
                .iter()
                .position(|p| starts_uppercase(p))
                .unwrap_or(parts.len());
            if split == 0 {
                (String::new(), parts.clone())
            } else {
                (
                    format!("{}.py", parts[..split].join("/")),
                    parts[split..].to_vec(),
                )
            }
        }
    };
    let mut id = file;
    for class in classes {
        if !id.is_empty() {
            id.push_str("::");
        }
        id.push_str(class);
    }
    if !id.is_empty() {
        id.push_str("::");
    }
    id
}

fn starts_uppercase(s: &str) -> bool {
    s.chars().next().is_some_and(char::is_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    fn case(suite: &str, classname: &str, name: &str, file: Option<&str>) -> TestCase {
        TestCase {
            suite: suite.into(),
            classname: classname.into(),
            name: name.into(),
            file: file.map(Into::into),
            line: None,
            outcome: Outcome::Passed,
            duration_secs: None,
            failure: None,
            retries: vec![],
            flaky: false,
        }
    }

    fn key(c: &TestCase) -> String {
        identify(c, Runner::Generic, &["/ci/checkout".to_owned()]).key
    }

    #[test]
    fn classname_or_suite_name_give_the_same_identity() {
        assert_eq!(
            key(&case("pkg.MathTest", "", "adds", None)),
            key(&case("whatever", "pkg.MathTest", "adds", None))
        );
    }

    #[test]
    fn paths_survive_roots_separators_and_dot_slash() {
        let variants = [
            "./tests/test_x.py",
            "tests\\test_x.py",
            "/ci/checkout/tests/test_x.py",
            "C:\\ci\\checkout\\tests\\test_x.py",
            "/home/runner/work/omen/omen/tests/test_x.py",
            "tests//test_x.py",
        ];
        let keys: Vec<_> = variants
            .iter()
            .map(|f| key(&case("", "", "test_a", Some(f))))
            .collect();
        assert!(keys.iter().all(|k| k == "tests.test_x::test_a"), "{keys:?}");
    }

    #[test]
    fn whitespace_and_addresses_do_not_split_a_test() {
        assert_eq!(
            key(&case("", "C", "  test   a\t[x] ", None)),
            key(&case("", " C ", "test a [x]", None))
        );
        assert_eq!(
            key(&case("", "C", "test_obj[<Foo at 0x7f3a9c0d1e20>]", None)),
            key(&case("", "C", "test_obj[<Foo at 0x7f00aa11bb22>]", None))
        );
        assert_ne!(
            key(&case("", "C", "test_x[a-1]", None)),
            key(&case("", "C", "test_x[a-2]", None))
        );
    }

    #[test]
    fn pytest_node_ids() {
        let id = |classname: &str, name: &str, file: Option<&str>| {
            identify(&case("pytest", classname, name, file), Runner::Pytest, &[]).selector
        };
        assert_eq!(
            id("tests.test_x.TestA", "test_b[1]", Some("tests/test_x.py")),
            "tests/test_x.py::TestA::test_b[1]"
        );
        assert_eq!(
            id("tests.test_x.TestA", "test_b", None),
            "tests/test_x.py::TestA::test_b"
        );
        assert_eq!(
            id("tests.test_x", "test_c", None),
            "tests/test_x.py::test_c"
        );
    }

    #[test]
    fn selectors_are_usually_derivable_from_stored_fields() {
        let cases = [
            (
                Runner::Pytest,
                case(
                    "pytest",
                    "tests.test_x.TestA",
                    "test_b[1]",
                    Some("tests/test_x.py"),
                ),
            ),
            (
                Runner::Pytest,
                case("pytest", "tests.test_x", "test_c", None),
            ),
            (
                Runner::Nextest,
                case("crate::bin/x", "crate::bin/x", "m::t", None),
            ),
            (Runner::Generic, case("s", "pkg.C", "adds", None)),
        ];
        for (runner, c) in cases {
            let id = identify(&c, runner, &[]);
            assert_eq!(
                derive_selector(runner, &id.scope, &id.name, id.file.as_deref()),
                id.selector
            );
            assert!(id.selector_derived, "{id:?}");
        }
        // Where normalisation changed the inputs, the flag says whether the selector survived.
        let odd = [
            (
                Runner::Pytest,
                case("pytest", "tests/test_x.py", "test_a", None),
            ),
            (
                Runner::Pytest,
                case("pytest", "tests.test_x", "test  a", None),
            ),
            (Runner::Pytest, case("pytest", "t", "obj at 0x7f3a", None)),
            (Runner::Nextest, case("bin x", "bin  x", "m::t", None)),
            (Runner::Nextest, case("", "b", " m::t ", None)),
        ];
        let mut cache = IdentityCache::default();
        for (runner, c) in odd {
            let id = identify_cached(&c, runner, &[], &mut cache);
            let derived = derive_selector(runner, &id.scope, &id.name, id.file.as_deref());
            assert_eq!(id.selector_derived, derived == id.selector, "{id:?}");
        }
    }

    #[test]
    fn nextest_selector_is_binary_id_and_test_path() {
        let c = case(
            "my-crate::bin/omen",
            "my-crate::bin/omen",
            "cli::parses",
            None,
        );
        assert_eq!(
            identify(&c, Runner::Nextest, &[]).selector,
            "my-crate::bin/omen cli::parses"
        );
    }
}
