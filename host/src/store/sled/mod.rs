//! The embedded engine: the only code that touches sled.
//!
//! Cases, their events and every index share one tree (`data`, key spaces `c` id → case
//! JSON, `e` id ‖ seq → one write's events, `i` prefixed index entries, `p` id → a write in
//! progress). A write to a case — its new events, its index changes and the case — is made
//! as single sled operations inside a pending record (`Pending`), not as one sled batch:
//! sled applies a batch under a lock that stops every reader. Readers therefore check what
//! an index entry names against the case itself (listings filter and skip a case not yet
//! written, the sweep checks the timer is on the case) and a history shows the events its
//! case counts; opening the store settles whatever a crash left half-made, so every write
//! is all-or-nothing across a crash.
//!
//! A write is acknowledged only after it is durable: writers wait for a flush that started
//! after their write, and concurrent writers share one flush (group commit); batch jobs
//! (the timer sweep) write with [`CaseStore::write`] and flush once with
//! [`CaseStore::sync`].
//!
//! Other trees: `meta` (schema version), `refdata` (directory versions), and named record
//! trees for other services (`plugins`, `tokens`, ...).
//!
//! One process at a time: ids come from an in-memory counter and writers of a case are
//! serialised by in-process locks, which is what sled's single-process file lock allows
//! anyway. Several hosts need the PostgreSQL engine.

mod codec;
pub mod compact;
mod durability;
mod keys;
mod ops;
mod pending;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use codec::{Codec, Kind};
pub use durability::Durability;
use durability::GroupCommit;
pub use keys::time_key;
use pending::Pending;

use super::tally::{self, Tallies};
use super::{
    Activity, CaseStore, Change, Consistency, DirectoryRecord, DueTimer, Filter, Imported,
    MAX_PAGE, MAX_SCAN, Page, StoreError, Versioned, decode, encode, first_version, id_number,
    next_version,
};
use crate::assessment;
use crate::model::{Case, CaseStatus, Event, Millis, PendingTimer, TimerKind};

/// The sled engine's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SledConfig {
    /// The store directory.
    pub path: PathBuf,
    /// How writes are acknowledged.
    pub durability: Durability,
    /// sled's page cache in bytes.
    pub cache_bytes: u64,
}

impl SledConfig {
    /// The defaults for a store directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::GroupCommit,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// The schema this code reads and writes.
///
/// 3: assessment facts are kept with every write. 2: the timer index holds each case's
/// earliest pending timer only, and there is no index by creation time. 1 held every pending
/// timer and that index. Older stores are upgraded in place when opened (see
/// [`SledStore::open`]).
pub const SCHEMA_VERSION: u32 = 3;
/// Older schemas this build upgrades in place.
const UPGRADES_FROM: [u32; 2] = [1, 2];

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn untx(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

/// The sled engine.
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    /// Cases, events, indexes and pending records share one tree.
    data: sled::Tree,
    cases: Space,
    events: Space,
    idx: Space,
    /// Assessment facts (see [`crate::assessment`]), by district and time.
    facts: Space,
    /// Writes in progress (see [`Pending`]).
    pending: Space,
    refdata: sled::Tree,
    /// Serialises writers of the same case (striped by id); pending records give
    /// atomicity.
    locks: Vec<parking_lot::Mutex<()>>,
    next_id: std::sync::atomic::AtomicU64,
    /// The latest day whose marker this process wrote or found.
    marked_day: std::sync::atomic::AtomicI64,
    commit: GroupCommit,
    /// Set when a write failed half-way and could not be settled: its case's pending
    /// record must be settled before anything else writes to the case, which only opening
    /// the store again does.
    unsettled: std::sync::atomic::AtomicBool,
    /// What opening the store found half-made and settled.
    settled: Settled,
    /// Counts kept as cases change (see [`tally`]): in memory, saved when the store is
    /// closed and taken back when it is opened; rebuilt from the cases when they were not
    /// saved (after a crash).
    tallies: parking_lot::Mutex<Tallies>,
    /// How case and event values are compressed (see [`codec`]).
    codec: Arc<Codec>,
    /// The background training of the compression dictionaries, if one was started.
    trainer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Cleared when a write failed half-way and was settled while running: the counts may
    /// then be off by that write, so they are not saved and the next open rebuilds them.
    tallies_exact: std::sync::atomic::AtomicBool,
    /// Whether opening rebuilt the counts (none were saved) instead of taking them back.
    rebuilt: bool,
    /// Tests only: the number of sled operations case writes may still make before they
    /// fail as if the process had died there (`usize::MAX`: never).
    #[cfg(test)]
    pub(crate) crash_after: std::sync::atomic::AtomicUsize,
    /// Tests only: a write cut short by `crash_after` is settled at once, as one that
    /// failed for another reason would be, instead of left as a crash leaves it.
    #[cfg(test)]
    pub(crate) settle_when_cut: std::sync::atomic::AtomicBool,
    /// Tests only: settling a write fails, as it would if sled kept failing.
    #[cfg(test)]
    pub(crate) settling_fails: std::sync::atomic::AtomicBool,
}

impl Drop for SledStore {
    /// Saves the counts, so the next open takes them instead of walking every case.
    fn drop(&mut self) {
        self.wait_for_training();
        if let Err(e) = self.save_tallies() {
            tracing::error!(error = %e, "could not save the case counts; the next start rebuilds them");
        }
    }
}

/// A stored case's creation time, without decoding the rest of it.
#[derive(Deserialize)]
struct CaseCreated {
    created_at: Millis,
}

/// The part of a stored case its writers and history readers check.
#[derive(Deserialize)]
struct CaseHeader {
    version: u64,
    event_count: u64,
}

/// Writes to cases that a crash cut short and opening the store settled (a case is
/// written as single operations, not as one batch: see the module's documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Writes whose case was written: their old index entries were removed.
    pub finished: usize,
    /// Writes whose case was not written: what they had added was removed.
    pub undone: usize,
}

/// How long opening a store waits for sled's lock on its files.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// sled's page cache unless configured: 256 MiB. Measured at a million cases (BENCHMARKS.md,
/// "Memory and the default cache"): every desk view stayed within its 200 ms at 256 MiB,
/// sustained intake ran faster than at sled's own default of 1 GiB (whose cache took 2.3 GB
/// of memory), and at 64 MiB intake fell off as the store grew.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

const META_SCHEMA: &[u8] = b"schema";
/// The file that names the schema, read before sled opens anything.
pub const MARKER: &str = "CIVIC_STORE";
const META_DIRECTORY: &[u8] = b"directory_version";
/// The counts (see [`tally`]) as the store was closed; removed when it is opened, so a
/// store that crashed has none and rebuilds them.
const META_TALLIES: &[u8] = b"tallies";
/// Days of rule activity kept in the counts, and rebuilt after a crash: the overview shows
/// at most 31.
const ACTIVITY_DAYS: i64 = 32;
/// `day ‖ day number` → the id of a case created early that day (see [`SledStore::mark_day`]).
const META_DAY: &[u8] = b"day:";
/// Set once every day of the stored cases has its marker (stores from before markers get
/// them once, at their first open).
const META_DAYS_MARKED: &[u8] = b"days-marked";

const DAY_MS: Millis = 86_400_000;

/// A span of case ids, `[lo, hi)`; `None` is unbounded.
type IdSpan = (Option<Vec<u8>>, Option<Vec<u8>>);

fn day_key(day: i64) -> Vec<u8> {
    [META_DAY, &time_key(day)].concat()
}

