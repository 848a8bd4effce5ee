//! A tolerant, streaming JUnit XML parser.
//!
//! Real runners write many dialects: nested suites (PHPUnit), retries as `<flakyFailure>` /
//! `<rerunFailure>` (Surefire, nextest) or as repeated `<testcase>`s (go, pytest-rerunfailures),
//! declared totals that disagree with the cases, BOMs and CRLF. This parser
//!
//! - streams with quick-xml (never builds a tree of the document),
//! - counts what the `<testcase>` elements say, never the declared totals,
//! - keeps per case the outcome by the most-severe-result rule (error, failure, skipped, passed),
//! - never resolves entities: unknown `&name;` references stay literal text, DTDs are ignored,
//! - reports an unusable file as a [`ParseError`] with its byte offset (see [`line_col`]).
//!
//! It is deliberately lenient where strict XML parsers are not and real files need it: mismatched
//! end tags are tolerated, and an attribute value containing a raw `<` (jest's and
//! web-test-runner's `time="<<computed>>"`) is read as text and then ignored as a time.

use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::report::{Counts, Failure, FailureKind, Outcome, Runner, TestCase};
use crate::xml_bounds::Bounded;

/// Size bounds for the text kept per failure.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes kept of a failure's `message` attribute.
    pub message_bytes: usize,
    /// Bytes kept of a failure's text (stack trace, panic output).
    pub text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Enough for the assertion and the top frames of a stack trace; a PR comment shows less.
        Limits {
            message_bytes: 1024,
            text_bytes: 4096,
        }
    }
}

/// Why a report could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not well-formed enough to read.
    #[error("malformed XML: {message}")]
    Malformed {
        /// What the XML reader reported.
        message: String,
        /// Byte offset of the problem from the start of the input.
        offset: u64,
    },
    /// Well-formed XML whose root element is not `<testsuites>` or `<testsuite>`.
    #[error(
        "not a JUnit report: the root element is <{root}>, expected <testsuites> or <testsuite>"
    )]
    NotJunit {
        /// The root element's name.
        root: String,
        /// Byte offset of the root element.
        offset: u64,
    },
    /// The input has no root element at all.
    #[error("not a JUnit report: the file has no XML element")]
    Empty,
    /// The input is UTF-16, which Omen does not read.
    #[error("the report is UTF-16 encoded; Omen reads UTF-8 reports")]
    Utf16,
    /// Reading the input failed.
    #[error("failed to read the report")]
    Io(#[source] std::io::Error),
}

impl ParseError {
    /// The byte offset the error points at, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            ParseError::Malformed { offset, .. } | ParseError::NotJunit { offset, .. } => {
                Some(*offset)
            }
            _ => None,
        }
    }
}

/// A whole parsed report.
#[derive(Debug, Clone)]
pub struct ParsedReport {
    /// The runner that wrote it, as far as the report tells.
    pub runner: Runner,
    /// Every `<testcase>`, in document order.
    pub cases: Vec<TestCase>,
    /// Totals over `cases`.
    pub counts: Counts,
}

/// What [`parse_with`] learned about a report besides its cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The runner that wrote it, as far as the report tells.
    pub runner: Runner,
    /// Totals over the cases handed out.
    pub counts: Counts,
    /// Byte offset of the end of input when the file ends before its root element closes, between
    /// two test cases (a run that crashed mid-suite, a cut upload): the cases read are complete
    /// and count, but the report does not describe the whole run.
    pub truncated_at: Option<u64>,
}

/// Parse a whole report into memory. See [`parse_with`] to stream cases instead.
pub fn parse(reader: impl BufRead, limits: Limits) -> Result<ParsedReport, ParseError> {
    let mut cases = Vec::new();
    let summary = parse_with(reader, limits, |case, _| cases.push(case))?;
    Ok(ParsedReport {
        runner: summary.runner,
        cases,
        counts: summary.counts,
    })
}

