//! Conformance with the JUnit corpus in `tests/corpus/junit/` (61 real reports from other
//! projects' test suites, with the totals those projects expect in `MANIFEST.json`).

use std::collections::BTreeMap;

use omen_tests::{corpus, omen, run};
use serde_json::Value;

/// Files where Omen deliberately disagrees with the peer's expectation, with the reason.
/// The test checks that the disagreement is exactly this, so it can never drift silently.
const DISAGREEMENTS: &[(&str, &str, [u64; 6])] = &[(
    "action-junit-report/issues/testFailedDisabled.xml",
    "mikepenz counts status=\"disabled\" plus a <failure> child as skipped (skip wins). Omen applies \
     the corpus' most-severe-result rule and counts a failure: the report says the test ran and \
     failed, and Omen never hides a failure behind a status attribute.",
    // tests, passed, failures, errors, skipped, flaky as Omen counts them.
    [1, 0, 1, 0, 0, 0],
)];

const KEYS: [&str; 6] = ["tests", "passed", "failures", "errors", "skipped", "flaky"];

fn counts(v: &Value) -> [u64; 6] {
    KEYS.map(|k| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {v}"))
    })
}

#[test]
fn every_corpus_file_matches_the_peer_expectations() {
    let root = corpus("junit");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus("junit/MANIFEST.json")).unwrap())
            .unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 61, "the manifest lists 61 reports");
    let db = tempfile::tempdir().unwrap();
    let out = run(omen(&root)
        .args(["ingest", "--format", "json", "--db"])
        .arg(db.path().join("h.db"))
        .args([
            "--commit",
            "c0ffee",
            "--branch",
            "main",
            "--default-branch",
            "main",
            ".",
        ]));
    out.code(0);
    let json = out.json();
    let got: BTreeMap<String, &Value> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("./")
                    .to_owned(),
                f,
            )
        })
        .collect();

    let mut checked = 0;
    for entry in files {
        let name = entry["file"].as_str().unwrap();
        let file = got
            .get(name)
            .unwrap_or_else(|| panic!("{name} was not ingested\n{out}"));
        let expected = &entry["expected"];
        match entry["expected_outcome"].as_str().unwrap() {
            "parse_error" => {
                let error = &file["error"];
                assert!(
                    error.is_object(),
                    "{name}: expected a parse error, got {file}"
                );
                assert!(
                    error["line"].as_u64().is_some() && error["column"].as_u64().is_some(),
                    "{name}: {error}"
                );
                assert_eq!(
                    counts(file),
                    [0; 6],
                    "{name}: an unusable file counts nothing"
                );
            }
            "parsed" => {
                assert!(
                    file["error"].is_null(),
                    "{name}: unexpected error {}",
                    file["error"]
                );
                let ours = counts(file);
                match DISAGREEMENTS.iter().find(|d| d.0 == name) {
                    Some((_, reason, omen_counts)) => {
                        assert_eq!(ours, *omen_counts, "{name}: Omen's own count changed");
                        assert_ne!(
                            ours,
                            counts(expected),
                            "{name}: no longer disagrees; remove it from DISAGREEMENTS ({reason})"
                        );
                    }
                    None => assert_eq!(
                        ours,
                        counts(expected),
                        "{name}: counts differ from the peer's (order: {KEYS:?})"
                    ),
                }
            }
            other => panic!("{name}: unknown expected_outcome {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 61);
    assert_eq!(
        json["totals"]["tests"].as_u64(),
        Some(5353),
        "sum of <testcase> elements in the corpus"
    );
}

#[test]
fn repeated_testcases_fold_like_the_peers_retry_view() {
    // mikepenz's `check_retries` merges repeated name|classname|file testcases into one test; Omen
    // folds them into one stored result the same way (and marks fail-then-pass as flaky evidence).
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus("junit/MANIFEST.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for entry in manifest["files"].as_array().unwrap() {
        let Some(merged) = entry["expected_retry_merged"].as_object() else {
            continue;
        };
        let name = entry["file"].as_str().unwrap();
        let db = tempfile::tempdir().unwrap();
        let out = run(omen(&corpus("junit"))
            .args(["ingest", "--format", "json", "--commit", "a", "--db"])
            .arg(db.path().join("h.db"))
            .arg(name));
        out.code(0);
        assert_eq!(
            out.json()["database"]["stored"].as_u64(),
            merged["tests"].as_u64(),
            "{name}: one stored result per distinct test\n{out}"
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the manifest has retry-merged expectations for several files"
    );
}

/// The real failure corpus (`tests/corpus/failures/real.jsonl`, see its `collect.py`): every
/// tool's output yields an error block through `omen ci --log`'s reading, named by a line that
/// is not a CI's wrap-up, and every label is one of Omen's categories.
#[test]
fn every_real_tool_failure_is_found_in_its_output_and_labelled_with_a_category() {
    let text = std::fs::read_to_string(corpus("failures/real.jsonl")).unwrap();
    let mut outputs = 0;
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let category = v["category"].as_str().unwrap();
        assert!(
            category.parse::<omen_core::failure::Category>().is_ok(),
            "line {}: {category}",
            i + 1
        );
        if let Some(out) = v["output"].as_str() {
            outputs += 1;
            let block = omen_core::failure::log::error_block(out)
                .unwrap_or_else(|| panic!("line {}: no error block in {out:?}", i + 1));
            assert!(
                !block.headline.starts_with("note:")
                    && !block.headline.starts_with("error: aborting"),
                "line {}: {:?} from {out:?}",
                i + 1,
                block.headline
            );
        }
    }
    assert_eq!(text.lines().count(), 192);
    assert_eq!(outputs, 72);
}
