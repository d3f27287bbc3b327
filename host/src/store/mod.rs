//! The store contract: what the service asks of wherever cases live, and the engines that
//! keep that contract.
//!
//! [`CaseStore`] speaks only domain types — [`Change`], [`Versioned`], [`Filter`], [`Page`],
//! [`DueTimer`], [`Consistency`], opaque records — so the service, the registry and auth
//! hold a `dyn CaseStore` and never learn which engine is behind it. Two engines keep it:
//!
//! - [`sled`] (the default): embedded, one process, a directory on disk.
//! - [`postgres`]: the PostgreSQL wire protocol, with only SQL that CockroachDB and
//!   YugabyteDB also run, so a city grows from one machine to a cluster by changing
//!   `--store`.
//!
//! Every engine passes the same suite, [`contract`], written once against the trait.
//! [`backup`] moves a whole store between any two engines (`civic store export | civic
//! store import`).
//!
//! A write to a case is version-checked: [`CaseStore::write`] writes each case only if it is
//! still at the version its writer read, and tells the caller which were stale. That one
//! primitive serves intake, people's actions and the timer sweep on every engine, and is
//! what several hosts on one database will rely on.

pub mod backup;
pub mod contract;
pub mod postgres;
pub mod retention;
pub mod sled;
pub mod tally;

use std::collections::HashMap;
use std::sync::Arc;

use crate::directory::DirectoryError;
use crate::lifecycle::LifecycleError;
use crate::model::{Case, CaseStatus, Event, EventBody, Millis, PendingTimer, TimerKind};

/// Largest page a listing returns.
pub const MAX_PAGE: usize = 200;

/// Most index entries or cases one listing call reads before it returns what it found
/// with a cursor to go on: a filter that matches little cannot make one request walk the
/// whole store.
pub const MAX_SCAN: usize = 5_000;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened; nothing was changed.
    #[error("could not open the store at {location}: {message}")]
    Open {
        /// Where the store is (a directory, or a database address without its password).
        location: String,
        /// Why.
        message: String,
    },
    /// The store was written by another schema version; it was left untouched.
    #[error(
        "the store at {location} has schema version {found}, this build reads version {supported}; \
         use a build that matches, or export with it and import here. The store was not changed"
    )]
    UnknownSchema {
        /// Where the store is.
        location: String,
        /// The version found.
        found: String,
        /// The version this build reads.
        supported: u32,
    },
    /// The place holds something that is not a civic-rules store; it was left untouched.
    #[error(
        "{location} is not a civic-rules store ({why}); point --store at an empty or existing store"
    )]
    NotAStore {
        /// Where.
        location: String,
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
    /// A timer's firing was refused because the host that decided it no longer holds the
    /// sweep partition of its case: another host took the partition over (this one was
    /// stopped or cut off past its lease) and fires it instead. Nothing was written.
    #[error(
        "the firing on case {case} was refused: this host no longer holds partition {partition} of the timer sweep (another host took it over and fires it)"
    )]
    Fenced {
        /// The case.
        case: String,
        /// Its sweep partition.
        partition: u32,
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
    /// An import line was refused.
    #[error("import line {line}: {message}")]
    Import {
        /// 1-based line number.
        line: usize,
        /// Why.
        message: String,
    },
    /// The store cannot be reached now (a database that is down or restarting); nothing
    /// was written. Retrying later is the remedy: the server recovers by itself.
    #[error("the case store is unavailable: {0}; retry shortly")]
    Unavailable(String),
    /// The engine or the file system failed.
    #[error("storage i/o failed: {0}")]
    Io(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// A count of rule activity in one hour of one district (see [`CaseStore::activity`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Activity {
    /// The hour's start.
    pub hour: Millis,
    /// The plug-in (`name@version`) whose decisions these are; `None` for rule failures.
    pub plugin: Option<String>,
    /// How many.
    pub count: u64,
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
    /// Whether `c` passes every field of the filter.
    pub fn matches(&self, c: &Case) -> bool {
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
    /// Pass back to get the next page; `None` at the end. Opaque, and only good for the
    /// same filter on the same engine.
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
    /// Events checked.
    pub events: usize,
    /// Index entries checked (engines whose indexes the database keeps itself report the
    /// entries of the tables they maintain).
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

/// A change to an existing case, to be written only if the case is still as its writer
/// read it (at `read.version`).
///
/// The writer hands over the case it read, not just its version: an engine then knows what
/// the change replaces (the index entries and unit rows to remove, the events to number
/// after) without reading and decoding the case again.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The case as the writer read it and decided from.
    pub read: Case,
    /// What to write.
    pub change: Change,
    /// For a timer's firing on an engine several hosts share: the lease on the case's sweep
    /// partition the firing host held when it decided. The write is refused
    /// ([`StoreError::Fenced`]) unless that lease is still the partition's current one.
    pub fence: Option<Lease>,
}

/// Partitions the timer sweep is split into on an engine several hosts share: each is
/// swept by the one host holding its lease. Sixteen spreads the sweep over up to sixteen
/// hosts, and one host renews all of them in one statement.
pub const SWEEP_PARTITIONS: u32 = 16;

/// The sweep partition of a case: its number modulo [`SWEEP_PARTITIONS`] (ids are
/// sequential, so partitions fill evenly).
pub fn partition_of(case_id: &str) -> u32 {
    (id_number(case_id) % u64::from(SWEEP_PARTITIONS)) as u32
}

/// A host's lease on one sweep partition. The fencing token grows each time the partition
/// changes hands, so a write carrying an older one comes from a host that lost it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The partition.
    pub partition: u32,
    /// The host holding it.
    pub owner: String,
    /// The fencing token.
    pub fence: i64,
}

impl Versioned {
    /// The version the write expects to find.
    pub fn expected(&self) -> u64 {
        self.read.version
    }
}

/// One stored version of the directory and category list, as given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirectoryRecord {
    /// The directory JSON.
    pub directory: String,
    /// The category list JSON.
    pub categories: String,
}

