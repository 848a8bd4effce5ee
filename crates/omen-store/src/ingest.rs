//! Storing one run: the run row, its packed results, failure details and per-test histories.

use omen_core::hash::{Fnv1a64, commit_hash, fnv1a64};
use omen_core::history::{FailureSignature, Observation, TestHistory};
use omen_core::identity::derive_selector;
use omen_core::run::{BuildU64, OutageRule, RunMeta, TestResult};
use omen_core::{Failure, FailureKind, Outcome, Runner};
use std::collections::HashMap;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::Store;
use crate::error::{SqlContext, StoreError};
use crate::packed::{Packed, pack};

/// Storage settings.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Runs whose raw per-test results are kept; older runs keep only their summary row, their
    /// results having been folded into each test's history already. 300 covers the 128-result
    /// flakiness window several times over even when PR runs outnumber default-branch runs.
    pub keep_runs: u32,
    /// When a run counts as an outage.
    pub outage: OutageRule,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            keep_runs: 300,
            outage: OutageRule::default(),
        }
    }
}

/// One test's result, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRecord {
    /// Identity hash (see `omen_core::identity`).
    pub key_hash: u64,
    /// Normalised scope.
    pub scope: String,
    /// Normalised name.
    pub name: String,
    /// Normalised file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// Runner-native selector.
    pub selector: String,
    /// `selector` is known to be what `omen_core::identity::derive_selector` gives from the
    /// stored fields, so it is not stored. False means "compare" (always correct, slower).
    pub selector_derived: bool,
    /// The runner that wrote it.
    pub runner: Runner,
    /// Final outcome.
    pub outcome: Outcome,
    /// Passed and failed within the run.
    pub mixed: bool,
    /// Duration of the last attempt.
    pub duration_ms: Option<u32>,
    /// Failure details.
    pub failure: Option<Failure>,
}

impl From<TestResult> for ResultRecord {
    fn from(r: TestResult) -> Self {
        ResultRecord {
            key_hash: r.identity.hash,
            scope: r.identity.scope,
            name: r.identity.name,
            file: r.identity.file,
            line: r.line,
            selector: r.identity.selector,
            selector_derived: r.identity.selector_derived,
            runner: r.identity.runner,
            outcome: r.outcome,
            mixed: r.mixed,
            duration_ms: r.duration_ms,
            failure: r.failure,
        }
    }
}

/// What storing a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestOutcome {
    /// The run key was already stored: nothing changed.
    pub duplicate: bool,
    /// The run's row id.
    pub run: i64,
    /// Results stored.
    pub stored: u64,
    /// Tests seen for the first time.
    pub new_tests: u64,
    /// The run was classified as an outage.
    pub outage: bool,
    /// Older runs whose raw results were compacted away by this ingest.
    pub compacted_runs: u64,
}

/// The commit identity a run's observations carry. Without a commit, each run is its own
/// "commit": never invent same-commit evidence.
pub(crate) fn observed_commit(commit: Option<&str>, run_key: &str) -> u64 {
    match commit {
        Some(sha) if !sha.trim().is_empty() => commit_hash(sha),
        _ => fnv1a64(run_key.as_bytes()),
    }
}

impl Store {
    /// Store one run under `run_key`. Idempotent: a key already stored changes nothing.
    pub fn ingest(
        &mut self,
        meta: &RunMeta,
        run_key: &str,
        results: Vec<ResultRecord>,
        config: &StoreConfig,
    ) -> Result<IngestOutcome, StoreError> {
        self.ingest_with(meta, run_key, results, config, None)
    }

    /// Every test's row, read ahead of [`Store::ingest_with`] (on another thread while the
    /// reports are parsed: the scan costs as much as a tenth of a large run's ingest).
    pub fn read_tests(&self) -> Result<TestsRead, StoreError> {
        let path = self.path.as_path();
        let version = data_version(&self.conn, path)?;
        let total = self.test_count()?;
        Ok(TestsRead {
            version,
            tests: preload(&self.conn, path, total as usize)?,
        })
    }

