//! `dist/install.sh` against a release served from 127.0.0.1.

use std::path::Path;
use std::process::Command;

use omen_tests::{StaticServer, omen_bin, repo_root, run};

fn target() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "x86_64-unknown-linux-gnu",
        ("linux", "aarch64") => "aarch64-unknown-linux-gnu",
        ("macos", "x86_64") => "x86_64-apple-darwin",
        ("macos", "aarch64") => "aarch64-apple-darwin",
        other => panic!("no release target for {other:?}"),
    }
}

fn install(base: &str, version: &str, dest: &Path, path_dir: Option<&Path>) -> omen_tests::Run {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("dist/install.sh"))
        .env("OMEN_VERSION", version)
        .env("OMEN_RELEASE_BASE_URL", base)
        .env("OMEN_INSTALL_DIR", dest)
        .env("GITHUB_PATH", dest.join("github_path"));
    if let Some(dir) = path_dir {
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path);
    }
    run(&mut cmd)
}

#[test]
fn installs_a_verified_release_refuses_a_bad_checksum_and_falls_back_to_source() {
    let releases = tempfile::tempdir().unwrap();
    let version = "v9.9.9";
    let out = run(Command::new("bash")
        .arg(repo_root().join("dist/package.sh"))
        .args([version, target()])
        .arg(omen_bin())
        .arg(releases.path().join(version)));
    out.code(0);
    let server = StaticServer::start(releases.path());

    // 1. The release asset, verified.
    let dest = tempfile::tempdir().unwrap();
    let ok = install(&server.url, version, dest.path(), None);
    ok.code(0);
    assert!(
        ok.stderr
            .contains(&format!("installed release {version} ({}", target())),
        "{ok}"
    );
    let version_out = run(Command::new(dest.path().join("bin/omen")).arg("--version"));
    version_out.code(0);
    assert!(version_out.stdout.starts_with("omen "), "{version_out}");
    let github_path = std::fs::read_to_string(dest.path().join("github_path")).unwrap();
    assert_eq!(
        github_path.trim(),
        dest.path().join("bin").display().to_string()
    );

    // 2. A tampered checksum: refused, nothing installed.
    let sums = releases
        .path()
        .join(version)
        .join(format!("omen-{version}-{}.tar.gz.sha256", target()));
    let good = std::fs::read_to_string(&sums).unwrap();
    std::fs::write(&sums, format!("{}  tampered\n", "0".repeat(64))).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let bad = install(&server.url, version, dest.path(), None);
    bad.code(1);
    assert!(bad.stderr.contains("checksum mismatch"), "{bad}");
    assert!(!dest.path().join("bin/omen").exists());
    std::fs::write(&sums, good).unwrap();

    // 3. No asset for this version: build from the action's checkout (cargo stubbed to record it).
    let stub = tempfile::tempdir().unwrap();
    let log = stub.path().join("cargo.log");
    std::fs::write(
        stub.path().join("cargo"),
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\nmkdir -p \"$7/bin\" && : > \"$7/bin/omen\"\n",
            log.display()
        ),
    )
    .unwrap();
    run(Command::new("chmod")
        .arg("+x")
        .arg(stub.path().join("cargo")))
    .code(0);
    let dest = tempfile::tempdir().unwrap();
    let fallback = install(&server.url, "v0.0.404", dest.path(), Some(stub.path()));
    fallback.code(0);
    assert!(
        fallback
            .stderr
            .contains("building v0.0.404 from source (no release asset"),
        "{fallback}"
    );
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(
        args.starts_with("install --locked --quiet --path ") && args.contains("crates/omen-cli"),
        "{args}"
    );
}
