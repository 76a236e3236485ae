//! Serving from a cache file that is behind the database by a few changes.
//!
//! An `Overlay` holds the rows that changed after the file's generation (read
//! from the database's change log). `Tier1` answers every query from the
//! file amended by the overlay: a changed id is taken from the overlay, every
//! other id from the file, and lists are merged in id order. So one write
//! does not send every read to SQLite while a rebuild is pending.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::db::queries::Changes;
use crate::error::Result;
use crate::format::record::PatternRef;
use crate::format::CacheView;
use crate::index::intersect;
use crate::model::{AgentConfig, Counters, IndexKind, Pattern, PatternFilter, Stats};

/// The rows that changed after `base` (the file's generation), as of `generation`.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub base: u64,
    pub generation: u64,
    /// Changed ids in id order; `None`: deleted. Shared, so that advancing
    /// an overlay by one change copies pointers, not patterns.
    pub patterns: BTreeMap<String, Option<Arc<Pattern>>>,
    pub configs: HashMap<String, Option<AgentConfig>>,
    /// The counters of patterns that were only used (not otherwise changed)
    /// since `base`, in layers (newest last) so that advancing by a few uses
    /// copies no map; an id in `patterns` is never looked up here.
    counters: Vec<Arc<HashMap<String, Counters>>>,
    counter_count: usize,
}

/// At most this many counter layers (they are merged geometrically before).
const MAX_COUNTER_LAYERS: usize = 24;

impl Overlay {
    pub fn new(base: u64) -> Overlay {
        Overlay {
            base,
            generation: base,
            ..Overlay::default()
        }
    }

    /// This overlay with later changes applied on top.
    pub fn advanced(&self, changes: Changes) -> Overlay {
        let mut next = self.clone();
        next.generation = changes.generation.max(self.generation);
        next.patterns
            .extend(changes.patterns.into_iter().map(|(id, p)| (id, p.map(Arc::new))));
        next.configs.extend(changes.configs);
        let mut layer = HashMap::new();
        for (id, c) in changes.counters {
            match next.patterns.get_mut(&id) {
                // A changed row's later uses: its counters are newer than the row's.
                Some(Some(p)) => {
                    let mut used = Pattern::clone(p);
                    used.usage_count = c.usage_count;
                    used.success_count = c.success_count;
                    used.last_used = c.last_used;
                    *p = Arc::new(used);
                }
                Some(None) => {}
                None => {
                    layer.insert(id, c);
                }
            }
        }
        if !layer.is_empty() {
            next.counter_count += layer.len();
            next.counters.push(Arc::new(layer));
        }
        // Layers stay geometric (each at least twice the next newer), as in a
        // log-structured merge: an entry is copied O(log n) times in all, and
        // a lookup visits O(log n) layers.
        while let [.., older, newer] = next.counters.as_slice() {
            if older.len() > 2 * newer.len() && next.counters.len() <= MAX_COUNTER_LAYERS {
                break;
            }
            let (Some(newer), Some(older)) = (next.counters.pop(), next.counters.pop()) else {
                break;
            };
            let mut merged = HashMap::clone(&older);
            merged.extend(newer.iter().map(|(k, v)| (k.clone(), *v)));
            next.counter_count = next.counter_count - older.len() - newer.len() + merged.len();
            next.counters.push(Arc::new(merged));
        }
        next
    }

    /// Changed rows and configs (what `MAX_OVERLAY` bounds).
    /// Whether this overlay amends the file of generation `base` up to
    /// `known` (the one test every use of an overlay makes).
    pub fn brings(&self, base: u64, known: u64) -> bool {
        self.base == base && self.generation >= known
    }

    pub fn len(&self) -> usize {
        self.patterns.len() + self.configs.len()
    }

    /// Patterns whose counters alone changed (at most; layers may repeat an id).
    pub fn counter_len(&self) -> usize {
        self.counter_count
    }

    /// The newest counters of a pattern that was only used since `base`.
    pub fn counters(&self, id: &str) -> Option<Counters> {
        self.counters.iter().rev().find_map(|l| l.get(id).copied())
    }

    /// A file record with its newer counters, if it was used since.
    pub fn apply_counters<'a>(&self, mut p: PatternRef<'a>) -> PatternRef<'a> {
        if self.counter_count > 0 {
            if let Some(c) = self.counters(p.id) {
                p.usage_count = c.usage_count;
                p.success_count = c.success_count;
                p.last_used = c.last_used;
            }
        }
        p
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tier 1 as reads see it: a cache file, amended when it is behind.
pub struct Tier1<'a> {
    pub view: &'a CacheView,
    pub overlay: Option<&'a Overlay>,
}

