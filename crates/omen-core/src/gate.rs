//! The deploy-risk gate: one decision and one message, used by `omen ci --risk-gate`,
//! `omen risk gate` and the comment.

/// The pull-request label with which a reviewer accepts a change's risk.
pub const ACCEPT_LABEL: &str = "omen:accept-risk";

/// The risk gate's verdict on one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateVerdict {
    /// Under the threshold.
    Passes,
    /// At or over the threshold, accepted by a reviewer.
    Accepted,
    /// At or over the threshold: the step fails.
    Blocked,
}

/// A risk gate with its threshold on the calibrated probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    threshold: f64,
}

impl Gate {
    /// The default gate: 0.7, the seed design's threshold.
    pub const DEFAULT: Gate = Gate { threshold: 0.7 };

    /// A gate at `threshold`, which must lie in `[0, 1]`.
    pub fn new(threshold: f64) -> Result<Gate, String> {
        if (0.0..=1.0).contains(&threshold) {
            Ok(Gate { threshold })
        } else {
            Err(format!(
                "the risk threshold must be between 0 and 1, got {threshold}"
            ))
        }
    }

    /// The threshold.
    pub fn threshold(self) -> f64 {
        self.threshold
    }

    /// The verdict on a change of `probability`: at or above the threshold it blocks, unless a
    /// reviewer `accepted` the risk.
    pub fn judge(self, probability: f64, accepted: bool) -> GateVerdict {
        match (probability >= self.threshold, accepted) {
            (false, _) => GateVerdict::Passes,
            (true, true) => GateVerdict::Accepted,
            (true, false) => GateVerdict::Blocked,
        }
    }

    /// Why a change was blocked, and the two ways to merge it anyway.
    pub fn blocked_message(self, probability: f64, level: &str) -> String {
        format!(
            "deploy risk {probability:.2} ({level}) is at or above the gate threshold {:.2}. To merge anyway, add the label `{ACCEPT_LABEL}` to the pull request and re-run, or set the action input `accept-risk: true` (OMEN_ACCEPT_RISK=true).",
            self.threshold
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_threshold_blocks_unless_accepted() {
        let check = |threshold: f64, p: f64, accepted: bool, expected: GateVerdict| {
            let gate = Gate::new(threshold).unwrap();
            assert_eq!(
                gate.judge(p, accepted),
                expected,
                "{threshold} {p} {accepted}"
            );
        };
        check(0.7, 0.69, false, GateVerdict::Passes);
        check(0.7, 0.69, true, GateVerdict::Passes);
        check(0.7, 0.7, false, GateVerdict::Blocked);
        check(0.7, 0.95, true, GateVerdict::Accepted);
        check(0.0, 0.0, false, GateVerdict::Blocked);
        check(1.0, 0.999, false, GateVerdict::Passes);
    }

    #[test]
    fn thresholds_outside_0_1_are_refused() {
        assert!(Gate::new(1.01).unwrap_err().contains("between 0 and 1"));
        assert!(Gate::new(-0.1).is_err());
        assert!(Gate::new(f64::NAN).is_err());
    }

    #[test]
    fn the_message_names_both_overrides() {
        let m = Gate::new(0.7).unwrap().blocked_message(0.83, "HIGH");
        assert!(m.contains("0.83 (HIGH)") && m.contains("0.70"), "{m}");
        assert!(
            m.contains(ACCEPT_LABEL) && m.contains("OMEN_ACCEPT_RISK=true"),
            "{m}"
        );
    }
}
