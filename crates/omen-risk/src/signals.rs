//! CI and deploy signals of one scored change, as numbers.
//!
//! They are shown beside the score and recorded with each prediction. They are not inputs of
//! the first-stage model: one bootstrapped from git history has no CI runs or deploys for its
//! past changes. Their weight is learned from the predictions Omen recorded itself once their
//! outcomes are known ([`crate::signal_model`]), which is why they are recorded from the first
//! run.

/// One signal. The order of [`Signal::ALL`] is the stored order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Failing tests in this run that are neither known flaky nor failing on the default branch.
    NewFailures,
    /// Tests in this run minus tests in the latest default-branch run.
    TestDelta,
    /// Distinct authors of the change's commits (merge commits skipped).
    Authors,
    /// Hours since the last successful deploy.
    HoursSinceDeploy,
    /// Share of the last 30 days' deploys that failed or were rolled back.
    ChangeFailureRate,
    /// Hours the pull request has been open.
    ReviewHours,
}

impl Signal {
    /// Every signal, in stored order.
    pub const ALL: [Signal; 6] = [
        Signal::NewFailures,
        Signal::TestDelta,
        Signal::Authors,
        Signal::HoursSinceDeploy,
        Signal::ChangeFailureRate,
        Signal::ReviewHours,
    ];

    /// Short name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Signal::NewFailures => "new_failures",
            Signal::TestDelta => "test_delta",
            Signal::Authors => "authors",
            Signal::HoursSinceDeploy => "hours_since_deploy",
            Signal::ChangeFailureRate => "change_failure_rate",
            Signal::ReviewHours => "review_hours",
        }
    }

    /// Plain words for the value `v`, as a risk factor.
    pub fn describe(self, v: f64) -> String {
        let n = v.round() as i64;
        let s = |x: i64| if x.abs() == 1 { "" } else { "s" };
        match self {
            Signal::NewFailures if n == 0 => "no new test failures in this run".into(),
            Signal::NewFailures => format!(
                "{n} test{} failed in this run that {} neither known flaky nor failing on the default branch",
                s(n),
                if n == 1 { "is" } else { "are" }
            ),
            Signal::TestDelta if n > 0 => {
                format!("adds {n} test{} to the latest default-branch run's", s(n))
            }
            Signal::TestDelta if n < 0 => {
                format!(
                    "removes {} test{} of the latest default-branch run's",
                    -n,
                    s(n)
                )
            }
            Signal::TestDelta => "keeps the latest default-branch run's number of tests".into(),
            Signal::Authors => format!("{n} author{}", s(n)),
            Signal::HoursSinceDeploy => format!("{} since the last successful deploy", hours(v)),
            Signal::ChangeFailureRate => format!(
                "{:.0}% of the last 30 days' deploys failed or were rolled back",
                v * 100.0
            ),
            Signal::ReviewHours => format!("the pull request has been open {}", hours(v)),
        }
    }
}

/// `45 min`, `5 h`, `3 days`.
pub fn hours(h: f64) -> String {
    if h < 1.0 {
        format!("{:.0} min", h * 60.0)
    } else if h < 48.0 {
        format!("{h:.0} h")
    } else {
        format!("{:.0} days", h / 24.0)
    }
}

/// The signals of one change; `None` where Omen could not know it (no deploys recorded, not a
/// pull request, scored outside `omen ci`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Signals([Option<f64>; Signal::ALL.len()]);

/// Stored signals of the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored signals have {0} bytes, expected {expected}", expected = 8 * Signal::ALL.len())]
pub struct SignalsDecodeError(pub usize);

impl Signals {
    /// The value of `s`, if known.
    pub fn get(&self, s: Signal) -> Option<f64> {
        self.0[s as usize]
    }

    /// Set `s`; a non-finite value counts as unknown.
    pub fn set(&mut self, s: Signal, v: f64) {
        self.0[s as usize] = v.is_finite().then_some(v);
    }

    /// Little-endian f64s in [`Signal::ALL`] order, NaN for unknown.
    pub fn encode(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|v| v.unwrap_or(f64::NAN).to_le_bytes())
            .collect()
    }

    /// Read [`Signals::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Signals, SignalsDecodeError> {
        if bytes.len() != 8 * Signal::ALL.len() {
            return Err(SignalsDecodeError(bytes.len()));
        }
        let mut out = Signals::default();
        for (s, chunk) in Signal::ALL.into_iter().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            out.set(s, f64::from_le_bytes(b));
        }
        Ok(out)
    }
}

