//! Failure signatures and grouping: "30 failures, 1 cause".
//!
//! - [`mask`] turns a message into tokens in which what varies between occurrences of one cause
//!   (numbers, hex and addresses, UUIDs, IPs and ports, temp paths, quoted values) is a
//!   placeholder, so the same cause reads the same in every run.
//! - [`Signature`] is a failure's stable identity across runs: the exception type, the top
//!   in-app frame (module and function, never a line number) and the masked first line, hashed.
//!   [`SIGNATURE_VERSION`] changes whenever that recipe does.
//! - [`Grouper`] groups lines or failures within a run, Drain-style: a fixed-depth tree over the
//!   token count and the first tokens narrows the candidates, and a line joins the most similar
//!   group when at least [`GroupConfig::similarity`] of its tokens agree with the group's
//!   template; positions that disagree become wildcards. Groups whose templates end up
//!   near-identical are merged at the end.
//! - [`headline`] is a group's common text: positions where all members agree are kept as they
//!   are, others show their common prefix and suffix around `<*>`
//!   (`127.0.0.1:5432`, `127.0.0.1:6379` → `127.0.0.1:<*>`).
//!
//! Design and measured accuracy: `docs/design/failure-grouping.md`.

use std::collections::{HashMap, HashSet};

use crate::hash::Fnv1a64;

mod category;
pub mod log;
pub mod systemic;

pub use category::{
    Categorized, Category, Classifier, Decided, LEARNED_MIN_CONFIDENCE, LabelledText, NaiveBayes,
    RULES, Rule, UserRule, categorize,
};

/// The version of the signature recipe; stored with every signature.
pub const SIGNATURE_VERSION: u32 = 2;

/// The wildcard of a template.
pub const WILDCARD: &str = "<*>";

/// Mask `text` (one line; a caller passes the first line of a message) into tokens.
///
/// Tokens are split on whitespace. Inside each token, a UUID becomes `<UUID>`, an IPv4 address
/// `<IP>`, a hex number or a long hex string (7+ hex digits with a digit and a letter) `<HEX>`,
/// and any other run of digits `<NUM>` (a decimal point and a unit stay with the number: `1.5s`
/// → `<NUM>`). A quoted value (`'…'`, `"…"`, within the line) becomes `<STR>`, and a path under a
/// temporary directory `<PATH>`.
pub fn mask(text: &str) -> Vec<String> {
    let unquoted = mask_quotes(text);
    unquoted.split_whitespace().map(mask_token).collect()
}

