//! What kind of trouble a failure is: the shipped rule base ([`RULES`]), the rules a repository
//! adds ([`UserRule`]), the labels its people give, and a naive Bayes layer ([`NaiveBayes`])
//! trained on those labels and on the history's rule-classified signatures, for what no rule
//! names. [`Classifier`] asks them in that order (design: `docs/design/failure-grouping.md`).

use std::collections::HashMap;

use super::{FailureText, Signature};

/// What kind of trouble a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The machine or the network: connections, DNS, timeouts, memory, disk, descriptors,
    /// services that are down.
    Infrastructure,
    /// Packages: a missing module, a version conflict, a registry or download failure.
    Dependency,
    /// The test itself: an assertion, a fixture or setup error, a collection error.
    Test,
    /// The code under test: a panic, a null or `None` dereference, an uncaught exception.
    Application,
    /// Permissions, certificates and TLS, authentication.
    Security,
    /// The build or its configuration: compile errors, missing configuration.
    Build,
}

impl Category {
    /// The lowercase name used in every stable format.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Infrastructure => "infrastructure",
            Category::Dependency => "dependency",
            Category::Test => "test",
            Category::Application => "application",
            Category::Security => "security",
            Category::Build => "build",
        }
    }

    /// Every category, in the order of the docs.
    pub const ALL: [Category; 6] = [
        Category::Infrastructure,
        Category::Dependency,
        Category::Build,
        Category::Test,
        Category::Application,
        Category::Security,
    ];
}

impl std::str::FromStr for Category {
    type Err = String;

    /// A category by its [`as_str`](Category::as_str) name, case-insensitively.
    fn from_str(s: &str) -> Result<Category, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                format!("`{s}` is not a category (one of {})", names.join(", "))
            })
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule: any of `needles` (lowercase) in the failure's type or first line means `category`,
/// for `reason`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The class it means.
    pub category: Category,
    /// What it recognises, in words (`connection refused`).
    pub reason: &'static str,
    /// Lowercase substrings; any one matches.
    pub needles: &'static [&'static str],
}

