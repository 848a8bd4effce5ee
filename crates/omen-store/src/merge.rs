//! Merging databases written by parallel shards or matrix jobs.
//!
//! Merging replays each source run through [`Store::ingest`] in time order, so the run key makes
//! it idempotent: a run already present (the shards started from the same restored database, or a
//! merge is repeated) is skipped, never counted twice.
//!
//! Per-test histories are folds over runs in time order, and a fold cannot take a run back out.
//! When a merged run is older than the target's newest run, every history is therefore rebuilt by
//! replaying all stored runs in time order, so the evidence is exactly that of a time-ordered
//! ingest. That needs every run's raw results: when the target has compacted some, the older runs
//! are appended and the merge says so (`MergeOutcome::out_of_order`).

use std::collections::HashMap;

use omen_core::Runner;
use omen_core::history::{FailureSignature, Observation, TestHistory};
use omen_core::identity::derive_selector;
use omen_core::run::RunMeta;
use rusqlite::OptionalExtension;

use crate::error::{SqlContext, StoreError};
use crate::ingest::{ResultRecord, StoreConfig, observed_commit};
use crate::{RunRow, Store};

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Runs copied into the target.
    pub runs_added: u64,
    /// Runs the target already had.
    pub runs_already_present: u64,
    /// Runs whose raw results had been compacted in the source and could not be replayed.
    pub runs_without_results: u64,
    /// Results replayed.
    pub results: u64,
    /// Merged runs older than the target's newest run before the merge.
    pub out_of_order: u64,
    /// True when the histories were rebuilt in time order because of `out_of_order` runs.
    pub rebuilt: bool,
}

type SourceTest = (
    u64,
    String,
    String,
    Option<String>,
    Option<u32>,
    String,
    Runner,
);

