//! A run's failures grouped into causes: each failure's signature, the grouping of their
//! tokens, each group's headline and category, and what the history knows of it. `omen ci`
//! (the comment and summary) and `omen failures --run` share this.

use omen_core::failure::systemic::{SystemicCluster, SystemicConfig, clusters};
use omen_core::failure::{
    Categorized, Category, Classifier, FailureText, Grouper, LabelledText, NaiveBayes, Seen,
    Signature, UserRule, headline,
};
use omen_store::Store;

use crate::JobError;

/// One cause: failures whose signatures group together.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Indices of its failures, in the order given.
    pub members: Vec<usize>,
    /// The members' common first line, `<*>` where they differ (untrusted text).
    pub headline: String,
    /// The signature of its first member: what the history counts it by.
    pub signature: u64,
    /// The category of its first member, and what decided it.
    pub category: Option<Categorized>,
}

/// Group `failures` into causes, the largest first (ties keep the order of their first member),
/// each classified by `classifier`.
pub fn group(failures: &[FailureText<'_>], classifier: &Classifier) -> Vec<Cause> {
    let mut grouper = Grouper::new(Default::default());
    let mut signatures = Vec::with_capacity(failures.len());
    for f in failures {
        let signature = Signature::of(f);
        grouper.add(signature.tokens());
        signatures.push(signature);
    }
    let mut causes: Vec<Cause> = grouper
        .finish()
        .into_iter()
        .filter(|g| !g.members.is_empty())
        .map(|g| {
            let first = g.members[0];
            Cause {
                headline: headline(g.members.iter().map(|&i| failures[i].first_line())),
                signature: signatures[first].hash,
                category: classifier.classify(&failures[first], &signatures[first]),
                members: g.members,
            }
        })
        .collect();
    causes.sort_by_key(|c| std::cmp::Reverse(c.members.len()));
    causes
}

/// A person's label of a signature (`omen failures label`), with the masked line it was given
/// for, so the learned layer can train on it without the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The signature's hash.
    pub signature: u64,
    /// The category given.
    pub category: Category,
    /// The signature's masked first line.
    pub text: String,
}

/// A person's label counts this many times a rule-classified signature of the history.
pub const LABEL_WEIGHT: f64 = 3.0;

/// Signatures of the history the learned layer trains on, newest first.
pub const TRAINING_SIGNATURES: usize = 5_000;

/// The classifier `omen ci` and `omen failures` use: `labels`, the repository's `rules`, the
/// shipped rules, and a naive Bayes layer trained on the labels and on the history's newest
/// signatures as the rules classify them (when `store` is given).
pub fn classifier(
    store: Option<&Store>,
    labels: &[Label],
    rules: Vec<UserRule>,
) -> Result<Classifier, JobError> {
    let mut classifier = Classifier {
        labels: labels.iter().map(|l| (l.signature, l.category)).collect(),
        user_rules: rules,
        learned: None,
    };
    let mut examples: Vec<LabelledText> = labels
        .iter()
        .map(|l| LabelledText {
            text: l.text.clone(),
            category: l.category,
            weight: LABEL_WEIGHT,
        })
        .collect();
    if let Some(store) = store {
        for (hash, masked) in store.recent_signatures(TRAINING_SIGNATURES)? {
            if classifier.labels.contains_key(&hash) {
                continue;
            }
            // Rules only: the learned layer is not trained on its own answers.
            let decided = classifier.by_rules(&FailureText {
                kind: None,
                message: Some(&masked),
                trace: None,
            });
            if let Some(k) = decided {
                examples.push(LabelledText {
                    text: masked,
                    category: k.category,
                    weight: 1.0,
                });
            }
        }
    }
    if !examples.is_empty() {
        classifier.learned = Some(NaiveBayes::train(&examples));
    }
    Ok(classifier)
}

/// Default-branch runs systemic failures are looked for in.
pub const SYSTEMIC_RUNS: u32 = 100;

/// Tests that fail together across the newest [`SYSTEMIC_RUNS`] default-branch runs (of `job`,
/// when given), as [`omen_core::failure::systemic::clusters`] finds them (tests are `tests`
/// table ids), and how many runs were looked at.
pub fn systemic(
    store: &Store,
    job: Option<&str>,
    config: &SystemicConfig,
) -> Result<(usize, Vec<SystemicCluster>), JobError> {
    let runs = store.default_run_failures(SYSTEMIC_RUNS, job)?;
    let failing: Vec<Vec<u64>> = runs
        .into_iter()
        .map(|(_, tests)| tests.into_iter().map(|t| t as u64).collect())
        .collect();
    Ok((failing.len(), clusters(&failing, config)))
}

/// What the history knows of signature `hash`, the run being reported (which already counted
/// it, on the default branch or not) left out.
pub fn known(store: &Store, hash: u64, this_run_on_default: bool) -> Result<Seen, JobError> {
    Ok(match store.signature(hash)? {
        None => Seen {
            runs: 0,
            since: 0,
            on_default: false,
        },
        Some(row) => Seen {
            runs: row.runs.saturating_sub(1),
            since: row.first_seen,
            on_default: row.default_runs > u64::from(this_run_on_default),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message: &str) -> FailureText<'_> {
        FailureText {
            kind: Some("ConnectionRefusedError"),
            message: Some(message),
            trace: None,
        }
    }

    #[test]
    fn failures_that_differ_in_numbers_are_one_cause_with_a_common_headline() {
        let messages: Vec<String> = (0..30)
            .map(|i| format!("[Errno 111] Connection refused: 127.0.0.1:{}", 5000 + i))
            .collect();
        let mut failures: Vec<FailureText<'_>> = messages.iter().map(|m| text(m)).collect();
        failures.push(FailureText {
            kind: Some("AssertionError"),
            message: Some("assert 3 == 4"),
            trace: None,
        });
        let causes = group(&failures, &Classifier::default());
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(causes[0].members, (0..30).collect::<Vec<_>>());
        assert!(
            causes[0]
                .headline
                .contains("Connection refused: 127.0.0.1:<*>"),
            "{}",
            causes[0].headline
        );
        assert_eq!(
            causes[0].category.as_ref().map(|c| c.category.as_str()),
            Some("infrastructure")
        );
        assert_eq!(causes[1].members, vec![30]);
        assert_ne!(causes[0].signature, causes[1].signature);
    }
}
