//! `omen-bench fuzz`: a seeded, structure-aware mutation loop over real reports and quarantine
//! files, on the JUnit parser (with its token bounds) and the quarantine-file reader.
//!
//! cargo-fuzz needs a nightly toolchain, which this project's machines cannot fetch, so this is a
//! plain loop on stable: seeds from `tests/corpus/junit` and `tests/corpus/fuzz`, mutations that
//! know XML and JSON tokens (tags, quotes, references, CDATA, comments, BOMs, long runs, cuts,
//! splices between seeds), every execution inside `catch_unwind`. Oracles besides "no panic":
//! the parser must give the same answer whether it reads the input in one slice or through a
//! 7-byte buffer (the token bounds' chunk-boundary logic), and a quarantine file that parses must
//! render to text that parses to the same file. A failing input is written to
//! `target/fuzz-failures/` and the run exits 1; keep it in `tests/corpus/fuzz/` as a regression
//! input (the suite runs every file there).

use std::io::BufReader;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use omen_core::junit::{Limits, parse_with};
use omen_metadata::quarantine::QuarantineFile;

/// xorshift64*: small, fast and seeded, so a run can be repeated exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const XML_TOKENS: &[&[u8]] = &[
    b"<testcase name=\"t\">",
    b"<testcase classname=\"c\" name=\"n\" time=\"0.1\"/>",
    b"</testcase>",
    b"<testsuite name=\"s\">",
    b"</testsuite>",
    b"<testsuites>",
    b"</testsuites>",
    b"<failure message=\"m\">",
    b"</failure>",
    b"<error/>",
    b"<skipped/>",
    b"<flakyFailure/>",
    b"<rerunFailure message=\"r\"/>",
    b"<properties><property name=\"omen.outcome\" value=\"failed\"/></properties>",
    b"<system-out>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?xml version=\"1.0\"?>",
    b"<!DOCTYPE x [<!ENTITY e \"v\">]>",
    b"&amp;",
    b"&#x1b;",
    b"&#10;",
    b"&#xFFFFFF;",
    b"&e;",
    b"&",
    b"\"",
    b"'",
    b"<",
    b">",
    b"/>",
    b"=",
    b"\xEF\xBB\xBF",
    b"\xFF\xFE",
    b"\xC3",
    b"\xE2\x80\xAE",
    b"\0",
];

const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\"version\": 1",
    b"\"version\": 2",
    b"\"tests\": []",
    b"\"mode\": \"skip\"",
    b"\"source\": \"manual\"",
    b"\"expires\": \"2099-01-01T00:00:00Z\"",
    b"null",
    b"true",
    b"1e309",
    b"-0",
    b"\\u0000",
    b"\\ud800",
    b"\xEF\xBB\xBF",
    b"//",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], tokens: &[&[u8]]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = tokens[rng.below(tokens.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64) + 1);
                input.drain(i..i + n);
            }
            3 if len > 0 => {
                // Duplicate a span (a repeated element, attribute or text).
                let i = rng.below(len);
                let n = rng.below((len - i).min(256) + 1);
                let span = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, span);
            }
            4 => {
                // Splice in a piece of another seed.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = rng.below((other.len() - i).min(512) + 1);
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[i..i + n].iter().copied());
                }
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            6 => {
                // A long run: past the token caps now and then.
                let n = match rng.below(32) {
                    0..=3 => omen_core::xml_bounds::VALUE_MAX + rng.below(64),
                    4 => omen_core::xml_bounds::TEXT_MAX + rng.below(64),
                    _ => rng.below(300),
                };
                let b = b"x \"<>&-]?\xC3\xA9"[rng.below(11)];
                let at = rng.below(len + 1);
                input.splice(at..at, std::iter::repeat_n(b, n));
            }
            7 if len > 0 => {
                let i = rng.below(len);
                input[i] = b"<>\"'&/=![]-?;\n"[rng.below(14)];
            }
            _ => {
                let t = tokens[rng.below(tokens.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
        }
    }
    // Keep executions fast: inputs stay small unless a long run was just added.
    if input.len() > 80 * 1024 {
        input.truncate(80 * 1024);
    }
}

/// What a parse said, for comparing two ways of reading the same bytes.
fn parse_summary(reader: impl std::io::BufRead) -> String {
    let mut cases = Vec::new();
    match parse_with(reader, Limits::default(), |c, _| {
        cases.push(format!("{}|{}|{:?}", c.classname, c.name, c.outcome))
    }) {
        Ok(s) => format!(
            "ok {:?} {:?} {:?} {}",
            s.counts,
            s.runner,
            s.truncated_at,
            cases.join(";")
        ),
        Err(e) => format!("err {e} {:?}", e.offset()),
    }
}