/// One item of an import (see [`backup`]), in the order the export wrote them.
#[derive(Debug, Clone)]
pub enum Imported {
    /// A directory version.
    Directory {
        /// Its version number.
        version: u64,
        /// What it holds.
        record: DirectoryRecord,
    },
    /// A case as it was stored (its version and event count kept).
    Case(Box<Case>),
    /// Events of a case, with the sequence numbers they had.
    Events {
        /// The case.
        case: String,
        /// Its events.
        events: Vec<Event>,
    },
    /// An opaque record of another service's collection.
    Record {
        /// The collection.
        collection: String,
        /// Its key.
        key: String,
        /// Its value.
        value: Vec<u8>,
    },
}

/// How a record changes: the current value (if any) → the new one (`None` deletes).
pub type RecordChange<'a> = dyn Fn(Option<&[u8]>) -> Result<Option<Vec<u8>>, StoreError> + 'a;

/// The cases, their history and the records of a civic-rules deployment.
///
/// Every method may block on i/o and is called from blocking threads. Writes are durable
/// when the call returns, except [`CaseStore::write`], which is durable once
/// [`CaseStore::sync`] has returned (engines that commit each write are durable at once).
pub trait CaseStore: Send + Sync + 'static {
    /// The engine's name (`sled`, `postgres`).
    fn engine(&self) -> &'static str;

    /// Where the store is, for messages: a directory, or a database address without its
    /// password.
    fn location(&self) -> String;

    /// How many threads a batch job (the timer sweep) should write from at once: as many as
    /// there are cores for an engine that works in this process, more for one that mostly
    /// waits on a database.
    fn writers(&self) -> usize {
        2
    }

    /// Whether the store answers now; `Err` says why not (for `/healthz`).
    fn ping(&self) -> Result<(), StoreError>;

    /// A fresh case id, `c-` and ten digits, never handed out before by this store (ids of
    /// cases never written may be skipped).
    fn next_case_id(&self) -> Result<String, StoreError>;

    /// Stores a new case (version 1) with its first events; durable when this returns.
    fn create_case(&self, change: Change) -> Result<Case, StoreError>;

    /// Reads a case.
    fn get_case(&self, id: &str) -> Result<Option<Case>, StoreError>;

    /// Writes each change only if its case is still at the version it expects (else
    /// [`StoreError::Conflict`] for it and nothing of it is written; a missing case is
    /// [`StoreError::NotFound`]); the others are written. A case may appear once per call,
    /// checked before anything is written. Durable once [`CaseStore::sync`] returns.
    fn write(&self, writes: Vec<Versioned>) -> Result<Vec<Result<Case, StoreError>>, StoreError>;

    /// Waits until every write made before this call is durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// Removes each case as its caller read it — only if it is still at the version read,
    /// else that case's result is [`StoreError::Conflict`] (or [`StoreError::NotFound`]) and
    /// it stays — with its events and every index entry; durable when this returns.
    /// Retention ([`retention`]) calls it once the cases are safely in an archive.
    fn remove_cases(&self, cases: &[Case]) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    /// The first `event_count` events of a case (what a case read earlier counts), oldest
    /// first.
    fn history_of(&self, id: &str, event_count: u64) -> Result<Vec<Event>, StoreError>;

    /// Cases matching `filter`, newest first, at most `limit` (capped at [`MAX_PAGE`]),
    /// continuing after `cursor`. A page may come back short with a cursor to go on (`next`
    /// is `None` only at the end); a cursor from another listing is [`StoreError::Invalid`].
    fn list(&self, filter: &Filter, cursor: Option<&str>, limit: usize)
    -> Result<Page, StoreError>;

    /// Each case's earliest pending timer that is due at or before `now`, earliest first,
    /// at most `limit`.
    fn due_timers(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, StoreError>;

    /// Takes or renews `node`'s leases on the sweep partitions, each until `now + ttl`: the
    /// ones it holds, and any whose holder let its lease run out (a new fencing token for
    /// those). `None`: one process holds the store (sled) and sweeps every timer unfenced.
    fn sweep_leases(
        &self,
        node: &str,
        now: Millis,
        ttl: Millis,
    ) -> Result<Option<Vec<Lease>>, StoreError> {
        let _ = (node, now, ttl);
        Ok(None)
    }

    /// [`CaseStore::due_timers`] of the cases in `partitions` only.
    fn due_timers_in(
        &self,
        now: Millis,
        limit: usize,
        partitions: &[u32],
    ) -> Result<Vec<DueTimer>, StoreError> {
        let mut due = self.due_timers(now, usize::MAX)?;
        due.retain(|t| partitions.contains(&partition_of(&t.case_id)));
        due.truncate(limit);
        Ok(due)
    }

    /// The caller's cases created at or after `since`, newest first (at most `limit`).
    fn caller_cases(
        &self,
        caller_key: &str,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<Case>, StoreError>;

    /// Every case in id order after `after`, at most `limit` (whole-store jobs: export).
    fn cases_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Case>, StoreError>;

    /// Number of cases.
    fn case_count(&self) -> Result<u64, StoreError>;

    /// Counts of cases by (district, status).
    fn status_counts(&self) -> Result<HashMap<(String, CaseStatus), u64>, StoreError>;

    /// `district`'s decisions per plug-in and rule failures per hour, for the hours that
    /// start in `[from, to)`. By default from the histories of the district's cases changed
    /// since `from`; an engine that keeps [`tally`] counts answers from them.
    fn activity(
        &self,
        district: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<Activity>, StoreError> {
        tally::activity_by_walk(self, district, from, to)
    }

    /// `district`'s assessment facts that count in `[from, to)`, counted per unit and
    /// measure (`now` tells a passed deadline still owed from one to come). Kept with
    /// every write (see [`crate::assessment`]): a period is read from its own facts, never
    /// from a walk of the cases.
    fn assessment(
        &self,
        district: &str,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Result<crate::assessment::Counts, StoreError>;

    /// Stores a new directory version and makes it current; returns its number. The
    /// caller has checked that it parses.
    fn put_directory(&self, record: &DirectoryRecord) -> Result<u64, StoreError>;

    /// A stored directory version.
    fn directory_record(&self, version: u64) -> Result<Option<DirectoryRecord>, StoreError>;

    /// The current directory version, if any was stored.
    fn current_directory_version(&self) -> Result<Option<u64>, StoreError>;

    /// Every stored directory version, ascending.
    fn directory_versions(&self) -> Result<Vec<u64>, StoreError>;

    /// A record of another service's `collection` (plug-in versions, tokens, ...).
    fn record_get(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes records of `collection` atomically and durably.
    fn record_put(&self, collection: &str, entries: &[(String, Vec<u8>)])
    -> Result<(), StoreError>;

    /// Removes one record of `collection`, durably (nothing if it is not there).
    fn record_remove(&self, collection: &str, key: &str) -> Result<(), StoreError>;

    /// Changes one record atomically and durably: `f` sees the current value and returns
    /// the new one (`None` deletes). `f` may run more than once. See [`update_record`] for
    /// a version that returns a value.
    fn record_change(
        &self,
        collection: &str,
        key: &str,
        f: &RecordChange<'_>,
    ) -> Result<(), StoreError>;

    /// Records of `collection` whose key starts with `prefix`, in key order.
    fn record_scan(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// The collections that hold records.
    fn record_collections(&self) -> Result<Vec<String>, StoreError>;

    /// Writes imported items as they were exported (versions, event numbers and ids kept,
    /// indexes derived). The caller has checked that the store held no cases when the
    /// import began; call [`CaseStore::finish_import`] after the last batch.
    fn import(&self, items: Vec<Imported>) -> Result<(), StoreError>;

    /// Completes an import: whatever the engine derives from the whole set of cases (the
    /// next id, per-day markers) and durability.
    fn finish_import(&self) -> Result<(), StoreError>;

    /// Checks that every case has all its events and every derived entry (index, timer)
    /// agrees with the case it belongs to.
    fn check_consistency(&self) -> Result<Consistency, StoreError>;

    /// Changes a case atomically: `f` gets the stored case and returns the new one with the
    /// events to append. With `expected_version`, a case that changed since is a
    /// [`StoreError::Conflict`] and nothing is written; without, `f` runs again on the
    /// newer case. Durable when this returns.
    fn update_case(
        &self,
        id: &str,
        expected_version: Option<u64>,
        f: &dyn Fn(&Case) -> Result<Change, StoreError>,
    ) -> Result<Case, StoreError> {
        loop {
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
            let change = f(&old)?;
            let mut out = self.write(vec![Versioned {
                read: old,
                change,
                fence: None,
            }])?;
            match out.pop() {
                Some(Err(StoreError::Conflict { .. })) if expected_version.is_none() => continue,
                Some(Ok(case)) => {
                    self.sync()?;
                    return Ok(case);
                }
                Some(Err(e)) => return Err(e),
                None => return Err(StoreError::Io("the engine answered no result".into())),
            }
        }
    }

    /// A case's history, oldest first: the events its stored version counts.
    fn history(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        match self.get_case(id)? {
            Some(c) => self.history_of(id, c.event_count),
            None => Ok(Vec::new()),
        }
    }

    /// Calls `each` with every case matching `filter`, newest first, a page at a time (for
    /// jobs that read a whole scope: boards, overviews, backtests).
    fn for_each_case(&self, filter: &Filter, each: &mut dyn FnMut(Case)) -> Result<(), StoreError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list(filter, cursor.as_deref(), MAX_PAGE)?;
            page.cases.into_iter().for_each(&mut *each);
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(()),
            }
        }
    }
}

/// Every fact of every stored case, from each case and its whole history, a page of cases
/// at a time (how an engine derives them for cases written before it kept them, or
/// imported without them). `put` stores a page's facts; storing one twice changes nothing.
pub fn derive_all_facts(
    store: &(impl CaseStore + ?Sized),
    put: &mut dyn FnMut(Vec<crate::assessment::Fact>) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut after: Option<String> = None;
    let mut cases = 0u64;
    loop {
        let page = store.cases_after(after.as_deref(), MAX_PAGE)?;
        let Some(last) = page.last() else {
            return Ok(cases);
        };
        after = Some(last.id.clone());
        let mut facts = Vec::new();
        for c in &page {
            let history = store.history_of(&c.id, c.event_count)?;
            facts.extend(crate::assessment::case_facts(c, &history));
        }
        cases += page.len() as u64;
        put(facts)?;
    }
}

/// [`CaseStore::for_each_case`] for open cases only: through the (district, status) index
/// one open status at a time when the filter allows it, so desk views read the cases still
/// being handled and never the years of closed ones.
pub fn for_each_open_case(
    store: &(impl CaseStore + ?Sized),
    filter: &Filter,
    each: &mut dyn FnMut(Case),
) -> Result<(), StoreError> {
    let mut open_only = |c: Case| {
        if c.is_open() {
            each(c)
        }
    };
    // A unit's listing has an index of its own; a status is already one listing.
    if filter.status.is_some() || filter.unit.is_some() || filter.district.is_none() {
        return store.for_each_case(filter, &mut open_only);
    }
    for status in CaseStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
        let f = Filter {
            status: Some(status),
            ..filter.clone()
        };
        store.for_each_case(&f, &mut open_only)?;
    }
    Ok(())
}

/// [`CaseStore::record_change`] for a change that also computes a value: `f` returns the
/// new record and what the caller wants back (from the run that was written).
pub fn update_record<T>(
    store: &dyn CaseStore,
    collection: &str,
    key: &str,
    f: impl Fn(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T), StoreError>,
) -> Result<T, StoreError> {
    let out = parking_lot::Mutex::new(None);
    store.record_change(collection, key, &|cur| {
        let (new, value) = f(cur)?;
        *out.lock() = Some(value);
        Ok(new)
    })?;
    out.into_inner()
        .ok_or_else(|| StoreError::Io("a record change wrote without running its update".into()))
}

/// The case as a version-checked write stores it: the next version, its events counted,
/// the new events numbered after the old. Every engine writes through this, so what a
/// write means is decided once.
pub fn next_version(old: &Case, change: Change) -> Result<(Case, Vec<Event>), StoreError> {
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
    Ok((new, stamp(old.event_count, events)))
}

/// The case as [`CaseStore::create_case`] stores it: version 1, with its events numbered
/// from 0.
pub fn first_version(change: Change) -> (Case, Vec<Event>) {
    let Change { mut case, events } = change;
    case.version = 1;
    case.event_count = events.len() as u64;
    (case, stamp(0, events))
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

/// The one timer of `c` every engine indexes for the sweep: its earliest, ties broken by
/// kind name. Indexing only the earliest keeps a new case's write to one timer entry
/// instead of one per deadline (sled's cost grows with the keys a write touches); firing
/// it re-indexes the case under its next timer, which the same sweep fires too if due.
pub fn next_timer(c: &Case) -> Option<&PendingTimer> {
    c.timers
        .iter()
        .min_by_key(|t| (t.due_at, timer_kind_name(t.kind)))
}

/// Every timer kind's key name.
pub fn timer_kind_name(k: TimerKind) -> &'static str {
    match k {
        TimerKind::Warning => "warning",
        TimerKind::SignOff => "sign-off",
        TimerKind::FirstContact => "first-contact",
        TimerKind::Resolution => "resolution",
        TimerKind::Overdue => "overdue",
        TimerKind::Repeat => "repeat",
    }
}

/// The timer kind a [`timer_kind_name`] names.
pub fn timer_kind_from_name(s: &str) -> Option<TimerKind> {
    [
        TimerKind::Warning,
        TimerKind::SignOff,
        TimerKind::FirstContact,
        TimerKind::Resolution,
        TimerKind::Overdue,
        TimerKind::Repeat,
    ]
    .into_iter()
    .find(|k| timer_kind_name(*k) == s)
}

/// Refuses a call that names a case twice (one write per case per call).
fn once_each(writes: &[Versioned]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(writes.len());
    match writes
        .iter()
        .find(|w| !seen.insert(w.change.case.id.as_str()))
    {
        Some(w) => Err(StoreError::Invalid(format!(
            "case {} appears twice in one write",
            w.change.case.id
        ))),
        None => Ok(()),
    }
}

/// The number in a case id `c-0000000042` (0 for anything else).
pub fn id_number(id: &str) -> u64 {
    id.strip_prefix("c-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The id of case number `n`.
pub fn case_id(n: u64) -> String {
    format!("c-{n:010}")
}

/// Encodes a stored value. Never a panic: a value that cannot be written is an error for
/// its one write, not a crashed worker (a failure record that could not be serialised once
/// took the case and the timer sweeper with it).
fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| {
        StoreError::Invalid(format!("a value could not be encoded for the store: {e}"))
    })
}

/// Decodes a stored value; one that does not decode is [`StoreError::Corrupt`].
fn decode<T: for<'de> serde::Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

/// Which engine holds the store, and its settings: `--store` / `CIVIC_STORE`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// The embedded engine in a directory.
    Sled(sled::SledConfig),
    /// A PostgreSQL-protocol database.
    Postgres(postgres::PostgresConfig),
}

