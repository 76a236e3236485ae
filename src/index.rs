//! The domain/type/framework indexes: name -> ordinals of the records that
//! have it. Records are stored in id order, so an ascending ordinal list is
//! also in id order, and intersecting lists keeps that order. A fourth index,
//! by verdict, is not a filter: it lets `getStats` count without decoding.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::model::{IndexKind, Pattern};

type Section = Vec<(String, Vec<u32>)>;

/// Position of the verdict index after the three `IndexKind`s.
const VERDICT: usize = 3;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Indexes {
    by_kind: [HashMap<String, Vec<u32>>; 4],
}

impl Indexes {
    /// Builds the indexes over patterns given in id order (ordinal = position).
    pub fn build<'a>(patterns: impl IntoIterator<Item = &'a Pattern>) -> Indexes {
        let mut builder = IndexBuilder::default();
        for (ordinal, p) in patterns.into_iter().enumerate() {
            builder.add(
                ordinal as u32,
                &p.domain,
                &p.pattern_type,
                &p.framework,
                p.verdict.as_str(),
            );
        }
        builder.finish()
    }

    pub fn get(&self, kind: IndexKind, name: &str) -> &[u32] {
        self.by_kind[kind as usize].get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// How many records each name of `kind` files.
    pub fn counts(&self, kind: IndexKind) -> impl Iterator<Item = (&str, usize)> {
        self.by_kind[kind as usize].iter().map(|(k, v)| (k.as_str(), v.len()))
    }

    /// How many records have each verdict (only verdicts some record has).
    pub fn verdict_counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.by_kind[VERDICT].iter().map(|(k, v)| (k.as_str(), v.len()))
    }

    /// Names with their ordinal lists, names in byte order: the on-disk form.
    pub fn as_sections(&self) -> (Section, Section, Section, Section) {
        let sorted = |m: &HashMap<String, Vec<u32>>| -> Section {
            let ordered: BTreeMap<&String, &Vec<u32>> = m.iter().collect();
            ordered.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        (
            sorted(&self.by_kind[0]),
            sorted(&self.by_kind[1]),
            sorted(&self.by_kind[2]),
            sorted(&self.by_kind[VERDICT]),
        )
    }

    /// Takes the on-disk form and checks what a reader relies on: names are
    /// unique, every ordinal is below `count`, each list ascends strictly,
    /// and each kind files every record exactly once.
    pub fn from_sections((d, t, f, v): (Section, Section, Section, Section), count: u64) -> Result<Indexes> {
        for (k, section) in [&d, &t, &f, &v].into_iter().enumerate() {
            if section.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(Error::CacheCorrupt(format!(
                    "index {k} names are not strictly ascending"
                )));
            }
        }
        let ix = Indexes {
            by_kind: [
                d.into_iter().collect(),
                t.into_iter().collect(),
                f.into_iter().collect(),
                v.into_iter().collect(),
            ],
        };
        for (k, map) in ix.by_kind.iter().enumerate() {
            let mut filed = vec![false; usize::try_from(count).unwrap_or(0)];
            let mut total: u64 = 0;
            for (name, list) in map {
                if list.is_empty() || list.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::CacheCorrupt(format!(
                        "index {k} list for '{name}' is not ascending"
                    )));
                }
                if list.last().is_some_and(|&o| u64::from(o) >= count) {
                    return Err(Error::CacheCorrupt(format!(
                        "index {k} list for '{name}' points past the records"
                    )));
                }
                total += list.len() as u64;
                for &o in list {
                    // In range: the largest ordinal was checked just above.
                    if std::mem::replace(&mut filed[o as usize], true) {
                        return Err(Error::CacheCorrupt(format!("index {k} files record {o} twice")));
                    }
                }
            }
            if total != count {
                return Err(Error::CacheCorrupt(format!(
                    "index {k} files {total} records, the file holds {count}"
                )));
            }
        }
        Ok(ix)
    }
}

