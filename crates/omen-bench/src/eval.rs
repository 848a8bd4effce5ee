//! The flakiness evaluation: simulated histories with known truth, fed through the real ingest
//! path, scored by Omen and by two baselines.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use omen_core::flakiness::{FlakinessConfig, State, assess};
use omen_core::quarantine::QuarantinePolicy;
use omen_jobs::quarantine::{Refresh, Refreshed};
use omen_metadata::quarantine::{Mode, QUARANTINE_VERSION, QuarantineFile};
use omen_store::{ResultRecord, Store, StoreConfig};
use serde_json::{Value, json};

use crate::sim::{SimConfig, SimTest, Truth, flakeflagger_rates, runs, suite};

/// Flake rate from which a flaky test must be found.
const MIN_RATE: f64 = 0.02;
/// Flake rates from this up to [`MIN_RATE`] are rare: their recall is reported, not targeted.
const RARE_RATE: f64 = 0.005;

type Rule = fn(&[bool]) -> bool;

/// The baselines: name, whether they see default-branch runs only, and the rule. As specified they
/// see every run; the default-branch-only variants show what that one design choice is worth.
const BASELINES: &[(&str, bool, Rule)] = &[
    ("seed formula", false, seed_formula),
    ("flip rate >= 0.02", false, |s| {
        flip_rate(s) >= 0.02 && s.len() >= 10
    }),
    ("flip rate >= 0.05", false, |s| {
        flip_rate(s) >= 0.05 && s.len() >= 10
    }),
    ("flip rate >= 0.10", false, |s| {
        flip_rate(s) >= 0.10 && s.len() >= 10
    }),
    ("seed formula", true, seed_formula),
    ("flip rate >= 0.02", true, |s| {
        flip_rate(s) >= 0.02 && s.len() >= 10
    }),
    ("flip rate >= 0.05", true, |s| {
        flip_rate(s) >= 0.05 && s.len() >= 10
    }),
    ("flip rate >= 0.10", true, |s| {
        flip_rate(s) >= 0.10 && s.len() >= 10
    }),
];

/// The model with each part of its evidence switched off, to measure what each part adds. The
/// first is the model as shipped.
pub const VARIANTS: &[(&str, bool, bool)] = &[
    ("omen", true, true),
    ("omen without message evidence", false, true),
    ("omen without change evidence", true, false),
    ("omen without either", false, false),
];

fn variant(message: bool, change: bool) -> FlakinessConfig {
    FlakinessConfig {
        message_evidence: message,
        change_evidence: change,
        ..FlakinessConfig::default()
    }
}

/// What the replay tracks as it goes, for the report.
#[derive(Default)]
struct Tracking {
    /// First main run at which a test was labelled flaky.
    detected_at: HashMap<String, usize>,
    ever_flaky_wrongly: HashSet<usize>,
    ever_quarantined_wrongly: HashSet<usize>,
    /// Per variant: real bugs ever labelled flaky, and the labels at the end.
    variant_wrong: Vec<HashSet<usize>>,
    variant_final: Vec<HashSet<String>>,
    quarantined_at_fix: HashSet<usize>,
    released_at: HashMap<usize, usize>,
    guard_refusals: usize,
    /// Per identity, final outcomes (true = failed) in ingest order, for the baselines: every run
    /// as the baselines are specified ("the same histories"), and default-branch runs only.
    sequences: HashMap<String, Vec<bool>>,
    default_sequences: HashMap<String, Vec<bool>>,
    /// Per baseline variant: first main run at which a test was labelled flaky.
    baseline_detected: Vec<HashMap<String, usize>>,
    results: u64,
    runs: usize,
    /// At the end: the tests Omen labels flaky, every test's state and evidence, the quarantine
    /// size and the guard's limit.
    omen_flaky: HashSet<String>,
    final_state: HashMap<String, (State, String)>,
    quarantine_size: usize,
    max_share: f64,
}

impl Tracking {
    /// Which tests are quarantined after main run `main`: wrong ones, and fixed ones' release.
    fn quarantine_after(
        &mut self,
        main: usize,
        tests: &[SimTest],
        index: &HashMap<String, usize>,
        quarantine: &QuarantineFile,
    ) {
        let in_quarantine: HashSet<usize> = quarantine
            .tests
            .iter()
            .filter_map(|e| index.get(&e.id).copied())
            .collect();
        for &t in &in_quarantine {
            if tests[t].truth.is_real_bug() {
                self.ever_quarantined_wrongly.insert(t);
            }
        }
        for (t, test) in tests.iter().enumerate() {
            if let Truth::Flaky {
                fixed_at: Some(f), ..
            } = test.truth
            {
                if main + 1 == f && in_quarantine.contains(&t) {
                    self.quarantined_at_fix.insert(t);
                }
                if main >= f && self.quarantined_at_fix.contains(&t) && !in_quarantine.contains(&t)
                {
                    self.released_at.entry(t).or_insert(main);
                }
            }
        }
    }

