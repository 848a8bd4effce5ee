//! The deploy-risk level: one type for the model (`omen-risk`), the comment (`omen-render`) and
//! the JSON (`RiskReport::level`, its [`RiskLevel::name`]).

/// Risk level of a change, read off the calibrated probability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskLevel {
    /// Below `medium`.
    Low,
    /// From `medium`.
    Medium,
    /// From `high`.
    High,
    /// From `critical`.
    Critical,
}

impl RiskLevel {
    /// Every level, lowest first.
    pub const ALL: [RiskLevel; 4] = [
        RiskLevel::Low,
        RiskLevel::Medium,
        RiskLevel::High,
        RiskLevel::Critical,
    ];

    /// Upper-case name, as the JSON and the comment spell it.
    pub fn name(self) -> &'static str {
        match self {
            RiskLevel::Low => "LOW",
            RiskLevel::Medium => "MEDIUM",
            RiskLevel::High => "HIGH",
            RiskLevel::Critical => "CRITICAL",
        }
    }

    /// Inverse of [`RiskLevel::name`].
    pub fn from_name(name: &str) -> Option<RiskLevel> {
        RiskLevel::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Worth a comment on its own in `auto` mode: HIGH or CRITICAL.
    pub fn is_notable(self) -> bool {
        self >= RiskLevel::High
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_high_levels_are_notable() {
        for level in RiskLevel::ALL {
            assert_eq!(RiskLevel::from_name(level.name()), Some(level));
        }
        assert_eq!(RiskLevel::from_name("high"), None);
        let notable: Vec<_> = RiskLevel::ALL
            .into_iter()
            .filter(|l| l.is_notable())
            .collect();
        assert_eq!(notable, [RiskLevel::High, RiskLevel::Critical]);
    }
}
