//! The trend of a duration series over calendar time, and when it would pass a budget.
//!
//! CI durations come with outliers in bursts (a cold cache, a slow runner), so the slope is the
//! Theil–Sen estimator: the median of the slopes between every pair of points, which ignores up
//! to 29% of wild points. Its interval is Sen's: the ranks of the pairwise slopes that bound the
//! slope at the given confidence under Kendall's test. A trend is reported only when that
//! interval excludes zero; the time to a budget is given with the range the interval implies.

use crate::perf::stats::{median_in_place, sorted_median};

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// Settings of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendConfig {
    /// Fewest points fitted: fewer cannot tell a trend from noise (20).
    pub min_points: usize,
    /// Shortest span of calendar time the points must cover, in days (7): a slope over one
    /// afternoon says nothing about a month.
    pub min_span_days: f64,
    /// The normal quantile of the slope's two-sided interval (1.96: 95%).
    pub z: f64,
    /// Newest points fitted at most (300): older history describes an older suite.
    pub max_points: usize,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            min_points: 20,
            min_span_days: 7.0,
            z: 1.96,
            max_points: 300,
        }
    }
}

/// A fitted trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Points fitted.
    pub points: usize,
    /// Calendar time they cover, days.
    pub span_days: f64,
    /// The fitted value at the newest point, in the series' units.
    pub level: f64,
    /// Change per day (Theil–Sen), in the series' units.
    pub per_day: f64,
    /// The slope's interval, per day.
    pub per_day_low: f64,
    /// The slope's interval, per day.
    pub per_day_high: f64,
}

/// When a growing trend reaches a budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reach {
    /// Days from the newest point at the estimated slope.
    pub days: f64,
    /// Days at the interval's steepest slope (the soonest).
    pub soonest_days: f64,
    /// Days at the interval's shallowest slope (the latest).
    pub latest_days: f64,
}

impl Trend {
    /// Relative change per 30 days at the current level: (estimate, low, high).
    pub fn per_month(&self) -> (f64, f64, f64) {
        let rel = |slope: f64| {
            if self.level > 0.0 {
                slope * 30.0 / self.level
            } else {
                0.0
            }
        };
        (
            rel(self.per_day),
            rel(self.per_day_low),
            rel(self.per_day_high),
        )
    }

    /// The interval excludes zero: the series grows (or shrinks) beyond its noise.
    pub fn significant(&self) -> bool {
        self.per_day_low > 0.0 || self.per_day_high < 0.0
    }

    /// When the fitted level reaches `budget` at this rate: only for a significantly growing
    /// series still under it.
    pub fn reaches(&self, budget: f64) -> Option<Reach> {
        if self.per_day_low.is_nan() || self.per_day_low <= 0.0 || self.level >= budget {
            return None;
        }
        let gap = budget - self.level;
        Some(Reach {
            days: gap / self.per_day,
            soonest_days: gap / self.per_day_high,
            latest_days: gap / self.per_day_low,
        })
    }
}

