//! Architecture invariant: `omen-core` does no I/O (see ARCHITECTURE.md).
//!
//! Two checks keep it true: its dependencies stay on an allow-list of pure crates, and its source
//! never names the standard library's I/O entry points.

use std::path::Path;

// humantime formats and parses timestamps (it never reads the clock); omen-metadata holds
// serde-only format types.
const ALLOWED_DEPENDENCIES: &[&str] = &[
    "humantime",
    "memchr",
    "omen-metadata",
    "quick-xml",
    "thiserror",
];

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::env",
    "std::process",
    "SystemTime::now",
    "Instant::now",
    "File::open",
    "File::create",
    "TcpStream",
    "std::thread::sleep",
];

#[test]
fn core_depends_only_on_pure_crates() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("omen-core's Cargo.toml is readable");
    let mut section = String::new();
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        if section == "[dependencies]" && !line.is_empty() && !line.starts_with('#') {
            let name = line
                .split(['=', '.'])
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            deps.push(name);
        }
    }
    assert!(
        !deps.is_empty(),
        "no [dependencies] found: the check would be vacuous"
    );
    for dep in &deps {
        assert!(
            ALLOWED_DEPENDENCIES.contains(&dep.as_str()),
            "omen-core must not depend on `{dep}`: the core does no I/O; put I/O in omen-store or omen-cli"
        );
    }
}

#[test]
fn core_source_names_no_io_entry_points() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = 0;
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            files += 1;
            let text = std::fs::read_to_string(&path).expect("source is readable");
            for needle in FORBIDDEN {
                assert!(
                    !text.contains(needle),
                    "{} uses `{needle}`: omen-core does no I/O",
                    path.display()
                );
            }
        }
    }
    assert!(
        files >= 5,
        "expected the core's modules in {}",
        src.display()
    );
}