/// Adds records one at a time (as a streaming build sees them).
#[derive(Debug, Default)]
pub struct IndexBuilder {
    by_kind: [HashMap<String, Vec<u32>>; 4],
}

impl IndexBuilder {
    pub fn add(&mut self, ordinal: u32, domain: &str, pattern_type: &str, framework: &str, verdict: &str) {
        for (kind, key) in [
            (IndexKind::Domain as usize, domain),
            (IndexKind::Type as usize, pattern_type),
            (IndexKind::Framework as usize, framework),
            (VERDICT, verdict),
        ] {
            let map = &mut self.by_kind[kind];
            match map.get_mut(key) {
                Some(list) => list.push(ordinal),
                None => {
                    map.insert(key.to_owned(), vec![ordinal]);
                }
            }
        }
    }

    pub fn finish(self) -> Indexes {
        Indexes { by_kind: self.by_kind }
    }
}

/// Intersection of ascending lists, ascending, at most `limit` long.
pub fn intersect(lists: &[&[u32]], limit: usize) -> Vec<u32> {
    let Some((first, rest)) = lists.split_first() else {
        return Vec::new();
    };
    let mut cursors = vec![0usize; rest.len()];
    let mut out = Vec::new();
    'candidates: for &candidate in first.iter() {
        if out.len() >= limit {
            break;
        }
        for (list, cursor) in rest.iter().zip(cursors.iter_mut()) {
            // Lists ascend, so each cursor only moves forward.
            *cursor += list[*cursor..].partition_point(|&x| x < candidate);
            if list.get(*cursor) != Some(&candidate) {
                continue 'candidates;
            }
        }
        out.push(candidate);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn intersect_basic() {
        assert_eq!(intersect(&[&[1, 3, 5, 7], &[3, 4, 5], &[0, 5, 9]], usize::MAX), vec![5]);
        assert_eq!(intersect(&[&[1, 2, 3]], 2), vec![1, 2]);
        assert!(intersect(&[], 10).is_empty());
    }

    fn section(pairs: &[(&str, &[u32])]) -> Section {
        pairs.iter().map(|(n, l)| (n.to_string(), l.to_vec())).collect()
    }

    #[test]
    fn from_sections_checks_each_record_is_filed_once_under_sorted_names() {
        let ok = section(&[("a", &[0]), ("b", &[1])]);
        assert!(Indexes::from_sections((ok.clone(), ok.clone(), ok.clone(), ok.clone()), 2).is_ok());
        let twice = section(&[("a", &[0]), ("b", &[0])]);
        let unsorted = section(&[("b", &[1]), ("a", &[0])]);
        let repeated = section(&[("a", &[0]), ("a", &[1])]);
        let past_end = section(&[("a", &[0]), ("b", &[2])]);
        let missing = section(&[("a", &[0])]);
        for bad in [twice, unsorted, repeated, past_end, missing] {
            let err = Indexes::from_sections((ok.clone(), bad.clone(), ok.clone(), ok.clone()), 2).unwrap_err();
            assert_eq!(err.code(), "CACHE_CORRUPT");
            let err = Indexes::from_sections((ok.clone(), ok.clone(), ok.clone(), bad), 2).unwrap_err();
            assert_eq!(err.code(), "CACHE_CORRUPT");
        }
    }

    proptest! {
        #[test]
        fn intersect_matches_set_model(
            a in proptest::collection::btree_set(0u32..200, 0..80),
            b in proptest::collection::btree_set(0u32..200, 0..80),
            c in proptest::collection::btree_set(0u32..200, 0..80),
            limit in 0usize..100,
        ) {
            let (va, vb, vc): (Vec<u32>, Vec<u32>, Vec<u32>) =
                (a.iter().copied().collect(), b.iter().copied().collect(), c.iter().copied().collect());
            let expected: Vec<u32> = a.iter().copied()
                .filter(|x| b.contains(x) && c.contains(x)).take(limit).collect();
            prop_assert_eq!(intersect(&[&va, &vb, &vc], limit), expected);
        }
    }
}
