//! What one test report says: test cases, their outcomes and retries, and per-file counts.

/// The result of one `<testcase>` element, by the most-severe-result rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Ran and passed (possibly after failed retries, see [`TestCase::retries`]).
    Passed,
    /// Skipped, disabled or ignored.
    Skipped,
    /// An assertion failed (`<failure>`).
    Failed,
    /// The test errored outside its assertions (`<error>`).
    Error,
}

impl Outcome {
    /// True for [`Outcome::Failed`] and [`Outcome::Error`].
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Error)
    }

    /// The lowercase name used in every stable format.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
        }
    }
}

/// Whether a failure record came from `<failure>` or `<error>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// `<failure>`, `<flakyFailure>`, `<rerunFailure>`.
    Failure,
    /// `<error>`, `<flakyError>`, `<rerunError>`.
    Error,
}

/// A failure's details, bounded in size (see [`crate::junit::Limits`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// `Some(kind)`; `None` only for [`Failure::default`].
    pub kind: Option<FailureKind>,
    /// The `type` attribute (exception class, "test failure", ...).
    pub r#type: Option<String>,
    /// The `message` attribute.
    pub message: Option<String>,
    /// The first part of the element's text (stack trace, panic output).
    pub text: Option<String>,
}

impl Failure {
    /// The failure as the grouping and the signature read it.
    pub fn as_text(&self) -> crate::failure::FailureText<'_> {
        crate::failure::FailureText {
            kind: self.r#type.as_deref(),
            message: self.message.as_deref(),
            trace: self.text.as_deref(),
        }
    }

    /// The message if there is one, else the first non-empty line of the text.
    pub fn headline(&self) -> Option<&str> {
        self.message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .or_else(|| {
                self.text
                    .as_deref()
                    .and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()))
            })
    }
}

/// Which test runner wrote a report; decides the runner-native selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runner {
    /// pytest (`<testsuite name="pytest">` or `.py` files).
    Pytest,
    /// cargo-nextest (`<testsuites name="nextest-run">`).
    Nextest,
    /// Anything else: Surefire, jest, go, PHPUnit, mocha, Gradle, ...
    Generic,
}

impl Runner {
    /// The lowercase name used in every stable format.
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Pytest => "pytest",
            Runner::Nextest => "nextest",
            Runner::Generic => "junit",
        }
    }

    /// Inverse of [`Runner::as_str`]; unknown names are [`Runner::Generic`].
    pub fn from_name(name: &str) -> Runner {
        match name {
            "pytest" => Runner::Pytest,
            "nextest" => Runner::Nextest,
            _ => Runner::Generic,
        }
    }
}

/// One `<testcase>` element.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// Name of the innermost enclosing `<testsuite>` (empty if none).
    pub suite: String,
    /// The `classname` attribute (empty if absent).
    pub classname: String,
    /// The `name` attribute.
    pub name: String,
    /// The `file` attribute of the case, or of its suite.
    pub file: Option<String>,
    /// The `line` attribute.
    pub line: Option<u32>,
    /// The outcome by the most-severe-result rule.
    pub outcome: Outcome,
    /// Duration in seconds, when the `time` attribute is a usable number.
    pub duration_secs: Option<f64>,
    /// The final `<failure>` or `<error>`, when the outcome is a failure.
    pub failure: Option<Failure>,
    /// Failed attempts recorded inside this case (`<flakyFailure>`, `<rerunFailure>`, ...).
    pub retries: Vec<Failure>,
    /// True when a failed attempt was followed by a pass inside this case (Surefire/nextest flaky).
    pub flaky: bool,
}

/// Totals for one report, counted per `<testcase>` element.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every `<testcase>` element.
    pub tests: u64,
    /// Cases that passed (including flaky ones).
    pub passed: u64,
    /// Cases with a `<failure>` and no `<error>`.
    pub failures: u64,
    /// Cases with an `<error>`.
    pub errors: u64,
    /// Skipped, disabled or ignored cases.
    pub skipped: u64,
    /// Cases that passed after failed attempts inside the same element.
    pub flaky: u64,
}

impl Counts {
    /// Count one case.
    pub fn add(&mut self, case: &TestCase) {
        self.tests += 1;
        match case.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed => self.failures += 1,
            Outcome::Error => self.errors += 1,
        }
        if case.flaky {
            self.flaky += 1;
        }
    }

    /// Add another set of totals.
    pub fn merge(&mut self, other: &Counts) {
        self.tests += other.tests;
        self.passed += other.passed;
        self.failures += other.failures;
        self.errors += other.errors;
        self.skipped += other.skipped;
        self.flaky += other.flaky;
    }
}
