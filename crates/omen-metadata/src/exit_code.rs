//! Process exit codes of the `omen` binary.

/// Success: everything worked, or Omen's own trouble was downgraded to a warning.
pub const OK: i32 = 0;
/// A gate tripped: unexcused failures, deploy risk over the threshold, an outdated quarantine
/// file under `--check`.
pub const GATE: i32 = 1;
/// The command line was wrong.
pub const USAGE: i32 = 2;
/// Omen itself failed (unreadable report, unwritable database, ...) and `--strict` was given.
pub const OMEN_FAILURE: i32 = 3;
