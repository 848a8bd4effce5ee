//! What the store's unit tests share.

use omen_core::Outcome;

use crate::ResultRecord;

/// A result of test `S::name` that took 5 ms, failing with "`name` broke" when `outcome` is a
/// failure.
pub(crate) fn record(name: &str, outcome: Outcome) -> ResultRecord {
    timed(name, outcome, Some(5))
}

/// [`record`] that took `duration_ms`.
pub(crate) fn timed(name: &str, outcome: Outcome, duration_ms: Option<u32>) -> ResultRecord {
    ResultRecord {
        key_hash: omen_core::hash::fnv1a64(format!("S::{name}").as_bytes()),
        scope: "S".into(),
        name: name.into(),
        file: None,
        line: None,
        selector: format!("S::{name}"),
        selector_derived: false,
        runner: omen_core::Runner::Generic,
        outcome,
        mixed: false,
        duration_ms,
        failure: outcome.is_failure().then(|| omen_core::Failure {
            kind: Some(omen_core::FailureKind::Failure),
            message: Some(format!("{name} broke")),
            ..Default::default()
        }),
    }
}
