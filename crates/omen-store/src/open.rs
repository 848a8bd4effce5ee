//! Opening the database: integrity checks, setting bad files aside, migrations.
//!
//! A file is set aside only on evidence that it is not a healthy Omen database: not SQLite at all,
//! SQLite reporting corruption (`SQLITE_CORRUPT`, `SQLITE_NOTADB`), a failed `quick_check`, a file
//! shorter than its header says, a foreign application id or a newer schema. Everything else that
//! stops Omen from using the file now — another process holding the write lock past the wait, a
//! permission, a directory in its place, a full disk — is [`StoreError::Unavailable`] and leaves
//! the file exactly as it was. A crash's hot journal is not evidence: the file is opened read-write
//! so SQLite rolls the journal back, as on any normal open. The decision is taken while holding
//! the write lock, so a file another Omen process is writing is never moved away under it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::Store;
use crate::error::{SqlContext, StoreError};
use crate::migrate::MIGRATIONS;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// `PRAGMA application_id` of an Omen database ("OMEN" in ASCII).
pub(crate) const APPLICATION_ID: i32 = 0x4f4d_454e;

/// How long [`Store::open`] waits for another process's write lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A database opened for writing, and what opening it took.
#[derive(Debug)]
pub struct Opened {
    /// The open database.
    pub store: Store,
    /// Where the previous file was moved because it was unusable, and why.
    pub set_aside: Option<(PathBuf, String)>,
    /// True when the database was created by this open.
    pub created: bool,
}

/// What a look at an existing file found.
enum Verdict {
    /// A healthy Omen database (or an empty file), ready to migrate.
    Usable,
    /// Evidence of corruption or of someone else's file: set it aside.
    Corrupt(String),
}

impl Store {
    /// Open (or create) the database at `path` for writing, waiting up to [`DEFAULT_LOCK_WAIT`]
    /// for another process's write lock. See [`Store::open_with`].
    pub fn open(path: &Path, now: i64) -> Result<Opened, StoreError> {
        Store::open_with(path, now, DEFAULT_LOCK_WAIT)
    }

