//! The bank's history as replicas check it. Every write advances a chain
//! head, `sha256(previous head || key)`, stored with its generation in the
//! bank's `writes` table; a replica keeps the head at its generation and
//! every pass compares. A replica whose history is not the bank's (a
//! restore, a failover that lost commits, a clone, or a prune past it)
//! resets to the bank (`replica::pull`). The bank's state row (generation,
//! time, identity, head, prune floor) is read here too.

use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::connect::Target;
use super::replica::LocalReplica;
use crate::error::{Error, Result};

/// The remote's state row, as one snapshot saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteState {
    pub generation: i64,
    pub changed_at: i64,
    pub source_id: [u8; 16],
    /// The bank's chain head at `generation`: sha256 over the keys of every
    /// write since the chain began (`None`: no keyed write yet).
    pub head: Option<[u8; 32]>,
    /// Tombstones at or below this generation were pruned.
    pub floor: i64,
}

impl RemoteState {
    /// The state from the bank's columns, checked.
    pub fn from_columns(
        target: &Target,
        generation: i64,
        changed_at: i64,
        source_id: Vec<u8>,
        head: Vec<u8>,
        floor: i64,
    ) -> Result<RemoteState> {
        let bad = |what: &str| Error::RemoteMismatch(format!("{}: state.{what}", target.describe()));
        Ok(RemoteState {
            generation,
            changed_at,
            source_id: source_id.try_into().map_err(|_| bad("source_id is not 16 bytes"))?,
            head: match head.len() {
                0 => None,
                _ => Some(head.try_into().map_err(|_| bad("head is not 32 bytes"))?),
            },
            floor,
        })
    }
}

pub async fn read_state(client: &Client, target: &Target) -> Result<RemoteState> {
    let row = client
        .query_typed_one(
            &format!(
                "SELECT generation, changed_at, source_id, head, floor FROM {}.state WHERE singleton",
                target.schema()
            ),
            &[],
        )
        .await
        .map_err(|e| target.error(&e))?;
    RemoteState::from_columns(target, row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// Why a pass reset the replica to the bank: the bank's history is not the
/// one the replica followed (restored from a backup, a failover that lost
/// commits, a clone written on apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The bank is at a generation below the replica's.
    BankBehind { bank: u64, replica: u64 },
    /// The bank has no record of the replica's generation.
    GenerationGone { generation: u64 },
    /// The bank's chain head at the replica's generation is another.
    HistoryDiffers { generation: u64 },
    /// The bank pruned the tombstones the replica would need to catch up.
    BelowFloor { generation: u64, floor: u64 },
}

impl Reset {
    /// What the `remote_reset` event says.
    pub fn describe(&self) -> String {
        match self {
            Reset::BankBehind { bank, replica } => format!(
                "the bank is at generation {bank}, behind this replica's {replica} (restored from a backup, or a failover lost commits)"
            ),
            Reset::GenerationGone { generation } => {
                format!("the bank has no record of this replica's generation {generation} (restored from a backup)")
            }
            Reset::BelowFloor { generation, floor } => format!(
                "this replica's generation {generation} is below the bank's prune floor {floor} (its deletes since are pruned)"
            ),
            Reset::HistoryDiffers { generation } => format!(
                "the bank's history at generation {generation} is not this replica's (restored from a backup and written past it, or a clone)"
            ),
        }
    }
}

/// The bank's chain head after a write with `key` on top of `head`.
pub fn chain(head: &[u8; 32], key: &[u8; 16]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(head);
    hash.update(key);
    hash.finalize().into()
}

/// Whether the replica follows the bank's history: `None`, or why not. One
/// look at the bank's write log, and none when the bank is where the
/// replica is (an idle poll).
pub(super) async fn divergence(
    client: &Client,
    target: &Target,
    local: &LocalReplica,
    remote: &RemoteState,
) -> Result<Option<Reset>> {
    if local.bound_to.is_none() {
        return Ok(None);
    }
    let (bank, replica) = (remote.generation.max(0) as u64, local.generation);
    if bank < replica {
        return Ok(Some(Reset::BankBehind { bank, replica }));
    }
    let floor = remote.floor.max(0) as u64;
    if replica < floor {
        return Ok(Some(Reset::BelowFloor {
            generation: replica,
            floor,
        }));
    }
    // A generation from before the chain began has nothing to compare.
    let Some(head) = local.head else {
        return Ok(None);
    };
    let differs = Some(Reset::HistoryDiffers { generation: replica });
    if bank == replica {
        return Ok(if remote.head == Some(head) { None } else { differs });
    }
    let at: Option<Vec<u8>> = client
        .query_typed_opt(
            &format!("SELECT head FROM {}.writes WHERE generation = $1", target.schema()),
            &[(&(replica as i64), Type::INT8)],
        )
        .await
        .map_err(|e| target.error(&e))?
        .map(|r| r.get(0));
    Ok(match at {
        None => Some(Reset::GenerationGone { generation: replica }),
        Some(h) if h[..] != head[..] => differs,
        Some(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_sha256_of_head_and_key() {
        use sha2::{Digest, Sha256};
        let (head, key) = ([7u8; 32], [9u8; 16]);
        let want: [u8; 32] = Sha256::new().chain_update(head).chain_update(key).finalize().into();
        assert_eq!(chain(&head, &key), want);
        assert_ne!(
            chain(&head, &key),
            chain(&chain(&head, &key), &key),
            "each write moves it"
        );
    }

    #[test]
    fn every_reset_says_why() {
        for (reset, words) in [
            (
                Reset::BankBehind { bank: 1, replica: 7 },
                "generation 1, behind this replica's 7",
            ),
            (
                Reset::GenerationGone { generation: 4 },
                "no record of this replica's generation 4",
            ),
            (Reset::HistoryDiffers { generation: 4 }, "history at generation 4"),
            (
                Reset::BelowFloor {
                    generation: 2,
                    floor: 5,
                },
                "below the bank's prune floor 5",
            ),
        ] {
            assert!(reset.describe().contains(words), "{}", reset.describe());
        }
    }
}
