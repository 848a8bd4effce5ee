//! Why a change is labelled risky, as the deploy-risk model's training data records it.

/// Where a change's risky label came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    /// A later commit reverted it.
    Revert,
    /// SZZ blame of a bug fix points at it.
    Szz,
    /// A deploy of it failed or was rolled back.
    Deploy,
}

impl LabelSource {
    /// Every source.
    pub const ALL: [LabelSource; 3] = [LabelSource::Revert, LabelSource::Szz, LabelSource::Deploy];

    /// Name in storage and JSON.
    pub fn name(self) -> &'static str {
        match self {
            LabelSource::Revert => "revert",
            LabelSource::Szz => "szz",
            LabelSource::Deploy => "deploy",
        }
    }

    /// Inverse of [`LabelSource::name`].
    pub fn from_name(name: &str) -> Option<LabelSource> {
        LabelSource::ALL.into_iter().find(|s| s.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in LabelSource::ALL {
            assert_eq!(LabelSource::from_name(s.name()), Some(s));
        }
        assert_eq!(LabelSource::from_name("Revert"), None);
    }
}
