//! The PostgreSQL-protocol engine: the only code that touches a SQL database.
//!
//! # The SQL subset
//!
//! Everything here runs on PostgreSQL 15 and is meant to run unchanged on the distributed
//! engines that speak its protocol (CockroachDB, YugabyteDB), so a city moves from one
//! database machine to a cluster by changing `--store`. So it uses only:
//!
//! - plain tables with `TEXT` / `BIGINT` / `BYTEA` columns and composite primary keys,
//!   secondary indexes, `CREATE … IF NOT EXISTS`;
//! - `SERIALIZABLE` transactions, retried on SQLSTATE 40001 (and 40P01) with a bounded,
//!   jittered back-off — distributed engines abort on conflict far more often than
//!   PostgreSQL does, so every write is written to be retried whole;
//! - `INSERT … ON CONFLICT`, `UPDATE … WHERE version = $n`, row-value comparison for
//!   keyset pagination (`(created_at, id) < ($1, $2)`), `GREATEST`, `count(*)`,
//!   `unnest` of array parameters, and writable CTEs that change each table at most once
//!   per statement (CockroachDB refuses two changes to one table in one statement);
//! - nothing whose result depends on the database's collation (prefixes are compared by
//!   equality, and orders of text this engine promises are made in the engine).
//!
//! And never: advisory locks, `LISTEN`/`NOTIFY`, sequences or `SERIAL` ids (one sequence
//! every insert hits is a hotspot on a distributed engine: case ids come from a counter
//! row in blocks of [`ID_BLOCK`], one increment per block), triggers, stored procedures,
//! `JSONB` operators, temporary tables.
//!
//! # Schema
//!
//! `civic_meta` (key → BIGINT: `schema`, `next_case`, `directory`), `civic_cases` (the case
//! as JSON, plus the columns listings and the sweep filter on: district, status, category,
//! created_at, created_by, caller_key, version), `civic_timers` (each case's earliest
//! pending timer, apart from the wide case row so that the sweep's write leaves the case
//! row's indexed columns alone), `civic_case_units` (one row per unit handling a case, for
//! the unit listing),
//! `civic_events` (case, seq → event JSON), `civic_records` (collection, key → bytes),
//! `civic_directories` (version → directory and categories). Every listing and the due
//! timer scan are served by an index (see [`SCHEMA`]; the contract tests check the plans
//! with `EXPLAIN`). The schema is created on first start and migrated by version; a
//! database with a newer schema than this build knows is refused untouched.
//!
//! # Driver and pool
//!
//! tokio-postgres (the maintained pure-Rust driver of the rust-postgres project, with
//! pipelining and binary parameters) behind deadpool-postgres (a small, actively kept pool
//! made for it, with wait, create and recycle time-outs, which is how a database that is
//! down becomes a prompt [`StoreError::Unavailable`] instead of a hang). The store is
//! called from blocking threads, so the engine owns a small tokio runtime and blocks on it.

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use parking_lot::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::{
    CaseStore, Change, Consistency, DirectoryRecord, DueTimer, Filter, Imported, MAX_PAGE, Page,
    StoreError, Versioned, decode, encode, first_version, next_version,
};
use crate::assessment::{self, Fact};
use crate::model::{Case, CaseStatus, Event, Millis, TimerKind};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 3;

/// The schema from which assessment facts are kept: reaching it derives the facts of the
/// cases already stored (see [`PostgresStore::open`]).
const FACTS_SCHEMA: i64 = 3;

/// Case ids taken from the counter row at a time: one increment per block, not per case.
pub const ID_BLOCK: i64 = 100;

/// Attempts at a transaction that keeps failing on serialization before giving up.
const ATTEMPTS: u32 = 12;

/// The longest one store operation may take before it is reported unavailable (a database
/// that stopped answering must not hold a request past its own time-out).
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for a pooled connection, or for a new one to open.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);

/// The schema, statement by statement; each is idempotent, so two hosts starting on an
/// empty database at once both succeed.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS civic_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS civic_cases (
        id TEXT PRIMARY KEY,
        district TEXT NOT NULL,
        status TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        caller_key TEXT NOT NULL,
        version BIGINT NOT NULL,
        event_count BIGINT NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS civic_cases_by_time ON civic_cases (created_at, id)",
    "CREATE INDEX IF NOT EXISTS civic_cases_by_district ON civic_cases (district, created_at, id)",
    "CREATE INDEX IF NOT EXISTS civic_cases_by_district_status ON civic_cases (district, status, created_at, id)",
    // Each case's earliest pending timer, in a narrow table of its own: the sweep's write
    // changes it, and leaves the wide case row's indexed columns as they were.
    "CREATE TABLE IF NOT EXISTS civic_timers (
        case_id TEXT PRIMARY KEY,
        due_at BIGINT NOT NULL,
        due_kind TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS civic_timers_by_due ON civic_timers (due_at, case_id)",
    "CREATE INDEX IF NOT EXISTS civic_cases_by_caller ON civic_cases (caller_key, created_at, id)",
    "CREATE TABLE IF NOT EXISTS civic_case_units (
        unit TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        case_id TEXT NOT NULL,
        PRIMARY KEY (unit, created_at, case_id)
    )",
    "CREATE TABLE IF NOT EXISTS civic_events (
        case_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (case_id, seq)
    )",
    "CREATE TABLE IF NOT EXISTS civic_records (
        collection TEXT NOT NULL,
        key TEXT NOT NULL,
        value BYTEA NOT NULL,
        PRIMARY KEY (collection, key)
    )",
    "CREATE TABLE IF NOT EXISTS civic_directories (
        version BIGINT PRIMARY KEY,
        directory TEXT NOT NULL,
        categories TEXT NOT NULL
    )",
    "INSERT INTO civic_meta (key, value) VALUES ('next_case', 0), ('directory', 0) ON CONFLICT (key) DO NOTHING",
    CREATE_LEASES,
    CREATE_FACTS,
    CREATE_FACTS_BY_CASE,
];

/// Assessment facts (schema 3; see [`crate::assessment`]): a district's period is one range
/// of the key. `seq` is the event a fact comes from, or -1 for a deadline its case still
/// owes (replaced as the case changes).
const CREATE_FACTS: &str = "CREATE TABLE IF NOT EXISTS civic_facts (
        district TEXT NOT NULL,
        at BIGINT NOT NULL,
        unit TEXT NOT NULL,
        measure TEXT NOT NULL,
        case_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (district, at, unit, measure, case_id, seq)
    )";
/// A case's facts, for replacing the deadlines it owes and for the consistency check.
const CREATE_FACTS_BY_CASE: &str =
    "CREATE INDEX IF NOT EXISTS civic_facts_by_case ON civic_facts (case_id, seq)";
/// Facts as [`FactColumns`] gives them; one already there stays.
const INSERT_FACTS: &str = "INSERT INTO civic_facts (district, at, unit, measure, case_id, seq)
     SELECT f.district, f.at, f.unit, f.measure, f.case_id, f.seq
     FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[])
        AS f (district, at, unit, measure, case_id, seq)
     ON CONFLICT DO NOTHING";
/// The deadlines a case owes, removed (to be replaced by what it owes now).
const DELETE_OWED: &str = "DELETE FROM civic_facts WHERE case_id = $1 AND seq = -1";
/// A district's facts in a period, counted per unit, measure, owed or not, passed or not.
const COUNT_FACTS: &str = "SELECT unit, measure, seq < 0, at < CAST($4 AS BIGINT), count(*)
     FROM civic_facts WHERE district = $1 AND at >= $2 AND at < $3
     GROUP BY 1, 2, 3, 4";