    /// [`Store::read_tests`] when reports of `report_bytes` likely hold enough results for the
    /// one-scan path ([`read_ahead_pays`]); `None` otherwise.
    pub fn read_tests_for(&self, report_bytes: u64) -> Result<Option<TestsRead>, StoreError> {
        if read_ahead_pays(report_bytes, self.test_count()?) {
            self.read_tests().map(Some)
        } else {
            Ok(None)
        }
    }

    fn test_count(&self) -> Result<u64, StoreError> {
        let total: i64 = self
            .conn
            .query_row("SELECT count(*) FROM tests", [], |r| r.get(0))
            .ctx(&self.path, "count tests")?;
        Ok(total.max(0) as u64)
    }

    /// [`Store::ingest`] with the tests read ahead by [`Store::read_tests`] on this connection.
    /// They are used only if no other connection committed since they were read (`PRAGMA
    /// data_version`, checked under the write lock); otherwise they are read again, so a
    /// concurrent shard's results are never overwritten.
    pub fn ingest_with(
        &mut self,
        meta: &RunMeta,
        run_key: &str,
        mut results: Vec<ResultRecord>,
        config: &StoreConfig,
        read: Option<TestsRead>,
    ) -> Result<IngestOutcome, StoreError> {
        let path = self.path.clone();
        let path = path.as_path();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "start a transaction")?;
        let existing: Option<i64> = tx
            .query_row("SELECT id FROM runs WHERE run_key = ?1", [run_key], |r| {
                r.get(0)
            })
            .optional()
            .ctx(path, "look up the run")?;
        if let Some(run) = existing {
            return Ok(IngestOutcome {
                duplicate: true,
                run,
                ..IngestOutcome::default()
            });
        }
        keep_last_per_identity(&mut results);
        let summary = RunSummary::of(&results, config, meta.is_default_branch());
        let run = insert_run(&tx, path, meta, run_key, &summary)?;
        let commit = observed_commit(meta.commit.as_deref(), run_key);
        let mut packed = Vec::with_capacity(results.len());
        // Failure signature → (masked first line, the tests that failed with it).
        let mut causes: HashMap<u64, (String, Vec<u64>)> = HashMap::new();
        // Change evidence counts only on the default branch, like every flakiness evidence.
        let change = meta
            .change
            .as_ref()
            .filter(|c| summary.is_default && !c.is_empty());
        let new_tests = {
            let read = match read {
                Some(read) if data_version(&tx, path)? == read.version => Some(read.tests),
                Some(_) => {
                    tracing::debug!("another writer committed since the tests were read");
                    None
                }
                None => None,
            };
            let mut writer = TestWriter::prepare(&tx, path, results.len(), read)?;
            // Every result is looked up first, then the known tests are updated in row order:
            // the table is then written front to back instead of at 100,000 random places.
            let mut rows = Vec::with_capacity(results.len());
            for (i, r) in results.iter().enumerate() {
                rows.push((i, writer.lookup(r)?));
            }
            rows.sort_by_key(|(i, (_, lookup))| match lookup {
                Lookup::Found(id, _) => (0, *id),
                _ => (1, *i as i64),
            });
            for (i, (slot, lookup)) in rows {
                let r = &results[i];
                // Once per failure: the history's evidence and the causes table both use it.
                let signature = r
                    .failure
                    .as_ref()
                    .map(|f| omen_core::failure::Signature::of(&f.as_text()));
                let observation = Observation {
                    outcome: r.outcome,
                    mixed: r.mixed,
                    default_branch: summary.is_default,
                    commit,
                    at: meta.at,
                    run: run as u64,
                    duration_ms: r.duration_ms,
                    failure_signature: r
                        .failure
                        .as_ref()
                        .zip(signature.as_ref())
                        .and_then(|(f, s)| FailureSignature::with(f, s)),
                    outage: summary.outage,
                    touched: change
                        .is_some_and(|c| c.touches(&r.scope, &r.name, r.file.as_deref())),
                };
                let test_id = writer.observe(r, slot, lookup, &observation)?;
                writer.store_failure(test_id, run, r)?;
                if r.outcome.is_failure()
                    && let Some(sig) = signature
                {
                    let entry = causes
                        .entry(sig.hash)
                        .or_insert_with(|| (sig.masked, Vec::new()));
                    entry.1.push(r.key_hash);
                }
                packed.push(Packed {
                    test_id,
                    outcome: r.outcome,
                    mixed: r.mixed,
                    duration_ms: r.duration_ms,
                });
            }
            writer.new_tests
        };
        record_signatures(&tx, path, run, meta.at, summary.is_default, &causes)?;
        tx.execute(
            "UPDATE runs SET results = ?2, causes = ?3 WHERE id = ?1",
            params![run, pack(&mut packed), causes.len() as i64],
        )
        .ctx(path, "store the run's results")?;
        let compacted_runs = compact(&tx, path, config.keep_runs)?;
        tx.commit().ctx(path, "commit the run")?;
        Ok(IngestOutcome {
            duplicate: false,
            run,
            stored: results.len() as u64,
            new_tests,
            outage: summary.outage,
            compacted_runs,
        })
    }
}

