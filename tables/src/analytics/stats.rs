//! Small robust statistics shared by the scorers. Inputs need not be sorted; empty inputs give
//! `None`, never NaN.

pub fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Median of sorted values.
pub fn median_sorted(v: &[f64]) -> Option<f64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

pub fn median(xs: &[f64]) -> Option<f64> {
    median_sorted(&sorted(xs))
}

/// Median absolute deviation from the median.
pub fn mad(xs: &[f64]) -> Option<f64> {
    let m = median(xs)?;
    median(&xs.iter().map(|x| (x - m).abs()).collect::<Vec<_>>())
}

/// Quartiles with exclusive hinges (Tukey): Q1 and Q3 are the medians of the lower and upper
/// halves, the middle value excluded when n is odd. Needs at least 2 values... 3 for a Q2 that
/// differs from the hinges.
pub fn quartiles(xs: &[f64]) -> Option<(f64, f64, f64)> {
    let v = sorted(xs);
    let n = v.len();
    if n < 2 {
        return None;
    }
    let q2 = median_sorted(&v)?;
    let (lower, upper) = if n % 2 == 0 {
        (&v[..n / 2], &v[n / 2..])
    } else {
        (&v[..n / 2], &v[n / 2 + 1..])
    };
    Some((median_sorted(lower)?, q2, median_sorted(upper)?))
}

pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Population standard deviation.
pub fn std_dev(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    Some((xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt())
}

/// Percentile by linear interpolation between closest ranks (p in [0, 100]).
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    let v = sorted(xs);
    if v.is_empty() {
        return None;
    }
    let rank = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

pub fn clamp01(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(mad(&[1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]), Some(1.0));
        // Tukey hinges: 1..9 → Q1 = median(1,2,3,4) = 2.5, Q3 = 7.5.
        assert_eq!(
            quartiles(&[9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
            Some((2.5, 5.0, 7.5))
        );
        assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0]), Some((1.5, 2.5, 3.5)));
        assert_eq!(
            std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            Some(2.0)
        );
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 95.0), Some(4.8));
        assert_eq!(clamp01(f64::NAN), 0.0);
        assert_eq!(
            median(&[f64::NAN, 1.0]),
            Some(1.0),
            "NaN never poisons a statistic"
        );
    }
}