/// `'…'` and `"…"` spans become `<STR>`. A quote only opens after a non-alphanumeric character
/// (so `doesn't` stays), and only when it closes on the same line within 200 characters.
fn mask_quotes(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\'', '"']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let opens = (c == b'\'' || c == b'"')
            && !text[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
            && i + 1 < b.len();
        if opens {
            // The closing quote within 200 characters, not past a line end.
            let close = text[i + 1..]
                .char_indices()
                .take(200)
                .find(|&(_, d)| d == c as char || d == '\n')
                .filter(|&(_, d)| d == c as char);
            if let Some((len, _)) = close {
                out.push_str(&text[copied..i]);
                out.push_str("<STR>");
                i += len + 2;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

const TEMP_PREFIXES: [&str; 5] = [
    "/tmp/",
    "/var/folders/",
    "/private/var/folders/",
    "/private/tmp/",
    "/dev/shm/",
];

fn mask_token(token: &str) -> String {
    // A temp path, with whatever punctuation wraps it.
    let core = token.trim_matches(|c: char| "()[]{},;<>".contains(c));
    if TEMP_PREFIXES.iter().any(|p| core.starts_with(p)) || core.contains("\\Temp\\") {
        return token.replacen(core, "<PATH>", 1);
    }
    if !token.bytes().any(|b| b.is_ascii_digit()) {
        return token.to_owned();
    }
    let b = token.as_bytes();
    let mut out = String::with_capacity(token.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(n) = uuid_at(b, i) {
            out.push_str("<UUID>");
            i += n;
        } else if let Some(n) = ipv4_at(b, i) {
            out.push_str("<IP>");
            i += n;
        } else if let Some(n) = hex_at(b, i) {
            out.push_str("<HEX>");
            i += n;
        } else if b[i].is_ascii_digit() {
            // A number, with a fraction and a short unit that ends the word (`1.5s`, `300ms`,
            // `12KiB`); letters before it stay (`blk_<NUM>`, `test<NUM>`).
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_digit()
                    || (b[j] == b'.' && j + 1 < b.len() && b[j + 1].is_ascii_digit()))
            {
                j += 1;
            }
            let unit = b[j..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            if unit <= 3 && boundary(b, j + unit) {
                j += unit;
            }
            out.push_str("<NUM>");
            i = j;
        } else {
            let c = token[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn boundary(b: &[u8], i: usize) -> bool {
    i >= b.len() || !b[i].is_ascii_alphanumeric()
}

fn uuid_at(b: &[u8], i: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let mut j = i;
    for (k, n) in GROUPS.iter().enumerate() {
        if j + n > b.len() || !b[j..j + n].iter().all(|&c| is_hex(c)) {
            return None;
        }
        j += n;
        if k < 4 {
            if b.get(j) != Some(&b'-') {
                return None;
            }
            j += 1;
        }
    }
    boundary(b, j).then_some(j - i)
}

fn ipv4_at(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.') {
        return None;
    }
    let mut j = i;
    for k in 0..4 {
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() && j - start < 3 {
            j += 1;
        }
        if j == start {
            return None;
        }
        if k < 3 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    (j >= b.len() || !(b[j].is_ascii_alphanumeric() || b[j] == b'.')).then_some(j - i)
}

fn hex_at(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        let n = b[i + 2..].iter().take_while(|&&c| is_hex(c)).count();
        return (n > 0 && boundary(b, i + 2 + n)).then_some(n + 2);
    }
    let n = b[i..].iter().take_while(|&&c| is_hex(c)).count();
    let run = &b[i..i + n];
    let mixed = run.iter().any(u8::is_ascii_digit) && run.iter().any(u8::is_ascii_alphabetic);
    (n >= 7 && mixed && boundary(b, i + n)).then_some(n)
}

/// A failure as the grouping reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailureText<'a> {
    /// The exception or failure type (JUnit's `type` attribute), when given.
    pub kind: Option<&'a str>,
    /// The message (its first line is what is grouped).
    pub message: Option<&'a str>,
    /// The stack trace or output, for the top in-app frame.
    pub trace: Option<&'a str>,
}

impl FailureText<'_> {
    /// The line that names the failure: the first non-empty line of the message, else of the
    /// trace — except where that line only introduces the cause. A Python traceback
    /// (`Traceback (most recent call last):`) names its exception in its last unindented line,
    /// and a Rust panic (`thread 'main' panicked at src/lib.rs:4:5:`, Rust 1.73 and later) in
    /// the line after.
    pub fn first_line(&self) -> &str {
        let Some(text) = [self.message, self.trace]
            .into_iter()
            .flatten()
            .find(|t| !t.trim().is_empty())
        else {
            return "";
        };
        let mut lines = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty());
        let first = lines.next().unwrap_or("").trim();
        if first.starts_with("Traceback (most recent call last):") {
            // The exception: the last line that is not a frame (frames are indented).
            if let Some(exception) = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with(char::is_whitespace))
                .filter(|l| !l.starts_with("Traceback"))
            {
                return exception.trim();
            }
        } else if first.contains(" panicked at ")
            && first.ends_with(':')
            && let Some(cause) = lines.next()
        {
            return cause.trim();
        }
        first
    }
}

/// How often a cause (its [`Signature`]) was seen in runs other than the one being reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Other runs that failed with it (0: new).
    pub runs: u64,
    /// When it was first seen (unix seconds).
    pub since: i64,
    /// Some of those other runs were on the default branch.
    pub on_default: bool,
}

/// A failure's identity across runs (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// [`SIGNATURE_VERSION`] when it was made.
    pub version: u32,
    /// The exception type, when known.
    pub kind: Option<String>,
    /// The top in-app frame, `module::function` or `file::function`, never a line number.
    pub frame: Option<String>,
    /// The masked first line.
    pub masked: String,
    /// FNV-1a of version, type, frame and masked line.
    pub hash: u64,
}