impl Store {
    /// Record how long run `run`'s job waited for a runner, ms, learnt after the run was stored.
    pub fn set_queue_ms(&mut self, run: i64, ms: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET queue_ms = ?2 WHERE id = ?1",
                params![run, sql_integer(ms)],
            )
            .map(|_| ())
            .ctx(&self.path, "store the run's queue time")
    }

    /// Count failure signature `hash` (masked first line `masked`) once for run `run`, which
    /// no test report showed: the cause of a job's log (`omen ci --log`), one more of the run's
    /// [`RunRow::causes`](crate::RunRow::causes). Counting the same run again changes nothing.
    pub fn record_run_signature(
        &mut self,
        run: i64,
        at: i64,
        is_default: bool,
        hash: u64,
        masked: &str,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let path = path.as_path();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(path, "start a transaction")?;
        let last: Option<i64> = tx
            .query_row(
                "SELECT last_run FROM signatures WHERE hash = ?1",
                [hash as i64],
                |r| r.get(0),
            )
            .optional()
            .ctx(path, "look up a failure signature")?;
        if last == Some(run) {
            return Ok(());
        }
        let causes = HashMap::from([(hash, (masked.to_owned(), Vec::new()))]);
        record_signatures(&tx, path, run, at, is_default, &causes)?;
        tx.execute(
            "UPDATE runs SET causes = coalesce(causes, 0) + 1 WHERE id = ?1",
            [run],
        )
        .ctx(path, "count the run's causes")?;
        tx.commit().ctx(path, "commit a failure signature")
    }
}

/// Count this run's failure signatures: a new row per signature never seen, else one more run
/// (and default-branch run) and its failures, with the first and last time seen.
fn record_signatures(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    run: i64,
    at: i64,
    is_default: bool,
    causes: &HashMap<u64, (String, Vec<u64>)>,
) -> Result<(), StoreError> {
    if causes.is_empty() {
        return Ok(());
    }
    let mut upsert = tx
        .prepare_cached(
            "INSERT INTO signatures (hash, version, masked, first_seen, last_seen, first_run, last_run,
                                     runs, default_runs, failures)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?5, 1, ?6, ?7)
             ON CONFLICT (hash) DO UPDATE SET
                 first_seen = min(first_seen, excluded.first_seen),
                 last_seen = max(last_seen, excluded.last_seen),
                 last_run = excluded.last_run,
                 runs = runs + 1,
                 default_runs = default_runs + excluded.default_runs,
                 failures = failures + excluded.failures",
        )
        .ctx(path, "prepare the signature upsert")?;
    let mut test = tx
        .prepare_cached("INSERT OR IGNORE INTO signature_tests (hash, key_hash) VALUES (?1, ?2)")
        .ctx(path, "prepare the signature tests insert")?;
    for (hash, (masked, tests)) in causes {
        let h = *hash as i64;
        upsert
            .execute(params![
                h,
                omen_core::failure::SIGNATURE_VERSION,
                masked.chars().take(500).collect::<String>(),
                at,
                run,
                i64::from(is_default),
                tests.len() as i64
            ])
            .ctx(path, "store a failure signature")?;
        for key in tests {
            test.execute(params![h, *key as i64])
                .ctx(path, "store a failure signature's test")?;
        }
    }
    Ok(())
}

