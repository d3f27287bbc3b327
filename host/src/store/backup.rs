//! Moving a whole store between engines: an export is JSON Lines, written and read through
//! [`CaseStore`] alone, so any engine exports to any engine (`civic store export | civic
//! store import`).
//!
//! The lines: a header naming the format, every directory version, then each case followed
//! by its events, then the records of every collection. Both directions stream: a store
//! larger than memory moves in batches of [`BATCH`] lines.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::{CaseStore, DirectoryRecord, Imported, StoreError};
use crate::directory::Directory;
use crate::model::{Case, Event, Millis};

/// The export format this build writes. 1 was the format of sled schema 1 (the same lines;
/// only its indexes differed, and indexes are rebuilt on import).
pub const FORMAT: u32 = 2;
/// The oldest format this build reads.
const READS_FROM: u32 = 1;
/// Lines written to the target per import call, and cases read per export call.
pub const BATCH: usize = 500;

/// What the header of an archive (see [`super::retention`]) says: the cases that follow
/// were removed from a store, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveInfo {
    /// When the archive was made.
    pub at: Millis,
    /// It holds finished cases whose last change was before this time.
    pub closed_before: Millis,
    /// The store they were removed from (for messages; no password).
    pub from: String,
}

/// One line of an export.
#[derive(Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "kebab-case", deny_unknown_fields)]
enum Line {
    Header {
        schema: u32,
        /// Set on an archive: its cases were removed from a store that goes on, so it can be
        /// imported back into that store (beside its other cases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        archive: Option<ArchiveInfo>,
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

/// What an export or import moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Lines in all.
    pub lines: usize,
    /// Cases.
    pub cases: u64,
    /// Events.
    pub events: u64,
}

/// Writes one line.
fn write_line(out: &mut impl Write, l: &Line) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, l).map_err(|e| StoreError::Io(e.to_string()))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the header line, of an archive when `archive` is given.
pub fn write_header(out: &mut impl Write, archive: Option<&ArchiveInfo>) -> Result<(), StoreError> {
    write_line(
        out,
        &Line::Header {
            schema: FORMAT,
            archive: archive.cloned(),
        },
    )
}

/// Writes a case's line and one line per event it counts; returns the events written.
pub fn write_case(
    store: &dyn CaseStore,
    case: &Case,
    out: &mut impl Write,
) -> Result<u64, StoreError> {
    let history = store.history_of(&case.id, case.event_count)?;
    write_line(out, &Line::Case(Box::new(case.clone())))?;
    let events = history.len() as u64;
    for e in history {
        write_line(
            out,
            &Line::Event {
                case: case.id.clone(),
                event: Box::new(e),
            },
        )?;
    }
    Ok(events)
}

/// Writes the whole store as JSON Lines; `progress` is told the cases written so far.
///
/// Each case's events are those the exported case counts: a write that lands while the
/// export runs adds events the exported case does not know of, and they are left out with
/// it. Stop writers first for an export that is a single moment.
pub fn export(
    store: &dyn CaseStore,
    mut out: impl Write,
    progress: &dyn Fn(u64),
) -> Result<Moved, StoreError> {
    let mut moved = Moved::default();
    write_header(&mut out, None)?;
    moved.lines += 1;
    for version in store.directory_versions()? {
        let Some(r) = store.directory_record(version)? else {
            continue;
        };
        write_line(
            &mut out,
            &Line::RefData {
                version,
                directory: r.directory,
                categories: r.categories,
            },
        )?;
        moved.lines += 1;
    }
    let mut after: Option<String> = None;
    loop {
        let page = store.cases_after(after.as_deref(), BATCH)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for c in page {
            let events = write_case(store, &c, &mut out)?;
            moved.events += events;
            moved.lines += 1 + events as usize;
            moved.cases += 1;
        }
        progress(moved.cases);
    }
    let mut collections = store.record_collections()?;
    collections.sort();
    for collection in collections {
        for (key, value) in store.record_scan(&collection, "")? {
            write_line(
                &mut out,
                &Line::Record {
                    tree: collection.clone(),
                    key: hex::encode(key.as_bytes()),
                    value: hex::encode(value),
                },
            )?;
            moved.lines += 1;
        }
    }
    out.flush()?;
    Ok(moved)
}

