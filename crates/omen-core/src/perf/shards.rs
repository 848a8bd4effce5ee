//! Sharded jobs: how unevenly one run's shards took their time, and a split of the same tests
//! that evens them out.
//!
//! A job is a shard when its name ends in its index, as CI systems name parallel and matrix jobs:
//! `test (2/4)`, `test 2/4`, `test [2/4]`, `test (2, 4)` or `test (2)`; shards share the rest of
//! the name. The suggested split is greedy, longest test first onto the least loaded shard (LPT),
//! which is within 4/3 of the best possible split and needs nothing but each test's duration.

/// The group and index of a shard's job name, or `None` when the name carries no index.
pub fn shard_of(job: &str) -> Option<(&str, u32)> {
    let job = job.trim_end();
    let (base, inner) = if let Some(rest) = job.strip_suffix(')') {
        let open = rest.rfind('(')?;
        (&rest[..open], &rest[open + 1..])
    } else if let Some(rest) = job.strip_suffix(']') {
        let open = rest.rfind('[')?;
        (&rest[..open], &rest[open + 1..])
    } else {
        let space = job.rfind(' ')?;
        let tail = &job[space + 1..];
        if !tail.contains('/') {
            return None;
        }
        (&job[..space], tail)
    };
    let index = inner.split(['/', ',']).next()?.trim();
    let index: u32 = index.parse().ok()?;
    let base = base.trim_end();
    (!base.is_empty()).then_some((base, index))
}

/// One run's shards and a more even split.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    /// Each shard's summed test time, ms, in the order given.
    pub shard_ms: Vec<f64>,
    /// The split suggested: test indices (into the tests given) per shard, the slowest first.
    pub suggested: Vec<Vec<usize>>,
    /// Each suggested shard's summed test time, ms.
    pub suggested_ms: Vec<f64>,
}

impl Balance {
    /// The slowest shard's time over the mean: 1.0 is perfectly even.
    pub fn imbalance(&self) -> f64 {
        ratio(&self.shard_ms)
    }

    /// The same for the suggested split.
    pub fn suggested_imbalance(&self) -> f64 {
        ratio(&self.suggested_ms)
    }

    /// The slowest shard now and in the suggested split, ms: the wall time the shards take.
    pub fn slowest_ms(&self) -> (f64, f64) {
        (max(&self.shard_ms), max(&self.suggested_ms))
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn ratio(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    if mean > 0.0 { max(v) / mean } else { 1.0 }
}

/// The balance of `shards` (each shard's test durations, ms) and an LPT split of all their
/// tests into as many shards; `None` for fewer than two shards or no time at all.
pub fn balance(shards: &[Vec<f64>]) -> Option<Balance> {
    let k = shards.len();
    let tests: Vec<f64> = shards.iter().flatten().copied().collect();
    if k < 2 || tests.iter().sum::<f64>() <= 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..tests.len()).collect();
    order.sort_by(|&a, &b| tests[b].total_cmp(&tests[a]).then(a.cmp(&b)));
    let mut suggested = vec![Vec::new(); k];
    let mut load: Vec<f64> = vec![0.0; k];
    for i in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(&b.0)))?;
        suggested[least].push(i);
        load[least] += tests[i].max(0.0);
    }
    let mut by_load: Vec<(Vec<usize>, f64)> = suggested.into_iter().zip(load).collect();
    by_load.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (suggested, suggested_ms) = by_load.into_iter().unzip();
    Some(Balance {
        shard_ms: shards.iter().map(|s| s.iter().sum()).collect(),
        suggested,
        suggested_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_as_ci_systems_write_them() {
        let check = |job: &str, expected: Option<(&str, u32)>| assert_eq!(shard_of(job), expected);
        check("test (2/4)", Some(("test", 2)));
        check("test 2/4", Some(("test", 2)));
        check("test [3/4]", Some(("test", 3)));
        check("unit tests (1, 3)", Some(("unit tests", 1)));
        check("test (2)", Some(("test", 2)));
        check("test", None);
        check("test (linux)", None);
        check("build 2", None);
        check("(1/2)", None);
    }

    #[test]
    fn an_uneven_split_is_evened_out_longest_first() {
        // Shard 0 holds the slow tests: 10 + 9 + 8 s; shard 1 only small ones.
        let shards = vec![vec![10_000.0, 9_000.0, 8_000.0], vec![1_000.0; 6]];
        let b = balance(&shards).unwrap();
        assert_eq!(b.shard_ms, vec![27_000.0, 6_000.0]);
        assert!((b.imbalance() - 27.0 / 16.5).abs() < 1e-9);
        // LPT: 10 and 9 open the shards, 8 joins the 9 (17), the six 1 s tests join the 10 (16).
        // Every test is placed exactly once.
        let mut placed: Vec<usize> = b.suggested.iter().flatten().copied().collect();
        placed.sort_unstable();
        assert_eq!(placed, (0..9).collect::<Vec<_>>());
        assert_eq!(b.suggested_ms.iter().sum::<f64>(), 33_000.0);
        let (now, then) = b.slowest_ms();
        assert_eq!(now, 27_000.0);
        assert_eq!(then, 17_000.0, "{b:?}");
        assert!(b.suggested_imbalance() < b.imbalance());
    }

    #[test]
    fn one_shard_or_no_time_has_no_balance() {
        assert_eq!(balance(&[vec![1.0, 2.0]]), None);
        assert_eq!(balance(&[vec![0.0], vec![0.0]]), None);
        assert_eq!(balance(&[]), None);
    }
}