/// One result per identity (scope and name, not only the hash), the last one winning; callers
/// fold retries before this, so this only guards against a caller that did not. Distinct hashes
/// prove distinct identities, so the exact check runs only when two hashes are equal.
fn keep_last_per_identity(results: &mut Vec<ResultRecord>) {
    let mut hashes: std::collections::HashSet<u64, BuildU64> =
        std::collections::HashSet::with_capacity_and_hasher(results.len(), BuildU64::default());
    if results.iter().all(|r| hashes.insert(r.key_hash)) {
        return;
    }
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(results.len());
    for (i, r) in results.iter().enumerate() {
        last.insert((r.scope.as_str(), r.name.as_str()), i);
    }
    if last.len() == results.len() {
        return;
    }
    let keep: std::collections::HashSet<usize> = last.into_values().collect();
    let mut i = 0;
    results.retain(|_| {
        let k = keep.contains(&i);
        i += 1;
        k
    });
}

/// The run row's counts.
struct RunSummary {
    tests: usize,
    failed: usize,
    skipped: usize,
    mixed: usize,
    outage: bool,
    duration_ms: u64,
    is_default: bool,
}

impl RunSummary {
    fn of(results: &[ResultRecord], config: &StoreConfig, is_default: bool) -> RunSummary {
        let ran = results
            .iter()
            .filter(|r| r.outcome != Outcome::Skipped)
            .count();
        let failed = results.iter().filter(|r| r.outcome.is_failure()).count();
        RunSummary {
            tests: results.len(),
            failed,
            skipped: results.len() - ran,
            mixed: results.iter().filter(|r| r.mixed).count(),
            outage: config.outage.applies(ran, failed),
            duration_ms: results
                .iter()
                .filter_map(|r| r.duration_ms)
                .map(u64::from)
                .sum(),
            is_default,
        }
    }
}

fn insert_run(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    meta: &RunMeta,
    run_key: &str,
    s: &RunSummary,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO runs (run_key, run_id, attempt, job, commit_sha, branch, default_branch,
             pull_request, is_default, at, tests, failed, skipped, mixed, outage, duration_ms,
             changed, queue_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            run_key,
            meta.run_id,
            meta.attempt,
            meta.job,
            meta.commit,
            meta.branch,
            meta.default_branch,
            meta.pull_request.map(|n| n as i64),
            s.is_default,
            meta.at,
            s.tests as i64,
            s.failed as i64,
            s.skipped as i64,
            s.mixed as i64,
            s.outage,
            s.duration_ms as i64,
            meta.change
                .as_ref()
                .filter(|_| s.is_default)
                .map(|c| c.paths().collect::<Vec<_>>().join("\n")),
            meta.queue_ms.map(sql_integer),
        ],
    )
    .ctx(path, "insert the run")?;
    Ok(tx.last_insert_rowid())
}

/// Writes each result into its test's row: looks the test up (probing past hash collisions),
/// folds the observation into its history, inserts tests seen for the first time, stores failure
/// details. Statements are prepared once per run.
struct TestWriter<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    path: &'t std::path::Path,
    find: rusqlite::CachedStatement<'t>,
    insert: rusqlite::CachedStatement<'t>,
    update: rusqlite::CachedStatement<'t>,
    insert_failure: rusqlite::CachedStatement<'t>,
    preloaded: Option<HashMap<u64, Preloaded, BuildU64>>,
    /// Slots given to tests first seen in this run: taken, though not yet written.
    taken: std::collections::HashSet<u64, BuildU64>,
    new_tests: u64,
}

impl<'t> TestWriter<'t> {
    fn prepare(
        tx: &'t rusqlite::Transaction<'t>,
        path: &'t std::path::Path,
        results: usize,
        read: Option<HashMap<u64, Preloaded, BuildU64>>,
    ) -> Result<TestWriter<'t>, StoreError> {
        let find = tx
            .prepare_cached("SELECT id, scope, name, history FROM tests WHERE key_hash = ?1")
            .ctx(path, "prepare the test lookup")?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO tests (key_hash, scope, name, file, line, selector, runner, history)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .ctx(path, "prepare the test insert")?;
        let update = tx
            .prepare_cached(
                "UPDATE tests SET history = ?2, file = coalesce(?3, file), line = coalesce(?4, line)
                 WHERE id = ?1",
            )
            .ctx(path, "prepare the test update")?;
        let insert_failure = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO failures (test_id, run, kind, type, message, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .ctx(path, "prepare the failure insert")?;
        // A run that touches a large share of the tests reads them in one sequential scan
        // instead of one index lookup each (100,000 lookups cost several times the scan).
        let preloaded = match read {
            Some(read) => Some(read),
            None => {
                let total: i64 = tx
                    .query_row("SELECT count(*) FROM tests", [], |r| r.get(0))
                    .ctx(path, "count tests")?;
                if results >= 1_000 && results as i64 * 4 >= total {
                    Some(preload(tx, path, total as usize)?)
                } else {
                    None
                }
            }
        };
        Ok(TestWriter {
            tx,
            path,
            find,
            insert,
            update,
            insert_failure,
            preloaded,
            taken: Default::default(),
            new_tests: 0,
        })
    }