/// The shipped rules, most specific first: the first that matches decides.
pub const RULES: &[Rule] = &[
    Rule {
        category: Category::Security,
        reason: "certificate or TLS",
        needles: &[
            "certificate verify failed",
            "ssl:",
            "sslerror",
            "tls handshake",
            "x509",
            "certificate has expired",
            "self signed certificate",
        ],
    },
    Rule {
        category: Category::Security,
        reason: "authentication",
        needles: &[
            "401 unauthorized",
            "authentication failed",
            "invalid credentials",
            "access denied for user",
            "403 forbidden",
        ],
    },
    Rule {
        category: Category::Security,
        reason: "permission denied",
        needles: &[
            "permission denied",
            "permissionerror",
            "eacces",
            "operation not permitted",
            "eperm",
        ],
    },
    Rule {
        category: Category::Infrastructure,
        reason: "DNS",
        needles: &[
            "name or service not known",
            "gaierror",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no such host",
            "getaddrinfo enotfound",
            "could not resolve host",
        ],
    },
    Rule {
        category: Category::Infrastructure,
        reason: "connection refused or reset",
        needles: &[
            "connection refused",
            "connectionrefusederror",
            "econnrefused",
            "connection reset",
            "econnreset",
            "broken pipe",
            "connection aborted",
            "network is unreachable",
            "no route to host",
            "failed to connect to",
            "couldn't connect to server",
            "could not connect to server",
        ],
    },
    Rule {
        category: Category::Infrastructure,
        reason: "out of memory",
        needles: &[
            "out of memory",
            "memoryerror",
            "outofmemoryerror",
            "cannot allocate memory",
            "oom-kill",
            "killed process",
            "std::bad_alloc",
            "memory allocation of",
        ],
    },
    Rule {
        category: Category::Infrastructure,
        reason: "disk full",
        needles: &["no space left on device", "enospc", "disk quota exceeded"],
    },
    Rule {
        category: Category::Infrastructure,
        reason: "too many open files",
        needles: &["too many open files", "emfile"],
    },
    Rule {
        category: Category::Infrastructure,
        reason: "service unavailable",
        needles: &[
            "503 service unavailable",
            "502 bad gateway",
            "504 gateway timeout",
            "service unavailable",
            "server is not running",
        ],
    },
    Rule {
        category: Category::Dependency,
        reason: "missing module",
        needles: &[
            "modulenotfounderror",
            "no module named",
            "importerror",
            "cannot find module",
            "classnotfoundexception",
            "noclassdeffounderror",
            "unresolved import",
            "cannot find package",
        ],
    },
    Rule {
        category: Category::Dependency,
        reason: "missing command",
        needles: &[
            "command not found",
            "is not recognized as an internal or external command",
            "executable file not found in $path",
        ],
    },
    Rule {
        category: Category::Dependency,
        reason: "version conflict",
        needles: &[
            "versionconflict",
            "version conflict",
            "incompatible version",
            "requires a different version",
            "could not resolve dependencies",
            "eresolve",
        ],
    },
    Rule {
        category: Category::Dependency,
        reason: "registry or download",
        needles: &[
            "failed to download",
            "could not fetch",
            "404 not found for url",
            "registry",
            "checksum mismatch",
        ],
    },
    Rule {
        category: Category::Build,
        reason: "compile error",
        needles: &[
            "error[e",
            "compilation failed",
            "syntaxerror",
            "cannot find symbol",
            "undefined reference",
            "error: could not compile",
            "undeclared (first use",
            "was not declared in this scope",
            "implicit declaration of function",
            "error ts",
        ],
    },
    Rule {
        category: Category::Build,
        reason: "configuration",
        needles: &[
            "configuration error",
            "missing environment variable",
            "keyerror: 'env",
            "no such file or directory: '.env",
            "invalid configuration",
        ],
    },
    Rule {
        category: Category::Infrastructure,
        reason: "timeout",
        needles: &[
            "timed out",
            "timeouterror",
            "timeout",
            "deadline exceeded",
            "etimedout",
        ],
    },
    Rule {
        category: Category::Test,
        reason: "fixture or setup",
        needles: &[
            "fixture",
            "error in setup",
            "setup failed",
            "teardown",
            "beforeeach",
            "beforeall",
            "@before",
        ],
    },
    Rule {
        category: Category::Test,
        reason: "collection error",
        needles: &[
            "collection error",
            "error collecting",
            "errors during collection",
        ],
    },
    Rule {
        category: Category::Test,
        reason: "assertion",
        needles: &[
            "assertionerror",
            "assert ",
            "assertion failed",
            "assertion `",
            "expect(received)",
            "check_eq(",
            "require(",
            " expands to ",
            "expectationfailedexception",
            "assertionfailederror",
            "expected:",
            "expected ",
            "assert_eq!",
            "assertequals",
            "to equal",
            "tobe(",
        ],
    },
    Rule {
        category: Category::Application,
        reason: "null or None dereference",
        needles: &[
            "nullpointerexception",
            "nonetype",
            "null pointer",
            "undefined is not",
            "cannot read propert",
            "nil pointer dereference",
        ],
    },
    Rule {
        category: Category::Application,
        reason: "panic",
        needles: &[
            "panicked at",
            "panic:",
            "segmentation fault",
            "sigsegv",
            "abort",
        ],
    },
    Rule {
        category: Category::Application,
        reason: "uncaught exception",
        needles: &["exception", "error:", "division by zero"],
    },
];

/// What decided a failure's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// A person labelled this signature (`omen failures label`).
    Label,
    /// A rule of the repository's `.omen/config.toml`.
    UserRule,
    /// A shipped rule ([`RULES`]).
    Rule,
    /// The naive Bayes layer; the reason names its strongest tokens.
    Learned,
}

