//! Similarity search: the exact, filtered top k over the embeddings.
//!
//! * Filter first: the domain/type/framework index lists are intersected
//!   (or, when most rows match, tested against bitmaps) and only those rows
//!   are scored, so a filtered search returns k results whenever k match.
//! * Tier 1 scans the mapped VECTORS section in place (`format::vectors`),
//!   checking each block's hash the first time it is touched, leaves out the
//!   rows the overlay changed, and scores the overlay's rows instead.
//! * Tier 2 streams the matching embeddings from SQLite.
//! * Both rank with the float32 kernel and its error bound (`kernel`), keep
//!   what could be in the top k (`select::Collector`), and rescore those in
//!   float64: the same answer on both tiers, ties by id.

pub mod kernel;
pub mod select;

use rusqlite::Connection;

use crate::db::queries;
use crate::error::{Error, Result};
use crate::format::record::PatternRef;
use crate::format::vectors::{as_f32s, norm, norm_of};
use crate::format::CacheView;
use crate::index::intersect;
use crate::model::{Pattern, PatternFilter};
use crate::overlay::Tier1;
use crate::validate;
use kernel::Scorer;
use select::{best_first, mmr, Collector, MmrCandidate};

/// Most results a search returns.
pub const MAX_K: usize = 1000;
pub const DEFAULT_K: usize = 10;
pub const DEFAULT_MMR_LAMBDA: f64 = 0.5;
/// Under MMR, the pool picked from is this many times k.
const MMR_POOL: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    #[default]
    Cosine,
    Dot,
    Euclidean,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "cosine" => Metric::Cosine,
            "dot" => Metric::Dot,
            "euclidean" => Metric::Euclidean,
            _ => return None,
        })
    }
}

/// Search options as a caller gives them (numbers as JavaScript has them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchInput {
    pub k: Option<f64>,
    pub threshold: Option<f64>,
    pub domain: Option<String>,
    pub pattern_type: Option<String>,
    pub framework: Option<String>,
    pub metric: Option<String>,
    pub use_mmr: Option<bool>,
    pub mmr_lambda: Option<f64>,
}

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub vector: Vec<f32>,
    pub k: usize,
    pub threshold: Option<f64>,
    pub filter: PatternFilter,
    pub metric: Metric,
    /// `Some(lambda)` under MMR.
    pub mmr_lambda: Option<f64>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

impl SearchQuery {
    /// Checks everything that does not need the data: the vector's values,
    /// k, the threshold, the metric, lambda and the filter fields.
    pub fn new(vector: Vec<f32>, input: &SearchInput) -> Result<SearchQuery> {
        if vector.is_empty() {
            return Err(invalid("searchSimilar: the embedding is empty"));
        }
        if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
            return Err(invalid(format!(
                "searchSimilar: embedding[{i}] is {}, not a finite number",
                vector[i]
            )));
        }
        let k = match input.k {
            None => DEFAULT_K,
            Some(k) if k.fract() == 0.0 && (1.0..=MAX_K as f64).contains(&k) => k as usize,
            Some(k) => {
                return Err(invalid(format!(
                    "searchSimilar: k must be an integer from 1 to {MAX_K}, got {k}"
                )))
            }
        };
        if let Some(t) = input.threshold.filter(|t| !t.is_finite()) {
            return Err(invalid(format!(
                "searchSimilar: threshold must be a finite number, got {t}"
            )));
        }
        let metric = match input.metric.as_deref() {
            None => Metric::default(),
            Some(m) => Metric::parse(m).ok_or_else(|| {
                invalid(format!(
                    "searchSimilar: unknown metric '{m}' (expected 'cosine', 'dot' or 'euclidean')"
                ))
            })?,
        };
        let lambda = input.mmr_lambda.unwrap_or(DEFAULT_MMR_LAMBDA);
        if !(0.0..=1.0).contains(&lambda) {
            return Err(invalid(format!(
                "searchSimilar: mmrLambda must be a number from 0 to 1, got {lambda}"
            )));
        }
        let filter = PatternFilter {
            domain: input.domain.clone(),
            pattern_type: input.pattern_type.clone(),
            framework: input.framework.clone(),
            limit: None,
        };
        validate::filter(&filter)?;
        if metric == Metric::Cosine && vector.iter().all(|&x| x == 0.0) {
            return Err(invalid(
                "searchSimilar: a zero vector has no direction, so no cosine similarity (use 'dot' or 'euclidean')",
            ));
        }
        Ok(SearchQuery {
            vector,
            k,
            threshold: input.threshold,
            filter,
            metric,
            mmr_lambda: input.use_mmr.unwrap_or(false).then_some(lambda),
        })
    }

    /// How many rows the exact phase ranks: k, or the MMR pool.
    fn pool(&self) -> usize {
        match self.mmr_lambda {
            Some(_) => self.k * MMR_POOL,
            None => self.k,
        }
    }

    /// `Ok(false)`: nothing is stored, so the answer is empty.
    fn check_dimension(&self, stored: Option<usize>) -> Result<bool> {
        match stored {
            None => Ok(false),
            Some(d) if d == self.vector.len() => Ok(true),
            Some(d) => Err(invalid(format!(
                "searchSimilar: the embedding has {} dimensions; the database holds {d}-dimensional embeddings",
                self.vector.len()
            ))),
        }
    }
}