    /// The test's row id and stored history ([`Lookup::Found`]) at the first slot from
    /// `r.key_hash` that holds it, or [`Lookup::Missing`] and the free slot where it belongs,
    /// which is then taken. Each identity is looked up once per run.
    fn lookup(&mut self, r: &ResultRecord) -> Result<(u64, Lookup), StoreError> {
        let mut slot = r.key_hash;
        for _ in 0..8 {
            let lookup = match &mut self.preloaded {
                _ if self.taken.contains(&slot) => Lookup::Collision,
                Some(all) => match all.get_mut(&slot) {
                    None => Lookup::Missing,
                    Some(p) if p.check != identity_check(&r.scope, &r.name) => Lookup::Collision,
                    // Leave the entry in place: a colliding test probes past it.
                    Some(p) => Lookup::Found(p.id, std::mem::take(&mut p.history)),
                },
                None => match self
                    .find
                    .query_row([slot as i64], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, Vec<u8>>(3)?,
                        ))
                    })
                    .optional()
                    .ctx(self.path, "look up a test")?
                {
                    None => Lookup::Missing,
                    Some((_, scope, name, _)) if scope != r.scope || name != r.name => {
                        Lookup::Collision
                    }
                    Some((id, _, _, history)) => Lookup::Found(id, history),
                },
            };
            match lookup {
                found @ Lookup::Found(..) => return Ok((slot, found)),
                Lookup::Collision => slot = slot.wrapping_add(1),
                Lookup::Missing => break,
            }
        }
        self.taken.insert(slot);
        Ok((slot, Lookup::Missing))
    }

    /// Fold `observation` into the history of the test that [`TestWriter::lookup`] found, or
    /// create the test in the slot it gave; the test's row id.
    fn observe(
        &mut self,
        r: &ResultRecord,
        slot: u64,
        lookup: Lookup,
        observation: &Observation,
    ) -> Result<i64, StoreError> {
        let path = self.path;
        match lookup {
            Lookup::Found(id, bytes) => {
                let mut history = TestHistory::decode(&bytes).unwrap_or_else(|err| {
                    tracing::warn!(test = %r.name, "stored history unreadable ({err}); starting it afresh");
                    TestHistory::default()
                });
                history.observe(observation);
                self.update
                    .execute(params![id, history.encode(), r.file, r.line])
                    .ctx(path, "update a test")?;
                Ok(id)
            }
            Lookup::Missing | Lookup::Collision => {
                let selector = if r.selector_derived {
                    None
                } else {
                    let derived = derive_selector(r.runner, &r.scope, &r.name, r.file.as_deref());
                    (derived != r.selector).then_some(r.selector.as_str())
                };
                let mut history = TestHistory::default();
                history.observe(observation);
                self.insert
                    .execute(params![
                        slot as i64,
                        r.scope,
                        r.name,
                        r.file,
                        r.line,
                        selector,
                        r.runner.as_str(),
                        history.encode()
                    ])
                    .ctx(path, "insert a test")?;
                self.new_tests += 1;
                Ok(self.tx.last_insert_rowid())
            }
        }
    }

    /// Store the failure details of a failed (or mixed) result.
    fn store_failure(
        &mut self,
        test_id: i64,
        run: i64,
        r: &ResultRecord,
    ) -> Result<(), StoreError> {
        if let Some(f) = &r.failure
            && (r.outcome.is_failure() || r.mixed)
        {
            self.insert_failure
                .execute(params![
                    test_id,
                    run,
                    matches!(f.kind, Some(FailureKind::Error)) as i64,
                    f.r#type,
                    f.message,
                    f.text
                ])
                .ctx(self.path, "store a failure")?;
        }
        Ok(())
    }
}