impl Decided {
    /// The lowercase name used in every stable format.
    pub fn as_str(self) -> &'static str {
        match self {
            Decided::Label => "label",
            Decided::UserRule => "user rule",
            Decided::Rule => "rule",
            Decided::Learned => "learned",
        }
    }
}

/// A failure's category, what decided it, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Categorized {
    /// The category.
    pub category: Category,
    /// The rule's reason in words, or the learned layer's strongest tokens.
    pub reason: String,
    /// What decided it.
    pub by: Decided,
    /// The learned layer's posterior probability; `None` for a label or a rule, which decide
    /// outright.
    pub confidence: Option<f64>,
}

/// The texts rules are matched against: the type and first line, then the first three lines of
/// the trace (where a Rust panic names itself), both lowercase.
fn rule_texts(f: &FailureText<'_>) -> [String; 2] {
    let first = format!("{} {}", f.kind.unwrap_or(""), f.first_line()).to_lowercase();
    let trace: String = f
        .trace
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    [first, trace]
}

/// The category of `f` by the first of [`RULES`] that matches its type and first line, else
/// the first three lines of its trace; `None` when no rule does.
pub fn categorize(f: &FailureText<'_>) -> Option<Categorized> {
    shipped(&rule_texts(f))
}

fn shipped(texts: &[String; 2]) -> Option<Categorized> {
    texts.iter().find_map(|text| {
        RULES
            .iter()
            .find(|r| r.needles.iter().any(|n| text.contains(n)))
            .map(|r| Categorized {
                category: r.category,
                reason: r.reason.to_owned(),
                by: Decided::Rule,
                confidence: None,
            })
    })
}

/// A rule a repository adds in `.omen/config.toml` (`[[failures.rules]]`). User rules are asked
/// before the shipped ones.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRule {
    /// The class it means.
    pub category: Category,
    /// What it recognises, in words.
    pub reason: String,
    /// Substrings (matched case-insensitively); any one matches.
    pub needles: Vec<String>,
}

impl UserRule {
    /// A rule; needles are lowercased and empty ones are an error (they would match everything).
    pub fn new(category: Category, reason: &str, needles: &[String]) -> Result<UserRule, String> {
        if needles.is_empty() || needles.iter().any(|n| n.trim().is_empty()) {
            return Err(format!(
                "the rule `{reason}` needs at least one needle, and none may be empty"
            ));
        }
        Ok(UserRule {
            category,
            reason: reason.to_owned(),
            needles: needles.iter().map(|n| n.to_lowercase()).collect(),
        })
    }
}

/// A masked failure line and its category: one example the learned layer trains on.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledText {
    /// The masked first line (a signature's `masked`).
    pub text: String,
    /// Its category.
    pub category: Category,
    /// How much the example counts: a person's label more than a rule's.
    pub weight: f64,
}

/// The words of a masked line the learned layer reads: lowercase runs of letters and digits of
/// two or more characters, placeholders (`<NUM>`, `<STR>`, …) left out.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2 && !w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !matches!(*w, "NUM" | "STR" | "HEX" | "IP" | "UUID" | "PATH"))
        .map(str::to_lowercase)
}

/// Multinomial naive Bayes over the words of masked lines (placeholders left out), with Laplace smoothing: the learned layer.
#[derive(Debug, Clone, Default)]
pub struct NaiveBayes {
    classes: Vec<ClassCounts>,
    vocabulary: usize,
}

/// What one category's examples add up to.
#[derive(Debug, Clone)]
struct ClassCounts {
    category: Category,
    /// Summed example weight (the prior).
    examples: f64,
    /// Summed word weight.
    words: f64,
    /// Weight by word.
    by_word: HashMap<String, f64>,
}

/// The learned layer answers only at or above this posterior probability.
pub const LEARNED_MIN_CONFIDENCE: f64 = 0.6;