/// Facts as the arrays [`INSERT_FACTS`] takes.
#[derive(Default)]
struct FactColumns {
    district: Vec<String>,
    at: Vec<i64>,
    unit: Vec<String>,
    measure: Vec<&'static str>,
    case: Vec<String>,
    seq: Vec<i64>,
}

impl FactColumns {
    fn of<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> Self {
        let mut c = Self::default();
        for f in facts {
            c.district.push(f.district.clone());
            c.at.push(f.at);
            c.unit.push(f.unit.clone());
            c.measure.push(f.measure.as_str());
            c.case.push(f.case.clone());
            c.seq.push(f.seq.map_or(-1, |s| s as i64));
        }
        c
    }
}

/// Stores facts (on a connection, or inside a transaction).
async fn insert_facts(
    client: &impl deadpool_postgres::GenericClient,
    facts: &FactColumns,
) -> Result<(), Fail> {
    if facts.at.is_empty() {
        return Ok(());
    }
    let stmt = client.prepare_cached(INSERT_FACTS).await?;
    client
        .execute(
            &stmt,
            &[
                &facts.district,
                &facts.at,
                &facts.unit,
                &facts.measure,
                &facts.case,
                &facts.seq,
            ],
        )
        .await?;
    Ok(())
}

/// Who sweeps which partition of the timers (schema 2): one row per partition, its
/// holder, fencing token and the end of the lease (the holder's clock, milliseconds).
const CREATE_LEASES: &str = "CREATE TABLE IF NOT EXISTS civic_sweep_leases (
        part BIGINT PRIMARY KEY,
        owner TEXT NOT NULL,
        fence BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    )";

/// Takes every partition that is free, expired or already this host's, in one statement:
/// a partition changing hands gets the next fencing token; one renewed keeps its token.
const TAKE_LEASES: &str = "INSERT INTO civic_sweep_leases (part, owner, fence, expires_at)
     SELECT p, CAST($1 AS TEXT), 1, CAST($2 AS BIGINT) + CAST($3 AS BIGINT)
     FROM generate_series(0, CAST($4 AS BIGINT)) AS p
     ON CONFLICT (part) DO UPDATE SET
        owner = excluded.owner,
        fence = CASE WHEN civic_sweep_leases.owner = excluded.owner
                      AND civic_sweep_leases.expires_at > CAST($2 AS BIGINT)
                 THEN civic_sweep_leases.fence ELSE civic_sweep_leases.fence + 1 END,
        expires_at = excluded.expires_at
     WHERE civic_sweep_leases.owner = excluded.owner
        OR civic_sweep_leases.expires_at <= CAST($2 AS BIGINT)
     RETURNING part, fence";

/// What PostgreSQL answers a `CREATE … IF NOT EXISTS` that raced another host's.
const RACED: [SqlState; 3] = [
    SqlState::UNIQUE_VIOLATION,
    SqlState::DUPLICATE_TABLE,
    SqlState::DUPLICATE_OBJECT,
];

/// Upgrades from each older schema: `(from, statements)`; a new schema adds its statements
/// here and bumps [`SCHEMA_VERSION`].
const MIGRATIONS: &[(i64, &[&str])] = &[
    (1, &[CREATE_LEASES]),
    (2, &[CREATE_FACTS, CREATE_FACTS_BY_CASE]),
];

/// The PostgreSQL engine's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    /// The connection string (`postgres://user:password@host:port/database?…`).
    pub url: String,
    /// Connections kept open at most.
    pub pool_size: usize,
}

impl PostgresConfig {
    /// Checks a connection string; the pool defaults to 16 connections.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Invalid(format!(
                "--store {} is not a PostgreSQL connection string: {e}",
                redact(url)
            ))
        })?;
        Ok(Self {
            url: url.to_owned(),
            pool_size: 16,
        })
    }

    /// The address without its password, for messages.
    pub fn describe(&self) -> String {
        redact(&self.url)
    }
}

/// A connection string with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Why a transaction attempt failed: a serialization failure is retried whole, anything
/// else is the caller's answer.
enum Fail {
    Retry(String),
    /// A unique key was taken (a case created twice).
    Duplicate(String),
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(c)
                if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                Fail::Retry(pg_error(e).to_string())
            }
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => Fail::Duplicate(pg_error(e).to_string()),
            _ => Fail::Store(pg_error(e)),
        }
    }
}

/// A driver error in the contract's terms: a connection that is gone (the database
/// stopped, restarted or is unreachable) is [`StoreError::Unavailable`].
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let unavailable = e.is_closed()
        || e.code().is_some_and(|c| {
            *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::CONNECTION_FAILURE
                || *c == SqlState::CONNECTION_EXCEPTION
                || *c == SqlState::TOO_MANY_CONNECTIONS
        })
        || e.code().is_none();
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    if unavailable {
        StoreError::Unavailable(format!("the database connection failed: {text}"))
    } else {
        StoreError::Io(format!("the database refused a statement: {text}"))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no database connection could be had: {e}"))
}

/// The PostgreSQL engine.
pub struct PostgresStore {
    pool: Pool,
    /// The engine's own runtime: the store is called from blocking threads.
    rt: Option<tokio::runtime::Runtime>,
    location: String,
    /// This process's block of case ids: `(next, end)`.
    ids: Mutex<(i64, i64)>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // A runtime dropped inside another's async context panics; this one may be.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A value as a statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

/// The columns a case is listed and swept by, derived from the case alone.
struct Columns {
    status: &'static str,
    due_at: Option<i64>,
    due_kind: Option<&'static str>,
    version: i64,
    event_count: i64,
    body: String,
}

impl Columns {
    fn of(c: &Case) -> Result<Self, StoreError> {
        let next = super::next_timer(c);
        Ok(Self {
            status: c.status.as_str(),
            due_at: next.map(|t| t.due_at),
            due_kind: next.map(|t| super::timer_kind_name(t.kind)),
            version: c.version as i64,
            event_count: c.event_count as i64,
            body: String::from_utf8(encode(c)?)
                .map_err(|e| StoreError::Invalid(format!("a case is not UTF-8 JSON: {e}")))?,
        })
    }
}

/// The units handling a case (lead first, then co-handlers), once each.
fn units(c: &Case) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for u in c.handler.iter().chain(c.co_handlers.iter()) {
        if !out.contains(&u.as_str()) {
            out.push(u);
        }
    }
    out
}

fn case_of(row: &Row, col: usize) -> Result<Case, StoreError> {
    let body: &str = row.get(col);
    decode(b"civic_cases.body", body.as_bytes())
}

const DELETE_UNITS: &str = "DELETE FROM civic_case_units
     WHERE unit = ANY($1::TEXT[]) AND created_at = $2 AND case_id = $3";
const INSERT_EVENTS: &str = "INSERT INTO civic_events (case_id, seq, body)
     SELECT $1, e.seq, e.body FROM unnest($2::BIGINT[], $3::TEXT[]) AS e (seq, body)";
