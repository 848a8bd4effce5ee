//! Duration series for the performance models, and the change points found in them.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension as _, params};

use crate::error::SqlContext as _;
use crate::packed::{Packed, unpack};
use crate::{RunRow, Store, StoreError};
use omen_core::codec::DecodeError;

/// The newest default-branch runs of one job that still hold their raw results, oldest first,
/// and each test's passing durations across them, in one flat table (NaN = no duration: absent,
/// skipped, failed or not timed).
#[derive(Debug, Default)]
pub struct DurationWindow {
    /// The runs, oldest first.
    pub runs: Vec<RunRow>,
    /// The tests with at least one duration, ascending ids.
    pub tests: Vec<i64>,
    /// `tests.len() × runs.len()` durations in ms, one row per test.
    values: Vec<f64>,
}

impl DurationWindow {
    /// Test `i`'s durations (`tests[i]`), one per run, NaN where there is none.
    pub fn series(&self, i: usize) -> &[f64] {
        let n = self.runs.len();
        &self.values[i * n..(i + 1) * n]
    }

    /// Every test's series, in `tests` order.
    pub fn all_series(&self) -> impl Iterator<Item = &[f64]> {
        (0..self.tests.len()).map(|i| self.series(i))
    }
}

/// A change point as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePointRow {
    /// The test whose passing duration changed (its row id in `tests`); `None` for the run's
    /// total test time.
    pub test_id: Option<i64>,
    /// Job of the runs the series came from (`""` when runs have none): one test in two jobs
    /// is two series.
    pub job: String,
    /// First run of the new level.
    pub run: i64,
    /// Last run of the old level.
    pub previous_run: Option<i64>,
    /// Median before, ms.
    pub before_ms: f64,
    /// Median after, ms.
    pub after_ms: f64,
    /// Two-sided p-value of the rank test between the levels.
    pub p_value: f64,
    /// The run whose ingest found it.
    pub detected_run: i64,
    /// When it was found, unix seconds.
    pub detected_at: i64,
}

