//! Retention: how long finished cases stay in the live store, and moving older ones to an
//! archive the city keeps.
//!
//! A run takes every finished case (a terminal status: closed, rejected, transferred,
//! answered at intake, merged) whose last change is before the policy's cut-off, writes it
//! with its whole history to an archive file — the export format with an archive header,
//! which `civic store import` reads back into an empty store or into the same store — and
//! then removes it from the live store. An open case is never taken; neither is a case
//! merged into one still open. Each batch is in the archive file, synced to disk, before
//! any of it is removed, so a crash at any point loses nothing: at worst the archive holds
//! a batch that is also still live (the audit record stays `started`; import refuses the
//! duplicates by id). A case that changes between being read and being removed stays live
//! (the removal is version-checked) and is taken back out of the archive.
//!
//! Every run leaves an audit record (collection [`RUNS`]): when, by whom, the cut-off, the
//! file, how many cases and events, and the archive's sha256 — written when the run starts
//! and completed when it ends.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::backup::{self, ArchiveInfo};
use super::{CaseStore, Filter, MAX_PAGE, StoreError};
use crate::calendar::{self, Day};
use crate::model::{Case, CaseStatus, Millis};

/// The record collection holding one audit record per run.
pub const RUNS: &str = "retention-runs";

const DAY_MS: Millis = 86_400_000;

/// Which finished cases a run takes: those last changed before `closed_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The cut-off.
    pub closed_before: Millis,
}

impl Policy {
    /// Keeps finished cases `years` years after their last change: the cut-off is midnight
    /// (UTC) of the same date `years` before `now`'s.
    pub fn keep_years(now: Millis, years: u32) -> Result<Self, StoreError> {
        if years == 0 {
            return Err(StoreError::Invalid(
                "a retention period of 0 years would archive every finished case at once; give 1 or more, or name a date with --closed-before".into(),
            ));
        }
        let day: Day = now.div_euclid(DAY_MS);
        Ok(Self {
            closed_before: calendar::years_before(day, years) * DAY_MS,
        })
    }

    /// Archives finished cases last changed before `date` (`YYYY-MM-DD`, midnight UTC, or
    /// an RFC 3339 time), which must not be after `now`.
    pub fn closed_before(date: &str, now: Millis) -> Result<Self, StoreError> {
        let at = calendar::parse_date(date)
            .map(|d| d * DAY_MS)
            .or_else(|| calendar::parse_datetime(date))
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "--closed-before {date:?} is not a date (YYYY-MM-DD) or a time (2024-01-01T00:00:00+08:00)"
                ))
            })?;
        if at > now {
            return Err(StoreError::Invalid(format!(
                "--closed-before {date} is in the future; retention archives cases finished before a past date"
            )));
        }
        Ok(Self { closed_before: at })
    }

    /// Whether `case` is finished and was last changed before the cut-off (whether a
    /// merged case's target is still open is checked by the run).
    pub fn takes(&self, case: &Case) -> bool {
        case.status.is_terminal() && case.updated_at < self.closed_before
    }
}

/// One run's audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// When it started.
    pub at: Millis,
    /// Who ran it (`cli`, a token id, `policy` for the server's own runs).
    pub by: String,
    /// Its cut-off.
    pub closed_before: Millis,
    /// The archive file.
    pub archive: String,
    /// `started`, or `finished` once every batch was archived and removed.
    pub state: String,
    /// Cases archived and removed.
    pub cases: u64,
    /// Their events.
    pub events: u64,
    /// Cases that changed while the run went on and were kept live.
    pub kept_changed: u64,
    /// The archive's size in bytes and sha256 (hex), once finished.
    pub bytes: u64,
    /// See `bytes`.
    pub sha256: String,
}