impl StoreConfig {
    /// Reads `sled:DIR` or `postgres://…` (also `postgresql://…`).
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        if let Some(dir) = s.strip_prefix("sled:") {
            if dir.is_empty() {
                return Err(StoreError::Invalid(
                    "--store sled: needs a directory, as in sled:./civic-data/store".into(),
                ));
            }
            return Ok(StoreConfig::Sled(sled::SledConfig::new(dir)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreConfig::Postgres(postgres::PostgresConfig::new(s)?));
        }
        Err(StoreError::Invalid(format!(
            "--store {:?} names no engine: use sled:DIR or postgres://user@host:port/database",
            postgres::redact(s)
        )))
    }

    /// Opens (creating if empty) the store this names.
    pub fn open(&self) -> Result<Arc<dyn CaseStore>, StoreError> {
        Ok(match self {
            StoreConfig::Sled(c) => Arc::new(sled::SledStore::open_config(c)?),
            StoreConfig::Postgres(c) => Arc::new(postgres::PostgresStore::open(c)?),
        })
    }

    /// After the store is closed, prepares it to open quickly next time (see
    /// [`sled::SledStore::checkpoint`]); a server database needs nothing. Returns whether
    /// there was anything to do.
    pub fn checkpoint(&self) -> Result<bool, StoreError> {
        match self {
            StoreConfig::Sled(c) => sled::SledStore::checkpoint(&c.path),
            StoreConfig::Postgres(_) => Ok(false),
        }
    }