    /// Open (or create) the database at `path` for writing.
    ///
    /// A file with evidence of corruption (see the module docs) is moved to
    /// `<path>.corrupt-<now>` and a fresh database is created in its place; the caller should warn
    /// about `Opened::set_aside`. A file Omen cannot use now (locked for longer than `lock_wait`,
    /// unreadable, a directory, a full disk) is an error and is left untouched.
    pub fn open_with(path: &Path, now: i64, lock_wait: Duration) -> Result<Opened, StoreError> {
        let existed = exists(path)?;
        if !existed && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_owned(),
                action: "create the database directory",
                source,
            })?;
        }
        let mut set_aside = None;
        if existed && let Some(reason) = header_evidence(path)? {
            set_aside = Some((set_aside_file(path, now)?, reason));
        }
        let conn = match connect(path, lock_wait) {
            Err(StoreError::Unusable { reason, .. }) if existed && set_aside.is_none() => {
                set_aside = Some((set_aside_file(path, now)?, reason));
                connect(path, lock_wait)?
            }
            other => other?,
        };
        let conn = if existed && set_aside.is_none() {
            match inspect_locked(path, conn, lock_wait)? {
                (conn, Verdict::Usable) => conn,
                (conn, Verdict::Corrupt(reason)) => {
                    // Still holding the write lock: no other Omen process is writing this file.
                    let moved = set_aside_file(path, now)?;
                    drop(conn);
                    set_aside = Some((moved, reason));
                    connect(path, lock_wait)?
                }
            }
        } else {
            conn
        };
        if let Some((moved, reason)) = &set_aside {
            tracing::warn!(
                database = %path.display(),
                moved_to = %moved.display(),
                "history database is unusable ({reason}); it was moved aside and a new one created"
            );
        }
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.migrate()?;
        Ok(Opened {
            store,
            created: !existed || set_aside.is_some(),
            set_aside,
        })
    }

    /// Open an existing database for reading. Never repairs and never writes Omen's data: an
    /// unusable file is an error, and so is an older schema (open it for writing once to migrate
    /// it). A crash's hot journal is rolled back by SQLite as on any open, when the file is
    /// writable.
    ///
    /// This checks the header, application id and schema version, not every page: `quick_check`
    /// reads the whole file (85 ms for 100,000 tests), and every CI job already ran it when
    /// `omen ingest` opened the database for writing. Corruption met while reading is an error.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !exists(path)? {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        if let Some(reason) = header_evidence(path)? {
            return Err(StoreError::Unusable {
                path: path.to_owned(),
                reason,
            });
        }
        // Read-write without create, so that SQLite can roll back a hot journal (it falls back to
        // read-only by itself when the file is not writable); `query_only` forbids Omen's writes.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(path, "open", e))?;
        conn.busy_timeout(DEFAULT_LOCK_WAIT)
            .ctx(path, "set the lock wait")?;
        conn.execute_batch("PRAGMA query_only = 1;")
            .map_err(|e| classify(path, "configure the connection", e))?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        let (app_id, version, tables) =
            header_fields(&store.conn).map_err(|e| classify(path, "read the header", e))?;
        if let Some(reason) = identity_evidence(app_id, version, tables) {
            return Err(StoreError::Unusable {
                path: path.to_owned(),
                reason,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::Unusable {
                path: path.to_owned(),
                reason: format!(
                    "it has the older schema version {version}; `omen ingest` migrates it to {SCHEMA_VERSION}"
                ),
            });
        }
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let version: u32 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| classify(&self.path, "read the schema version", e))?;
        for to in (version as usize + 1)..=MIGRATIONS.len() {
            self.migrate_to(to)?;
        }
        Ok(())
    }

    /// Run migration `to - 1 → to` unless the file is already there: the version is read again
    /// inside the write lock, because another process (a parallel shard creating the same new
    /// database) may have migrated it since this one looked. Returns whether it ran.
    fn migrate_to(&self, to: usize) -> Result<bool, StoreError> {
        let fail = |e: rusqlite::Error| {
            // A failed statement (a full disk) leaves the transaction open; roll it back so the
            // file keeps its last complete schema.
            let _rolled_back = self.conn.execute_batch("ROLLBACK");
            classify(&self.path, "migrate the schema", e)
        };
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| classify(&self.path, "migrate the schema", e))?;
        let current: u32 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(fail)?;
        if current as usize >= to {
            self.conn.execute_batch("COMMIT").map_err(fail)?;
            return Ok(false);
        }
        tracing::debug!(database = %self.path.display(), from = to - 1, to, "migrating schema");
        self.conn
            .execute_batch(&format!(
                "{}\nPRAGMA user_version = {to};\nPRAGMA application_id = {APPLICATION_ID};\nCOMMIT;",
                MIGRATIONS[to - 1]
            ))
            .map_err(fail)?;
        Ok(true)
    }
}

/// Whether a database file is at `path`. A directory there, or a path Omen cannot look at, is
/// `Unavailable`: never evidence of corruption.
fn exists(path: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => Err(unavailable(path, "it is a directory, not a database file")),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(unavailable(path, &format!("cannot read it: {e}"))),
    }
}

fn unavailable(path: &Path, reason: &str) -> StoreError {
    StoreError::Unavailable {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Map a SQLite error met while opening or checking: corruption is `Unusable` (the caller sets
/// the file aside when it may), anything else says Omen cannot use the file now.
fn classify(path: &Path, action: &'static str, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Unusable {
            path: path.to_owned(),
            reason: format!("SQLite reports it corrupt: {e}"),
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable {
            path: path.to_owned(),
            reason: format!(
                "another process holds its lock ({e}); nothing was changed, try again when it is done"
            ),
        },
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            StoreError::Unavailable {
                path: path.to_owned(),
                reason: format!("cannot open it for {action}: {e}"),
            }
        }
        Some(ErrorCode::DiskFull) => StoreError::Unavailable {
            path: path.to_owned(),
            reason: format!("the disk is full: {e}"),
        },
        _ => StoreError::Sqlite {
            path: path.to_owned(),
            action,
            source: e,
        },
    }
}

/// A read-write connection with Omen's settings; waits up to `lock_wait` for other writers.
fn connect(path: &Path, lock_wait: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| classify(path, "open", e))?;
    // DELETE journal mode keeps the database a single file between runs (WAL would leave
    // -wal/-shm files the CI cache may not carry). NORMAL sync is safe with a rollback journal.
    waiting(path, &conn, lock_wait, "configure the connection", |c| {
        c.execute_batch(
            "PRAGMA journal_mode = DELETE;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = OFF;
             PRAGMA cache_size = -32000;
             PRAGMA temp_store = MEMORY;",
        )
    })?;
    Ok(conn)
}

