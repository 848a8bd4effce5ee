//! Deploy outcomes, as `omen deploy record` takes them and the history keeps them.

/// How a deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    /// The deploy succeeded.
    Success,
    /// The deploy failed.
    Failure,
    /// The deploy was rolled back.
    RolledBack,
}

impl DeployOutcome {
    /// Every outcome.
    pub const ALL: [DeployOutcome; 3] = [
        DeployOutcome::Success,
        DeployOutcome::Failure,
        DeployOutcome::RolledBack,
    ];

    /// The name on the command line and in the database.
    pub fn name(self) -> &'static str {
        match self {
            DeployOutcome::Success => "success",
            DeployOutcome::Failure => "failure",
            DeployOutcome::RolledBack => "rolled-back",
        }
    }

    /// Inverse of [`DeployOutcome::name`].
    pub fn from_name(name: &str) -> Option<DeployOutcome> {
        DeployOutcome::ALL.into_iter().find(|o| o.name() == name)
    }

    /// A failed or rolled-back deploy labels its commit risky for the risk model.
    pub fn labels_risky(self) -> bool {
        self != DeployOutcome::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_success_is_safe() {
        for o in DeployOutcome::ALL {
            assert_eq!(DeployOutcome::from_name(o.name()), Some(o));
        }
        assert_eq!(DeployOutcome::from_name("rolled_back"), None);
        assert!(!DeployOutcome::Success.labels_risky());
        assert!(DeployOutcome::Failure.labels_risky() && DeployOutcome::RolledBack.labels_risky());
    }
}
