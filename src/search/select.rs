//! Choosing the best rows: a bounded collector over the scan's float32 keys
//! and their error bounds, then exact order and maximal marginal relevance.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::kernel::{dot64, norm64};

/// An f64 ordered by `total_cmp` (keys are never NaN; this just makes it total).
#[derive(Clone, Copy, PartialEq)]
struct Key(f64);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Keeps every row that could still be among the `k` best by its exact key.
///
/// A row's exact key lies in `[key - eps, key + eps]`. The `k` best lower
/// bounds of rows that surely pass the threshold make a bar; a row whose
/// upper bound is below the bar cannot be in the top k, and is dropped. The
/// rows kept are few (the top k and whatever is within float32 error of it),
/// so the heap is of floats only and candidates are pruned in batches.
pub struct Collector<T> {
    k: usize,
    /// Exact keys below this fail the threshold (minus slack for rounding).
    threshold_key: f64,
    /// The k best lower bounds of rows that surely pass (a min-heap).
    lows: BinaryHeap<Reverse<Key>>,
    kept: Vec<(f64, T)>,
    prune_at: usize,
}

impl<T> Collector<T> {
    pub fn new(k: usize, threshold_key: f64) -> Collector<T> {
        Collector {
            k,
            threshold_key,
            lows: BinaryHeap::with_capacity(k + 1),
            kept: Vec::new(),
            prune_at: 2 * k + 1024,
        }
    }

    /// Rounding slack around the threshold (0 when there is none: -inf).
    fn slack(&self) -> f64 {
        if self.threshold_key.is_finite() {
            self.threshold_key.abs() * 1e-12
        } else {
            0.0
        }
    }

    /// The least upper bound a row needs to stay in the running.
    #[inline]
    fn bar(&self) -> f64 {
        let t = self.threshold_key - self.slack();
        match self.lows.peek() {
            Some(Reverse(Key(low))) if self.lows.len() >= self.k => low.max(t),
            _ => t,
        }
    }

    /// Offers a row; `item` is made only when the row is kept.
    #[inline]
    pub fn offer(&mut self, key: f64, eps: f64, item: impl FnOnce() -> T) {
        let upper = key + eps;
        if upper < self.bar() || self.k == 0 {
            return;
        }
        let lower = key - eps;
        if lower >= self.threshold_key + self.slack() {
            self.lows.push(Reverse(Key(lower)));
            if self.lows.len() > self.k {
                self.lows.pop();
            }
        }
        self.kept.push((upper, item()));
        if self.kept.len() >= self.prune_at {
            let bar = self.bar();
            self.kept.retain(|(u, _)| *u >= bar);
            self.prune_at = (2 * self.kept.len()).max(2 * self.k + 1024);
        }
    }

    /// The rows still in the running.
    pub fn finish(self) -> Vec<T> {
        let bar = self.bar();
        self.kept
            .into_iter()
            .filter(|(u, _)| *u >= bar)
            .map(|(_, t)| t)
            .collect()
    }
}

/// Best first: bigger key, then smaller id (bytes). `+ 0.0` makes -0 equal
/// to 0 (a sum or product of zeros may be either), so it ties by id too.
pub fn best_first(a: (f64, &str), b: (f64, &str)) -> Ordering {
    (b.0 + 0.0)
        .total_cmp(&(a.0 + 0.0))
        .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
}

/// One candidate of a maximal-marginal-relevance pick.
pub struct MmrCandidate<'a> {
    pub id: &'a str,
    pub vector: &'a [f32],
    /// Exact cosine similarity to the query.
    pub relevance: f64,
}

