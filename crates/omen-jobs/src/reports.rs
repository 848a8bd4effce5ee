//! Reading a batch of test reports: find the files, parse each in bounded memory, fold retries
//! into one result per test, and hash the contents for the run's idempotency key. A batch never
//! fails as a whole: an unusable file is listed with its error and line, and the rest count.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use omen_core::junit::{self, Limits, ParseError};
use omen_core::run::{RunMeta, TestResult, fold};
use omen_core::{Runner, TestCase};
use omen_metadata::ingest::{Counts, FileError, FileSummary};
use sha2::{Digest, Sha256};

/// Reports parsed and folded, not yet stored.
#[derive(Debug)]
pub struct Parsed {
    /// One summary per input (unusable ones carry an error).
    pub files: Vec<FileSummary>,
    /// One result per test, retries folded.
    pub results: Vec<TestResult>,
    /// Sums over usable files.
    pub totals: Counts,
    /// SHA-256 over the usable files' contents (in sorted order of their hashes).
    pub content_hash: String,
    /// Number of inputs that could not be used.
    pub unusable: usize,
}

/// Parse every report that `patterns` find. Never fails as a whole: unusable files are listed
/// in `files` with their error and the rest still count.
pub fn parse_reports(patterns: &[String], max_size: u64, roots: &[String]) -> Parsed {
    let limits = Limits::default();
    let mut files = Vec::new();
    // Each file's cases stay in the vector they were parsed into: fold reads them in place.
    let mut cases: Vec<(Vec<TestCase>, Runner)> = Vec::new();
    let mut hashes = Vec::new();
    let mut totals = omen_core::Counts::default();
    let mut unusable = 0;
    for found in discover(patterns) {
        let path = match found {
            Found::File(path) => path,
            Found::Nothing { pattern, reason } => {
                tracing::warn!("{pattern}: {reason}");
                unusable += 1;
                files.push(summary_error(pattern, reason, None));
                continue;
            }
        };
        let shown = path.display().to_string();
        match parse_file(&path, max_size, limits) {
            Ok((runner, file_cases, counts, hash, truncated)) => {
                totals.merge(&counts);
                let counts = to_counts(counts);
                if let Some(cut) = &truncated {
                    let place = match (cut.line, cut.column) {
                        (Some(l), Some(c)) => format!(":{l}:{c}"),
                        _ => String::new(),
                    };
                    tracing::warn!(
                        "{shown}{place}: {}; its {} test(s) read still count",
                        cut.message,
                        counts.tests
                    );
                }
                files.push(FileSummary {
                    path: shown.clone(),
                    counts,
                    runner: Some(runner.as_str().to_owned()),
                    error: None,
                    truncated,
                });
                hashes.push(hash);
                cases.push((file_cases, runner));
            }
            Err(error) => {
                let place = match (error.line, error.column) {
                    (Some(l), Some(c)) => format!(":{l}:{c}"),
                    _ => String::new(),
                };
                tracing::warn!(
                    "{shown}{place}: {}; the other reports still count",
                    error.message
                );
                unusable += 1;
                files.push(FileSummary {
                    path: shown.clone(),
                    counts: Counts::default(),
                    runner: None,
                    error: Some(error),
                    truncated: None,
                });
            }
        }
    }
    hashes.sort();
    let mut combined = Sha256::new();
    for h in &hashes {
        combined.update(h);
    }
    Parsed {
        files,
        results: fold(
            cases
                .into_iter()
                .flat_map(|(cases, runner)| cases.into_iter().map(move |c| (c, runner))),
            roots,
        ),
        totals: to_counts(totals),
        content_hash: hex(&combined.finalize()),
        unusable,
    }
}

type FileParse = (
    Runner,
    Vec<TestCase>,
    omen_core::Counts,
    [u8; 32],
    Option<FileError>,
);

fn parse_file(path: &Path, max_size: u64, limits: Limits) -> Result<FileParse, FileError> {
    let error = |message: String| FileError {
        message,
        line: None,
        column: None,
    };
    let file = File::open(path).map_err(|e| error(format!("cannot open the file: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| error(format!("cannot read the file's size: {e}")))?
        .len();
    if size > max_size {
        return Err(error(format!(
            "the file is {size} bytes, over the {max_size}-byte limit (raise it with --max-report-size)"
        )));
    }
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        HashingReader {
            inner: file,
            hasher: Sha256::new(),
        },
    );
    let mut cases = Vec::new();
    let parsed = junit::parse_with(&mut reader, limits, |case| cases.push(case));
    match parsed {
        Ok(summary) => {
            // Hash whatever follows the root element too, so the content hash covers every byte.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            let hash = reader.into_inner().hasher.finalize().into();
            let truncated = summary.truncated_at.map(|offset| {
                let (line, column) = File::open(path)
                    .ok()
                    .and_then(|f| junit::line_col(BufReader::new(f), offset).ok())
                    .map_or((None, None), |(l, c)| (Some(l), Some(c)));
                FileError {
                    message: "unexpected end of file: the report stops before its root element closes (a run that crashed mid-suite, or a cut upload)".to_owned(),
                    line,
                    column,
                }
            });
            Ok((summary.runner, cases, summary.counts, hash, truncated))
        }
        Err(err) => {
            let (line, column) = match err.offset() {
                Some(offset) => File::open(path)
                    .ok()
                    .and_then(|f| junit::line_col(BufReader::new(f), offset).ok())
                    .map_or((None, None), |(l, c)| (Some(l), Some(c))),
                None => (None, None),
            };
            let message = match &err {
                ParseError::Io(source) => format!("{err}: {source}"),
                _ => err.to_string(),
            };
            Err(FileError {
                message,
                line,
                column,
            })
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The idempotency key of a run: run id, attempt, job, commit and the reports' content.
pub fn run_key(meta: &RunMeta, content_hash: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        meta.run_id.as_deref().unwrap_or(""),
        &meta.attempt.to_string(),
        meta.job.as_deref().unwrap_or(""),
        meta.commit.as_deref().unwrap_or(""),
        content_hash,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

fn to_counts(c: omen_core::Counts) -> Counts {
    Counts {
        tests: c.tests,
        passed: c.passed,
        failures: c.failures,
        errors: c.errors,
        skipped: c.skipped,
        flaky: c.flaky,
    }
}

fn summary_error(path: String, message: String, line: Option<u64>) -> FileSummary {
    FileSummary {
        path,
        counts: Counts::default(),
        runner: None,
        error: Some(FileError {
            message,
            line,
            column: None,
        }),
        truncated: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

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

/// The total size of the report files `patterns` name (see [`discover`]), known before they
/// are read.
pub fn total_bytes(patterns: &[String]) -> u64 {
    discover(patterns)
        .iter()
        .filter_map(|found| match found {
            Found::File(path) => path.metadata().ok().map(|m| m.len()),
            Found::Nothing { .. } => None,
        })
        .sum()
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