impl Signature {
    /// The hash folded to 32 bits, never 0 (0 is an empty slot): what a test's history keeps.
    pub fn short(&self) -> u32 {
        match (self.hash ^ (self.hash >> 32)) as u32 {
            0 => 1,
            s => s,
        }
    }

    /// The signature of `f`.
    pub fn of(f: &FailureText<'_>) -> Signature {
        let masked = mask(f.first_line()).join(" ");
        let kind = f
            .kind
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        let frame = f.trace.and_then(top_frame);
        let mut h = Fnv1a64::default().update(&SIGNATURE_VERSION.to_le_bytes());
        for part in [kind.as_deref(), frame.as_deref(), Some(masked.as_str())] {
            h = h.update(part.unwrap_or("").as_bytes()).update(&[0]);
        }
        Signature {
            version: SIGNATURE_VERSION,
            kind,
            frame,
            masked,
            hash: h.finish(),
        }
    }
}

/// Path parts that mark a frame as the runtime's or a library's, not the application's.
const LIBRARY_MARKS: [&str; 12] = [
    "site-packages",
    "dist-packages",
    "/lib/python",
    "node_modules",
    "/rustc/",
    "/.cargo/registry/",
    "/usr/lib/",
    "<frozen",
    "_pytest",
    "unittest/",
    "/go/src/runtime/",
    "/go/pkg/mod/",
];

/// [`LIBRARY_MARKS`] as searchers, built once.
fn is_library(path: &str) -> bool {
    static FINDERS: std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>> =
        std::sync::LazyLock::new(|| {
            LIBRARY_MARKS
                .iter()
                .map(|m| memchr::memmem::Finder::new(m.as_bytes()))
                .collect()
        });
    FINDERS.iter().any(|f| f.find(path.as_bytes()).is_some())
}

/// Java and Kotlin packages of the runtime and the test frameworks.
const LIBRARY_PACKAGES: [&str; 9] = [
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "kotlin.",
    "org.junit.",
    "junit.",
    "org.apache.maven.",
    "org.gradle.",
];

/// The innermost frame of application code in `trace`, as `module::function` (no line number).
/// Python tracebacks list the innermost frame last; Java, JavaScript and Go first; a Rust panic
/// names its place in its first line.
pub fn top_frame(trace: &str) -> Option<String> {
    let mut python = None;
    for line in trace.lines().map(str::trim) {
        // Python: File "/app/pkg/db.py", line 42, in connect
        if let Some(rest) = line.strip_prefix("File \"")
            && let Some((path, tail)) = rest.split_once('"')
            && let Some(func) = tail.rsplit_once(" in ").map(|(_, f)| f.trim())
        {
            if !is_library(path) {
                python = Some((path, func));
            }
            continue;
        }
        // Java: at com.acme.Db.connect(Db.java:42)
        if let Some(rest) = line.strip_prefix("at ")
            && let Some((call, place)) = rest.split_once('(')
        {
            let call = call.trim();
            let place = place.trim_end_matches(')');
            let java_place = place == "Native Method"
                || place == "Unknown Source"
                || [".java:", ".kt:", ".scala:", ".groovy:"]
                    .iter()
                    .any(|ext| place.contains(ext) && !place.contains('/'));
            if java_place {
                if !LIBRARY_PACKAGES.iter().any(|p| call.starts_with(p)) {
                    let (class, method) = call.rsplit_once('.').unwrap_or((call, ""));
                    return Some(format!("{class}::{method}"));
                }
                continue;
            }
            // JavaScript: at connect (/app/src/db.js:10:5)
            if !is_library(place) && !place.starts_with("node:") {
                let file = place.split(':').next().unwrap_or(place);
                return Some(format!("{}::{}", module_of(file), call));
            }
            continue;
        }
        // Rust: thread 'x' panicked at src/db.rs:42:5:
        if let Some((_, place)) = line.split_once("panicked at ") {
            let file = place.split(':').next().unwrap_or(place).trim();
            if !file.is_empty() && !is_library(file) {
                return Some(module_of(file));
            }
        }
    }
    python.map(|(path, func)| format!("{}::{func}", module_of(path)))
}

