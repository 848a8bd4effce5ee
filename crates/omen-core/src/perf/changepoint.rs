//! Change points in one series: where its level moved, by how much, and how sure we are.
//!
//! The method (see `docs/design/performance.md` for what else was tried and the figures):
//! 1. **Fill and clip.** A missing value repeats the previous one. A value more than
//!    [`DetectConfig::clip_mads`] robust deviations from both the median of the
//!    [`DetectConfig::clip_window`] points before it and that of the points after it is pulled
//!    back to the bound around the nearer one, so a burst of slow runs cannot look like a level
//!    shift, while the points either side of a real shift — even one near the series' start or
//!    end — agree with their own side and stay. The deviation is the series' MAD of distances
//!    from those medians.
//! 2. **Binary segmentation** of the clipped series for a change in mean: a split is kept while
//!    it lowers the squared error by more than `penalty × ln n` (a BIC-type penalty), each
//!    segment at least [`DetectConfig::min_segment`] long. The error is in units of the noise's
//!    variance where the noise is white or moderately correlated — told from the first
//!    differences, which cancel the level shifts — and of the whole series' variance otherwise
//!    (walks, seasons, slow swings), which also bounds it.
//! 3. **Significance and magnitude.** Each change is tested between the segments either side
//!    with a Mann–Whitney rank test and, where the penalty was in units of the noise, also for a
//!    jump in level once a common trend through both is allowed for (a steady trend is not a
//!    series of steps; the noise's scale, unlike the whole series', does not grow with a trend).
//!    The weakest change that fails a test (p above [`DetectConfig::max_p`]) or is too small
//!    (relative and absolute floors on the segments' medians) is merged away, and the rest
//!    tested again.

use super::stats::{mann_whitney, median, median_in_place, normal_sf, std_dev};

/// Settings of [`detect`]. [`Default`] is what `omen perf detect` uses on any series;
/// [`DetectConfig::durations`] is what `omen ci` uses on test and suite durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectConfig {
    /// Multiplier of `ln n` in the split penalty, in units of the noise's variance (see the
    /// module's step 2).
    pub penalty: f64,
    /// Shortest segment, in points (so a change is reported after this many new points at the
    /// earliest).
    pub min_segment: usize,
    /// Neighbours on each side whose median and deviation judge an outlier.
    pub clip_window: usize,
    /// An outlier is further than this many robust deviations from its neighbourhood's median.
    pub clip_mads: f64,
    /// Largest two-sided p-value of the rank test between the segments of a reported change.
    pub max_p: f64,
    /// Smallest relative change of the median, as a fraction of the earlier level.
    pub min_relative: f64,
    /// Smallest absolute change of the median, in the series' units.
    pub min_absolute: f64,
    /// Segment on the logarithm of the values (all must be positive), so noise that grows with
    /// the level (durations) is judged by ratios, not differences.
    pub log_scale: bool,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            penalty: 5.5,
            min_segment: 5,
            clip_window: 25,
            clip_mads: 5.0,
            max_p: 0.001,
            min_relative: 0.05,
            min_absolute: 0.0,
            log_scale: false,
        }
    }
}

impl DetectConfig {
    /// For durations in milliseconds: on the log scale, and a change must move the median by at
    /// least `min_absolute_ms` (a 2 ms test getting 50% slower is not news).
    pub fn durations(min_absolute_ms: f64) -> Self {
        DetectConfig {
            min_absolute: min_absolute_ms,
            log_scale: true,
            ..DetectConfig::default()
        }
    }
}

/// Where a series' level changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    /// 0-based index of the first point of the new level.
    pub index: usize,
    /// Median of the segment before (at most 50 points, the series' units).
    pub before: f64,
    /// Median of the segment from `index` on.
    pub after: f64,
    /// Two-sided p-value of the rank test between the two segments.
    pub p_value: f64,
}

impl ChangePoint {
    /// The change as a fraction of the earlier level (+0.2 = 20% higher).
    pub fn relative(&self) -> f64 {
        relative(self.before, self.after)
    }
}

/// The level at each point of `series` split at `changes` (from [`detect`]): the median of
/// the point's segment (its finite values; NaN when it has none).
pub fn levels(series: &[f64], changes: &[ChangePoint]) -> Vec<f64> {
    let mut bounds: Vec<usize> = changes.iter().map(|c| c.index.min(series.len())).collect();
    bounds.insert(0, 0);
    bounds.push(series.len());
    let mut out = Vec::with_capacity(series.len());
    for w in bounds.windows(2) {
        let segment: Vec<f64> = series[w[0]..w[1]]
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let level = median(&segment).unwrap_or(f64::NAN);
        out.extend(std::iter::repeat_n(level, w[1] - w[0]));
    }
    out
}

