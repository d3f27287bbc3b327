//! Write combining: concurrent writers' changes applied as one sled batch.
//!
//! Every sled batch pays a fixed price for its atomicity (a batch manifest in the log and
//! the tree's exclusive write lock) that is several times the cost of the inserts of one
//! case. A writer hands its operations to [`Combiner::apply`]; if no batch is being
//! applied it becomes the leader and applies everything queued so far as one batch,
//! otherwise it waits and the next leader takes its operations along. One writer alone
//! pays what it paid before; under load the fixed price is shared.
//!
//! Each writer still holds its case's lock until its operations are applied, so no one
//! reads a case between its check and its write; and since one sled batch is atomic, a
//! combined batch is all-or-nothing for every writer in it.

use std::collections::HashMap;

use parking_lot::{Condvar, Mutex};

/// The operations of one writer, in order.
#[derive(Default)]
pub(crate) struct Ops(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Ops {
    pub fn insert(&mut self, key: Vec<u8>, value: impl Into<Vec<u8>>) {
        self.0.push((key, Some(value.into())));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.0.push((key, None));
    }

    /// The operations, in order: a value to insert, or `None` to remove the key.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }
}

#[derive(Default)]
struct State {
    queue: Vec<(u64, Ops)>,
    next: u64,
    applying: bool,
    done: HashMap<u64, Result<(), String>>,
}

pub(crate) struct Combiner {
    tree: sled::Tree,
    state: Mutex<State>,
    applied: Condvar,
    /// Tests only: the next batch panics while it is applied.
    #[cfg(test)]
    pub panic_next: std::sync::atomic::AtomicBool,
}

impl Combiner {
    pub fn new(tree: sled::Tree) -> Self {
        Self {
            tree,
            state: Mutex::new(State::default()),
            applied: Condvar::new(),
            #[cfg(test)]
            panic_next: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Returns once `ops` are applied (visible to readers, not yet durable).
    pub fn apply(&self, ops: Ops) -> Result<(), sled::Error> {
        let mut st = self.state.lock();
        let ticket = st.next;
        st.next += 1;
        st.queue.push((ticket, ops));
        loop {
            if let Some(result) = st.done.remove(&ticket) {
                return result.map_err(|m| {
                    sled::Error::Io(std::io::Error::other(format!(
                        "a combined write failed: {m}"
                    )))
                });
            }
            if st.applying {
                self.applied.wait(&mut st);
                continue;
            }
            st.applying = true;
            let group = std::mem::take(&mut st.queue);
            drop(st);
            // Whatever happens here, every writer in the group gets an answer and the next
            // group a leader: a panic must not leave them all waiting.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                #[cfg(test)]
                if self
                    .panic_next
                    .swap(false, std::sync::atomic::Ordering::SeqCst)
                {
                    panic!("test: this batch panics");
                }
                let mut batch = sled::Batch::default();
                for (_, ops) in &group {
                    for (k, v) in &ops.0 {
                        match v {
                            Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                            None => batch.remove(k.as_slice()),
                        }
                    }
                }
                self.tree.apply_batch(batch).map_err(|e| e.to_string())
            }))
            .unwrap_or_else(|_| Err("the write panicked".into()));
            st = self.state.lock();
            for (t, _) in group {
                st.done.insert(t, result.clone());
            }
            st.applying = false;
            self.applied.notify_all();
        }
    }
}