/// Parse a report, handing each test case to `on_case` as soon as its element ends, with the
/// runner the report has named so far. That runner changes at most once, from
/// [`Runner::Generic`] to a named one, and the summary's runner is the last one handed out; a
/// caller that streams cases on must hold [`Runner::Generic`] ones until the end.
///
/// Returns the detected runner, the totals and whether the file was cut short between cases. On
/// error, cases already handed out came from a file that turned out to be unusable: callers that
/// must not keep partial data should buffer.
pub fn parse_with(
    mut input: impl BufRead,
    limits: Limits,
    mut on_case: impl FnMut(TestCase, Runner),
) -> Result<Summary, ParseError> {
    let skipped_bom = skip_bom(&mut input)?;
    // Every token is bounded before quick-xml buffers it, so memory never grows with one name,
    // message, text or comment; offsets are mapped back to the file's own.
    let mut reader = Reader::from_reader(Bounded::new(input));
    {
        let config = reader.config_mut();
        // Tolerate mismatched end tags: some generators write them, and the outcome is unambiguous.
        config.check_end_names = false;
        config.trim_text_start = false;
        config.trim_text_end = false;
    }
    let mut parser = Parser {
        limits,
        runner: Runner::Generic,
        counts: Counts::default(),
        suites: Vec::new(),
        case: None,
        capture: None,
        seen_root: false,
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    // Elements open at this point; above zero at the end of input means the file was cut.
    let mut depth = 0usize;
    // Bytes of uncaptured text skipped past quick-xml (see below): its positions lag by this.
    let mut skipped = 0u64;
    loop {
        let before = reader
            .get_ref()
            .original_offset(reader.buffer_position() + skipped);
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(err)) => {
                return Err(ParseError::Io(std::io::Error::new(
                    err.kind(),
                    err.to_string(),
                )));
            }
            Err(err) => {
                return Err(ParseError::Malformed {
                    message: err.to_string(),
                    offset: reader
                        .get_ref()
                        .original_offset(reader.error_position() + skipped)
                        + skipped_bom,
                });
            }
        };
        // After markup quick-xml reads text next. Text outside a result element is dropped
        // unread, so it is skipped here up to the next `<`, before quick-xml splits it into text
        // and reference events (captured output is most of a report's bytes).
        let markup = !matches!(event, Event::Text(_) | Event::Eof);
        match event {
            Event::Start(start) => {
                depth += 1;
                parser.start(&start, false, before + skipped_bom, &mut on_case)?
            }
            Event::Empty(start) => {
                parser.start(&start, true, before + skipped_bom, &mut on_case)?
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                parser.end(end.local_name().as_ref(), &mut on_case)
            }
            // Captured output and whitespace are dropped unread: only a result's text is decoded.
            Event::Text(text) if parser.capturing() => {
                parser.text(&String::from_utf8_lossy(&text));
            }
            Event::CData(cdata) if parser.capturing() => {
                parser.text(&String::from_utf8_lossy(&cdata));
            }
            Event::GeneralRef(reference) if parser.capturing() => {
                parser.text(&resolve_reference(&reference));
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions and DTDs carry no results.
            // A DTD is never interpreted, so external entities cannot be resolved.
            _ => {}
        }
        buf.clear();
        if markup && !parser.capturing() {
            skipped += skip_text(reader.get_mut()).map_err(ParseError::Io)?;
        }
    }
    if !parser.seen_root {
        return Err(ParseError::Empty);
    }
    let end = reader
        .get_ref()
        .original_offset(reader.buffer_position() + skipped)
        + skipped_bom;
    // A file that ends inside an open <testcase> is truncated: its last case is not trustworthy.
    if parser.case.is_some() {
        return Err(ParseError::Malformed {
            message: "the file ends inside a <testcase> element (truncated report?)".to_owned(),
            offset: end,
        });
    }
    Ok(Summary {
        runner: parser.runner,
        counts: parser.counts,
        truncated_at: (depth > 0).then_some(end),
    })
}

/// Consume `input` up to (not including) the next `<`, or to its end; how many bytes.
fn skip_text(input: &mut impl BufRead) -> std::io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(skipped);
        }
        let (n, done) = match memchr::memchr(b'<', available) {
            Some(at) => (at, true),
            None => (available.len(), false),
        };
        input.consume(n);
        skipped += n as u64;
        if done {
            return Ok(skipped);
        }
    }
}

