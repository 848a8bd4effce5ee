//! The quarantine file (`.omen/quarantine.json`): which tests the reporters should stop letting
//! break the build. Read by the pytest plugin and turned into nextest configuration by `omen`.
//!
//! Readers must check `version` and refuse versions they do not know. Entries are sorted by
//! `id` so a regenerated file differs from the committed one only where something changed.

use serde::{Deserialize, Serialize};

/// Version of [`QuarantineFile`].
pub const QUARANTINE_VERSION: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineFile {
    /// [`QUARANTINE_VERSION`].
    pub version: u32,
    /// Quarantined tests, sorted by `id`.
    pub tests: Vec<QuarantineEntry>,
}

/// One quarantined test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineEntry {
    /// Omen's stable identity (`scope::name`, see docs/design/identity-and-parsing.md).
    pub id: String,
    /// Runner-native selector: pytest node id, nextest `binary-id test::path`, else the id.
    pub selector: String,
    /// Runner that reported it: `pytest`, `nextest`, `junit`.
    pub runner: String,
    /// Class, suite or module.
    pub classname: String,
    /// Test name, parameters included.
    pub name: String,
    /// Source file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Why it is quarantined, in words.
    pub reason: String,
    /// Flakiness score when it was quarantined (posterior probability of a flaky failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The evidence when it was quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// When it was quarantined (RFC 3339).
    pub added: String,
    /// When the entry stops applying unless renewed (RFC 3339).
    pub expires: String,
    /// Who looks after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What reporters do with it.
    pub mode: Mode,
    /// `auto` entries are managed by `omen quarantine`; `manual` ones are never removed by it.
    pub source: Source,
    /// False once the test bounced back into quarantine after an automatic release: from then on
    /// only a person releases it.
    #[serde(default = "yes")]
    pub auto_release: bool,
}

fn yes() -> bool {
    true
}

/// What a reporter does with a quarantined test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The test runs; a failure does not fail the build. Evidence keeps flowing.
    RunIgnore,
    /// The test does not run.
    Skip,
}

impl Mode {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::RunIgnore => "run-ignore",
            Mode::Skip => "skip",
        }
    }
}

/// Who manages an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Added and released by `omen quarantine`.
    Auto,
    /// Added by a person; `omen quarantine` keeps it.
    Manual,
}

impl QuarantineFile {
    /// Parse a file's text, checking the version.
    pub fn parse(text: &str) -> Result<QuarantineFile, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(QUARANTINE_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "quarantine file version {v} is not supported (this Omen reads version {QUARANTINE_VERSION})"
                ));
            }
            None => return Err("no \"version\" field".to_owned()),
        }
        serde_json::from_value(value).map_err(|e| format!("invalid quarantine file: {e}"))
    }

    /// Render with a stable layout: entries sorted by id, two-space indent, final newline.
    pub fn render(&self) -> String {
        let mut sorted = self.clone();
        sorted.tests.sort_by(|a, b| a.id.cmp(&b.id));
        let mut text = serde_json::to_string_pretty(&sorted).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        assert!(
            QuarantineFile::parse(r#"{"version": 2, "tests": []}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(
            QuarantineFile::parse(r#"{"tests": []}"#)
                .unwrap_err()
                .contains("version")
        );
        assert!(QuarantineFile::parse("{").unwrap_err().contains("JSON"));
        assert_eq!(
            QuarantineFile::parse(r#"{"version": 1, "tests": []}"#)
                .unwrap()
                .tests,
            vec![]
        );
    }

    #[test]
    fn render_sorts_and_round_trips() {
        let entry = |id: &str| QuarantineEntry {
            id: id.into(),
            selector: id.into(),
            runner: "junit".into(),
            classname: "C".into(),
            name: id.into(),
            file: None,
            reason: "flaky".into(),
            score: Some(0.1),
            evidence: None,
            added: "2026-01-01T00:00:00Z".into(),
            expires: "2026-01-31T00:00:00Z".into(),
            owner: None,
            mode: Mode::RunIgnore,
            source: Source::Auto,
            auto_release: true,
        };
        let file = QuarantineFile {
            version: 1,
            tests: vec![entry("b"), entry("a")],
        };
        let text = file.render();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
        assert!(text.contains("\"mode\": \"run-ignore\""));
        assert_eq!(QuarantineFile::parse(&text).unwrap().tests[0].id, "a");
    }
}
