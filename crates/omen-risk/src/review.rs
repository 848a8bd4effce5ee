//! The rules `omen risk` and `omen ci` apply around the model: which features a repository's own
//! model trains on, which changes are labelled for training, and the quiet review hints shown
//! beside the score. Free of I/O; the CLI hands in what the store and git gave it.

use crate::features::{DiffHints, Feature, FeatureVector, LabelledChange};

/// A change bigger than this many lines (added plus deleted) gets the "consider splitting" hint.
pub const LARGE_CHANGE_LINES: i64 = 400;
/// A change touching more than this many files gets the "consider splitting" hint.
pub const LARGE_CHANGE_FILES: i64 = 20;

/// The model features of a repository's own model: the public ones plus path-based hints
/// (diff-content hints exist only for the change being scored, so they are not trained on).
pub fn repository_features() -> Vec<Feature> {
    let mut f = Feature::PUBLIC.to_vec();
    f.extend([
        Feature::TodoAdded,
        Feature::LongLinesAdded,
        Feature::DepsTouched,
        Feature::CiTouched,
        Feature::CodeWithoutTests,
    ]);
    f
}

/// A stored feature row as a vector: rows written by older versions are shorter, and the
/// features they lack stay 0; extra values are ignored.
pub fn feature_vector(stored: &[f64]) -> FeatureVector {
    let mut f = FeatureVector::default();
    for (slot, v) in f.0.iter_mut().zip(stored) {
        *slot = *v;
    }
    f
}

/// One observed change, as the store keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Commit id.
    pub id: &'a str,
    /// Commit time, unix seconds.
    pub at: i64,
    /// Stored raw features (see [`feature_vector`]).
    pub features: &'a [f64],
    /// `Some(true)` once labelled risky; otherwise not (yet) known to be.
    pub risky: Option<bool>,
}

/// The labelling rule: risky changes, and safe ones only once they are older than
/// `latency_days` before the newest change (a bug is found, on average, weeks after it lands, so
/// a recent change that looks safe may simply not have been caught yet). `rows` are every
/// observed change in observation order; what was typical before each change is recomputed from
/// them, because rows stored by earlier versions of Omen do not carry it.
pub fn training_set(rows: &[Observed<'_>], latency_days: f64) -> Vec<LabelledChange> {
    let newest = rows.iter().map(|r| r.at).max().unwrap_or(0);
    let cut = newest - (latency_days * 86_400.0) as i64;
    let mut features: Vec<FeatureVector> =
        rows.iter().map(|r| feature_vector(r.features)).collect();
    crate::typical::fill(features.iter_mut());
    rows.iter()
        .zip(features)
        .filter(|(r, _)| r.risky == Some(true) || r.at < cut)
        .map(|(r, f)| LabelledChange {
            id: r.id.to_owned(),
            time: r.at,
            features: f,
            risky: r.risky == Some(true),
        })
        .collect()
}

/// Quiet review hints from the change and its diff.
pub fn hints(f: &FeatureVector, diff: &DiffHints) -> Vec<String> {
    let mut out = Vec::new();
    let n = |x: Feature| f.get(x).round() as i64;
    let s = |x: i64| if x == 1 { "" } else { "s" };
    if n(Feature::TodoAdded) > 0 {
        let todo = n(Feature::TodoAdded);
        out.push(format!("adds {todo} TODO/FIXME line{}", s(todo)));
    }
    if n(Feature::LongLinesAdded) > 0 {
        let long = n(Feature::LongLinesAdded);
        out.push(format!(
            "adds {long} line{} over {} characters",
            s(long),
            DiffHints::LONG_LINE
        ));
    }
    if f.get(Feature::CodeWithoutTests) > 0.0 {
        if diff.functions > 0 {
            let functions = i64::from(diff.functions);
            out.push(format!(
                "adds {functions} new function{} and touches no test file",
                s(functions)
            ));
        } else {
            out.push("changes source files but no test file".into());
        }
    }
    let lines = n(Feature::La) + n(Feature::Ld);
    if lines > LARGE_CHANGE_LINES || n(Feature::Nf) > LARGE_CHANGE_FILES {
        out.push(format!(
            "large change ({lines} lines in {} files): consider splitting it",
            n(Feature::Nf)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(values: &[(Feature, f64)]) -> FeatureVector {
        let mut f = FeatureVector::default();
        for (k, v) in values {
            f.set(*k, *v);
        }
        f
    }

    #[test]
    fn hints_name_what_a_reviewer_should_look_at() {
        let check = |values: &[(Feature, f64)], functions: u32, expected: &[&str]| {
            let diff = DiffHints {
                functions,
                ..DiffHints::default()
            };
            assert_eq!(hints(&vector(values), &diff), expected, "{values:?}");
        };
        check(&[], 0, &[]);
        check(&[(Feature::TodoAdded, 1.0)], 0, &["adds 1 TODO/FIXME line"]);
        check(
            &[(Feature::LongLinesAdded, 3.0)],
            0,
            &["adds 3 lines over 120 characters"],
        );
        check(
            &[(Feature::CodeWithoutTests, 1.0)],
            2,
            &["adds 2 new functions and touches no test file"],
        );
        check(
            &[(Feature::CodeWithoutTests, 1.0)],
            0,
            &["changes source files but no test file"],
        );
        check(
            &[
                (Feature::La, 300.0),
                (Feature::Ld, 100.0),
                (Feature::Nf, 20.0),
            ],
            0,
            &[],
        );
        check(
            &[
                (Feature::La, 300.0),
                (Feature::Ld, 101.0),
                (Feature::Nf, 3.0),
            ],
            0,
            &["large change (401 lines in 3 files): consider splitting it"],
        );
        check(
            &[(Feature::Nf, 21.0)],
            0,
            &["large change (0 lines in 21 files): consider splitting it"],
        );
    }

    #[test]
    fn short_stored_rows_leave_the_missing_features_at_zero() {
        let f = feature_vector(&[1.0, 2.0]);
        assert_eq!(f.0[0], 1.0);
        assert_eq!(f.0[1], 2.0);
        assert!(f.0[2..].iter().all(|v| *v == 0.0));
        let long = vec![5.0; f.0.len() + 3];
        assert!(feature_vector(&long).0.iter().all(|v| *v == 5.0));
    }

    #[test]
    fn safe_changes_are_labelled_only_after_the_latency() {
        let day = 86_400;
        let features = [0.0; 4];
        let rows: Vec<Observed<'_>> = [
            ("old-safe", 0, None),
            ("old-risky", day, Some(true)),
            ("recent-safe", 95 * day, None),
            ("recent-risky", 99 * day, Some(true)),
            ("newest", 100 * day, Some(false)),
        ]
        .iter()
        .map(|(id, at, risky)| Observed {
            id,
            at: *at,
            features: &features,
            risky: *risky,
        })
        .collect();
        let labelled: Vec<(String, bool)> = training_set(&rows, 90.0)
            .into_iter()
            .map(|c| (c.id, c.risky))
            .collect();
        assert_eq!(
            labelled,
            [
                ("old-safe".to_owned(), false),
                ("old-risky".to_owned(), true),
                ("recent-risky".to_owned(), true),
            ]
        );
    }

    #[test]
    fn repository_models_add_the_path_hints_to_the_public_features() {
        let f = repository_features();
        assert!(Feature::PUBLIC.iter().all(|p| f.contains(p)));
        assert!(f.contains(&Feature::CodeWithoutTests) && f.contains(&Feature::CiTouched));
        assert_eq!(f.len(), Feature::PUBLIC.len() + 5);
    }
}
