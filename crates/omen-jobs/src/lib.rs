//! Omen's jobs over files and the history database, shared by the `omen` binary and the
//! benchmarks: [`reports`] reads a batch of test reports into folded results, [`quarantine`]
//! refreshes the quarantine file. Every decision is made by `omen-core`; every SQL statement by
//! `omen-store`. No argument parsing, environment, clock or printing: callers pass paths and the
//! current time, and show the results.

pub mod failures;
pub mod perf;
pub mod quarantine;
pub mod reports;

/// A job's failure: the history, or a file Omen had to read or write.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The history database.
    #[error(transparent)]
    Store(#[from] omen_store::StoreError),
    /// A file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What Omen was doing, e.g. "replace".
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The quarantine file is not one Omen can read.
    #[error("quarantine file `{path}`: {message}")]
    QuarantineFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl JobError {
    fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| JobError::Io {
            action,
            path,
            source,
        }
    }
}