/// Ranks candidates exactly and picks the results: (candidate, score).
fn pick<C>(
    q: &SearchQuery,
    scorer: &Scorer<'_>,
    candidates: Vec<C>,
    id: impl Fn(&C) -> &str,
    vector: impl Fn(&C) -> Vec<f32>,
) -> Vec<(C, f64)> {
    let mut ranked: Vec<(f64, Vec<f32>, C)> = candidates
        .into_iter()
        .map(|c| {
            let v = vector(&c);
            (scorer.exact_key(&v), v, c)
        })
        .filter(|(key, _, _)| scorer.passes(*key, q.threshold))
        .collect();
    ranked.sort_by(|a, b| best_first((a.0, id(&a.2)), (b.0, id(&b.2))));
    ranked.truncate(q.pool());
    let order: Vec<usize> = match q.mmr_lambda {
        None => (0..ranked.len()).collect(),
        Some(lambda) => {
            let pool: Vec<MmrCandidate<'_>> = ranked
                .iter()
                .map(|(key, v, c)| MmrCandidate {
                    id: id(c),
                    vector: v,
                    relevance: match q.metric {
                        Metric::Cosine => *key,
                        _ => kernel::cosine(&q.vector, scorer.query_norm, v),
                    },
                })
                .collect();
            mmr(&pool, q.k, lambda)
        }
    };
    let mut slots: Vec<Option<(f64, C)>> = ranked.into_iter().map(|(k, _, c)| Some((k, c))).collect();
    order
        .into_iter()
        .filter_map(|i| slots[i].take())
        .map(|(key, c)| (c, scorer.score(key)))
        .collect()
}

/// A row of the file or a changed pattern of the overlay.
enum Candidate<'a> {
    Row(u32),
    Changed(&'a Pattern),
}

/// The search on tier 1: the file's rows (less those the overlay changed)
/// and the overlay's live rows, filtered first.
pub fn on_tier1<'a>(t: &Tier1<'a>, q: &SearchQuery) -> Result<Vec<(PatternRef<'a>, f64)>> {
    let view: &'a CacheView = t.view;
    let changed: Vec<&'a Pattern> = match t.overlay {
        Some(o) => o.patterns.values().filter_map(|p| p.as_deref()).collect(),
        None => Vec::new(),
    };
    let stored_dim = match view.len() {
        0 => changed.first().map(|p| p.embedding.len()),
        _ => Some(view.header().embedding_dim as usize),
    };
    if !q.check_dimension(stored_dim)? {
        return Ok(Vec::new());
    }
    let scorer = Scorer::new(q.metric, &q.vector);
    let mut collector = Collector::new(q.pool(), scorer.threshold_key(q.threshold));
    let masked = t.overlay.map(|o| {
        let mut bits = Bitmap::new(view.len() as usize);
        for id in o.patterns.keys() {
            if let Some(ordinal) = view.find(id) {
                bits.set(ordinal);
            }
        }
        bits
    });
    scan_file(view, &q.filter, masked.as_ref(), |ordinal, row, norm| {
        let (key, eps) = scorer.approx(row, norm);
        collector.offer(key, eps, || Candidate::Row(ordinal));
    })?;
    for p in changed.into_iter().filter(|p| q.filter.matches(p)) {
        let (key, eps) = scorer.approx(&p.embedding, norm(p.embedding.iter().copied()));
        collector.offer(key, eps, || Candidate::Changed(p));
    }
    let bytes = view.bytes();
    let picked = pick(
        q,
        &scorer,
        collector.finish(),
        |c| match c {
            Candidate::Row(o) => view.id_at(*o),
            Candidate::Changed(p) => &p.id,
        },
        |c| match c {
            Candidate::Row(o) => {
                let mut scratch = Vec::new();
                as_f32s(view.vectors().row_le(bytes, *o), &mut scratch).to_vec()
            }
            Candidate::Changed(p) => p.embedding.clone(),
        },
    );
    picked
        .into_iter()
        .map(|(c, score)| match c {
            Candidate::Row(o) => t.file_record(o).map(|p| (p, score)),
            Candidate::Changed(p) => Ok((p.as_ref(), score)),
        })
        .collect()
}

