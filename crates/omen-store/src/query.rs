//! Reading the history back.

use std::collections::{HashMap, HashSet};

use omen_core::flakiness::{FlakinessConfig, State, assess};
use omen_core::history::TestHistory;
use omen_core::identity::derive_selector;
use omen_core::quarantine::{Candidate, QuarantineInputs};
use omen_core::{Failure, FailureKind, Runner};
use rusqlite::{OptionalExtension, params};

use crate::Store;
use crate::error::{SqlContext, StoreError};
use crate::packed::{Packed, unpack};
use omen_core::codec::DecodeError;

/// One test and its history.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRow {
    /// Row id.
    pub id: i64,
    /// Identity hash.
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
    /// Runner name.
    pub runner: String,
    /// The history summary.
    pub history: TestHistory,
}

/// One stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Row id (run number, increasing with ingest order).
    pub id: i64,
    /// Idempotency key.
    pub run_key: String,
    /// CI run id.
    pub run_id: Option<String>,
    /// Attempt.
    pub attempt: u32,
    /// Job name.
    pub job: Option<String>,
    /// Commit SHA.
    pub commit: Option<String>,
    /// Branch.
    pub branch: Option<String>,
    /// Default branch.
    pub default_branch: Option<String>,
    /// Pull request number.
    pub pull_request: Option<u64>,
    /// On the default branch.
    pub is_default: bool,
    /// Unix seconds.
    pub at: i64,
    /// Results stored.
    pub tests: u64,
    /// Failed results.
    pub failed: u64,
    /// Skipped results.
    pub skipped: u64,
    /// Results that passed and failed within the run.
    pub mixed: u64,
    /// Classified as an outage.
    pub outage: bool,
    /// Sum of test durations.
    pub duration_ms: u64,
    /// Raw results still kept (not compacted).
    pub has_results: bool,
    /// The paths the commit changed since the previous default-branch commit, one per line,
    /// when they were known ([`omen_core::run::RunMeta::change`]).
    pub changed: Option<String>,
    /// Distinct failure signatures among the run's failures: how many causes it failed for.
    /// `None` for runs stored before Omen counted them.
    pub causes: Option<u64>,
    /// How long the job waited for a runner, ms, when the CI told.
    pub queue_ms: Option<u64>,
}

/// A failure signature as the history knows it (`omen_core::failure::Signature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRow {
    /// The masked first line.
    pub masked: String,
    /// Unix seconds of the first and the last run it failed in.
    pub first_seen: i64,
    /// See `first_seen`.
    pub last_seen: i64,
    /// The first and the last run (row ids).
    pub first_run: i64,
    /// See `first_run`.
    pub last_run: i64,
    /// Runs it failed in, and how many of them were on the default branch.
    pub runs: u64,
    /// See `runs`.
    pub default_runs: u64,
    /// Failures counted with it.
    pub failures: u64,
    /// Distinct tests it failed in.
    pub tests: u64,
}

/// Size figures for the whole database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Distinct tests.
    pub tests: u64,
    /// Runs stored.
    pub runs: u64,
    /// Results ever stored (sum over all runs, compacted ones included).
    pub results: u64,
    /// Results whose raw form is still kept.
    pub raw_results: u64,
    /// Bytes the database occupies (page count × page size).
    pub bytes: u64,
}