impl Store {
    /// Merge every run of `source` that this database does not have yet.
    pub fn merge_from(
        &mut self,
        source: &Store,
        config: &StoreConfig,
    ) -> Result<MergeOutcome, StoreError> {
        let mut outcome = MergeOutcome::default();
        let mut tests: HashMap<i64, SourceTest> = HashMap::new();
        let newest: Option<i64> = self
            .conn
            .query_row("SELECT max(at) FROM runs", [], |r| r.get(0))
            .ctx(&self.path, "read the newest run")?;
        for run in source.runs()? {
            let present: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM runs WHERE run_key = ?1",
                    [&run.run_key],
                    |r| r.get(0),
                )
                .optional()
                .ctx(&self.path, "look up a run")?;
            if present.is_some() {
                outcome.runs_already_present += 1;
                continue;
            }
            if !run.has_results {
                tracing::warn!(
                    source = %source.path.display(),
                    run = %run.run_key,
                    "run was compacted in the source; only runs with raw results can be merged"
                );
                outcome.runs_without_results += 1;
                continue;
            }
            let mut records = Vec::new();
            for packed in source.run_results(run.id)? {
                if let std::collections::hash_map::Entry::Vacant(e) = tests.entry(packed.test_id) {
                    let row = source.source_test(packed.test_id)?;
                    e.insert(row);
                }
                let Some((key_hash, scope, name, file, line, selector, runner)) =
                    tests.get(&packed.test_id).cloned()
                else {
                    continue;
                };
                records.push(ResultRecord {
                    key_hash,
                    scope,
                    name,
                    file,
                    line,
                    selector,
                    selector_derived: false,
                    runner,
                    outcome: packed.outcome,
                    mixed: packed.mixed,
                    duration_ms: packed.duration_ms,
                    failure: source.failure(packed.test_id, run.id)?,
                });
            }
            outcome.results += records.len() as u64;
            self.ingest(&meta_of(&run), &run.run_key, records, config)?;
            outcome.runs_added += 1;
            if newest.is_some_and(|newest| run.at < newest) {
                outcome.out_of_order += 1;
            }
        }
        if outcome.out_of_order > 0 {
            let compacted: i64 = self
                .conn
                .query_row("SELECT count(*) FROM runs WHERE results IS NULL", [], |r| {
                    r.get(0)
                })
                .ctx(&self.path, "count compacted runs")?;
            if compacted == 0 {
                self.rebuild_histories()?;
                outcome.rebuilt = true;
            } else {
                tracing::warn!(
                    database = %self.path.display(),
                    "{} merged run(s) are older than this database's newest run, and {compacted} of its runs were compacted, so the histories cannot be replayed in time order: the older runs were added after the newer ones",
                    outcome.out_of_order
                );
            }
        }
        Ok(outcome)
    }

    /// Recompute every test's history by replaying all stored runs in time order (`at`, then
    /// ingest order), as if they had been ingested in that order. Needs every run's raw results.
    pub(crate) fn rebuild_histories(&mut self) -> Result<(), StoreError> {
        let runs = self.runs()?;
        let mut histories: HashMap<i64, TestHistory> = HashMap::new();
        // Tests' identities, read only for runs whose change is known.
        let mut identities: HashMap<i64, SourceTest> = HashMap::new();
        for run in &runs {
            let commit = observed_commit(run.commit.as_deref(), &run.run_key);
            let change = run
                .changed
                .as_deref()
                .filter(|_| run.is_default)
                .map(|paths| omen_core::change::Change::from_paths(paths.lines()));
            for packed in self.run_results(run.id)? {
                let touched = match &change {
                    Some(change) => {
                        let test = match identities.entry(packed.test_id) {
                            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                e.insert(self.source_test(packed.test_id)?)
                            }
                        };
                        change.touches(&test.1, &test.2, test.3.as_deref())
                    }
                    None => false,
                };
                let failure_signature = if packed.outcome.is_failure() {
                    self.failure(packed.test_id, run.id)?
                        .as_ref()
                        .and_then(FailureSignature::of)
                } else {
                    None
                };
                histories
                    .entry(packed.test_id)
                    .or_default()
                    .observe(&Observation {
                        outcome: packed.outcome,
                        mixed: packed.mixed,
                        default_branch: run.is_default,
                        commit,
                        at: run.at,
                        run: run.id as u64,
                        duration_ms: packed.duration_ms,
                        failure_signature,
                        outage: run.outage,
                        touched,
                    });
            }
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx(&path, "start the history rebuild")?;
        {
            let mut update = tx
                .prepare("UPDATE tests SET history = ?2 WHERE id = ?1")
                .ctx(&path, "prepare the history rebuild")?;
            for (id, history) in &histories {
                update
                    .execute(rusqlite::params![id, history.encode()])
                    .ctx(&path, "rebuild a history")?;
            }
        }
        tx.commit().ctx(&path, "commit the history rebuild")?;
        Ok(())
    }

    fn source_test(&self, id: i64) -> Result<SourceTest, StoreError> {
        self.conn
            .query_row(
                "SELECT key_hash, scope, name, file, line, selector, runner FROM tests WHERE id = ?1",
                [id],
                |r| {
                    let (scope, name, file, runner): (String, String, Option<String>, String) =
                        (r.get(1)?, r.get(2)?, r.get(3)?, r.get(6)?);
                    let runner = Runner::from_name(&runner);
                    let selector = r
                        .get::<_, Option<String>>(5)?
                        .unwrap_or_else(|| derive_selector(runner, &scope, &name, file.as_deref()));
                    Ok((r.get::<_, i64>(0)? as u64, scope, name, file, r.get(4)?, selector, runner))
                },
            )
            .ctx(&self.path, "read a test of a run")
    }
}