    /// Feed the baselines' detections after main run `main`.
    fn baselines_after(&mut self, main: usize) {
        for (b, (_, default_only, rule)) in BASELINES.iter().enumerate() {
            let source = if *default_only {
                &self.default_sequences
            } else {
                &self.sequences
            };
            for (key, seq) in source {
                if rule(seq) {
                    self.baseline_detected[b].entry(key.clone()).or_insert(main);
                }
            }
        }
    }
}

/// Run the evaluation; returns the report as JSON.
pub fn evaluate(config: &SimConfig, table: &Path, work: &Path) -> anyhow::Result<Value> {
    let rates = flakeflagger_rates(table)?;
    let tests = suite(config, &rates);
    let all_runs = runs(config, &tests);
    std::fs::create_dir_all(work)?;
    let db = work.join("eval.db");
    let _ = std::fs::remove_file(&db);
    let mut store = Store::open(&db, 0)?.store;
    let report_path = work.join("run.xml");

    // Identity key → (test index, is the current name).
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, t) in tests.iter().enumerate() {
        index.insert(omen_core::identity::key_of(&t.module, &t.name), i);
        if let Some((_, new)) = &t.renamed {
            index.insert(format!("{}::{new}", t.module), i);
        }
    }

    let flaky_config = FlakinessConfig::default();
    // The simulation's flaky share (8%) is above the guard's 5% default, which is meant for real
    // suites (FlakeFlagger: 3.6%). Raise it so the evaluation measures detection and release; the
    // guard's own behaviour is tested in omen-core and the end-to-end tests.
    let policy = QuarantinePolicy {
        max_share: 0.10,
        ..QuarantinePolicy::default()
    };
    let mut quarantine = QuarantineFile {
        version: QUARANTINE_VERSION,
        tests: vec![],
    };
    let mut track = Tracking {
        baseline_detected: vec![HashMap::new(); BASELINES.len()],
        variant_wrong: vec![HashSet::new(); VARIANTS.len()],
        variant_final: vec![HashSet::new(); VARIANTS.len()],
        ..Tracking::default()
    };
    let variants: Vec<FlakinessConfig> = VARIANTS
        .iter()
        .map(|(_, message, change)| variant(*message, *change))
        .collect();

    let mut i = 0;
    while i < all_runs.len() {
        let main = all_runs[i].main_index;
        let mut last_at = 0;
        while i < all_runs.len() && all_runs[i].main_index == main {
            let run = &all_runs[i];
            std::fs::write(&report_path, &run.xml)?;
            // The same parse → fold → store path as `omen ingest`.
            let parsed = omen_jobs::reports::parse_reports(
                &[report_path.display().to_string()],
                u64::MAX,
                &[],
            );
            anyhow::ensure!(
                parsed.unusable == 0,
                "simulated report unusable: {:?}",
                parsed.files
            );
            let key = omen_jobs::reports::run_key(&run.meta, &parsed.content_hash);
            let records: Vec<ResultRecord> =
                parsed.results.into_iter().map(ResultRecord::from).collect();
            track.results += records.len() as u64;
            store.ingest(&run.meta, &key, records, &StoreConfig::default())?;
            for (t, failed) in tests.iter().zip(&run.failed) {
                let key = omen_core::identity::key_of(&t.module, t.name_at(main));
                if run.meta.is_default_branch() {
                    track
                        .default_sequences
                        .entry(key.clone())
                        .or_default()
                        .push(*failed);
                }
                track.sequences.entry(key).or_default().push(*failed);
            }
            last_at = run.meta.at;
            i += 1;
        }
        track.baselines_after(main);
        // Assess after every default-branch commit.
        store.for_each_test(|row| {
            let key = omen_core::identity::key_of(&row.scope, &row.name);
            let Some(&t) = index.get(&key) else { return };
            if assess(&row.history, &flaky_config).state == State::Flaky {
                track.detected_at.entry(key).or_insert(main);
                if tests[t].truth.is_real_bug() {
                    track.ever_flaky_wrongly.insert(t);
                }
            }
            if tests[t].truth.is_real_bug() {
                for (v, config) in variants.iter().enumerate() {
                    if assess(&row.history, config).state == State::Flaky {
                        track.variant_wrong[v].insert(t);
                    }
                }
            }
        })?;
        // The one refresh `omen ci` and `omen quarantine` use, kept in memory.
        let request = Refresh {
            previous: &quarantine,
            policy: &policy,
            flakiness: &flaky_config,
            mode: Mode::RunIgnore,
            now: last_at,
            force: false,
        };
        match omen_jobs::quarantine::refresh(&store, None, &request)? {
            Refreshed::Refused(_) => track.guard_refusals += 1,
            Refreshed::Written(regenerated) => quarantine = regenerated.file,
        }
        track.quarantine_after(main, &tests, &index, &quarantine);
    }

    // Final labels, and the evidence for every test Omen should have found.
    store.for_each_test(|row| {
        let a = assess(&row.history, &flaky_config);
        let key = omen_core::identity::key_of(&row.scope, &row.name);
        if a.state == State::Flaky {
            track.omen_flaky.insert(key.clone());
        }
        for (v, config) in variants.iter().enumerate() {
            if assess(&row.history, config).state == State::Flaky {
                track.variant_final[v].insert(key.clone());
            }
        }
        track
            .final_state
            .insert(key, (a.state, omen_core::flakiness::explain(&a)));
    })?;
    track.runs = all_runs.len();
    track.quarantine_size = quarantine.tests.len();
    track.max_share = policy.max_share;
    Ok(report(config, &tests, &index, &track))
}

