//! The write calls: validated whole, then one `commit` that routes the
//! `Write` to the local database (`db::apply`) or, with a remote, to the
//! bank (`Remote::write`, applied to the replica before it returns); then
//! what the commit means for tier 1. Also the remote's other side here: the
//! syncer's passes and `syncRemote`, which move the replica like a write.

use std::sync::atomic::Ordering;

use super::{Inner, PatternCache};
use crate::clock::now_ms;
use crate::db::{self, Database, Generation, Write};
use crate::error::{Error, Result};
use crate::model::{AgentConfigInput, CacheEvent, PatternInput, Trigger, UsageInput};
use crate::remote::replica::{self, SyncOutcome};
use crate::remote::syncer;
use crate::validate;

impl PatternCache {
    /// Records one use: false (nothing changed) when there is no such pattern.
    pub fn record_usage(&self, input: &UsageInput) -> Result<bool> {
        validate::id_argument(&input.id)?;
        let at = validate::usage_at(input.at, now_ms())?;
        let uses = [(input.id.as_str(), input.success, at)];
        self.inner()?.commit(Write::RecordUsages {
            uses: &uses,
            strict: false,
        })
    }

    /// Records many uses in one transaction; an unknown id writes nothing.
    pub fn record_usages(&self, inputs: &[UsageInput]) -> Result<()> {
        let inner = self.inner()?;
        let now = now_ms();
        let checked = inputs
            .iter()
            .map(|u| {
                validate::id_argument(&u.id)?;
                Ok((u.id.as_str(), u.success, validate::usage_at(u.at, now)?))
            })
            .collect::<Result<Vec<_>>>()?;
        if checked.is_empty() {
            return Ok(());
        }
        inner
            .commit(Write::RecordUsages {
                uses: &checked,
                strict: true,
            })
            .map(|_| ())
    }

    /// Validates the whole batch, then writes it in one transaction.
    pub fn store_patterns(&self, inputs: &[PatternInput]) -> Result<()> {
        let inner = self.inner()?;
        let validated = validate::patterns(inputs, now_ms(), None)?;
        if validated.is_empty() {
            return Ok(());
        }
        inner.commit(Write::StorePatterns(&validated)).map(|_| ())
    }

    pub fn delete_pattern(&self, id: &str) -> Result<bool> {
        validate::id_argument(id)?;
        self.inner()?.commit(Write::DeletePattern(id))
    }

    pub fn store_agent_config(&self, input: &AgentConfigInput) -> Result<()> {
        let config = validate::agent_config(input)?;
        self.inner()?.commit(Write::StoreConfig(&config)).map(|_| ())
    }

    pub fn delete_agent_config(&self, agent_id: &str) -> Result<bool> {
        validate::key("agentId", agent_id, validate::MAX_ID_BYTES).map_err(Error::InvalidArgument)?;
        self.inner()?.commit(Write::DeleteConfig(agent_id))
    }

    /// `syncRemote()`: pulls the remote's changes into the replica now.
    pub fn sync_remote(&self) -> Result<SyncOutcome> {
        let inner = self.inner()?;
        let Some(remote) = inner.replication.remote.as_ref() else {
            return Err(Error::InvalidArgument(
                "syncRemote: this instance was opened without remote".into(),
            ));
        };
        match remote.sync(&inner.db) {
            Ok(outcome) => {
                syncer::Host::synced(&*inner, &outcome);
                Ok(outcome)
            }
            Err(e) => {
                syncer::Host::failed(&*inner, &e);
                Err(e)
            }
        }
    }
}

impl Inner {
    /// The one write path: commits `write` where the truth is, and lets
    /// tier 1 see it at once. False: it changed nothing (no such row).
    fn commit(&self, write: Write<'_>) -> Result<bool> {
        let trigger = write.trigger();
        if self.replication.replica_without_remote {
            return Err(Error::RemoteMismatch(
                "this database is a replica of a remote bank: writes go through an instance opened with remote".into(),
            ));
        }
        let Some(remote) = self.replication.remote.as_deref() else {
            let (changed, generation) = db::apply(&self.db, write)?;
            if changed {
                self.saw_commit(generation, trigger);
            }
            return Ok(changed);
        };
        match remote.write(&self.db, write) {
            Ok(Some(outcome)) => {
                if outcome.reset.is_some() {
                    // The write's pass found another history and reset the
                    // replica: as any pass that did (the write is in it).
                    syncer::Host::synced(self, &outcome);
                } else {
                    self.after_pass(&outcome, trigger);
                }
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                if matches!(e, Error::RemoteUnavailable(_)) {
                    syncer::Host::failed(self, &e);
                }
                Err(e)
            }
        }
    }

    /// A commit this instance made: seen at once; a rebuild scheduled for
    /// any change but a use.
    fn saw_commit(&self, generation: Generation, trigger: Option<Trigger>) {
        match trigger {
            Some(t) => {
                self.debug(|| format!("{} -> generation {}", t.as_str(), generation.generation));
                self.saw_generation(generation);
                self.schedule(t, false, false);
            }
            None => self.saw_generation(generation),
        }
    }

    /// The replica moved (a remote write or pass): as after a local commit
    /// of `trigger`, or, for a pass or a use, a rebuild only when the
    /// changes (which may be other machines') call for one.
    fn after_pass(&self, outcome: &SyncOutcome, trigger: Option<Trigger>) {
        self.saw_commit(outcome.local, trigger);
        if trigger.is_none() && self.config.enabled && self.rebuild_due() {
            self.schedule(Trigger::SourceChanged, false, false);
        }
    }

    /// The database is at `generation` (or later): known at once, and the
    /// file amended now, on this (pool) thread, so that the next read is
    /// answered from tier 1 on the caller's thread, not after a refresh.
    /// Counters are folded into the file at the next rebuild, never one per use.
    fn saw_generation(&self, generation: Generation) {
        let known = generation.generation;
        self.fresh.known_generation.fetch_max(known, Ordering::AcqRel);
        self.fresh
            .pattern_count
            .store(generation.pattern_count, Ordering::Relaxed);
        if let Some(view) = self.tier1.view.load_full().filter(|v| v.header().generation < known) {
            let _ = self.overlay_for(&view, known, true);
        }
    }

    /// Another process's pass on this replica, as the database records it,
    /// for this instance's `getMetrics().remote`.
    pub(super) fn saw_remote_pass(&self) {
        if let Some(remote) = &self.replication.remote {
            if let Ok(Some((at, seen))) = self.db.read(replica::last_pass) {
                remote.saw_pass(at, seen);
            }
        }
    }
}

impl syncer::Host for Inner {
    fn database(&self) -> &Database {
        &self.db
    }

    fn synced(&self, outcome: &SyncOutcome) {
        if let Some(reset) = outcome.reset {
            self.went_back(
                outcome.local,
                &format!("the replica was reset to its bank: {}", reset.describe()),
            );
            self.emit(CacheEvent::RemoteReset {
                reason: reset.describe(),
            });
        }
        if outcome.to_generation != outcome.from_generation || outcome.reset.is_some() {
            self.after_pass(outcome, None);
            self.emit(CacheEvent::RemoteSynced {
                from_generation: outcome.from_generation,
                to_generation: outcome.to_generation,
                rows_applied: outcome.rows_applied,
            });
        }
    }

    fn failed(&self, error: &Error) {
        self.emit(CacheEvent::RemoteUnavailable {
            error: format!("[{}] {error}", error.code()),
        });
    }
}
