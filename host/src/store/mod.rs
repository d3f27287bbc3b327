//! The case store: the only code that touches sled.
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
//! (the timer sweep) write unsynced and flush once.
//!
//! Other trees: `meta` (schema version), `refdata` (directory versions), and named record
//! trees for other services (`plugins`, `tokens`, ...).

mod durability;
mod keys;
mod ops;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

pub use durability::Durability;
use durability::GroupCommit;
pub use keys::time_key;

use crate::directory::{Directory, DirectoryError};
use crate::lifecycle::LifecycleError;
use crate::model::{Case, CaseStatus, Event, EventBody, Millis, PendingTimer, TimerKind};

/// The schema this code reads and writes.
///
/// 2: the timer index holds each case's earliest pending timer only, and there is no index
/// by creation time. 1 held every pending timer and that index; a schema-1 store is upgraded
/// in place when opened (see [`Store::open`]).
pub const SCHEMA_VERSION: u32 = 2;
/// Older schemas this build upgrades in place.
const UPGRADES_FROM: u32 = 1;
/// Largest page a listing returns.
pub const MAX_PAGE: usize = 200;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened; nothing was changed.
    #[error("could not open the store at {path}: {message}")]
    Open {
        /// The store directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The store was written by another schema version; it was left untouched.
    #[error(
        "the store at {path} has schema version {found}, this build reads version {supported}; \
         use a build that matches, or export with it and import here. The store was not changed"
    )]
    UnknownSchema {
        /// The store directory.
        path: PathBuf,
        /// The version found.
        found: String,
        /// The version this build reads.
        supported: u32,
    },
    /// The directory holds something that is not a civic-rules store; it was left untouched.
    #[error(
        "{path} is not a civic-rules store ({why}); point --data at an empty or existing store directory"
    )]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What was found.
        why: String,
    },
    /// No such case.
    #[error("case {0} does not exist")]
    NotFound(String),
    /// A case with this id already exists.
    #[error("case {0} already exists")]
    Exists(String),
    /// The case changed since the caller read it; nothing was written.
    #[error(
        "case {case} is at version {actual}, not {expected}: it changed since you read it; reload and retry"
    )]
    Conflict {
        /// The case.
        case: String,
        /// The version the caller had.
        expected: u64,
        /// The version stored.
        actual: u64,
    },
    /// The lifecycle refused the action; nothing was written.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// Something the caller asked is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Reference data was refused.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A stored record could not be read.
    #[error("stored record {key} is unreadable: {message}")]
    Corrupt {
        /// Which record.
        key: String,
        /// Why.
        message: String,
    },
    /// An import line was refused; nothing was imported.
    #[error("import line {line}: {message}")]
    Import {
        /// 1-based line number.
        line: usize,
        /// Why.
        message: String,
    },
    /// sled or the file system failed.
    #[error("storage i/o failed: {0}")]
    Io(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
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

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

/// Encodes a stored value. Never a panic: a value that cannot be written is an error for
/// its one write, not a crashed worker (a failure record that could not be serialised once
/// took the case and the timer sweeper with it).
fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| {
        StoreError::Invalid(format!("a value could not be encoded for the store: {e}"))
    })
}

/// Numbers a write's events from `first` on.
fn stamp(first: u64, events: Vec<(Millis, String, EventBody)>) -> Vec<Event> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, (at, actor, what))| Event {
            seq: first + i as u64,
            at,
            actor,
            what,
        })
        .collect()
}

/// Decodes one value of the event space. A write stores all its events as one JSON array
/// under the key of the first (every sled insert copies its node, so one larger value is
/// cheaper than several); stores written before held one event per value, and still read.
fn decode_events(key: &[u8], bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => decode(key, bytes),
        _ => Ok(vec![decode(key, bytes)?]),
    }
}

/// What a listing filters on. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this district.
    pub district: Option<String>,
    /// Only this status.
    pub status: Option<CaseStatus>,
    /// Only cases this unit handles (lead or co-handler).
    pub unit: Option<String>,
    /// Only this category.
    pub category: Option<String>,
    /// Created at or after.
    pub created_from: Option<Millis>,
    /// Created before.
    pub created_to: Option<Millis>,
    /// Only cases created by this token.
    pub created_by: Option<String>,
}

