//! Forward-only schema migrations. `PRAGMA user_version` is the schema version.

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 → 1: the first schema.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    -- One row per ingested run. `results` holds the packed per-test results (see packed.rs) and
    -- becomes NULL when the run is compacted out of the raw-results window.
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        run_key     TEXT NOT NULL UNIQUE,
        run_id      TEXT,
        attempt     INTEGER NOT NULL,
        job         TEXT,
        commit_sha  TEXT,
        branch      TEXT,
        default_branch TEXT,
        pull_request INTEGER,
        is_default  INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        tests       INTEGER NOT NULL,
        failed      INTEGER NOT NULL,
        skipped     INTEGER NOT NULL,
        mixed       INTEGER NOT NULL,
        outage      INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        results     BLOB
    );
    CREATE INDEX runs_at ON runs (at);

    -- One row per test identity. `history` is omen_core::history::TestHistory::encode().
    -- `selector` is NULL when omen_core::identity::derive_selector() gives it (the usual case).
    CREATE TABLE tests (
        id       INTEGER PRIMARY KEY,
        key_hash INTEGER NOT NULL UNIQUE,
        scope    TEXT NOT NULL,
        name     TEXT NOT NULL,
        file     TEXT,
        line     INTEGER,
        selector TEXT,
        runner   TEXT NOT NULL,
        history  BLOB NOT NULL
    );

    -- Failure details, bounded in size, for runs inside the raw-results window.
    CREATE TABLE failures (
        test_id INTEGER NOT NULL,
        run     INTEGER NOT NULL,
        kind    INTEGER NOT NULL,
        type    TEXT,
        message TEXT,
        text    TEXT,
        PRIMARY KEY (test_id, run)
    ) WITHOUT ROWID;
    CREATE INDEX failures_run ON failures (run);
    "#,
    // 1 → 2: memory of automatic quarantine releases, so a test that bounces back is not
    // released automatically again.
    r#"
    CREATE TABLE quarantine_releases (
        key_hash    INTEGER PRIMARY KEY,
        released_at INTEGER NOT NULL
    );
    "#,
];
