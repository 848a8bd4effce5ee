//! `omen-bench failures`: failure grouping on synthetic suites with known causes (grouping
//! accuracy and adjusted Rand index), and its speed: 10,000 failures grouped in memory, and
//! `omen failures cluster` on a 2,000-line file as a whole process.

use std::path::Path;
use std::time::Instant;

use omen_core::failure::{FailureText, GroupConfig, Grouper, Signature, headline};

/// One synthetic failure and the cause it belongs to.
pub struct Case {
    pub kind: Option<String>,
    pub message: String,
    pub trace: String,
    pub cause: usize,
}

fn py_trace(test: &str, frames: &[(&str, u32, &str)]) -> String {
    let mut t = String::from("Traceback (most recent call last):\n");
    t.push_str(&format!(
        "  File \"/builds/acme/shop/tests/{test}.py\", line {}, in {test}\n    call()\n",
        10 + frames.len()
    ));
    for (file, line, func) in frames {
        t.push_str(&format!(
            "  File \"{file}\", line {line}, in {func}\n    x()\n"
        ));
    }
    t
}

/// The suite the issue describes: 30 connection failures with different ports, request ids and
/// timestamps and varied traces; 3 distinct assertion diffs (three tests); 2 panics at one frame
/// with different values; 5 timeouts whose traces differ only in line numbers.
pub fn suite(seed: u64) -> Vec<Case> {
    let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 33
    };
    let mut cases = Vec::new();
    for i in 0..30 {
        let port = 5400 + next() % 600;
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            next(),
            next() % 0xffff,
            next() % 0xfff,
            next() % 0xfff,
            next() * 7919
        );
        let ts = format!(
            "2026-10-{:02}T{:02}:{:02}:{:02}Z",
            1 + next() % 28,
            next() % 24,
            next() % 60,
            next() % 60
        );
        let depth = 1 + next() % 3;
        let mut frames = vec![(
            "/builds/acme/shop/app/db.py",
            (40 + next() % 30) as u32,
            "connect",
        )];
        for _ in 0..depth {
            frames.insert(
                0,
                (
                    "/builds/acme/shop/app/orders.py",
                    (100 + next() % 50) as u32,
                    "load",
                ),
            );
        }
        frames.push(("/usr/lib/python3.11/socket.py", 800, "create_connection"));
        cases.push(Case {
            kind: Some("ConnectionRefusedError".into()),
            message: format!(
                "ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:{port} (request {id} at {ts})"
            ),
            trace: py_trace(&format!("test_orders_{i}"), &frames),
            cause: 0,
        });
    }
    for (k, (test, a, b)) in [
        ("test_total", 3, 4),
        ("test_tax", 17, 19),
        ("test_discount", 250, 200),
    ]
    .into_iter()
    .enumerate()
    {
        cases.push(Case {
            kind: Some("AssertionError".into()),
            message: format!("AssertionError: assert {a} == {b}"),
            trace: format!(
                "  File \"/builds/acme/shop/tests/test_cart.py\", line {}, in {test}\n    assert total == {b}\n",
                20 + k * 7
            ),
            cause: 1 + k,
        });
    }
    for v in ["abc", "x9"] {
        cases.push(Case {
            kind: None,
            message: format!("called `Result::unwrap()` on an `Err` value: ParseIntError {{ kind: InvalidDigit }} for {v:?}"),
            trace: format!(
                "thread 'parse::tests::reads_{v}' panicked at src/parse.rs:42:{}:\ncalled `Result::unwrap()`",
                5 + v.len()
            ),
            cause: 4,
        });
    }
    for i in 0..5 {
        cases.push(Case {
            kind: Some("TimeoutError".into()),
            message: "TimeoutError: the payment service did not answer".into(),
            trace: py_trace(
                &format!("test_pay_{i}"),
                &[("/builds/acme/shop/app/pay.py", 60 + i * 3, "charge")],
            ),
            cause: 5,
        });
    }
    cases
}

