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
use crate::model::{AgentConfig, IndexKind, Pattern, PatternFilter};

/// The rows that changed after `base` (the file's generation), as of `generation`.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub base: u64,
    pub generation: u64,
    /// Changed ids in id order; `None`: deleted. Shared, so that advancing
    /// an overlay by one change copies pointers, not patterns.
    pub patterns: BTreeMap<String, Option<Arc<Pattern>>>,
    pub configs: HashMap<String, Option<AgentConfig>>,
}

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
        next
    }

    pub fn len(&self) -> usize {
        self.patterns.len() + self.configs.len()
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

fn matches(p: &Pattern, f: &PatternFilter) -> bool {
    f.domain.as_ref().is_none_or(|d| *d == p.domain)
        && f.pattern_type.as_ref().is_none_or(|t| *t == p.pattern_type)
        && f.framework.as_ref().is_none_or(|w| *w == p.framework)
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
            Some(o) => self.view.record_ref(o).map(Some),
            None => Ok(None),
        }
    }

    pub fn config(&self, agent_id: &str) -> Option<AgentConfig> {
        match self.overlay.and_then(|o| o.configs.get(agent_id)) {
            Some(changed) => changed.clone(),
            None => self.view.config(agent_id),
        }
    }

    pub fn by_index(&self, kind: IndexKind, name: &str) -> Result<Vec<Pattern>> {
        let mut filter = PatternFilter::default();
        match kind {
            IndexKind::Domain => filter.domain = Some(name.to_owned()),
            IndexKind::Type => filter.pattern_type = Some(name.to_owned()),
            IndexKind::Framework => filter.framework = Some(name.to_owned()),
        }
        self.query(&filter)
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
        let view = self.view;
        let Some(overlay) = self.overlay.filter(|o| !o.patterns.is_empty()) else {
            return view
                .query_ordinals(filter)
                .iter()
                .map(|&o| view.record_ref(o))
                .collect();
        };
        let limit = filter.limit.unwrap_or(usize::MAX);
        let unlimited = PatternFilter {
            limit: None,
            ..filter.clone()
        };
        let ordinals = view.query_ordinals(&unlimited);
        let mut from_file = ordinals
            .iter()
            .map(|&o| (o, view.id_at(o)))
            .filter(|(_, id)| !overlay.patterns.contains_key(*id))
            .peekable();
        let mut changed = overlay
            .patterns
            .values()
            .filter_map(|p| p.as_deref().filter(|p| matches(p, filter)))
            .peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let take_file = match (from_file.peek(), changed.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((_, file_id)), Some(p)) => *file_id < p.id.as_str(),
            };
            if take_file {
                if let Some((o, _)) = from_file.next() {
                    out.push(view.record_ref(o)?);
                }
            } else if let Some(p) = changed.next() {
                out.push(p.as_ref());
            }
        }
        Ok(out)
    }
}