fn relative(before: f64, after: f64) -> f64 {
    if before == 0.0 {
        if after == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(after)
        }
    } else {
        (after - before) / before.abs()
    }
}

/// Change points of `series`, oldest first. A value that is not finite (NaN) is missing.
pub fn detect(series: &[f64], config: &DetectConfig) -> Vec<ChangePoint> {
    let Some(values) = fill(series) else {
        return Vec::new();
    };
    if !can_pass_floors(&values, config) {
        return Vec::new();
    }
    detect_filled(values, config)
}

/// Can any change in `values` (filled) pass the floors? A reported change compares the medians
/// of two segments of at least `min_segment` points, and such a median lies between the
/// series' `⌈min_segment / 2⌉`-th smallest and largest values, so their distance bounds every
/// change's size. Most tests of a suite are too quick for the absolute floor: this skips them
/// without clipping, segmenting or testing, and never changes the answer (unit test).
fn can_pass_floors(values: &[f64], config: &DetectConfig) -> bool {
    let k = config.min_segment.max(1).div_ceil(2);
    if values.len() < 2 * config.min_segment.max(1) || k > KEEP {
        return true;
    }
    let (mut small, mut large) = ([f64::INFINITY; KEEP], [f64::NEG_INFINITY; KEEP]);
    for &v in values {
        // Keep the k smallest ascending and the k largest descending.
        if v < small[k - 1] {
            let at = small[..k].partition_point(|x| *x <= v);
            small.copy_within(at..k - 1, at + 1);
            small[at] = v;
        }
        if v > large[k - 1] {
            let at = large[..k].partition_point(|x| *x >= v);
            large.copy_within(at..k - 1, at + 1);
            large[at] = v;
        }
    }
    let (lo, hi) = (small[k - 1], large[k - 1]);
    let spread = hi - lo;
    if spread < config.min_absolute {
        return false;
    }
    // With every median in [lo, hi] and lo > 0, no change is larger than spread / lo.
    !(lo > 0.0 && spread < config.min_relative * lo)
}

/// Order statistics [`can_pass_floors`] keeps on each side (enough for segments of 16 points).
const KEEP: usize = 8;

fn detect_filled(values: Vec<f64>, config: &DetectConfig) -> Vec<ChangePoint> {
    let log_scale = config.log_scale && values.iter().all(|v| *v > 0.0);
    let clipped = clip(&values, config.clip_window, config.clip_mads);
    let work: Vec<f64> = if log_scale {
        clipped.iter().map(|v| v.ln()).collect()
    } else {
        clipped.clone()
    };
    // The penalty is in units of the noise where the noise can be told from the signal, else
    // of the whole series. Only in the first case can a steady trend be cut into steps (the
    // whole series' deviation grows with the trend, the noise's does not), so only there must a
    // change also pass the jump test.
    let noise = noise_deviation(&work);
    let scale = noise.unwrap_or_else(|| std_dev(&work));
    let cuts = segment(&work, scale, config.penalty, config.min_segment.max(1));
    if cuts.is_empty() {
        return Vec::new();
    }
    // The tests and the levels read the values as they are: ranks and medians need no clipping,
    // and clipped values would understate a fresh change (its first points look like outliers).
    let raw_work: Vec<f64> = if log_scale {
        values.iter().map(|v| v.ln()).collect()
    } else {
        values.clone()
    };
    let trend_guard = noise.is_some();
    prune(&values, &raw_work, &work, cuts, config, trend_guard)
}

/// Missing values repeat the one before (the first present value fills the start); `None` when
/// nothing is present.
fn fill(series: &[f64]) -> Option<Vec<f64>> {
    let mut last = *series.iter().find(|v| v.is_finite())?;
    Some(
        series
            .iter()
            .map(|v| {
                if v.is_finite() {
                    last = *v;
                }
                last
            })
            .collect(),
    )
}

/// Pull outliers back to their neighbourhood: a value further than `k` robust deviations from
/// both the median of itself and its `window` neighbours before and the median of itself and
/// its `window` neighbours after is set to the bound around the nearer one. Judged on each side
/// separately, the points either side of a level shift each agree with their own side and stay
/// as they are, even where the series' start or end leaves one side short; a burst of outliers
/// agrees with neither. Within [`MIN_SIDE`] points of either end a value is left as it is: one
/// side is too short to judge, and the other may straddle a change. The deviation is one scale for the whole
/// series, the MAD of every value's distance from its nearer side's median: robust to level
/// shifts and to the outliers themselves.
fn clip(values: &[f64], window: usize, k: f64) -> Vec<f64> {
    let n = values.len();
    if window == 0 || n < 3 {
        return values.to_vec();
    }
    let (left, right) = side_medians(values, window);
    let side = MIN_SIDE.min(window + 1);
    // The median of the side the value agrees with better; `None` near either end, where one
    // side is too short to judge and the other may straddle a change: such a value stays.
    let nearer: Vec<Option<f64>> = (0..n)
        .map(|i| {
            let (l, r) = (left[i], right[i]);
            (i + 1 >= side && n - i >= side).then(|| {
                if (values[i] - l).abs() <= (values[i] - r).abs() {
                    l
                } else {
                    r
                }
            })
        })
        .collect();
    let mut residuals: Vec<f64> = values
        .iter()
        .zip(&nearer)
        .filter_map(|(v, m)| m.map(|m| (v - m).abs()))
        .collect();
    let bound = k * 1.4826 * median_in_place(&mut residuals).unwrap_or(0.0);
    if bound <= 0.0 {
        return values.to_vec();
    }
    values
        .iter()
        .zip(&nearer)
        .map(|(&v, &m)| match m {
            Some(m) if (v - m).abs() > bound => m + bound.copysign(v - m),
            _ => v,
        })
        .collect()
}