/// Group `cases` as `omen ci` does; the group of each case.
pub fn group(cases: &[Case]) -> (Vec<usize>, Vec<String>) {
    let mut g = Grouper::new(GroupConfig::default());
    for c in cases {
        g.add(
            Signature::of(&FailureText {
                kind: c.kind.as_deref(),
                message: Some(&c.message),
                trace: Some(&c.trace),
            })
            .tokens(),
        );
    }
    let groups = g.finish();
    let mut of = vec![0; cases.len()];
    let mut heads = Vec::new();
    for (k, group) in groups.iter().enumerate() {
        for &m in &group.members {
            of[m] = k;
        }
        heads.push(headline(
            group.members.iter().map(|&m| cases[m].message.as_str()),
        ));
    }
    (of, heads)
}

/// Share of items whose predicted group has exactly the members of their true group.
pub fn grouping_accuracy(pred: &[usize], truth: &[usize]) -> f64 {
    use std::collections::BTreeMap;
    let sets = |labels: &[usize]| {
        let mut m: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &l) in labels.iter().enumerate() {
            m.entry(l).or_default().push(i);
        }
        m
    };
    let (p, t) = (sets(pred), sets(truth));
    let right = (0..pred.len())
        .filter(|&i| p[&pred[i]] == t[&truth[i]])
        .count();
    right as f64 / pred.len().max(1) as f64
}