/// A source path as a module: without directories above the project's own (best effort: the
/// last two components) and without the extension.
fn module_of(path: &str) -> String {
    let mut parts = path.rsplit(['/', '\\']).filter(|p| !p.is_empty());
    let last = parts.next().unwrap_or("");
    let mut module = match parts.next() {
        Some(dir) => format!("{dir}/{last}"),
        None => last.to_owned(),
    };
    if let Some(dot) = module.rfind('.')
        && module[dot..].len() <= 4
    {
        module.truncate(dot);
    }
    module
}

/// How [`Grouper`] groups. One configuration for all text: Omen never tunes it per system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupConfig {
    /// Share of a line's tokens that must agree with a group's template to join it.
    pub similarity: f64,
    /// Leading tokens the tree branches on (after the token count).
    pub depth: usize,
    /// Children a tree node keeps before further distinct tokens share a wildcard branch.
    pub max_children: usize,
    /// Groups of one length whose templates agree on at least this share of positions are
    /// merged at the end.
    pub merge_similarity: f64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            similarity: 0.5,
            depth: 2,
            max_children: 100,
            merge_similarity: 0.85,
        }
    }
}

/// One group: its template and its members' indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The masked template; `<*>` where members disagree.
    pub template: Vec<String>,
    /// Indices of the lines added, in order.
    pub members: Vec<usize>,
}

/// Drain-style online grouping (see the module docs).
#[derive(Debug, Default)]
pub struct Grouper {
    config: GroupConfig,
    groups: Vec<Group>,
    /// (token count, branch tokens) → groups.
    leaves: HashMap<(usize, Vec<String>), Vec<usize>>,
    /// The branch tokens under each tree node: (token count, path so far) → tokens.
    children: HashMap<(usize, Vec<String>), HashSet<String>>,
    added: usize,
}

impl Grouper {
    /// A grouper with `config`.
    pub fn new(config: GroupConfig) -> Grouper {
        Grouper {
            config,
            ..Grouper::default()
        }
    }

    /// Add one line's masked tokens; its index is the number of lines added before it.
    /// Returns the group it joined.
    pub fn add(&mut self, tokens: Vec<String>) -> usize {
        let index = self.added;
        self.added += 1;
        let key = self.branch(&tokens);
        let candidates = self.leaves.entry(key).or_default();
        let mut best: Option<(usize, f64, usize)> = None;
        for &g in candidates.iter() {
            let (sim, wild) = similarity(&self.groups[g].template, &tokens);
            let better = match best {
                None => true,
                Some((_, s, w)) => sim > s || (sim == s && wild > w),
            };
            if sim >= self.config.similarity && better {
                best = Some((g, sim, wild));
            }
        }
        match best {
            Some((g, _, _)) => {
                let group = &mut self.groups[g];
                for (t, new) in group.template.iter_mut().zip(&tokens) {
                    if t != new && t != WILDCARD {
                        *t = WILDCARD.to_owned();
                    }
                }
                group.members.push(index);
                g
            }
            None => {
                let g = self.groups.len();
                candidates.push(g);
                self.groups.push(Group {
                    template: tokens,
                    members: vec![index],
                });
                g
            }
        }
    }

    /// The tree path of `tokens`: the token count and the first `depth` tokens, where a token
    /// holding a placeholder, or one past a node's child limit, takes the wildcard branch.
    fn branch(&mut self, tokens: &[String]) -> (usize, Vec<String>) {
        let mut path = Vec::with_capacity(self.config.depth);
        for t in tokens.iter().take(self.config.depth) {
            let variable = t.contains('<') && t.contains('>');
            let step = if variable {
                WILDCARD.to_owned()
            } else {
                let seen = self
                    .children
                    .entry((tokens.len(), path.clone()))
                    .or_default();
                if seen.contains(t) {
                    t.clone()
                } else if seen.len() < self.config.max_children {
                    seen.insert(t.clone());
                    t.clone()
                } else {
                    WILDCARD.to_owned()
                }
            };
            path.push(step);
        }
        (tokens.len(), path)
    }

