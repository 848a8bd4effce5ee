//! Duration series for the performance models, and the change points found in them.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension as _, params};

use crate::error::SqlContext as _;
use crate::packed::visit;
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

/// A change point to record, and how it relates to one already stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    /// The change as found.
    pub row: ChangePointRow,
    /// Inclusive run ids: a stored change of the same series whose first run lies here is this
    /// one, found again.
    pub near: (i64, i64),
    /// Whether this estimate replaces the stored one's place and size: more runs place a change
    /// better, but not when the window it was found in starts too close to the change.
    pub replace: bool,
}

impl Store {
    /// The jobs of the default-branch runs that still hold raw results (`""` for runs without
    /// one), the most recently run first.
    pub fn default_jobs(&self) -> Result<Vec<String>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT coalesce(job, '') FROM runs
                 WHERE is_default = 1 AND results IS NOT NULL
                 GROUP BY coalesce(job, '') ORDER BY max(at) DESC",
            )
            .ctx(path, "prepare the job list")?;
        stmt.query_map([], |r| r.get(0))
            .ctx(path, "read the job list")?
            .collect::<Result<_, _>>()
            .ctx(path, "read the job list")
    }

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
        // Which tests have a duration: the older half of the runs on a second thread, while this
        // one reads the runs' rows and the newer half. Results are visited, never collected: a
        // full scan reads tens of millions.
        let timed = |part: &[(i64, Vec<u8>)]| -> Result<Vec<bool>, (i64, DecodeError)> {
            let mut seen: Vec<bool> = Vec::new();
            for (id, bytes) in part {
                visit(bytes, |p| {
                    if p.duration_ms.is_some() && p.test_id >= 0 {
                        let i = p.test_id as usize;
                        if i >= seen.len() {
                            seen.resize(i + 1, false);
                        }
                        seen[i] = true;
                    }
                })
                .map_err(|err| (*id, err))?;
            }
            Ok(seen)
        };
        let (older, newer) = blobs.split_at(blobs.len() / 2);
        let ((rows, newer), older) = omen_core::parallel::join(
            || {
                let rows: Result<Vec<Option<RunRow>>, StoreError> =
                    blobs.iter().map(|(id, _)| self.run(*id)).collect();
                (rows, timed(newer))
            },
            || timed(older),
        );
        let seen = older.and_then(|o| Ok((o, newer?)));
        let (mut seen, newer) = seen.map_err(|(id, err)| self.decode_error(id, &err))?;
        if newer.len() > seen.len() {
            seen.resize(newer.len(), false);
        }
        for (s, n) in seen.iter_mut().zip(&newer) {
            *s |= *n;
        }
        let mut runs = Vec::with_capacity(blobs.len());
        let mut kept = Vec::with_capacity(blobs.len());
        for (blob, run) in blobs.iter().zip(rows?) {
            if let Some(run) = run {
                runs.push(run);
                kept.push(blob);
            }
        }
        // Test ids are row ids, dense from 1: a table indexed by id finds each test's row
        // without hashing tens of millions of results.
        let mut slot: Vec<u32> = vec![u32::MAX; seen.len()];
        let mut ids = Vec::new();
        for (id, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
            let id = id as i64;
            if tests.is_none_or(|t| t.contains(&id)) {
                slot[id as usize] = ids.len() as u32;
                ids.push(id);
            }
        }
        let n = runs.len();
        let mut values = vec![f64::NAN; ids.len() * n];
        for (j, (id, bytes)) in kept.iter().enumerate() {
            visit(bytes, |r| {
                if r.outcome != omen_core::Outcome::Passed || r.test_id < 0 {
                    return;
                }
                if let (Some(ms), Some(&i)) = (r.duration_ms, slot.get(r.test_id as usize))
                    && i != u32::MAX
                {
                    values[i as usize * n + j] = f64::from(ms);
                }
            })
            .map_err(|err| self.decode_error(*id, &err))?;
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
    /// run lies in its [`ChangeRecord::near`] range (the same change found again some runs
    /// later), that one takes the new estimate of where and how much when
    /// [`ChangeRecord::replace`] says so, and keeps when it was first detected. Returns which
    /// were new.
    pub fn record_change_points(
        &mut self,
        points: &[ChangeRecord],
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
            for ChangeRecord { row, near, replace } in points {
                let exists: Option<i64> = known
                    .query_row(params![row.test_id, row.job, near.0, near.1], |r| r.get(0))
                    .optional()
                    .ctx(path, "look for a known change point")?;
                if let Some(id) = exists {
                    if !replace {
                        new.push(false);
                        continue;
                    }
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

#[cfg(test)]
mod tests {
    use omen_core::Outcome;
    use omen_core::run::RunMeta;

    use super::*;
    use crate::testing::timed as record;
    use crate::{ResultRecord, StoreConfig};

    fn ingest(store: &mut Store, run: u32, job: Option<&str>, records: Vec<ResultRecord>) -> i64 {
        let meta = RunMeta {
            commit: Some(format!("c{run}")),
            branch: Some("main".into()),
            default_branch: Some("main".into()),
            run_id: Some(format!("{run}")),
            attempt: 1,
            job: job.map(str::to_owned),
            pull_request: None,
            at: 1000 + i64::from(run),
            change: None,
            ..Default::default()
        };
        store
            .ingest(&meta, &format!("k{run}"), records, &StoreConfig::default())
            .unwrap()
            .run
    }

    #[test]
    fn the_window_holds_passing_durations_per_test_and_run_of_one_job() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.db"), 1).unwrap().store;
        for run in 0..4u32 {
            // `b` fails in run 1 and is untimed in run 2; `c` first appears in run 3.
            let mut records = vec![
                record("a", Outcome::Passed, Some(10 + run)),
                match run {
                    1 => record("b", Outcome::Failed, Some(99)),
                    2 => record("b", Outcome::Passed, None),
                    _ => record("b", Outcome::Passed, Some(20 + run)),
                },
            ];
            if run == 3 {
                records.push(record("c", Outcome::Passed, Some(30)));
            }
            ingest(&mut store, run, Some("test"), records);
        }
        // Another job's runs and a run without a job are other series.
        ingest(
            &mut store,
            10,
            Some("lint"),
            vec![record("a", Outcome::Passed, Some(1))],
        );
        ingest(
            &mut store,
            11,
            None,
            vec![record("a", Outcome::Passed, Some(2))],
        );
        assert_eq!(store.default_jobs().unwrap(), vec!["", "lint", "test"]);

        let w = store.duration_window(Some("test"), 100, None).unwrap();
        assert_eq!(w.runs.len(), 4);
        assert!(w.runs.windows(2).all(|r| r[0].at < r[1].at), "oldest first");
        assert_eq!(w.tests.len(), 3);
        assert_eq!(w.series(0), &[10.0, 11.0, 12.0, 13.0]);
        let b = w.series(1);
        assert_eq!((b[0], b[3]), (20.0, 23.0));
        assert!(
            b[1].is_nan() && b[2].is_nan(),
            "failed and untimed are missing: {b:?}"
        );
        let c = w.series(2);
        assert!(c[..3].iter().all(|v| v.is_nan()) && c[3] == 30.0, "{c:?}");

        // The newest two runs only; and only the tests asked for.
        let w = store.duration_window(Some("test"), 2, None).unwrap();
        assert_eq!(w.series(0), &[12.0, 13.0]);
        let only: HashSet<i64> = [w.tests[2]].into();
        let w = store
            .duration_window(Some("test"), 100, Some(&only))
            .unwrap();
        assert_eq!(w.tests, vec![*only.iter().next().unwrap()]);
        assert_eq!(w.all_series().count(), 1);
        let none = store.duration_window(Some(""), 100, None).unwrap();
        assert_eq!(none.series(0), &[2.0]);
    }

    #[test]
    fn a_change_found_again_is_re_placed_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.db"), 1).unwrap().store;
        let runs: Vec<i64> = (0..6u32)
            .map(|r| {
                ingest(
                    &mut store,
                    r,
                    Some("t"),
                    vec![record("a", Outcome::Passed, Some(5))],
                )
            })
            .collect();
        let row = |run: usize, after: f64| ChangePointRow {
            test_id: Some(1),
            job: "t".into(),
            run: runs[run],
            previous_run: Some(runs[run - 1]),
            before_ms: 100.0,
            after_ms: after,
            p_value: 1e-4,
            detected_run: runs[5],
            detected_at: 7,
        };
        let near = (runs[1], runs[4]);
        let first = ChangeRecord {
            row: row(2, 150.0),
            near,
            replace: true,
        };
        assert_eq!(store.record_change_points(&[first]).unwrap(), vec![true]);
        // Found again a run later from a window that starts too close: left as it is.
        let kept = ChangeRecord {
            row: row(3, 170.0),
            near,
            replace: false,
        };
        assert_eq!(store.record_change_points(&[kept]).unwrap(), vec![false]);
        let stored = store.change_points(10).unwrap();
        assert_eq!(
            (stored.len(), stored[0].run, stored[0].after_ms),
            (1, runs[2], 150.0)
        );
        // Found again with the runs either side: re-placed, still one change.
        let moved = ChangeRecord {
            row: row(3, 160.0),
            near,
            replace: true,
        };
        assert_eq!(store.record_change_points(&[moved]).unwrap(), vec![false]);
        let stored = store.change_points(10).unwrap();
        assert_eq!(
            (stored.len(), stored[0].run, stored[0].after_ms),
            (1, runs[3], 160.0)
        );
        // Outside the near range: a new change.
        let far = ChangeRecord {
            row: row(5, 200.0),
            near: (runs[5], runs[5]),
            replace: true,
        };
        assert_eq!(store.record_change_points(&[far]).unwrap(), vec![true]);
        assert_eq!(store.change_points(10).unwrap().len(), 2);
    }
}
