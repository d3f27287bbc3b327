//! Durable acknowledgement with group commit.
//!
//! sled on its own flushes every 500 ms; a hotline must not say "received" and then lose the
//! case. A writer calls [`GroupCommit::sync`] after its write: if no flush is running it
//! becomes the leader and flushes everything written so far; otherwise it waits, and the
//! next flush covers it. Many concurrent writers therefore share one fsync.

use parking_lot::{Condvar, Mutex};

use super::StoreError;

/// How writes are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Durable before acknowledged; concurrent writers share flushes (the default).
    GroupCommit,
    /// Durable before acknowledged; one flush per write (for comparison).
    FlushEachWrite,
    /// Acknowledged before durable: sled's background flush only. Benchmarks only.
    Unsafe,
}

struct State {
    /// Writes registered so far (each `sync` call is one).
    requested: u64,
    /// All writes up to this number are durable.
    durable: u64,
    flushing: bool,
    flushes: u64,
}

pub(crate) struct GroupCommit {
    db: sled::Db,
    mode: Durability,
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    pub fn new(db: sled::Db, mode: Durability) -> Self {
        Self {
            db,
            mode,
            state: Mutex::new(State {
                requested: 0,
                durable: 0,
                flushing: false,
                flushes: 0,
            }),
            done: Condvar::new(),
        }
    }

    pub fn flushes(&self) -> u64 {
        self.state.lock().flushes
    }

    /// Returns once every write made before the call is on disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        match self.mode {
            Durability::Unsafe => return Ok(()),
            Durability::FlushEachWrite => {
                self.db.flush()?;
                self.state.lock().flushes += 1;
                return Ok(());
            }
            Durability::GroupCommit => {}
        }
        let mut st = self.state.lock();
        st.requested += 1;
        let mine = st.requested;
        loop {
            if st.durable >= mine {
                return Ok(());
            }
            if !st.flushing {
                // Lead: everything registered so far was written before it registered,
                // and this flush starts after that, so it covers all of them.
                st.flushing = true;
                let target = st.requested;
                drop(st);
                let result = self.db.flush();
                st = self.state.lock();
                st.flushing = false;
                st.flushes += 1;
                if result.is_ok() {
                    st.durable = st.durable.max(target);
                }
                self.done.notify_all();
                result?;
                continue;
            }
            self.done.wait(&mut st);
        }
    }
}