    /// The groups, with near-identical templates of one length merged (the member lists of a
    /// merge are joined in order). Every line added is in exactly one group.
    pub fn finish(self) -> Vec<Group> {
        let mut groups = self.groups;
        let threshold = self.config.merge_similarity;
        // Stable order: by first member.
        groups.sort_by_key(|g| g.members.first().copied().unwrap_or(usize::MAX));
        let mut merged: Vec<Group> = Vec::with_capacity(groups.len());
        // Merge candidates share a length and a first token: never across the tree's first
        // branch, so one message raised in two places (the frame leads a failure's tokens)
        // stays two causes.
        let mut buckets: HashMap<(usize, Option<String>), Vec<usize>> = HashMap::new();
        'next: for g in groups {
            let bucket = buckets
                .entry((g.template.len(), g.template.first().cloned()))
                .or_default();
            for &k in bucket.iter() {
                let m = &mut merged[k];
                let agree = m
                    .template
                    .iter()
                    .zip(&g.template)
                    .filter(|(a, b)| a == b)
                    .count();
                if agree as f64 >= threshold * m.template.len() as f64 {
                    for (t, o) in m.template.iter_mut().zip(&g.template) {
                        if t != o {
                            *t = WILDCARD.to_owned();
                        }
                    }
                    m.members.extend(g.members);
                    m.members.sort_unstable();
                    continue 'next;
                }
            }
            bucket.push(merged.len());
            merged.push(g);
        }
        merged
    }
}

/// Drain's similarity: the share of positions where the template's token equals the line's
/// (wildcards never count), and the number of wildcards (a tie-breaker).
fn similarity(template: &[String], tokens: &[String]) -> (f64, usize) {
    if template.is_empty() {
        return (1.0, 0);
    }
    let mut same = 0;
    let mut wild = 0;
    for (t, x) in template.iter().zip(tokens) {
        if t == WILDCARD {
            wild += 1;
        } else if t == x {
            same += 1;
        }
    }
    (same as f64 / template.len() as f64, wild)
}

/// Group `lines` (each masked with [`mask`]) with `config`.
pub fn group_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    config: GroupConfig,
) -> Vec<Group> {
    let mut g = Grouper::new(config);
    for line in lines {
        g.add(mask(line));
    }
    g.finish()
}

impl Signature {
    /// The tokens a failure is grouped by: its top in-app frame (when there is one) before the
    /// masked first line, so one message raised in two places is two causes.
    pub fn tokens(&self) -> Vec<String> {
        let mut tokens = Vec::with_capacity(8);
        if let Some(frame) = &self.frame {
            tokens.push(format!("@{frame}"));
        }
        tokens.extend(
            self.masked
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        );
        tokens
    }
}

/// A group's headline from its members' raw first lines: where every member has the same token
/// it is kept; elsewhere the members' common prefix and suffix are kept around `<*>`. Members
/// whose token count differs from the first member's are ignored (they were merged as similar).
pub fn headline<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut iter = lines.into_iter();
    let Some(first) = iter.next() else {
        return String::new();
    };
    let mut columns: Vec<Vec<&str>> = first.split_whitespace().map(|t| vec![t]).collect();
    for line in iter {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() != columns.len() {
            continue;
        }
        for (c, t) in columns.iter_mut().zip(tokens) {
            c.push(t);
        }
    }
    columns
        .iter()
        .map(|c| common_form(c))
        .collect::<Vec<_>>()
        .join(" ")
}

