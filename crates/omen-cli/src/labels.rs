//! `.omen/failure-labels.toml`: the categories people gave failure signatures with
//! `omen failures label`. It is committed with the code, like the config file, because the
//! history database is a CI artifact that a laptop's copy never writes back to. Each label keeps
//! the signature's masked line, so the learned layer trains on it without the history.

use std::path::Path;

use anyhow::Context as _;
use omen_jobs::failures::Label;
use serde::Deserialize;

/// Default location, relative to the working directory.
pub const DEFAULT_PATH: &str = ".omen/failure-labels.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    label: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    signature: String,
    category: String,
    text: String,
}

/// A signature as `omen failures` prints it: 16 hex digits.
pub fn parse_signature(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.len() != 16 {
        return Err(format!(
            "`{s}` is not a signature (16 hex digits, as `omen failures` prints them)"
        ));
    }
    u64::from_str_radix(s, 16).map_err(|_| format!("`{s}` is not a signature (16 hex digits)"))
}

/// The labels in `path`; none when the file does not exist.
pub fn load(path: &Path) -> anyhow::Result<Vec<Label>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    let file: File = toml::from_str(&text)
        .with_context(|| format!("invalid labels file `{}`", path.display()))?;
    file.label
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = || format!("`{}`: label[{i}]", path.display());
            Ok(Label {
                signature: parse_signature(&e.signature)
                    .map_err(anyhow::Error::msg)
                    .with_context(at)?,
                category: e
                    .category
                    .parse()
                    .map_err(anyhow::Error::msg)
                    .with_context(at)?,
                text: e.text,
            })
        })
        .collect()
}

/// The labels in `path`, or none with a warning: a broken labels file never fails a CI step.
pub fn load_or_warn(path: &Path) -> Vec<Label> {
    load(path).unwrap_or_else(|err| {
        tracing::warn!("{err:#}; failure labels are not used");
        Vec::new()
    })
}

/// Write `labels` to `path`, atomically: a crash leaves the old file.
pub fn save(path: &Path, labels: &[Label]) -> anyhow::Result<()> {
    let mut out = String::from(
        "# Failure categories given by hand (`omen failures label SIGNATURE --as CATEGORY`).\n\
         # Commit this file: `omen ci` and `omen failures` read it.\n",
    );
    for l in labels {
        out.push_str(&format!(
            "\n[[label]]\nsignature = \"{:016x}\"\ncategory = \"{}\"\ntext = {}\n",
            l.signature,
            l.category.as_str(),
            crate::nextest::toml_string(&l.text)
        ));
    }
    omen_jobs::quarantine::write_atomically(path, out.as_bytes())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use omen_core::failure::Category;

    #[test]
    fn labels_survive_a_round_trip_through_the_file_whatever_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".omen/failure-labels.toml");
        assert_eq!(load(&path).unwrap(), Vec::new());
        let labels = vec![
            Label {
                signature: 0x00ab_cdef_0123_4567,
                category: Category::Infrastructure,
                text: "ConnectionRefusedError: \"x\" \\ <IP>:<NUM>\t\u{1b}[31m ünï".to_owned(),
            },
            Label {
                signature: u64::MAX,
                category: Category::Test,
                text: String::new(),
            },
        ];
        save(&path, &labels).unwrap();
        assert_eq!(load(&path).unwrap(), labels);
        std::fs::write(
            &path,
            "[[label]]\nsignature = \"zz\"\ncategory = \"test\"\ntext = \"\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(
            err.contains("label[0]") && err.contains("16 hex digits"),
            "{err}"
        );
        assert_eq!(load_or_warn(&path), Vec::new());
    }
}