/// Archives and removes what `policy` takes, to a new file at `path` (an existing file is
/// never overwritten; none is made when nothing is taken, and then no audit record
/// either). `progress` is told the cases archived so far after each batch, and the run
/// stops there (state `stopped`) when it answers `false`.
pub fn run(
    store: &dyn CaseStore,
    policy: &Policy,
    path: &Path,
    by: &str,
    now: Millis,
    progress: &dyn Fn(u64) -> bool,
) -> Result<Run, StoreError> {
    if path.exists() {
        return Err(never_overwritten(path, "it exists"));
    }
    let mut record = Run {
        at: now,
        by: by.to_owned(),
        closed_before: policy.closed_before,
        archive: path.display().to_string(),
        state: "started".into(),
        cases: 0,
        events: 0,
        kept_changed: 0,
        bytes: 0,
        sha256: String::new(),
    };
    let key = format!(
        "{now:013}-{}",
        &hex::encode(Sha256::digest(&record.archive))[..8]
    );
    // The file and the audit record are made with the first batch.
    let mut out: Option<(std::fs::File, u64)> = None;
    let mut districts: Vec<String> = store.status_counts()?.into_keys().map(|(d, _)| d).collect();
    districts.sort();
    districts.dedup();
    'walk: for district in districts {
        for status in CaseStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            // A case's last change is never before its creation, so only cases created
            // before the cut-off can be taken: the index's time order bounds the walk.
            let filter = Filter {
                district: Some(district.clone()),
                status: Some(status),
                created_to: Some(policy.closed_before),
                ..Filter::default()
            };
            let mut cursor: Option<String> = None;
            loop {
                let page = store.list(&filter, cursor.as_deref(), MAX_PAGE)?;
                let mut batch = Vec::with_capacity(page.cases.len());
                for c in page.cases {
                    if policy.takes(&c) && !merged_into_open(store, &c)? {
                        batch.push(c);
                    }
                }
                if !batch.is_empty() {
                    if out.is_none() {
                        out = Some(begin(store, policy, path, &key, &record)?);
                    }
                    let (file, end) = out.as_mut().expect("made above");
                    let (cases, events, kept) = archive_batch(store, file, end, batch)?;
                    record.cases += cases;
                    record.events += events;
                    record.kept_changed += kept;
                    if !progress(record.cases) {
                        record.state = "stopped".into();
                        break 'walk;
                    }
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }
    let Some((file, _)) = out else {
        record.state = "finished".into();
        return Ok(record);
    };
    file.sync_all()?;
    drop(file);
    let (bytes, sha256) = digest(path)?;
    record.bytes = bytes;
    record.sha256 = sha256;
    if record.state == "started" {
        record.state = "finished".into();
    }
    audit(store, &key, &record)?;
    tracing::info!(
        cases = record.cases,
        events = record.events,
        kept_changed = record.kept_changed,
        archive = %record.archive,
        state = %record.state,
        "retention run done"
    );
    Ok(record)
}

fn never_overwritten(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!(
        "cannot create the archive {}: {why} (an archive is never overwritten; name a new file)",
        path.display()
    ))
}

/// Creates the archive with its header, and the run's audit record as `started`; returns
/// the file and its length.
fn begin(
    store: &dyn CaseStore,
    policy: &Policy,
    path: &Path,
    key: &str,
    record: &Run,
) -> Result<(std::fs::File, u64), StoreError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| never_overwritten(path, e))?;
    audit(store, key, record)?;
    let mut head = Vec::new();
    backup::write_header(
        &mut head,
        Some(&ArchiveInfo {
            at: record.at,
            closed_before: policy.closed_before,
            from: store.location(),
        }),
    )?;
    file.write_all(&head)?;
    file.sync_data()?;
    Ok((file, head.len() as u64))
}

/// Whether `c` was merged into a case that is still open (it stays with it).
fn merged_into_open(store: &dyn CaseStore, c: &Case) -> Result<bool, StoreError> {
    match (&c.status, &c.merged_into) {
        (CaseStatus::Merged, Some(target)) => {
            Ok(store.get_case(target)?.is_some_and(|t| t.is_open()))
        }
        _ => Ok(false),
    }
}