/// The evaluation's figures: Omen's labels, detection and release, and every baseline's, scored
/// against the simulation's truth.
fn report(
    config: &SimConfig,
    tests: &[SimTest],
    index: &HashMap<String, usize>,
    track: &Tracking,
) -> Value {
    let truth_of = |key: &str| index.get(key).map(|&t| &tests[t].truth);
    let current = |t: &SimTest| omen_core::identity::key_of(&t.module, t.name_at(config.runs));
    let still_flaky = |t: &SimTest, low: f64, high: f64| matches!(t.truth, Truth::Flaky { rate, fixed_at: None } if (low..high).contains(&rate));
    // Recall is over flaky tests at ≥2% that are still flaky, under their current name; rare
    // ones (0.5–2%, bursty ones among them) are reported on their own.
    let must_find: Vec<String> = tests
        .iter()
        .filter(|t| still_flaky(t, MIN_RATE, f64::INFINITY))
        .map(current)
        .collect();
    let rare: Vec<String> = tests
        .iter()
        .filter(|t| still_flaky(t, RARE_RATE, MIN_RATE))
        .map(current)
        .collect();
    let any_rate: Vec<String> = tests
        .iter()
        .filter(|t| still_flaky(t, 0.0, f64::INFINITY))
        .map(current)
        .collect();
    let detection_of = |detected: &HashMap<String, usize>| -> Option<f64> {
        let mut d: Vec<usize> = must_find
            .iter()
            .filter_map(|k| {
                let t = index.get(k)?;
                let start = tests[*t].renamed.as_ref().map_or(0, |(at, _)| *at);
                detected.get(k).map(|m| m + 1 - start)
            })
            .collect();
        d.sort_unstable();
        median(&d)
    };
    let score = |labelled: &HashSet<String>| -> Value {
        let found = |set: &[String]| set.iter().filter(|k| labelled.contains(*k)).count();
        Score {
            labelled: labelled.len(),
            true_positives: labelled
                .iter()
                .filter(|k| matches!(truth_of(k), Some(Truth::Flaky { .. })))
                .count(),
            found: found(&must_find),
            must_find: must_find.len(),
            found_rare: found(&rare),
            rare: rare.len(),
            found_any: found(&any_rate),
            any_rate: any_rate.len(),
            real_bugs: labelled
                .iter()
                .filter(|k| truth_of(k).is_some_and(Truth::is_real_bug))
                .count(),
        }
        .json()
    };

    let mut release: Vec<usize> = track
        .released_at
        .iter()
        .filter_map(|(t, m)| match tests[*t].truth {
            Truth::Flaky {
                fixed_at: Some(f), ..
            } => Some(m + 1 - f),
            _ => None,
        })
        .collect();
    release.sort_unstable();

    let baselines: Vec<Value> = BASELINES
        .iter()
        .enumerate()
        .map(|(b, (name, default_only, rule))| {
            let source = if *default_only {
                &track.default_sequences
            } else {
                &track.sequences
            };
            let labelled = baseline(source, rule);
            let mut v = score(&labelled);
            v["name"] = json!(name);
            v["history"] = json!(if *default_only {
                "default branch only"
            } else {
                "all runs"
            });
            v["median_runs_to_detection"] = json!(detection_of(&track.baseline_detected[b]));
            v
        })
        .collect();

    let counts = |f: &dyn Fn(&SimTest) -> bool| tests.iter().filter(|t| f(t)).count();
    let runs_per_day = 86_400.0 / config.interval as f64;
    json!({
        "simulation": {
            "tests": config.tests,
            "default_branch_commits": config.runs,
            "runs_ingested": track.runs,
            "results_ingested": track.results,
            "seed": config.seed,
            "flaky_tests": counts(&|t| matches!(t.truth, Truth::Flaky { .. })),
            "flaky_tests_at_least_2pct_still_flaky": must_find.len(),
            "flaky_tests_fixed_halfway": counts(&|t| matches!(t.truth, Truth::Flaky { fixed_at: Some(_), .. })),
            "regressions": counts(&|t| matches!(t.truth, Truth::Regression { .. })),
            "short_regression_tests": counts(&|t| matches!(t.truth, Truth::ShortRegressions { .. })),
            "bursty_rare_flakes": counts(&|t| t.burst.is_some()),
            "rare_flaky_still_flaky": rare.len(),
            "pr_broken_tests": counts(&|t| t.truth == Truth::PrBroken),
            "renamed_tests": counts(&|t| t.renamed.is_some()),
            "outage_run": config.outage_at,
            "rerun_probability": config.rerun_probability,
            "retry_probability": config.retry_probability,
        },
        "variants": VARIANTS
            .iter()
            .enumerate()
            .map(|(v, (name, _, _))| {
                let mut score = score(&track.variant_final[v]);
                score["name"] = json!(name);
                score["real_bugs_ever_labelled_flaky"] = json!(track.variant_wrong[v].len());
                score
            })
            .collect::<Vec<_>>(),
        "omen": {
            "final": score(&track.omen_flaky),
            "median_runs_to_detection": detection_of(&track.detected_at),
            "detected_ever": must_find.iter().filter(|k| track.detected_at.contains_key(*k)).count(),
            "broken_or_pr_broken_ever_labelled_flaky": track.ever_flaky_wrongly.len(),
            "broken_or_pr_broken_ever_quarantined": track.ever_quarantined_wrongly.len(),
            "quarantined_when_fixed": track.quarantined_at_fix.len(),
            "released_after_fix": release.len(),
            "median_runs_to_release_after_fix": median(&release),
            "median_days_to_release_after_fix": median(&release).map(|r| round3(r / runs_per_day)),
            "quarantine_size_at_end": track.quarantine_size,
            "missed": must_find
                .iter()
                .filter(|k| !track.omen_flaky.contains(*k))
                .map(|k| {
                    let rate = match truth_of(k) { Some(Truth::Flaky { rate, .. }) => *rate, _ => 0.0 };
                    let (state, why) = track.final_state.get(k).cloned().unwrap_or((State::New, "never seen".into()));
                    json!({ "id": k, "rate": round3(rate), "state": state.as_str(), "evidence": why })
                })
                .collect::<Vec<_>>(),
            "guard_refusals": track.guard_refusals,
            "guard_max_share": track.max_share,
        },
        "baselines": baselines,
    })
}

