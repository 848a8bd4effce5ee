//! Omen's stable formats: everything another program may depend on.
//!
//! The JSON that `omen` prints, the quarantine file the reporters read, and the exit codes live
//! here and nowhere else. Every document carries a `version`; a change that would break a reader
//! bumps it. Domain types stay in `omen-core` without serde; these are their serializable
//! counterparts at the edge.

pub mod code_quality;
pub mod exit_code;
pub mod failures;
pub mod flaky;
pub mod ingest;
pub mod merge;
pub mod perf;
pub mod quarantine;
pub mod risk;
