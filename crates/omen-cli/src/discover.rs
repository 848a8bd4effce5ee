//! Turning `REPORTS...` arguments into report files.

use std::path::{Path, PathBuf};

/// One argument's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A report file to read.
    File(PathBuf),
    /// The argument matched nothing; the string says why.
    Nothing {
        /// The argument as given.
        pattern: String,
        /// Why nothing was found.
        reason: String,
    },
}

/// Expand files, directories (searched recursively for `*.xml`) and glob patterns.
/// Files are returned sorted and without duplicates, after the "found nothing" entries.
pub fn discover(args: &[String]) -> Vec<Found> {
    let mut files = Vec::new();
    let mut nothing = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        let before = files.len();
        if path.is_file() {
            files.push(path.to_owned());
            continue;
        }
        let pattern = if path.is_dir() {
            format!(
                "{}/**/*.xml",
                glob::Pattern::escape(arg.trim_end_matches('/'))
            )
        } else {
            arg.clone()
        };
        match glob::glob(&pattern) {
            Ok(paths) => files.extend(paths.flatten().filter(|p| p.is_file())),
            Err(err) => {
                nothing.push(Found::Nothing {
                    pattern: arg.clone(),
                    reason: format!("invalid glob pattern: {err}"),
                });
                continue;
            }
        }
        if files.len() == before {
            let reason = if path.is_dir() {
                "the directory contains no *.xml files"
            } else {
                "no file matches"
            };
            nothing.push(Found::Nothing {
                pattern: arg.clone(),
                reason: reason.to_owned(),
            });
        }
    }
    files.sort();
    files.dedup();
    nothing
        .into_iter()
        .chain(files.into_iter().map(Found::File))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_dirs_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for f in ["a/one.xml", "a/b/two.xml", "a/b/notes.txt", "three.xml"] {
            std::fs::write(root.join(f), "<testsuite/>").unwrap();
        }
        let s = |p: &str| root.join(p).display().to_string();
        let found = discover(&[
            s("a"),
            format!("{}/*.xml", root.display()),
            s("three.xml"),
            s("missing/*.xml"),
        ]);
        let files: Vec<_> = found
            .iter()
            .filter_map(|f| match f {
                Found::File(p) => Some(p.strip_prefix(root).unwrap().display().to_string()),
                Found::Nothing { .. } => None,
            })
            .collect();
        assert_eq!(files, ["a/b/two.xml", "a/one.xml", "three.xml"]);
        assert!(
            matches!(&found[0], Found::Nothing { pattern, .. } if pattern.ends_with("missing/*.xml"))
        );
    }
}
