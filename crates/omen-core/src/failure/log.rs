//! The failing step of a saved job log: what broke when no test report says so (a compile
//! error, a dependency install, an OOM kill).
//!
//! [`error_block`] cleans the log ([`clean_line`]: ANSI sequences, carriage-return redraws, CI
//! timestamps and control characters removed), marks the lines that report an error (a fixed
//! list of the shapes compilers, package managers, shells and runtimes print, see `mark`),
//! and takes the **last** error block — the error lines of the log's end that lie within
//! [`BLOCK_GAP`] lines of each other, with the traceback frames between them. The wrap-up lines
//! a CI or a build tool prints after the cause (`Process completed with exit code 1`,
//! `error: could not compile`, `make: *** … Error 1`) are only used when nothing else is
//! there. The block is bounded ([`MAX_LINES`] lines of at most [`MAX_LINE_CHARS`] characters).

/// Error lines at most this many lines apart belong to one block.
pub const BLOCK_GAP: usize = 8;

/// Lines after the block's last error that stay with it (up to a blank line or a wrap-up).
pub const BLOCK_TAIL: usize = 15;

/// The excerpt keeps at most this many lines.
pub const MAX_LINES: usize = 40;

/// Each excerpt line keeps at most this many characters.
pub const MAX_LINE_CHARS: usize = 300;

/// The last error block of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBlock {
    /// The line that names the cause (cleaned; untrusted text).
    pub headline: String,
    /// The 1-based line number of the headline in the log as given.
    pub line: usize,
    /// The block, cleaned and bounded, with a line or two of context before it.
    pub excerpt: Vec<String>,
}

/// The log line cleaned for reading: ANSI escape sequences (CSI, OSC and two-byte escapes)
/// removed, only the text after the last carriage return kept (progress bars redraw the line),
/// a GitHub timestamp prefix (`2026-12-01T10:00:00.1234567Z `) and a `##[error]` marker
/// removed, other control characters dropped, tabs kept as spaces.
pub fn clean_line(raw: &str) -> String {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~.
                Some('[') => {
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST (ESC \).
                Some(']') => {
                    while let Some(d) = chars.next() {
                        if d == '\u{7}' {
                            break;
                        }
                        if d == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            // A redraw: what came before is overwritten.
            '\r' => out.clear(),
            '\t' => out.push(' '),
            c if c.is_control() || is_invisible(c) => {}
            c => out.push(c),
        }
    }
    let mut s = out.as_str();
    if let Some(rest) = strip_timestamp(s) {
        s = rest;
    }
    for marker in ["##[error]", "::error::"] {
        if let Some(rest) = s.strip_prefix(marker) {
            s = rest;
        }
    }
    s.trim_end().to_owned()
}

/// Bidirectional controls and zero-width characters: they change how a line reads, not what
/// it says.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `s` without a leading ISO 8601 UTC timestamp and its space, as GitHub prefixes log lines.
fn strip_timestamp(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':');
    if !shape {
        return None;
    }
    let end = s.find(' ')?;
    s[..end].ends_with('Z').then(|| &s[end + 1..])
}

/// How a cleaned line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Names a cause.
    Error,
    /// A CI's or build tool's wrap-up after the cause.
    Trailer,
    /// A traceback frame or a compiler's pointer: keeps a block together.
    Frame,
    /// Anything else.
    Other,
}

/// Line starts that name an error, as compilers, package managers, shells and runtimes print
/// them (compared case-sensitively: `ERROR` from a passing test's logging is not `ERROR:`).
const ERROR_STARTS: [&str; 18] = [
    "error:",
    "Exception in thread \"",
    "curl: (",
    "error[",
    "Error:",
    "ERROR:",
    "ERROR ",
    "[ERROR]",
    "fatal:",
    "fatal error:",
    "FATAL",
    "npm ERR!",
    "E   ",
    "FAILED",
    "FAIL ",
    "--- FAIL",
    "Traceback (most recent call last):",
    "panic:",
];

/// Text anywhere in a line that names an error.
const ERROR_WITHIN: [&str; 14] = [
    ": error:",
    ": error ",
    " error TS",
    " panicked at ",
    "memory allocation of",
    "Segmentation fault",
    "Killed",
    "Out of memory",
    "out of memory",
    "command not found",
    "No such file or directory",
    "Permission denied",
    "signal: killed",
    "Aborted (core dumped)",
];