/// Appends `batch` at `end` of the archive, syncs it, removes the cases from the store,
/// and rewrites the batch without any that changed meanwhile (they stay live). Returns
/// the cases and events archived and the cases kept.
fn archive_batch(
    store: &dyn CaseStore,
    file: &mut std::fs::File,
    end: &mut u64,
    batch: Vec<Case>,
) -> Result<(u64, u64, u64), StoreError> {
    // Each case's lines on their own: once removed, a case's history cannot be read again
    // to write the batch a second time.
    let mut each = Vec::with_capacity(batch.len());
    for c in &batch {
        let mut buf = Vec::new();
        let events = backup::write_case(store, c, &mut buf)?;
        each.push((buf, events));
    }
    append(
        file,
        *end,
        &each
            .iter()
            .flat_map(|(b, _)| b.iter().copied())
            .collect::<Vec<u8>>(),
    )?;
    let results = store.remove_cases(&batch)?;
    let mut kept = 0u64;
    for (c, r) in batch.iter().zip(&results) {
        if let Err(e) = r {
            kept += 1;
            tracing::info!(case = %c.id, reason = %e, "kept live: it changed while being archived");
        }
    }
    let removed: Vec<&(Vec<u8>, u64)> = each
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(x, _)| x)
        .collect();
    let bytes: Vec<u8> = removed
        .iter()
        .flat_map(|(b, _)| b.iter().copied())
        .collect();
    if kept > 0 {
        append(file, *end, &bytes)?;
    }
    *end += bytes.len() as u64;
    let events = removed.iter().map(|(_, n)| n).sum();
    Ok((removed.len() as u64, events, kept))
}

/// Writes `bytes` at `at`, cutting the file there first, and syncs it.
fn append(file: &mut std::fs::File, at: u64, bytes: &[u8]) -> Result<(), StoreError> {
    file.set_len(at)?;
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)?;
    file.sync_data()?;
    Ok(())
}

/// The file's size and sha256.
fn digest(path: &Path) -> Result<(u64, String), StoreError> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let bytes = std::io::copy(&mut f, &mut h)?;
    Ok((bytes, hex::encode(h.finalize())))
}

fn audit(store: &dyn CaseStore, key: &str, run: &Run) -> Result<(), StoreError> {
    store.record_put(RUNS, &[(key.to_owned(), super::encode(run)?)])
}

/// Every run's audit record, oldest first.
pub fn runs(store: &dyn CaseStore) -> Result<Vec<Run>, StoreError> {
    store
        .record_scan(RUNS, "")?
        .into_iter()
        .map(|(k, v)| super::decode(k.as_bytes(), &v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CaseStatus, EventBody};
    use crate::store::sled::{Durability, SledStore};
    use crate::store::{Change, Versioned};

    const T0: Millis = 1_796_000_400_000;

    fn closed(s: &SledStore, n: i64) -> Case {
        let mut c = Case::received(
            s.next_case_id().unwrap(),
            "jiyang".into(),
            "noise".into(),
            "agent".into(),
            T0 + n,
        );
        c.status = CaseStatus::Closed;
        s.create_case(Change {
            case: c,
            events: vec![(
                T0 + n,
                "agent".into(),
                EventBody::Received {
                    channel: crate::model::Channel::Phone,
                },
            )],
        })
        .unwrap()
    }

    /// A case changed after the run read it stays live, and the archive holds only the
    /// cases that were removed (so importing it never brings back a stale copy).
    #[test]
    fn a_case_that_changes_while_archived_stays_live_and_leaves_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("store"), Durability::GroupCommit).unwrap();
        let batch: Vec<Case> = (0..3).map(|n| closed(&s, n)).collect();
        // Someone reopens the middle one after the run read it.
        let mut reopened = batch[1].clone();
        reopened.status = CaseStatus::Dispatched;
        s.write(vec![Versioned {
            read: batch[1].clone(),
            change: Change {
                case: reopened,
                events: vec![],
            },
            fence: None,
        }])
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();

        let path = dir.path().join("a.jsonl");
        let mut file = std::fs::File::create(&path).unwrap();
        let mut end = 0;
        let (cases, events, kept) = archive_batch(&s, &mut file, &mut end, batch.clone()).unwrap();
        assert_eq!((cases, events, kept), (2, 2, 1));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, end);
        assert!(!text.contains(&batch[1].id), "{text}");
        assert!(text.contains(&batch[0].id) && text.contains(&batch[2].id));
        assert_eq!(
            s.get_case(&batch[1].id).unwrap().unwrap().status,
            CaseStatus::Dispatched
        );
        assert_eq!(s.case_count().unwrap(), 1);
    }
}