/// Names the schema in the marker file, atomically (written aside, then renamed).
fn write_marker(path: &Path) -> Result<(), StoreError> {
    let tmp = path.join(format!("{MARKER}.tmp"));
    std::fs::write(&tmp, format!("civic-rules store schema {SCHEMA_VERSION}\n"))?;
    std::fs::rename(&tmp, path.join(MARKER))?;
    Ok(())
}

/// Opens sled's files, waiting a little for a lock a store just closed still holds.
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let open_err = |message: String| StoreError::Open {
        location: path.display().to_string(),
        message,
    };
    let config = sled::Config::new()
        .path(path)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(cache_bytes);
    // sled's lock on its files outlives a closed store for a moment (its background
    // writes finish first), so a store closed and opened again — a restart — waits a
    // little; a store another process holds stays locked and is refused.
    let started = std::time::Instant::now();
    // sled reports it as an `Other` i/o error that names the lock.
    let locked = |e: &sled::Error| matches!(e, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"));
    loop {
        match config.open() {
            Err(e) if locked(&e) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) if locked(&e) => {
                return Err(open_err(format!(
                    "another process is using it ({e}); stop that process first"
                )));
            }
            other => {
                return other
                    .map_err(|e| open_err(format!("{e}; the files were left as they are")));
            }
        }
    }
}