/// Fit the trend of `points` — (unix seconds, value), any order; non-finite values are left out
/// — or `None` when there are too few points or too short a span.
pub fn fit(points: &[(i64, f64)], config: &TrendConfig) -> Option<Trend> {
    let mut points: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|&(at, v)| (at as f64 / DAY, v))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    if points.len() > config.max_points {
        points.drain(..points.len() - config.max_points);
    }
    let n = points.len();
    let (first, last) = (points.first()?.0, points.last()?.0);
    if n < config.min_points.max(3) || last - first < config.min_span_days {
        return None;
    }
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dx = b.0 - a.0;
            if dx > 0.0 {
                slopes.push((b.1 - a.1) / dx);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let pairs = slopes.len();
    let per_day = sorted_median(&slopes);
    // Sen's interval: Kendall's S has variance n(n-1)(2n+5)/18 under no trend; the slopes of
    // ranks (N - C)/2 and (N + C)/2 + 1 bound the slope.
    let nf = n as f64;
    let c = config.z * (nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0).sqrt();
    let lower_rank = ((pairs as f64 - c) / 2.0).floor().max(1.0) as usize;
    let upper_rank = ((pairs as f64 + c) / 2.0).ceil() as usize + 1;
    let per_day_low = slopes[lower_rank.min(pairs) - 1];
    let per_day_high = slopes[upper_rank.min(pairs) - 1];
    let mut residuals: Vec<f64> = points.iter().map(|(x, y)| y - per_day * x).collect();
    let intercept = median_in_place(&mut residuals)?;
    Some(Trend {
        points: n,
        span_days: last - first,
        level: intercept + per_day * last,
        per_day,
        per_day_low,
        per_day_high,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    /// `n` daily points growing by `per_day` from 1000, with ±`noise` relative uniform noise and
    /// every tenth point an outlier three times the level.
    fn series(n: usize, per_day: f64, noise: f64, seed: u64) -> Vec<(i64, f64)> {
        let mut rng = SplitMix(seed);
        (0..n)
            .map(|i| {
                let level = 1000.0 + per_day * i as f64;
                let jitter = 1.0 + noise * (2.0 * rng.unit() - 1.0);
                let value = if i % 10 == 7 {
                    level * 3.0
                } else {
                    level * jitter
                };
                (1_700_000_000 + i as i64 * 86_400, value)
            })
            .collect()
    }

    #[test]
    fn a_steady_growth_is_found_through_outliers() {
        let t = fit(&series(60, 10.0, 0.05, 1), &TrendConfig::default()).unwrap();
        assert!((t.per_day - 10.0).abs() < 2.0, "{t:?}");
        assert!(t.per_day_low <= 10.0 && 10.0 <= t.per_day_high, "{t:?}");
        assert!(t.significant());
        assert!((t.level - 1590.0).abs() < 60.0, "{t:?}");
        let (month, low, high) = t.per_month();
        assert!(low < month && month < high && (month - 300.0 / 1590.0).abs() < 0.05);
        // 1800 is about 21 days away at 10 a day.
        let reach = t.reaches(1800.0).unwrap();
        assert!((reach.days - 21.0).abs() < 6.0, "{reach:?}");
        assert!(reach.soonest_days <= reach.days);
        assert!(reach.latest_days >= reach.days);
        assert_eq!(t.reaches(1000.0), None, "already past the budget");
    }

    #[test]
    fn a_flat_series_has_no_significant_trend() {
        let mut significant = 0;
        for seed in 0..200 {
            let t = fit(&series(60, 0.0, 0.10, seed), &TrendConfig::default()).unwrap();
            significant += usize::from(t.significant());
            assert_eq!(t.significant(), t.reaches(5000.0).is_some());
        }
        // A 95% interval: about 5% of flat series look like a trend, by chance.
        assert!(significant <= 20, "{significant} of 200 flat series trend");
    }

    #[test]
    fn too_few_points_or_too_short_a_span_fit_nothing() {
        let c = TrendConfig::default();
        assert_eq!(fit(&series(10, 10.0, 0.0, 1), &c), None);
        let same_day: Vec<(i64, f64)> = (0..50).map(|i| (1_700_000_000 + i, 100.0)).collect();
        assert_eq!(fit(&same_day, &c), None);
        assert_eq!(fit(&[], &c), None);
        // Missing values are left out: 40 points, half missing, is 20 fitted.
        let with_nan: Vec<(i64, f64)> = series(40, 5.0, 0.0, 1)
            .into_iter()
            .enumerate()
            .map(|(i, (at, v))| (at, if i % 2 == 0 { f64::NAN } else { v }))
            .collect();
        let t = fit(&with_nan, &c).unwrap();
        assert_eq!(t.points, 20);
        assert!((t.per_day - 5.0).abs() < 1.0, "{t:?}");
    }
}