impl<'a> Tier1<'a> {
    pub fn get(&self, id: &str) -> Result<Option<Pattern>> {
        Ok(self.get_ref(id)?.map(|p| p.to_owned()))
    }

    /// The pattern, borrowed from the file or the overlay.
    pub fn get_ref(&self, id: &str) -> Result<Option<PatternRef<'a>>> {
        if let Some(changed) = self.overlay.and_then(|o| o.patterns.get(id)) {
            return Ok(changed.as_deref().map(Pattern::as_ref));
        }
        match self.view.find(id) {
            Some(o) => self.file_record(o).map(Some),
            None => Ok(None),
        }
    }

    /// Record `o` of the file, with its newer counters if it was used since.
    pub fn file_record(&self, o: u32) -> Result<PatternRef<'a>> {
        let p = self.view.record_ref(o)?;
        Ok(match self.overlay {
            Some(overlay) => overlay.apply_counters(p),
            None => p,
        })
    }

    pub fn config(&self, agent_id: &str) -> Option<AgentConfig> {
        match self.overlay.and_then(|o| o.configs.get(agent_id)) {
            Some(changed) => changed.clone(),
            None => self.view.config(agent_id),
        }
    }

    pub fn by_index(&self, kind: IndexKind, name: &str) -> Result<Vec<Pattern>> {
        self.query(&PatternFilter::on(kind, name))
    }

    /// At most how many patterns `query(filter)` returns (cheap: no decoding).
    pub fn size_hint(&self, filter: &PatternFilter) -> usize {
        let unlimited = PatternFilter {
            limit: None,
            ..filter.clone()
        };
        let upper = self.view.query_ordinals(&unlimited).len() + self.overlay.map_or(0, Overlay::len);
        upper.min(filter.limit.unwrap_or(usize::MAX))
    }

    pub fn query(&self, filter: &PatternFilter) -> Result<Vec<Pattern>> {
        Ok(self.query_refs(filter)?.iter().map(PatternRef::to_owned).collect())
    }

    /// The file's matches minus changed ids, merged in id order with the
    /// changed rows that match, cut at the limit; borrowed.
    pub fn query_refs(&self, filter: &PatternFilter) -> Result<Vec<PatternRef<'a>>> {
        self.page(filter, None, filter.limit.unwrap_or(usize::MAX))
    }

    /// Up to `limit` patterns matching the filter whose ids come after
    /// `after`, in id order: keyset paging, reading only what the page needs.
    pub fn page(&self, filter: &PatternFilter, after: Option<&str>, limit: usize) -> Result<Vec<PatternRef<'a>>> {
        let view = self.view;
        let changed = self.overlay.map(|o| &o.patterns);
        let start = after.map_or(0, |a| view.first_after(a));
        let mut lists: Vec<&[u32]> = view
            .filter_lists(filter)
            .into_iter()
            .map(|l| &l[l.partition_point(|&o| o < start)..])
            .collect();
        lists.sort_by_key(|l| l.len());
        // Enough file rows that the page fills even if every changed id is among them.
        let want = limit.saturating_add(changed.map_or(0, |c| c.len()));
        let ordinals: Box<dyn Iterator<Item = u32>> = match lists.as_slice() {
            [] => Box::new(start..view.len()),
            [only] => Box::new(only.iter().copied()),
            _ => Box::new(intersect(&lists, want).into_iter()),
        };
        let mut from_file = ordinals
            .map(|o| (o, view.id_at(o)))
            .filter(|(_, id)| changed.is_none_or(|c| !c.contains_key(*id)))
            .peekable();
        let lower = match after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Unbounded,
        };
        let mut from_overlay = changed
            .into_iter()
            .flat_map(|c| c.range::<str, _>((lower, std::ops::Bound::Unbounded)))
            .filter_map(|(_, p)| p.as_deref().filter(|p| filter.matches(p)))
            .peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let take_file = match (from_file.peek(), from_overlay.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((_, file_id)), Some(p)) => *file_id < p.id.as_str(),
            };
            if take_file {
                if let Some((o, _)) = from_file.next() {
                    out.push(self.file_record(o)?);
                }
            } else if let Some(p) = from_overlay.next() {
                out.push(p.as_ref());
            }
        }
        Ok(out)
    }

    /// Counts from the file's indexes, amended by the changed rows.
    pub fn stats(&self) -> Result<Stats> {
        let view = self.view;
        let ix = view.indexes();
        let mut s = Stats {
            pattern_count: u64::from(view.len()),
            ..Stats::with_every_verdict()
        };
        for (kind, map) in [
            (IndexKind::Domain, &mut s.by_domain),
            (IndexKind::Type, &mut s.by_type),
            (IndexKind::Framework, &mut s.by_framework),
        ] {
            map.extend(ix.counts(kind).map(|(k, n)| (k.to_owned(), n as u64)));
        }
        s.by_verdict
            .extend(ix.verdict_counts().map(|(k, n)| (k.to_owned(), n as u64)));
        let mut configs = view.configs().count() as u64;
        let mut dimension = (!view.is_empty()).then_some(view.header().embedding_dim);
        if let Some(o) = self.overlay {
            for (id, now) in &o.patterns {
                if let Some(ordinal) = view.find(id) {
                    let old = view.record_ref(ordinal)?;
                    s.pattern_count -= 1;
                    for (map, key) in [
                        (&mut s.by_domain, old.domain),
                        (&mut s.by_type, old.pattern_type),
                        (&mut s.by_framework, old.framework),
                        (&mut s.by_verdict, old.verdict.as_str()),
                    ] {
                        if let Some(n) = map.get_mut(key) {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
                if let Some(p) = now {
                    s.pattern_count += 1;
                    dimension = dimension.or(Some(p.embedding.len() as u32));
                    for (map, key) in [
                        (&mut s.by_domain, &p.domain),
                        (&mut s.by_type, &p.pattern_type),
                        (&mut s.by_framework, &p.framework),
                    ] {
                        *map.entry(key.clone()).or_default() += 1;
                    }
                    *s.by_verdict.entry(p.verdict.as_str().to_owned()).or_default() += 1;
                }
            }
            for (id, now) in &o.configs {
                configs = configs - u64::from(view.config(id).is_some()) + u64::from(now.is_some());
            }
        }
        for map in [&mut s.by_domain, &mut s.by_type, &mut s.by_framework] {
            map.retain(|_, n| *n > 0);
        }
        s.agent_config_count = configs;
        s.dimension = if s.pattern_count == 0 {
            0
        } else {
            dimension.unwrap_or(0)
        };
        Ok(s)
    }

    /// Every agent config, in agent id order (bytes).
    pub fn configs(&self) -> Vec<AgentConfig> {
        let mut all: BTreeMap<&str, &AgentConfig> = self.view.configs().map(|c| (c.agent_id.as_str(), c)).collect();
        if let Some(o) = self.overlay {
            for (id, now) in &o.configs {
                match now {
                    Some(c) => all.insert(id.as_str(), c),
                    None => all.remove(id.as_str()),
                };
            }
        }
        all.into_values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(n: i64) -> Counters {
        Counters {
            usage_count: n,
            success_count: n / 2,
            last_used: Some(n),
        }
    }

    /// Thousands of refreshes of a few uses each: every lookup is the newest
    /// value, and the layers stay few (geometric), so refreshes stay cheap.
    #[test]
    fn counter_layers_answer_the_newest_value_and_stay_few() {
        let mut overlay = Overlay::new(0);
        let mut model: HashMap<String, Counters> = HashMap::new();
        let mut seed = 7u64;
        for round in 0..3000i64 {
            let mut changes = Changes {
                generation: round as u64 + 1,
                ..Changes::default()
            };
            for _ in 0..3 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let id = format!("p{}", (seed >> 33) % 5000);
                changes.counters.push((id.clone(), counters(round)));
                model.insert(id, counters(round));
            }
            overlay = overlay.advanced(changes);
            assert!(
                overlay.counters.len() <= 16,
                "{} layers at round {round}",
                overlay.counters.len()
            );
        }
        for (id, c) in &model {
            assert_eq!(overlay.counters(id), Some(*c), "{id}");
        }
        assert_eq!(overlay.counters("absent"), None);
        assert!(overlay.counter_len() >= model.len());
    }

    #[test]
    fn an_overlay_brings_only_its_own_base_and_only_as_far_as_it_reached() {
        let at_7 = Overlay::new(3).advanced(Changes {
            generation: 7,
            ..Changes::default()
        });
        assert!(at_7.brings(3, 7));
        assert!(at_7.brings(3, 5), "a known generation it passed");
        assert!(!at_7.brings(3, 8), "one it has not reached");
        assert!(!at_7.brings(4, 7), "another file's");
        assert!(Overlay::new(9).brings(9, 9));
    }
}