/// Run `f` at once; when another process holds the lock, say so on stderr and retry, waiting up
/// to `lock_wait`. The connection keeps that wait for its later statements (parallel shards
/// writing one database take turns instead of dropping a run).
fn waiting<T>(
    path: &Path,
    conn: &Connection,
    lock_wait: Duration,
    action: &'static str,
    f: impl Fn(&Connection) -> Result<T, rusqlite::Error>,
) -> Result<T, StoreError> {
    conn.busy_timeout(Duration::ZERO)
        .ctx(path, "set the lock wait")?;
    let first = f(conn);
    conn.busy_timeout(lock_wait)
        .ctx(path, "set the lock wait")?;
    match first {
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ) =>
        {
            tracing::warn!(
                database = %path.display(),
                "another process is using the history database; waiting up to {} s for it",
                lock_wait.as_secs()
            );
            f(conn).map_err(|e| classify(path, action, e))
        }
        other => other.map_err(|e| classify(path, action, e)),
    }
}

/// Take the write lock (waiting, with a message, while another process holds it), then look at
/// the whole file. The connection is returned outside any transaction when the file is usable,
/// and still inside it — holding the lock — when it is not.
fn inspect_locked(
    path: &Path,
    conn: Connection,
    lock_wait: Duration,
) -> Result<(Connection, Verdict), StoreError> {
    let begun = waiting(path, &conn, lock_wait, "take the write lock", |c| {
        c.execute_batch("BEGIN IMMEDIATE")
    });
    match begun {
        Ok(()) => {}
        Err(StoreError::Unusable { reason, .. }) => return Ok((conn, Verdict::Corrupt(reason))),
        Err(other) => return Err(other),
    }
    let verdict = match inspect(path, &conn) {
        Ok(None) => Verdict::Usable,
        Ok(Some(reason)) => Verdict::Corrupt(reason),
        Err(e) => match classify(path, "check its integrity", e) {
            StoreError::Unusable { reason, .. } => Verdict::Corrupt(reason),
            other => {
                let _rolled_back = conn.execute_batch("ROLLBACK");
                return Err(other);
            }
        },
    };
    if matches!(verdict, Verdict::Usable) {
        conn.execute_batch("COMMIT")
            .map_err(|e| classify(path, "release the write lock", e))?;
    }
    Ok((conn, verdict))
}

/// Evidence, read under the write lock, that the file is not a healthy Omen database.
fn inspect(path: &Path, conn: &Connection) -> Result<Option<String>, rusqlite::Error> {
    let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Ok(Some(format!("integrity check failed: {verdict}")));
    }
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    if let Ok(md) = std::fs::metadata(path) {
        let len = md.len();
        if len > 0 && (len % page_size != 0 || len < pages * page_size) {
            return Ok(Some(format!(
                "it is truncated: {len} bytes, where its header says {pages} pages of {page_size}"
            )));
        }
    }
    let (app_id, version, tables) = header_fields(conn)?;
    Ok(identity_evidence(app_id, version, tables))
}