impl Filter {
    fn matches(&self, c: &Case) -> bool {
        self.district.as_ref().is_none_or(|d| *d == c.district)
            && self.status.is_none_or(|s| s == c.status)
            && self
                .unit
                .as_ref()
                .is_none_or(|u| c.handler.as_ref() == Some(u) || c.co_handlers.contains(u))
            && self.category.as_ref().is_none_or(|x| *x == c.category)
            && self.created_from.is_none_or(|t| c.created_at >= t)
            && self.created_to.is_none_or(|t| c.created_at < t)
            && self.created_by.as_ref().is_none_or(|b| *b == c.created_by)
    }
}

/// One page of a listing, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The cases.
    pub cases: Vec<Case>,
    /// Pass back to get the next page; `None` at the end.
    pub next: Option<String>,
    /// Entries read to make it (at most [`MAX_SCAN`]).
    pub scanned: usize,
}

/// A timer that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    /// The case.
    pub case_id: String,
    /// Which deadline.
    pub kind: TimerKind,
    /// When it was due.
    pub due_at: Millis,
}

/// What a consistency check found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consistency {
    /// Cases checked.
    pub cases: usize,
    /// Index entries checked.
    pub index_entries: usize,
    /// Everything wrong, in words.
    pub problems: Vec<String>,
}

/// A new write: the case as it should be stored and the events to append.
#[derive(Debug, Clone)]
pub struct Change {
    /// The case.
    pub case: Case,
    /// Events to append (their `seq` is assigned by the store).
    pub events: Vec<(Millis, String, EventBody)>,
}

/// A write to one case prepared by [`Store::stage`], to be applied by
/// [`Store::write_staged`] if the case is still at the version it was staged from.
pub struct Staged {
    expected: u64,
    ops: ops::Ops,
    case: Case,
}

/// The case store.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    /// Cases, events, indexes and pending records share one tree.
    data: sled::Tree,
    cases: Space,
    events: Space,
    idx: Space,
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
    directories: RwLock<HashMap<u64, Arc<Directory>>>,
    current_directory: RwLock<Option<Arc<Directory>>>,
    /// Set when a write failed half-way and could not be settled: its case's pending
    /// record must be settled before anything else writes to the case, which only opening
    /// the store again does.
    unsettled: std::sync::atomic::AtomicBool,
    /// What opening the store found half-made and settled.
    settled: Settled,
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

/// A write to one case, made as single sled operations instead of one batch, recorded
/// before its first operation and removed after its last.
///
/// sled applies a batch under a lock that also stops every reader: with a batch per write,
/// intake's repeat checks and the timer sweep's reads waited on every other write. So a
/// write is made as single operations in an order readers tolerate: the events and new
/// index entries first, then the case (which counts the events and from which every index
/// entry is checked), then the old index entries are removed. A crash in between leaves
/// this record, and opening the store settles it: if the case was written, the old entries
/// are removed; if not, what was added is. sled recovers a prefix of its operations, so the
/// record is there whenever any of the write's operations is.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    /// The case's version before the write.
    from: u64,
    /// Keys of the data tree the write adds before the case (its events and new index
    /// entries), hex.
    added: Vec<String>,
    /// Keys it removes after the case (old index entries), hex.
    removed: Vec<String>,
}

/// How long opening a store waits for sled's lock on its files.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// sled's page cache unless configured: 1 GiB (sled's own default).
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

const META_SCHEMA: &[u8] = b"schema";
/// The file that names the schema, read before sled opens anything.
pub const MARKER: &str = "CIVIC_STORE";
const META_DIRECTORY: &[u8] = b"directory_version";
/// `day ‖ day number` → the id of a case created early that day (see [`Store::mark_day`]).
const META_DAY: &[u8] = b"day:";
/// Set once every day of the stored cases has its marker (stores from before markers get
/// them once, at their first open).
const META_DAYS_MARKED: &[u8] = b"days-marked";
/// Most index entries or cases one listing call reads before it returns what it found
/// with a cursor to go on: a filter that matches little cannot make one request walk the
/// whole store.
pub const MAX_SCAN: usize = 5_000;

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