/// Wrap-up lines: they follow the cause and only say that something failed.
const TRAILERS: [&str; 12] = [
    "Process completed with exit code",
    "ERROR: Job failed",
    "error: could not compile",
    "error: aborting due to",
    "error: Recipe for target",
    "make: ***",
    "npm ERR! A complete log",
    "npm ERR! code ELIFECYCLE",
    "npm ERR! errno",
    "error Command failed with exit code",
    "FAILED (",
    "error: test failed",
];

fn mark(line: &str) -> Mark {
    let t = line.trim_start();
    if TRAILERS.iter().any(|p| t.starts_with(p)) {
        return Mark::Trailer;
    }
    if ERROR_STARTS.iter().any(|p| t.starts_with(p))
        || ERROR_WITHIN.iter().any(|p| line.contains(p))
        || is_exception_line(t)
    {
        return Mark::Error;
    }
    if t.starts_with("File \"")
        || t.starts_with("at ")
        || t.starts_with("--> ")
        || t.starts_with('|')
        || (line.starts_with(' ') && !t.is_empty() && line.len() - t.len() >= 2)
    {
        return Mark::Frame;
    }
    Mark::Other
}

/// `ValueError: …`, `java.lang.IllegalStateException: …`, `MemoryError`: a qualified name ending
/// in `Error` or `Exception` that starts the line.
fn is_exception_line(t: &str) -> bool {
    let name: &str = t.split([':', ' ']).next().unwrap_or("");
    let bare = name.rsplit('.').next().unwrap_or(name);
    (bare.ends_with("Error") || bare.ends_with("Exception"))
        && bare.len() > 5
        && bare.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        && (t.len() == name.len() || t[name.len()..].starts_with(':'))
}

/// The last error block of `log` (see the module docs), or `None` when no line reports an
/// error.
pub fn error_block(log: &str) -> Option<LogBlock> {
    let lines: Vec<String> = log.lines().map(clean_line).collect();
    let marks: Vec<Mark> = lines.iter().map(|l| mark(l)).collect();
    let last_error = marks.iter().rposition(|&m| m == Mark::Error);
    let last = match last_error {
        Some(i) => i,
        // Only wrap-up lines: the first of the last run of them is the best there is.
        None => {
            let mut i = marks.iter().rposition(|&m| m == Mark::Trailer)?;
            while i > 0 && marks[i - 1] == Mark::Trailer {
                i -= 1;
            }
            i
        }
    };
    // Walk back over error lines within BLOCK_GAP of the block's start; frames keep the gap
    // from growing (a long traceback is one block).
    let mut start = last;
    let mut gap = 0;
    let mut i = last;
    while i > 0 && gap < BLOCK_GAP {
        i -= 1;
        match marks[i] {
            Mark::Error => {
                start = i;
                gap = 0;
            }
            Mark::Frame => {}
            Mark::Trailer | Mark::Other => gap += 1,
        }
    }
    let block = start..=last;
    // The headline: the block's last exception line (a traceback names its exception last),
    // else its first error line.
    let headline_at = block
        .clone()
        .rev()
        .find(|&i| is_exception_line(lines[i].trim_start()))
        .or_else(|| block.clone().find(|&i| marks[i] == Mark::Error))
        .unwrap_or(start);
    let from = start.saturating_sub(2);
    // The end: the last error's own lines (a compiler's pointer, a message's continuation), up
    // to a blank line or a wrap-up.
    let mut to = last;
    while to + 1 < lines.len()
        && to - last < BLOCK_TAIL
        && !lines[to + 1].trim().is_empty()
        && marks[to + 1] != Mark::Trailer
    {
        to += 1;
    }
    let mut excerpt: Vec<String> = lines[from..=to]
        .iter()
        .map(|l| bounded(l, MAX_LINE_CHARS))
        .collect();
    if excerpt.len() > MAX_LINES {
        // Keep the start (the first error) and the end (what finally failed).
        let tail = excerpt.split_off(excerpt.len() - MAX_LINES / 2);
        excerpt.truncate(MAX_LINES / 2 - 1);
        excerpt.push(format!("… {} lines …", to + 1 - from - MAX_LINES + 1));
        excerpt.extend(tail);
    }
    Some(LogBlock {
        headline: bounded(lines[headline_at].trim(), MAX_LINE_CHARS),
        line: headline_at + 1,
        excerpt,
    })
}

fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_redraws_timestamps_and_markers_are_cleaned() {
        assert_eq!(
            clean_line("2026-12-01T10:00:00.1234567Z \u{1b}[31merror\u{1b}[0m: boom\r"),
            "error: boom"
        );
        assert_eq!(clean_line("10%\r50%\r100% done"), "100% done");
        assert_eq!(
            clean_line("section_start:1700000000:build\r\u{1b}[0KBuilding"),
            "Building"
        );
        assert_eq!(
            clean_line("##[error]Process completed"),
            "Process completed"
        );
        assert_eq!(
            clean_line("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{7}"),
            "link"
        );
        assert_eq!(clean_line("a\u{7}b\u{202e}c"), "abc");
        // A line that only looks like a timestamp keeps its text.
        assert_eq!(clean_line("2026-12-01 build"), "2026-12-01 build");
    }

    #[test]
    fn a_rust_compile_error_is_found_before_the_wrap_up() {
        let log = "\
   Compiling omen v0.1.0
error[E0425]: cannot find value `x` in this scope
 --> src/main.rs:2:13
  |
2 |     let y = x + 1;
  |             ^ not found in this scope

For more information about this error, try `rustc --explain E0425`.
error: could not compile `omen` (bin \"omen\") due to 1 previous error
##[error]Process completed with exit code 101.
";
        let b = error_block(log).expect("a block");
        assert_eq!(
            b.headline,
            "error[E0425]: cannot find value `x` in this scope"
        );
        assert_eq!(b.line, 2);
        assert_eq!(
            b.excerpt.first().map(String::as_str),
            Some("Compiling omen v0.1.0")
        );
        assert!(
            b.excerpt
                .iter()
                .any(|l| l.contains("not found in this scope"))
        );
    }

    #[test]
    fn a_python_traceback_is_named_by_its_exception() {
        let log = "\
$ python -m app.migrate
Traceback (most recent call last):
  File \"/builds/app/migrate.py\", line 3, in <module>
    import psycopg2
  File \"/builds/app/db.py\", line 9, in connect
    raise
ModuleNotFoundError: No module named 'psycopg2'
Cleaning up project directory and file based variables
ERROR: Job failed: exit code 1
";
        let b = error_block(log).expect("a block");
        assert_eq!(
            b.headline,
            "ModuleNotFoundError: No module named 'psycopg2'"
        );
        assert_eq!(b.line, 7);
        assert!(b.excerpt.iter().any(|l| l.starts_with("Traceback")));
    }

    #[test]
    fn an_oom_kill_and_a_bare_wrap_up_are_found() {
        let b = error_block("building\nbash: line 1:  4242 Killed  cargo build\n").expect("kill");
        assert!(b.headline.contains("Killed"), "{}", b.headline);
        let b = error_block("ok\n##[error]Process completed with exit code 2.\n").expect("trailer");
        assert_eq!(b.headline, "Process completed with exit code 2.");
    }

    #[test]
    fn earlier_errors_far_from_the_end_are_not_the_block() {
        let mut log = String::from("error: a retried download failed\n");
        for i in 0..30 {
            log.push_str(&format!("step {i} ok\n"));
        }
        log.push_str(
            "npm ERR! code E404\nnpm ERR! 404 Not Found - GET https://registry.npmjs.org/nope\n",
        );
        let b = error_block(&log).expect("a block");
        assert_eq!(b.headline, "npm ERR! code E404");
        assert!(!b.excerpt.iter().any(|l| l.contains("retried")));
    }

    #[test]
    fn a_log_without_errors_has_no_block_and_logging_noise_is_not_an_error() {
        assert_eq!(error_block("all good\n3 passed in 0.1s\n"), None);
        assert_eq!(error_block("INFO ready\nERRORS=0\nerrors: none\n"), None);
        assert_eq!(error_block(""), None);
    }

    #[test]
    fn the_excerpt_is_bounded() {
        let mut log = String::new();
        for i in 0..500 {
            log.push_str(&format!("error: number {i} {}\n", "x".repeat(1000)));
        }
        let b = error_block(&log).expect("a block");
        assert!(b.excerpt.len() <= MAX_LINES, "{}", b.excerpt.len());
        assert!(
            b.excerpt
                .iter()
                .all(|l| l.chars().count() <= MAX_LINE_CHARS + 1)
        );
        assert!(
            b.excerpt
                .iter()
                .any(|l| l.starts_with("… ") && l.ends_with(" lines …"))
        );
        assert!(b.excerpt.last().is_some_and(|l| l.contains("number 499")));
    }
}