impl SledStore {
    /// Opens (or creates, if `path` is missing or empty) a store.
    ///
    /// Refuses, without changing anything, a directory that holds something else, a store
    /// of a schema this build neither reads nor upgrades, or one sled cannot open. A store
    /// of schema 1 is upgraded to [`SCHEMA_VERSION`] first; the upgrade is safe to
    /// interrupt (the marker names the old schema until it is done, and running it again
    /// finishes it).
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        Self::open_with_cache(path, durability, DEFAULT_CACHE_BYTES)
    }

    /// Brings sled's snapshot of its log up to date, on a store no process has open.
    ///
    /// sled writes that snapshot only while opening, after reading every log entry written
    /// since the last one, so a server that ran for a year would spend its next start-up
    /// reading a year of writes (9 s after a million cases). Called after a clean stop, it
    /// moves that reading to the stop and keeps the next start-up short; after a crash the
    /// next start still reads what was written since the last start. Returns whether
    /// there was a store to bring up to date.
    pub fn checkpoint(path: &Path) -> Result<bool, StoreError> {
        if !path.join(MARKER).exists() {
            return Ok(false);
        }
        // A small cache: nothing is read but the log's headers.
        drop(open_db(path, 16 << 20)?);
        Ok(true)
    }

    /// Opens the store a [`SledConfig`] names.
    pub fn open_config(config: &SledConfig) -> Result<Self, StoreError> {
        Self::open_with_cache(&config.path, config.durability, config.cache_bytes)
    }

    /// [`SledStore::open`] with sled's page cache sized `cache_bytes`. A store whose open
    /// cases' nodes fit the cache sweeps due timers without reading them from disk.
    pub fn open_with_cache(
        path: &Path,
        durability: Durability,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            location: path.display().to_string(),
            message,
        };
        let marker = path.join(MARKER);
        let mut fresh = false;
        let mut upgrade: Option<u32> = None;
        if path.exists() {
            if !path.is_dir() {
                return Err(StoreError::NotAStore {
                    location: path.display().to_string(),
                    why: "it is a file".into(),
                });
            }
            match std::fs::read_to_string(&marker) {
                Ok(text) => {
                    // Checked before sled opens anything: a store of another schema is never touched.
                    let found = text
                        .trim()
                        .strip_prefix("civic-rules store schema ")
                        .unwrap_or(text.trim())
                        .to_owned();
                    if let Some(v) = UPGRADES_FROM.into_iter().find(|v| found == v.to_string()) {
                        upgrade = Some(v);
                    } else if found != SCHEMA_VERSION.to_string() {
                        return Err(StoreError::UnknownSchema {
                            location: path.display().to_string(),
                            found,
                            supported: SCHEMA_VERSION,
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let names: Vec<String> = std::fs::read_dir(path)
                        .map_err(|e| open_err(e.to_string()))?
                        .filter_map(|e| {
                            e.ok().map(|e| e.file_name().to_string_lossy().into_owned())
                        })
                        .collect();
                    if !names.is_empty() {
                        return Err(StoreError::NotAStore {
                            location: path.display().to_string(),
                            why: format!("it holds {} and no {MARKER}", names.join(", ")),
                        });
                    }
                    fresh = true;
                }
                Err(e) => return Err(open_err(format!("cannot read {}: {e}", marker.display()))),
            }
        } else {
            fresh = true;
        }
        let db = open_db(path, cache_bytes)?;
        let meta = db.open_tree("meta")?;
        let inside = meta.get(META_SCHEMA)?;
        let says = |v: u32| inside.as_deref() == Some(v.to_string().as_bytes());
        if fresh {
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
            db.flush()?;
            write_marker(path)?;
        } else if !(says(SCHEMA_VERSION) || upgrade.is_some_and(says)) {
            // An interrupted upgrade may have recorded the new schema inside and not yet
            // in the marker; the upgrade runs again and finishes.
            return Err(StoreError::NotAStore {
                location: path.display().to_string(),
                why: "its schema marker and its contents disagree".into(),
            });
        }
        let data = db.open_tree("data")?;
        let cases = Space {
            tree: data.clone(),
            prefix: b'c',
        };
        let last_id = cases
            .iter()
            .next_back()
            .transpose()?
            .map(|(k, _)| id_number(&String::from_utf8_lossy(&k)))
            .unwrap_or(0);
        Ok(Self {
            path: path.to_owned(),
            events: Space {
                tree: data.clone(),
                prefix: b'e',
            },
            idx: Space {
                tree: data.clone(),
                prefix: b'i',
            },
            pending: Space {
                tree: data.clone(),
                prefix: b'p',
            },
            facts: Space {
                tree: data.clone(),
                prefix: b'f',
            },
            cases,
            data,
            locks: (0..256).map(|_| parking_lot::Mutex::new(())).collect(),
            next_id: std::sync::atomic::AtomicU64::new(last_id),
            marked_day: std::sync::atomic::AtomicI64::new(i64::MIN),
            refdata: db.open_tree("refdata")?,
            commit: GroupCommit::new(db.clone(), durability),
            meta,
            db,
            unsettled: std::sync::atomic::AtomicBool::new(false),
            settled: Settled::default(),
            tallies: parking_lot::Mutex::new(Tallies::default()),
            codec: Arc::new(Codec::default()),
            trainer: parking_lot::Mutex::new(None),
            tallies_exact: std::sync::atomic::AtomicBool::new(true),
            rebuilt: false,
            #[cfg(test)]
            crash_after: std::sync::atomic::AtomicUsize::new(usize::MAX),
            #[cfg(test)]
            settle_when_cut: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            settling_fails: std::sync::atomic::AtomicBool::new(false),
        })
        .and_then(|mut store| {
            if upgrade == Some(1) {
                store.upgrade_from_v1()?;
            }
            store.load_dictionaries()?;
            store.settled = store.settle_all()?;
            // Facts are derived from cases as their settled writes left them.
            if let Some(from) = upgrade {
                store.upgrade(from)?;
            }
            store.mark_every_day()?;
            store.take_tallies()?;
            if store.next_id.load(std::sync::atomic::Ordering::Relaxed) >= codec::TRAIN_AT {
                store.train_in_background();
            }
            Ok(store)
        })
    }

    /// Finishes upgrading a store of schema `from` (schema 1's own step,
    /// [`SledStore::upgrade_from_v1`], ran before its writes were settled): derives the
    /// assessment facts, then records [`SCHEMA_VERSION`] inside and in the marker. Each step
    /// can be run again after an interruption.
    fn upgrade(&self, from: u32) -> Result<(), StoreError> {
        let cases = self.derive_facts()?;
        self.meta
            .insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
        self.db.flush()?;
        write_marker(&self.path)?;
        tracing::info!(
            path = %self.path.display(),
            cases,
            "upgraded the store from schema {from} to {SCHEMA_VERSION}: assessment facts derived from every case's history"
        );
        Ok(())
    }

    /// Stores every case's assessment facts, derived from its history (facts already
    /// there stay as they are). Returns how many cases it read.
    fn derive_facts(&self) -> Result<u64, StoreError> {
        super::derive_all_facts(self, &mut |facts| {
            let mut batch = sled::Batch::default();
            for f in &facts {
                batch.insert(self.facts.key(&keys::fact_key(f)), &[]);
            }
            Ok(self.data.apply_batch(batch)?)
        })
    }

    /// Schema 1 → 2: removes every timer entry that is not its case's earliest (schema 1
    /// indexed them all) and the index by creation time (schema 2 lists city-wide from the
    /// cases themselves), a batch at a time.
    /// Entries of timers a case no longer has are left for the consistency check to report.
    fn upgrade_from_v1(&self) -> Result<(), StoreError> {
        let created = self
            .idx
            .scan_prefix([keys::SCHEMA_1_BY_CREATED])
            .map(|kv| Ok::<_, StoreError>(Some(kv?.0)));
        let stale_timers = self.idx.scan_prefix([keys::BY_DUE]).map(|kv| {
            let (k, _) = kv?;
            let (due_at, id, kind) = timer_entry(&k)?;
            let timer = PendingTimer { kind, due_at };
            let stale = self.get_case(&id)?.is_some_and(|c| {
                c.timers.contains(&timer) && super::next_timer(&c) != Some(&timer)
            });
            Ok(stale.then_some(k))
        });
        let mut removed = 0usize;
        let mut batch = sled::Batch::default();
        for k in created.chain(stale_timers) {
            let Some(k) = k? else { continue };
            batch.remove(self.idx.key(&k));
            removed += 1;
            if removed.is_multiple_of(1000) {
                self.data.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        self.data.apply_batch(batch)?;
        tracing::info!(
            path = %self.path.display(),
            removed,
            "upgraded the store from schema 1: the timer index holds each case's earliest timer, the index by creation time is gone"
        );
        Ok(())
    }

    /// Records that a case with id `id` was created on the day of `at`, unless that day has
    /// a marker already. Ids are handed out in intake order, so the markers bound any span
    /// of creation days to a span of ids: a listing by creation date reads the cases of its
    /// window (and a day either side, for the moment between reading the clock and taking
    /// an id), never the whole store. Costs one write per day, not per case.
    fn mark_day(&self, id: &str, at: Millis) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let day = at.div_euclid(DAY_MS);
        if self.marked_day.load(Ordering::Relaxed) >= day {
            return Ok(());
        }
        let _ = self
            .meta
            .compare_and_swap(day_key(day), None::<&[u8]>, Some(id.as_bytes()))?;
        self.marked_day.fetch_max(day, Ordering::Relaxed);
        Ok(())
    }

    /// Gives every day of the stored cases its marker, once per store (at the first open by
    /// a build that has them).
    fn mark_every_day(&self) -> Result<(), StoreError> {
        if self.meta.get(META_DAYS_MARKED)?.is_some() {
            return Ok(());
        }
        let mut marked = 0usize;
        let mut first: HashMap<i64, (u64, Vec<u8>)> = HashMap::new();
        for kv in self.cases.iter() {
            let (k, v) = kv?;
            let c: CaseCreated = self.decode_case(&k, &v)?;
            let day = c.created_at.div_euclid(DAY_MS);
            let n = id_number(&String::from_utf8_lossy(&k));
            let e = first.entry(day).or_insert_with(|| (n, k.to_vec()));
            if n < e.0 {
                *e = (n, k.to_vec());
            }
        }
        for (day, (_, id)) in first {
            self.meta.insert(day_key(day), id)?;
            marked += 1;
        }
        self.meta.insert(META_DAYS_MARKED, &[1])?;
        self.db.flush()?;
        if marked > 0 {
            tracing::info!(
                days = marked,
                "marked the days of the stored cases for date listings"
            );
        }
        Ok(())
    }

    /// The span of case ids `[lo, hi)` (`None`: unbounded) that holds every case created in
    /// `[from, to)`, from the day markers.
    fn id_span(&self, from: Option<Millis>, to: Option<Millis>) -> Result<IdSpan, StoreError> {
        let lo = match from {
            // The marker of the day before `from`'s, or an earlier one.
            Some(f) => self
                .meta
                .range(day_key(i64::MIN)..=day_key(f.div_euclid(DAY_MS) - 1))
                .next_back()
                .transpose()?
                .map(|(_, id)| id.to_vec()),
            None => None,
        };
        let hi = match to {
            // The marker of the day after `to`'s, or a later one.
            Some(t) => self
                .meta
                .range(day_key(t.div_euclid(DAY_MS) + 1)..day_key(i64::MAX))
                .next()
                .transpose()?
                .map(|(_, id)| id.to_vec()),
            None => None,
        };
        Ok((lo, hi))
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn records(&self, collection: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("x:{collection}"))?)
    }

    /// Flushes made so far (for tests and metrics).
    pub fn flush_count(&self) -> u64 {
        self.commit.flushes()
    }

    fn stripe(&self, id: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        h.finish() as usize % self.locks.len()
    }

    fn lock(&self, id: &str) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[self.stripe(id)].lock()
    }

    /// Stores a new case with its first events; durable when this returns.
    fn create(&self, change: Change) -> Result<Case, StoreError> {
        let (case, events) = first_version(change);
        {
            let _guard = self.lock(&case.id);
            if self.cases.get(case.id.as_bytes())?.is_some() {
                return Err(StoreError::Exists(case.id.clone()));
            }
            let mut ops = ops::Ops::default();
            if !events.is_empty() {
                ops.insert(
                    self.events.key(&keys::event_key(&case.id, 0)),
                    self.encode_events(&events)?,
                );
            }
            // Additions before the case, as `write_unbatched` needs them.
            for k in keys::index_keys(&case) {
                ops.insert(self.idx.key(&k), []);
            }
            let facts = assessment::event_facts(None, &case.district, &case.id, &events);
            for f in facts.iter().chain(&assessment::open_facts(&case)) {
                ops.insert(self.facts.key(&keys::fact_key(f)), []);
            }
            ops.insert(self.cases.key(case.id.as_bytes()), self.encode_case(&case)?);
            self.write_unbatched(&case.id, 0, &ops)?;
            self.tally(tally::deltas(None, &case, &events));
        }
        self.mark_day(&case.id, case.created_at)?;
        self.commit.sync()?;
        // Every `TRAIN_AT` cases until the dictionaries are trained (a training that found
        // too little to learn from is tried again at the next).
        if id_number(&case.id).is_multiple_of(codec::TRAIN_AT) {
            self.train_in_background();
        }
        Ok(case)
    }

    /// Reads a case.
    fn read_case(&self, id: &str) -> Result<Option<Case>, StoreError> {
        self.cases
            .get(id.as_bytes())?
            .map(|b| self.decode_case(id.as_bytes(), &b))
            .transpose()
    }

    /// One version-checked write: what it writes is prepared (encoded, index changes
    /// worked out from the case as the writer read it) before the case's lock is taken;
    /// under the lock only the stored version is checked and the operations made, inside a
    /// [`Pending`] record.
    fn write_one(&self, w: Versioned) -> Result<Result<Case, StoreError>, StoreError> {
        // One process holds a sled store: there is no other host to fence off.
        let Versioned { read, change, .. } = w;
        let mut ops = ops::Ops::default();
        let (new, deltas) = match self.stage_into(&read, change, &mut ops) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let id = read.id.as_str();
        let _guard = self.lock(id);
        if let Some(stale) = self.stale(&read)? {
            return Ok(Err(stale));
        }
        self.write_unbatched(id, read.version, &ops)?;
        self.tally(deltas);
        Ok(Ok(new))
    }

    /// Why a writer that read `read` may not write it now (it is gone, or at another
    /// version), if so. The caller holds the case's lock.
    fn stale(&self, read: &Case) -> Result<Option<StoreError>, StoreError> {
        let id = read.id.as_str();
        Ok(match self.case_version(id)? {
            None => Some(StoreError::NotFound(id.to_owned())),
            Some(v) if v != read.version => Some(StoreError::Conflict {
                case: id.to_owned(),
                expected: read.version,
                actual: v,
            }),
            Some(_) => None,
        })
    }

    /// Removes one case if it is still at the version read: the case first (readers skip
    /// index entries whose case is gone), then its index entries and events, inside a
    /// [`Pending`] record that opening the store finishes after a crash.
    fn remove_one(&self, read: &Case) -> Result<Result<(), StoreError>, StoreError> {
        let id = read.id.as_str();
        let _guard = self.lock(id);
        if let Some(stale) = self.stale(read)? {
            return Ok(Err(stale));
        }
        let mut ops = ops::Ops::default();
        ops.remove(self.cases.key(id.as_bytes()));
        for k in keys::index_keys(read) {
            ops.remove(self.idx.key(&k));
        }
        // What the case still owed goes with it; what its units did stays counted.
        for f in assessment::open_facts(read) {
            ops.remove(self.facts.key(&keys::fact_key(&f)));
        }
        for kv in self.events.scan_prefix(keys::events_prefix(id)) {
            let (k, _) = kv?;
            ops.remove(self.events.key(&k));
        }
        self.write_unbatched(id, read.version, &ops)?;
        self.tally(tally::removed(read));
        Ok(Ok(()))
    }

    /// Writes `ops` (as [`SledStore::stage_into`] orders them: additions, the case, removals)
    /// to case `id`, now at version `from` (0: new), as single operations inside a
    /// [`Pending`] record. The caller holds the case's lock.
    fn write_unbatched(&self, id: &str, from: u64, ops: &ops::Ops) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.unsettled.load(Ordering::Acquire) {
            return Err(StoreError::Io(
                "an earlier write failed half-way and could not be finished; restart the server: \
                 opening the store finishes or undoes it"
                    .into(),
            ));
        }
        let case_key = self.cases.key(id.as_bytes());
        let record = Pending {
            from,
            added: ops
                .iter()
                .filter(|(k, v)| v.is_some() && *k != case_key.as_slice())
                .map(|(k, _)| k.to_vec())
                .collect(),
            removed: ops
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.to_vec())
                .collect(),
            removes: ops
                .iter()
                .any(|(k, v)| v.is_none() && k == case_key.as_slice()),
        };
        let marker = self.pending.key(id.as_bytes());
        let written = (|| -> Result<(), StoreError> {
            self.data.insert(&marker, record.encode())?;
            for (k, v) in ops.iter() {
                #[cfg(test)]
                self.crash_point()?;
                match v {
                    Some(v) => drop(self.data.insert(k, v)?),
                    None => drop(self.data.remove(k)?),
                }
            }
            #[cfg(test)]
            self.crash_point()?;
            self.data.remove(&marker)?;
            Ok(())
        })();
        if let Err(e) = written {
            #[cfg(test)]
            if self.crash_after.load(Ordering::SeqCst) == 0
                && !self.settle_when_cut.load(Ordering::SeqCst)
            {
                return Err(e);
            }
            tracing::error!(case = id, error = %e, "a write failed half-way; settling it");
            self.tallies_exact.store(false, Ordering::Release);
            if let Err(again) = self.settle(id.as_bytes()) {
                tracing::error!(case = id, error = %again, "could not settle the failed write; the store refuses writes until it is opened again");
                self.unsettled.store(true, Ordering::Release);
            }
            return Err(e);
        }
        Ok(())
    }

    /// A case as stored (see [`codec`]).
    fn encode_case(&self, case: &Case) -> Result<Vec<u8>, StoreError> {
        self.codec.encode(Kind::Cases, encode(case)?)
    }

    /// A stored case value, or the part of it `T` reads.
    fn decode_case<T: for<'de> Deserialize<'de>>(
        &self,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        decode(key, &self.codec.json(key, bytes)?)
    }

    /// One write's events as stored: their JSON array, compressed (see [`codec`]). Events
    /// are most of a store — each decision record carries its whole input for replay — and
    /// are read rarely (history, replay, backtest).
    fn encode_events(&self, events: &[Event]) -> Result<Vec<u8>, StoreError> {
        self.codec.encode(Kind::Events, encode(&events)?)
    }

    /// Decodes one value of the event space. A write stores all its events as one JSON
    /// array under the key of the first (every sled insert copies its node, so one larger
    /// value is cheaper than several); stores written before held one event per value, and
    /// still read.
    fn decode_events(&self, key: &[u8], bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
        let json = self.codec.json(key, bytes)?;
        match json.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => decode(key, &json),
            _ => Ok(vec![decode(key, &json)?]),
        }
    }

    /// Installs the compression dictionaries the store holds.
    fn load_dictionaries(&self) -> Result<(), StoreError> {
        for kind in [Kind::Cases, Kind::Events] {
            if let Some(bytes) = self.meta.get(kind.meta_key())? {
                self.codec.install(kind, &bytes)?;
            }
        }
        Ok(())
    }

    /// Trains the compression dictionaries on a thread of its own, once the store holds
    /// enough cases (see [`codec`]); at most one training at a time.
    fn train_in_background(&self) {
        if !self.codec.claim_training() {
            return;
        }
        let (data, meta, codec) = (self.data.clone(), self.meta.clone(), self.codec.clone());
        let prefixes = (self.cases.prefix, self.events.prefix);
        let spawned = std::thread::Builder::new()
            .name("civic-sled-dictionary".into())
            .spawn(move || {
                if let Err(e) = train(&data, prefixes, &meta, &codec) {
                    tracing::warn!(error = %e, "training the compression dictionaries failed; values stay compressed without them");
                }
            });
        match spawned {
            Ok(handle) => {
                if let Some(old) = self.trainer.lock().replace(handle) {
                    let _ = old.join();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start training the compression dictionaries")
            }
        }
    }

    /// Waits for a training in progress (tests, and closing the store).
    pub fn wait_for_training(&self) {
        if let Some(handle) = self.trainer.lock().take() {
            let _ = handle.join();
        }
    }

    /// Whether values are now written with trained dictionaries (both kinds).
    pub fn has_dictionaries(&self) -> bool {
        self.codec.has(Kind::Cases) && self.codec.has(Kind::Events)
    }

    /// The writes a crash had left half-made that opening this store settled.
    pub fn settled_on_open(&self) -> Settled {
        self.settled
    }

    /// Whether opening rebuilt the counts from the cases (they were not saved: the store
    /// was not closed cleanly, or is older than them) instead of taking back saved ones.
    pub fn counts_rebuilt_on_open(&self) -> bool {
        self.rebuilt
    }

    /// Applies a written case's deltas to the counts; when a new hour starts, activity
    /// older than the kept window is dropped, so the counts stay small over years.
    fn tally(&self, deltas: Vec<(tally::Key, i64)>) {
        let mut t = self.tallies.lock();
        let before = t.latest_hour();
        t.apply(deltas);
        let after = t.latest_hour();
        if after > before {
            t.forget_activity_before(after.saturating_sub(ACTIVITY_DAYS * DAY_MS));
        }
    }

    /// Takes back the counts saved when the store was last closed, removing them durably
    /// before anything is written (so a crash from now on leaves none); rebuilds them from
    /// the cases when there are none.
    fn take_tallies(&mut self) -> Result<(), StoreError> {
        let saved = self.meta.get(META_TALLIES)?;
        let counts = match saved {
            Some(bytes) => {
                let t = Tallies::decode(META_TALLIES, &bytes)?;
                self.meta.remove(META_TALLIES)?;
                self.meta.flush()?;
                t
            }
            None => {
                self.rebuilt = true;
                self.recount()?
            }
        };
        *self.tallies.lock() = counts;
        Ok(())
    }

    /// The counts computed from every case, and the recent history of the cases changed in
    /// the last [`ACTIVITY_DAYS`] (older activity is not kept).
    fn recount(&self) -> Result<Tallies, StoreError> {
        let started = std::time::Instant::now();
        let mut t = Tallies::default();
        let mut recent = Vec::new();
        let mut latest = Millis::MIN;
        for kv in self.cases.iter() {
            let (k, v) = kv?;
            let c: Case = self.decode_case(&k, &v)?;
            latest = latest.max(c.updated_at);
            t.apply(tally::deltas(None, &c, &[]));
            recent.push((c.updated_at, c));
            // Only what may fall in the kept window needs its history read.
            if recent.len() > 4096 {
                let since = latest - ACTIVITY_DAYS * DAY_MS;
                recent.retain(|(at, _)| *at >= since);
            }
        }
        let since = latest.saturating_sub(ACTIVITY_DAYS * DAY_MS);
        let mut cases = 0u64;
        for (at, c) in &recent {
            if *at < since {
                continue;
            }
            cases += 1;
            let events: Vec<Event> = self
                .history_of(&c.id, c.event_count)?
                .into_iter()
                .filter(|e| e.at >= since)
                .collect();
            let mut only_events = tally::deltas(None, c, &events);
            only_events.retain(|((_, k), _)| !matches!(k, tally::Tally::Status(_)));
            t.apply(only_events);
        }
        if !recent.is_empty() || latest != Millis::MIN {
            tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                recent_cases = cases,
                "rebuilt the case counts (the store was not closed cleanly, or is new to them)"
            );
        }
        Ok(t)
    }

    /// Saves the counts for the next open, unless a write failed half-way while running
    /// (then the next open rebuilds them). Called when the store is closed.
    fn save_tallies(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if !self.tallies_exact.load(Ordering::Acquire) || self.unsettled.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut t = self.tallies.lock().clone();
        t.forget_activity_before(t.latest_hour().saturating_sub(ACTIVITY_DAYS * DAY_MS));
        self.meta.insert(META_TALLIES, t.encode()?)?;
        self.db.flush()?;
        Ok(())
    }

    /// Tests only: fails like a crash once `crash_after` operations have been made.
    #[cfg(test)]
    fn crash_point(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let left = self.crash_after.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Io("test: the process died here".into()));
        }
        if left != usize::MAX {
            self.crash_after.store(left - 1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Finishes or undoes every write a crash left half-made (see [`Pending`]).
    fn settle_all(&self) -> Result<Settled, StoreError> {
        let ids: Vec<Vec<u8>> = self
            .pending
            .iter()
            .map(|kv| kv.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(Settled::default());
        }
        let mut settled = Settled::default();
        for id in &ids {
            match self.settle(id)? {
                Some(true) => settled.undone += 1,
                Some(false) => settled.finished += 1,
                None => {}
            }
        }
        self.db.flush()?;
        tracing::warn!(
            finished = settled.finished,
            undone = settled.undone,
            "settled writes that were interrupted by a crash"
        );
        Ok(settled)
    }

    /// Settles the pending write of case `id`, if any, in one batch: removes the old index
    /// entries if the case was written, else what the write added. Returns whether it was
    /// undone.
    fn settle(&self, id: &[u8]) -> Result<Option<bool>, StoreError> {
        #[cfg(test)]
        if self
            .settling_fails
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Io("test: settling failed".into()));
        }
        let Some(bytes) = self.pending.get(id)? else {
            return Ok(None);
        };
        let p = Pending::decode(&self.pending.key(id), &bytes)?;
        let name = String::from_utf8_lossy(id);
        let undo = match self.case_version(&name)? {
            _ if p.removes => false,
            Some(v) if v == p.from + 1 => false,
            Some(v) if v == p.from => true,
            None if p.from == 0 => true,
            found => {
                return Err(StoreError::Corrupt {
                    key: hex::encode(self.pending.key(id)),
                    message: format!(
                        "a write to case {name} from version {} was interrupted, and the case is at {found:?}",
                        p.from
                    ),
                });
            }
        };
        let mut batch = sled::Batch::default();
        for k in if undo { &p.added } else { &p.removed } {
            batch.remove(k.as_slice());
        }
        batch.remove(self.pending.key(id));
        self.data.apply_batch(batch)?;
        Ok(Some(undo))
    }

    /// A stored case's version, without decoding the rest of it.
    fn case_version(&self, id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.case_header(id)?.map(|h| h.version))
    }

    /// A stored case's version and event count, without decoding the rest of it.
    fn case_header(&self, id: &str) -> Result<Option<CaseHeader>, StoreError> {
        self.cases
            .get(id.as_bytes())?
            .map(|b| self.decode_case(id.as_bytes(), &b))
            .transpose()
    }

    /// Adds the writes that turn `old` into `change` to `ops`: the events, the index
    /// entries that changed, the case with its next version. Returns the case as written
    /// and what it changes in the counts.
    fn stage_into(
        &self,
        old: &Case,
        change: Change,
        batch: &mut ops::Ops,
    ) -> Result<(Case, Vec<(tally::Key, i64)>), StoreError> {
        let (new, events) = next_version(old, change)?;
        let deltas = tally::deltas(Some(old), &new, &events);
        if !events.is_empty() {
            batch.insert(
                self.events.key(&keys::event_key(&old.id, old.event_count)),
                self.encode_events(&events)?,
            );
        }
        // In this order — additions, the case, removals — so a write made of single
        // operations (see [`Pending`]) is one readers tolerate at every step.
        let (old_keys, new_keys) = (keys::index_keys(old), keys::index_keys(&new));
        for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            batch.insert(self.idx.key(k), []);
        }
        let (was_owed, owed) = (assessment::open_facts(old), assessment::open_facts(&new));
        let facts = assessment::event_facts(Some(old), &old.district, &old.id, &events);
        for f in facts
            .iter()
            .chain(owed.iter().filter(|f| !was_owed.contains(f)))
        {
            batch.insert(self.facts.key(&keys::fact_key(f)), []);
        }
        batch.insert(self.cases.key(old.id.as_bytes()), self.encode_case(&new)?);
        for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            batch.remove(self.idx.key(k));
        }
        for f in was_owed.iter().filter(|f| !owed.contains(f)) {
            batch.remove(self.facts.key(&keys::fact_key(f)));
        }
        Ok((new, deltas))
    }

    /// [`SledStore::list`] reading at most `max_scan` entries.
    fn list_scanning(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
        max_scan: usize,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let prefix = match (&filter.district, filter.status, &filter.unit) {
            (_, _, Some(unit)) => keys::prefix(keys::BY_UNIT, &[unit.as_bytes()]),
            (Some(d), Some(s), None) => keys::district_status_prefix(d, s),
            (Some(d), None, None) => keys::prefix(keys::BY_DISTRICT, &[d.as_bytes()]),
            (None, _, None) => vec![keys::ALL_CASES],
        };
        let city_wide = prefix == [keys::ALL_CASES];
        let by_time = prefix[0] == keys::BY_DISTRICT || prefix[0] == keys::BY_DISTRICT_STATUS;
        // The window's bounds in this listing's key space, `[lo, hi)`.
        let mut hi = prefix.clone();
        hi.push(0xff);
        let mut lo = prefix.clone();
        if by_time {
            if let Some(from) = filter.created_from {
                lo.extend_from_slice(&time_key(from));
            }
            if let Some(to) = filter.created_to {
                hi = [&prefix[..], &time_key(to)].concat();
            }
        } else if city_wide && (filter.created_from.is_some() || filter.created_to.is_some()) {
            let (from_id, to_id) = self.id_span(filter.created_from, filter.created_to)?;
            if let Some(id) = from_id {
                lo.extend_from_slice(&id);
            }
            if let Some(id) = to_id {
                hi = [&prefix[..], &id].concat();
            }
        }
        let end = match cursor {
            Some(c) => {
                let k = hex::decode(c).map_err(|_| {
                    StoreError::Invalid("the cursor is not one this store issued".into())
                })?;
                if !k.starts_with(&prefix) {
                    return Err(StoreError::Invalid(
                        "the cursor belongs to another listing".into(),
                    ));
                }
                k.min(hi)
            }
            None => hi,
        };
        let mut cases = Vec::with_capacity(limit);
        let mut last = None;
        let mut scanned = 0usize;
        if lo >= end {
            return Ok(Page {
                cases,
                next: None,
                scanned,
            });
        }
        // A city-wide listing walks the cases themselves, newest id first; the others walk
        // an index and read each case it names.
        let rows = if city_wide {
            self.cases.range(lo[1..].to_vec()..end[1..].to_vec())
        } else {
            self.idx.range(lo..end)
        };
        let mut full = false;
        for kv in rows.rev() {
            if scanned == max_scan {
                full = true;
                break;
            }
            scanned += 1;
            let (k, v) = kv?;
            let (c, position) = if city_wide {
                (
                    self.decode_case::<Case>(&k, &v)?,
                    [&[keys::ALL_CASES][..], &k].concat(),
                )
            } else {
                let id = keys::id_at_end(&k);
                let id = std::str::from_utf8(id).map_err(|_| StoreError::Corrupt {
                    key: hex::encode(&k),
                    message: "id is not utf-8".into(),
                })?;
                // A new case's index entries are written before the case.
                let Some(c) = self.get_case(id)? else {
                    last = Some(k.to_vec());
                    continue;
                };
                (c, k.to_vec())
            };
            last = Some(position);
            if filter.matches(&c) {
                cases.push(c);
                if cases.len() == limit {
                    full = true;
                    break;
                }
            }
        }
        let next = if full { last.map(hex::encode) } else { None };
        Ok(Page {
            cases,
            next,
            scanned,
        })
    }

    /// The current directory version as stored in `meta`.
    fn directory_pointer(&self) -> Result<Option<u64>, StoreError> {
        let Some(v) = self.meta.get(META_DIRECTORY)? else {
            return Ok(None);
        };
        Ok(Some(u64::from_be_bytes(v.as_ref().try_into().map_err(
            |_| StoreError::Corrupt {
                key: "directory_version".into(),
                message: "not 8 bytes".into(),
            },
        )?)))
    }
}

