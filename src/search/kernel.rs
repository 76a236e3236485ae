//! Scoring: a fast float32 pass (simsimd: AVX-512, AVX2+FMA, NEON or SVE,
//! chosen at run time; a portable loop elsewhere) with a proven error bound,
//! and the exact float64 score that results report.
//!
//! The scan ranks by the float32 score widened by its error bound, so no
//! pattern that could be in the top k by the float64 score is dropped
//! (`select`); the survivors, a handful, are rescored in float64 with a
//! fixed summation order. So results are exact in float64 and identical on
//! every CPU and on both tiers, whatever SIMD the scan used.

use simsimd::SpatialSimilarity;

use super::Metric;

/// Unit roundoff of f32.
const U32: f64 = 1.0 / (1u64 << 24) as f64;

/// Float32 dot product (SIMD), or `None` when the kernel cannot run.
#[inline]
fn dot32(a: &[f32], b: &[f32]) -> Option<f64> {
    <f32 as SpatialSimilarity>::dot(a, b)
}

#[inline]
fn l2sq32(a: &[f32], b: &[f32]) -> Option<f64> {
    <f32 as SpatialSimilarity>::l2sq(a, b)
}

pub fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

pub fn l2sq64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum()
}

pub fn norm64(a: &[f32]) -> f64 {
    dot64(a, a).sqrt()
}

/// The query, with what every row's score needs.
pub struct Scorer<'q> {
    pub metric: Metric,
    pub query: &'q [f32],
    /// Exact (float64) norm of the query.
    pub query_norm: f64,
    /// What the float32 pass multiplies rows by: the query, or under cosine
    /// the query scaled to unit length (so tiny or huge queries neither
    /// underflow nor overflow in float32).
    scan_query: Vec<f32>,
    /// Relative error bound of a float32 accumulation over this dimension:
    /// gamma_n = n u / (1 - n u) with n = dim + 32 (the SIMD reduction's
    /// extra steps), doubled for the stored norms' rounding and margin.
    gamma: f64,
    /// Absolute error bound from underflow: every product and sum may lose
    /// up to one subnormal step (2^-149), with margin.
    underflow: f64,
}

impl<'q> Scorer<'q> {
    pub fn new(metric: Metric, query: &'q [f32]) -> Scorer<'q> {
        let n = (query.len() + 32) as f64 * U32;
        let query_norm = norm64(query);
        let scan_query = match metric {
            Metric::Cosine if query_norm > 0.0 => query.iter().map(|&x| (f64::from(x) / query_norm) as f32).collect(),
            _ => query.to_vec(),
        };
        Scorer {
            metric,
            query,
            query_norm,
            scan_query,
            gamma: 2.0 * n / (1.0 - n),
            underflow: (query.len() + 32) as f64 * 4.0 * f64::from(f32::from_bits(1)),
        }
    }

    /// The ranking key of a row (bigger is better: the similarity, or minus
    /// the squared distance) from the float32 pass, and a bound on how far
    /// the exact key can be from it. `norm` is the row's stored norm.
    #[inline]
    pub fn approx(&self, row: &[f32], norm: f32) -> (f64, f64) {
        let norm = f64::from(norm);
        let fast = match self.metric {
            Metric::Euclidean => l2sq32(&self.scan_query, row).map(|d| -d),
            _ => dot32(&self.scan_query, row),
        };
        let tiny = self.underflow;
        match fast {
            Some(key) if key.is_finite() => match self.metric {
                Metric::Dot => (key, self.gamma * self.query_norm * norm * (1.0 + self.gamma) + tiny),
                Metric::Cosine if norm == 0.0 => (0.0, 0.0),
                // The scan query has norm 1 (within rounding, inside gamma's margin).
                Metric::Cosine => (key / norm, self.gamma * 2.0 + tiny / norm),
                // Each term (x - y)^2 is within a few roundings of exact, and
                // the sum within gamma: the bound is relative to the value.
                Metric::Euclidean => (key, self.gamma * 2.0 * key.abs() + tiny),
            },
            // Overflow in float32 (or no kernel): take the exact key.
            _ => (self.exact_key(row), 0.0),
        }
    }

    /// The exact ranking key (bigger is better).
    pub fn exact_key(&self, row: &[f32]) -> f64 {
        match self.metric {
            Metric::Euclidean => -l2sq64(self.query, row),
            Metric::Dot => dot64(self.query, row),
            Metric::Cosine => cosine(self.query, self.query_norm, row),
        }
    }

    /// The score a result reports for an exact key.
    pub fn score(&self, key: f64) -> f64 {
        match self.metric {
            Metric::Euclidean => (-key).max(0.0).sqrt(),
            // Never -0: a sum of zero products may be negative zero.
            _ => key + 0.0,
        }
    }

    /// The threshold as a key bound: a row passes when its key >= this.
    pub fn threshold_key(&self, threshold: Option<f64>) -> f64 {
        match (threshold, self.metric) {
            (None, _) => f64::NEG_INFINITY,
            (Some(t), Metric::Euclidean) if t < 0.0 => f64::INFINITY,
            (Some(t), Metric::Euclidean) => -(t * t),
            (Some(t), _) => t,
        }
    }

    /// Whether an exact key passes the threshold, judged on the score
    /// itself (not the squared distance), so both tiers agree to the bit.
    pub fn passes(&self, key: f64, threshold: Option<f64>) -> bool {
        match (threshold, self.metric) {
            (None, _) => true,
            (Some(t), Metric::Euclidean) => self.score(key) <= t,
            (Some(t), _) => key >= t,
        }
    }
}

/// Exact cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], a_norm: f64, b: &[f32]) -> f64 {
    let b_norm = norm64(b);
    if a_norm == 0.0 || b_norm == 0.0 {
        0.0
    } else {
        dot64(a, b) / (a_norm * b_norm)
    }
}