/// Convert a byte offset into a 1-based line and column (in bytes), reading `input` up to it.
pub fn line_col(mut input: impl BufRead, offset: u64) -> std::io::Result<(u64, u64)> {
    let (mut line, mut col, mut pos) = (1u64, 1u64, 0u64);
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() || pos >= offset {
            break;
        }
        let take = usize::try_from(offset - pos)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        for &b in &chunk[..take] {
            if b == b'\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        pos += take as u64;
        input.consume(take);
    }
    Ok((line, col))
}

fn skip_bom(input: &mut impl BufRead) -> Result<u64, ParseError> {
    let head = input.fill_buf().map_err(ParseError::Io)?;
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        input.consume(3);
        return Ok(3);
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(ParseError::Utf16);
    }
    Ok(0)
}

fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> String {
    if let Ok(Some(ch)) = reference.resolve_char_ref() {
        return ch.to_string();
    }
    let name = String::from_utf8_lossy(reference);
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(text) => text.to_owned(),
        // Never resolve anything else: keep the reference as literal text.
        None => format!("&{name};"),
    }
}

/// Where captured text goes when its element ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// `<failure>` or `<error>` of the case itself.
    Final(FailureKind),
    /// `<flakyFailure>`, `<flakyError>`: a failed attempt before a pass.
    Flaky(FailureKind),
    /// `<rerunFailure>`, `<rerunError>`: a failed attempt, the case failed overall.
    Rerun(FailureKind),
}

#[derive(Debug)]
struct Capture {
    slot: Slot,
    element: Vec<u8>,
    failure: Failure,
    text: String,
    /// Depth inside `<system-out>`/`<system-err>` nested in the result element (not captured).
    skip_depth: u32,
}

impl Capture {
    fn push(&mut self, s: &str, limit: usize) {
        push_bounded(&mut self.text, s, limit);
    }
}

#[derive(Debug)]
struct CaseBuilder {
    case: TestCase,
    status_skipped: bool,
    has_skipped: bool,
    has_failure: bool,
    has_error: bool,
    has_flaky: bool,
    /// `omen.outcome` / `omen.message` properties written by pytest-omen for quarantined tests.
    reported_outcome: Option<String>,
    reported_message: Option<String>,
}

struct Parser {
    limits: Limits,
    runner: Runner,
    counts: Counts,
    /// Names and `file` attributes of the open `<testsuite>` elements.
    suites: Vec<(String, Option<String>)>,
    case: Option<CaseBuilder>,
    capture: Option<Capture>,
    seen_root: bool,
}

impl Parser {
    fn capturing(&self) -> bool {
        self.capture.as_ref().is_some_and(|c| c.skip_depth == 0)
    }

    /// Text inside a result element; everything else (captured output, whitespace) is dropped.
    fn text(&mut self, text: &str) {
        if let Some(capture) = self.capture.as_mut().filter(|c| c.skip_depth == 0) {
            capture.push(text, self.limits.text_bytes);
        }
    }