impl NaiveBayes {
    /// Train on `examples`.
    pub fn train(examples: &[LabelledText]) -> NaiveBayes {
        let mut classes: Vec<ClassCounts> = Vec::new();
        let mut vocabulary = std::collections::HashSet::new();
        for e in examples {
            let k = match classes.iter().position(|c| c.category == e.category) {
                Some(k) => k,
                None => {
                    classes.push(ClassCounts {
                        category: e.category,
                        examples: 0.0,
                        words: 0.0,
                        by_word: HashMap::new(),
                    });
                    classes.len() - 1
                }
            };
            let class = &mut classes[k];
            class.examples += e.weight;
            for w in words(&e.text) {
                class.words += e.weight;
                *class.by_word.entry(w.clone()).or_default() += e.weight;
                vocabulary.insert(w);
            }
        }
        classes.sort_by_key(|c| Category::ALL.iter().position(|&k| k == c.category));
        NaiveBayes {
            classes,
            vocabulary: vocabulary.len(),
        }
    }

    /// The most probable category of masked line `text`, its posterior probability and the
    /// (up to three) known words that favour it most; `None` with fewer than two categories
    /// trained or no known word in `text`.
    pub fn predict(&self, text: &str) -> Option<(Category, f64, Vec<String>)> {
        if self.classes.len() < 2 {
            return None;
        }
        let words: Vec<String> = words(text).collect();
        if !words
            .iter()
            .any(|w| self.classes.iter().any(|c| c.by_word.contains_key(w)))
        {
            return None;
        }
        let total: f64 = self.classes.iter().map(|c| c.examples).sum();
        let v = self.vocabulary as f64 + 1.0;
        let log_p = |c: &ClassCounts, w: &str| {
            ((c.by_word.get(w).copied().unwrap_or(0.0) + 1.0) / (c.words + v)).ln()
        };
        let scores: Vec<f64> = self
            .classes
            .iter()
            .map(|c| (c.examples / total).ln() + words.iter().map(|w| log_p(c, w)).sum::<f64>())
            .collect();
        let (best, &top) = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        let norm: f64 = scores.iter().map(|s| (s - top).exp()).sum();
        let class = &self.classes[best];
        // The words that favour the winner most over the average of the others.
        let mut evidence: Vec<(f64, &String)> = words
            .iter()
            .filter(|w| class.by_word.contains_key(*w))
            .map(|w| {
                let others = self
                    .classes
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != best)
                    .map(|(_, c)| log_p(c, w))
                    .sum::<f64>()
                    / (self.classes.len() - 1) as f64;
                (log_p(class, w) - others, w)
            })
            .filter(|(lift, _)| *lift > 0.0)
            .collect();
        evidence.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        evidence.dedup_by(|a, b| a.1 == b.1);
        let top_words = evidence
            .into_iter()
            .take(3)
            .map(|(_, w)| w.clone())
            .collect();
        Some((class.category, 1.0 / norm, top_words))
    }
}

/// Asks, in order: a label on the failure's signature, the repository's rules, the shipped
/// rules, then the learned layer (at [`LEARNED_MIN_CONFIDENCE`] or above).
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    /// Labels by signature hash.
    pub labels: HashMap<u64, Category>,
    /// The repository's rules.
    pub user_rules: Vec<UserRule>,
    /// The learned layer, when trained.
    pub learned: Option<NaiveBayes>,
}

impl Classifier {
    /// The category of `f`, whose signature is `signature`; `None` when nothing decides.
    pub fn classify(&self, f: &FailureText<'_>, signature: &Signature) -> Option<Categorized> {
        if let Some(&category) = self.labels.get(&signature.hash) {
            return Some(Categorized {
                category,
                reason: "labelled".to_owned(),
                by: Decided::Label,
                confidence: None,
            });
        }
        if let Some(c) = self.by_rules(f) {
            return Some(c);
        }
        let (category, p, top) = self.learned.as_ref()?.predict(&signature.masked)?;
        (p >= LEARNED_MIN_CONFIDENCE).then(|| Categorized {
            category,
            reason: top.join(", "),
            by: Decided::Learned,
            confidence: Some(p),
        })
    }
}