    /// Where, for messages (no password).
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sled(c) => format!("sled:{}", c.path.display()),
            StoreConfig::Postgres(c) => c.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_named_by_its_engine_and_a_bad_name_says_how_without_the_password() {
        assert!(matches!(
            StoreConfig::parse("sled:/var/lib/civic/store"),
            Ok(StoreConfig::Sled(c)) if c.path == std::path::Path::new("/var/lib/civic/store")
        ));
        assert!(matches!(
            StoreConfig::parse("postgresql://civic@db:5432/civic"),
            Ok(StoreConfig::Postgres(_))
        ));
        for bad in [
            "",
            "sled:",
            "bogus",
            "./civic-data",
            "mysql://civic:s3cret@db/civic",
            "postgres://civic:s3cret@db:notaport/civic",
        ] {
            let e = StoreConfig::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            let m = e.to_string();
            assert!(matches!(e, StoreError::Invalid(_)), "{bad:?}: {m}");
            assert!(m.contains("--store"), "{bad:?}: {m}");
            assert!(!m.contains("s3cret"), "{bad:?}: {m}");
        }
        let pg = StoreConfig::parse("postgres://civic:s3cret@db:5432/civic").unwrap();
        assert!(!pg.describe().contains("s3cret"), "{}", pg.describe());
    }
}