/// One pass over `bytes` reading every byte: the floor a scan is measured
/// against (what it costs to bring the vectors through one core). Compiled
/// for the widest loads the CPU has, so the floor is not a slow straw man.
pub fn read_floor(bytes: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { read_floor_avx512(bytes) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { read_floor_avx2(bytes) };
        }
    }
    read_floor_portable(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn read_floor_avx512(bytes: &[u8]) -> u64 {
    read_floor_portable(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_floor_avx2(bytes: &[u8]) -> u64 {
    read_floor_portable(bytes)
}

/// Wrapping sums of u64 words in 8 lanes (which the compiler vectorises to
/// whatever the enclosing function's target features allow).
#[inline(always)]
fn read_floor_portable(bytes: &[u8]) -> u64 {
    // SAFETY: every bit pattern is a valid u64; align_to hands out only the
    // aligned middle part.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    let mut acc = [0u64; 8];
    let mut chunks = words.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(c[i]);
        }
    }
    let mut sum = acc.iter().fold(0u64, |a, &b| a.wrapping_add(b));
    for &w in chunks.remainder() {
        sum = sum.wrapping_add(w);
    }
    for &b in head.iter().chain(tail) {
        sum = sum.wrapping_add(u64::from(b));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The float32 key is within its bound of the exact key.
        #[test]
        fn approx_is_within_its_bound(
            v in proptest::collection::vec((-1e3f32..1e3, -1e3f32..1e3), 1..800),
            metric in 0usize..3,
        ) {
            let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let metric = [Metric::Cosine, Metric::Dot, Metric::Euclidean][metric];
            let s = Scorer::new(metric, &a);
            let norm = crate::format::vectors::norm(b.iter().copied());
            let (key, eps) = s.approx(&b, norm);
            let exact = s.exact_key(&b);
            prop_assert!((key - exact).abs() <= eps.max(1e-300), "{key} vs {exact} (eps {eps})");
        }
    }

    #[test]
    fn subnormal_queries_and_rows_stay_within_the_bound() {
        let tiny = f32::from_bits(1);
        let rows: [&[f32]; 3] = [&[1.0, 1.0, 1.0], &[1e-30, 2e-30, 0.0], &[tiny, 0.0, tiny]];
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclidean] {
            for q in [[tiny; 3], [1e-30, 1e-30, 3e-30], [1.0, -1.0, 0.5]] {
                let s = Scorer::new(metric, &q);
                for row in rows {
                    let (key, eps) = s.approx(row, crate::format::vectors::norm(row.iter().copied()));
                    let exact = s.exact_key(row);
                    assert!(
                        (key - exact).abs() <= eps,
                        "{metric:?} {q:?} {row:?}: {key} vs {exact} (eps {eps})"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_rows_have_cosine_zero_and_overflow_falls_back_to_f64() {
        let s = Scorer::new(Metric::Cosine, &[1.0, 2.0]);
        assert_eq!(s.approx(&[0.0, 0.0], 0.0), (0.0, 0.0));
        let big = [3e38f32, 3e38];
        let d = Scorer::new(Metric::Dot, &big);
        let (key, eps) = d.approx(&big, f32::MAX);
        assert_eq!((key, eps), (d.exact_key(&big), 0.0));
        assert!(key.is_finite());
    }

    #[test]
    fn floor_reads_every_byte() {
        let zeros = vec![0u8; 1000];
        assert_eq!(read_floor(&zeros), 0);
        for at in [0, 7, 500, 999] {
            let mut one = zeros.clone();
            one[at] = 1;
            assert_ne!(read_floor(&one), 0, "byte {at}");
        }
    }
}