/// The medians of `values[i - window ..= i]` and of `values[i ..= i + window]`, cut at the
/// ends. The points after `i` are the points before `i + window`: only the last `window` right
/// sides, cut short by the end, need medians of their own.
fn side_medians(values: &[f64], window: usize) -> (Vec<f64>, Vec<f64>) {
    let n = values.len();
    let left = rolling_medians(values, window, 0);
    let mut right: Vec<f64> = left[window.min(n)..].to_vec();
    right.extend(rolling_medians(
        &values[n.saturating_sub(window)..],
        0,
        window,
    ));
    (left, right)
}

/// Points a side of [`clip`]'s neighbourhood needs, the value itself included, to judge it.
const MIN_SIDE: usize = 4;

/// The median of each value's neighbourhood: `values[i - before ..= i + after]`, cut at the
/// ends. Every value's rank is found once by sorting; the neighbourhood is then a set of ranks
/// (one bit each) that slides along the series, and a cursor on its middle rank moves only as
/// far as the slide moved the middle: a few steps a point, however long the window.
fn rolling_medians(values: &[f64], before: usize, after: usize) -> Vec<f64> {
    let n = values.len();
    // Sorting integer keys is faster than comparing floats through an index; `total_key`
    // orders like `f64::total_cmp`, and the index breaks ties.
    let mut order: Vec<(u64, usize)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (total_key(*v), i))
        .collect();
    order.sort_unstable();
    let mut rank = vec![0usize; n];
    for (r, &(_, i)) in order.iter().enumerate() {
        rank[i] = r;
    }
    let sorted: Vec<f64> = order.iter().map(|&(_, i)| values[i]).collect();
    let mut set = RankSet::new(n);
    let (mut lo, mut hi) = (0usize, 0usize); // the set holds values[lo..hi]
    // The cursor: rank `at`, with `below` ranks of the set under it.
    let (mut at, mut below) = (0usize, 0usize);
    let mut medians = Vec::with_capacity(n);
    for i in 0..n {
        let want_lo = i.saturating_sub(before);
        let want_hi = (i + after + 1).min(n);
        while hi < want_hi {
            set.insert(rank[hi]);
            below += usize::from(rank[hi] < at);
            hi += 1;
        }
        while lo < want_lo {
            set.remove(rank[lo]);
            below -= usize::from(rank[lo] < at);
            lo += 1;
        }
        // Move the cursor onto the lower middle: the set's k-th rank (0-based).
        let m = hi - lo;
        let k = (m - 1) / 2;
        loop {
            if below > k {
                let Some(down) = set.before(at) else { break };
                at = down;
                below -= 1;
            } else if below == k && set.contains(at) {
                break;
            } else {
                below += usize::from(set.contains(at));
                let Some(up) = set.from(at + 1) else { break };
                at = up;
            }
        }
        medians.push(if m % 2 == 1 {
            sorted[at]
        } else {
            let upper = set.from(at + 1).unwrap_or(at);
            0.5 * (sorted[at] + sorted[upper])
        });
    }
    medians
}

/// `v`'s bits mapped so that unsigned order is `f64::total_cmp`'s order.
fn total_key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | 1 << 63 }
}

/// A set of ranks `0..n`, one bit each.
struct RankSet(Vec<u64>);

impl RankSet {
    fn new(n: usize) -> Self {
        RankSet(vec![0; n.div_ceil(64) + 1])
    }

    fn insert(&mut self, r: usize) {
        self.0[r / 64] |= 1 << (r % 64);
    }

    fn remove(&mut self, r: usize) {
        self.0[r / 64] &= !(1 << (r % 64));
    }

    fn contains(&self, r: usize) -> bool {
        self.0.get(r / 64).is_some_and(|w| w >> (r % 64) & 1 == 1)
    }