/// A new case, its timer row, its unit rows and its events, in one statement (see
/// [`create_row`]); the rest are inserted only with a new case row.
const CREATE_CASE: &str = "WITH c AS (
        INSERT INTO civic_cases (id, district, status, category, created_at, created_by,
            caller_key, version, event_count, body)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $11, $12)
        ON CONFLICT (id) DO NOTHING
        RETURNING id, created_at
    ), t AS (
        INSERT INTO civic_timers (case_id, due_at, due_kind)
        SELECT c.id, $8, $9 FROM c WHERE $8::BIGINT IS NOT NULL
    ), u AS (
        INSERT INTO civic_case_units (unit, created_at, case_id)
        SELECT x.unit, c.created_at, c.id FROM c, unnest($13::TEXT[]) AS x (unit)
        ON CONFLICT DO NOTHING
    ), e AS (
        INSERT INTO civic_events (case_id, seq, body)
        SELECT c.id, ev.seq, ev.body FROM c, unnest($14::BIGINT[], $15::TEXT[]) AS ev (seq, body)
    ), f AS (
        INSERT INTO civic_facts (district, at, unit, measure, case_id, seq)
        SELECT $2, x.at, x.unit, x.measure, c.id, x.seq
        FROM c, unnest($16::BIGINT[], $17::TEXT[], $18::TEXT[], $19::BIGINT[])
            AS x (at, unit, measure, seq)
    )
    SELECT count(*) FROM c";
const SELECT_CASE: &str = "SELECT body FROM civic_cases WHERE id = $1";
/// A case row moved to its next version only if still at the version read (`$9`), with its
/// new unit rows (`$10`) and events (`$11`, `$12`) inserted only if it was, and its timer
/// row as `$timer` says; answers 1 or 0.
macro_rules! update_case {
    ($timer:literal) => {
        concat!(
            "WITH c AS (
                UPDATE civic_cases SET status = $2, category = $3, created_by = $4,
                    caller_key = $5, version = $6, event_count = $7, body = $8
                WHERE id = $1 AND version = $9
                RETURNING id, created_at
            ), u AS (
                INSERT INTO civic_case_units (unit, created_at, case_id)
                SELECT x.unit, c.created_at, c.id FROM c, unnest($10::TEXT[]) AS x (unit)
                ON CONFLICT DO NOTHING
            ), e AS (
                INSERT INTO civic_events (case_id, seq, body)
                SELECT c.id, ev.seq, ev.body
                FROM c, unnest($11::BIGINT[], $12::TEXT[]) AS ev (seq, body)
            )",
            $timer,
            " SELECT count(*) FROM c"
        )
    };
}
/// The update when the case's earliest timer stays as it was.
const UPDATE_CASE: &str = update_case!("");
/// The update when the case's earliest timer is now `$13` / `$14`.
const UPDATE_CASE_TIMER: &str = update_case!(
    ", t AS (
        INSERT INTO civic_timers (case_id, due_at, due_kind) SELECT c.id, $13, $14 FROM c
        ON CONFLICT (case_id) DO UPDATE SET due_at = EXCLUDED.due_at, due_kind = EXCLUDED.due_kind
    )"
);
/// The update when the case has no pending timer any more.
const UPDATE_CASE_NO_TIMER: &str =
    update_case!(", t AS (DELETE FROM civic_timers WHERE case_id IN (SELECT id FROM c))");

/// Inserts a new case with its timer row, unit rows and events in one statement
/// ([`CREATE_CASE`]) on a connection or inside a transaction; `false` if the id is taken
/// (nothing is written then).
async fn create_row(
    client: &impl deadpool_postgres::GenericClient,
    case: &Case,
    events: &[Event],
) -> Result<bool, Fail> {
    let col = Columns::of(case)?;
    let units = units(case);
    let (seqs, bodies) = event_columns(events)?;
    let facts = assessment::event_facts(None, &case.district, &case.id, events);
    let facts = FactColumns::of(facts.iter().chain(&assessment::open_facts(case)));
    let stmt = client.prepare_cached(CREATE_CASE).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &case.id,
                &case.district,
                &col.status,
                &case.category,
                &case.created_at,
                &case.created_by,
                &case.caller_key,
                &col.due_at,
                &col.due_kind,
                &col.version,
                &col.event_count,
                &col.body,
                &units,
                &seqs,
                &bodies,
                &facts.at,
                &facts.unit,
                &facts.measure,
                &facts.seq,
            ],
        )
        .await?;
    Ok(row.get::<_, i64>(0) == 1)
}

async fn delete_units(tx: &Transaction<'_>, c: &Case, units: &[&str]) -> Result<(), Fail> {
    if units.is_empty() {
        return Ok(());
    }
    let stmt = tx.prepare_cached(DELETE_UNITS).await?;
    tx.execute(&stmt, &[&units, &c.created_at, &c.id]).await?;
    Ok(())
}

async fn insert_events(tx: &Transaction<'_>, id: &str, events: &[Event]) -> Result<(), Fail> {
    if events.is_empty() {
        return Ok(());
    }
    let (seqs, bodies) = event_columns(events)?;
    let stmt = tx.prepare_cached(INSERT_EVENTS).await?;
    tx.execute(&stmt, &[&id, &seqs, &bodies]).await?;
    Ok(())
}

/// Events as the two arrays the event statements take: sequence numbers and JSON.
fn event_columns(events: &[Event]) -> Result<(Vec<i64>, Vec<String>), StoreError> {
    let mut seqs = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for e in events {
        seqs.push(e.seq as i64);
        bodies.push(
            String::from_utf8(encode(e)?)
                .map_err(|e| StoreError::Invalid(format!("an event is not UTF-8 JSON: {e}")))?,
        );
    }
    Ok((seqs, bodies))
}

/// Writes one version-checked change inside `tx`: the case row only if it is still at the
/// version its writer read, with its new unit rows and events in the same statement
/// ([`UPDATE_CASE`]); unit rows it no longer has are removed after (CockroachDB refuses two
/// changes to one table in one statement).
async fn write_one(tx: &Transaction<'_>, w: &Versioned) -> Result<Result<Case, StoreError>, Fail> {
    let old = &w.read;
    let id = &old.id;
    if let Some(lease) = &w.fence {
        // Read in the same serializable transaction as the write: a host taking the
        // partition over meanwhile makes one of the two retry, and the retry sees the new
        // token.
        let current = tx
            .query_opt(
                "SELECT fence FROM civic_sweep_leases WHERE part = $1 AND owner = $2",
                &[&i64::from(lease.partition), &lease.owner],
            )
            .await?
            .map(|r| r.get::<_, i64>(0));
        if current != Some(lease.fence) {
            return Ok(Err(StoreError::Fenced {
                case: id.clone(),
                partition: lease.partition,
            }));
        }
    }
    let (new, events) = match next_version(old, w.change.clone()) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let col = Columns::of(&new)?;
    let (was, now) = (units(old), units(&new));
    let gone: Vec<&str> = was.iter().filter(|u| !now.contains(u)).copied().collect();
    let added: Vec<&str> = now.iter().filter(|u| !was.contains(u)).copied().collect();
    let (seqs, bodies) = event_columns(&events)?;
    // The timer row is written only when the earliest timer changed: a firing moves it,
    // most people's actions leave it.
    let was_due = super::next_timer(old).map(|t| (t.due_at, super::timer_kind_name(t.kind)));
    let timer_changed = was_due != col.due_at.zip(col.due_kind);
    let sql = match (timer_changed, col.due_at) {
        (false, _) => UPDATE_CASE,
        (true, Some(_)) => UPDATE_CASE_TIMER,
        (true, None) => UPDATE_CASE_NO_TIMER,
    };
    let update = tx.prepare_cached(sql).await?;
    let old_version = old.version as i64;
    let mut params: Vec<Param<'_>> = vec![
        id,
        &col.status,
        &new.category,
        &new.created_by,
        &new.caller_key,
        &col.version,
        &col.event_count,
        &col.body,
        &old_version,
        &added,
        &seqs,
        &bodies,
    ];
    if sql == UPDATE_CASE_TIMER {
        params.push(&col.due_at);
        params.push(&col.due_kind);
    }
    let written: i64 = tx.query_one(&update, &params).await?.get(0);
    if written == 0 {
        return Ok(Err(not_at(tx, old).await?));
    }
    delete_units(tx, old, &gone).await?;
    // The deadlines the case owes are replaced only when they changed; what the events
    // add is inserted beside them.
    let (was_owed, owed) = (assessment::open_facts(old), assessment::open_facts(&new));
    let mut facts = assessment::event_facts(Some(old), &old.district, id, &events);
    if was_owed != owed {
        if !was_owed.is_empty() {
            let stmt = tx.prepare_cached(DELETE_OWED).await?;
            tx.execute(&stmt, &[id]).await?;
        }
        facts.extend(owed);
    }
    insert_facts(tx, &FactColumns::of(&facts)).await?;
    Ok(Ok(new))
}