impl Store {
    /// Database size figures.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let path = &self.path;
        let (tests, runs, results, raw_results): (i64, i64, i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM tests), count(*), coalesce(sum(tests), 0),
                        coalesce(sum(CASE WHEN results IS NOT NULL THEN tests ELSE 0 END), 0)
                 FROM runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .ctx(path, "count rows")?;
        let bytes: i64 = self
            .conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
                [],
                |r| r.get(0),
            )
            .ctx(path, "measure the database")?;
        Ok(Stats {
            tests: tests as u64,
            runs: runs as u64,
            results: results as u64,
            raw_results: raw_results as u64,
            bytes: bytes as u64,
        })
    }

    /// Call `f` for every test, in id order.
    pub fn for_each_test(&self, f: impl FnMut(TestRow)) -> Result<(), StoreError> {
        self.select_tests("ORDER BY id", [], f)
    }

    fn select_tests(
        &self,
        tail: &str,
        params: impl rusqlite::Params,
        mut f: impl FnMut(TestRow),
    ) -> Result<(), StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, scope, name, file, line, selector, runner, history, key_hash FROM tests {tail}"
            ))
            .ctx(path, "prepare the test query")?;
        let mut rows = stmt.query(params).ctx(path, "read tests")?;
        while let Some(row) = rows.next().ctx(path, "read tests")? {
            let bytes: Vec<u8> = row.get(7).ctx(path, "read a history")?;
            let name: String = row.get(2).ctx(path, "read a test")?;
            let history = TestHistory::decode(&bytes).unwrap_or_else(|err| {
                tracing::warn!(test = %name, "stored history unreadable ({err}); treating it as empty");
                TestHistory::default()
            });
            let scope: String = row.get(1).ctx(path, "read a test")?;
            let file: Option<String> = row.get(3).ctx(path, "read a test")?;
            let runner: String = row.get(6).ctx(path, "read a test")?;
            let selector = match row.get::<_, Option<String>>(5).ctx(path, "read a test")? {
                Some(s) => s,
                None => derive_selector(Runner::from_name(&runner), &scope, &name, file.as_deref()),
            };
            f(TestRow {
                id: row.get(0).ctx(path, "read a test")?,
                key_hash: row.get::<_, i64>(8).ctx(path, "read a test")? as u64,
                scope,
                name,
                file,
                line: row.get(4).ctx(path, "read a test")?,
                selector,
                runner,
                history,
            });
        }
        Ok(())
    }

    /// Call `f` with the id, identity hash and history of every test: the fast path for scoring,
    /// which needs the identity strings of only the few tests it reports.
    pub fn for_each_history(
        &self,
        mut f: impl FnMut(i64, u64, &TestHistory),
    ) -> Result<(), StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, key_hash, history FROM tests")
            .ctx(path, "prepare the history scan")?;
        let mut rows = stmt.query([]).ctx(path, "scan histories")?;
        while let Some(row) = rows.next().ctx(path, "scan histories")? {
            let id: i64 = row.get(0).ctx(path, "read a history")?;
            let key_hash = row.get::<_, i64>(1).ctx(path, "read a history")? as u64;
            let bytes = row
                .get_ref(2)
                .ctx(path, "read a history")?
                .as_blob()
                .unwrap_or_default();
            let history = TestHistory::decode(bytes).unwrap_or_else(|err| {
                tracing::warn!(
                    test_id = id,
                    "stored history unreadable ({err}); treating it as empty"
                );
                TestHistory::default()
            });
            f(id, key_hash, &history);
        }
        Ok(())
    }

    /// What quarantine regeneration needs from the history: every test that is flaky now or has
    /// an entry under `listed` (stored keys), with its assessment; the tests released before; the
    /// suite size. Identity strings are read only for those tests, not for the whole suite.
    pub fn quarantine_inputs<'a>(
        &self,
        listed: impl IntoIterator<Item = &'a str>,
        config: &FlakinessConfig,
    ) -> Result<QuarantineInputs, StoreError> {
        let listed: HashSet<u64> = listed
            .into_iter()
            .map(|key| omen_core::hash::fnv1a64(key.as_bytes()))
            .collect();
        let mut wanted = Vec::new();
        let mut suite = 0usize;
        self.for_each_history(|id, key_hash, history| {
            if history.db_runs > 0 {
                suite += 1;
            }
            let a = assess(history, config);
            if a.state == State::Flaky || listed.contains(&key_hash) {
                wanted.push((id, a));
            }
        })?;
        let mut candidates = HashMap::with_capacity(wanted.len());
        for (id, assessment) in wanted {
            let Some(row) = self.test(id)? else { continue };
            let key = omen_core::identity::key_of(&row.scope, &row.name);
            candidates.insert(
                key,
                Candidate {
                    key_hash: row.key_hash,
                    selector: row.selector,
                    runner: row.runner,
                    scope: row.scope,
                    name: row.name,
                    file: row.file,
                    history: row.history,
                    assessment,
                },
            );
        }
        Ok(QuarantineInputs {
            candidates,
            released_before: self.released_tests()?,
            suite,
        })
    }

    /// The test with this identity (`scope::name`), probing past hash collisions like ingest does.
    pub fn find_test(&self, scope: &str, name: &str) -> Result<Option<TestRow>, StoreError> {
        let mut slot =
            omen_core::hash::fnv1a64(omen_core::identity::key_of(scope, name).as_bytes());
        for _ in 0..8 {
            let mut found = None;
            self.select_tests("WHERE key_hash = ?1", [slot as i64], |row| {
                found = Some(row)
            })?;
            match found {
                Some(row) if row.scope == scope && row.name == name => return Ok(Some(row)),
                Some(_) => slot = slot.wrapping_add(1),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// One test by id.
    pub fn test(&self, id: i64) -> Result<Option<TestRow>, StoreError> {
        let mut found = None;
        self.select_tests("WHERE id = ?1", [id], |row| found = Some(row))?;
        Ok(found)
    }

    /// The failure signature `hash`, when some run failed with it.
    pub fn signature(&self, hash: u64) -> Result<Option<SignatureRow>, StoreError> {
        let h = hash as i64;
        self.conn
            .prepare_cached(
                "SELECT masked, first_seen, last_seen, first_run, last_run, runs, default_runs, failures,
                        (SELECT count(*) FROM signature_tests WHERE hash = ?1)
                 FROM signatures WHERE hash = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([h], |r| {
                    Ok(SignatureRow {
                        masked: r.get(0)?,
                        first_seen: r.get(1)?,
                        last_seen: r.get(2)?,
                        first_run: r.get(3)?,
                        last_run: r.get(4)?,
                        runs: r.get::<_, i64>(5)? as u64,
                        default_runs: r.get::<_, i64>(6)? as u64,
                        failures: r.get::<_, i64>(7)? as u64,
                        tests: r.get::<_, i64>(8)? as u64,
                    })
                })
                .optional()
            })
            .ctx(&self.path, "read a failure signature")
    }

    /// The `limit` signatures seen last (hash and masked line), newest first: what the learned
    /// failure classifier trains on.
    pub fn recent_signatures(&self, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT hash, masked FROM signatures ORDER BY last_seen DESC, hash LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                })?
                .collect()
            })
            .ctx(&self.path, "read the recent failure signatures")
    }

    /// The tests that failed (finally, or before passing on a retry) in each of the newest
    /// `limit` default-branch runs whose results are kept, of job `job` when given, oldest
    /// first: what systemic failures are found in.
    pub fn default_run_failures(
        &self,
        limit: u32,
        job: Option<&str>,
    ) -> Result<Vec<(i64, Vec<i64>)>, StoreError> {
        let path = &self.path;
        let runs: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT id FROM runs
                 WHERE is_default = 1 AND results IS NOT NULL AND (?2 IS NULL OR job = ?2)
                 ORDER BY at DESC, id DESC LIMIT ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params![limit, job], |r| r.get(0))?
                    .collect()
            })
            .ctx(path, "read the default branch's runs")?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT test_id FROM failures WHERE run = ?1")
            .ctx(path, "prepare the runs' failures")?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs.into_iter().rev() {
            let tests = stmt
                .query_map([run], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<i64>, _>>())
                .ctx(path, "read the runs' failures")?;
            out.push((run, tests));
        }
        Ok(out)
    }

    /// All runs, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.select_runs("ORDER BY at, id", [])
    }

    /// One run by id.
    pub fn run(&self, id: i64) -> Result<Option<RunRow>, StoreError> {
        Ok(self.select_runs("WHERE id = ?1", [id])?.pop())
    }

    /// The newest `limit` default-branch runs, oldest first.
    pub fn recent_default_runs(&self, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let mut runs = self.select_runs(
            "WHERE is_default = 1 ORDER BY at DESC, id DESC LIMIT ?1",
            [limit],
        )?;
        runs.reverse();
        Ok(runs)
    }

    fn select_runs(
        &self,
        tail: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<RunRow>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, run_key, run_id, attempt, job, commit_sha, branch, default_branch, pull_request,
                        is_default, at, tests, failed, skipped, mixed, outage, duration_ms, results IS NOT NULL,
                        changed, causes, queue_ms
                 FROM runs {tail}"
            ))
            .ctx(path, "prepare the run query")?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    run_key: r.get(1)?,
                    run_id: r.get(2)?,
                    attempt: r.get(3)?,
                    job: r.get(4)?,
                    commit: r.get(5)?,
                    branch: r.get(6)?,
                    default_branch: r.get(7)?,
                    pull_request: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
                    is_default: r.get(9)?,
                    at: r.get(10)?,
                    tests: r.get::<_, i64>(11)? as u64,
                    failed: r.get::<_, i64>(12)? as u64,
                    skipped: r.get::<_, i64>(13)? as u64,
                    mixed: r.get::<_, i64>(14)? as u64,
                    outage: r.get(15)?,
                    duration_ms: r.get::<_, i64>(16)? as u64,
                    has_results: r.get(17)?,
                    changed: r.get(18)?,
                    causes: r.get::<_, Option<i64>>(19)?.map(|n| n as u64),
                    queue_ms: r.get::<_, Option<i64>>(20)?.map(|n| n as u64),
                })
            })
            .ctx(path, "read runs")?;
        rows.collect::<Result<Vec<_>, _>>().ctx(path, "read runs")
    }

    /// The commit of the newest default-branch run on a commit other than `commit`: the base
    /// against which `commit`'s change is read (a re-run of `commit` has the same base).
    pub fn previous_default_commit(&self, commit: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT commit_sha FROM runs
                 WHERE is_default = 1 AND commit_sha IS NOT NULL AND commit_sha != ?1
                 ORDER BY id DESC LIMIT 1",
                [commit],
                |r| r.get(0),
            )
            .optional()
            .ctx(&self.path, "read the previous default-branch commit")
    }

    /// Identity hashes of tests that were automatically released from quarantine before.
    pub fn released_tests(&self) -> Result<HashSet<u64>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key_hash FROM quarantine_releases")
            .ctx(path, "prepare the release query")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0).map(|k| k as u64))
            .ctx(path, "read releases")?;
        rows.collect::<Result<_, _>>().ctx(path, "read releases")
    }

    /// Remember that a test was automatically released at `at`.
    pub fn record_release(&self, key_hash: u64, at: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO quarantine_releases (key_hash, released_at) VALUES (?1, ?2)",
                params![key_hash as i64, at],
            )
            .map(|_| ())
            .ctx(&self.path, "record a quarantine release")
    }

    /// The raw results of run `id` (empty when compacted).
    pub fn run_results(&self, id: i64) -> Result<Vec<Packed>, StoreError> {
        let path = &self.path;
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT results FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .ctx(path, "read a run")?
            .flatten();
        match blob {
            None => Ok(Vec::new()),
            Some(bytes) => self.decode_results(id, &bytes),
        }
    }

    /// Decode run `id`'s packed results; an undecodable blob is `StoreError::Unusable`.
    pub(crate) fn decode_results(&self, id: i64, bytes: &[u8]) -> Result<Vec<Packed>, StoreError> {
        unpack(bytes).map_err(|err| self.decode_error(id, &err))
    }

    /// The error for run `id`'s results that cannot be decoded.
    pub(crate) fn decode_error(&self, id: i64, err: &DecodeError) -> StoreError {
        StoreError::Unusable {
            path: self.path.clone(),
            reason: format!("the results of run {id} cannot be decoded: {err}"),
        }
    }

    /// The failures recorded in run `run` (failed results, and results that passed on a
    /// retry), by test id.
    pub fn run_failures(&self, run: i64) -> Result<Vec<(i64, Failure)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT test_id, kind, type, message, text FROM failures WHERE run = ?1
                 ORDER BY test_id",
            )
            .ctx(&self.path, "prepare the run's failures")?;
        let rows = stmt
            .query_map([run], |r| Ok((r.get::<_, i64>(0)?, failure_at(r, 1)?)))
            .ctx(&self.path, "read the run's failures")?;
        rows.collect::<Result<_, _>>()
            .ctx(&self.path, "read the run's failures")
    }

    /// The run stored last.
    pub fn latest_run(&self) -> Result<Option<RunRow>, StoreError> {
        Ok(self.select_runs("ORDER BY id DESC LIMIT 1", [])?.pop())
    }

    /// The failure recorded for `test_id` in run `run`.
    pub fn failure(&self, test_id: i64, run: i64) -> Result<Option<Failure>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT kind, type, message, text FROM failures WHERE test_id = ?1 AND run = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![test_id, run], |r| failure_at(r, 0))
                    .optional()
            })
            .ctx(&self.path, "read a failure")
    }

    /// The newest failure kept for `test_id`, with its run id.
    pub fn last_failure(&self, test_id: i64) -> Result<Option<(i64, Failure)>, StoreError> {
        let run: Option<i64> = self
            .conn
            .prepare_cached("SELECT max(run) FROM failures WHERE test_id = ?1")
            .and_then(|mut s| s.query_row([test_id], |r| r.get(0)))
            .ctx(&self.path, "find the last failure")?;
        match run {
            None => Ok(None),
            Some(run) => Ok(self.failure(test_id, run)?.map(|f| (run, f))),
        }
    }
}

/// A failure read from the columns `kind, type, message, text` of the `failures` table, from
/// column `first` on.
fn failure_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Failure> {
    Ok(Failure {
        kind: Some(if r.get::<_, i64>(first)? == 1 {
            FailureKind::Error
        } else {
            FailureKind::Failure
        }),
        r#type: r.get(first + 1)?,
        message: r.get(first + 2)?,
        text: r.get(first + 3)?,
    })
}