    /// The smallest member `>= r`.
    fn from(&self, r: usize) -> Option<usize> {
        let mut w = r / 64;
        let mut word = *self.0.get(w)? & (u64::MAX << (r % 64));
        while word == 0 {
            w += 1;
            word = *self.0.get(w)?;
        }
        Some(w * 64 + word.trailing_zeros() as usize)
    }

    /// The largest member `< r`.
    fn before(&self, r: usize) -> Option<usize> {
        if r == 0 {
            return None;
        }
        let r = r - 1;
        let mut w = r / 64;
        let mut word = *self.0.get(w)? & (u64::MAX >> (63 - r % 64));
        while word == 0 {
            w = w.checked_sub(1)?;
            word = self.0[w];
        }
        Some(w * 64 + 63 - word.leading_zeros() as usize)
    }
}

/// The noise's long-run deviation, where it can be told from the signal and is below the
/// series' own standard deviation; `None` otherwise, and [`segment`]'s penalty is then in units
/// of the whole series.
///
/// Differences of neighbouring points cancel the level, so first differences describe the
/// noise alone, whatever the level shifts (those are a few outlying differences). Read as an
/// AR(1) with coefficient φ, noise gives differences whose lag-1 correlation is −(1 − φ)/2
/// (−½ for white noise, 0 for a walk) and whose variance is 2σ²(1 − φ). The correlation is
/// the differences' sign correlation about their median (`sin(π/2 · mean sign product)`, as
/// for normal data), which depends on neither the noise's shape nor the shifts' sizes and
/// needs no sort; the variance comes from their MAD. The long-run deviation
/// `σ √((1 + φ) / (1 − φ))` is the spread of a mean of many neighbouring points, what a change
/// in mean is judged against. Where φ is [`WHITE_PHI`] or more (a walk, a seasonal swing, a
/// slow wobble) the AR(1) reading is not trusted, nor where the differences have no spread
/// (coarsely rounded values).
fn noise_deviation(x: &[f64]) -> Option<f64> {
    // The differences are selected in place for their median; their order is read from `x`.
    let mut spread: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let middle = median_in_place(&mut spread)?;
    let sign = |d: f64| (d > middle) as i32 - (d < middle) as i32;
    let (mut product, mut pairs) = (0i32, 0i32);
    for w in x.windows(3) {
        let p = sign(w[1] - w[0]) * sign(w[2] - w[1]);
        product += p;
        pairs += p.abs();
    }
    if pairs == 0 {
        return None;
    }
    let rho = (std::f64::consts::FRAC_PI_2 * f64::from(product) / f64::from(pairs)).sin();
    let phi = 1.0 + 2.0 * rho;
    for d in &mut spread {
        *d = (*d - middle).abs();
    }
    let spread = 1.4826 * median_in_place(&mut spread)?;
    if phi >= WHITE_PHI || spread <= 0.0 || !spread.is_finite() {
        return None;
    }
    let phi = phi.max(0.0);
    let sigma = spread / (2.0 * (1.0 - phi)).sqrt();
    let long_run = sigma * ((1.0 + phi) / (1.0 - phi)).sqrt();
    (long_run < std_dev(x)).then_some(long_run)
}

/// Largest lag-1 autocorrelation of the noise, estimated by [`noise_deviation`], for which the
/// penalty is scaled by the noise rather than by the whole series. On the six TCPD series every
/// value from 0.45 to 1 scores the same (the series' own deviation bounds the scale); 0.7 is in
/// the middle. The estimate's standard error is about 0.12 at 470 points: the nearest series
/// below (φ 0.43) is two of them away, the nearest above (0.85) one (see
/// `docs/design/performance.md`).
const WHITE_PHI: f64 = 0.7;

/// Binary segmentation for a change in mean, the squared error in units of `scale`'s square;
/// returns the cut indices, sorted.
fn segment(x: &[f64], scale: f64, penalty: f64, min_segment: usize) -> Vec<usize> {
    let n = x.len();
    if n < 2 * min_segment {
        return Vec::new();
    }
    if scale <= 0.0 || !scale.is_finite() {
        return Vec::new();
    }
    let mut sum = vec![0.0; n + 1];
    let mut sum2 = vec![0.0; n + 1];
    for (i, v) in x.iter().enumerate() {
        let z = v / scale;
        sum[i + 1] = sum[i] + z;
        sum2[i + 1] = sum2[i] + z * z;
    }
    let cost = |a: usize, b: usize| {
        let s = sum[b] - sum[a];
        (sum2[b] - sum2[a]) - s * s / (b - a) as f64
    };
    let threshold = penalty * (n as f64).ln();
    let mut cuts = Vec::new();
    let mut stack = vec![(0usize, n)];
    while let Some((a, b)) = stack.pop() {
        if b - a < 2 * min_segment {
            continue;
        }
        let whole = cost(a, b);
        let mut best: Option<(f64, usize)> = None;
        for t in a + min_segment..=b - min_segment {
            let gain = whole - cost(a, t) - cost(t, b);
            if best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, t));
            }
        }
        if let Some((gain, t)) = best
            && gain > threshold
        {
            cuts.push(t);
            stack.push((a, t));
            stack.push((t, b));
        }
    }
    cuts.sort_unstable();
    cuts
}

