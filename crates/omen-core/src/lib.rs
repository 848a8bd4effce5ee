//! Omen's core: domain types, the JUnit parser, test identity, per-test history and the models.
//!
//! Architecture invariant: this crate does no I/O. It never opens a file or a socket, reads the
//! environment or the clock, or spawns a process. Callers hand it bytes or readers and the current
//! time; `tests/no_io.rs` keeps that true.

pub mod carrier;
pub mod change;
pub mod classify;
pub mod codec;
pub mod deploy;
pub mod failure;
pub mod flakiness;
pub mod gate;
pub mod hash;
pub mod history;
pub mod identity;
pub mod junit;
pub mod label;
pub mod parallel;
pub mod perf;
pub mod quarantine;
pub mod report;
pub mod risk_level;
pub mod rng;
pub mod run;
pub mod time;
pub mod xml_bounds;

pub use report::{Counts, Failure, FailureKind, Outcome, Runner, TestCase};