/// Picks `k` of `pool` greedily, each time the one maximising
/// `lambda * relevance - (1 - lambda) * (max cosine to those already picked)`
/// (0 before the first pick), ties by id. Returns indices in picking order.
pub fn mmr(pool: &[MmrCandidate<'_>], k: usize, lambda: f64) -> Vec<usize> {
    let norms: Vec<f64> = pool.iter().map(|c| norm64(c.vector)).collect();
    // The max cosine to those picked so far (which may be negative).
    let mut redundancy = vec![f64::NEG_INFINITY; pool.len()];
    let mut picked = vec![false; pool.len()];
    let mut order = Vec::with_capacity(k.min(pool.len()));
    while order.len() < k.min(pool.len()) {
        let mut best: Option<(f64, usize)> = None;
        for (i, c) in pool.iter().enumerate() {
            if picked[i] {
                continue;
            }
            let penalty = if order.is_empty() { 0.0 } else { redundancy[i] };
            let value = lambda * c.relevance - (1.0 - lambda) * penalty;
            let better = match best {
                None => true,
                Some((v, j)) => best_first((value, c.id), (v, pool[j].id)) == Ordering::Less,
            };
            if better {
                best = Some((value, i));
            }
        }
        let Some((_, chosen)) = best else { break };
        picked[chosen] = true;
        order.push(chosen);
        for (i, c) in pool.iter().enumerate() {
            if !picked[i] {
                let sim = if norms[i] == 0.0 || norms[chosen] == 0.0 {
                    0.0
                } else {
                    dot64(c.vector, pool[chosen].vector) / (norms[i] * norms[chosen])
                };
                redundancy[i] = redundancy[i].max(sim);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bounds, the collector keeps every row whose exact key
        /// could be in the top k among rows passing the threshold.
        #[test]
        fn keeps_every_possible_top_k_row(
            rows in proptest::collection::vec((-100i32..100, 0i32..5), 0..400),
            k in 1usize..20,
            threshold in proptest::option::of(-50i32..50),
        ) {
            let thr = threshold.map_or(f64::NEG_INFINITY, f64::from);
            let mut c = Collector::new(k, thr);
            for (i, &(exact, eps)) in rows.iter().enumerate() {
                // The approximate key sits anywhere within eps of the exact one.
                let key = f64::from(exact) + f64::from(eps) * if i % 2 == 0 { 0.5 } else { -1.0 };
                c.offer(key, f64::from(eps), || i);
            }
            let kept: std::collections::HashSet<usize> = c.finish().into_iter().collect();
            let mut passing: Vec<(i32, usize)> = rows.iter().enumerate()
                .filter(|(_, r)| f64::from(r.0) >= thr).map(|(i, r)| (r.0, i)).collect();
            passing.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            for &(_, i) in passing.iter().take(k) {
                prop_assert!(kept.contains(&i), "row {} dropped", i);
            }
        }
    }

    #[test]
    fn keeps_only_rows_near_the_top_k() {
        for threshold in [f64::NEG_INFINITY, -1e9] {
            let mut c = Collector::new(10, threshold);
            for i in 0..100_000u32 {
                c.offer(f64::from(i % 1000), 0.4, || i);
            }
            // The ten best are the 100 rows keyed 999 (ties), nothing else.
            assert_eq!(c.finish().len(), 100, "threshold {threshold}");
        }
    }

    #[test]
    fn mmr_trades_relevance_for_diversity() {
        let a = [1.0f32, 0.0];
        let a2 = [0.99f32, 0.01];
        let b = [0.0f32, 1.0];
        let pool = [
            MmrCandidate {
                id: "a",
                vector: &a,
                relevance: 0.9,
            },
            MmrCandidate {
                id: "a2",
                vector: &a2,
                relevance: 0.89,
            },
            MmrCandidate {
                id: "b",
                vector: &b,
                relevance: 0.5,
            },
        ];
        assert_eq!(mmr(&pool, 2, 1.0), vec![0, 1]);
        assert_eq!(mmr(&pool, 2, 0.5), vec![0, 2]);
        // lambda 0: nothing but diversity; the first pick is a tie, by id.
        assert_eq!(mmr(&pool, 3, 0.0)[0], 0);
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        // lambda 0 makes every first value 0 or -0 (negative relevance): all tie.
        let (a, b) = ([-1.0f32, 0.0], [1.0f32, 0.0]);
        let pool = [
            MmrCandidate {
                id: "a",
                vector: &a,
                relevance: -0.99,
            },
            MmrCandidate {
                id: "b",
                vector: &b,
                relevance: 0.99,
            },
        ];
        assert_eq!(mmr(&pool, 2, 0.0), vec![0, 1]);
        assert_eq!(best_first((-0.0, "a"), (0.0, "b")), Ordering::Less);
    }
}
