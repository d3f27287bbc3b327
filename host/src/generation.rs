//! Generations: counters in the store that tell every host sharing it that something hosts
//! keep in memory has changed on one of them.
//!
//! A host caches what it reads on every request — the compiled active plug-ins, the
//! tokens — and serves from memory. Whoever changes such a thing bumps its generation
//! after the change is stored; every host reads the generations now and then (see
//! the follower of `civic serve`) and, when one moved, reads that part again. Reading two small
//! records every half second costs the store nothing, where reading every slot or token
//! would; and a bump that is missed (the host was down) cannot matter, because a host that
//! starts reads everything anyway.

use crate::store::{CaseStore, StoreError, update_record};

/// Where the counters live.
const COLLECTION: &str = "generations";

/// What hosts cache and must read again when another host changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    /// Which plug-in version is active or shadowing in each slot.
    Registry,
    /// Tokens (a revoked token must stop working everywhere).
    Tokens,
}

impl Cached {
    /// Every kind, in the order [`Generations`] holds them.
    pub const ALL: [Cached; 2] = [Cached::Registry, Cached::Tokens];

    fn key(self) -> &'static str {
        match self {
            Cached::Registry => "registry",
            Cached::Tokens => "tokens",
        }
    }
}

/// Tells every host that `what` changed: call after the change is stored.
pub fn bump(store: &dyn CaseStore, what: Cached) -> Result<u64, StoreError> {
    update_record(store, COLLECTION, what.key(), |cur| {
        let next = decode(cur) + 1;
        Ok((Some(next.to_string().into_bytes()), next))
    })
}

/// The generation of `what` now (0 before anything changed it).
pub fn read(store: &dyn CaseStore, what: Cached) -> Result<u64, StoreError> {
    Ok(decode(store.record_get(COLLECTION, what.key())?.as_deref()))
}

/// A counter that does not read as a number counts as 0: bumping it again makes it one,
/// and hosts read everything again at worst once more than needed.
fn decode(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The generations a host has caught up with, one per [`Cached`].
#[derive(Debug, Default)]
pub struct Generations {
    seen: parking_lot::Mutex<[u64; Cached::ALL.len()]>,
}

impl Generations {
    /// Which kinds moved since the last call (all of them the first time a generation is
    /// found above 0), remembering the generations read.
    pub fn moved(&self, store: &dyn CaseStore) -> Result<Vec<Cached>, StoreError> {
        let now = Cached::ALL
            .iter()
            .map(|&c| read(store, c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = self.seen.lock();
        let moved = Cached::ALL
            .iter()
            .zip(seen.iter_mut().zip(now))
            .filter_map(|(&c, (old, new))| (std::mem::replace(old, new) != new).then_some(c))
            .collect();
        Ok(moved)
    }

    /// Marks `what` as not caught up with, so the next [`Generations::moved`] reports it
    /// again: reading it again failed.
    pub fn forget(&self, what: Cached) {
        let i = Cached::ALL.iter().position(|&c| c == what).unwrap_or(0);
        self.seen.lock()[i] = u64::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_is_seen_once_by_each_follower() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sled::SledStore::open(
            &dir.path().join("s"),
            crate::store::sled::Durability::GroupCommit,
        )
        .unwrap();
        let (a, b) = (Generations::default(), Generations::default());
        assert!(a.moved(&store).unwrap().is_empty());
        assert_eq!(bump(&store, Cached::Tokens).unwrap(), 1);
        assert_eq!(a.moved(&store).unwrap(), [Cached::Tokens]);
        assert!(a.moved(&store).unwrap().is_empty(), "seen already");
        bump(&store, Cached::Registry).unwrap();
        bump(&store, Cached::Registry).unwrap();
        assert_eq!(read(&store, Cached::Registry).unwrap(), 2);
        assert_eq!(a.moved(&store).unwrap(), [Cached::Registry]);
        assert_eq!(
            b.moved(&store).unwrap(),
            [Cached::Registry, Cached::Tokens],
            "a follower that has seen nothing catches up with both"
        );
    }
}
