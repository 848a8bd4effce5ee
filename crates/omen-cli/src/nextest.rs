//! Quarantine → cargo-nextest configuration.
//!
//! Nextest has no plugin API, so its configuration carries the quarantine
//! (`cargo nextest run --tool-config-file omen:/abs/path/omen-nextest.toml`). What nextest can do,
//! and so what each mode means there:
//!
//! - `skip`: the test is left out through `default-filter` (`not (...)`). It does not run.
//! - `run-ignore`: nextest cannot mark a failure as non-blocking. The honest mapping is extra
//!   `retries` with `flaky-result = "pass"`: a flaky failure that passes on retry no longer fails
//!   the run (nextest reports it as FLAKY, and its JUnit keeps the failed attempts, so Omen keeps
//!   learning), while a test that fails every attempt still fails the run — it is probably broken,
//!   and hiding that is exactly what Omen must not do. To ignore such failures anyway, run nextest
//!   with `continue-on-error` and let `omen ci --fail-on unexcused-failures` decide.
//!
//! Tool configs cannot change nextest's `default` profile (nextest 0.9.143 ignores `[profile.default]`
//! settings from them; found by `tests/e2e/reporters.rs`). They can extend any other profile: a
//! tool config's `[profile.ci]` merges with the repository's `[profile.ci]` (the repository wins
//! where both set a key), so `cargo nextest run --profile ci --tool-config-file omen:…` keeps the
//! user's settings, JUnit path included, and adds the quarantine. A profile defined in a tool
//! config cannot inherit from one defined only in the repository's `.config/nextest.toml`
//! (`inheritance error … unknown profile`), so for `--nextest-inherits ci` the config extends `ci`
//! itself and gives its own `omen` profile the same quarantine settings (found with real nextest
//! 0.9.143 by `tests/e2e/reporters.rs`). Without a named profile, the config defines `omen`,
//! inheriting from `default`.

use std::path::Path;

use omen_metadata::quarantine::{Mode, QuarantineEntry};

/// Retries given to `run-ignore` tests: with a 20% flake rate, three retries leave a 0.16% chance
/// that a flaky test still fails the run.
pub const RUN_IGNORE_RETRIES: u32 = 3;

/// Escape a string for a filterset `=` matcher.
pub fn escape_matcher(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ')' => out.push_str("\\)"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The filterset matching exactly one quarantined nextest test, or `None` when the entry is not a
/// nextest test.
pub fn exact(entry: &QuarantineEntry) -> Option<String> {
    if entry.runner != "nextest" {
        return None;
    }
    let (binary_id, test) = entry.selector.split_once(' ')?;
    Some(format!(
        "(binary_id(={}) & test(={}))",
        escape_matcher(binary_id),
        escape_matcher(test)
    ))
}

fn union<'a>(entries: impl Iterator<Item = &'a QuarantineEntry>) -> Option<String> {
    let parts: Vec<String> = entries.filter_map(exact).collect();
    (!parts.is_empty()).then(|| parts.join(" | "))
}

/// `not (...)` over the `skip` entries, for `-E` or `default-filter`.
pub fn skip_filter(entries: &[&QuarantineEntry]) -> Option<String> {
    union(entries.iter().copied().filter(|e| e.mode == Mode::Skip)).map(|u| format!("not ({u})"))
}

/// Which nextest profiles a tool config defines or extends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    /// The profile to select with `--profile`: Omen's own (`omen`) or the user's, extended.
    pub profile: String,
    /// The profile `profile` inherits from, when Omen defines it.
    pub inherits: Option<String>,
    /// A profile of the user's that is also extended with the quarantine, so that running it
    /// directly keeps its JUnit path and settings.
    pub extends: Option<String>,
}

impl Profiles {
    /// From `--nextest-profile` and `--nextest-inherits`. `omen` (Omen's own profile) inherits
    /// `default` unless told otherwise; any other name is the user's profile, extended in place.
    /// A named base other than `default` is extended too, because a tool config's profile cannot
    /// inherit from one defined only in the repository's config. `default` itself cannot be
    /// extended from a tool config.
    pub fn new(profile: &str, inherits: Option<&str>) -> Result<Profiles, String> {
        if profile == "default" {
            return Err(
                "nextest ignores `[profile.default]` from a tool config: name your own profile (e.g. `--nextest-profile ci`) or keep Omen's `omen` profile".to_owned(),
            );
        }
        let inherits = match inherits {
            Some(base) if base == profile => None,
            Some(base) => Some(base.to_owned()),
            None if profile == OMEN_PROFILE => Some("default".to_owned()),
            None => None,
        };
        let extends = inherits.clone().filter(|base| base != "default");
        Ok(Profiles {
            profile: profile.to_owned(),
            inherits,
            extends,
        })
    }
}

/// The profile Omen defines when the user names none.
pub const OMEN_PROFILE: &str = "omen";

