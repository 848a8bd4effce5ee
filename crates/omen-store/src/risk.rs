//! Deploy-risk tables: the incremental repository history, observed changes and their labels,
//! stored models, predictions and deploy outcomes.

use omen_core::label::LabelSource;
use rusqlite::{OptionalExtension, params};

use crate::Store;
use crate::error::{SqlContext, StoreError};

/// One observed commit.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// Commit id.
    pub sha: String,
    /// Order in which Omen observed it (oldest first).
    pub seq: i64,
    /// Author time, unix seconds.
    pub at: i64,
    /// Author identity.
    pub author: String,
    /// The message says it fixes a bug.
    pub fix: bool,
    /// Raw feature values in `omen_risk::features::Feature::ALL` order.
    pub features: Vec<f64>,
    /// The label once known.
    pub risky: Option<bool>,
    /// Where the label came from; `None` also for a label stored under a name this version
    /// does not know.
    pub label_source: Option<LabelSource>,
}

/// The repository history state stored after the changes observed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskState {
    /// `omen_risk::history::RepoHistory::encode()`.
    pub history: Vec<u8>,
    /// The newest commit it includes.
    pub last_commit: String,
    /// How many commits it has observed.
    pub commits: u32,
}

/// A recorded prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    /// The scored commit.
    pub head: String,
    /// When, unix seconds.
    pub at: i64,
    /// The probability given.
    pub probability: f64,
    /// The first stage's probability.
    pub base_probability: f64,
    /// Which model answered.
    pub source: String,
    /// The change's signals (`omen_risk::signals::Signals::encode()`), if recorded.
    pub signals: Option<Vec<u8>>,
}

/// A prediction to record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewPrediction<'a> {
    /// The scored commit.
    pub head: &'a str,
    /// The commit it was compared with, if any.
    pub base: Option<&'a str>,
    /// When, unix seconds.
    pub at: i64,
    /// The probability given.
    pub probability: f64,
    /// The first stage's probability, before the CI signals adjusted it (equal to
    /// `probability` when they did not).
    pub base_probability: f64,
    /// Which model answered (`repository`, `prior`, `heuristic`).
    pub source: &'a str,
    /// The stored model's id, for the repository's own model.
    pub model_id: Option<i64>,
    /// The change's CI and deploy signals (`omen_risk::signals::Signals::encode()`).
    pub signals: Option<&'a [u8]>,
}

/// A recorded prediction whose change now has a label.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedPrediction {
    /// The scored commit.
    pub head: String,
    /// When it was scored, unix seconds.
    pub at: i64,
    /// The probability Omen gave.
    pub probability: f64,
    /// The first stage's probability, before the CI signals adjusted it.
    pub base_probability: f64,
    /// The change's CI and deploy signals (`omen_risk::signals::Signals::encode()`), if recorded.
    pub signals: Option<Vec<u8>>,
    /// The label the change got later.
    pub risky: bool,
}

/// A stored model with its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Row id.
    pub id: i64,
    /// When it was trained.
    pub created_at: i64,
    /// Scorer name.
    pub kind: String,
    /// Training changes.
    pub samples: i64,
    /// Of which risky.
    pub positives: i64,
    /// Hold-out AUC.
    pub auc: f64,
    /// Hold-out Brier score.
    pub brier: f64,
    /// Feature names, comma-separated.
    pub features: String,
    /// `omen_risk::model::RiskModel::encode()`.
    pub model: Vec<u8>,
}

/// A recorded deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRow {
    /// Deployed commit.
    pub commit_sha: String,
    /// Environment name.
    pub environment: String,
    /// How it ended.
    pub outcome: omen_core::deploy::DeployOutcome,
    /// Unix seconds.
    pub at: i64,
}

fn encode_features(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_features(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f64::from_le_bytes(a)
        })
        .collect()
}

// Queries of every scoring run, answered from the indexes of schema 7 rather than the `changes`
// table, whose rows carry the feature vectors; a test checks their query plans.
const NEWEST_CHANGE: &str = "SELECT coalesce(max(at), 0) FROM changes";
const LABEL_COUNTS: &str =
    "SELECT count(*), coalesce(sum(risky = 1), 0) FROM changes WHERE risky = 1 OR at < ?1";