impl Store {
    /// The newest `limit` default-branch runs of `job` (any job when `None`) that hold raw
    /// results, with the passing durations of `tests` (every test when `None`).
    pub fn duration_window(
        &self,
        job: Option<&str>,
        limit: u32,
        tests: Option<&HashSet<i64>>,
    ) -> Result<DurationWindow, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, results FROM runs
                 WHERE is_default = 1 AND results IS NOT NULL AND (?1 IS NULL OR coalesce(job, '') = ?1)
                 ORDER BY at DESC, id DESC LIMIT ?2",
            )
            .ctx(path, "prepare the duration window")?;
        let mut blobs: Vec<(i64, Vec<u8>)> = stmt
            .query_map(params![job, limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx(path, "read the duration window")?
            .collect::<Result<_, _>>()
            .ctx(path, "read the duration window")?;
        blobs.reverse();
        // Decoding a million results is most of the read: half of it on a second thread, while
        // this one reads the runs' rows and decodes the other half.
        let (older, newer) = blobs.split_at(blobs.len() / 2);
        let decode = |part: &[(i64, Vec<u8>)]| -> Vec<(i64, Result<Vec<Packed>, DecodeError>)> {
            part.iter()
                .map(|(id, bytes)| (*id, unpack(bytes)))
                .collect()
        };
        let (mut unpacked, rows) = std::thread::scope(|scope| {
            let second = scope.spawn(|| decode(older));
            let rows: Result<Vec<Option<RunRow>>, StoreError> =
                blobs.iter().map(|(id, _)| self.run(*id)).collect();
            let newer = decode(newer);
            let older = match second.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (older.into_iter().chain(newer).collect::<Vec<_>>(), rows)
        });
        let mut decoded = Vec::with_capacity(blobs.len());
        let mut runs = Vec::with_capacity(blobs.len());
        for ((id, results), run) in unpacked.drain(..).zip(rows?) {
            let results = results.map_err(|err| self.decode_error(id, &err))?;
            if let Some(run) = run {
                runs.push(run);
                decoded.push(results);
            }
        }
        // Test ids are row ids, dense from 1: a table indexed by id finds each test's row
        // without hashing a million results.
        let wanted = |id: i64| tests.is_none_or(|t| t.contains(&id));
        let max_id = decoded
            .iter()
            .flat_map(|r| r.last())
            .map(|p| p.test_id)
            .max()
            .unwrap_or(0)
            .max(0) as usize;
        let mut slot: Vec<u32> = vec![u32::MAX; max_id + 1];
        let mut ids = Vec::new();
        for results in &decoded {
            for r in results {
                let id = r.test_id as usize;
                if r.test_id >= 0
                    && slot[id] == u32::MAX
                    && r.duration_ms.is_some()
                    && wanted(r.test_id)
                {
                    slot[id] = u32::MAX - 1;
                    ids.push(r.test_id);
                }
            }
        }
        ids.sort_unstable();
        for (i, id) in ids.iter().enumerate() {
            slot[*id as usize] = i as u32;
        }
        let n = runs.len();
        let mut values = vec![f64::NAN; ids.len() * n];
        for (j, results) in decoded.iter().enumerate() {
            for r in results {
                if r.outcome != omen_core::Outcome::Passed || r.test_id < 0 {
                    continue;
                }
                let (Some(ms), Some(&i)) = (r.duration_ms, slot.get(r.test_id as usize)) else {
                    continue;
                };
                if i < u32::MAX - 1 {
                    values[i as usize * n + j] = f64::from(ms);
                }
            }
        }
        Ok(DurationWindow {
            runs,
            tests: ids,
            values,
        })
    }

    /// Passing durations of `tests` in the other runs of `commit` off the default branch (newest
    /// `limit` runs, `exclude` left out): re-runs and retries of the same code. Earlier pushes of
    /// a pull request are other code and are not included.
    pub fn same_commit_durations(
        &self,
        commit: &str,
        exclude: i64,
        limit: u32,
        tests: &HashSet<i64>,
    ) -> Result<HashMap<i64, Vec<f64>>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, results FROM runs
                 WHERE commit_sha = ?1 AND id != ?2 AND results IS NOT NULL AND is_default = 0
                 ORDER BY at DESC, id DESC LIMIT ?3",
            )
            .ctx(path, "prepare the commit's other runs")?;
        let blobs: Vec<(i64, Vec<u8>)> = stmt
            .query_map(params![commit, exclude, limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ctx(path, "read the commit's other runs")?
            .collect::<Result<_, _>>()
            .ctx(path, "read the commit's other runs")?;
        let mut out: HashMap<i64, Vec<f64>> = HashMap::new();
        for (id, bytes) in blobs {
            let results = self.decode_results(id, &bytes)?;
            for r in results {
                if let (true, omen_core::Outcome::Passed, Some(ms)) =
                    (tests.contains(&r.test_id), r.outcome, r.duration_ms)
                {
                    out.entry(r.test_id).or_default().push(f64::from(ms));
                }
            }
        }
        Ok(out)
    }

    /// Store each change point, in one transaction. When its series already has one whose first
    /// run lies in its `near` range (inclusive run ids: the same change found again a run or two
    /// later), that one takes the new estimate of where and how much (more runs place a change
    /// better; a change first seen at the newest runs can only be placed early) and keeps when it
    /// was first detected. Returns which were new.
    pub fn record_change_points(
        &mut self,
        points: &[(ChangePointRow, (i64, i64))],
    ) -> Result<Vec<bool>, StoreError> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx(path, "start a transaction")?;
        let mut new = Vec::with_capacity(points.len());
        {
            let mut known = tx
                .prepare_cached(
                    "SELECT id FROM change_points
                     WHERE test_id IS ?1 AND job = ?2 AND run BETWEEN ?3 AND ?4 LIMIT 1",
                )
                .ctx(path, "prepare the change point lookup")?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO change_points
                       (test_id, job, run, previous_run, before_ms, after_ms, p_value, detected_run, detected_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .ctx(path, "prepare the change point insert")?;
            let mut update = tx
                .prepare_cached(
                    "UPDATE change_points
                     SET run = ?2, previous_run = ?3, before_ms = ?4, after_ms = ?5, p_value = ?6
                     WHERE id = ?1",
                )
                .ctx(path, "prepare the change point update")?;
            for (row, near) in points {
                let exists: Option<i64> = known
                    .query_row(params![row.test_id, row.job, near.0, near.1], |r| r.get(0))
                    .optional()
                    .ctx(path, "look for a known change point")?;
                if let Some(id) = exists {
                    update
                        .execute(params![
                            id,
                            row.run,
                            row.previous_run,
                            row.before_ms,
                            row.after_ms,
                            row.p_value
                        ])
                        .ctx(path, "update a change point")?;
                } else {
                    insert
                        .execute(params![
                            row.test_id,
                            row.job,
                            row.run,
                            row.previous_run,
                            row.before_ms,
                            row.after_ms,
                            row.p_value,
                            row.detected_run,
                            row.detected_at
                        ])
                        .ctx(path, "record a change point")?;
                }
                new.push(exists.is_none());
            }
        }
        tx.commit().ctx(path, "commit the change points")?;
        Ok(new)
    }

    /// The newest `limit` change points, newest first.
    pub fn change_points(&self, limit: u32) -> Result<Vec<ChangePointRow>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT test_id, job, run, previous_run, before_ms, after_ms, p_value, detected_run, detected_at
                 FROM change_points ORDER BY run DESC, id DESC LIMIT ?1",
            )
            .ctx(path, "prepare the change point query")?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok(ChangePointRow {
                    test_id: r.get(0)?,
                    job: r.get(1)?,
                    run: r.get(2)?,
                    previous_run: r.get(3)?,
                    before_ms: r.get(4)?,
                    after_ms: r.get(5)?,
                    p_value: r.get(6)?,
                    detected_run: r.get(7)?,
                    detected_at: r.get(8)?,
                })
            })
            .ctx(path, "read change points")?;
        rows.collect::<Result<_, _>>()
            .ctx(path, "read change points")
    }
}