/// At most how many floats a search on `t` reads (cheap: no scan).
pub fn scan_floats(t: &Tier1<'_>) -> usize {
    let rows = t.view.len() as usize + t.overlay.map_or(0, |o| o.patterns.len());
    rows.saturating_mul(t.view.header().embedding_dim.max(1) as usize)
}

/// Calls `each(ordinal, row, norm)` for every row matching the filter and
/// not masked, in ordinal order, after checking the hash of its block.
fn scan_file(
    view: &CacheView,
    filter: &PatternFilter,
    masked: Option<&Bitmap>,
    mut each: impl FnMut(u32, &[f32], f32),
) -> Result<()> {
    let vectors = view.vectors();
    let bytes = view.bytes();
    let block_rows = vectors.layout.block_rows.max(1);
    let mut checked_block = usize::MAX;
    let mut scratch = Vec::new();
    let mut visit = |o: u32| -> Result<()> {
        let block = o as usize / block_rows;
        if block != checked_block {
            vectors.verify_block(bytes, block)?;
            checked_block = block;
        }
        if masked.is_some_and(|m| m.get(o)) {
            return Ok(());
        }
        let row = as_f32s(vectors.row_le(bytes, o), &mut scratch);
        each(o, row, vectors.norm(bytes, o));
        Ok(())
    };
    let mut lists = view.filter_lists(filter);
    lists.sort_by_key(|l| l.len());
    match lists.as_slice() {
        [] => (0..view.len()).try_for_each(&mut visit),
        [only] => only.iter().try_for_each(|&o| visit(o)),
        // Most rows match: a bitmap test per row beats merging long lists.
        [shortest, rest @ ..] if shortest.len() * 16 >= view.len() as usize => {
            let maps: Vec<Bitmap> = rest.iter().map(|l| Bitmap::of(view.len() as usize, l)).collect();
            shortest
                .iter()
                .filter(|&&o| maps.iter().all(|m| m.get(o)))
                .try_for_each(|&o| visit(o))
        }
        _ => intersect(&lists, usize::MAX).into_iter().try_for_each(&mut visit),
    }
}

/// The search on tier 2: every matching embedding streamed from SQLite.
pub fn on_sqlite(conn: &Connection, q: &SearchQuery) -> Result<Vec<(Pattern, f64)>> {
    if !q.check_dimension(queries::embedding_dim(conn)?)? {
        return Ok(Vec::new());
    }
    let scorer = Scorer::new(q.metric, &q.vector);
    let mut collector = Collector::new(q.pool(), scorer.threshold_key(q.threshold));
    let mut scratch = Vec::new();
    queries::for_each_embedding(conn, &q.filter, |id, le| {
        let row = as_f32s(le, &mut scratch);
        if row.len() != q.vector.len() {
            return Err(Error::Internal(format!(
                "pattern '{id}' has another embedding dimension"
            )));
        }
        let (key, eps) = scorer.approx(row, norm_of(&crate::format::record::EmbeddingRef::F32(row)));
        collector.offer(key, eps, || (id.to_owned(), row.to_vec()));
        Ok(())
    })?;
    let picked = pick(q, &scorer, collector.finish(), |c| &c.0, |c| c.1.clone());
    picked
        .into_iter()
        .map(|((id, _), score)| match queries::get_pattern(conn, &id)? {
            Some(p) => Ok((p, score)),
            None => Err(Error::Internal(format!(
                "pattern '{id}' vanished inside a read transaction"
            ))),
        })
        .collect()
}

/// One bit per ordinal.
struct Bitmap(Vec<u64>);

impl Bitmap {
    fn new(len: usize) -> Bitmap {
        Bitmap(vec![0; len.div_ceil(64)])
    }

    fn of(len: usize, ordinals: &[u32]) -> Bitmap {
        let mut b = Bitmap::new(len);
        for &o in ordinals {
            b.set(o);
        }
        b
    }

    fn set(&mut self, o: u32) {
        if let Some(w) = self.0.get_mut(o as usize / 64) {
            *w |= 1 << (o % 64);
        }
    }

    #[inline]
    fn get(&self, o: u32) -> bool {
        self.0.get(o as usize / 64).is_some_and(|w| w & (1 << (o % 64)) != 0)
    }
}