/// Counts behind the precision and recall figures, so several histories can be pooled.
#[derive(Debug, Default, Clone, Copy)]
pub struct Score {
    /// Tests labelled flaky.
    pub labelled: usize,
    /// Labelled tests that are flaky.
    pub true_positives: usize,
    /// Flaky tests at ≥2%, still flaky, that were labelled.
    pub found: usize,
    /// Flaky tests at ≥2%, still flaky.
    pub must_find: usize,
    /// Rare (0.5–2%) flaky tests, still flaky, that were labelled.
    pub found_rare: usize,
    /// Rare flaky tests, still flaky.
    pub rare: usize,
    /// Flaky tests at any rate, still flaky, that were labelled.
    pub found_any: usize,
    /// Flaky tests at any rate, still flaky.
    pub any_rate: usize,
    /// Real bugs (regressions, short regressions, PR breakages) labelled flaky.
    pub real_bugs: usize,
}

impl Score {
    /// Read back what [`Score::json`] wrote.
    pub fn from_json(v: &Value) -> Score {
        let n = |k: &str| v["counts"][k].as_u64().unwrap_or(0) as usize;
        Score {
            labelled: n("labelled"),
            true_positives: n("true_positives"),
            found: n("found"),
            must_find: n("must_find"),
            found_rare: n("found_rare"),
            rare: n("rare"),
            found_any: n("found_any"),
            any_rate: n("any_rate"),
            real_bugs: n("real_bugs"),
        }
    }