fn exec_junit(input: &[u8], differential: bool) -> Result<(), String> {
    let whole = parse_summary(input);
    if differential {
        let small = parse_summary(BufReader::with_capacity(7, input));
        if whole != small {
            let at = whole
                .bytes()
                .zip(small.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(whole.len().min(small.len()));
            let around =
                |s: &str| -> String { s.chars().skip(at.saturating_sub(60)).take(140).collect() };
            return Err(format!(
                "the parse differs with a 7-byte buffer, at {at}:\n    whole:  {}\n    7-byte: {}",
                around(&whole),
                around(&small)
            ));
        }
    }
    Ok(())
}

fn exec_quarantine(input: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Ok(());
    };
    if let Ok(file) = QuarantineFile::parse(text) {
        let rendered = file.render();
        match QuarantineFile::parse(&rendered) {
            Ok(again) if again.render() == rendered => {}
            Ok(_) => return Err("render → parse → render is not stable".to_owned()),
            Err(e) => return Err(format!("a file Omen rendered does not parse: {e}")),
        }
    }
    Ok(())
}

fn seeds_in(dir: &Path, ext: &str, out: &mut Vec<Vec<u8>>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            seeds_in(&path, ext, out)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            let mut bytes = std::fs::read(&path)?;
            bytes.truncate(4 * 1024);
            out.push(bytes);
        }
    }
    Ok(())
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// An input that failed, and how.
struct Found {
    input: Vec<u8>,
    why: String,
}

/// What one thread did.
struct Worked {
    executions: u64,
    failures: Vec<Found>,
}

/// One thread's loop: mutate, execute inside `catch_unwind`, keep what fails (at most 20).
fn worker(seed: u64, thread: u64, executions: u64, xml: &[Vec<u8>], json: &[Vec<u8>]) -> Worked {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (thread + 1));
    let mut failures = Vec::new();
    let mut done = 0u64;
    // The report being mutated and the quarantine file being mutated.
    let mut inputs = [Vec::new(), Vec::new()];
    for n in 0..executions {
        let is_json = n % 8 == 7;
        let input = &mut inputs[usize::from(is_json)];
        let (pool, tokens) = if is_json {
            (json, JSON_TOKENS)
        } else {
            (xml, XML_TOKENS)
        };
        // Restart from a seed now and then; otherwise keep mutating the input.
        if n % 8 == 0 || n % 64 == 7 || input.is_empty() {
            input.clone_from(&pool[rng.below(pool.len())]);
        }
        mutate(&mut rng, input, pool, tokens);
        let differential = n % 4 == 0;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if is_json {
                exec_quarantine(input)
            } else {
                exec_junit(input, differential)
            }
        }));
        done += 1;
        let why = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(panic) => Some(format!(
                "panic: {}",
                panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            )),
        };
        if let Some(why) = why {
            failures.push(Found {
                input: std::mem::take(input),
                why,
            });
            if failures.len() >= 20 {
                break;
            }
        }
    }
    Worked {
        executions: done,
        failures,
    }
}

/// Run `executions` mutated inputs from `seed`, split over two threads. Fails on any panic or
/// oracle violation, after writing the inputs to `failures`.
pub fn run(executions: u64, seed: u64, corpus: &Path, failures: &Path) -> anyhow::Result<()> {
    let mut xml = Vec::new();
    seeds_in(&corpus.join("junit"), "xml", &mut xml)?;
    seeds_in(&corpus.join("fuzz"), "xml", &mut xml)?;
    let mut json = Vec::new();
    seeds_in(&corpus.join("fuzz"), "json", &mut json)?;
    if xml.is_empty() || json.is_empty() {
        bail!(
            "no fuzz seeds under {}: the corpus is committed with the repository",
            corpus.display()
        );
    }
    // Panics are expected to be caught and reported, not printed per execution.
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    let threads = 2u64;
    let per_thread = executions / threads;
    let results: Vec<Worked> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (xml, json) = (&xml, &json);
                s.spawn(move || worker(seed, t, per_thread, xml, json))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Worked {
                    executions: 0,
                    failures: vec![Found {
                        input: Vec::new(),
                        why: "a fuzz thread died".to_owned(),
                    }],
                })
            })
            .collect()
    });
    let _ = std::panic::take_hook();
    let elapsed = start.elapsed().as_secs_f64();
    let done: u64 = results.iter().map(|r| r.executions).sum();
    let found: Vec<&Found> = results.iter().flat_map(|r| &r.failures).collect();
    println!(
        "fuzz: {done} executions in {elapsed:.1} s ({:.0}/s) on 2 threads, seed {seed}, {} XML and {} JSON seeds; peak RSS {} MB; {} failure(s)",
        done as f64 / elapsed,
        xml.len(),
        json.len(),
        peak_rss_kb().map_or("?".to_owned(), |k| format!("{:.0}", k as f64 / 1024.0)),
        found.len()
    );
    if found.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(failures)?;
    for (i, f) in found.iter().enumerate() {
        let path: PathBuf = failures.join(format!("failure-{i}.bin"));
        std::fs::write(&path, &f.input)?;
        println!("  {}: {}", path.display(), f.why);
    }
    bail!(
        "{} fuzz failure(s); keep each in tests/corpus/fuzz/ once fixed",
        found.len()
    )
}