fn common_form(values: &[&str]) -> String {
    let first = values[0];
    if values.iter().all(|v| *v == first) {
        return first.to_owned();
    }
    let prefix = values.iter().skip(1).fold(first.len(), |n, v| {
        first
            .char_indices()
            .zip(v.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| (i + a.len_utf8()).min(n))
    });
    let mut pre = &first[..prefix];
    // Keep whole numbers out of the prefix: `5432` and `5433` share `543`, which says nothing.
    while pre.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        pre = &pre[..pre.len() - 1];
    }
    let rest: Vec<&str> = values
        .iter()
        .map(|v| &v[pre.len().min(v.len())..])
        .collect();
    let suffix = rest.iter().skip(1).fold(rest[0].len(), |n, v| {
        rest[0]
            .chars()
            .rev()
            .zip(v.chars().rev())
            .take_while(|(a, b)| a == b)
            .map(|(a, _)| a.len_utf8())
            .sum::<usize>()
            .min(n)
    });
    let mut suf = &rest[0][rest[0].len() - suffix..];
    while suf.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        suf = &suf[1..];
    }
    format!("{pre}{WILDCARD}{suf}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> String {
        mask(text).join(" ")
    }

    #[test]
    fn the_line_that_names_the_failure_skips_a_traceback_header_and_a_panic_header() {
        let text = |message: &'static str| FailureText {
            kind: None,
            message: Some(message),
            trace: None,
        };
        assert_eq!(
            text("Traceback (most recent call last):\n  File \"t.py\", line 3, in test\n    f()\nValueError: bad 3\n").first_line(),
            "ValueError: bad 3"
        );
        assert_eq!(
            text("thread 'main' (42) panicked at src/lib.rs:4:5:\nindex out of bounds: the len is 3 but the index is 9\nnote: run with `RUST_BACKTRACE=1`").first_line(),
            "index out of bounds: the len is 3 but the index is 9"
        );
        // Older panics name the cause in their first line; a bare header stays.
        assert_eq!(
            text("thread 'main' panicked at 'boom', src/main.rs:2:5").first_line(),
            "thread 'main' panicked at 'boom', src/main.rs:2:5"
        );
        assert_eq!(
            text("Traceback (most recent call last):").first_line(),
            "Traceback (most recent call last):"
        );
        let trace_only = FailureText {
            kind: None,
            message: Some("  "),
            trace: Some("\n  assert 3 == 4\n"),
        };
        assert_eq!(trace_only.first_line(), "assert 3 == 4");
    }

    #[test]
    fn masking_hides_what_varies_and_keeps_what_does_not() {
        assert_eq!(
            m("ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:5432"),
            "ConnectionRefusedError: [Errno <NUM>] Connection refused: <IP>:<NUM>"
        );
        assert_eq!(
            m("request 3f2a9c1e-0b6d-4c1a-9e2f-7d8c6b5a4f3e took 1.52s at 0x7ffd5e8c"),
            "request <UUID> took <NUM> at <HEX>"
        );
        assert_eq!(m("KeyError: 'user_id'"), "KeyError: <STR>");
        assert_eq!(m("it doesn't work"), "it doesn't work");
        // Quotes beside and inside multi-byte text.
        assert_eq!(
            m("naïve: 'ü' and \"€ x\" café's"),
            "naïve: <STR> and <STR> café's"
        );
        assert_eq!(m("unclosed 'é"), "unclosed 'é");
        assert_eq!(
            m("cannot open /tmp/pytest-of-ci/pytest-3/test_x0/data.db"),
            "cannot open <PATH>"
        );
        assert_eq!(
            m("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 failed"),
            "commit <HEX> failed"
        );
        assert_eq!(
            m("at 2026-10-02T12:00:00Z"),
            "at <NUM>-<NUM>-<NUM>T<NUM>:<NUM>:<NUM>"
        );
        assert_eq!(
            m("test3 on x86_64 took 300ms"),
            "test<NUM> on x<NUM>_<NUM> took <NUM>"
        );
    }

    #[test]
    fn the_top_in_app_frame_skips_libraries_and_keeps_no_line_number() {
        let py = "Traceback (most recent call last):\n  File \"/app/tests/test_db.py\", line 12, in test_query\n    db.query()\n  File \"/app/app/db.py\", line 42, in connect\n    sock.connect(addr)\n  File \"/usr/lib/python3.11/socket.py\", line 9, in connect\nConnectionRefusedError: boom";
        assert_eq!(top_frame(py).as_deref(), Some("app/db::connect"));
        let java = "java.lang.AssertionError: x\n\tat org.junit.Assert.fail(Assert.java:89)\n\tat com.acme.db.Pool.take(Pool.java:42)\n\tat com.acme.db.PoolTest.t(PoolTest.java:7)";
        assert_eq!(top_frame(java).as_deref(), Some("com.acme.db.Pool::take"));
        let rust = "thread 'db::tests::t' panicked at src/db.rs:42:5:\nassertion failed";
        assert_eq!(top_frame(rust).as_deref(), Some("src/db"));
        let js = "Error: x\n    at Object.<anonymous> (node_modules/jest/x.js:1:1)\n    at connect (/app/src/db.js:10:5)";
        assert_eq!(top_frame(js).as_deref(), Some("src/db::connect"));
        // Line numbers never reach the signature.
        let moved = py.replace("line 42", "line 57");
        assert_eq!(
            Signature::of(&FailureText {
                message: Some("boom 1"),
                trace: Some(py),
                kind: None
            })
            .hash,
            Signature::of(&FailureText {
                message: Some("boom 2"),
                trace: Some(&moved),
                kind: None
            })
            .hash
        );
    }

    #[test]
    fn thirty_connection_failures_are_one_group_with_the_common_text() {
        let lines: Vec<String> = (0..30)
            .map(|i| {
                format!(
                    "ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:{}",
                    5400 + i
                )
            })
            .chain([
                "AssertionError: assert 3 == 4".to_owned(),
                "AssertionError: assert 'a' in ['b']".to_owned(),
            ])
            .collect();
        let groups = group_lines(lines.iter().map(String::as_str), GroupConfig::default());
        // The two assertions differ in what they compare: two causes.
        assert_eq!(groups.len(), 3, "{groups:?}");
        assert_eq!(groups[0].members, (0..30).collect::<Vec<_>>());
        let head = headline(groups[0].members.iter().map(|&i| lines[i].as_str()));
        assert_eq!(
            head,
            "ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:<*>"
        );
        assert_eq!(groups[1].members, vec![30]);
        assert_eq!(groups[2].members, vec![31]);
    }

    #[test]
    fn the_rule_base_names_the_kind_of_trouble() {
        let cat = |kind: Option<&str>, message: &str| {
            categorize(&FailureText {
                kind,
                message: Some(message),
                trace: None,
            })
            .map(|c| (c.category, c.reason.as_str().to_owned()))
        };

        assert_eq!(
            cat(
                None,
                "ConnectionRefusedError: [Errno 111] Connection refused"
            ),
            Some((
                Category::Infrastructure,
                "connection refused or reset".to_owned()
            ))
        );
        assert_eq!(
            cat(
                None,
                "socket.gaierror: [Errno -2] Name or service not known"
            ),
            Some((Category::Infrastructure, "DNS".to_owned()))
        );
        assert_eq!(
            cat(Some("AssertionError"), "assert 3 == 4"),
            Some((Category::Test, "assertion".to_owned()))
        );
        assert_eq!(
            cat(None, "ModuleNotFoundError: No module named 'requests'"),
            Some((Category::Dependency, "missing module".to_owned()))
        );
        assert_eq!(
            cat(
                None,
                "PermissionError: [Errno 13] Permission denied: '/etc/x'"
            ),
            Some((Category::Security, "permission denied".to_owned()))
        );
        assert_eq!(
            cat(None, "thread 'main' panicked at src/lib.rs:3:5"),
            Some((Category::Application, "panic".to_owned()))
        );
        assert_eq!(
            cat(
                None,
                "ssl.SSLCertVerificationError: certificate verify failed"
            ),
            Some((Category::Security, "certificate or TLS".to_owned()))
        );
        // A module's name is not the trouble it is named after.
        assert_eq!(
            cat(
                None,
                "ModuleNotFoundError: No module named 'timeout_decorator'"
            ),
            Some((Category::Dependency, "missing module".to_owned()))
        );
        assert_eq!(
            cat(Some("TimeoutError"), "the payment service did not answer"),
            Some((Category::Infrastructure, "timeout".to_owned()))
        );
        assert_eq!(cat(None, "it went sideways"), None);
    }

    #[test]
    fn every_line_is_in_exactly_one_group() {
        let lines: Vec<String> = (0..500)
            .map(|i| format!("event {} from host{} {}", i % 7, i % 13, "x".repeat(i % 5)))
            .collect();
        let groups = group_lines(lines.iter().map(String::as_str), GroupConfig::default());
        let mut seen: Vec<usize> = groups.iter().flat_map(|g| g.members.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
    }
}