fn header_fields(conn: &Connection) -> Result<(i32, u32, i64), rusqlite::Error> {
    conn.query_row(
        "SELECT (SELECT application_id FROM pragma_application_id),
                (SELECT user_version FROM pragma_user_version),
                (SELECT count(*) FROM sqlite_master)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Why a database with these header fields is not Omen's of a schema this build reads.
fn identity_evidence(app_id: i32, version: u32, tables: i64) -> Option<String> {
    if app_id != APPLICATION_ID && (tables > 0 || version > 0) {
        return Some(format!(
            "it is not an Omen database (application id {app_id:#x})"
        ));
    }
    if version > SCHEMA_VERSION {
        return Some(format!(
            "it has schema version {version}, written by a newer Omen; this Omen reads up to {SCHEMA_VERSION}"
        ));
    }
    if app_id == APPLICATION_ID && version == 0 {
        return Some("it is an Omen database without a schema version".to_owned());
    }
    None
}

/// Evidence from the first bytes that the file is not SQLite at all. An empty file is a valid,
/// empty database (e.g. `touch`ed by a script). Not being able to read it is not evidence.
fn header_evidence(path: &Path) -> Result<Option<String>, StoreError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| unavailable(path, &format!("cannot read it: {e}")))?;
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| unavailable(path, &format!("cannot read it: {e}")))?;
    if head.is_empty() || head.as_slice() == SQLITE_MAGIC {
        Ok(None)
    } else {
        Ok(Some("it is not a SQLite database".to_owned()))
    }
}

