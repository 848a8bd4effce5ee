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
    // 2 → 3: deploy risk. `risk_state` holds omen_risk::history::RepoHistory::encode() and the
    // last commit it has seen; `changes` one row per observed commit with its raw features
    // (little-endian f64s in omen_risk::features::Feature::ALL order) and its label once known;
    // `risk_models` Omen's own model format (omen_risk::model::RiskModel::encode()).
    r#"
    CREATE TABLE risk_state (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        history     BLOB NOT NULL,
        last_commit TEXT NOT NULL,
        commits     INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE changes (
        sha          TEXT PRIMARY KEY,
        seq          INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        author       TEXT NOT NULL,
        fix          INTEGER NOT NULL,
        features     BLOB NOT NULL,
        risky        INTEGER,
        label_source TEXT,
        szz_done     INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX changes_seq ON changes (seq);
    CREATE TABLE risk_models (
        id         INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        samples    INTEGER NOT NULL,
        positives  INTEGER NOT NULL,
        auc        REAL NOT NULL,
        brier      REAL NOT NULL,
        features   TEXT NOT NULL,
        model      BLOB NOT NULL
    );
    CREATE TABLE predictions (
        id           INTEGER PRIMARY KEY,
        head         TEXT NOT NULL,
        base         TEXT,
        at           INTEGER NOT NULL,
        probability  REAL NOT NULL,
        source       TEXT NOT NULL,
        model_id     INTEGER
    );
    CREATE INDEX predictions_head ON predictions (head);
    CREATE TABLE deploys (
        id          INTEGER PRIMARY KEY,
        commit_sha  TEXT NOT NULL,
        environment TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        at          INTEGER NOT NULL
    );
    CREATE INDEX deploys_commit ON deploys (commit_sha);
    "#,
    // 3 → 4: each prediction keeps the change's CI and deploy signals
    // (omen_risk::signals::Signals::encode()), so their weight can be learned once outcomes are
    // known. NULL for predictions made before.
    r#"
    ALTER TABLE predictions ADD COLUMN signals BLOB;
    "#,
    // 4 → 5: the first stage's probability beside the one given, so the second stage
    // (omen_risk::signal_model) learns from the model's output, never from its own. Before, they
    // were the same number.
    r#"
    ALTER TABLE predictions ADD COLUMN base_probability REAL;
    UPDATE predictions SET base_probability = probability;
    "#,
    // 5 → 6: the newest labelled predictions are read on every scoring run
    // (Store::predictions_with_outcomes with a limit), by time.
    r#"
    CREATE INDEX predictions_at ON predictions (at, id);
    "#,
    // 6 → 7: every scoring run counts the labelled changes and finds the newest one
    // (Store::label_counts) and every default-branch run lists the fixes SZZ has not analysed
    // (Store::fixes_pending_szz); without these indexes each was a scan of every change.
    r#"
    CREATE INDEX changes_at ON changes (at, risky);
    CREATE INDEX changes_szz_pending ON changes (seq) WHERE fix = 1 AND szz_done = 0;
    "#,
    // 7 → 8: the paths a default-branch commit changed (one per line), the flakiness model's
    // change evidence, so `omen merge` folds the same evidence again. NULL when not known.
    r#"
    ALTER TABLE runs ADD COLUMN changed TEXT;
    "#,
    // 8 → 9: known failure causes across runs, one row per omen_core::failure::Signature (its
    // hash as a signed 64-bit integer), and the tests each was seen in.
    r#"
    CREATE TABLE signatures (
        hash         INTEGER PRIMARY KEY,
        version      INTEGER NOT NULL,
        masked       TEXT NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        first_run    INTEGER NOT NULL,
        last_run     INTEGER NOT NULL,
        runs         INTEGER NOT NULL,
        default_runs INTEGER NOT NULL,
        failures     INTEGER NOT NULL
    );
    CREATE TABLE signature_tests (
        hash     INTEGER NOT NULL,
        key_hash INTEGER NOT NULL,
        PRIMARY KEY (hash, key_hash)
    ) WITHOUT ROWID;
    "#,
    // 9 → 10: change points found in default-branch duration series (omen_core::perf), one row
    // per change: a test's passing duration (test_id) or the run's total (test_id NULL), per job.
    // Derived data: `omen merge` does not copy it; the next default-branch run finds them again.
    r#"
    CREATE TABLE change_points (
        id           INTEGER PRIMARY KEY,
        test_id      INTEGER,
        job          TEXT NOT NULL,
        run          INTEGER NOT NULL,
        previous_run INTEGER,
        before_ms    REAL NOT NULL,
        after_ms     REAL NOT NULL,
        p_value      REAL NOT NULL,
        detected_run INTEGER NOT NULL,
        detected_at  INTEGER NOT NULL
    );
    CREATE INDEX change_points_series ON change_points (test_id, job, run);
    "#,
    // 10 → 11: how many distinct failure signatures (causes) a run's failures had, and how long
    // its job waited for a runner (ms), for the unusual-run model. NULL when not known. And
    // GitLab runs stored as job `name#CI_JOB_ID` (every run its own job) become job `name`, the
    // name `omen ci` now gives (the id stays in their run keys); change points alike. GitHub's
    // job ids cannot hold `#`.
    r#"
    ALTER TABLE runs ADD COLUMN causes INTEGER;
    ALTER TABLE runs ADD COLUMN queue_ms INTEGER;
    UPDATE runs SET job = substr(rtrim(job, '0123456789'), 1, length(rtrim(job, '0123456789')) - 1)
     WHERE rtrim(job, '0123456789') LIKE '_%#' AND rtrim(job, '0123456789') != job;
    UPDATE change_points SET job = substr(rtrim(job, '0123456789'), 1, length(rtrim(job, '0123456789')) - 1)
     WHERE rtrim(job, '0123456789') LIKE '_%#' AND rtrim(job, '0123456789') != job;
    "#,
];
