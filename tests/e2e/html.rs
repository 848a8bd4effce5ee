//! The HTML report rendered by real headless Chromium (Debian's `chromium`, which
//! `tests/run.sh` installs): the page renders, its charts are drawn, and hostile test names
//! stay inert text.

use std::path::{Path, PathBuf};

use omen_render::html;
use omen_tests::{omen, run};

/// A test name that would change the page if it were ever parsed as HTML: an element, and a
/// script that paints the page red.
const HOSTILE: &str = "test_x[<img src=x onerror=alert(1)><script>document.body.style.background='rgb(255,0,0)'</script>]";

fn xml_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A report of the stable test, the hostile one with `hostile` as its outcome ('P' or 'F'), and
/// a slow one whose time grows with `n`.
fn report(dir: &Path, n: u32, hostile: char) -> PathBuf {
    let name = xml_attr(HOSTILE);
    let case = match hostile {
        'F' => format!(
            "<testcase classname=\"tests.test_app\" name=\"{name}\" file=\"tests/test_app.py\" time=\"0.2\"><failure message=\"{name} timed out\">trace</failure></testcase>"
        ),
        _ => format!(
            "<testcase classname=\"tests.test_app\" name=\"{name}\" file=\"tests/test_app.py\" time=\"0.2\"/>"
        ),
    };
    let path = dir.join(format!("r{n}-{hostile}.xml"));
    std::fs::write(
        &path,
        format!(
            "<testsuite name=\"pytest\"><testcase classname=\"tests.test_app\" name=\"test_stable\" file=\"tests/test_app.py\" time=\"1.5\"/>\
             <testcase classname=\"tests.test_app\" name=\"test_slow\" file=\"tests/test_app.py\" time=\"{}\"/>{case}</testsuite>",
            2.0 + f64::from(n) * 0.5
        ),
    )
    .unwrap();
    path
}

fn ingest(dir: &Path, n: u32, commit: &str, hostile: char, attempt: u32) {
    let file = report(dir, n, hostile);
    let mut cmd = omen(dir);
    cmd.args(["ingest", "--db", "h.db", "--commit", commit])
        .args(["--branch", "main", "--default-branch", "main"])
        .args([
            "--run-id",
            &n.to_string(),
            "--attempt",
            &attempt.to_string(),
        ])
        .args(["--timestamp", &format!("2026-03-{n:02}T00:00:00Z")])
        .arg(file);
    run(&mut cmd).code(0);
}

/// Chromium from `OMEN_TEST_CHROMIUM` or the PATH; panics (never skips) when it is missing.
fn chromium() -> PathBuf {
    let found = std::env::var_os("OMEN_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("chromium"), PathBuf::from);
    omen_tests::require_tool(found, "chromium")
}

fn headless(page: &Path, profile: &Path, what: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(what)
        .arg(format!("file://{}", page.display()))
        .env("HOME", profile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// RGB pixels of a PNG.
fn pixels(png_path: &Path) -> Vec<[u8; 3]> {
    let file = std::io::BufReader::new(std::fs::File::open(png_path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

fn count_near(pixels: &[[u8; 3]], hex: &str) -> usize {
    let c = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    let want = [(c >> 16) as u8, (c >> 8) as u8, c as u8];
    pixels
        .iter()
        .filter(|p| (0..3).all(|i| p[i].abs_diff(want[i]) <= 12))
        .count()
}

#[test]
fn the_html_report_renders_its_charts_in_chromium_and_hostile_names_stay_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Ten default-branch runs; the hostile test fails once and passes on a re-run of that
    // commit: flaky.
    for n in 1..=10 {
        let commit = format!("{n:0>40}");
        if n == 4 {
            ingest(d, n, &commit, 'F', 1);
            ingest(d, n + 10, &commit, 'P', 2);
        } else {
            ingest(d, n, &commit, 'P', 1);
        }
    }
    // A pull request's run where it fails again.
    let pr = report(d, 30, 'F');
    let mut cmd = omen(d);
    cmd.args([
        "ci",
        "--db",
        "h.db",
        "--html",
        "report.html",
        "--risk",
        "off",
    ])
    .args(["--comment", "off", "--fail-on", "never"])
    .args(["--commit", &"e".repeat(40), "--branch", "feature"])
    .args(["--default-branch", "main", "--pull-request", "5"])
    .arg("--reports")
    .arg(&pr);
    run(&mut cmd).code(0);
    let page = d.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("id=\"chart-flaky\""),
        "no flaky chart:\n{html}"
    );

    let profile = d.join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    // What Chromium built from the page: the hostile name is text, never an element.
    let dom = String::from_utf8(headless(&page, &profile, &["--dump-dom"]).stdout).unwrap();
    assert!(dom.contains("<svg id=\"chart-pass-rate\""), "{dom}");
    assert!(dom.contains("<svg id=\"chart-duration\""), "{dom}");
    assert!(dom.contains("<svg id=\"chart-flaky\""), "{dom}");
    assert!(!dom.contains("<img") && !dom.contains("<script"), "{dom}");
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    assert!(
        !dom.contains("rgb(255, 0, 0)") && !dom.contains("rgb(255,0,0);"),
        "{dom}"
    );

    // What a reader sees: each chart's colour is drawn, and the page is not red.
    let shot = d.join("shot.png");
    headless(
        &page,
        &profile,
        &[&format!("--screenshot={}", shot.display())],
    );
    let px = pixels(&shot);
    let pass_rate = count_near(&px, html::PASS_RATE_COLOUR);
    let duration = count_near(&px, html::DURATION_COLOUR);
    let flaky = count_near(&px, html::FLAKY_COLOUR);
    // A 3-pixel line across the chart; ten bars; one short bar (a score of a few percent).
    assert!(pass_rate > 300, "pass-rate line: {pass_rate} pixels");
    assert!(duration > 2_000, "duration bars: {duration} pixels");
    assert!(flaky > 100, "flaky bars: {flaky} pixels");
    let red = px
        .iter()
        .filter(|p| p[0] > 240 && p[1] < 20 && p[2] < 20)
        .count();
    assert!(red < 50, "{red} red pixels: a hostile script ran");
    let white = count_near(&px, "#ffffff");
    assert!(
        white > px.len() / 2,
        "the page did not render: {white} of {} white",
        px.len()
    );
}