/// Move `path` and its journal files to `<path>.corrupt-<now>[-n]`, choosing a name none of whose
/// files exist, so that nothing already set aside is ever overwritten.
fn set_aside_file(path: &Path, now: i64) -> Result<PathBuf, StoreError> {
    const SIDES: [&str; 3] = ["-journal", "-wal", "-shm"];
    let base = format!("{}.corrupt-{now}", path.display());
    let taken = |t: &str| {
        Path::new(t).symlink_metadata().is_ok()
            || SIDES
                .iter()
                .any(|s| Path::new(&format!("{t}{s}")).symlink_metadata().is_ok())
    };
    let mut target = base.clone();
    let mut n = 1;
    while taken(&target) {
        target = format!("{base}-{n}");
        n += 1;
    }
    let target = PathBuf::from(target);
    std::fs::rename(path, &target).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        action: "move the unusable database aside",
        source,
    })?;
    // A leftover journal belongs to the old file; SQLite would replay it into the new one.
    for suffix in SIDES {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.symlink_metadata().is_ok() {
            let to = PathBuf::from(format!("{}{suffix}", target.display()));
            std::fs::rename(&side, &to).map_err(|source| StoreError::Io {
                path: side.clone(),
                action: "move the old journal aside",
                source,
            })?;
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_another_process_already_ran_is_skipped_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let store = Store::open(&path, 1).unwrap().store;
        // As a process that read the version before a parallel shard migrated the file.
        for to in 1..=MIGRATIONS.len() {
            assert!(!store.migrate_to(to).unwrap(), "migration {to} ran twice");
        }
        let version: u32 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    fn open(path: &Path) -> Opened {
        match Store::open(path, 1_700_000_000) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn creates_then_reopens_without_setting_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/history.db");
        let first = open(&path);
        assert!(first.created);
        drop(first);
        let second = open(&path);
        assert!(!second.created);
        assert!(second.set_aside.is_none());
    }

    #[test]
    fn garbage_is_set_aside_and_kept_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::write(&path, b"definitely not sqlite, but someone's data").unwrap();
        let opened = open(&path);
        let (moved, reason) = opened.set_aside.clone().unwrap();
        assert!(reason.contains("not a SQLite database"), "{reason}");
        assert_eq!(
            std::fs::read(&moved).unwrap(),
            b"definitely not sqlite, but someone's data"
        );
        assert!(
            moved
                .to_string_lossy()
                .ends_with("history.db.corrupt-1700000000")
        );
        // Setting aside twice in the same second never overwrites the first copy.
        drop(opened);
        std::fs::write(&path, b"more garbage").unwrap();
        let again = open(&path);
        let (moved2, _) = again.set_aside.unwrap();
        assert_ne!(moved, moved2);
        assert!(moved.exists() && moved2.exists());
    }

    #[test]
    fn newer_schema_and_foreign_databases_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        drop(open(&path));
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let (_, reason) = open(&path).set_aside.unwrap();
        assert!(reason.contains("newer Omen"), "{reason}");

        let foreign = dir.path().join("foreign.db");
        let conn = Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        drop(conn);
        let (_, reason) = open(&foreign).set_aside.unwrap();
        assert!(reason.contains("not an Omen database"), "{reason}");
    }

    /// A database at schema `version` (its first `version` migrations applied, as a release of
    /// that schema left it) holding `data`.
    fn database_at(path: &std::path::Path, version: usize, data: &str) {
        let conn = Connection::open(path).unwrap();
        for m in &MIGRATIONS[..version] {
            conn.execute_batch(m).unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = {version}; PRAGMA application_id = {APPLICATION_ID}; {data}"
        ))
        .unwrap();
    }

    #[test]
    fn an_older_schema_is_migrated_forward_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        database_at(&path, 1, "INSERT INTO meta VALUES ('kept', 'yes');");
        let err = Store::open_read_only(&path).unwrap_err().to_string();
        assert!(err.contains("older schema version 1"), "{err}");
        let opened = open(&path);
        assert!(opened.set_aside.is_none() && !opened.created);
        let conn = &opened.store.conn;
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let kept: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'kept'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, "yes");
        opened.store.record_release(7, 1).unwrap();
        assert!(opened.store.released_tests().unwrap().contains(&7));
    }

    #[test]
    fn gitlab_runs_stored_per_job_instance_become_one_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let run = |id: i64, job: &str| {
            format!(
                "INSERT INTO runs (id, run_key, attempt, job, is_default, at, tests, failed, skipped, mixed, outage, duration_ms)
                 VALUES ({id}, 'k{id}', 1, '{job}', 1, {id}, 1, 0, 0, 0, 0, 5);"
            )
        };
        let runs = [
            run(1, "rspec#1234"),
            run(2, "rspec#1299"),
            run(3, "test 2/4#77"),
            run(4, "build2"),
            run(5, "#12"),
        ];
        database_at(&path, 10, &runs.concat());
        let opened = open(&path);
        assert!(opened.set_aside.is_none());
        let jobs: Vec<String> = (1..=5)
            .map(|id| opened.store.run(id).unwrap().unwrap().job.unwrap())
            .collect();
        assert_eq!(jobs, ["rspec", "rspec", "test 2/4", "build2", "#12"]);
        assert_eq!(opened.store.run(1).unwrap().unwrap().run_key, "k1");
    }

    #[test]
    fn predictions_made_before_schema_5_keep_their_probability_as_the_base_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        database_at(
            &path,
            4,
            "INSERT INTO changes (sha, seq, at, author, fix, features, risky) VALUES ('a', 0, 10, 'x', 0, x'', 1);
             INSERT INTO predictions (head, at, probability, source) VALUES ('a', 5, 0.375, 'prior');",
        );
        let opened = open(&path);
        assert!(opened.set_aside.is_none());
        let tracked = opened.store.predictions_with_outcomes(10, 10).unwrap();
        assert_eq!(tracked.len(), 1);
        assert_eq!(
            (tracked[0].probability, tracked[0].base_probability),
            (0.375, 0.375)
        );
    }

    #[test]
    fn truncated_database_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let opened = open(&path);
        // Fill a few pages so truncation cuts through real data.
        opened
            .store
            .conn
            .execute_batch(
                "INSERT INTO meta SELECT 'k' || value, hex(randomblob(500)) FROM generate_series(1, 200);",
            )
            .or_else(|_| {
                opened.store.conn.execute_batch(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
                     INSERT INTO meta SELECT 'k' || i, hex(randomblob(500)) FROM n;",
                )
            })
            .unwrap();
        drop(opened);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let reopened = open(&path);
        assert!(reopened.set_aside.is_some(), "truncation went unnoticed");
        assert!(reopened.created);
    }

    #[test]
    fn read_only_open_refuses_bad_files_without_touching_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.db");
        std::fs::write(&path, b"junk").unwrap();
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(err.to_string().contains("bad.db"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"junk");
    }

    fn filled(path: &Path) {
        let opened = open(path);
        opened
            .store
            .conn
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
                 INSERT INTO meta SELECT 'k' || i, hex(randomblob(500)) FROM n;",
            )
            .unwrap();
    }

    fn meta_rows(path: &Path) -> i64 {
        let store = Store::open_read_only(path).unwrap();
        store
            .conn
            .query_row("SELECT count(*) FROM meta WHERE key LIKE 'k%'", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    /// The state a `kill -9` leaves mid-commit: pages already written into the database file and
    /// the rollback journal that undoes them. Copying both while a writer holds its transaction
    /// open captures exactly that state, with no lock held on the copy.
    fn crashed_copy(dir: &Path) -> PathBuf {
        let src = dir.join("live.db");
        filled(&src);
        let writer = Connection::open(&src).unwrap();
        writer
            .execute_batch(
                "PRAGMA cache_size = 1; BEGIN IMMEDIATE;
                 UPDATE meta SET value = 'x' || value WHERE key LIKE 'k%';
                 DELETE FROM meta WHERE key LIKE 'k1%';",
            )
            .unwrap();
        let journal = std::fs::read(dir.join("live.db-journal")).unwrap();
        assert!(journal.len() > 512, "the writer spilled nothing");
        let crash = dir.join("crash.db");
        std::fs::copy(&src, &crash).unwrap();
        std::fs::write(dir.join("crash.db-journal"), journal).unwrap();
        drop(writer);
        crash
    }

    #[test]
    fn a_crash_s_hot_journal_is_rolled_back_not_taken_for_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let crash = crashed_copy(dir.path());
        let opened = open(&crash);
        assert!(opened.set_aside.is_none(), "{:?}", opened.set_aside);
        assert!(!opened.created);
        drop(opened);
        assert_eq!(
            meta_rows(&crash),
            400,
            "the interrupted transaction was not undone"
        );
        assert!(!dir.path().join("crash.db-journal").exists());
    }

    #[test]
    fn a_read_only_open_rolls_back_a_hot_journal_too() {
        let dir = tempfile::tempdir().unwrap();
        let crash = crashed_copy(dir.path());
        assert_eq!(meta_rows(&crash), 400);
        let read = Store::open_read_only(&crash).unwrap();
        let err = read
            .conn
            .execute_batch("INSERT INTO meta VALUES ('w', 'w')")
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }

    #[test]
    fn a_held_lock_is_waited_for_then_reported_never_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        filled(&path);
        let before = std::fs::read(&path).unwrap();
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let err = Store::open_with(&path, 1, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("another process"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A lock released within the wait is waited for.
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            holder.execute_batch("COMMIT").unwrap();
        });
        let opened = Store::open_with(&path, 1, Duration::from_secs(20)).unwrap();
        assert!(opened.set_aside.is_none());
        release.join().unwrap();
    }

    #[test]
    fn a_directory_in_the_database_s_place_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"x").unwrap();
        let err = Store::open(&path, 1).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert!(path.join("inside").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn a_database_missing_its_last_byte_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        filled(&path);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let (moved, reason) = open(&path).set_aside.unwrap();
        assert!(reason.contains("truncated"), "{reason}");
        assert_eq!(std::fs::read(moved).unwrap(), &bytes[..bytes.len() - 1]);
    }

    #[test]
    fn setting_aside_never_overwrites_an_earlier_aside_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let earlier = dir.path().join("history.db.corrupt-1700000000-journal");
        std::fs::write(&earlier, b"an earlier journal").unwrap();
        std::fs::write(&path, b"garbage").unwrap();
        std::fs::write(dir.path().join("history.db-journal"), b"its journal").unwrap();
        let (moved, _) = open(&path).set_aside.unwrap();
        assert_eq!(std::fs::read(&earlier).unwrap(), b"an earlier journal");
        assert_eq!(std::fs::read(&moved).unwrap(), b"garbage");
        let moved_journal = PathBuf::from(format!("{}-journal", moved.display()));
        assert_eq!(std::fs::read(moved_journal).unwrap(), b"its journal");
    }
}