/// At most this many points on each side feed a change's rank test and medians: the level just
/// before and just after the change.
const SIDE: usize = 50;

/// Merge away the weakest change that fails the tests or the floors, until all pass. A change
/// is judged on the level just before and just after it (at most [`SIDE`] points each) by two
/// tests: the rank test between the sides (`work`, the unclipped values), and [`jump_p`], which
/// asks whether the level jumps at the change once a common trend through both sides is allowed
/// for (`clipped`, so an outlier cannot tilt the line). The second, asked only with
/// `trend_guard` (a penalty in units of the noise), keeps a steady trend, which binary
/// segmentation for a change in mean then cuts into steps, from being reported as changes.
fn prune(
    values: &[f64],
    work: &[f64],
    clipped: &[f64],
    mut cuts: Vec<usize>,
    config: &DetectConfig,
    trend_guard: bool,
) -> Vec<ChangePoint> {
    loop {
        let points: Vec<(ChangePoint, f64, bool)> = (0..cuts.len())
            .map(|i| {
                let start = if i == 0 { 0 } else { cuts[i - 1] };
                let end = cuts.get(i + 1).copied().unwrap_or(values.len());
                let t = cuts[i];
                let left = start.max(t.saturating_sub(SIDE))..t;
                let right = t..end.min(t + SIDE);
                let (_, p) = mann_whitney(&work[left.clone()], &work[right.clone()]);
                let weakest_p = if trend_guard {
                    p.max(jump_p(&clipped[left.start..right.end], t - left.start))
                } else {
                    p
                };
                let before = median(&values[left]).unwrap_or(0.0);
                let after = median(&values[right]).unwrap_or(0.0);
                let passes = weakest_p <= config.max_p
                    && relative(before, after).abs() >= config.min_relative
                    && (after - before).abs() >= config.min_absolute;
                (
                    ChangePoint {
                        index: t,
                        before,
                        after,
                        p_value: p,
                    },
                    weakest_p,
                    passes,
                )
            })
            .collect();
        let weakest = points
            .iter()
            .enumerate()
            .filter(|(_, (_, _, passes))| !passes)
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map(|(i, _)| i);
        match weakest {
            Some(i) => {
                cuts.remove(i);
            }
            None => return points.into_iter().map(|(c, _, _)| c).collect(),
        }
    }
}

