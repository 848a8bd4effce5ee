//! The benchmarks use the libraries; of `omen-cli` they may only run the real command in process
//! (`omen_cli::Cli` parsed, `omen_cli::run`), never call its internals (ARCHITECTURE.md).

use std::path::Path;

#[test]
fn the_bench_takes_no_decision_from_the_cli() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses = 0;
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let text = std::fs::read_to_string(&path).expect("source is readable");
        for (at, _) in text.match_indices("omen_cli::") {
            uses += 1;
            let rest = &text[at + "omen_cli::".len()..];
            assert!(
                rest.starts_with("Cli ") || rest.starts_with("run("),
                "{} uses omen_cli::{}: use the library that owns it",
                path.display(),
                rest.chars().take(40).collect::<String>()
            );
        }
    }
    assert!(
        uses > 0,
        "no use of the command found: the check would be vacuous"
    );
}
