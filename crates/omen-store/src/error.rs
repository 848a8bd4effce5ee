use std::path::PathBuf;

/// Errors from the history database. Each names the database it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed while doing `action`.
    #[error("history database `{path}`: failed to {action}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// What Omen was doing, as a verb phrase.
        action: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A filesystem operation on the database file failed.
    #[error("history database `{path}`: failed to {action}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What Omen was doing.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// There is no database at the path (read-only opens).
    #[error("history database `{path}` does not exist")]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// Omen cannot use the file now — locked by another process past the wait, unreadable, a
    /// directory, a full disk — and left it untouched. Not evidence of corruption.
    #[error("history database `{path}` cannot be used now: {reason}")]
    Unavailable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not a usable Omen database (only for read-only opens, which never repair).
    #[error("history database `{path}` is not usable: {reason}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

pub(crate) trait SqlContext<T> {
    fn ctx(self, path: &std::path::Path, action: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, path: &std::path::Path, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite {
            path: path.to_owned(),
            action,
            source,
        })
    }
}