/// Two-sided p-value of a jump in level at `at` in `y`, fitted with a common trend:
/// `y = a + b·t + δ·[t ≥ at]` by least squares, δ against its standard error (normal tail).
/// A step gives a large δ whatever the slope; a steady trend, cut anywhere, gives δ near 0.
/// 1 when the fit has too few points or the jump cannot be told from the slope; in noiseless
/// values, 0 for a jump and 1 for none.
fn jump_p(y: &[f64], at: usize) -> f64 {
    let n = y.len();
    if n < 4 || at == 0 || at >= n {
        return 1.0;
    }
    let nf = n as f64;
    let t_mean = (nf - 1.0) / 2.0;
    let y_mean = y.iter().sum::<f64>() / nf;
    let i_mean = (n - at) as f64 / nf;
    // Sums of centred products: u = t − t̄, j = [t ≥ at] − j̄, v = y − ȳ.
    let (mut uu, mut uj, mut uv, mut jj, mut jv, mut vv) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (t, &value) in y.iter().enumerate() {
        let u = t as f64 - t_mean;
        let j = f64::from(u8::from(t >= at)) - i_mean;
        let v = value - y_mean;
        uu += u * u;
        uj += u * j;
        uv += u * v;
        jj += j * j;
        jv += j * v;
        vv += v * v;
    }
    // Frisch–Waugh: regress the step and the values on the trend, then one on the other.
    let jj_t = jj - uj * uj / uu;
    let jv_t = jv - uj * uv / uu;
    let vv_t = vv - uv * uv / uu;
    if jj_t <= 1e-9 * jj {
        return 1.0;
    }
    let delta = jv_t / jj_t;
    let explained = delta * jv_t;
    let residual = (vv_t - explained).max(0.0);
    // Noiseless values (up to rounding): the jump is certain if it explains anything.
    let rounding = 1e-12 * vv;
    if residual <= rounding {
        return if explained > rounding { 0.0 } else { 1.0 };
    }
    let z = delta.abs() / (residual / (nf - 3.0) / jj_t).sqrt();
    (2.0 * normal_sf(z)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::super::stats::sorted_median;
    use super::*;

    /// A deterministic pseudo-random stream in [-1, 1).
    fn noise(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    fn series(levels: &[(usize, f64)], spread: f64, seed: u64) -> Vec<f64> {
        let mut r = noise(seed);
        levels
            .iter()
            .flat_map(|&(n, level)| (0..n).map(move |_| level))
            .map(|level| level * (1.0 + spread * r()))
            .collect()
    }

    /// `n` points of AR(1) noise with coefficient `phi` (1 = a walk) on [`noise`]'s steps.
    fn ar1(seed: u64, phi: f64, n: usize) -> Vec<f64> {
        let mut r = noise(seed);
        let mut out = vec![0.0f64];
        for _ in 1..n {
            let last = out[out.len() - 1];
            out.push(phi * last + r());
        }
        out
    }

    /// `s` (2000 points or more) with `by` added to points 700..1400.
    fn shifted(mut s: Vec<f64>, by: f64) -> Vec<f64> {
        for v in &mut s[700..1400] {
            *v += by;
        }
        s
    }

    fn indices(s: &[f64], config: &DetectConfig) -> Vec<usize> {
        detect(s, config).iter().map(|c| c.index).collect()
    }

    #[test]
    fn a_flat_series_has_no_change() {
        for seed in 0..20 {
            let s = series(&[(200, 100.0)], 0.05, seed);
            assert_eq!(
                indices(&s, &DetectConfig::default()),
                Vec::<usize>::new(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_step_is_found_where_it_is() {
        let s = series(&[(60, 100.0), (40, 130.0)], 0.05, 7);
        let found = detect(&s, &DetectConfig::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].index, 60);
        assert!((found[0].relative() - 0.3).abs() < 0.05, "{found:?}");
        assert!(found[0].p_value < 1e-6, "{found:?}");
    }

    #[test]
    fn improvements_and_several_steps() {
        let s = series(&[(50, 200.0), (50, 100.0), (50, 150.0)], 0.03, 3);
        let found = detect(&s, &DetectConfig::default());
        assert_eq!(
            found.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![50, 100]
        );
        let l = levels(&s, &found);
        assert_eq!(l.len(), 150);
        assert!(
            (l[0] - 200.0).abs() < 5.0 && (l[49] - 200.0).abs() < 5.0,
            "{l:?}"
        );
        assert!(
            (l[50] - 100.0).abs() < 5.0 && (l[120] - 150.0).abs() < 5.0,
            "{l:?}"
        );
        // No change: one level; nothing known: NaN.
        assert_eq!(levels(&[1.0, 3.0, 2.0], &[]), vec![2.0; 3]);
        assert!(levels(&[f64::NAN], &[])[0].is_nan());
    }

    #[test]
    fn an_outlier_burst_is_not_a_change() {
        let mut s = series(&[(100, 100.0)], 0.03, 11);
        for v in s.iter_mut().skip(60).take(3) {
            *v = 280.0;
        }
        assert_eq!(indices(&s, &DetectConfig::default()), Vec::<usize>::new());
    }

    #[test]
    fn floors_drop_small_changes() {
        // 50% slower, but 2 ms → 3 ms.
        let s = series(&[(50, 2.0), (50, 3.0)], 0.02, 5);
        assert_eq!(indices(&s, &DetectConfig::durations(0.0)), vec![50]);
        assert_eq!(
            indices(&s, &DetectConfig::durations(20.0)),
            Vec::<usize>::new()
        );
        // 2% on a quiet series: significant, but under the relative floor.
        let s = series(&[(100, 100.0), (100, 102.0)], 0.002, 5);
        assert_eq!(indices(&s, &DetectConfig::default()), Vec::<usize>::new());
    }

    #[test]
    fn skipping_series_under_the_floors_changes_no_answer() {
        // Quick tests, small steps, outliers, ties: whatever the screen skips, the full
        // detector finds nothing in either.
        let (mut skipped, mut found) = (0, 0);
        for seed in 0..400u64 {
            let mut r = noise(seed);
            let level = [2.0, 20.0, 45.0, 100.0, 400.0][seed as usize % 5];
            let step = [0.0, 0.04, 0.1, 0.5, 2.0][(seed / 5) as usize % 5];
            let spread = [0.0, 0.02, 0.1][(seed / 25) as usize % 3];
            let mut s = series(&[(50, level), (30, level * (1.0 + step))], spread, seed);
            if seed % 4 == 0 {
                s[(r().abs() * 79.0) as usize] *= 3.0;
            }
            for config in [
                DetectConfig::durations(50.0),
                DetectConfig::default(),
                DetectConfig {
                    min_segment: 2,
                    ..DetectConfig::durations(5.0)
                },
            ] {
                let screened = detect(&s, &config);
                let full = detect_filled(fill(&s).unwrap_or_default(), &config);
                assert_eq!(screened, full, "seed {seed} {config:?}");
                skipped += usize::from(!can_pass_floors(&s, &config));
                found += usize::from(!full.is_empty());
            }
        }
        // The screen does skip series, and the cases hold changes to find.
        assert!(skipped > 300 && found > 300, "{skipped} {found}");
        let step = series(&[(50, 100.0), (50, 200.0)], 0.01, 1);
        assert!(can_pass_floors(&step, &DetectConfig::durations(50.0)));
        assert!(!can_pass_floors(&step, &DetectConfig::durations(200.0)));
    }

    /// Each neighbourhood sorted from scratch: what [`rolling_medians`] must equal.
    fn medians_by_sorting(values: &[f64], before: usize, after: usize) -> Vec<f64> {
        (0..values.len())
            .map(|i| {
                let hi = (i + after + 1).min(values.len());
                let mut w = values[i.saturating_sub(before)..hi].to_vec();
                w.sort_by(f64::total_cmp);
                sorted_median(&w)
            })
            .collect()
    }

    #[test]
    fn rolling_medians_equal_sorting_each_neighbourhood() {
        for seed in 0..60u64 {
            let mut r = noise(seed);
            let n = [1, 2, 3, 7, 63, 64, 65, 100, 130, 300][seed as usize % 10];
            // Ties (rounded values) and spread values both.
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    let v = 100.0 + 50.0 * r();
                    match seed % 3 {
                        0 => v.round() / 4.0,
                        1 => v - 100.0, // both signs
                        _ => v,
                    }
                })
                .collect();
            for (before, after) in [
                (0, 0),
                (1, 1),
                (5, 5),
                (25, 25),
                (400, 400),
                (25, 0),
                (0, 25),
            ] {
                assert_eq!(
                    rolling_medians(&values, before, after),
                    medians_by_sorting(&values, before, after),
                    "seed {seed} n {n} window -{before} +{after}"
                );
            }
        }
    }

    #[test]
    fn a_step_near_either_end_or_in_a_short_series_is_found_where_it_is() {
        // Within the clipping window of the series' start or end, one side of the step holds
        // most of a centred neighbourhood; judged side by side, neither side is clipped away.
        let config = DetectConfig::durations(50.0);
        for seed in 0..10 {
            let near_start = series(&[(15, 510.0), (25, 255.0)], 0.03, seed);
            assert_eq!(indices(&near_start, &config), vec![15], "seed {seed}");
            let near_end = series(&[(25, 400.0), (15, 600.0)], 0.03, seed);
            assert_eq!(indices(&near_end, &config), vec![25], "seed {seed}");
            let short = series(&[(10, 11_400.0), (10, 22_800.0)], 0.01, seed);
            assert_eq!(
                indices(&short, &DetectConfig::durations(1000.0)),
                vec![10],
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_right_sides_are_the_left_sides_shifted() {
        let mut r = noise(3);
        let values: Vec<f64> = (0..90).map(|_| 100.0 + 10.0 * r()).collect();
        for window in [0, 1, 5, 25, 89, 90, 200] {
            let (left, right) = side_medians(&values, window);
            assert_eq!(
                left,
                medians_by_sorting(&values, window, 0),
                "window {window}"
            );
            assert_eq!(
                right,
                medians_by_sorting(&values, 0, window),
                "window {window}"
            );
        }
    }

    #[test]
    fn a_burst_of_outliers_is_clipped_not_a_change() {
        let config = DetectConfig::durations(50.0);
        for seed in 0..10 {
            let mut s = series(&[(100, 400.0)], 0.03, seed);
            for v in &mut s[40..43] {
                *v *= 2.5;
            }
            assert_eq!(indices(&s, &config), Vec::<usize>::new(), "seed {seed}");
            let clipped = clip(&s, 25, 5.0);
            assert!(
                clipped[40..43].iter().all(|v| *v < 500.0),
                "{:?}",
                &clipped[38..45]
            );
        }
    }

    #[test]
    fn the_penalty_is_in_units_of_the_noise_where_the_noise_is_white() {
        let mut r = noise(5);
        // Uniform noise on [-1, 1): σ = 1/√3. Six level shifts make the series' own deviation
        // about five times the noise's.
        let stepped: Vec<f64> = [0.0, 8.0, 3.0, 10.0, 1.0, 7.0, -2.0]
            .iter()
            .flat_map(|&level| (0..40).map(move |_| level))
            .map(|level| level + r())
            .collect();
        let sigma = 1.0 / 3f64.sqrt();
        assert!(std_dev(&stepped) > 4.0 * sigma);
        let scale = noise_deviation(&stepped).unwrap_or(f64::NAN);
        assert!((scale / sigma - 1.0).abs() < 0.15, "{scale} vs {sigma}");
        // Noise with memory: AR(1) with φ = 0.3 has a long-run deviation of
        // σ_e √(1 / (1 − φ)²) = σ_e / 0.7 (here under two shifts that keep the series' own
        // deviation, which bounds the scale, above it).
        let ar = shifted(ar1(9, 0.3, 2000), 10.0);
        let long_run = sigma / 0.7;
        let scale = noise_deviation(&ar).unwrap_or(f64::NAN);
        assert!(
            (scale / long_run - 1.0).abs() < 0.2,
            "{scale} vs {long_run}"
        );
        // A slow swing (AR(1), φ = 0.85) is judged as a whole even under shifts that make the
        // series' own deviation larger than its long-run one: its differences say too little.
        let swing = shifted(ar1(3, 0.85, 2000), 30.0);
        assert!(std_dev(&swing) > 2.0 * sigma / 0.15);
        assert_eq!(noise_deviation(&swing), None);
        // So are a walk (φ = 1) and a series whose differences have no spread.
        assert_eq!(noise_deviation(&ar1(2, 1.0, 300)), None);
        let rounded: Vec<f64> = (0..100).map(|i| f64::from(i / 20)).collect();
        assert_eq!(noise_deviation(&rounded), None);
    }

    #[test]
    fn many_shifts_in_white_noise_are_each_found() {
        // Shifts of 6–11 noise deviations (6–11%), each 40 points long. Judged in units of the whole
        // series' deviation (five times the noise's), the smaller ones were merged away.
        for seed in 0..10 {
            let mut r = noise(seed);
            let s: Vec<f64> = [100.0, 110.0, 103.0, 112.0, 100.0, 108.0, 98.0]
                .iter()
                .flat_map(|&level| (0..40).map(move |_| level))
                .map(|level| level + 2.0 * r())
                .collect();
            let found = indices(&s, &DetectConfig::default());
            assert_eq!(found, vec![40, 80, 120, 160, 200, 240], "seed {seed}");
        }
    }

    #[test]
    fn a_steady_trend_is_not_cut_into_steps_but_a_step_on_it_is_found() {
        for seed in 0..10 {
            // From 10 to 16 over 200 points, noise σ ≈ 0.58: the mean shifts by 5% every 17
            // points, and binary segmentation cuts it wherever it likes.
            let mut r = noise(seed);
            let trend: Vec<f64> = (0..200).map(|i| 10.0 + 0.03 * i as f64 + r()).collect();
            assert_eq!(
                indices(&trend, &DetectConfig::default()),
                Vec::<usize>::new(),
                "seed {seed}"
            );
            let mut stepped = trend.clone();
            for v in &mut stepped[120..] {
                *v += 3.0;
            }
            assert_eq!(
                indices(&stepped, &DetectConfig::default()),
                vec![120],
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_jump_is_told_from_a_trend() {
        let line: Vec<f64> = (0..40).map(|i| 2.0 * f64::from(i)).collect();
        assert_eq!(jump_p(&line, 20), 1.0);
        let mut r = noise(4);
        let noisy_line: Vec<f64> = line.iter().map(|v| v + r()).collect();
        assert!(
            jump_p(&noisy_line, 20) > 0.01,
            "{}",
            jump_p(&noisy_line, 20)
        );
        let mut r = noise(1);
        let mut step: Vec<f64> = (0..40).map(|i| 0.1 * f64::from(i) + 0.5 * r()).collect();
        for v in &mut step[30..] {
            *v += 5.0;
        }
        assert!(jump_p(&step, 30) < 1e-9, "{}", jump_p(&step, 30));
        // A jump without noise is certain; too few points, or a cut at an end, say nothing.
        let flat_step: Vec<f64> = (0..20).map(|i| if i < 10 { 1.0 } else { 2.0 }).collect();
        assert_eq!(jump_p(&flat_step, 10), 0.0);
        assert_eq!(jump_p(&flat_step, 0), 1.0);
        assert_eq!(jump_p(&flat_step[..3], 1), 1.0);
    }

    #[test]
    fn missing_and_short_series() {
        assert!(detect(&[], &DetectConfig::default()).is_empty());
        assert!(detect(&[f64::NAN, f64::NAN], &DetectConfig::default()).is_empty());
        assert!(detect(&[1.0, f64::NAN], &DetectConfig::default()).is_empty());
        let mut s = series(&[(40, 10.0), (40, 20.0)], 0.02, 1);
        s[45] = f64::NAN;
        s[0] = f64::INFINITY;
        assert_eq!(indices(&s, &DetectConfig::default()), vec![40]);
        let short = series(&[(5, 10.0), (4, 20.0)], 0.0, 1);
        assert!(detect(&short, &DetectConfig::default()).is_empty());
    }
}
