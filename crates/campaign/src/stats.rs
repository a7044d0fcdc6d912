//! The statistics of a report: a rate with its 95 % interval (Wilson score interval, which
//! behaves at 0 % and with small counts, unlike the textbook ±1.96·SE), and the two-proportion
//! z-test of whether two variants' rates differ.

use serde::Serialize;

/// z for a two-sided 95 % level.
pub const Z95: f64 = 1.959_963_984_540_054;

/// `successes` of `trials` (clicks of deliveries, deliveries of sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Proportion {
    /// How many succeeded.
    pub successes: u64,
    /// Out of how many.
    pub trials: u64,
}

impl Proportion {
    /// A proportion; `successes` is capped at `trials`.
    pub fn new(successes: u64, trials: u64) -> Self {
        Self { successes: successes.min(trials), trials }
    }

    /// The rate, 0 when there were no trials.
    pub fn rate(&self) -> f64 {
        if self.trials == 0 { 0.0 } else { self.successes as f64 / self.trials as f64 }
    }

    /// The Wilson score interval at 95 %; `(0, 0)` without trials.
    pub fn interval95(&self) -> (f64, f64) {
        if self.trials == 0 {
            return (0.0, 0.0);
        }
        let n = self.trials as f64;
        let p = self.rate();
        let z2 = Z95 * Z95;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        ((centre - half).max(0.0), (centre + half).min(1.0))
    }
}

/// The two-proportion test of `a` against `b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// `b.rate() - a.rate()`.
    pub difference: f64,
    /// The z statistic (pooled standard error).
    pub z: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// Whether the difference is significant at 95 % (p < 0.05).
    pub significant: bool,
}

/// The pooled two-proportion z-test; `None` when either side has no trials or the pooled rate is
/// 0 or 1 (nothing to compare).
pub fn two_proportion(a: Proportion, b: Proportion) -> Option<Comparison> {
    if a.trials == 0 || b.trials == 0 {
        return None;
    }
    let (n1, n2) = (a.trials as f64, b.trials as f64);
    let pooled = (a.successes + b.successes) as f64 / (n1 + n2);
    if pooled <= 0.0 || pooled >= 1.0 {
        return None;
    }
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let difference = b.rate() - a.rate();
    let z = difference / se;
    let p_value = (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0);
    Some(Comparison { difference, z, p_value, significant: p_value < 0.05 })
}

/// The standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error below
/// 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, eps: f64) -> bool {
        (a - b).abs() < eps
    }

    #[test]
    fn the_normal_distribution_at_known_points() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(Z95), 0.975, 1e-6));
        assert!(close(normal_cdf(-1.0), 0.158_655_25, 1e-6));
        assert!(close(normal_cdf(3.0), 0.998_650_10, 1e-6));
    }

    #[test]
    fn wilson_intervals() {
        // 50 of 100: 0.4038–0.5962 (standard tables).
        let (lo, hi) = Proportion::new(50, 100).interval95();
        assert!(close(lo, 0.4038, 1e-4) && close(hi, 0.5962, 1e-4), "{lo} {hi}");
        // 0 of 20 still has an upper bound: 0–0.1611.
        let (lo, hi) = Proportion::new(0, 20).interval95();
        assert!(close(lo, 0.0, 1e-9) && close(hi, 0.1611, 1e-4), "{lo} {hi}");
        assert_eq!(Proportion::new(3, 0).interval95(), (0.0, 0.0));
        assert_eq!(Proportion::new(9, 5), Proportion { successes: 5, trials: 5 });
    }

    #[test]
    fn two_proportion_test() {
        // 120/1000 vs 150/1000: z = 1.96 (p ≈ 0.0497), just significant.
        let c = two_proportion(Proportion::new(120, 1_000), Proportion::new(150, 1_000)).unwrap();
        assert!(close(c.difference, 0.03, 1e-12));
        assert!(close(c.z, 1.9630, 1e-3), "{}", c.z);
        assert!(c.significant && c.p_value < 0.05, "{c:?}");
        // 10/100 vs 12/100: nowhere near.
        let c = two_proportion(Proportion::new(10, 100), Proportion::new(12, 100)).unwrap();
        assert!(!c.significant && c.p_value > 0.5, "{c:?}");
        assert!(two_proportion(Proportion::new(0, 10), Proportion::new(0, 10)).is_none());
        assert!(two_proportion(Proportion::new(0, 0), Proportion::new(1, 10)).is_none());
    }
}
