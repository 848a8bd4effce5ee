//! Reading a batch of test reports: find the files, parse each in bounded memory, fold retries
//! into one result per test, and hash the contents for the run's idempotency key. A batch never
//! fails as a whole: an unusable file is listed with its error and line, and the rest count.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use omen_core::identity::IdentityCache;
use omen_core::junit::{self, Limits, ParseError};
use omen_core::run::{Folder, RunMeta, TestResult};
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
///
/// The reports are read and parsed on a second thread while this one folds the cases it hands
/// over (identity, retries) and hashes the bytes it has parsed: on two cores neither costs wall
/// time.
pub fn parse_reports(patterns: &[String], max_size: u64, roots: &[String]) -> Parsed {
    let (send, receive) = std::sync::mpsc::sync_channel::<Piece>(16);
    let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || read_reports(patterns, max_size, &send, &spare));
        let mut folded = Folder::default();
        let mut file = Folder::default();
        let mut cache = IdentityCache::default();
        let mut hasher = Sha256::new();
        let mut hashes: Vec<[u8; 32]> = Vec::new();
        for piece in receive {
            match piece {
                Piece::Cases(cases, runner) => {
                    for case in cases {
                        file.add(case, runner, roots, &mut cache);
                    }
                }
                Piece::Bytes(chunk) => {
                    hasher.update(&chunk);
                    // The reader may have finished: then the chunk is simply freed.
                    let _ = give_back.send(chunk);
                }
                Piece::End { usable: true } => {
                    folded.merge(std::mem::take(&mut file));
                    hashes.push(hasher.finalize_reset().into());
                }
                Piece::End { usable: false } => {
                    file = Folder::default();
                    hasher.reset();
                }
            }
        }
        let read = match reading.join() {
            Ok(read) => read,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        hashes.sort();
        let mut combined = Sha256::new();
        for h in &hashes {
            combined.update(h);
        }
        Parsed {
            files: read.files,
            results: folded.finish(),
            totals: to_counts(read.totals),
            content_hash: hex(&combined.finalize()),
            unusable: read.unusable,
        }
    })
}

/// What the reading thread hands the folding one, in order.
enum Piece {
    /// Cases of the file being read, with the runner that wrote them.
    Cases(Vec<TestCase>, Runner),
    /// The file's next bytes, parsed already: to hash, then to give back for reuse.
    Bytes(Vec<u8>),
    /// The file ended: whether its cases count (an unusable file's are dropped).
    End { usable: bool },
}

/// Cases handed over at a time: enough to make the channel's cost negligible, few enough that
/// the fold starts at once.
const BATCH: usize = 256;

/// Everything [`read_reports`] learned besides the cases.
struct ReadAll {
    files: Vec<FileSummary>,
    totals: omen_core::Counts,
    unusable: usize,
}