/// Hubert and Arabie's adjusted Rand index.
pub fn adjusted_rand_index(pred: &[usize], truth: &[usize]) -> f64 {
    use std::collections::HashMap;
    let c2 = |n: f64| n * (n - 1.0) / 2.0;
    let mut joint: HashMap<(usize, usize), f64> = HashMap::new();
    let mut a: HashMap<usize, f64> = HashMap::new();
    let mut b: HashMap<usize, f64> = HashMap::new();
    for (&p, &t) in pred.iter().zip(truth) {
        *joint.entry((p, t)).or_default() += 1.0;
        *a.entry(p).or_default() += 1.0;
        *b.entry(t).or_default() += 1.0;
    }
    let index: f64 = joint.values().map(|&n| c2(n)).sum();
    let sa: f64 = a.values().map(|&n| c2(n)).sum();
    let sb: f64 = b.values().map(|&n| c2(n)).sum();
    let expected = sa * sb / c2(pred.len() as f64);
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < f64::EPSILON {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Synthetic log lines from 20 templates with variable fields, and each line's template.
fn log_lines(n: usize) -> (Vec<String>, Vec<usize>) {
    let templates: [&dyn Fn(usize) -> String; 20] = [
        &|i| {
            format!(
                "Accepted password for user{} from 10.0.{}.{} port {} ssh2",
                i % 50,
                i % 255,
                (i * 7) % 255,
                40000 + i
            )
        },
        &|i| {
            format!(
                "Connection closed by 10.0.{}.{} port {}",
                i % 255,
                (i * 3) % 255,
                50000 + i
            )
        },
        &|i| {
            format!(
                "Received disconnect from 192.168.{}.{}: 11: Bye Bye",
                i % 200,
                i % 250
            )
        },
        &|i| format!("session opened for user root by (uid={})", i % 3),
        &|i| {
            format!(
                "Failed to fetch block blk_{} from datanode {}",
                1000 + i * 13,
                i % 40
            )
        },
        &|i| {
            format!(
                "PacketResponder {} for block blk_{} terminating",
                i % 3,
                2000 + i
            )
        },
        &|i| format!("Verification succeeded for blk_{}", 3000 + i * 7),
        &|i| {
            format!(
                "Deleting block blk_{} file /data/dfs/{}/blk_{}",
                4000 + i,
                i % 9,
                4000 + i
            )
        },
        &|i| {
            format!(
                "worker {} finished job {} in {} ms",
                i % 16,
                9000 + i,
                10 + i % 900
            )
        },
        &|i| format!("GET /api/v1/orders/{} 200 {}ms", 100000 + i, 3 + i % 400),
        &|i| format!("POST /api/v1/cart/{}/items 201 {}ms", 500 + i, 5 + i % 300),
        &|i| {
            format!(
                "cache miss for key order:{} after {} attempts",
                i * 31,
                1 + i % 4
            )
        },
        &|i| {
            format!(
                "retrying request {} to payment-service (attempt {} of 5)",
                i * 17,
                1 + i % 5
            )
        },
        &|i| {
            format!(
                "Out of memory: Killed process {} (java) total-vm:{}kB",
                1000 + i,
                200000 + i * 11
            )
        },
        &|i| {
            format!(
                "kernel: [{}.{}] eth0: link up, 1000Mbps, full-duplex",
                1000 + i,
                i % 1000
            )
        },
        &|i| {
            format!(
                "Starting container {} with image registry.local/app:{}",
                i * 97 % 100000,
                i % 30
            )
        },
        &|i| {
            format!(
                "health check passed for instance i-{:08x}",
                i * 2654435761usize % 0xffffffff
            )
        },
        &|i| format!("user {} logged out after {} seconds", 200 + i % 900, 60 + i),
        &|i| format!("Job {} failed with exit status {}", 7000 + i, 1 + i % 2),
        &|i| format!("disk usage at {}% on /dev/sda{}", 50 + i % 50, 1 + i % 3),
    ];
    let mut lines = Vec::with_capacity(n);
    let mut truth = Vec::with_capacity(n);
    for i in 0..n {
        let t = (i * 7 + i / 13) % templates.len();
        lines.push(templates[t](i));
        truth.push(t);
    }
    (lines, truth)
}

fn record(c: &Case, i: usize) -> omen_store::ResultRecord {
    omen_store::ResultRecord {
        key_hash: omen_core::hash::fnv1a64(format!("t{i}").as_bytes()),
        scope: "tests".into(),
        name: format!("t{i}"),
        file: None,
        line: None,
        selector: format!("tests::t{i}"),
        selector_derived: false,
        runner: omen_core::Runner::Generic,
        outcome: omen_core::Outcome::Failed,
        mixed: false,
        duration_ms: Some(5),
        failure: Some(omen_core::Failure {
            kind: Some(omen_core::FailureKind::Failure),
            r#type: c.kind.clone(),
            message: Some(c.message.clone()),
            text: Some(c.trace.clone()),
        }),
    }
}

/// Share of the next run's old-cause signatures the history knows, and of injected new causes.
fn known_across_runs(data: &Path) -> anyhow::Result<(f64, f64)> {
    std::fs::create_dir_all(data)?;
    let db = data.join("signatures.db");
    let _ = std::fs::remove_file(&db);
    let mut store = omen_store::Store::open(&db, 0)?.store;
    for n in 0..10u64 {
        let meta = omen_core::run::RunMeta {
            commit: Some(format!("{n:040}")),
            branch: Some("main".into()),
            default_branch: Some("main".into()),
            run_id: Some(n.to_string()),
            attempt: 1,
            job: None,
            pull_request: None,
            at: 1_790_000_000 + n as i64 * 3600,
            change: None,
            ..Default::default()
        };
        let records = suite(1000 + n)
            .iter()
            .enumerate()
            .map(|(i, c)| record(c, i))
            .collect();
        store.ingest(
            &meta,
            &format!("run-{n}"),
            records,
            &omen_store::StoreConfig::default(),
        )?;
    }
    let signature = |c: &Case| {
        Signature::of(&FailureText {
            kind: c.kind.as_deref(),
            message: Some(&c.message),
            trace: Some(&c.trace),
        })
        .hash
    };
    let next = suite(5000);
    let known = next
        .iter()
        .filter(|c| matches!(store.signature(signature(c)), Ok(Some(_))))
        .count();
    let injected = [
        (
            "PermissionError",
            "PermissionError: [Errno 13] Permission denied: '/var/lib/app/cache'",
            "  File \"/builds/acme/shop/app/cache.py\", line 8, in warm\n",
        ),
        (
            "MemoryError",
            "MemoryError: cannot allocate 4096 MiB",
            "  File \"/builds/acme/shop/app/report.py\", line 99, in render\n",
        ),
        (
            "socket.gaierror",
            "socket.gaierror: [Errno -2] Name or service not known: 'db.internal'",
            "  File \"/builds/acme/shop/app/db.py\", line 41, in resolve\n",
        ),
        (
            "AssertionError",
            "AssertionError: assert 'EUR' == 'USD'",
            "  File \"/builds/acme/shop/tests/test_cart.py\", line 70, in test_currency\n",
        ),
        (
            "",
            "thread 'main' panicked at src/export.rs:12:5: index out of bounds: the len is 3 but the index is 7",
            "",
        ),
    ];
    let called_known = injected
        .iter()
        .filter(|(kind, message, trace)| {
            let hash = Signature::of(&FailureText {
                kind: (!kind.is_empty()).then_some(*kind),
                message: Some(message),
                trace: (!trace.is_empty()).then_some(*trace),
            })
            .hash;
            matches!(store.signature(hash), Ok(Some(_)))
        })
        .count();
    Ok((
        known as f64 / next.len() as f64,
        called_known as f64 / injected.len() as f64,
    ))
}

/// Run the benchmark; the number of targets missed (a time target counts as missed only beyond
/// `tolerance` times it, the shared machine's noise; the report marks every miss).
/// One failure of the real corpus (`tests/corpus/failures/real.jsonl`, written by its
/// `collect.py`): from a test report (`kind`, `message`, `trace`) or a tool's output (`output`,
/// read as `omen ci --log` reads a log), with its hand-labelled cause and category.
pub struct RealFailure {
    pub tool: String,
    pub group: String,
    pub category: String,
    pub kind: Option<String>,
    pub message: Option<String>,
    pub trace: Option<String>,
    pub output: Option<String>,
}

/// The committed real corpus; an error (never a skip) when it is missing.
pub fn real_corpus() -> anyhow::Result<Vec<RealFailure>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/failures/real.jsonl");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (the corpus is committed)", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
            let text = |k: &str| v[k].as_str().map(str::to_owned);
            let need = |k: &str| {
                text(k).ok_or_else(|| anyhow::anyhow!("{}:{}: no `{k}`", path.display(), i + 1))
            };
            Ok(RealFailure {
                tool: need("tool")?,
                group: need("group")?,
                category: need("category")?,
                kind: text("kind"),
                message: text("message"),
                trace: text("trace"),
                output: text("output"),
            })
        })
        .collect()
}