fn meta_of(run: &RunRow) -> RunMeta {
    RunMeta {
        commit: run.commit.clone(),
        branch: run.branch.clone(),
        default_branch: run.default_branch.clone(),
        run_id: run.run_id.clone(),
        attempt: run.attempt,
        job: run.job.clone(),
        pull_request: run.pull_request,
        at: run.at,
        change: run
            .changed
            .as_deref()
            .map(|paths| omen_core::change::Change::from_paths(paths.lines())),
        // The run keeps the source's run key, which already holds it.
        instance: None,
        queue_ms: run.queue_ms,
    }
}

#[cfg(test)]
mod tests {
    use omen_core::Outcome;

    use super::*;
    use crate::testing::record;

    fn meta(run: &str, job: &str, at: i64) -> RunMeta {
        RunMeta {
            commit: Some("abc".into()),
            branch: Some("main".into()),
            default_branch: Some("main".into()),
            run_id: Some(run.into()),
            attempt: 1,
            job: Some(job.into()),
            pull_request: None,
            at,
            change: None,
            ..Default::default()
        }
    }

    fn store(dir: &std::path::Path, name: &str) -> Store {
        Store::open(&dir.join(name), 1).unwrap().store
    }

    #[test]
    fn failure_signatures_are_counted_once_per_run_and_survive_a_merge() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::default();
        let hash = |name: &str| {
            omen_core::failure::Signature::of(&omen_core::failure::FailureText {
                message: Some(&format!("{name} broke")),
                ..Default::default()
            })
            .hash
        };
        let mut a = store(dir.path(), "a.db");
        a.ingest(
            &meta("1", "j", 10),
            "k1",
            vec![record("x", Outcome::Failed)],
            &cfg,
        )
        .unwrap();
        // The same run again changes nothing; a second run counts once more.
        a.ingest(
            &meta("1", "j", 10),
            "k1",
            vec![record("x", Outcome::Failed)],
            &cfg,
        )
        .unwrap();
        a.ingest(
            &meta("2", "j", 20),
            "k2",
            vec![record("x", Outcome::Failed), record("y", Outcome::Passed)],
            &cfg,
        )
        .unwrap();
        let row = a.signature(hash("x")).unwrap().unwrap();
        assert_eq!(
            (row.runs, row.default_runs, row.failures, row.tests),
            (2, 2, 2, 1)
        );
        assert_eq!((row.first_seen, row.last_seen), (10, 20));
        assert_eq!(row.masked, "x broke");
        assert_eq!(a.signature(hash("y")).unwrap(), None);
        // A shard's runs bring their signatures with them.
        let mut b = store(dir.path(), "b.db");
        b.ingest(
            &meta("3", "k", 30),
            "k3",
            vec![record("x", Outcome::Failed)],
            &cfg,
        )
        .unwrap();
        a.merge_from(&b, &cfg).unwrap();
        let row = a.signature(hash("x")).unwrap().unwrap();
        assert_eq!((row.runs, row.last_seen), (3, 30));
    }

    #[test]
    fn ingest_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), "h.db");
        let cfg = StoreConfig::default();
        let results = vec![record("a", Outcome::Passed), record("b", Outcome::Failed)];
        let first = s
            .ingest(&meta("1", "j", 10), "k1", results.clone(), &cfg)
            .unwrap();
        assert!(!first.duplicate);
        assert_eq!((first.stored, first.new_tests), (2, 2));
        let before = s.stats().unwrap();
        let second = s.ingest(&meta("1", "j", 10), "k1", results, &cfg).unwrap();
        assert!(second.duplicate);
        assert_eq!(second.run, first.run);
        assert_eq!(s.stats().unwrap(), before);
        let (run, failure) = s
            .last_failure(s.run_results(first.run).unwrap()[1].test_id)
            .unwrap()
            .or_else(|| {
                s.last_failure(s.run_results(first.run).unwrap()[0].test_id)
                    .unwrap()
            })
            .unwrap();
        assert_eq!(run, first.run);
        assert_eq!(failure.message.as_deref(), Some("b broke"));
    }

    #[test]
    fn merging_shards_counts_each_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::default();
        // Both shards start from the same restored history (run "0"), then each adds its own job.
        let mut a = store(dir.path(), "a.db");
        let mut b = store(dir.path(), "b.db");
        for s in [&mut a, &mut b] {
            s.ingest(
                &meta("0", "unit", 5),
                "base",
                vec![record("x", Outcome::Passed)],
                &cfg,
            )
            .unwrap();
        }
        a.ingest(
            &meta("1", "shard-1", 10),
            "r1-s1",
            vec![record("x", Outcome::Passed)],
            &cfg,
        )
        .unwrap();
        b.ingest(
            &meta("1", "shard-2", 11),
            "r1-s2",
            vec![record("y", Outcome::Failed)],
            &cfg,
        )
        .unwrap();
        let mut out = store(dir.path(), "out.db");
        let first = out.merge_from(&a, &cfg).unwrap();
        let second = out.merge_from(&b, &cfg).unwrap();
        let again = out.merge_from(&b, &cfg).unwrap();
        assert_eq!((first.runs_added, first.runs_already_present), (2, 0));
        assert_eq!((second.runs_added, second.runs_already_present), (1, 1));
        assert_eq!((again.runs_added, again.runs_already_present), (0, 2));
        let stats = out.stats().unwrap();
        assert_eq!((stats.runs, stats.results, stats.tests), (3, 3, 2));
        let mut db_runs = Vec::new();
        out.for_each_test(|t| db_runs.push((t.name, t.history.db_runs, t.history.db_failures)))
            .unwrap();
        assert_eq!(db_runs, [("x".to_owned(), 2, 0), ("y".to_owned(), 1, 1)]);
        // Failure details travel with the merged run.
        let y = out.run_results(3).unwrap()[0].test_id;
        assert_eq!(
            out.last_failure(y).unwrap().map(|(_, f)| f.message),
            Some(Some("y broke".to_owned()))
        );
    }

    #[test]
    fn compaction_keeps_a_bounded_window_and_the_histories() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), "h.db");
        let cfg = StoreConfig {
            keep_runs: 3,
            ..StoreConfig::default()
        };
        for i in 0..10 {
            let outcome = if i % 2 == 0 {
                Outcome::Failed
            } else {
                Outcome::Passed
            };
            s.ingest(
                &meta(&i.to_string(), "j", i),
                &format!("k{i}"),
                vec![record("t", outcome)],
                &cfg,
            )
            .unwrap();
        }
        let stats = s.stats().unwrap();
        assert_eq!((stats.runs, stats.results, stats.raw_results), (10, 10, 3));
        let kept: Vec<bool> = s.runs().unwrap().iter().map(|r| r.has_results).collect();
        assert_eq!(
            kept,
            [
                false, false, false, false, false, false, false, true, true, true
            ]
        );
        let mut history = None;
        s.for_each_test(|t| history = Some(t.history)).unwrap();
        let history = history.unwrap();
        assert_eq!(
            (history.db_runs, history.db_failures, history.flips(10)),
            (10, 5, 9)
        );
        // Failure details of compacted runs are gone too; the newest one stays.
        let (run, _) = s.last_failure(1).unwrap().unwrap();
        assert_eq!(run, 9);
        assert!(s.failure(1, 1).unwrap().is_none());
    }

    #[test]
    fn hash_collisions_keep_tests_apart_in_both_lookup_paths() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), "h.db");
        let cfg = StoreConfig::default();
        // Two different tests forced onto one hash, plus enough others to take the bulk path.
        let collide = |name: &str, outcome| ResultRecord {
            key_hash: 42,
            ..record(name, outcome)
        };
        let filler: Vec<ResultRecord> = (0..1_200)
            .map(|i| record(&format!("f{i}"), Outcome::Passed))
            .collect();
        for (run, bulk) in [(1, false), (2, true), (3, false)] {
            let mut results = vec![
                collide("first", Outcome::Passed),
                collide("second", Outcome::Failed),
            ];
            if bulk {
                results.extend(filler.iter().cloned());
            }
            s.ingest(
                &meta(&run.to_string(), "j", run),
                &format!("k{run}"),
                results,
                &cfg,
            )
            .unwrap();
        }
        let mut seen = Vec::new();
        s.for_each_test(|t| {
            if t.name == "first" || t.name == "second" {
                seen.push((t.name, t.history.db_runs, t.history.db_failures));
            }
        })
        .unwrap();
        assert_eq!(
            seen,
            [("first".to_owned(), 3, 0), ("second".to_owned(), 3, 3)]
        );
    }

    #[test]
    fn tests_new_in_one_bulk_run_on_one_hash_both_get_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), "h.db");
        let cfg = StoreConfig::default();
        let mut results: Vec<ResultRecord> = ["first", "second", "third"]
            .map(|name| ResultRecord {
                key_hash: 7,
                ..record(name, Outcome::Failed)
            })
            .into();
        results.extend((0..1_200).map(|i| record(&format!("f{i}"), Outcome::Passed)));
        let outcome = s.ingest(&meta("1", "j", 1), "k1", results, &cfg).unwrap();
        assert_eq!(outcome.new_tests, 1_203);
        let mut seen = Vec::new();
        s.for_each_test(|t| {
            if !t.name.starts_with('f') || t.name == "first" {
                seen.push((t.name, t.history.db_failures));
            }
        })
        .unwrap();
        seen.sort();
        let expected: Vec<(String, u32)> = ["first", "second", "third"]
            .map(|n| (n.to_owned(), 1))
            .into();
        assert_eq!(seen, expected);
    }

    #[test]
    fn outage_runs_are_flagged_and_not_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path(), "h.db");
        let cfg = StoreConfig::default();
        let results: Vec<_> = (0..30)
            .map(|i| record(&format!("t{i}"), Outcome::Error))
            .collect();
        let outcome = s.ingest(&meta("1", "j", 1), "k", results, &cfg).unwrap();
        assert!(outcome.outage);
        let mut evidence = 0;
        s.for_each_test(|t| evidence += t.history.db_failures + t.history.db_runs)
            .unwrap();
        assert_eq!(evidence, 0);
        assert!(s.runs().unwrap()[0].outage);
    }

    /// Every test's history, with the run numbers (opaque ids, which differ between two
    /// databases holding the same runs) replaced by the time of the run they point at.
    fn histories(s: &Store) -> Vec<(String, TestHistory)> {
        let mut out = Vec::new();
        s.for_each_test(|t| out.push((t.name, t.history))).unwrap();
        let at = |id: u64| s.run(id as i64).unwrap().map_or(0, |r| r.at as u64);
        for (_, h) in &mut out {
            h.streak_run = at(h.streak_run);
            h.last_run = at(h.last_run);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn tests_read_ahead_are_used_only_if_no_other_writer_committed_since() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::default();
        let path = dir.path().join("h.db");
        let commit = |i: i64| RunMeta {
            commit: Some(format!("c{i}")),
            ..meta(&i.to_string(), "unit", i * 100)
        };
        let run = |s: &mut Store, i: i64, read: Option<crate::TestsRead>| {
            let m = commit(i);
            s.ingest_with(
                &m,
                &format!("k{i}"),
                vec![record("x", Outcome::Passed)],
                &cfg,
                read,
            )
            .unwrap();
        };
        let mut ours = Store::open(&path, 1).unwrap().store;
        run(&mut ours, 1, None);
        // Read ahead, then another process commits a run before ours takes the write lock.
        let read = ours.read_tests().unwrap();
        let mut theirs = Store::open(&path, 1).unwrap().store;
        run(&mut theirs, 2, None);
        run(&mut ours, 3, Some(read));
        let x = histories(&ours)
            .into_iter()
            .find(|(n, _)| n == "x")
            .unwrap()
            .1;
        assert_eq!(x.db_runs, 3, "the other writer's run was kept: {x:?}");
        // Nobody else wrote: the read-ahead rows are the current ones and give the same result.
        let read = ours.read_tests().unwrap();
        run(&mut ours, 4, Some(read));
        let x = histories(&ours)
            .into_iter()
            .find(|(n, _)| n == "x")
            .unwrap()
            .1;
        assert_eq!(x.db_runs, 4);
        // Reading ahead pays only for runs likely to touch many of the tests.
        assert!(crate::read_ahead_pays(50_000_000, 100_000));
        assert!(
            !crate::read_ahead_pays(100_000, 100_000),
            "a 500-case shard"
        );
        assert!(!crate::read_ahead_pays(10_000_000, 1_000_000));
        assert!(ours.read_tests_for(1_000).unwrap().is_none());
    }

    #[test]
    fn an_older_merged_run_gives_the_histories_of_a_time_ordered_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::default();
        // Every commit changed x's code: the change evidence must survive the merge and the
        // rebuild too (it is stored with the run).
        let commit = |m: RunMeta, sha: &str| RunMeta {
            commit: Some(sha.into()),
            change: Some(omen_core::change::Change::from_paths(["src/export.py"])),
            ..m
        };
        let x = |outcome| ResultRecord {
            file: Some("tests/test_export.py".into()),
            ..record("x", outcome)
        };
        // x fails on c2 and passes on its re-run (flaky), then breaks from c5 on; y always passes.
        let runs: Vec<(RunMeta, &str, Vec<ResultRecord>)> = (1..=6)
            .map(|i| {
                let outcome = if i == 2 || i >= 5 {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                };
                (
                    commit(meta(&i.to_string(), "unit", i * 100), &format!("c{i}")),
                    "",
                    vec![x(outcome), record("y", Outcome::Passed)],
                )
            })
            .chain(std::iter::once((
                commit(meta("2", "unit-retry", 250), "c2"),
                "",
                vec![x(Outcome::Passed), record("y", Outcome::Passed)],
            )))
            .collect();
        let key = |m: &RunMeta| {
            format!(
                "{}-{}",
                m.run_id.as_deref().unwrap(),
                m.job.as_deref().unwrap()
            )
        };
        let mut ordered_runs: Vec<&(RunMeta, &str, Vec<ResultRecord>)> = runs.iter().collect();
        ordered_runs.sort_by_key(|r| r.0.at);
        let mut ordered = store(dir.path(), "ordered.db");
        for (m, _, results) in &ordered_runs {
            ordered.ingest(m, &key(m), results.clone(), &cfg).unwrap();
        }
        // The target got everything but the re-run of c2, which a shard ingested.
        let mut target = store(dir.path(), "target.db");
        let mut shard = store(dir.path(), "shard.db");
        for (m, _, results) in &runs {
            let s = if m.job.as_deref() == Some("unit-retry") {
                &mut shard
            } else {
                &mut target
            };
            s.ingest(m, &key(m), results.clone(), &cfg).unwrap();
        }
        assert_ne!(histories(&target), histories(&ordered));
        assert!(
            histories(&ordered)
                .iter()
                .any(|(_, h)| h.touched_window != 0),
            "the change evidence was folded"
        );
        let merged = target.merge_from(&shard, &cfg).unwrap();
        assert_eq!(
            (merged.runs_added, merged.out_of_order, merged.rebuilt),
            (1, 1, true)
        );
        assert_eq!(histories(&target), histories(&ordered));
        // A newer run merged later needs no rebuild.
        let mut late = store(dir.path(), "late.db");
        let m = commit(meta("7", "unit", 700), "c7");
        late.ingest(&m, &key(&m), vec![record("x", Outcome::Failed)], &cfg)
            .unwrap();
        let merged = target.merge_from(&late, &cfg).unwrap();
        assert_eq!(
            (merged.runs_added, merged.out_of_order, merged.rebuilt),
            (1, 0, false)
        );
    }
}