    fn start(
        &mut self,
        element: &BytesStart<'_>,
        empty: bool,
        offset: u64,
        on_case: &mut impl FnMut(TestCase, Runner),
    ) -> Result<(), ParseError> {
        let name = element.local_name();
        let name = name.as_ref();
        if !self.seen_root {
            self.seen_root = true;
            if name != b"testsuites" && name != b"testsuite" {
                return Err(ParseError::NotJunit {
                    root: String::from_utf8_lossy(name).into_owned(),
                    offset,
                });
            }
            if name == b"testsuites" && attr(element, b"name").as_deref() == Some("nextest-run") {
                self.runner = Runner::Nextest;
            }
        }
        if let Some(capture) = self.capture.as_mut() {
            // Elements nested in a result element: keep <stackTrace> text, drop captured output.
            if matches!(name, b"system-out" | b"system-err") && !empty {
                capture.skip_depth += 1;
            }
            return Ok(());
        }
        match name {
            b"testsuite" => {
                let suite_name = attr(element, b"name").unwrap_or_default();
                if suite_name == "pytest" && self.runner == Runner::Generic {
                    self.runner = Runner::Pytest;
                }
                let file = attr(element, b"file").or_else(|| attr(element, b"filepath"));
                if !empty {
                    self.suites.push((suite_name, file));
                }
            }
            b"testcase" => {
                // A <testcase> inside an unclosed <testcase> means the previous one never ended.
                self.finish_case(on_case);
                let builder = self.new_case(element);
                self.case = Some(builder);
                if empty {
                    self.finish_case(on_case);
                }
            }
            _ => {
                let Some(builder) = self.case.as_mut() else {
                    return Ok(());
                };
                if name == b"property" {
                    let key = attr(element, b"name");
                    match key.as_deref() {
                        Some("omen.outcome") => builder.reported_outcome = attr(element, b"value"),
                        Some("omen.message") => {
                            builder.reported_message = attr(element, b"value")
                                .map(|m| bounded(m, self.limits.message_bytes));
                        }
                        _ => {}
                    }
                    return Ok(());
                }
                let slot = match name {
                    b"failure" => Slot::Final(FailureKind::Failure),
                    b"error" => Slot::Final(FailureKind::Error),
                    b"flakyFailure" => Slot::Flaky(FailureKind::Failure),
                    b"flakyError" => Slot::Flaky(FailureKind::Error),
                    b"rerunFailure" => Slot::Rerun(FailureKind::Failure),
                    b"rerunError" => Slot::Rerun(FailureKind::Error),
                    b"skipped" => {
                        builder.has_skipped = true;
                        return Ok(());
                    }
                    _ => return Ok(()),
                };
                let failure = Failure {
                    kind: Some(match slot {
                        Slot::Final(k) | Slot::Flaky(k) | Slot::Rerun(k) => k,
                    }),
                    r#type: attr(element, b"type").map(|t| bounded(t, self.limits.message_bytes)),
                    message: attr(element, b"message")
                        .map(|m| bounded(m, self.limits.message_bytes)),
                    text: None,
                };
                let capture = Capture {
                    slot,
                    element: name.to_vec(),
                    failure,
                    text: String::new(),
                    skip_depth: 0,
                };
                if empty {
                    builder.record(capture);
                } else {
                    self.capture = Some(capture);
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, name: &[u8], on_case: &mut impl FnMut(TestCase, Runner)) {
        if let Some(capture) = self.capture.as_mut() {
            if matches!(name, b"system-out" | b"system-err") && capture.skip_depth > 0 {
                capture.skip_depth -= 1;
                return;
            }
            if (name == capture.element.as_slice() || name == b"testcase")
                && let (Some(capture), Some(builder)) = (self.capture.take(), self.case.as_mut())
            {
                builder.record(capture);
            }
            if name != b"testcase" {
                return;
            }
        }
        match name {
            b"testcase" => self.finish_case(on_case),
            b"testsuite" => {
                self.finish_case(on_case);
                self.suites.pop();
            }
            _ => {}
        }
    }

    fn new_case(&self, element: &BytesStart<'_>) -> CaseBuilder {
        let (mut name, mut classname, mut file, mut line, mut time, mut status) =
            (None, None, None, None, None, None);
        for attribute in element.attributes().with_checks(false).flatten() {
            let value = || attribute_value(&attribute);
            match attribute.key.local_name().as_ref() {
                b"name" => name = Some(value()),
                b"classname" => classname = Some(value()),
                b"file" | b"filepath" => file = Some(value()),
                // Read in place: only the number or the verdict is kept.
                b"line" | b"lineno" => line = attribute_str(&attribute).trim().parse::<u32>().ok(),
                b"time" => time = parse_seconds(&attribute_str(&attribute)),
                b"status" => {
                    let s = attribute_str(&attribute);
                    let s = s.trim();
                    status = Some(
                        ["disabled", "skipped", "ignored", "notrun"]
                            .iter()
                            .any(|k| s.eq_ignore_ascii_case(k)),
                    );
                }
                _ => {}
            }
        }
        let (suite, suite_file) = self
            .suites
            .last()
            .map(|(n, f)| (n.clone(), f.clone()))
            .unwrap_or_default();
        let status_skipped = status.unwrap_or(false);
        CaseBuilder {
            case: TestCase {
                suite,
                classname: classname.unwrap_or_default(),
                name: name.unwrap_or_default(),
                file: file.filter(|f| !f.trim().is_empty()).or(suite_file),
                line,
                outcome: Outcome::Passed,
                duration_secs: time,
                failure: None,
                retries: Vec::new(),
                flaky: false,
            },
            status_skipped,
            has_skipped: false,
            has_failure: false,
            has_error: false,
            has_flaky: false,
            reported_outcome: None,
            reported_message: None,
        }
    }

    fn finish_case(&mut self, on_case: &mut impl FnMut(TestCase, Runner)) {
        if let Some(capture) = self.capture.take()
            && let Some(builder) = self.case.as_mut()
        {
            builder.record(capture);
        }
        let Some(builder) = self.case.take() else {
            return;
        };
        let mut case = builder.case;
        case.outcome = if builder.has_error {
            Outcome::Error
        } else if builder.has_failure {
            Outcome::Failed
        } else if builder.has_skipped || builder.status_skipped {
            Outcome::Skipped
        } else {
            Outcome::Passed
        };
        // pytest-omen ran a quarantined test and reported its failure as an expected one; the
        // property says what really happened, and that is what Omen learns from.
        if case.outcome == Outcome::Skipped {
            let kind = match builder.reported_outcome.as_deref() {
                Some("failed") => Some((Outcome::Failed, FailureKind::Failure)),
                Some("error") => Some((Outcome::Error, FailureKind::Error)),
                _ => None,
            };
            if let Some((outcome, kind)) = kind {
                case.outcome = outcome;
                case.failure = Some(Failure {
                    kind: Some(kind),
                    r#type: None,
                    message: builder.reported_message.clone(),
                    text: None,
                });
            }
        }
        case.flaky = builder.has_flaky && !case.outcome.is_failure();
        if case.outcome == Outcome::Skipped {
            case.flaky = false;
        }
        self.counts.add(&case);
        on_case(case, self.runner);
    }
}

impl CaseBuilder {
    fn record(&mut self, mut capture: Capture) {
        let text = capture.text.trim();
        if !text.is_empty() {
            capture.failure.text = Some(text.to_owned());
        }
        match capture.slot {
            Slot::Final(kind) => {
                match kind {
                    FailureKind::Error => self.has_error = true,
                    FailureKind::Failure => self.has_failure = true,
                }
                // Keep the most severe record: the first <error>, else the first <failure>.
                let replace = match &self.case.failure {
                    None => true,
                    Some(existing) => {
                        existing.kind == Some(FailureKind::Failure) && kind == FailureKind::Error
                    }
                };
                if replace {
                    self.case.failure = Some(capture.failure);
                }
            }
            Slot::Flaky(_) => {
                self.has_flaky = true;
                self.case.retries.push(capture.failure);
            }
            Slot::Rerun(_) => self.case.retries.push(capture.failure),
        }
    }
}

fn attr(element: &BytesStart<'_>, key: &[u8]) -> Option<String> {
    element
        .attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.local_name().as_ref() == key)
        .map(|a| attribute_value(&a))
}

fn attribute_value(attribute: &quick_xml::events::attributes::Attribute<'_>) -> String {
    attribute_str(attribute).into_owned()
}

/// An attribute's text, borrowed unless it had to be unescaped.
fn attribute_str<'a>(
    attribute: &'a quick_xml::events::attributes::Attribute<'_>,
) -> std::borrow::Cow<'a, str> {
    match attribute.unescape_value() {
        Ok(value) => value,
        // An unknown entity or a stray '&': keep the raw text rather than lose the attribute.
        Err(_) => String::from_utf8_lossy(&attribute.value),
    }
}