/// Due timers as the timer queries return them: case id, due time, kind.
fn due_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<DueTimer>, StoreError> {
    rows.iter()
        .map(|r| {
            let id: String = r.get(0);
            let kind: &str = r.get(2);
            Ok(DueTimer {
                kind: timer_kind(kind).ok_or_else(|| StoreError::Corrupt {
                    key: id.clone(),
                    message: format!("unknown timer kind {kind:?}"),
                })?,
                case_id: id,
                due_at: r.get(1),
            })
        })
        .collect()
}

/// Why a statement conditioned on `read`'s version touched no row: the case is gone, or at
/// another version (which it says).
async fn not_at(tx: &Transaction<'_>, read: &Case) -> Result<StoreError, Fail> {
    let found = tx
        .query_opt("SELECT version FROM civic_cases WHERE id = $1", &[&read.id])
        .await?;
    Ok(match found {
        None => StoreError::NotFound(read.id.clone()),
        Some(r) => StoreError::Conflict {
            case: read.id.clone(),
            expected: read.version,
            actual: r.get::<_, i64>(0) as u64,
        },
    })
}

/// Removes one case if it is still at the version read, with its events, timer row and
/// unit rows (the case's own columns go with its row).
async fn remove_one(tx: &Transaction<'_>, c: &Case) -> Result<Result<(), StoreError>, Fail> {
    let id = &c.id;
    let version = c.version as i64;
    let gone = tx
        .execute(
            "DELETE FROM civic_cases WHERE id = $1 AND version = $2",
            &[id, &version],
        )
        .await?;
    if gone == 0 {
        return Ok(Err(not_at(tx, c).await?));
    }
    tx.execute("DELETE FROM civic_events WHERE case_id = $1", &[id])
        .await?;
    tx.execute("DELETE FROM civic_timers WHERE case_id = $1", &[id])
        .await?;
    // What the case still owed goes with it; what its units did stays counted.
    tx.execute(DELETE_OWED, &[id]).await?;
    delete_units(tx, c, &units(c)).await?;
    Ok(Ok(()))
}

/// What a cursor of a listing says: where the last page ended, and which listing it was.
fn cursor_text(created_at: i64, id: &str, filter_tag: u64) -> String {
    format!("{filter_tag:016x}.{created_at}.{id}")
}

