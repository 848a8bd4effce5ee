//! The small robust statistics the performance models share: medians, MAD, the normal tail,
//! and the Mann–Whitney rank test.

/// The median of `values` (NaN-free), or `None` when empty. Sorts a copy.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    median_in_place(&mut v)
}

/// The median of `values`, reordering them (selection, not a sort: linear time).
pub fn median_in_place(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (left, mid, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    Some(if n % 2 == 1 {
        mid
    } else {
        // The lower middle is the largest of the left part.
        let below = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (below + mid)
    })
}

/// The median of values already sorted ascending (non-empty).
pub fn sorted_median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// The median absolute deviation scaled to estimate a normal standard deviation (× 1.4826).
pub fn mad_sigma(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let mut dev: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
    median_in_place(&mut dev).map(|d| 1.4826 * d)
}

/// The sample standard deviation, or 0 for fewer than two values.
pub fn std_dev(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

/// P(Z > z) for a standard normal Z (relative error below 1.2e-7).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`, Chebyshev fit).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The Mann–Whitney U test of `b` against `a`, normal approximation with the tie correction.
/// Returns z (positive when `b` tends to be larger) and the two-sided p-value.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return (0.0, 1.0);
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, false))
        .chain(b.iter().map(|&v| (v, true)))
        .collect();
    all.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let (mut rank_b, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_b += rank * all[i..=j].iter().filter(|e| e.1).count() as f64;
        i = j + 1;
    }
    let u = rank_b - n2 * (n2 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let nf = n as f64;
    let var = n1 * n2 / 12.0 * ((nf + 1.0) - ties / (nf * (nf - 1.0)));
    if var <= 0.0 {
        return (0.0, 1.0);
    }
    let z = (u - mean) / var.sqrt();
    (z, (2.0 * normal_sf(z.abs())).min(1.0))
}

/// The Hodges–Lehmann shift of `b` over `a`: the median of all pairwise differences.
pub fn hodges_lehmann(a: &[f64], b: &[f64]) -> Option<f64> {
    let mut d: Vec<f64> = Vec::with_capacity(a.len() * b.len());
    for &x in a {
        for &y in b {
            d.push(y - x);
        }
    }
    median_in_place(&mut d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} is not within {tol} of {b}");
    }

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        close(
            mad_sigma(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap_or(0.0),
            1.4826,
            1e-9,
        );
        close(
            std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            2.138,
            1e-3,
        );
    }

    #[test]
    fn normal_tail_matches_tables() {
        close(normal_sf(0.0), 0.5, 1e-7);
        close(normal_sf(1.959_964), 0.025, 1e-6);
        close(normal_sf(3.290_527), 0.0005, 1e-7);
        close(normal_sf(-1.0), 0.841_344_7, 1e-6);
    }

    #[test]
    fn mann_whitney_matches_a_worked_example() {
        // scipy.stats.mannwhitneyu(a, b, method="asymptotic", use_continuity=False):
        // U(b) = 24 of 25, z = 2.4023, p = 0.01629.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [4.5, 6.0, 7.0, 8.0, 9.0];
        let (z, p) = mann_whitney(&a, &b);
        close(z, 2.4023, 1e-3);
        close(p, 0.016_29, 1e-4);
        let (z, p) = mann_whitney(&b, &a);
        close(z, -2.4023, 1e-3);
        close(p, 0.016_29, 1e-4);
        // All ties: no evidence either way.
        assert_eq!(mann_whitney(&[1.0; 4], &[1.0; 4]), (0.0, 1.0));
    }

    #[test]
    fn hodges_lehmann_is_the_median_pairwise_shift() {
        assert_eq!(
            hodges_lehmann(&[1.0, 2.0, 3.0], &[11.0, 12.0, 13.0]),
            Some(10.0)
        );
        assert_eq!(hodges_lehmann(&[], &[1.0]), None);
    }
}
