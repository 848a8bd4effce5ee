//! Deterministic synthetic data for the benchmarks.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// A small, fast, deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Write a pytest-style JUnit report with `cases` test cases to `path`; `seed` varies outcomes.
/// About 500 bytes per case, like real reports that carry captured output.
pub fn junit_report(path: &Path, cases: usize, seed: u64) -> std::io::Result<u64> {
    let mut rng = Rng::new(seed);
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, r#"<?xml version="1.0" encoding="utf-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="{cases}" time="1234.5">"#
    )?;
    let mut line = String::with_capacity(1024);
    for i in 0..cases {
        line.clear();
        let module = i / 100;
        let class = (i / 10) % 10;
        let time = 0.001 + rng.f64() * 0.5;
        let _ = write!(
            line,
            r#"<testcase classname="tests.pkg_{}.test_module_{module}.TestGroup{class}" name="test_case_{i}[param-{}]" file="tests/pkg_{}/test_module_{module}.py" line="{}" time="{time:.6}">"#,
            module / 50,
            i % 7,
            module / 50,
            10 + (i % 10) * 12,
        );
        let roll = rng.f64();
        if roll < 0.01 {
            let _ = write!(
                line,
                r#"<failure message="AssertionError: expected 200, got 503 (attempt {})">Traceback (most recent call last):
  File "tests/pkg/test_module_{module}.py", line 42, in test_case_{i}
    assert response.status == 200
AssertionError: expected 200, got 503</failure>"#,
                rng.next_u64() % 5
            );
        } else if roll < 0.02 {
            line.push_str(
                r#"<skipped type="pytest.skip" message="requires network">skipped</skipped>"#,
            );
        }
        let _ = write!(
            line,
            "<system-out>setting up fixture db_{i}\nconnecting to 127.0.0.1:5432 as test user\nseeded 25 rows into table orders_{}\nrequest GET /api/v1/orders/{i} -> 200 in {:.3} ms\nrequest POST /api/v1/orders/{i}/items -> 201, body {{&quot;sku&quot;: &quot;A-{i}&quot;, &quot;qty&quot;: 2}}\ncache hit ratio 0.93, 0 warnings\nteardown complete</system-out></testcase>\n",
            i % 97,
            time * 1000.0
        );
        out.write_all(line.as_bytes())?;
    }
    writeln!(out, "</testsuite></testsuites>")?;
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// This process's peak resident set size in bytes (Linux `VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