fn parse_cursor(c: &str, filter_tag: u64) -> Result<(i64, String), StoreError> {
    let bad = || StoreError::Invalid("the cursor is not one this store issued".into());
    let mut parts = c.splitn(3, '.');
    let (Some(tag), Some(at), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let tag = u64::from_str_radix(tag, 16).map_err(|_| bad())?;
    let at: i64 = at.parse().map_err(|_| bad())?;
    if tag != filter_tag {
        return Err(StoreError::Invalid(
            "the cursor belongs to another listing".into(),
        ));
    }
    Ok((at, id.to_owned()))
}

/// A stable fingerprint of a filter, so a cursor cannot continue another listing.
fn filter_tag(f: &Filter) -> u64 {
    use sha2::Digest;
    let text = format!("{f:?}");
    let d = sha2::Sha256::digest(text.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn timer_kind(name: &str) -> Option<TimerKind> {
    super::timer_kind_from_name(name)
}

impl PostgresStore {
    /// Connects, creates the schema on an empty database or checks (and migrates) the one
    /// there; a database of a newer schema is refused untouched.
    pub fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let location = config.describe();
        let open_err = |message: String| StoreError::Open {
            location: location.clone(),
            message,
        };
        let mut pg_config = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| open_err(format!("not a connection string: {e}")))?;
        // Statements run on their own (not in an explicit transaction) are SERIALIZABLE too.
        let options = match pg_config.get_options() {
            Some(o) => format!("{o} -c default_transaction_isolation=serializable"),
            None => "-c default_transaction_isolation=serializable".to_owned(),
        };
        pg_config.options(&options);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("civic-postgres")
            .enable_all()
            .build()
            .map_err(|e| open_err(format!("cannot start the driver's runtime: {e}")))?;
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _guard = rt.enter();
            Pool::builder(manager)
                .max_size(config.pool_size)
                .runtime(Runtime::Tokio1)
                .timeouts(Timeouts {
                    wait: Some(POOL_TIMEOUT),
                    create: Some(POOL_TIMEOUT),
                    recycle: Some(POOL_TIMEOUT),
                })
                .build()
                .map_err(|e| open_err(format!("cannot make a connection pool: {e}")))?
        };
        let store = Self {
            pool,
            rt: Some(rt),
            location: location.clone(),
            ids: Mutex::new((0, 0)),
        };
        let derive = store.prepare_schema().map_err(|e| match e {
            StoreError::Unavailable(m) | StoreError::Io(m) => open_err(m),
            other => other,
        })?;
        if derive {
            store.derive_facts()?;
        }
        Ok(store)
    }

    /// Runs `f` on the engine's runtime, bounded by [`OP_TIMEOUT`].
    fn block<T>(&self, f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let rt = self
            .rt
            .as_ref()
            .expect("the runtime lives as long as the store");
        rt.block_on(async {
            match tokio::time::timeout(OP_TIMEOUT, f).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} s",
                    OP_TIMEOUT.as_secs()
                ))),
            }
        })
    }

    /// Runs `attempt` until it does not fail on serialization, with a jittered, doubling
    /// back-off between tries (at most [`ATTEMPTS`]).
    fn retrying<T>(&self, attempt: impl AsyncFn() -> Result<T, Fail>) -> Result<T, StoreError> {
        self.block(async {
            let mut last = String::new();
            for n in 0..ATTEMPTS {
                if n > 0 {
                    let cap = 2u64 << n.min(6);
                    let mut b = [0u8; 2];
                    let _ = getrandom::fill(&mut b);
                    let jitter = u64::from(u16::from_le_bytes(b)) % cap.max(1);
                    tokio::time::sleep(Duration::from_millis(cap / 2 + jitter)).await;
                }
                match attempt().await {
                    Ok(v) => return Ok(v),
                    Err(Fail::Retry(m)) => last = m,
                    Err(Fail::Duplicate(m)) => return Err(StoreError::Io(m)),
                    Err(Fail::Store(e)) => return Err(e),
                }
            }
            Err(StoreError::Unavailable(format!(
                "a transaction kept conflicting with others ({ATTEMPTS} tries; last: {last})"
            )))
        })
    }

    /// Runs `f` in a SERIALIZABLE transaction, committed before this returns, retried whole
    /// on a serialization failure.
    fn txn<T>(
        &self,
        f: impl AsyncFn(&Transaction<'_>) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        self.retrying(async || {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .start()
                .await?;
            match f(&tx).await {
                Ok(v) => tx.commit().await.map(|_| v).map_err(Fail::from),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        })
    }

    /// Runs one statement on its own: atomic by itself, committed (at the session's
    /// SERIALIZABLE isolation) before this returns, retried on a serialization failure. One
    /// round trip where a transaction takes three.
    fn statement<T>(
        &self,
        f: impl AsyncFn(&deadpool_postgres::Client) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        self.retrying(async || {
            let client = self.pool.get().await.map_err(pool_error)?;
            f(&client).await
        })
    }

    /// Runs a read outside an explicit transaction, retried on a serialization failure: at
    /// SERIALIZABLE even a read alone can be the one PostgreSQL aborts when writes race
    /// around it (two sweeps over the same timers, say).
    fn read<T>(
        &self,
        f: impl AsyncFn(&deadpool_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        self.retrying(async || {
            let client = self.pool.get().await.map_err(pool_error)?;
            f(&client).await.map_err(Fail::from)
        })
    }

    /// Creates or migrates the schema. Hosts started at once on an empty database race to
    /// create it, and PostgreSQL lets only one `CREATE … IF NOT EXISTS` of a name through at
    /// a time (the other fails on the catalogue's unique index): the loser waits a moment
    /// and looks again, finding the schema made.
    fn prepare_schema(&self) -> Result<bool, StoreError> {
        for _ in 0..50 {
            if let Some(derive) = self.prepare_schema_once()? {
                return Ok(derive);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(StoreError::Io(
            "another host kept creating the schema at the same time; start this one again".into(),
        ))
    }

    /// One attempt: `None` when another host was creating or migrating the schema at the
    /// same moment; `Some(true)` when the assessment facts of the stored cases are still to
    /// be derived (the schema is recorded as [`FACTS_SCHEMA`] only once they are).
    fn prepare_schema_once(&self) -> Result<Option<bool>, StoreError> {
        let location = self.location.clone();
        self.block(async {
            let client = self.pool.get().await.map_err(pool_error)?;
            let found: Option<i64> = match client
                .query_opt("SELECT value FROM civic_meta WHERE key = 'schema'", &[])
                .await
            {
                Ok(row) => row.map(|r| r.get(0)),
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => None,
                Err(e) => return Err(pg_error(e)),
            };
            match found {
                Some(v) if v == SCHEMA_VERSION => {}
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::UnknownSchema {
                        location,
                        found: v.to_string(),
                        supported: SCHEMA_VERSION as u32,
                    });
                }
                Some(v) => {
                    let mut derive = false;
                    for (from, statements) in MIGRATIONS.iter().filter(|(f, _)| *f >= v) {
                        for s in *statements {
                            if let Err(e) = client.batch_execute(s).await {
                                if e.code().is_some_and(|c| RACED.contains(c)) {
                                    return Ok(None);
                                }
                                return Err(pg_error(e));
                            }
                        }
                        if from + 1 == FACTS_SCHEMA {
                            derive = true;
                            break;
                        }
                        client
                            .execute(
                                "UPDATE civic_meta SET value = $1 WHERE key = 'schema'",
                                &[&(from + 1)],
                            )
                            .await
                            .map_err(pg_error)?;
                    }
                    tracing::info!(
                        from = v,
                        to = SCHEMA_VERSION,
                        "migrated the database schema"
                    );
                    return Ok(Some(derive));
                }
                None => {
                    for s in SCHEMA {
                        if let Err(e) = client.batch_execute(s).await {
                            if e.code().is_some_and(|c| RACED.contains(c)) {
                                return Ok(None);
                            }
                            return Err(pg_error(e));
                        }
                    }
                    // PostgreSQL itself only: room in each page of the case table, so that a
                    // write leaving the indexed columns alone (most of them: the timer and
                    // the units live in tables of their own) is a heap-only update that adds
                    // no index entries. The distributed engines store rows otherwise.
                    let server: String = client
                        .query_one("SELECT version()", &[])
                        .await
                        .map_err(pg_error)?
                        .get(0);
                    if server.starts_with("PostgreSQL") && !server.contains("-YB-") {
                        client
                            .batch_execute("ALTER TABLE civic_cases SET (fillfactor = 80)")
                            .await
                            .map_err(pg_error)?;
                    }
                    client
                        .execute(
                            "INSERT INTO civic_meta (key, value) VALUES ('schema', $1)
                             ON CONFLICT (key) DO NOTHING",
                            &[&SCHEMA_VERSION],
                        )
                        .await
                        .map_err(pg_error)?;
                    tracing::info!(
                        schema = SCHEMA_VERSION,
                        location = %location,
                        "created the civic-rules schema"
                    );
                }
            }
            Ok(Some(false))
        })
    }

    /// Derives every stored case's assessment facts, then records [`FACTS_SCHEMA`]: an
    /// upgrade interrupted on the way derives them again (a fact stored twice is one).
    fn derive_facts(&self) -> Result<(), StoreError> {
        let cases = self.insert_all_facts()?;
        self.statement(async |c| {
            c.execute(
                "UPDATE civic_meta SET value = $1 WHERE key = 'schema' AND value < $1",
                &[&FACTS_SCHEMA],
            )
            .await?;
            Ok(())
        })?;
        tracing::info!(
            cases,
            to = FACTS_SCHEMA,
            "derived the assessment facts of the stored cases"
        );
        Ok(())
    }

    /// Every case's facts from its history, inserted (those already there stay).
    fn insert_all_facts(&self) -> Result<u64, StoreError> {
        super::derive_all_facts(self, &mut |facts| {
            let columns = FactColumns::of(&facts);
            self.statement(async |c| insert_facts(c, &columns).await)
        })
    }

    /// The query plans of the listings and the due-timer scan (for tests and benchmarks:
    /// each must use an index, never a scan of the whole table).
    pub fn explain_hot_queries(&self) -> Result<Vec<(String, String)>, StoreError> {
        let queries = [
            (
                "due timers",
                "SELECT case_id, due_at, due_kind FROM civic_timers WHERE due_at <= 5 ORDER BY due_at, case_id LIMIT 100",
            ),
            (
                "district listing",
                "SELECT body FROM civic_cases WHERE district = 'x' AND (created_at, id) < (5, 'c') ORDER BY created_at DESC, id DESC LIMIT 51",
            ),
            (
                "district and status listing",
                "SELECT body FROM civic_cases WHERE district = 'x' AND status = 'received' ORDER BY created_at DESC, id DESC LIMIT 51",
            ),
            (
                "unit listing",
                "SELECT u.case_id FROM civic_case_units u WHERE u.unit = 'x' ORDER BY u.created_at DESC, u.case_id DESC LIMIT 51",
            ),
            (
                "city-wide listing",
                "SELECT body FROM civic_cases ORDER BY created_at DESC, id DESC LIMIT 51",
            ),
            (
                "caller window",
                "SELECT body FROM civic_cases WHERE caller_key = 'k' AND created_at >= 5 ORDER BY created_at DESC, id DESC LIMIT 20",
            ),
        ];
        let mut out = Vec::new();
        for (name, q) in queries {
            let sql = format!("EXPLAIN {q}");
            let plan = self.read(async |c| {
                // Small tables make a sequential scan the cheapest plan; this asks for the
                // plan the indexes give, which is the one a large table gets.
                c.batch_execute("SET enable_seqscan = off").await?;
                let rows = c.query(sql.as_str(), &[]).await;
                c.batch_execute("RESET enable_seqscan").await?;
                Ok(rows?
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n"))
            })?;
            out.push((name.to_owned(), plan));
        }
        Ok(out)
    }
}

impl CaseStore for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    /// Each writer mostly waits on round trips to the database, so more of them than cores
    /// keep it busy.
    fn writers(&self) -> usize {
        8
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.read(async |c| c.query_one("SELECT 1", &[]).await.map(|_| ()))
    }

    fn next_case_id(&self) -> Result<String, StoreError> {
        {
            let mut ids = self.ids.lock();
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(super::case_id(ids.0 as u64));
            }
        }
        // One thread takes the next block while the others wait for it (they would
        // otherwise all update the counter row at once and retry on each other's conflicts).
        let mut ids = self.ids.lock();
        if ids.0 >= ids.1 {
            let end: i64 = self.statement(async |c| {
                let row = c
                    .query_one(
                        "UPDATE civic_meta SET value = value + $1 WHERE key = 'next_case' RETURNING value",
                        &[&ID_BLOCK],
                    )
                    .await?;
                Ok(row.get(0))
            })?;
            *ids = (end - ID_BLOCK, end);
        }
        ids.0 += 1;
        Ok(super::case_id(ids.0 as u64))
    }

    /// One statement ([`create_row`]): one round trip per intake.
    fn create_case(&self, change: Change) -> Result<Case, StoreError> {
        let (case, events) = first_version(change);
        if !self.statement(async |c| create_row(c, &case, &events).await)? {
            return Err(StoreError::Exists(case.id));
        }
        Ok(case)
    }

    fn get_case(&self, id: &str) -> Result<Option<Case>, StoreError> {
        let row = self.read(async |c| {
            let stmt = c.prepare_cached(SELECT_CASE).await?;
            c.query_opt(&stmt, &[&id]).await
        })?;
        row.map(|r| case_of(&r, 0)).transpose()
    }

    /// All of a call's changes in one transaction (one commit for a batch of firings): a
    /// case not at the version read is reported for itself and the others are written; a
    /// serialization failure retries the whole call.
    fn write(&self, writes: Vec<Versioned>) -> Result<Vec<Result<Case, StoreError>>, StoreError> {
        super::once_each(&writes)?;
        self.txn(async |tx| {
            let mut out = Vec::with_capacity(writes.len());
            for w in &writes {
                out.push(write_one(tx, w).await?);
            }
            Ok(out)
        })
    }

    /// Every write is committed before it returns.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// One transaction for the call; a case not at the version read stays.
    fn remove_cases(&self, cases: &[Case]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.txn(async |tx| {
            let mut out = Vec::with_capacity(cases.len());
            for c in cases {
                out.push(remove_one(tx, c).await?);
            }
            Ok(out)
        })
    }

    fn history_of(&self, id: &str, event_count: u64) -> Result<Vec<Event>, StoreError> {
        let count = event_count as i64;
        let rows = self.read(async |c| {
            let stmt = c
                .prepare_cached(
                    "SELECT body FROM civic_events WHERE case_id = $1 AND seq < $2 ORDER BY seq",
                )
                .await?;
            c.query(&stmt, &[&id, &count]).await
        })?;
        rows.iter()
            .map(|r| decode(b"civic_events.body", r.get::<_, &str>(0).as_bytes()))
            .collect()
    }

    fn list(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let tag = filter_tag(filter);
        let after = cursor.map(|c| parse_cursor(c, tag)).transpose()?;
        let status = filter.status.map(|s| s.as_str());
        // Each condition with its parameters, `?` standing for each.
        let mut conds: Vec<(String, Vec<Param<'_>>)> = Vec::new();
        // The unit listing walks the unit table in time order; the others walk an index of
        // the case table chosen by the filter's leading fields.
        let (from, time, id) = match &filter.unit {
            Some(unit) => {
                conds.push(("u.unit = ?".into(), vec![unit]));
                (
                    "civic_case_units u JOIN civic_cases c ON c.id = u.case_id",
                    "u.created_at",
                    "u.case_id",
                )
            }
            None => ("civic_cases c", "c.created_at", "c.id"),
        };
        if let Some(d) = &filter.district {
            conds.push(("c.district = ?".into(), vec![d]));
        }
        if let Some(s) = &status {
            conds.push(("c.status = ?".into(), vec![s]));
        }
        if let Some(x) = &filter.category {
            conds.push(("c.category = ?".into(), vec![x]));
        }
        if let Some(b) = &filter.created_by {
            conds.push(("c.created_by = ?".into(), vec![b]));
        }
        if let Some(t) = &filter.created_from {
            conds.push((format!("{time} >= ?"), vec![t]));
        }
        if let Some(t) = &filter.created_to {
            conds.push((format!("{time} < ?"), vec![t]));
        }
        if let Some((at, aid)) = &after {
            conds.push((format!("({time}, {id}) < (?, ?)"), vec![at, aid]));
        }
        let mut params: Vec<Param<'_>> = Vec::new();
        let mut rendered = Vec::new();
        for (sql, ps) in conds {
            let mut out = String::new();
            let mut ps = ps.into_iter();
            for ch in sql.chars() {
                match (ch, ch == '?') {
                    (_, true) => {
                        params.push(ps.next().expect("a parameter for each placeholder"));
                        out.push_str(&format!("${}", params.len()));
                    }
                    (ch, false) => out.push(ch),
                }
            }
            rendered.push(out);
        }
        let conds = rendered;
        let fetch = (limit + 1) as i64;
        params.push(&fetch);
        let sql = format!(
            "SELECT c.body FROM {from} {} {} ORDER BY {time} DESC, {id} DESC LIMIT ${}",
            if conds.is_empty() { "" } else { "WHERE" },
            conds.join(" AND "),
            params.len()
        );
        let rows = self.read(async |c| c.query(sql.as_str(), &params).await)?;
        let scanned = rows.len();
        let mut cases = rows
            .iter()
            .take(limit)
            .map(|r| case_of(r, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() > limit {
            cases.last().map(|c| cursor_text(c.created_at, &c.id, tag))
        } else {
            None
        };
        cases.truncate(limit);
        Ok(Page {
            cases,
            next,
            scanned,
        })
    }

    fn due_timers(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, StoreError> {
        let limit = limit as i64;
        let rows = self.read(async |c| {
            c.query(
                "SELECT case_id, due_at, due_kind FROM civic_timers
                 WHERE due_at <= $1 ORDER BY due_at, case_id LIMIT $2",
                &[&now, &limit],
            )
            .await
        })?;
        due_rows(&rows)
    }

    /// One statement for every partition; serializable, retried like every write.
    fn sweep_leases(
        &self,
        node: &str,
        now: Millis,
        ttl: Millis,
    ) -> Result<Option<Vec<super::Lease>>, StoreError> {
        let last = i64::from(super::SWEEP_PARTITIONS) - 1;
        let rows =
            self.txn(async |tx| Ok(tx.query(TAKE_LEASES, &[&node, &now, &ttl, &last]).await?))?;
        let mut leases: Vec<super::Lease> = rows
            .iter()
            .map(|r| super::Lease {
                partition: r.get::<_, i64>(0) as u32,
                owner: node.to_owned(),
                fence: r.get(1),
            })
            .collect();
        leases.sort_by_key(|l| l.partition);
        Ok(Some(leases))
    }

    fn due_timers_in(
        &self,
        now: Millis,
        limit: usize,
        partitions: &[u32],
    ) -> Result<Vec<DueTimer>, StoreError> {
        let limit = limit as i64;
        let parts: Vec<i64> = partitions.iter().map(|&p| i64::from(p)).collect();
        let modulus = i64::from(super::SWEEP_PARTITIONS);
        let rows = self.read(async |c| {
            c.query(
                "SELECT case_id, due_at, due_kind FROM civic_timers
                 WHERE due_at <= $1 AND CAST(substr(case_id, 3) AS BIGINT) % $4 = ANY($3)
                 ORDER BY due_at, case_id LIMIT $2",
                &[&now, &limit, &parts, &modulus],
            )
            .await
        })?;
        due_rows(&rows)
    }

    fn caller_cases(
        &self,
        caller_key: &str,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<Case>, StoreError> {
        let limit = limit as i64;
        let rows = self.read(async |c| {
            let stmt = c
                .prepare_cached(
                    "SELECT body FROM civic_cases WHERE caller_key = $1 AND created_at >= $2
                     ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .await?;
            c.query(&stmt, &[&caller_key, &since, &limit]).await
        })?;
        rows.iter().map(|r| case_of(r, 0)).collect()
    }

    fn cases_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Case>, StoreError> {
        let after = after.unwrap_or("");
        let limit = limit as i64;
        let rows = self.read(async |c| {
            c.query(
                "SELECT body FROM civic_cases WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await
        })?;
        rows.iter().map(|r| case_of(r, 0)).collect()
    }

    fn case_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.read(async |c| {
            Ok(c.query_one("SELECT count(*) FROM civic_cases", &[])
                .await?
                .get(0))
        })?;
        Ok(n as u64)
    }

    fn assessment(
        &self,
        district: &str,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Result<assessment::Counts, StoreError> {
        let rows = self.read(async |c| {
            let stmt = c.prepare_cached(COUNT_FACTS).await?;
            c.query(&stmt, &[&district, &from, &to, &now]).await
        })?;
        let mut counts = assessment::Counts::new();
        for r in rows {
            let name: &str = r.get(1);
            let measure = assessment::Measure::parse(name).ok_or_else(|| StoreError::Corrupt {
                key: format!("civic_facts.measure {name:?}"),
                message: "not a measure this build knows".into(),
            })?;
            counts
                .entry((district.to_owned(), r.get(0), measure))
                .or_default()
                .add(r.get(2), r.get(3), r.get::<_, i64>(4) as u64);
        }
        Ok(counts)
    }

    fn status_counts(&self) -> Result<HashMap<(String, CaseStatus), u64>, StoreError> {
        let rows = self.read(async |c| {
            c.query(
                "SELECT district, status, count(*) FROM civic_cases GROUP BY district, status",
                &[],
            )
            .await
        })?;
        let mut out = HashMap::new();
        for r in rows {
            let status: &str = r.get(1);
            let Ok(status) = status.parse::<CaseStatus>() else {
                continue;
            };
            out.insert((r.get::<_, String>(0), status), r.get::<_, i64>(2) as u64);
        }
        Ok(out)
    }

    fn put_directory(&self, record: &DirectoryRecord) -> Result<u64, StoreError> {
        let v: i64 = self.txn(async |tx| {
            let row = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM civic_directories",
                    &[],
                )
                .await?;
            let v: i64 = row.get(0);
            tx.execute(
                "INSERT INTO civic_directories (version, directory, categories) VALUES ($1, $2, $3)",
                &[&v, &record.directory, &record.categories],
            )
            .await?;
            tx.execute(
                "UPDATE civic_meta SET value = $1 WHERE key = 'directory'",
                &[&v],
            )
            .await?;
            Ok(v)
        })?;
        Ok(v as u64)
    }

    fn directory_record(&self, version: u64) -> Result<Option<DirectoryRecord>, StoreError> {
        let v = version as i64;
        let row = self.read(async |c| {
            c.query_opt(
                "SELECT directory, categories FROM civic_directories WHERE version = $1",
                &[&v],
            )
            .await
        })?;
        Ok(row.map(|r| DirectoryRecord {
            directory: r.get(0),
            categories: r.get(1),
        }))
    }

    fn current_directory_version(&self) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = self.read(async |c| {
            Ok(
                c.query_opt("SELECT value FROM civic_meta WHERE key = 'directory'", &[])
                    .await?
                    .map(|r| r.get(0)),
            )
        })?;
        Ok(v.filter(|v| *v > 0).map(|v| v as u64))
    }

    fn directory_versions(&self) -> Result<Vec<u64>, StoreError> {
        let rows = self.read(async |c| {
            c.query(
                "SELECT version FROM civic_directories ORDER BY version",
                &[],
            )
            .await
        })?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
    }

    fn record_get(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.read(async |c| {
            c.query_opt(
                "SELECT value FROM civic_records WHERE collection = $1 AND key = $2",
                &[&collection, &key],
            )
            .await
        })?;
        Ok(row.map(|r| r.get(0)))
    }

    fn record_put(
        &self,
        collection: &str,
        entries: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        self.txn(async |tx| {
            for (k, v) in entries {
                upsert_record(tx, collection, k, v).await?;
            }
            Ok(())
        })
    }

    fn record_remove(&self, collection: &str, key: &str) -> Result<(), StoreError> {
        self.txn(async |tx| {
            tx.execute(
                "DELETE FROM civic_records WHERE collection = $1 AND key = $2",
                &[&collection, &key],
            )
            .await?;
            Ok(())
        })
    }

    fn record_change(
        &self,
        collection: &str,
        key: &str,
        f: &super::RecordChange<'_>,
    ) -> Result<(), StoreError> {
        self.txn(async |tx| {
            let cur: Option<Vec<u8>> = tx
                .query_opt(
                    "SELECT value FROM civic_records WHERE collection = $1 AND key = $2",
                    &[&collection, &key],
                )
                .await?
                .map(|r| r.get(0));
            match f(cur.as_deref())? {
                Some(v) => upsert_record(tx, collection, key, &v).await?,
                None => {
                    tx.execute(
                        "DELETE FROM civic_records WHERE collection = $1 AND key = $2",
                        &[&collection, &key],
                    )
                    .await?;
                }
            }
            Ok(())
        })
    }

    fn record_scan(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // An equality on the key's start, not a range or LIKE: the database's collation
        // (linguistic in many installations) orders and compares ranges of text in ways
        // that are not byte order, but equality is equality; the order is made here.
        let rows = self.read(async |c| {
            c.query(
                "SELECT key, value FROM civic_records
                 WHERE collection = $1 AND left(key, length($2)) = $2",
                &[&collection, &prefix],
            )
            .await
        })?;
        let mut out: Vec<(String, Vec<u8>)> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1)))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn record_collections(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.read(async |c| {
            c.query("SELECT DISTINCT collection FROM civic_records", &[])
                .await
        })?;
        let mut out: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        out.sort();
        Ok(out)
    }

    fn import(&self, items: Vec<Imported>) -> Result<(), StoreError> {
        self.txn(async |tx| {
            for item in &items {
                match item {
                    Imported::Directory { version, record } => {
                        let v = *version as i64;
                        tx.execute(
                            "INSERT INTO civic_directories (version, directory, categories)
                             VALUES ($1, $2, $3)
                             ON CONFLICT (version) DO UPDATE
                             SET directory = EXCLUDED.directory, categories = EXCLUDED.categories",
                            &[&v, &record.directory, &record.categories],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE civic_meta SET value = GREATEST(value, $1) WHERE key = 'directory'",
                            &[&v],
                        )
                        .await?;
                    }
                    Imported::Case(c) => {
                        if !create_row(tx, c, &[]).await? {
                            return Err(StoreError::Exists(c.id.clone()).into());
                        }
                    }
                    Imported::Events { case, events } => insert_events(tx, case, events).await?,
                    Imported::Record {
                        collection,
                        key,
                        value,
                    } => upsert_record(tx, collection, key, value).await?,
                }
            }
            Ok(())
        })
    }

    /// The id counter moves past the highest imported id here, once, not in every batch:
    /// batches written side by side would all update that one row and keep conflicting.
    fn finish_import(&self) -> Result<(), StoreError> {
        self.statement(async |c| {
            c.execute(
                "UPDATE civic_meta SET value = GREATEST(value,
                    COALESCE((SELECT max(CAST(substr(id, 3) AS BIGINT)) FROM civic_cases
                              WHERE id LIKE 'c-%'), 0))
                 WHERE key = 'next_case'",
                &[],
            )
            .await?;
            Ok(())
        })?;
        // Ids handed out from blocks taken before the import may collide with imported ones.
        *self.ids.lock() = (0, 0);
        self.insert_all_facts()?;
        Ok(())
    }

    /// Every case has its events; the columns and unit rows derived from a case agree with
    /// it; no event or unit row belongs to no case.
    fn check_consistency(&self) -> Result<Consistency, StoreError> {
        let mut report = Consistency::default();
        let mut after: Option<String> = None;
        loop {
            let last = after.clone().unwrap_or_default();
            let rows = self.read(async |c| {
                c.query(
                    "SELECT c.id, c.district, c.status, c.category, c.created_at, c.created_by,
                        c.caller_key, t.due_at, t.due_kind, c.version, c.event_count, c.body,
                        (SELECT count(*) FROM civic_events e WHERE e.case_id = c.id),
                        (SELECT string_agg(u.unit, '\n' ORDER BY u.unit) FROM civic_case_units u
                         WHERE u.case_id = c.id AND u.created_at = c.created_at)
                     FROM civic_cases c LEFT JOIN civic_timers t ON t.case_id = c.id
                     WHERE c.id > $1 ORDER BY c.id LIMIT 500",
                    &[&last],
                )
                .await
            })?;
            let Some(tail) = rows.last() else { break };
            after = Some(tail.get(0));
            self.check_facts(&rows, &mut report)?;
            for r in &rows {
                let c = case_of(r, 11)?;
                report.cases += 1;
                let col = Columns::of(&c)?;
                let stored = (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, i64>(4),
                    r.get::<_, String>(5),
                    r.get::<_, String>(6),
                    r.get::<_, Option<i64>>(7),
                    r.get::<_, Option<String>>(8),
                    r.get::<_, i64>(9),
                    r.get::<_, i64>(10),
                );
                let derived = (
                    c.id.clone(),
                    c.district.clone(),
                    col.status.to_owned(),
                    c.category.clone(),
                    c.created_at,
                    c.created_by.clone(),
                    c.caller_key.clone(),
                    col.due_at,
                    col.due_kind.map(str::to_owned),
                    col.version,
                    col.event_count,
                );
                if stored != derived {
                    report.problems.push(format!(
                        "case {}: its columns {stored:?} disagree with its body {derived:?}",
                        c.id
                    ));
                }
                let events: i64 = r.get(12);
                report.events += events as usize;
                if events as u64 != c.event_count {
                    report.problems.push(format!(
                        "case {} has {events} events, expected {}",
                        c.id, c.event_count
                    ));
                }
                let mut want: Vec<&str> = units(&c);
                want.sort();
                let have: Option<String> = r.get(13);
                let mut have: Vec<&str> = have
                    .as_deref()
                    .map(|h| h.split('\n').collect())
                    .unwrap_or_default();
                have.sort();
                report.index_entries += have.len();
                if have != want {
                    report.problems.push(format!(
                        "case {} is listed for units {have:?}, it is handled by {want:?}",
                        c.id
                    ));
                }
            }
        }
        let orphans = self.read(async |c| {
            c.query(
                "SELECT 'event', e.case_id FROM civic_events e
                 WHERE NOT EXISTS (SELECT 1 FROM civic_cases c WHERE c.id = e.case_id)
                 UNION ALL
                 SELECT 'timer', t.case_id FROM civic_timers t
                 WHERE NOT EXISTS (SELECT 1 FROM civic_cases c WHERE c.id = t.case_id)
                 UNION ALL
                 SELECT 'owed deadline', f.case_id FROM civic_facts f
                 WHERE f.seq = -1 AND NOT EXISTS (SELECT 1 FROM civic_cases c WHERE c.id = f.case_id)
                 UNION ALL
                 SELECT 'unit', u.case_id FROM civic_case_units u
                 WHERE NOT EXISTS (SELECT 1 FROM civic_cases c
                                   WHERE c.id = u.case_id AND c.created_at = u.created_at)
                 LIMIT 100",
                &[],
            )
            .await
        })?;
        for r in orphans {
            report.problems.push(format!(
                "{} row of case {} belongs to no case",
                r.get::<_, &str>(0),
                r.get::<_, &str>(1)
            ));
        }
        Ok(report)
    }
}

impl PostgresStore {
    /// The facts stored for a page of the consistency check's cases (`rows`, the case body
    /// in column 11) against those their histories derive.
    fn check_facts(&self, rows: &[Row], report: &mut Consistency) -> Result<(), StoreError> {
        use std::collections::BTreeSet;
        type Key = (String, String, i64, String, String, i64);
        let key = |f: &Fact| -> Key {
            (
                f.case.clone(),
                f.district.clone(),
                f.at,
                f.unit.clone(),
                f.measure.as_str().to_owned(),
                f.seq.map_or(-1, |s| s as i64),
            )
        };
        let mut want = BTreeSet::new();
        let mut ids = Vec::with_capacity(rows.len());
        for r in rows {
            let c = case_of(r, 11)?;
            let history = self.history_of(&c.id, c.event_count)?;
            want.extend(assessment::case_facts(&c, &history).iter().map(key));
            ids.push(c.id);
        }
        let stored = self.read(async |c| {
            c.query(
                "SELECT case_id, district, at, unit, measure, seq FROM civic_facts
                 WHERE case_id = ANY($1)",
                &[&ids],
            )
            .await
        })?;
        let have: BTreeSet<Key> = stored
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect();
        for k in want.difference(&have) {
            report
                .problems
                .push(format!("case {} is missing its assessment fact {k:?}", k.0));
        }
        for k in have.difference(&want) {
            report.problems.push(format!(
                "assessment fact {k:?} does not follow from case {}'s history",
                k.0
            ));
        }
        Ok(())
    }
}

async fn upsert_record(
    tx: &Transaction<'_>,
    collection: &str,
    key: &str,
    value: &[u8],
) -> Result<(), Fail> {
    tx.execute(
        "INSERT INTO civic_records (collection, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value",
        &[&collection, &key, &value],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_messages() {
        assert_eq!(
            redact("postgres://civic:s3cret@db.example:5432/civic"),
            "postgres://civic:***@db.example:5432/civic"
        );
        assert_eq!(
            redact("postgres://civic@127.0.0.1:5432/civic"),
            "postgres://civic@127.0.0.1:5432/civic"
        );
        let e = PostgresConfig::new("postgres://civic:s3cret@host:notaport/db").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn a_cursor_continues_only_its_own_listing() {
        let f = Filter {
            district: Some("jiyang".into()),
            ..Filter::default()
        };
        let tag = filter_tag(&f);
        let c = cursor_text(1_700_000_000_000, "c-0000000042", tag);
        assert_eq!(
            parse_cursor(&c, tag).unwrap(),
            (1_700_000_000_000, "c-0000000042".to_owned())
        );
        let other = filter_tag(&Filter::default());
        assert!(
            matches!(parse_cursor(&c, other), Err(StoreError::Invalid(m)) if m.contains("another listing"))
        );
        assert!(parse_cursor("zz", tag).is_err());
    }
}