/// Parse a `time` attribute as seconds. Accepts `1.5`, `1,234.5` (grouping commas) and `1,5`
/// (decimal comma); rejects negatives, NaN and text such as `<<computed>>`.
pub fn parse_seconds(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let value = raw.parse::<f64>().ok().or_else(|| {
        let cleaned = if raw.contains('.') {
            raw.replace(',', "")
        } else {
            raw.replace(',', ".")
        };
        cleaned.parse::<f64>().ok()
    })?;
    (value.is_finite() && value >= 0.0).then_some(value)
}

fn bounded(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut cut = limit;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn push_bounded(buf: &mut String, s: &str, limit: usize) {
    if buf.len() >= limit {
        return;
    }
    let room = limit - buf.len();
    if s.len() <= room {
        buf.push_str(s);
    } else {
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        buf.push_str(&s[..cut]);
        buf.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(xml: &str) -> ParsedReport {
        match parse(xml.as_bytes(), Limits::default()) {
            Ok(report) => report,
            Err(err) => panic!("parse failed: {err}"),
        }
    }

    #[test]
    fn most_severe_result_wins() {
        let report = check(
            r#"<testsuite name="s">
                 <testcase name="a"/>
                 <testcase name="b"><skipped/></testcase>
                 <testcase name="c"><failure message="m">trace</failure></testcase>
                 <testcase name="d"><failure/><error message="boom"/></testcase>
                 <testcase name="e" status="disabled"/>
               </testsuite>"#,
        );
        let outcomes: Vec<_> = report.cases.iter().map(|c| c.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Passed,
                Outcome::Skipped,
                Outcome::Failed,
                Outcome::Error,
                Outcome::Skipped
            ]
        );
        assert_eq!(
            report.cases[2]
                .failure
                .as_ref()
                .and_then(|f| f.text.as_deref()),
            Some("trace")
        );
        assert_eq!(
            report.cases[3]
                .failure
                .as_ref()
                .and_then(|f| f.message.as_deref()),
            Some("boom")
        );
        assert_eq!(report.counts.tests, 5);
        assert_eq!(report.counts.errors, 1);
    }

    #[test]
    fn surefire_flaky_failure_is_a_flaky_pass_with_its_attempt() {
        let report = check(
            r#"<testsuite name="s"><testcase name="t" classname="C">
                 <flakyFailure message="first" type="AssertionError">
                   <stackTrace>at C.t(C.java:3)</stackTrace><system-err>noise</system-err>
                 </flakyFailure>
               </testcase></testsuite>"#,
        );
        let case = &report.cases[0];
        assert_eq!(case.outcome, Outcome::Passed);
        assert!(case.flaky);
        assert_eq!(case.retries.len(), 1);
        assert_eq!(case.retries[0].text.as_deref(), Some("at C.t(C.java:3)"));
        assert_eq!(report.counts.flaky, 1);
    }

    #[test]
    fn nextest_rerun_failures_are_attempts_of_a_failed_case() {
        let report = check(
            r#"<testsuites name="nextest-run"><testsuite name="crate::bin/x">
                 <testcase name="m::t" classname="crate::bin/x">
                   <failure type="test failure">panicked</failure>
                   <rerunFailure type="test failure">panicked again</rerunFailure>
                 </testcase></testsuite></testsuites>"#,
        );
        assert_eq!(report.runner, Runner::Nextest);
        assert_eq!(report.cases[0].outcome, Outcome::Failed);
        assert!(!report.cases[0].flaky);
        assert_eq!(report.cases[0].retries.len(), 1);
    }

    #[test]
    fn each_case_comes_with_the_runner_named_so_far() {
        let runners = |xml: &str| {
            let mut seen = Vec::new();
            let summary = parse_with(xml.as_bytes(), Limits::default(), |c, r| {
                seen.push((c.name, r))
            })
            .unwrap();
            (seen, summary.runner)
        };
        let (seen, last) = runners(
            r#"<testsuites><testsuite name="a"><testcase name="x"/></testsuite><testsuite name="pytest"><testcase name="y"/></testsuite></testsuites>"#,
        );
        assert_eq!(
            seen,
            [("x".into(), Runner::Generic), ("y".into(), Runner::Pytest)]
        );
        assert_eq!(last, Runner::Pytest);
        let (seen, _) = runners(
            r#"<testsuites name="nextest-run"><testsuite name="b"><testcase name="z"/></testsuite></testsuites>"#,
        );
        assert_eq!(seen, [("z".into(), Runner::Nextest)]);
    }

    #[test]
    fn a_report_cut_between_cases_counts_what_was_read_and_says_it_was_cut() {
        let text = "<testsuites><testsuite name=\"s\">\n<testcase name=\"a\"/>\n<testcase name=\"b\"><failure/></testcase>\n";
        let mut cases = Vec::new();
        let summary = parse_with(text.as_bytes(), Limits::default(), |c, _| cases.push(c)).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!((summary.counts.tests, summary.counts.failures), (2, 1));
        assert_eq!(summary.truncated_at, Some(text.len() as u64));
        let whole = format!("{text}</testsuite></testsuites>");
        let summary = parse_with(whole.as_bytes(), Limits::default(), |_, _| {}).unwrap();
        assert_eq!(summary.truncated_at, None);
    }

    #[test]
    fn nested_suites_name_the_innermost_suite() {
        let report = check(
            r#"<testsuites><testsuite name="outer"><testsuite name="inner" file="t/a.php">
               <testcase name="x"/></testsuite><testcase name="y"/></testsuite></testsuites>"#,
        );
        assert_eq!(report.cases[0].suite, "inner");
        assert_eq!(report.cases[0].file.as_deref(), Some("t/a.php"));
        assert_eq!(report.cases[1].suite, "outer");
    }

    #[test]
    fn bom_crlf_entities_and_computed_time() {
        let xml = "\u{feff}<?xml version=\"1.0\"?>\r\n<testsuite name=\"s\">\r\n<testcase name=\"a &amp; b\" time=\"<<computed>>\"><failure message=\"x &lt; y\">1 &#60; 2 &custom;</failure></testcase></testsuite>";
        let report = check(xml);
        let case = &report.cases[0];
        assert_eq!(case.name, "a & b");
        assert_eq!(case.duration_secs, None);
        let failure = case
            .failure
            .as_ref()
            .map(|f| (f.message.as_deref(), f.text.as_deref()));
        assert_eq!(failure, Some((Some("x < y"), Some("1 < 2 &custom;"))));
    }

    #[test]
    fn not_junit_and_malformed_are_errors_with_offsets() {
        let err = parse(&b"<html><body/></html>"[..], Limits::default()).err();
        assert!(
            matches!(err, Some(ParseError::NotJunit { ref root, offset: 0 }) if root == "html")
        );
        let xml = b"<testsuite>\n<testcase name=\"a\"><failure><![CDATA[oops";
        let err = parse(&xml[..], Limits::default()).err();
        let offset = err.as_ref().and_then(ParseError::offset);
        assert!(matches!(err, Some(ParseError::Malformed { .. })), "{err:?}");
        let (line, _) = line_col(&xml[..], offset.unwrap_or(0)).unwrap_or((0, 0));
        assert_eq!(line, 2);
        assert!(matches!(
            parse(&b""[..], Limits::default()),
            Err(ParseError::Empty)
        ));
    }

    #[test]
    fn failure_text_is_bounded_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let xml = format!(
            r#"<testsuite><testcase name="a"><failure>{long}</failure></testcase></testsuite>"#
        );
        let report = check(&xml);
        let text = report.cases[0]
            .failure
            .as_ref()
            .and_then(|f| f.text.clone())
            .unwrap_or_default();
        assert!(text.len() <= Limits::default().text_bytes + '…'.len_utf8());
        assert!(text.ends_with('…'));
    }

    #[test]
    fn times_in_the_wild() {
        assert_eq!(parse_seconds("1.5"), Some(1.5));
        assert_eq!(parse_seconds("1,234.5"), Some(1234.5));
        assert_eq!(parse_seconds("0,25"), Some(0.25));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("NaN"), None);
        assert_eq!(parse_seconds("<<computed>>"), None);
    }

    #[test]
    fn pytest_omen_properties_restore_the_real_outcome() {
        let report = check(
            r#"<testsuite name="pytest"><testcase classname="t" name="q">
                 <properties><property name="omen.quarantined" value="run-ignore"/>
                   <property name="omen.outcome" value="failed"/><property name="omen.message" value="timeout"/></properties>
                 <skipped type="pytest.xfail" message="quarantined by omen"/></testcase>
               <testcase classname="t" name="p"><properties><property name="omen.outcome" value="passed"/></properties></testcase>
               </testsuite>"#,
        );
        assert_eq!(report.cases[0].outcome, Outcome::Failed);
        assert_eq!(
            report.cases[0]
                .failure
                .as_ref()
                .and_then(|f| f.message.as_deref()),
            Some("timeout")
        );
        assert_eq!(report.cases[1].outcome, Outcome::Passed);
        assert_eq!(report.counts.failures, 1);
    }

    #[test]
    fn pytest_suite_is_detected() {
        let report = check(
            r#"<testsuites><testsuite name="pytest"><testcase classname="tests.test_a" name="test_x[1]"/></testsuite></testsuites>"#,
        );
        assert_eq!(report.runner, Runner::Pytest);
    }
}