impl CaseStore for SledStore {
    fn engine(&self) -> &'static str {
        "sled"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn ping(&self) -> Result<(), StoreError> {
        if self.unsettled.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Unavailable(
                "an earlier write failed half-way and could not be finished; restart the server"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Ids are numbered after the highest stored one; an id handed out but never written
    /// may be handed out again after a restart, which is harmless because nothing refers
    /// to it.
    fn next_case_id(&self) -> Result<String, StoreError> {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        Ok(super::case_id(n))
    }

    fn create_case(&self, change: Change) -> Result<Case, StoreError> {
        self.create(change)
    }

    fn get_case(&self, id: &str) -> Result<Option<Case>, StoreError> {
        self.read_case(id)
    }

    fn write(&self, writes: Vec<Versioned>) -> Result<Vec<Result<Case, StoreError>>, StoreError> {
        super::once_each(&writes)?;
        writes.into_iter().map(|w| self.write_one(w)).collect()
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.commit.sync()
    }

    /// The events its stored version counts (a write in progress stores its events before
    /// the case that counts them), read without decoding the case.
    fn remove_cases(&self, cases: &[Case]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let out = cases
            .iter()
            .map(|c| self.remove_one(c))
            .collect::<Result<Vec<_>, _>>()?;
        self.commit.sync()?;
        Ok(out)
    }

    fn history(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        match self.case_header(id)? {
            Some(h) => self.history_of(id, h.event_count),
            None => Ok(Vec::new()),
        }
    }

    /// The first `event_count` events of a case (what a case read earlier counts), oldest
    /// first.
    fn history_of(&self, id: &str, event_count: u64) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for kv in self.events.scan_prefix(keys::events_prefix(id)) {
            let (k, v) = kv?;
            out.extend(self.decode_events(&k, &v)?);
        }
        out.retain(|e| e.seq < event_count);
        Ok(out)
    }

    /// A creation-date window is read from the index's time order (district listings) or
    /// from the day markers' span of ids (city-wide), never by walking every case; a call
    /// reads at most [`MAX_SCAN`] entries.
    fn list(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.list_scanning(filter, cursor, limit, MAX_SCAN)
    }

    /// Timers due at or before `now`, earliest first, at most `limit`.
    fn due_timers(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, StoreError> {
        let end = keys::prefix(keys::BY_DUE, &[&time_key(now.saturating_add(1))]);
        self.idx
            .range(vec![keys::BY_DUE]..end)
            .take(limit)
            .map(|kv| {
                let (k, _) = kv?;
                let (due_at, case_id, kind) = timer_entry(&k)?;
                Ok(DueTimer {
                    case_id,
                    kind,
                    due_at,
                })
            })
            .collect()
    }

    /// The caller's cases created at or after `since`, newest first (at most `limit`).
    fn caller_cases(
        &self,
        caller_key: &str,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<Case>, StoreError> {
        let start = keys::prefix(keys::BY_CALLER, &[caller_key.as_bytes(), &time_key(since)]);
        let mut end = keys::prefix(keys::BY_CALLER, &[caller_key.as_bytes()]);
        end.push(0xff);
        // Read forward, keeping the newest `limit` keys: sled steps forward cheaply and
        // backward dearly (a step back searches the tree again), and most calls come from a
        // new caller, whose range one forward seek finds empty.
        let mut newest = std::collections::VecDeque::with_capacity(limit.min(64));
        if limit > 0 {
            for kv in self.idx.range(start..end) {
                let (k, _) = kv?;
                if newest.len() == limit {
                    newest.pop_front();
                }
                newest.push_back(k);
            }
        }
        let mut out = Vec::with_capacity(newest.len());
        for k in newest.iter().rev() {
            let id = String::from_utf8_lossy(keys::id_at_end(k)).into_owned();
            if let Some(c) = self.get_case(&id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn cases_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Case>, StoreError> {
        let start = match after {
            Some(id) => [id.as_bytes(), &[0]].concat(),
            None => Vec::new(),
        };
        self.cases
            .range(start..vec![0xff])
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                self.decode_case(&k, &v)
            })
            .collect()
    }

    fn case_count(&self) -> Result<u64, StoreError> {
        Ok(self.cases.len() as u64)
    }

    /// Counts of cases by (district, status), as kept with every write.
    fn status_counts(&self) -> Result<HashMap<(String, CaseStatus), u64>, StoreError> {
        Ok(self.tallies.lock().status_counts())
    }

    /// One range of the facts space: the district's facts in time order.
    fn assessment(
        &self,
        district: &str,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Result<assessment::Counts, StoreError> {
        let mut counts = assessment::Counts::new();
        let range = keys::fact_bound(district, from)..keys::fact_bound(district, to);
        for kv in self.facts.range(range) {
            let (k, _) = kv?;
            let (at, unit, measure, _, open) =
                keys::parse_fact_key(&k).ok_or_else(|| StoreError::Corrupt {
                    key: hex::encode(&k),
                    message: "not an assessment fact key".into(),
                })?;
            counts
                .entry((district.to_owned(), unit.to_owned(), measure))
                .or_default()
                .add(open, at < now, 1);
        }
        Ok(counts)
    }

    /// From the counts kept with every write (the last [`ACTIVITY_DAYS`] days).
    fn activity(
        &self,
        district: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<Activity>, StoreError> {
        Ok(self.tallies.lock().activity(district, from, to))
    }

    fn put_directory(&self, record: &DirectoryRecord) -> Result<u64, StoreError> {
        let version = self.directory_pointer()?.unwrap_or(0) + 1;
        let bytes = encode(record)?;
        (&self.refdata, &self.meta)
            .transaction(|(r, m)| {
                r.insert(&version.to_be_bytes(), bytes.clone())?;
                m.insert(META_DIRECTORY, &version.to_be_bytes())?;
                Ok(())
            })
            .map_err(|e: TransactionError<StoreError>| untx(e))?;
        self.commit.sync()?;
        Ok(version)
    }

    fn directory_record(&self, version: u64) -> Result<Option<DirectoryRecord>, StoreError> {
        self.refdata
            .get(version.to_be_bytes())?
            .map(|b| decode(b"refdata", &b))
            .transpose()
    }

    fn current_directory_version(&self) -> Result<Option<u64>, StoreError> {
        self.directory_pointer()
    }

    fn directory_versions(&self) -> Result<Vec<u64>, StoreError> {
        self.refdata
            .iter()
            .map(|kv| {
                let (k, _) = kv?;
                Ok(u64::from_be_bytes(k.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt {
                        key: hex::encode(&k),
                        message: "a directory version key is not 8 bytes".into(),
                    }
                })?))
            })
            .collect()
    }

    /// A record of another service's `collection` (plug-in versions, tokens, ...).
    fn record_get(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records(collection)?
            .get(key.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Writes records of `collection` atomically and durably.
    fn record_put(
        &self,
        collection: &str,
        entries: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let tree = self.records(collection)?;
        let mut batch = sled::Batch::default();
        for (k, v) in entries {
            batch.insert(k.as_bytes(), v.as_slice());
        }
        tree.apply_batch(batch)?;
        self.commit.sync()
    }

    /// Removes one record of `collection`, durably (nothing if it is not there).
    fn record_remove(&self, collection: &str, key: &str) -> Result<(), StoreError> {
        self.records(collection)?.remove(key.as_bytes())?;
        self.commit.sync()
    }

    fn record_change(
        &self,
        collection: &str,
        key: &str,
        f: &super::RecordChange<'_>,
    ) -> Result<(), StoreError> {
        let tree = self.records(collection)?;
        tree.transaction(|t| {
            let cur = t.get(key.as_bytes())?;
            let new = match f(cur.as_deref()) {
                Ok(x) => x,
                Err(e) => return abort(e),
            };
            match new {
                Some(v) => drop(t.insert(key.as_bytes(), v)?),
                None => drop(t.remove(key.as_bytes())?),
            }
            Ok(())
        })
        .map_err(untx)?;
        self.commit.sync()
    }

    /// Records of `collection` whose key starts with `prefix`, in key order.
    fn record_scan(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.records(collection)?
            .scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn record_collections(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .db
            .tree_names()
            .iter()
            .filter_map(|n| n.strip_prefix(b"x:"))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect())
    }

    fn import(&self, items: Vec<Imported>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut max_case = 0u64;
        for item in items {
            match item {
                Imported::Directory { version, record } => {
                    self.refdata
                        .insert(version.to_be_bytes(), encode(&record)?)?;
                    if self.directory_pointer()?.is_none_or(|v| v < version) {
                        self.meta.insert(META_DIRECTORY, &version.to_be_bytes())?;
                    }
                }
                Imported::Case(c) => {
                    batch.insert(self.cases.key(c.id.as_bytes()), self.encode_case(&c)?);
                    for k in keys::index_keys(&c) {
                        batch.insert(self.idx.key(&k), &[]);
                    }
                    max_case = max_case.max(id_number(&c.id));
                }
                Imported::Events { case, events } => {
                    if let Some(first) = events.first() {
                        batch.insert(
                            self.events.key(&keys::event_key(&case, first.seq)),
                            self.encode_events(&events)?,
                        );
                    }
                }
                Imported::Record {
                    collection,
                    key,
                    value,
                } => {
                    self.records(&collection)?.insert(key.as_bytes(), value)?;
                }
            }
        }
        self.data.apply_batch(batch)?;
        self.next_id
            .fetch_max(max_case, std::sync::atomic::Ordering::Relaxed);
        // Train the dictionaries as soon as enough is imported, so the rest of the import
        // is written with them (an import is not a request: it waits).
        if max_case >= codec::TRAIN_AT && !self.has_dictionaries() {
            self.train_in_background();
            self.wait_for_training();
        }
        Ok(())
    }

    fn finish_import(&self) -> Result<(), StoreError> {
        // The imported cases' days get their markers afresh, and the counts are rebuilt.
        self.meta.remove(META_DAYS_MARKED)?;
        self.mark_every_day()?;
        *self.tallies.lock() = self.recount()?;
        self.derive_facts()?;
        self.db.flush()?;
        Ok(())
    }

    /// Every case is in exactly its indexes, every index entry points at an existing case
    /// that derives it, and every case has all its events.
    fn check_consistency(&self) -> Result<Consistency, StoreError> {
        let mut report = Consistency::default();
        let mut expected = std::collections::HashSet::new();
        let mut facts = std::collections::HashSet::new();
        for kv in self.cases.iter() {
            let (k, v) = kv?;
            let c: Case = self.decode_case(&k, &v)?;
            report.cases += 1;
            for key in keys::index_keys(&c) {
                if !self.idx.contains_key(&key)? {
                    report.problems.push(format!(
                        "case {} is missing index entry {}",
                        c.id,
                        hex::encode(&key)
                    ));
                }
                expected.insert(key);
            }
            let mut history = Vec::new();
            for kv in self.events.scan_prefix(keys::events_prefix(&c.id)) {
                let (k, v) = kv?;
                history.extend(self.decode_events(&k, &v)?);
            }
            for f in assessment::case_facts(&c, &history) {
                let key = keys::fact_key(&f);
                if !self.facts.contains_key(&key)? {
                    report.problems.push(format!(
                        "case {} is missing its assessment fact {} {} of {}",
                        c.id,
                        f.measure.as_str(),
                        f.at,
                        f.unit
                    ));
                }
                facts.insert(key);
            }
            let events = history.len() as u64;
            report.events += events as usize;
            if events != c.event_count {
                report.problems.push(format!(
                    "case {} has {events} events, expected {}",
                    c.id, c.event_count
                ));
            }
        }
        // Events whose case is gone (a removal that left them behind).
        // A case's events are adjacent, so each case is looked up once.
        let mut last: Option<Vec<u8>> = None;
        for kv in self.events.iter() {
            let (k, _) = kv?;
            let id = &k[..k.iter().position(|b| *b == 0).unwrap_or(k.len())];
            if last.as_deref() == Some(id) {
                continue;
            }
            if !self.cases.contains_key(id)? {
                report.problems.push(format!(
                    "events of case {} belong to no case",
                    String::from_utf8_lossy(id)
                ));
            }
            last = Some(id.to_vec());
        }
        for kv in self.pending.iter() {
            let (k, _) = kv?;
            report.problems.push(format!(
                "a write to case {} is in progress or was interrupted",
                String::from_utf8_lossy(&k)
            ));
        }
        for kv in self.idx.iter() {
            let (k, _) = kv?;
            report.index_entries += 1;
            if !expected.contains(&k) {
                report.problems.push(format!(
                    "index entry {} belongs to no case",
                    hex::encode(&k)
                ));
            }
        }
        // A fact must follow from its case's history; a removed case's facts stay (what its
        // units did is still counted), except deadlines it still owed.
        for kv in self.facts.iter() {
            let (k, _) = kv?;
            if facts.contains(&k) {
                continue;
            }
            let problem = match keys::parse_fact_key(&k) {
                None => Some("is not an assessment fact key"),
                Some((_, _, _, case, open)) => {
                    if self.cases.contains_key(case.as_bytes())? {
                        Some("does not follow from its case's history")
                    } else {
                        open.then_some("is a deadline owed by no case")
                    }
                }
            };
            if let Some(why) = problem {
                report
                    .problems
                    .push(format!("assessment fact {} {why}", hex::encode(&k)));
            }
        }
        Ok(report)
    }
}

/// What a store holds, part by part, as sled's live keys and values (not its files, which
/// also hold old versions until sled cleans its segments): what disk figures are
/// compared against.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LiveBytes {
    /// `(part, entries, bytes of keys and values)`: cases, events, index, other.
    pub parts: Vec<(String, u64, u64)>,
    /// The files' size on disk (sled's own figure).
    pub on_disk: u64,
}

impl SledStore {
    /// The live bytes of each part of the store (a walk of every entry: for benchmarks and
    /// operators, not for requests).
    pub fn live_bytes(&self) -> Result<LiveBytes, StoreError> {
        let mut parts = vec![
            ("cases".to_owned(), 0u64, 0u64),
            ("events".to_owned(), 0, 0),
            ("index".to_owned(), 0, 0),
            ("other".to_owned(), 0, 0),
        ];
        for kv in self.data.iter() {
            let (k, v) = kv?;
            let i = match k.first() {
                Some(p) if *p == self.cases.prefix => 0,
                Some(p) if *p == self.events.prefix => 1,
                Some(p) if *p == self.idx.prefix => 2,
                _ => 3,
            };
            parts[i].1 += 1;
            parts[i].2 += (k.len() + v.len()) as u64;
        }
        for name in self.db.tree_names() {
            if name.as_ref() == b"data" {
                continue;
            }
            for kv in self.db.open_tree(&name)?.iter() {
                let (k, v) = kv?;
                parts[3].1 += 1;
                parts[3].2 += (k.len() + v.len()) as u64;
            }
        }
        Ok(LiveBytes {
            parts,
            on_disk: self.db.size_on_disk()?,
        })
    }

    /// Counts of cases by (district, status) from the index, not the kept counts (what the
    /// tests compare those with).
    pub fn status_counts_by_index(&self) -> Result<HashMap<(String, CaseStatus), u64>, StoreError> {
        let mut out = HashMap::new();
        for kv in self.idx.scan_prefix([keys::BY_DISTRICT_STATUS]) {
            let (k, _) = kv?;
            let mut parts = k[1..].split(|b| *b == 0);
            let (Some(d), Some(s)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(status) = std::str::from_utf8(s).unwrap_or("").parse::<CaseStatus>() else {
                continue;
            };
            *out.entry((String::from_utf8_lossy(d).into_owned(), status))
                .or_default() += 1;
        }
        Ok(out)
    }
}

/// A timer index entry's due time, case id and kind; a key that is none is corruption.
fn timer_entry(k: &[u8]) -> Result<(Millis, String, TimerKind), StoreError> {
    keys::parse_timer_key(k).ok_or_else(|| StoreError::Corrupt {
        key: hex::encode(k),
        message: "bad timer key".into(),
    })
}

/// Samples the newest cases and event values and trains the dictionaries still missing;
/// each is synced to disk before any value is written with it.
fn train(
    data: &sled::Tree,
    (cases, events): (u8, u8),
    meta: &sled::Tree,
    codec: &Codec,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let sample = |prefix: u8, n: u64| -> Result<Vec<Vec<u8>>, StoreError> {
        data.scan_prefix([prefix])
            .rev()
            .take(n as usize)
            .map(|kv| {
                let (k, v) = kv?;
                Ok(codec.json(&k, &v)?.into_owned())
            })
            .collect()
    };
    let samples = [
        (Kind::Cases, sample(cases, codec::TRAIN_AT)?),
        (Kind::Events, sample(events, 2 * codec::TRAIN_AT)?),
    ];
    let trained = codec.train(&samples, &|kind, dict| {
        meta.insert(kind.meta_key(), dict)?;
        meta.flush()?;
        Ok(())
    })?;
    tracing::info!(
        trained,
        took_ms = started.elapsed().as_millis() as u64,
        "trained the store's compression dictionaries"
    );
    Ok(())
}

/// A key space inside the shared data tree: the same calls as a tree, with a prefix byte.
struct Space {
    tree: sled::Tree,
    prefix: u8,
}

type KvIter = Box<dyn DoubleEndedIterator<Item = sled::Result<(Vec<u8>, sled::IVec)>>>;

impl Space {
    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(k.len() + 1);
        v.push(self.prefix);
        v.extend_from_slice(k);
        v
    }
    fn strip(
        it: impl DoubleEndedIterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'static,
    ) -> KvIter {
        Box::new(it.map(|kv| kv.map(|(k, v)| (k[1..].to_vec(), v))))
    }
    fn get(&self, k: &[u8]) -> sled::Result<Option<sled::IVec>> {
        self.tree.get(self.key(k))
    }
    fn contains_key(&self, k: &[u8]) -> sled::Result<bool> {
        self.tree.contains_key(self.key(k))
    }
    fn scan_prefix(&self, p: impl AsRef<[u8]>) -> KvIter {
        Self::strip(self.tree.scan_prefix(self.key(p.as_ref())))
    }
    fn iter(&self) -> KvIter {
        self.scan_prefix([])
    }
    fn range(&self, r: std::ops::Range<Vec<u8>>) -> KvIter {
        Self::strip(self.tree.range(self.key(&r.start)..self.key(&r.end)))
    }
    fn len(&self) -> usize {
        self.iter().count()
    }
}

#[cfg(test)]
mod tests;