fn read_reports(
    patterns: &[String],
    max_size: u64,
    send: &SyncSender<Piece>,
    spare: &Receiver<Vec<u8>>,
) -> ReadAll {
    let limits = Limits::default();
    let mut files = Vec::new();
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
        let parsed = parse_file(&path, max_size, limits, send, spare);
        // A closed channel means the folding thread is gone (it panicked); the scope reports it.
        let _ = send.send(Piece::End {
            usable: parsed.is_ok(),
        });
        match parsed {
            Ok((runner, counts, truncated)) => {
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
    ReadAll {
        files,
        totals,
        unusable,
    }
}

type FileParse = (Runner, omen_core::Counts, Option<FileError>);

/// Parse one file, sending its cases and bytes on as they are read; the caller sends the file's
/// end.
fn parse_file(
    path: &Path,
    max_size: u64,
    limits: Limits,
    send: &SyncSender<Piece>,
    spare: &Receiver<Vec<u8>>,
) -> Result<FileParse, FileError> {
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
    let mut reader = ChunkReader {
        file,
        chunk: Vec::new(),
        pos: 0,
        send,
        spare,
    };
    let mut batch = Vec::with_capacity(BATCH);
    // Cases of a report that has not named its runner yet are held to the end: it may still.
    let parsed = junit::parse_with(&mut reader, limits, |case, runner| {
        batch.push(case);
        if runner != Runner::Generic && batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let _ = send.send(Piece::Cases(full, runner));
        }
    });
    match parsed {
        Ok(summary) => {
            if !batch.is_empty() {
                let _ = send.send(Piece::Cases(batch, summary.runner));
            }
            // Hash whatever follows the root element too, so the content hash covers every byte.
            // A read error here leaves a parsed report usable, hashed as far as it could be read.
            while reader.fill_buf().is_ok_and(|rest| !rest.is_empty()) {
                reader.pos = reader.chunk.len();
            }
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
            Ok((summary.runner, summary.counts, truncated))
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

/// Bytes read at a time.
const CHUNK: usize = 256 * 1024;

/// A file read in owned chunks: each chunk, once parsed, goes to the folding thread to be hashed
/// there, and comes back through `spare` to be filled again.
struct ChunkReader<'a> {
    file: File,
    chunk: Vec<u8>,
    pos: usize,
    send: &'a SyncSender<Piece>,
    spare: &'a Receiver<Vec<u8>>,
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.chunk.len() {
            let mut next = self.spare.try_recv().unwrap_or_default();
            next.resize(CHUNK, 0);
            let n = self.file.read(&mut next)?;
            next.truncate(n);
            let done = std::mem::replace(&mut self.chunk, next);
            self.pos = 0;
            if !done.is_empty() {
                // A closed channel means the folding thread is gone; the scope reports why.
                let _ = self.send.send(Piece::Bytes(done));
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

/// The idempotency key of a run: run id, attempt, job (and its instance), commit and the
/// reports' content.
pub fn run_key(meta: &RunMeta, content_hash: &str) -> String {
    let mut h = Sha256::new();
    // A job's instance joins its name as it always did (`name#id`), so the keys of runs stored
    // before the instance had its own field stay the same.
    let job = match (&meta.job, &meta.instance) {
        (Some(job), Some(instance)) => format!("{job}#{instance}"),
        (job, instance) => job.clone().or(instance.clone()).unwrap_or_default(),
    };
    for part in [
        meta.run_id.as_deref().unwrap_or(""),
        &meta.attempt.to_string(),
        &job,
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

    /// Enough cases to be handed over in several batches.
    fn pytest_report(cases: usize, tail: &str) -> String {
        let mut xml = String::from(r#"<testsuites><testsuite name="pytest">"#);
        for i in 0..cases {
            xml.push_str(&format!(
                r#"<testcase classname="tests.test_a" name="test_{i}"/>"#
            ));
        }
        xml.push_str(tail);
        xml
    }

    #[test]
    fn a_retried_gitlab_job_is_another_run_of_the_same_job() {
        let meta = |instance: Option<&str>| RunMeta {
            run_id: Some("77".into()),
            attempt: 1,
            job: Some("rspec".into()),
            instance: instance.map(str::to_owned),
            commit: Some("abc".into()),
            ..Default::default()
        };
        let (first, retry) = (meta(Some("1234")), meta(Some("1299")));
        assert_ne!(run_key(&first, "h"), run_key(&retry, "h"));
        assert_eq!(first.job, retry.job);
        // The key a run stored as job `rspec#1234` had is the key it has now.
        let before = RunMeta {
            job: Some("rspec#1234".into()),
            ..meta(None)
        };
        assert_eq!(run_key(&first, "h"), run_key(&before, "h"));
    }

    #[test]
    fn an_unusable_report_streamed_in_part_leaves_no_result() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.xml");
        let bad = dir.path().join("b.xml");
        std::fs::write(&good, pytest_report(3, "</testsuite></testsuites>")).unwrap();
        // Cut inside a case, after several batches of cases were handed to the fold.
        std::fs::write(&bad, pytest_report(3 * BATCH, r#"<testcase name="cut">"#)).unwrap();
        let paths = [good, bad].map(|p| p.display().to_string());
        let parsed = parse_reports(&paths, u64::MAX, &[]);
        assert_eq!(parsed.unusable, 1);
        assert_eq!(parsed.results.len(), 3);
        assert!(parsed.files[1].error.as_ref().unwrap().line.is_some());
        assert_eq!(parsed.totals.tests, 3);
    }

    #[test]
    fn the_content_hash_covers_every_byte_of_each_usable_report() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than one read, with bytes after the root element.
        let text = pytest_report(20_000, "</testsuite></testsuites>\n<!-- tail -->\n");
        assert!(text.len() > 2 * CHUNK);
        let path = dir.path().join("a.xml");
        std::fs::write(&path, &text).unwrap();
        let parsed = parse_reports(&[path.display().to_string()], u64::MAX, &[]);
        assert_eq!(parsed.results.len(), 20_000);
        let file_hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        assert_eq!(parsed.content_hash, hex(&Sha256::digest(file_hash)));
        std::fs::write(&path, text.replace("tail", "tale")).unwrap();
        let changed = parse_reports(&[path.display().to_string()], u64::MAX, &[]);
        assert_ne!(changed.content_hash, parsed.content_hash);
    }

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