/// One recorded deploy, as the signals read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deploy<'a> {
    /// When, unix seconds.
    pub at: i64,
    /// How it ended.
    pub outcome: omen_core::deploy::DeployOutcome,
    /// Where to.
    pub environment: &'a str,
}

/// What Omen knows about a change besides its diff; `None` where it could not know.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observed<'a> {
    /// Failing tests that are neither known flaky nor failing on the default branch.
    pub new_failures: Option<u64>,
    /// Tests in this run minus tests in the latest default-branch run.
    pub test_delta: Option<i64>,
    /// Distinct authors of the change's commits.
    pub authors: Option<usize>,
    /// Every recorded deploy.
    pub deploys: &'a [Deploy<'a>],
    /// When this change's pull request was opened.
    pub pr_opened_at: Option<i64>,
    /// On a default-branch push, the merged pull request: (number, hours open before merging).
    pub merged_pull: Option<(u64, f64)>,
}

/// Days of deploys the change failure rate covers.
pub const FAILURE_RATE_DAYS: i64 = 30;

/// The change's signal values, and a line for each one worth showing (a zero count or a single
/// author is not news), tagged with its signal so one already shown as a factor is not repeated.
pub fn observe(o: &Observed<'_>, now: i64) -> (Vec<(Signal, String)>, Signals) {
    let mut lines = Vec::new();
    let mut values = Signals::default();
    if let Some(n) = o.new_failures {
        values.set(Signal::NewFailures, n as f64);
        if n > 0 {
            lines.push((Signal::NewFailures, Signal::NewFailures.describe(n as f64)));
        }
    }
    if let Some(d) = o.test_delta {
        values.set(Signal::TestDelta, d as f64);
        if d != 0 {
            lines.push((Signal::TestDelta, Signal::TestDelta.describe(d as f64)));
        }
    }
    if let Some(authors) = o.authors {
        values.set(Signal::Authors, authors as f64);
        if authors > 1 {
            lines.push((Signal::Authors, format!("{authors} authors in this change")));
        }
    }
    if let Some(last) = o
        .deploys
        .iter()
        .filter(|d| d.outcome == omen_core::deploy::DeployOutcome::Success)
        .max_by_key(|d| d.at)
    {
        let h = (now - last.at).max(0) as f64 / 3600.0;
        values.set(Signal::HoursSinceDeploy, h);
        lines.push((
            Signal::HoursSinceDeploy,
            format!(
                "last successful deploy {} ago ({})",
                hours(h),
                last.environment
            ),
        ));
    }
    let window = now - FAILURE_RATE_DAYS * 86_400;
    let recent: Vec<&Deploy<'_>> = o.deploys.iter().filter(|d| d.at >= window).collect();
    if !recent.is_empty() {
        let failed = recent.iter().filter(|d| d.outcome.labels_risky()).count();
        let rate = failed as f64 / recent.len() as f64;
        values.set(Signal::ChangeFailureRate, rate);
        lines.push((
            Signal::ChangeFailureRate,
            format!(
                "change failure rate {:.0}% over the last {FAILURE_RATE_DAYS} days ({failed} of {} deploys failed or were rolled back)",
                rate * 100.0,
                recent.len()
            ),
        ));
    }
    if let Some(opened) = o.pr_opened_at {
        let h = (now - opened).max(0) as f64 / 3600.0;
        values.set(Signal::ReviewHours, h);
        lines.push((
            Signal::ReviewHours,
            format!("pull request open for {}", hours(h)),
        ));
    } else if let Some((number, h)) = o.merged_pull {
        values.set(Signal::ReviewHours, h);
        lines.push((
            Signal::ReviewHours,
            format!(
                "pull request #{number} was open for {} before it was merged",
                hours(h)
            ),
        ));
    }
    (lines, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_signals_are_recorded_and_only_news_is_shown() {
        use omen_core::deploy::DeployOutcome;
        const H: i64 = 3600;
        let now = 1_000 * 86_400;
        let deploys = [
            Deploy {
                at: now - 100 * 86_400,
                outcome: DeployOutcome::Failure,
                environment: "prod",
            },
            Deploy {
                at: now - 10 * H,
                outcome: DeployOutcome::Success,
                environment: "prod",
            },
            Deploy {
                at: now - 5 * H,
                outcome: DeployOutcome::RolledBack,
                environment: "prod",
            },
            Deploy {
                at: now - 2 * H,
                outcome: DeployOutcome::Success,
                environment: "staging",
            },
        ];
        let quiet = Observed {
            new_failures: Some(0),
            test_delta: Some(0),
            authors: Some(1),
            ..Observed::default()
        };
        let (lines, values) = observe(&quiet, now);
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(
            values.get(Signal::NewFailures),
            Some(0.0),
            "recorded even when not shown"
        );
        assert_eq!(values.get(Signal::Authors), Some(1.0));
        assert_eq!(values.get(Signal::HoursSinceDeploy), None);

        let busy = Observed {
            new_failures: Some(3),
            test_delta: Some(-2),
            authors: Some(2),
            deploys: &deploys,
            pr_opened_at: Some(now - 30 * H),
            merged_pull: Some((7, 99.0)),
        };
        let (lines, values) = observe(&busy, now);
        let shown: Vec<Signal> = lines.iter().map(|(s, _)| *s).collect();
        assert_eq!(shown, Signal::ALL);
        assert_eq!(
            values.get(Signal::HoursSinceDeploy),
            Some(2.0),
            "the newest success"
        );
        assert!(lines[3].1.contains("(staging)"), "{}", lines[3].1);
        // 3 deploys in 30 days, one rolled back; the failure 100 days ago is outside the window.
        assert!((values.get(Signal::ChangeFailureRate).unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert!(lines[4].1.contains("1 of 3 deploys"), "{}", lines[4].1);
        assert_eq!(
            values.get(Signal::ReviewHours),
            Some(30.0),
            "the open pull request wins"
        );

        let pushed = Observed {
            merged_pull: Some((7, 5.0)),
            ..Observed::default()
        };
        let (lines, values) = observe(&pushed, now);
        assert_eq!(values.get(Signal::ReviewHours), Some(5.0));
        assert!(lines[0].1.contains("#7 was open for 5 h"), "{}", lines[0].1);
    }

    #[test]
    fn values_are_described_in_words() {
        let d = |s: Signal, v: f64| s.describe(v);
        assert_eq!(
            d(Signal::NewFailures, 0.0),
            "no new test failures in this run"
        );
        assert_eq!(
            d(Signal::NewFailures, 1.0),
            "1 test failed in this run that is neither known flaky nor failing on the default branch"
        );
        assert_eq!(
            d(Signal::TestDelta, -3.0),
            "removes 3 tests of the latest default-branch run's"
        );
        assert_eq!(
            d(Signal::TestDelta, 1.0),
            "adds 1 test to the latest default-branch run's"
        );
        assert_eq!(d(Signal::Authors, 2.0), "2 authors");
        assert_eq!(
            d(Signal::HoursSinceDeploy, 0.5),
            "30 min since the last successful deploy"
        );
        assert_eq!(
            d(Signal::ChangeFailureRate, 0.25),
            "25% of the last 30 days' deploys failed or were rolled back"
        );
        assert_eq!(
            d(Signal::ReviewHours, 72.0),
            "the pull request has been open 3 days"
        );
    }

    #[test]
    fn round_trip_keeps_unknowns_unknown() {
        let mut s = Signals::default();
        s.set(Signal::NewFailures, 2.0);
        s.set(Signal::TestDelta, -3.0);
        s.set(Signal::ChangeFailureRate, 0.25);
        s.set(Signal::ReviewHours, f64::INFINITY);
        let bytes = s.encode();
        assert_eq!(bytes.len(), 48);
        let back = Signals::decode(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.get(Signal::TestDelta), Some(-3.0));
        assert_eq!(back.get(Signal::Authors), None);
        assert_eq!(back.get(Signal::ReviewHours), None, "infinite is unknown");
        assert_eq!(Signals::decode(&bytes[..40]), Err(SignalsDecodeError(40)));
    }
}