/// Reads an export into `store`, which must hold no cases, or an archive into any store
/// that holds none of its cases; `progress` is told the lines read so far.
///
/// Lines are checked as they are read and written in batches: a bad line stops the import
/// with its line number, and what came before it has been written — start again on an
/// empty store (the error says so).
pub fn import(
    store: &dyn CaseStore,
    input: impl BufRead,
    progress: &dyn Fn(u64),
) -> Result<Moved, StoreError> {
    let held = store.case_count()?;
    let mut moved = Moved::default();
    let mut batch: Vec<Imported> = Vec::with_capacity(BATCH);
    let mut written_before = 0usize;
    let flush = |batch: &mut Vec<Imported>, upto: usize| -> Result<(), StoreError> {
        store
            .import(std::mem::take(batch))
            .map_err(|e| StoreError::Import {
                line: upto,
                message: format!("writing the lines up to here failed: {e}"),
            })
    };
    let mut header = false;
    // An archive goes back beside the store's other cases, each checked absent first.
    let mut archive = false;
    for (i, l) in input.lines().enumerate() {
        let n = i + 1;
        let partial = |message: String| StoreError::Import {
            line: n,
            message: if written_before > 0 {
                format!(
                    "{message}; lines 1 to {written_before} were imported, so empty the store before importing again"
                )
            } else {
                format!("{message}; nothing was imported")
            },
        };
        let l = l.map_err(|e| partial(format!("cannot read it: {e}")))?;
        if l.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&l).map_err(|e| partial(e.to_string()))?;
        if !header {
            match parsed {
                Line::Header { schema, archive: a } if (READS_FROM..=FORMAT).contains(&schema) => {
                    if a.is_none() && held > 0 {
                        return Err(StoreError::Invalid(format!(
                            "import needs a store without cases; {} holds {held} (import into a new data directory or an empty database)",
                            store.location(),
                        )));
                    }
                    archive = a.is_some();
                    header = true;
                    moved.lines += 1;
                    continue;
                }
                _ => {
                    return Err(partial(format!(
                        "not an export header of format {READS_FROM} to {FORMAT}"
                    )));
                }
            }
        }
        let item = match parsed {
            Line::Header { .. } => return Err(partial("a second header".into())),
            Line::RefData {
                version,
                directory,
                categories,
            } => {
                Directory::from_json(version, &directory, &categories)
                    .map_err(|e| partial(e.to_string()))?;
                Imported::Directory {
                    version,
                    record: DirectoryRecord {
                        directory,
                        categories,
                    },
                }
            }
            Line::Case(c) => {
                if archive && held > 0 && store.get_case(&c.id)?.is_some() {
                    return Err(partial(format!(
                        "case {} is in {} already (was this archive imported before?)",
                        c.id,
                        store.location()
                    )));
                }
                moved.cases += 1;
                Imported::Case(c)
            }
            Line::Event { case, event } => {
                moved.events += 1;
                // Consecutive events of one case go to the engine together.
                if let Some(Imported::Events { case: last, events }) = batch.last_mut()
                    && *last == case
                    && events.last().is_some_and(|e| e.seq + 1 == event.seq)
                {
                    events.push(*event);
                    moved.lines += 1;
                    continue;
                }
                Imported::Events {
                    case,
                    events: vec![*event],
                }
            }
            Line::Record { tree, key, value } => {
                let key = hex::decode(&key)
                    .ok()
                    .and_then(|k| String::from_utf8(k).ok())
                    .ok_or_else(|| {
                        partial(format!("record in {tree}: the key is not hex of UTF-8"))
                    })?;
                let value = hex::decode(&value)
                    .map_err(|_| partial(format!("record in {tree}: the value is not hex")))?;
                Imported::Record {
                    collection: tree,
                    key,
                    value,
                }
            }
        };
        batch.push(item);
        moved.lines += 1;
        if batch.len() >= BATCH {
            flush(&mut batch, n)?;
            written_before = n;
            progress(moved.lines as u64);
        }
    }
    if !header {
        return Err(StoreError::Import {
            line: 1,
            message: "the input is empty, not an export; nothing was imported".into(),
        });
    }
    flush(&mut batch, moved.lines)?;
    store.finish_import()?;
    progress(moved.lines as u64);
    Ok(moved)
}