/// A nextest tool config file for the active entries and `profiles`.
pub fn tool_config(entries: &[&QuarantineEntry], source: &Path, profiles: &Profiles) -> String {
    let profile = &profiles.profile;
    let mut out = format!(
        "# Generated by `omen quarantine --format nextest` from {}. Do not edit: regenerate.\n\
         # Use: cargo nextest run --profile {profile} --tool-config-file omen:/absolute/path/to/this/file.toml\n",
        source.display(),
    );
    if let Some(base) = &profiles.extends {
        out.push_str(&format!(
            "#  or: cargo nextest run --profile {base} --tool-config-file omen:… (your `{base}` profile with the quarantine added; its JUnit lands where `{base}` puts it)\n"
        ));
    }
    out.push_str(&format!(
        "# skip entries are filtered out; run-ignore entries get {RUN_IGNORE_RETRIES} retries and pass when a retry passes.\n\
         # A test that fails every retry still fails the run: nextest cannot make a failure non-blocking.\n\
         # Where your repository's .config/nextest.toml sets the same key for the profile, yours wins.\n"
    ));
    let sections = profiles
        .extends
        .iter()
        .map(|base| (base.as_str(), None))
        .chain([(profile.as_str(), profiles.inherits.as_deref())]);
    for (name, inherits) in sections {
        out.push_str(&profile_section(entries, name, inherits));
    }
    out
}

/// One `[profile.NAME]` with the quarantine's filter and overrides.
fn profile_section(entries: &[&QuarantineEntry], name: &str, inherits: Option<&str>) -> String {
    let key = toml_key(name);
    let mut out = format!("\n[profile.{key}]\n");
    if let Some(base) = inherits {
        out.push_str(&format!("inherits = {}\n", toml_string(base)));
    }
    if let Some(filter) = skip_filter(entries) {
        out.push_str(&format!("default-filter = {}\n", toml_string(&filter)));
    }
    if let Some(filter) = union(
        entries
            .iter()
            .copied()
            .filter(|e| e.mode == Mode::RunIgnore),
    ) {
        out.push_str(&format!(
            "\n[[profile.{key}.overrides]]\nfilter = {}\nretries = {RUN_IGNORE_RETRIES}\nflaky-result = \"pass\"\n",
            toml_string(&filter)
        ));
    }
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_owned()
    } else {
        toml_string(key)
    }
}

/// A TOML basic string.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use omen_metadata::quarantine::Source;

    use super::*;

    fn entry(selector: &str, mode: Mode) -> QuarantineEntry {
        QuarantineEntry {
            id: selector.into(),
            selector: selector.into(),
            runner: "nextest".into(),
            classname: String::new(),
            name: String::new(),
            file: None,
            reason: String::new(),
            score: None,
            evidence: None,
            added: String::new(),
            expires: String::new(),
            owner: None,
            mode,
            source: Source::Auto,
            auto_release: true,
        }
    }

    #[test]
    fn escapes_filterset_metacharacters() {
        assert_eq!(escape_matcher(r"a)b,c\d"), r"a\)b\,c\\d");
        assert_eq!(escape_matcher("x\ny"), r"x\ny");
        let e = entry("my-crate::bin/tool cases::weird(a,b)", Mode::Skip);
        assert_eq!(
            exact(&e).as_deref(),
            Some(r"(binary_id(=my-crate::bin/tool) & test(=cases::weird(a\,b\)))")
        );
    }

    #[test]
    fn tool_config_separates_modes_and_is_valid_toml_strings() {
        let skip = entry("c t::skipme", Mode::Skip);
        let ignore = entry("c t::flaky", Mode::RunIgnore);
        let mut pytest = entry("tests/x.py::test_a", Mode::Skip);
        pytest.runner = "pytest".into();
        let profiles = Profiles::new("omen", Some("ci")).unwrap();
        let text = tool_config(&[&skip, &ignore, &pytest], Path::new("q.json"), &profiles);
        assert!(
            text.contains("[profile.omen]\ninherits = \"ci\"\n"),
            "{text}"
        );
        assert!(text.contains("[profile.ci]\ndefault-filter"), "{text}");
        assert!(text.contains("[[profile.ci.overrides]]"), "{text}");
        assert!(text.contains("[[profile.omen.overrides]]"), "{text}");
        assert!(
            text.contains(r#"default-filter = "not ((binary_id(=c) & test(=t::skipme)))""#),
            "{text}"
        );
        assert!(
            text.contains(r#"filter = "(binary_id(=c) & test(=t::flaky))""#),
            "{text}"
        );
        assert!(text.contains("retries = 3"));
        assert!(
            !text.contains("test_a"),
            "pytest entries do not reach nextest"
        );
        assert_eq!(toml_string(r#"a\"b"#), r#""a\\\"b""#);
    }

    #[test]
    fn profiles_extend_the_users_own_and_never_default() {
        let check = |profile: &str,
                     inherits: Option<&str>,
                     expected: Option<(&str, Option<&str>, Option<&str>)>| {
            let got = Profiles::new(profile, inherits).ok();
            let got = got.as_ref().map(|p| {
                (
                    p.profile.as_str(),
                    p.inherits.as_deref(),
                    p.extends.as_deref(),
                )
            });
            assert_eq!(got, expected, "{profile} {inherits:?}");
        };
        check("omen", None, Some(("omen", Some("default"), None)));
        check(
            "omen",
            Some("default"),
            Some(("omen", Some("default"), None)),
        );
        check("omen", Some("ci"), Some(("omen", Some("ci"), Some("ci"))));
        check("ci", None, Some(("ci", None, None)));
        check("ci", Some("ci"), Some(("ci", None, None)));
        check("default", None, None);
        let text = tool_config(
            &[&entry("c t::x", Mode::Skip)],
            Path::new("q.json"),
            &Profiles::new("ci", None).unwrap(),
        );
        assert!(text.contains("[profile.ci]\ndefault-filter"), "{text}");
        assert!(
            !text.contains("inherits"),
            "the user's profile keeps its own base\n{text}"
        );
    }
}