/// The one-scan path pays when a run holds at least 1,000 results and a quarter of the tests
/// (`TestWriter::prepare`'s rule). Before parsing, the results are estimated from the reports'
/// size at 200 bytes a case (a bare pytest case is about 150; captured output makes it more).
pub fn read_ahead_pays(report_bytes: u64, tests: u64) -> bool {
    let cases = report_bytes / 200;
    cases >= 1_000 && cases * 4 >= tests
}

/// Tests read ahead of a run by [`Store::read_tests`].
pub struct TestsRead {
    /// `PRAGMA data_version` when they were read.
    version: i64,
    tests: HashMap<u64, Preloaded, BuildU64>,
}

impl std::fmt::Debug for TestsRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestsRead({} tests)", self.tests.len())
    }
}

/// The connection's view of other connections' commits: it changes when one committed.
fn data_version(conn: &rusqlite::Connection, path: &std::path::Path) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .ctx(path, "read the data version")
}

/// Every test's id, identity check and history, by identity hash: the one-scan path.
fn preload(
    tx: &rusqlite::Connection,
    path: &std::path::Path,
    total: usize,
) -> Result<HashMap<u64, Preloaded, BuildU64>, StoreError> {
    let mut all = HashMap::with_capacity_and_hasher(total, BuildU64::default());
    let mut scan = tx
        .prepare("SELECT key_hash, id, scope, name, history FROM tests")
        .ctx(path, "prepare the test scan")?;
    let mut rows = scan.query([]).ctx(path, "scan tests")?;
    while let Some(row) = rows.next().ctx(path, "scan tests")? {
        let scope = row
            .get_ref(2)
            .ctx(path, "scan tests")?
            .as_str()
            .unwrap_or_default();
        let name = row
            .get_ref(3)
            .ctx(path, "scan tests")?
            .as_str()
            .unwrap_or_default();
        all.insert(
            row.get::<_, i64>(0).ctx(path, "scan tests")? as u64,
            Preloaded {
                id: row.get(1).ctx(path, "scan tests")?,
                check: identity_check(scope, name),
                history: row.get(4).ctx(path, "scan tests")?,
            },
        );
    }
    Ok(all)
}

/// A test read by the one-scan path: enough to tell a hash collision apart without its strings.
struct Preloaded {
    id: i64,
    /// [`identity_check`] of its scope and name.
    check: u64,
    history: Vec<u8>,
}

/// A second hash of an identity, independent of `key_hash` (other input framing), used to detect
/// collisions without keeping 100,000 scope and name strings in memory.
fn identity_check(scope: &str, name: &str) -> u64 {
    Fnv1a64::default()
        .update(b"\x01")
        .update(scope.as_bytes())
        .update(&[0])
        .update(name.as_bytes())
        .finish()
}

/// The outcome of looking up one identity slot.
enum Lookup {
    /// The test, with its stored history.
    Found(i64, Vec<u8>),
    /// Another test has this hash: probe the next slot.
    Collision,
    /// No test in this slot.
    Missing,
}

/// Drop raw results and failure details of runs older than the newest `keep_runs`.
fn compact(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    keep_runs: u32,
) -> Result<u64, StoreError> {
    let threshold: Option<i64> = tx
        .query_row(
            "SELECT id FROM runs WHERE results IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?1",
            [i64::from(keep_runs.max(1)) - 1],
            |r| r.get(0),
        )
        .optional()
        .ctx(path, "find the compaction threshold")?;
    let Some(threshold) = threshold else {
        return Ok(0);
    };
    let compacted = tx
        .execute(
            "UPDATE runs SET results = NULL WHERE id < ?1 AND results IS NOT NULL",
            [threshold],
        )
        .ctx(path, "compact old runs")?;
    tx.execute("DELETE FROM failures WHERE run < ?1", [threshold])
        .ctx(path, "compact old failures")?;
    Ok(compacted as u64)
}

/// `value` as SQLite stores integers (signed 64-bit), saturating.
fn sql_integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