const FIXES_PENDING_SZZ: &str =
    "SELECT sha FROM changes WHERE fix = 1 AND szz_done = 0 ORDER BY seq DESC";

impl Store {
    /// The stored repository history state.
    pub fn risk_state(&self) -> Result<Option<RiskState>, StoreError> {
        self.conn
            .query_row(
                "SELECT history, last_commit, commits FROM risk_state WHERE id = 1",
                [],
                |r| {
                    Ok(RiskState {
                        history: r.get(0)?,
                        last_commit: r.get(1)?,
                        commits: r.get(2)?,
                    })
                },
            )
            .optional()
            .ctx(&self.path, "read the risk history state")
    }

    /// The newest recorded prediction.
    pub fn latest_prediction(&self) -> Result<Option<PredictionRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT head, at, probability, base_probability, source, signals FROM predictions \
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(PredictionRow {
                        head: r.get(0)?,
                        at: r.get(1)?,
                        probability: r.get(2)?,
                        base_probability: r.get(3)?,
                        source: r.get(4)?,
                        signals: r.get(5)?,
                    })
                },
            )
            .optional()
            .ctx(&self.path, "read the newest prediction")
    }

    /// How many predictions are recorded.
    pub fn prediction_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM predictions", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .ctx(&self.path, "count predictions")
    }

    /// Store newly observed changes and the history state after them, in one transaction.
    /// `commits` is how many commits that state has observed (it is stored beside it; counting
    /// the `changes` rows instead would read every one of them on each run).
    pub fn record_changes(
        &mut self,
        rows: &[ChangeRow],
        state: &[u8],
        commits: u32,
        last_commit: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .ctx(&path, "begin recording changes")?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR IGNORE INTO changes (sha, seq, at, author, fix, features) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .ctx(&path, "prepare change insert")?;
            for r in rows {
                insert
                    .execute(params![
                        r.sha,
                        r.seq,
                        r.at,
                        r.author,
                        r.fix,
                        encode_features(&r.features)
                    ])
                    .ctx(&path, "insert a change")?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO risk_state (id, history, last_commit, commits, updated_at) VALUES (1, ?1, ?2, ?3, ?4)",
            params![state, last_commit, commits, now],
        )
        .ctx(&path, "store the risk history state")?;
        tx.commit().ctx(&path, "commit recorded changes")
    }

    /// Every observed change, oldest first.
    pub fn changes(&self) -> Result<Vec<ChangeRow>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare("SELECT sha, seq, at, author, fix, features, risky, label_source FROM changes ORDER BY seq")
            .ctx(path, "prepare change query")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ChangeRow {
                    sha: r.get(0)?,
                    seq: r.get(1)?,
                    at: r.get(2)?,
                    author: r.get(3)?,
                    fix: r.get(4)?,
                    features: decode_features(&r.get::<_, Vec<u8>>(5)?),
                    risky: r.get(6)?,
                    label_source: r
                        .get::<_, Option<String>>(7)?
                        .as_deref()
                        .and_then(LabelSource::from_name),
                })
            })
            .ctx(path, "read changes")?;
        rows.collect::<Result<_, _>>().ctx(path, "read changes")
    }

    /// The raw features of the latest `limit` observed changes, oldest first.
    pub fn recent_change_features(&self, limit: usize) -> Result<Vec<Vec<f64>>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare("SELECT features FROM changes ORDER BY seq DESC LIMIT ?1")
            .ctx(path, "prepare recent change query")?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(decode_features(&r.get::<_, Vec<u8>>(0)?))
            })
            .ctx(path, "read recent changes")?;
        let mut out: Vec<Vec<f64>> = rows
            .collect::<Result<_, _>>()
            .ctx(path, "read recent changes")?;
        out.reverse();
        Ok(out)
    }

    /// `(labelled, risky, newest)`: changes that are risky or older than `latency` seconds before
    /// the newest change, how many of them are risky, and the newest change time.
    pub fn label_counts(&self, latency: i64) -> Result<(i64, i64, i64), StoreError> {
        let newest: i64 = self
            .conn
            .query_row(NEWEST_CHANGE, [], |r| r.get(0))
            .ctx(&self.path, "count changes")?;
        let (labelled, risky): (i64, i64) = self
            .conn
            .query_row(LABEL_COUNTS, [newest - latency], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ctx(&self.path, "count labelled changes")?;
        Ok((labelled, risky, newest))
    }

    /// Fix commits whose SZZ analysis has not run yet, newest first.
    pub fn fixes_pending_szz(&self) -> Result<Vec<String>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare(FIXES_PENDING_SZZ)
            .ctx(path, "prepare fix query")?;
        let rows = stmt.query_map([], |r| r.get(0)).ctx(path, "read fixes")?;
        rows.collect::<Result<_, _>>().ctx(path, "read fixes")
    }

    /// Mark `commits` risky (`source` says why) and, if given, `fix` as analysed. A positive
    /// label is never turned back to safe. Returns how many changes became risky.
    pub fn label_risky(
        &mut self,
        commits: &[String],
        source: LabelSource,
        fix: Option<&str>,
    ) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().ctx(&path, "begin labelling")?;
        let mut changed = 0;
        {
            let mut stmt = tx
                .prepare(
                    "UPDATE changes SET risky = 1, label_source = ?2 WHERE sha = ?1 AND (risky IS NULL OR risky = 0)",
                )
                .ctx(&path, "prepare labelling")?;
            for c in commits {
                changed += stmt
                    .execute(params![c, source.name()])
                    .ctx(&path, "label a change")?;
            }
        }
        if let Some(fix) = fix {
            tx.execute("UPDATE changes SET szz_done = 1 WHERE sha = ?1", [fix])
                .ctx(&path, "mark a fix analysed")?;
        }
        tx.commit().ctx(&path, "commit labels")?;
        Ok(changed)
    }

    /// Store a trained model; returns its id.
    pub fn save_model(&self, m: &ModelRow) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO risk_models (created_at, kind, samples, positives, auc, brier, features, model) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![m.created_at, m.kind, m.samples, m.positives, m.auc, m.brier, m.features, m.model],
            )
            .ctx(&self.path, "store a model")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The newest stored model.
    pub fn latest_model(&self) -> Result<Option<ModelRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, created_at, kind, samples, positives, auc, brier, features, model FROM risk_models \
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(ModelRow {
                        id: r.get(0)?,
                        created_at: r.get(1)?,
                        kind: r.get(2)?,
                        samples: r.get(3)?,
                        positives: r.get(4)?,
                        auc: r.get(5)?,
                        brier: r.get(6)?,
                        features: r.get(7)?,
                        model: r.get(8)?,
                    })
                },
            )
            .optional()
            .ctx(&self.path, "read the latest model")
    }

    /// Record a prediction so its accuracy can be tracked against outcomes.
    pub fn record_prediction(&self, p: &NewPrediction<'_>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO predictions (head, base, at, probability, base_probability, source, model_id, signals) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![p.head, p.base, p.at, p.probability, p.base_probability, p.source, p.model_id, p.signals],
            )
            .map(|_| ())
            .ctx(&self.path, "record a prediction")
    }

    /// Latest prediction (by time) per commit that now has a label, the newest `limit` of them,
    /// oldest first. The label rule is [`Store::label_counts`]'s: risky once marked so; safe when
    /// not and the change is older than `safe_before` (the newest change's time, which
    /// `label_counts` returns, minus the label latency).
    pub fn predictions_with_outcomes(
        &self,
        safe_before: i64,
        limit: usize,
    ) -> Result<Vec<TrackedPrediction>, StoreError> {
        let path = &self.path;
        // Newest first by the `predictions_at` index, stopping after `limit` commits; the first
        // row seen for a commit is its latest prediction.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.head, p.at, p.probability, coalesce(p.base_probability, p.probability), p.signals, coalesce(c.risky, 0) = 1 \
                 FROM predictions p JOIN changes c ON c.sha = p.head \
                 WHERE c.risky = 1 OR c.at < ?1 \
                 ORDER BY p.at DESC, p.id DESC",
            )
            .ctx(path, "prepare prediction query")?;
        let rows = stmt
            .query_map([safe_before], |r| {
                Ok(TrackedPrediction {
                    head: r.get(0)?,
                    at: r.get(1)?,
                    probability: r.get(2)?,
                    base_probability: r.get(3)?,
                    signals: r.get(4)?,
                    risky: r.get(5)?,
                })
            })
            .ctx(path, "read predictions")?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for row in rows {
            if out.len() >= limit {
                break;
            }
            let row = row.ctx(path, "read predictions")?;
            if seen.insert(row.head.clone()) {
                out.push(row);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Delete predictions made before `at`; returns how many. For predictions no query will
    /// read again: those older than the oldest of the newest labelled ones kept for tracking.
    pub fn prune_predictions(&self, at: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM predictions WHERE at < ?1", [at])
            .ctx(&self.path, "prune predictions")
    }

    /// Record a deploy outcome.
    pub fn record_deploy(&self, d: &DeployRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO deploys (commit_sha, environment, outcome, at) VALUES (?1, ?2, ?3, ?4)",
                params![d.commit_sha, d.environment, d.outcome.name(), d.at],
            )
            .map(|_| ())
            .ctx(&self.path, "record a deploy")
    }

    /// All deploys, oldest first.
    pub fn deploys(&self) -> Result<Vec<DeployRow>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare("SELECT commit_sha, environment, outcome, at FROM deploys ORDER BY at, id")
            .ctx(path, "prepare deploy query")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .ctx(path, "read deploys")?;
        let mut deploys = Vec::new();
        for row in rows {
            let (commit_sha, environment, outcome, at) = row.ctx(path, "read deploys")?;
            match omen_core::deploy::DeployOutcome::from_name(&outcome) {
                Some(outcome) => deploys.push(DeployRow {
                    commit_sha,
                    environment,
                    outcome,
                    at,
                }),
                None => tracing::warn!(
                    database = %path.display(),
                    "deploy of {commit_sha} has the unknown outcome `{outcome}` (written by a newer Omen?); it is ignored"
                ),
            }
        }
        Ok(deploys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queries every scoring run makes are answered from indexes. Without them they read
    /// the whole `changes` table: about 20 ms per run on a 50,000-commit history, against 7 ms.
    #[test]
    fn per_run_change_queries_read_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db"), 1).unwrap().store;
        let plan = |sql: &str| -> String {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let params = vec![0_i64; stmt.parameter_count()];
            let steps = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap();
            steps.map(|s| s.unwrap()).collect::<Vec<_>>().join("; ")
        };
        assert_eq!(
            plan(NEWEST_CHANGE),
            "SEARCH changes USING COVERING INDEX changes_at"
        );
        assert_eq!(
            plan(LABEL_COUNTS),
            "SCAN changes USING COVERING INDEX changes_at"
        );
        assert_eq!(
            plan(FIXES_PENDING_SZZ),
            "SCAN changes USING COVERING INDEX changes_szz_pending"
        );
    }

    #[test]
    fn recent_change_features_are_the_latest_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.db"), 1).unwrap().store;
        assert!(store.recent_change_features(10).unwrap().is_empty());
        // Inserted out of order: `seq`, not insertion, decides.
        let rows: Vec<ChangeRow> = [2i64, 0, 3, 1]
            .iter()
            .map(|seq| ChangeRow {
                sha: format!("c{seq}"),
                seq: *seq,
                at: 100 + seq,
                author: "a@x".into(),
                fix: false,
                features: vec![*seq as f64, 10.0 * *seq as f64],
                risky: None,
                label_source: None,
            })
            .collect();
        store.record_changes(&rows, b"s", 4, "c3", 5).unwrap();
        assert_eq!(
            store.recent_change_features(3).unwrap(),
            vec![vec![1.0, 10.0], vec![2.0, 20.0], vec![3.0, 30.0]]
        );
    }

    #[test]
    fn changes_labels_models_predictions_and_deploys_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.db"), 1).unwrap().store;
        assert_eq!(store.risk_state().unwrap(), None);
        let row = |sha: &str, seq: i64, fix: bool| ChangeRow {
            sha: sha.into(),
            seq,
            at: 100 + seq,
            author: "a@x".into(),
            fix,
            features: vec![1.5, 2.0, -0.0],
            risky: None,
            label_source: None,
        };
        store
            .record_changes(
                &[row("a", 0, false), row("b", 1, true)],
                b"state",
                2,
                "b",
                5,
            )
            .unwrap();
        // Recording the same commit again keeps the first row.
        store
            .record_changes(&[row("b", 7, true)], b"state2", 2, "b", 6)
            .unwrap();
        assert_eq!(
            store.risk_state().unwrap(),
            Some(RiskState {
                history: b"state2".to_vec(),
                last_commit: "b".into(),
                commits: 2
            })
        );
        assert_eq!(store.fixes_pending_szz().unwrap(), vec!["b".to_string()]);
        assert_eq!(
            store
                .label_risky(&["a".into(), "zz".into()], LabelSource::Szz, Some("b"))
                .unwrap(),
            1
        );
        assert!(store.fixes_pending_szz().unwrap().is_empty());
        let changes = store.changes().unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].features, vec![1.5, 2.0, -0.0]);
        assert_eq!(
            (changes[0].risky, changes[0].label_source),
            (Some(true), Some(LabelSource::Szz))
        );
        assert_eq!(changes[1].seq, 1);

        let m = ModelRow {
            id: 0,
            created_at: 9,
            kind: "logistic".into(),
            samples: 10,
            positives: 3,
            auc: 0.7,
            brier: 0.2,
            features: "la,nf".into(),
            model: vec![1, 2, 3],
        };
        let id = store.save_model(&m).unwrap();
        assert_eq!(store.latest_model().unwrap(), Some(ModelRow { id, ..m }));
        let a = NewPrediction {
            head: "a",
            base: Some("base"),
            at: 9,
            probability: 0.5,
            base_probability: 0.5,
            source: "repository",
            model_id: Some(id),
            signals: None,
        };
        store.record_prediction(&a).unwrap();
        store
            .record_prediction(&NewPrediction {
                at: 10,
                probability: 0.8,
                base_probability: 0.6,
                signals: Some(&[7, 8]),
                ..a
            })
            .unwrap();
        store
            .record_prediction(&NewPrediction {
                head: "b",
                base: None,
                at: 11,
                probability: 0.1,
                base_probability: 0.1,
                source: "prior",
                model_id: None,
                signals: None,
            })
            .unwrap();
        assert_eq!(store.prediction_count().unwrap(), 3);
        let newest = store.latest_prediction().unwrap().unwrap();
        assert_eq!(
            (
                newest.head.as_str(),
                newest.at,
                newest.source.as_str(),
                newest.signals
            ),
            ("b", 11, "prior", None)
        );
        // Only labelled commits, and only their latest prediction, with its signals. "a" is
        // risky; "b" (at 101) counts as safe only when the cut is after it (the cut is the
        // newest change's time minus the latency: 101 − 0, then 200 − 50, then 200 − 150).
        let tracked_a = TrackedPrediction {
            head: "a".into(),
            at: 10,
            probability: 0.8,
            base_probability: 0.6,
            signals: Some(vec![7, 8]),
            risky: true,
        };
        assert_eq!(
            store.predictions_with_outcomes(101, 10).unwrap(),
            vec![tracked_a.clone()]
        );
        store
            .record_changes(&[row("c", 100, false)], b"state3", 3, "c", 7)
            .unwrap();
        let tracked_b = TrackedPrediction {
            head: "b".into(),
            at: 11,
            probability: 0.1,
            base_probability: 0.1,
            signals: None,
            risky: false,
        };
        assert_eq!(
            store.predictions_with_outcomes(150, 10).unwrap(),
            vec![tracked_a.clone(), tracked_b.clone()]
        );
        // Only the newest `limit`.
        assert_eq!(
            store.predictions_with_outcomes(150, 1).unwrap(),
            vec![tracked_b.clone()]
        );
        assert_eq!(
            store.predictions_with_outcomes(50, 10).unwrap(),
            vec![tracked_a]
        );
        // Pruning before b's time drops both of a's predictions, not b's.
        assert_eq!(store.prune_predictions(11).unwrap(), 2);
        assert_eq!(
            store.predictions_with_outcomes(150, 10).unwrap(),
            vec![tracked_b]
        );
        let d = DeployRow {
            commit_sha: "a".into(),
            environment: "prod".into(),
            outcome: omen_core::deploy::DeployOutcome::Failure,
            at: 50,
        };
        store.record_deploy(&d).unwrap();
        assert_eq!(store.deploys().unwrap(), vec![d]);
    }
}
