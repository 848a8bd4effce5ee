//! Opening the database: integrity checks, setting bad files aside, migrations.

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::Store;
use crate::error::{SqlContext, StoreError};
use crate::migrate::MIGRATIONS;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// `PRAGMA application_id` of an Omen database ("OMEN" in ASCII).
pub(crate) const APPLICATION_ID: i32 = 0x4f4d_454e;

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

impl Store {
    /// Open (or create) the database at `path` for writing.
    ///
    /// A file that is not a healthy Omen database of this or an older schema is moved to
    /// `<path>.corrupt-<now>` and a fresh database is created in its place; the caller should warn
    /// about `Opened::set_aside`. Only I/O errors on the directory itself fail this.
    pub fn open(path: &Path, now: i64) -> Result<Opened, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_owned(),
                action: "create the database directory",
                source,
            })?;
        }
        let mut set_aside = None;
        let existed = path.exists();
        if existed && let Err(reason) = check(path, Depth::EveryPage) {
            let moved = set_aside_file(path, now)?;
            tracing::warn!(
                database = %path.display(),
                moved_to = %moved.display(),
                "history database is unusable ({reason}); it was moved aside and a new one created"
            );
            set_aside = Some((moved, reason));
        }
        let conn = Connection::open(path).ctx(path, "open")?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.configure()?;
        store.migrate()?;
        Ok(Opened {
            store,
            created: !existed || set_aside.is_some(),
            set_aside,
        })
    }

    /// Open an existing database read-only. Never repairs: an unusable file is an error, and so is
    /// an older schema (open it for writing once to migrate it).
    ///
    /// This checks the header, application id and schema version, not every page: `quick_check`
    /// reads the whole file (85 ms for 100,000 tests), and every CI job already ran it when
    /// `omen ingest` opened the database for writing. Corruption met while reading is an error.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Unusable {
                path: path.to_owned(),
                reason: "the file does not exist".to_owned(),
            });
        }
        check(path, Depth::Header).map_err(|reason| StoreError::Unusable {
            path: path.to_owned(),
            reason,
        })?;
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ctx(path, "open read-only")?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.configure()?;
        let version: u32 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .ctx(path, "read the schema version")?;
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

    fn configure(&self) -> Result<(), StoreError> {
        // DELETE journal mode keeps the database a single file between runs (WAL would leave
        // -wal/-shm files the CI cache may not carry). NORMAL sync is safe with a rollback journal.
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = DELETE;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = OFF;
                 PRAGMA cache_size = -32000;
                 PRAGMA temp_store = MEMORY;",
            )
            .ctx(&self.path, "configure the connection")
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let version: u32 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .ctx(&self.path, "read the schema version")?;
        for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let to = from + 1;
            tracing::debug!(database = %self.path.display(), from, to, "migrating schema");
            self.conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {to};\nPRAGMA application_id = {APPLICATION_ID};\nCOMMIT;"
                ))
                .ctx(&self.path, "migrate the schema")?;
        }
        Ok(())
    }
}

/// How much of the file [`check`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Header, application id and schema version.
    Header,
    /// Also every page (`PRAGMA quick_check`).
    EveryPage,
}

/// Why `path` is not a usable Omen database, or `Ok` when it is.
fn check(path: &Path, depth: Depth) -> Result<(), String> {
    let mut head = [0u8; 16];
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if len == 0 {
        // An empty file is a valid, empty SQLite database (e.g. `touch`ed by a script).
        return Ok(());
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    if len < 16 || file.read_exact(&mut head).is_err() || &head != SQLITE_MAGIC {
        return Err("it is not a SQLite database".to_owned());
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("SQLite cannot open it: {e}"))?;
    if depth == Depth::EveryPage {
        let verdict: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| format!("integrity check failed: {e}"))?;
        if verdict != "ok" {
            return Err(format!("integrity check failed: {verdict}"));
        }
    }
    let (app_id, version): (i32, u32) = conn
        .query_row(
            "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| format!("cannot read its header: {e}"))?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| format!("cannot read its schema: {e}"))?;
    if app_id != APPLICATION_ID && (tables > 0 || version > 0) {
        return Err(format!(
            "it is not an Omen database (application id {app_id:#x})"
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(format!(
            "it has schema version {version}, written by a newer Omen; this Omen reads up to {SCHEMA_VERSION}"
        ));
    }
    if app_id == APPLICATION_ID && version == 0 {
        return Err("it is an Omen database without a schema version".to_owned());
    }
    Ok(())
}

fn set_aside_file(path: &Path, now: i64) -> Result<PathBuf, StoreError> {
    let base = format!("{}.corrupt-{now}", path.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &target).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        action: "move the unusable database aside",
        source,
    })?;
    // A leftover rollback journal belongs to the old file; SQLite would replay it into the new one.
    for suffix in ["-journal", "-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
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

    #[test]
    fn an_older_schema_is_migrated_forward_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA user_version = 1; PRAGMA application_id = {APPLICATION_ID};
             INSERT INTO meta VALUES ('kept', 'yes');"
        ))
        .unwrap();
        drop(conn);
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
    fn predictions_made_before_schema_5_keep_their_probability_as_the_base_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let conn = Connection::open(&path).unwrap();
        for m in &MIGRATIONS[..4] {
            conn.execute_batch(m).unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = 4; PRAGMA application_id = {APPLICATION_ID};
             INSERT INTO changes (sha, seq, at, author, fix, features, risky) VALUES ('a', 0, 10, 'x', 0, x'', 1);
             INSERT INTO predictions (head, at, probability, source) VALUES ('a', 5, 0.375, 'prior');"
        ))
        .unwrap();
        drop(conn);
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
}