impl Classifier {
    /// The category of `f` by the repository's rules, then the shipped ones: no label, no
    /// learned layer.
    pub fn by_rules(&self, f: &FailureText<'_>) -> Option<Categorized> {
        let texts = rule_texts(f);
        let user = texts.iter().find_map(|text| {
            self.user_rules
                .iter()
                .find(|r| r.needles.iter().any(|n| text.contains(n.as_str())))
        });
        match user {
            Some(r) => Some(Categorized {
                category: r.category,
                reason: r.reason.clone(),
                by: Decided::UserRule,
                confidence: None,
            }),
            None => shipped(&texts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message: &str) -> FailureText<'_> {
        FailureText {
            kind: None,
            message: Some(message),
            trace: None,
        }
    }

    fn example(text: &str, category: Category) -> LabelledText {
        LabelledText {
            text: text.to_owned(),
            category,
            weight: 1.0,
        }
    }

    #[test]
    fn categories_parse_by_name_and_a_wrong_name_lists_the_right_ones() {
        assert_eq!("Infrastructure".parse(), Ok(Category::Infrastructure));
        let err = "infra".parse::<Category>().unwrap_err();
        assert!(err.contains("infrastructure, dependency, build"), "{err}");
    }

    #[test]
    fn a_label_beats_a_user_rule_which_beats_a_shipped_rule() {
        let f = text("psycopg.OperationalError: connection refused by pgbouncer");
        let sig = Signature::of(&f);
        let mut c = Classifier::default();
        assert_eq!(c.classify(&f, &sig).map(|k| k.by), Some(Decided::Rule));
        c.user_rules.push(
            UserRule::new(
                Category::Test,
                "the test database fixture",
                &["PgBouncer".to_owned()],
            )
            .unwrap(),
        );
        let k = c.classify(&f, &sig).unwrap();
        assert_eq!(
            (k.category, k.by, k.reason.as_str()),
            (
                Category::Test,
                Decided::UserRule,
                "the test database fixture"
            )
        );
        c.labels.insert(sig.hash, Category::Build);
        let k = c.classify(&f, &sig).unwrap();
        assert_eq!((k.category, k.by), (Category::Build, Decided::Label));
        assert!(UserRule::new(Category::Test, "x", &[" ".to_owned()]).is_err());
        assert!(UserRule::new(Category::Test, "x", &[]).is_err());
    }

    #[test]
    fn the_learned_layer_names_what_no_rule_does_and_says_which_words_decided() {
        let f = text("LedgerDrift: balances of the reconciliation batch disagree");
        let sig = Signature::of(&f);
        assert_eq!(categorize(&f), None);
        let examples = vec![
            example(
                "LedgerDrift: reconciliation of account <NUM> failed",
                Category::Application,
            ),
            example(
                "LedgerDrift: batch <NUM> balances disagree",
                Category::Application,
            ),
            example(
                "QueueTimeout: broker did not answer in <NUM>",
                Category::Infrastructure,
            ),
            example(
                "QueueTimeout: broker <IP>:<NUM> closed the channel",
                Category::Infrastructure,
            ),
        ];
        let c = Classifier {
            learned: Some(NaiveBayes::train(&examples)),
            ..Classifier::default()
        };
        let k = c.classify(&f, &sig).unwrap();
        assert_eq!(
            (k.category, k.by),
            (Category::Application, Decided::Learned)
        );
        let p = k.confidence.unwrap();
        assert!((LEARNED_MIN_CONFIDENCE..1.0).contains(&p), "{p}");
        assert!(k.reason.contains("ledgerdrift"), "{}", k.reason);
        assert!(
            !k.reason.contains("num"),
            "placeholders are not evidence: {}",
            k.reason
        );
        // Nothing it knows: no answer, rather than a guess from the prior.
        let g = text("Zyzzyva quux");
        assert_eq!(c.classify(&g, &Signature::of(&g)), None);
        // One class is no model.
        let one = NaiveBayes::train(&examples[..2]);
        assert_eq!(one.predict("LedgerDrift: batch"), None);
    }
}