    /// The sum of two histories' counts.
    pub fn add(self, o: Score) -> Score {
        Score {
            labelled: self.labelled + o.labelled,
            true_positives: self.true_positives + o.true_positives,
            found: self.found + o.found,
            must_find: self.must_find + o.must_find,
            found_rare: self.found_rare + o.found_rare,
            rare: self.rare + o.rare,
            found_any: self.found_any + o.found_any,
            any_rate: self.any_rate + o.any_rate,
            real_bugs: self.real_bugs + o.real_bugs,
        }
    }

    /// Precision (1 when nothing is labelled).
    pub fn precision(&self) -> f64 {
        if self.labelled == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.labelled as f64
        }
    }

    /// Recall over flaky tests at ≥2%.
    pub fn recall(&self) -> f64 {
        self.found as f64 / self.must_find.max(1) as f64
    }

    /// The figures and the counts they come from.
    pub fn json(&self) -> Value {
        let (p, r) = (self.precision(), self.recall());
        json!({
            "labelled_flaky": self.labelled,
            "precision": round3(p),
            "recall": round3(r),
            "f1": round3(f1(p, r)),
            "recall_rare": round3(self.found_rare as f64 / self.rare.max(1) as f64),
            "recall_any_rate": round3(self.found_any as f64 / self.any_rate.max(1) as f64),
            "broken_or_pr_broken_labelled_flaky": self.real_bugs,
            "counts": {
                "labelled": self.labelled,
                "true_positives": self.true_positives,
                "found": self.found,
                "must_find": self.must_find,
                "found_rare": self.found_rare,
                "rare": self.rare,
                "found_any": self.found_any,
                "any_rate": self.any_rate,
                "real_bugs": self.real_bugs,
            },
        })
    }
}

fn baseline(sequences: &HashMap<String, Vec<bool>>, flaky: &Rule) -> HashSet<String> {
    sequences
        .iter()
        .filter(|(_, s)| flaky(s))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The seed design's score: 0.4 × failure rate + 0.4 × transition rate + 0.2 × recent failure
/// rate (last 10), flaky at ≥ 0.7 with at least 10 runs.
pub fn seed_formula(seq: &[bool]) -> bool {
    seed_score(seq).is_some_and(|s| s >= 0.7)
}

/// The seed design's score, or `None` under ten runs.
pub fn seed_score(seq: &[bool]) -> Option<f64> {
    if seq.len() < 10 {
        return None;
    }
    let n = seq.len() as f64;
    let failure_rate = seq.iter().filter(|f| **f).count() as f64 / n;
    let transition_rate = flip_rate(seq);
    let recent = &seq[seq.len() - 10..];
    let recent_rate = recent.iter().filter(|f| **f).count() as f64 / 10.0;
    Some(0.4 * failure_rate + 0.4 * transition_rate + 0.2 * recent_rate)
}

/// Pass↔fail transitions per consecutive pair.
pub fn flip_rate(seq: &[bool]) -> f64 {
    if seq.len() < 2 {
        return 0.0;
    }
    let flips = seq.windows(2).filter(|w| w[0] != w[1]).count();
    flips as f64 / (seq.len() - 1) as f64
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

fn median(v: &[usize]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m] as f64
    } else {
        (v[m - 1] + v[m]) as f64 / 2.0
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_do_what_the_seed_design_says() {
        assert!(!seed_formula(&[true; 9]), "needs ten runs");
        let alternating = seed_score(&[true, false].repeat(10)).unwrap();
        assert!(
            (alternating - 0.7).abs() < 1e-9,
            "0.4·0.5 + 0.4·1 + 0.2·0.5 = 0.7, got {alternating}"
        );
        assert!(
            !seed_formula(&[true; 20]),
            "always failing: 0.4 + 0 + 0.2 = 0.6"
        );
        assert!(!seed_formula(&[false, false, false, true].repeat(5)));
        assert!((flip_rate(&[false, true, true, false]) - 2.0 / 3.0).abs() < 1e-9);
    }
}
