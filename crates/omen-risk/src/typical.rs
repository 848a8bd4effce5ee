//! What is typical in a repository lately: the median of a drifting count over the latest
//! changes.
//!
//! NDEV (a file's earlier developers) and EXP (an author's earlier changes) only grow as a
//! project ages, so a model fitted on older changes sees their levels shift under it: a value
//! that was high three years ago is ordinary now. Each enters the model relative to its median
//! over the previous [`WINDOW`] changes ([`Feature::NdevVsTypical`], [`Feature::ExpVsTypical`]).
//! The median is taken over changes in the order they happened, the same way for a dataset, the
//! stored changes a repository model is trained on, and the incremental history that scores a
//! new change, so all three agree.

use std::collections::VecDeque;

use omen_core::codec::{Cursor, DecodeError, put_f64, put_u64};

use crate::features::{Feature, FeatureVector};

/// How many earlier changes the median covers (chosen on the development split: 500, 1,000,
/// 2,000 and 3,000 were tried).
pub const WINDOW: usize = 1000;

/// The counts tracked, each with the feature that holds its recent median.
pub const TRACKED: [(Feature, Feature); 2] = [
    (Feature::Ndev, Feature::NdevTypical),
    (Feature::Exp, Feature::ExpTypical),
];

/// The median of the latest [`WINDOW`] values pushed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentMedian {
    /// Values oldest first.
    order: VecDeque<f64>,
    /// The same values, sorted.
    sorted: Vec<f64>,
}

impl RecentMedian {
    /// Add a value, dropping the oldest beyond [`WINDOW`]. Non-finite values are ignored.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let at = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(at, x);
        self.order.push_back(x);
        if self.order.len() > WINDOW
            && let Some(old) = self.order.pop_front()
        {
            let at = self.sorted.partition_point(|v| *v < old);
            self.sorted.remove(at);
        }
    }

    /// The median of the values held (the mean of the middle two for an even count).
    pub fn median(&self) -> Option<f64> {
        let n = self.sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(self.sorted[n / 2]),
            _ => Some((self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0),
        }
    }

    /// How many values are held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True before the first value.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The recent medians of every tracked count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Typical {
    medians: [RecentMedian; TRACKED.len()],
}

impl Typical {
    /// Write the recent medians into `v`, whose own counts are set. With no earlier change a
    /// count is its own typical value.
    pub fn apply(&self, v: &mut FeatureVector) {
        for ((count, typical), m) in TRACKED.iter().zip(&self.medians) {
            let value = m.median().unwrap_or_else(|| v.get(*count));
            v.set(*typical, value);
        }
    }

    /// Count a change that happened after every one counted so far.
    pub fn observe(&mut self, v: &FeatureVector) {
        for ((count, _), m) in TRACKED.iter().zip(&mut self.medians) {
            m.push(v.get(*count));
        }
    }

    /// True before the first change.
    pub fn is_empty(&self) -> bool {
        self.medians.iter().all(RecentMedian::is_empty)
    }

    /// Encode the held values (a caller adds versioning).
    pub fn encode(&self, out: &mut Vec<u8>) {
        for m in &self.medians {
            put_u64(out, m.order.len() as u64);
            for x in &m.order {
                put_f64(out, *x);
            }
        }
    }

    /// Decode [`Typical::encode`]'s bytes.
    pub fn decode(c: &mut Cursor<'_>) -> Result<Typical, DecodeError> {
        let mut t = Typical::default();
        for m in &mut t.medians {
            for _ in 0..c.u64()? {
                m.push(c.f64()?);
            }
        }
        Ok(t)
    }
}

/// Set the typical values of `changes`, given in the order they happened.
pub fn fill<'a>(changes: impl IntoIterator<Item = &'a mut FeatureVector>) {
    let mut t = Typical::default();
    for v in changes {
        t.apply(v);
        t.observe(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_covers_the_latest_window() {
        let mut m = RecentMedian::default();
        assert_eq!(m.median(), None);
        m.push(5.0);
        assert_eq!(m.median(), Some(5.0));
        m.push(1.0);
        assert_eq!(m.median(), Some(3.0));
        m.push(f64::NAN);
        assert_eq!(m.len(), 2);
        // WINDOW values of 100 push the 5 and the 1 out.
        for _ in 0..WINDOW {
            m.push(100.0);
        }
        assert_eq!(m.len(), WINDOW);
        assert_eq!(m.median(), Some(100.0));
        // Against a sort of the last WINDOW values, for a sequence with repeats.
        let mut m = RecentMedian::default();
        let xs: Vec<f64> = (0..2500u64).map(|i| ((i * 7919) % 613) as f64).collect();
        for (i, x) in xs.iter().enumerate() {
            m.push(*x);
            let mut last: Vec<f64> = xs[(i + 1).saturating_sub(WINDOW)..=i].to_vec();
            last.sort_by(f64::total_cmp);
            let n = last.len();
            let want = if n % 2 == 1 {
                last[n / 2]
            } else {
                (last[n / 2 - 1] + last[n / 2]) / 2.0
            };
            assert_eq!(m.median(), Some(want), "after {} values", i + 1);
        }
    }

    #[test]
    fn a_change_is_compared_with_the_changes_before_it() {
        let mut changes: Vec<FeatureVector> = [(4.0, 10.0), (8.0, 30.0), (2.0, 0.0), (6.0, 50.0)]
            .iter()
            .map(|(ndev, exp)| {
                let mut v = FeatureVector::default();
                v.set(Feature::Ndev, *ndev);
                v.set(Feature::Exp, *exp);
                v
            })
            .collect();
        fill(changes.iter_mut());
        let typical: Vec<(f64, f64)> = changes
            .iter()
            .map(|v| (v.get(Feature::NdevTypical), v.get(Feature::ExpTypical)))
            .collect();
        // The first is its own; then medians of [4], [4, 8], [4, 8, 2].
        assert_eq!(
            typical,
            vec![(4.0, 10.0), (4.0, 10.0), (6.0, 20.0), (4.0, 10.0)]
        );
    }

    #[test]
    fn the_state_survives_encoding() {
        let mut t = Typical::default();
        for i in 0..(WINDOW + 20) {
            let mut v = FeatureVector::default();
            v.set(Feature::Ndev, (i % 17) as f64);
            v.set(Feature::Exp, (i * 3) as f64);
            t.observe(&v);
        }
        let mut bytes = Vec::new();
        t.encode(&mut bytes);
        let back = Typical::decode(&mut Cursor::new(&bytes)).expect("decodes");
        assert_eq!(back, t);
        assert!(Typical::decode(&mut Cursor::new(&bytes[..bytes.len() - 3])).is_err());
    }
}