impl Store {
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

    /// [`Store::open`] with sled's page cache sized `cache_bytes`. A store whose open
    /// cases' nodes fit the cache sweeps due timers without reading them from disk.
    pub fn open_with_cache(
        path: &Path,
        durability: Durability,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.to_owned(),
            message,
        };
        let marker = path.join(MARKER);
        let mut fresh = false;
        let mut upgrade = false;
        if path.exists() {
            if !path.is_dir() {
                return Err(StoreError::NotAStore {
                    path: path.to_owned(),
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
                    if found == UPGRADES_FROM.to_string() {
                        upgrade = true;
                    } else if found != SCHEMA_VERSION.to_string() {
                        return Err(StoreError::UnknownSchema {
                            path: path.to_owned(),
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
                            path: path.to_owned(),
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
        let db = loop {
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
                    break other
                        .map_err(|e| open_err(format!("{e}; the files were left as they are")))?;
                }
            }
        };
        let meta = db.open_tree("meta")?;
        let inside = meta.get(META_SCHEMA)?;
        let says = |v: u32| inside.as_deref() == Some(v.to_string().as_bytes());
        if fresh {
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
            db.flush()?;
            write_marker(path)?;
        } else if !(says(SCHEMA_VERSION) || upgrade && says(UPGRADES_FROM)) {
            // An interrupted upgrade may have recorded the new schema inside and not yet
            // in the marker; the upgrade runs again and finishes.
            return Err(StoreError::NotAStore {
                path: path.to_owned(),
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
            cases,
            data,
            locks: (0..256).map(|_| parking_lot::Mutex::new(())).collect(),
            next_id: std::sync::atomic::AtomicU64::new(last_id),
            marked_day: std::sync::atomic::AtomicI64::new(i64::MIN),
            refdata: db.open_tree("refdata")?,
            commit: GroupCommit::new(db.clone(), durability),
            meta,
            db,
            directories: RwLock::new(HashMap::new()),
            current_directory: RwLock::new(None),
            unsettled: std::sync::atomic::AtomicBool::new(false),
            settled: Settled::default(),
            #[cfg(test)]
            crash_after: std::sync::atomic::AtomicUsize::new(usize::MAX),
            #[cfg(test)]
            settle_when_cut: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            settling_fails: std::sync::atomic::AtomicBool::new(false),
        })
        .and_then(|mut store| {
            if upgrade {
                store.upgrade_from_v1()?;
            }
            store.settled = store.settle_all()?;
            store.mark_every_day()?;
            Ok(store)
        })
    }

    /// Schema 1 → 2: removes every timer entry that is not its case's earliest (schema 1
    /// indexed them all) and the index by creation time (schema 2 lists city-wide from the
    /// cases themselves), a batch at a time, then records schema 2 inside and in the marker.
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
            let stale = self
                .get_case(&id)?
                .is_some_and(|c| c.timers.contains(&timer) && keys::next_timer(&c) != Some(&timer));
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
        self.meta
            .insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())?;
        self.db.flush()?;
        write_marker(&self.path)?;
        tracing::info!(
            path = %self.path.display(),
            removed,
            "upgraded the store from schema 1 to {SCHEMA_VERSION}: the timer index holds each case's earliest timer, the index by creation time is gone"
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
            let c: CaseCreated = decode(&k, &v)?;
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

    /// A record of another service's `collection` (plug-in versions, tokens, ...).
    pub fn record_get(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records(collection)?
            .get(key.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Writes records of `collection` atomically and durably.
    pub fn record_put(
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
    pub fn record_remove(&self, collection: &str, key: &str) -> Result<(), StoreError> {
        self.records(collection)?.remove(key.as_bytes())?;
        self.commit.sync()
    }

    /// Changes one record atomically and durably: `f` sees the current value and returns
    /// the new one (`None` deletes). `f` may run more than once.
    pub fn record_update<T>(
        &self,
        collection: &str,
        key: &str,
        f: impl Fn(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), StoreError>,
    ) -> Result<T, StoreError> {
        let tree = self.records(collection)?;
        let out = tree
            .transaction(|t| {
                let cur = t.get(key.as_bytes())?;
                let (new, out) = match f(cur.as_deref()) {
                    Ok(x) => x,
                    Err(e) => return abort(e),
                };
                match new {
                    Some(v) => drop(t.insert(key.as_bytes(), v)?),
                    None => drop(t.remove(key.as_bytes())?),
                }
                Ok(out)
            })
            .map_err(untx)?;
        self.commit.sync()?;
        Ok(out)
    }

    /// Records of `collection` whose key starts with `prefix`, in key order.
    pub fn record_scan(
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

    /// Waits until every write made before this call is durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.commit.sync()
    }

    /// Flushes made so far (for tests and metrics).
    pub fn flush_count(&self) -> u64 {
        self.commit.flushes()
    }

    /// A fresh case id. Ids are numbered after the highest stored one; an id handed out
    /// but never written may be handed out again after a restart, which is harmless
    /// because nothing refers to it.
    pub fn next_case_id(&self) -> Result<String, StoreError> {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        Ok(format!("c-{n:010}"))
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
    pub fn create_case(&self, change: Change) -> Result<Case, StoreError> {
        let Change { mut case, events } = change;
        case.version = 1;
        case.event_count = events.len() as u64;
        {
            let _guard = self.lock(&case.id);
            if self.cases.get(case.id.as_bytes())?.is_some() {
                return Err(StoreError::Exists(case.id.clone()));
            }
            let mut ops = ops::Ops::default();
            if !events.is_empty() {
                ops.insert(
                    self.events.key(&keys::event_key(&case.id, 0)),
                    encode(&stamp(0, events))?,
                );
            }
            // Additions before the case, as `write_unbatched` needs them.
            for k in keys::index_keys(&case) {
                ops.insert(self.idx.key(&k), []);
            }
            ops.insert(self.cases.key(case.id.as_bytes()), encode(&case)?);
            self.write_unbatched(&case.id, 0, &ops)?;
        }
        self.mark_day(&case.id, case.created_at)?;
        self.commit.sync()?;
        Ok(case)
    }

    /// Reads a case.
    pub fn get_case(&self, id: &str) -> Result<Option<Case>, StoreError> {
        self.cases
            .get(id.as_bytes())?
            .map(|b| decode(id.as_bytes(), &b))
            .transpose()
    }

    /// Changes a case atomically: `f` gets the stored case and returns the new one with the
    /// events to append. With `expected_version`, a case that changed since is a
    /// [`StoreError::Conflict`] and nothing is written. `f` may run more than once.
    pub fn update_case(
        &self,
        id: &str,
        expected_version: Option<u64>,
        f: impl Fn(&Case) -> Result<Change, StoreError>,
    ) -> Result<Case, StoreError> {
        let new = self.update_case_unsynced(id, expected_version, f)?;
        self.commit.sync()?;
        Ok(new)
    }

    /// [`Store::update_case`] without waiting for durability: the caller must call
    /// [`Store::sync`] before acknowledging anything (batch jobs make many writes durable
    /// with one flush).
    pub fn update_case_unsynced(
        &self,
        id: &str,
        expected_version: Option<u64>,
        f: impl Fn(&Case) -> Result<Change, StoreError>,
    ) -> Result<Case, StoreError> {
        let _guard = self.lock(id);
        let old = self
            .get_case(id)?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if let Some(v) = expected_version
            && v != old.version
        {
            return Err(StoreError::Conflict {
                case: id.to_owned(),
                expected: v,
                actual: old.version,
            });
        }
        let mut ops = ops::Ops::default();
        let new = self.stage_into(&old, f(&old)?, &mut ops)?;
        self.write_unbatched(id, old.version, &ops)?;
        Ok(new)
    }

    /// Prepares the write that turns `old` into `change` without writing or taking a lock:
    /// the values are encoded here, so many threads can stage at once and
    /// [`Store::write_staged`] only checks versions and applies.
    pub fn stage(&self, old: &Case, change: Change) -> Result<Staged, StoreError> {
        let mut ops = ops::Ops::default();
        let case = self.stage_into(old, change, &mut ops)?;
        Ok(Staged {
            expected: old.version,
            ops,
            case,
        })
    }

    /// Applies staged writes, each only if its case is still at the version it was staged
    /// from (else [`StoreError::Conflict`] for it and nothing of it is written); not durable
    /// until [`Store::sync`]. A case may appear once per call; that is checked before
    /// anything is written.
    ///
    /// For batch jobs (the timer sweep): they stage many writes at once, off the lock, and
    /// make them durable with one flush.
    pub fn write_staged(
        &self,
        staged: Vec<Staged>,
    ) -> Result<Vec<Result<Case, StoreError>>, StoreError> {
        let mut seen = std::collections::HashSet::with_capacity(staged.len());
        if let Some(s) = staged.iter().find(|s| !seen.insert(s.case.id.as_str())) {
            return Err(StoreError::Invalid(format!(
                "case {} appears twice in one write",
                s.case.id
            )));
        }
        staged.into_iter().map(|s| self.write_one(s)).collect()
    }

    /// One staged write: checked against the stored version under the case's lock, then
    /// written operation by operation inside a [`Pending`] record.
    fn write_one(&self, s: Staged) -> Result<Result<Case, StoreError>, StoreError> {
        let id = s.case.id.as_str();
        let _guard = self.lock(id);
        match self.case_version(id)? {
            None => return Ok(Err(StoreError::NotFound(id.to_owned()))),
            Some(v) if v != s.expected => {
                return Ok(Err(StoreError::Conflict {
                    case: id.to_owned(),
                    expected: s.expected,
                    actual: v,
                }));
            }
            Some(_) => {}
        }
        self.write_unbatched(id, s.expected, &s.ops)?;
        Ok(Ok(s.case))
    }

    /// Writes `ops` (as [`Store::stage_into`] orders them: additions, the case, removals)
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
                .map(|(k, _)| hex::encode(k))
                .collect(),
            removed: ops
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| hex::encode(k))
                .collect(),
        };
        let marker = self.pending.key(id.as_bytes());
        let written = (|| -> Result<(), StoreError> {
            self.data.insert(&marker, encode(&record)?)?;
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
            if let Err(again) = self.settle(id.as_bytes()) {
                tracing::error!(case = id, error = %again, "could not settle the failed write; the store refuses writes until it is opened again");
                self.unsettled.store(true, Ordering::Release);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The writes a crash had left half-made that opening this store settled.
    pub fn settled_on_open(&self) -> Settled {
        self.settled
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
        let p: Pending = decode(id, &bytes)?;
        let name = String::from_utf8_lossy(id);
        let undo = match self.case_version(&name)? {
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
            batch.remove(hex::decode(k).map_err(|e| StoreError::Corrupt {
                key: hex::encode(self.pending.key(id)),
                message: format!("bad key {k}: {e}"),
            })?);
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
            .map(|b| decode(id.as_bytes(), &b))
            .transpose()
    }

    /// Adds the writes that turn `old` into `change` to `ops`: the events, the index
    /// entries that changed, the case with its next version. Returns the case as written.
    fn stage_into(
        &self,
        old: &Case,
        change: Change,
        batch: &mut ops::Ops,
    ) -> Result<Case, StoreError> {
        let Change {
            case: mut new,
            events,
        } = change;
        if new.id != old.id || new.district != old.district || new.created_at != old.created_at {
            return Err(StoreError::Invalid(
                "a case's id, district and creation time never change".into(),
            ));
        }
        new.version = old.version + 1;
        new.event_count = old.event_count + events.len() as u64;
        if !events.is_empty() {
            batch.insert(
                self.events.key(&keys::event_key(&old.id, old.event_count)),
                encode(&stamp(old.event_count, events))?,
            );
        }
        // In this order — additions, the case, removals — so a write made of single
        // operations (see [`Pending`]) is one readers tolerate at every step.
        let (old_keys, new_keys) = (keys::index_keys(old), keys::index_keys(&new));
        for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            batch.insert(self.idx.key(k), []);
        }
        batch.insert(self.cases.key(old.id.as_bytes()), encode(&new)?);
        for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            batch.remove(self.idx.key(k));
        }
        Ok(new)
    }

    /// A case's history, oldest first: the events its stored version counts (a write in
    /// progress stores its events before the case that counts them).
    pub fn history(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        match self.case_header(id)? {
            Some(h) => self.history_of(id, h.event_count),
            None => Ok(Vec::new()),
        }
    }

    /// The first `event_count` events of a case (what a case read earlier counts), oldest
    /// first: [`Store::history`] for a caller that holds the case already.
    pub fn history_of(&self, id: &str, event_count: u64) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for kv in self.events.scan_prefix(keys::events_prefix(id)) {
            let (k, v) = kv?;
            out.extend(decode_events(&k, &v)?);
        }
        out.retain(|e| e.seq < event_count);
        Ok(out)
    }

    /// Calls `each` with every case matching `filter`, newest first, a page at a time (for
    /// jobs that read a whole scope: boards, overviews, backtests).
    pub fn for_each_case(
        &self,
        filter: &Filter,
        mut each: impl FnMut(Case),
    ) -> Result<(), StoreError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list(filter, cursor.as_deref(), MAX_PAGE)?;
            page.cases.into_iter().for_each(&mut each);
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// Cases matching `filter`, newest first, at most `limit` (capped at [`MAX_PAGE`]),
    /// continuing after `cursor`. A call reads at most [`MAX_SCAN`] entries: a page can come
    /// back short with a cursor to go on (`next` is `None` only at the end).
    ///
    /// A creation-date window is read from the index's time order (district listings) or
    /// from the day markers' span of ids (city-wide), never by walking every case.
    pub fn list(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.list_scanning(filter, cursor, limit, MAX_SCAN)
    }

    /// [`Store::list`] reading at most `max_scan` entries.
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
                    decode::<Case>(&k, &v)?,
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

    /// Timers due at or before `now`, earliest first, at most `limit`.
    pub fn due_timers(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, StoreError> {
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
    pub fn caller_cases(
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

    /// Number of cases.
    pub fn case_count(&self) -> usize {
        self.cases.len()
    }

    /// Counts of cases by (district, status), from the index (for metrics: a case whose
    /// status is being written may be counted under both statuses for that moment).
    pub fn status_counts(&self) -> Result<HashMap<(String, CaseStatus), u64>, StoreError> {
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

    // ---- reference data ----

    /// Stores a new version of the directory and category list and makes it current.
    pub fn put_directory(
        &self,
        directory_json: &str,
        categories_json: &str,
    ) -> Result<Arc<Directory>, StoreError> {
        let version = self
            .meta
            .get(META_DIRECTORY)?
            .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
            + 1;
        let dir = Arc::new(Directory::from_json(
            version,
            directory_json,
            categories_json,
        )?);
        let record = encode(&RefData {
            directory: directory_json.to_owned(),
            categories: categories_json.to_owned(),
        })?;
        (&self.refdata, &self.meta)
            .transaction(|(r, m)| {
                r.insert(&version.to_be_bytes(), record.clone())?;
                m.insert(META_DIRECTORY, &version.to_be_bytes())?;
                Ok(())
            })
            .map_err(|e: TransactionError<StoreError>| untx(e))?;
        self.commit.sync()?;
        self.directories.write().insert(version, dir.clone());
        *self.current_directory.write() = Some(dir.clone());
        Ok(dir)
    }

    /// The current directory version, if any was stored.
    pub fn current_directory(&self) -> Result<Option<Arc<Directory>>, StoreError> {
        if let Some(d) = self.current_directory.read().clone() {
            return Ok(Some(d));
        }
        let Some(v) = self.meta.get(META_DIRECTORY)? else {
            return Ok(None);
        };
        let version =
            u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: "directory_version".into(),
                message: "not 8 bytes".into(),
            })?);
        let d = self.directory(version)?;
        *self.current_directory.write() = Some(d.clone());
        Ok(Some(d))
    }

    /// A stored directory version.
    pub fn directory(&self, version: u64) -> Result<Arc<Directory>, StoreError> {
        if let Some(d) = self.directories.read().get(&version) {
            return Ok(d.clone());
        }
        let Some(bytes) = self.refdata.get(version.to_be_bytes())? else {
            return Err(StoreError::Invalid(format!(
                "directory version {version} does not exist"
            )));
        };
        let r: RefData = decode(b"refdata", &bytes)?;
        let d = Arc::new(Directory::from_json(version, &r.directory, &r.categories)?);
        self.directories.write().insert(version, d.clone());
        Ok(d)
    }

    // ---- backup ----

    /// Writes the whole store as JSON Lines: a header, reference data, cases, events, and
    /// the records of every named tree.
    pub fn export(&self, mut out: impl Write) -> Result<usize, StoreError> {
        let mut n = 0;
        {
            let mut line = |l: &Line| -> Result<(), StoreError> {
                serde_json::to_writer(&mut out, l).map_err(|e| StoreError::Io(e.to_string()))?;
                out.write_all(b"\n")?;
                n += 1;
                Ok(())
            };
            line(&Line::Header {
                schema: SCHEMA_VERSION,
            })?;
            for kv in self.refdata.iter() {
                let (k, v) = kv?;
                let r: RefData = decode(&k, &v)?;
                let version = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                line(&Line::RefData {
                    version,
                    directory: r.directory,
                    categories: r.categories,
                })?;
            }
            // Each case's events as far as the exported case counts them: a write that
            // lands between the two passes (or is in progress) adds events the exported
            // case does not know of.
            let mut counted = HashMap::new();
            for kv in self.cases.iter() {
                let (k, v) = kv?;
                let c: Case = decode(&k, &v)?;
                counted.insert(c.id.clone(), c.event_count);
                line(&Line::Case(Box::new(c)))?;
            }
            for kv in self.events.iter() {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k[..k.len() - 9]).into_owned();
                let count = counted.get(&id).copied().unwrap_or(0);
                for event in decode_events(&k, &v)?.into_iter().filter(|e| e.seq < count) {
                    line(&Line::Event {
                        case: id.clone(),
                        event: Box::new(event),
                    })?;
                }
            }
            for name in self.db.tree_names() {
                let Some(tree) = name.strip_prefix(b"x:") else {
                    continue;
                };
                let tree_name = String::from_utf8_lossy(tree).into_owned();
                for kv in self.db.open_tree(&name)?.iter() {
                    let (k, v) = kv?;
                    line(&Line::Record {
                        tree: tree_name.clone(),
                        key: hex::encode(k),
                        value: hex::encode(v),
                    })?;
                }
            }
        }
        out.flush()?;
        Ok(n)
    }

    /// Reads an export into this store, which must hold no cases; indexes are rebuilt.
    /// Every line is checked before anything is written.
    pub fn import(&self, input: impl BufRead) -> Result<usize, StoreError> {
        if !self.cases.is_empty() || !self.events.is_empty() {
            return Err(StoreError::Invalid(
                "import needs an empty store; this one holds cases".into(),
            ));
        }
        let mut lines = Vec::new();
        for (i, l) in input.lines().enumerate() {
            let l = l?;
            if l.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(&l).map_err(|e| StoreError::Import {
                line: i + 1,
                message: e.to_string(),
            })?;
            // Schema 1's lines are the same (only its index differed, and indexes are rebuilt).
            if i == 0
                && !matches!(parsed, Line::Header { schema } if (UPGRADES_FROM..=SCHEMA_VERSION).contains(&schema))
            {
                return Err(StoreError::Import {
                    line: 1,
                    message: format!(
                        "not an export header of schema {UPGRADES_FROM} to {SCHEMA_VERSION}"
                    ),
                });
            }
            if let Line::RefData {
                version,
                directory,
                categories,
            } = &parsed
            {
                Directory::from_json(*version, directory, categories).map_err(|e| {
                    StoreError::Import {
                        line: i + 1,
                        message: e.to_string(),
                    }
                })?;
            }
            lines.push(parsed);
        }
        let mut max_case = 0u64;
        let mut batch = sled::Batch::default();
        let mut max_dir = 0u64;
        for l in &lines {
            match l {
                Line::Header { .. } => {}
                Line::RefData {
                    version,
                    directory,
                    categories,
                } => {
                    self.refdata.insert(
                        version.to_be_bytes(),
                        encode(&RefData {
                            directory: directory.clone(),
                            categories: categories.clone(),
                        })?,
                    )?;
                    max_dir = max_dir.max(*version);
                }
                Line::Case(c) => {
                    batch.insert(self.cases.key(c.id.as_bytes()), encode(c)?);
                    for k in keys::index_keys(c) {
                        batch.insert(self.idx.key(&k), &[]);
                    }
                    max_case = max_case.max(id_number(&c.id));
                }
                Line::Event { case, event } => {
                    batch.insert(
                        self.events.key(&keys::event_key(case, event.seq)),
                        encode(event)?,
                    );
                }
                Line::Record { tree, key, value } => {
                    let bad = |m: &str| StoreError::Import {
                        line: 0,
                        message: format!("record in {tree}: {m}"),
                    };
                    let k = hex::decode(key).map_err(|_| bad("key is not hex"))?;
                    let v = hex::decode(value).map_err(|_| bad("value is not hex"))?;
                    self.records(tree)?.insert(k, v)?;
                }
            }
        }
        self.data.apply_batch(batch)?;
        // The imported cases' days get their markers afresh.
        self.meta.remove(META_DAYS_MARKED)?;
        self.mark_every_day()?;
        self.next_id
            .fetch_max(max_case, std::sync::atomic::Ordering::Relaxed);
        if max_dir > 0 {
            self.meta.insert(META_DIRECTORY, &max_dir.to_be_bytes())?;
        }
        *self.current_directory.write() = None;
        self.db.flush()?;
        Ok(lines.len())
    }

    /// Checks that every case is in exactly its indexes, every index entry points at an
    /// existing case that derives it, and every case has all its events.
    pub fn check_consistency(&self) -> Result<Consistency, StoreError> {
        let mut report = Consistency::default();
        let mut expected = std::collections::HashSet::new();
        for kv in self.cases.iter() {
            let (k, v) = kv?;
            let c: Case = decode(&k, &v)?;
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
            let mut events = 0u64;
            for kv in self.events.scan_prefix(keys::events_prefix(&c.id)) {
                let (k, v) = kv?;
                events += decode_events(&k, &v)?.len() as u64;
            }
            if events != c.event_count {
                report.problems.push(format!(
                    "case {} has {events} events, expected {}",
                    c.id, c.event_count
                ));
            }
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
        Ok(report)
    }
}

/// A timer index entry's due time, case id and kind; a key that is none is corruption.
fn timer_entry(k: &[u8]) -> Result<(Millis, String, TimerKind), StoreError> {
    keys::parse_timer_key(k).ok_or_else(|| StoreError::Corrupt {
        key: hex::encode(k),
        message: "bad timer key".into(),
    })
}

/// The number in a case id `c-0000000042`.
fn id_number(id: &str) -> u64 {
    id.strip_prefix("c-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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
    fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
    fn len(&self) -> usize {
        self.iter().count()
    }
}

#[derive(Serialize, Deserialize)]
struct RefData {
    directory: String,
    categories: String,
}

/// One line of an export.
#[derive(Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "kebab-case", deny_unknown_fields)]
enum Line {
    Header {
        schema: u32,
    },
    RefData {
        version: u64,
        directory: String,
        categories: String,
    },
    Case(Box<Case>),
    Event {
        case: String,
        event: Box<Event>,
    },
    Record {
        tree: String,
        key: String,
        value: String,
    },
}

#[cfg(test)]
mod tests;