/// A real failure as Omen reads it: a report's failure as given, a tool's output through the
/// log's error block. Returns (kind, message, trace).
fn as_read(f: &RealFailure) -> (Option<String>, Option<String>, Option<String>) {
    match &f.output {
        Some(out) => match omen_core::failure::log::error_block(out) {
            Some(b) => (None, Some(b.headline), Some(b.excerpt.join("\n"))),
            None => (None, Some(out.clone()), None),
        },
        None => (f.kind.clone(), f.message.clone(), f.trace.clone()),
    }
}

/// Accuracy on the real corpus: (grouping accuracy, adjusted Rand index, share classified
/// right by the shipped rules, by the rules plus the learned layer trained on the other causes'
/// labels, failures, causes).
pub struct RealScores {
    /// What was grouped or classified wrong, one line per cause.
    pub misses: Vec<String>,
    pub grouping: f64,
    pub ari: f64,
    pub rules: f64,
    pub with_learned: f64,
    pub failures: usize,
    pub causes: usize,
}

/// Group and classify the real corpus as `omen ci` does.
pub fn score_real(corpus: &[RealFailure]) -> RealScores {
    use omen_core::failure::{Category, Classifier, LabelledText, NaiveBayes};
    let read: Vec<_> = corpus.iter().map(as_read).collect();
    let texts: Vec<FailureText<'_>> = read
        .iter()
        .map(|(k, m, t)| FailureText {
            kind: k.as_deref(),
            message: m.as_deref(),
            trace: t.as_deref(),
        })
        .collect();
    let mut names: Vec<&str> = corpus.iter().map(|f| f.group.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let truth: Vec<usize> = corpus
        .iter()
        .map(|f| names.binary_search(&f.group.as_str()).unwrap_or(0))
        .collect();
    let causes = omen_jobs::failures::group(&texts, &Classifier::default());
    let mut pred = vec![0; corpus.len()];
    for (k, c) in causes.iter().enumerate() {
        for &m in &c.members {
            pred[m] = k;
        }
    }
    let expected: Vec<Option<Category>> = corpus.iter().map(|f| f.category.parse().ok()).collect();
    let signatures: Vec<Signature> = texts.iter().map(Signature::of).collect();
    let rules = Classifier::default();
    let right_by_rules = texts
        .iter()
        .zip(&signatures)
        .zip(&expected)
        .filter(|((t, s), e)| rules.classify(t, s).map(|k| k.category) == **e)
        .count();
    // Leave one cause out: the learned layer trains on every other cause's labelled failures.
    let mut right_with_learned = 0;
    for (g, _) in names.iter().enumerate() {
        let examples: Vec<LabelledText> = (0..corpus.len())
            .filter(|&i| truth[i] != g)
            .filter_map(|i| {
                Some(LabelledText {
                    text: signatures[i].masked.clone(),
                    category: expected[i]?,
                    weight: 1.0,
                })
            })
            .collect();
        let classifier = Classifier {
            learned: Some(NaiveBayes::train(&examples)),
            ..Default::default()
        };
        right_with_learned += (0..corpus.len())
            .filter(|&i| truth[i] == g)
            .filter(|&i| {
                classifier
                    .classify(&texts[i], &signatures[i])
                    .map(|k| k.category)
                    == expected[i]
            })
            .count();
    }
    // What went wrong, for the log: causes split or merged, and categories missed by the rules.
    let mut misses = Vec::new();
    for (g, name) in names.iter().enumerate() {
        let members: Vec<usize> = (0..corpus.len()).filter(|&i| truth[i] == g).collect();
        let mut clusters: Vec<usize> = members.iter().map(|&i| pred[i]).collect();
        clusters.sort_unstable();
        clusters.dedup();
        let merged = clusters
            .iter()
            .any(|&k| (0..corpus.len()).any(|i| pred[i] == k && truth[i] != g));
        if clusters.len() > 1 || merged {
            misses.push(format!(
                "{name} ({}): split in {}{}",
                corpus[members[0]].tool,
                clusters.len(),
                if merged {
                    ", merged with another cause"
                } else {
                    ""
                }
            ));
        }
        let i = members[0];
        let got = rules
            .classify(&texts[i], &signatures[i])
            .map(|k| k.category);
        if got != expected[i] {
            misses.push(format!(
                "{name}: rules say {}, labelled {} ({})",
                got.map_or("nothing", |c| c.as_str()),
                corpus[i].category,
                signatures[i].masked.chars().take(80).collect::<String>()
            ));
        }
    }
    let n = corpus.len().max(1) as f64;
    RealScores {
        misses,
        grouping: grouping_accuracy(&pred, &truth),
        ari: adjusted_rand_index(&pred, &truth),
        rules: right_by_rules as f64 / n,
        with_learned: right_with_learned as f64 / n,
        failures: corpus.len(),
        causes: names.len(),
    }
}

pub fn run(data: &Path, tolerance: f64) -> anyhow::Result<usize> {
    let missed = std::cell::Cell::new(0);
    let row = |name: &str, value: String, target: &str, ok: bool| {
        println!(
            "  {name:<52} {value:>12}   target {target:<10} {}",
            if ok { "ok" } else { "MISSED" }
        );
        missed.set(missed.get() + usize::from(!ok));
    };
    let timed = |name: &str, secs: f64, target_secs: f64| {
        let ok = secs <= target_secs;
        println!(
            "  {name:<52} {:>12}   target {:<10} {}",
            format!("{:.1} ms", secs * 1000.0),
            format!("<= {:.0} ms", target_secs * 1000.0),
            if ok { "ok" } else { "MISSED" }
        );
        missed.set(missed.get() + usize::from(secs > target_secs * tolerance));
    };
    println!("failure grouping (one global configuration)");
    // Accuracy on the suites with known causes, several seeds.
    let (mut ga_min, mut ari_min) = (f64::MAX, f64::MAX);
    let mut heads = Vec::new();
    for seed in 1..=5 {
        let cases = suite(seed);
        let truth: Vec<usize> = cases.iter().map(|c| c.cause).collect();
        let (pred, h) = group(&cases);
        ga_min = ga_min.min(grouping_accuracy(&pred, &truth));
        ari_min = ari_min.min(adjusted_rand_index(&pred, &truth));
        if seed == 1 {
            heads = h;
        }
    }
    row(
        "synthetic suites (40 failures, 6 causes, 5 seeds): accuracy",
        format!("{ga_min:.3}"),
        "= 1.0",
        ga_min >= 1.0,
    );
    row(
        "synthetic suites: adjusted Rand index (worst seed)",
        format!("{ari_min:.3}"),
        "= 1.0",
        ari_min >= 1.0,
    );
    println!("  headlines (seed 1):");
    for h in &heads {
        println!("    {}", omen_render::escape::line(h));
    }
    let want =
        "ConnectionRefusedError: [Errno 111] Connection refused: 127.0.0.1:<*> (request <*> at ";
    let found = heads.iter().any(|h| h.starts_with(want));
    row(
        "the connection group's headline is the common text",
        format!("{found}"),
        "true",
        found,
    );
    // Categories on the same suites (their causes' categories are known by construction).
    let expected = |cause: usize| match cause {
        0 | 5 => omen_core::failure::Category::Infrastructure,
        1..=3 => omen_core::failure::Category::Test,
        _ => omen_core::failure::Category::Application,
    };
    let cases = suite(1);
    let right = cases
        .iter()
        .filter(|c| {
            omen_core::failure::categorize(&FailureText {
                kind: c.kind.as_deref(),
                message: Some(&c.message),
                trace: Some(&c.trace),
            })
            .is_some_and(|k| k.category == expected(c.cause))
        })
        .count();
    let share = right as f64 / cases.len() as f64;
    row(
        "synthetic suites: category by the shipped rules",
        format!("{:.0}%", share * 100.0),
        "= 100%",
        share >= 1.0,
    );
    // Across runs: ten default-branch runs of the suite (new values each time) are stored; the
    // next run's signatures are known, and injected new causes are not.
    let (known, injected) = known_across_runs(data)?;
    row(
        "next run's signatures recognised as known",
        format!("{:.0}%", known * 100.0),
        "= 100%",
        known >= 1.0,
    );
    row(
        "injected new failures called known",
        format!("{:.0}%", injected * 100.0),
        "= 0%",
        injected <= 0.0,
    );
    // Real failure text: faults injected into real tools and suites, and the JUnit corpus's
    // failures, labelled by hand.
    let corpus = real_corpus()?;
    let real = score_real(&corpus);
    println!(
        "  real failures: {} from real tools with faults injected and the JUnit corpus, {} causes",
        real.failures, real.causes
    );
    for m in &real.misses {
        println!("    {}", omen_render::escape::line(m));
    }
    // Reported, not gated: the issue sets no target here, and the rules and the line the
    // signature reads were extended after the first measurement (docs/design/failure-grouping.md
    // gives both), so these figures are no longer held out.
    row(
        "real failures: grouping accuracy",
        format!("{:.3}", real.grouping),
        "report",
        true,
    );
    row(
        "real failures: adjusted Rand index",
        format!("{:.3}", real.ari),
        "report",
        true,
    );
    row(
        "real failures: category by the shipped rules",
        format!("{:.0}%", real.rules * 100.0),
        "report",
        true,
    );
    row(
        "real failures: rules + learned layer (leave one cause out)",
        format!("{:.0}%", real.with_learned * 100.0),
        "report",
        true,
    );
    // Synthetic log lines (no tuning data: 20 templates written for this benchmark).
    let (lines, truth) = log_lines(2000);
    let groups =
        omen_core::failure::group_lines(lines.iter().map(String::as_str), GroupConfig::default());
    let mut pred = vec![0; lines.len()];
    for (k, g) in groups.iter().enumerate() {
        for &m in &g.members {
            pred[m] = k;
        }
    }
    let ga = grouping_accuracy(&pred, &truth);
    row(
        "synthetic log, 2,000 lines of 20 templates: accuracy",
        format!("{ga:.3}"),
        ">= 0.85",
        ga >= 0.85,
    );
    // Speed: 10,000 failures grouped in memory (200 suites' worth).
    let mut many = Vec::new();
    for seed in 0..250 {
        many.extend(suite(100 + seed));
    }
    many.truncate(10_000);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let (_, h) = group(&many);
        std::hint::black_box(h);
        best = best.min(t.elapsed().as_secs_f64());
    }
    timed("group 10,000 failures (best of 3)", best, 0.1);
    // `omen failures cluster` as a whole process.
    std::fs::create_dir_all(data)?;
    let file = data.join("log-2000.txt");
    std::fs::write(&file, lines.join("\n"))?;
    let omen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/omen");
    anyhow::ensure!(
        omen.exists(),
        "{} is missing: build it with `cargo build --release -p omen-cli`",
        omen.display()
    );
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let out = std::process::Command::new(&omen)
            .args(["failures", "cluster", "--format", "json"])
            .arg(&file)
            .output()?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            out.status.success(),
            "omen failures cluster failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        best = best.min(secs);
    }
    timed(
        "`omen failures cluster` on 2,000 lines, whole process",
        best,
        0.5,
    );
    Ok(missed.get())
}
