//! Compaction: sled never gives disk space back — its log keeps every rewritten version of
//! a case until its segments are cleaned, so a year of cases each written ~6 times takes
//! several times what it holds (see BENCHMARKS.md, "a year of cases"). Compacting rewrites
//! the store once, through the export format, into a fresh store beside it
//! (`STORE.compacting`), checks it, and swaps the two directories in one atomic rename
//! (Linux `renameat2(RENAME_EXCHANGE)`); the old files are then removed. The server must be
//! stopped (sled is one process's).
//!
//! A crash before the swap leaves the store as it was (and a half-made `STORE.compacting`,
//! removed by the next compaction); a crash after it leaves the compacted store in place
//! and the old one in `STORE.compacting`.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use super::{SledConfig, SledStore};
use crate::store::{CaseStore, StoreError, backup};

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Cases moved.
    pub cases: u64,
    /// Events moved.
    pub events: u64,
    /// Bytes of the store's files before.
    pub bytes_before: u64,
    /// And after.
    pub bytes_after: u64,
}

/// Where a compaction builds the new store, beside `store`.
pub fn scratch(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_owned();
    name.push(".compacting");
    store.with_file_name(name)
}

/// Compacts the store `config` names; `progress` is told the cases copied so far.
pub fn compact(
    config: &SledConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Compacted, StoreError> {
    let path = &config.path;
    let new = scratch(path);
    if new.exists() {
        std::fs::remove_dir_all(&new)?;
    }
    let bytes_before = size(path);
    let (cases, events) = {
        let from = SledStore::open_config(config)?;
        let to = SledStore::open_with_cache(&new, config.durability, config.cache_bytes)?;
        let (reader, writer) = std::io::pipe()?;
        let (exported, imported) = std::thread::scope(|s| {
            let export = s.spawn(|| backup::export(&from, BufWriter::new(writer), progress));
            let imported = backup::import(&to, BufReader::new(reader), &|_| {});
            let exported = export
                .join()
                .unwrap_or_else(|_| Err(StoreError::Io("the export panicked".into())));
            (exported, imported)
        });
        let (exported, imported) = (exported?, imported?);
        if (exported.cases, exported.events) != (imported.cases, imported.events) {
            return Err(StoreError::Io(format!(
                "the compacted copy holds {} cases and {} events, the store {} and {}; the store was left as it was",
                imported.cases, imported.events, exported.cases, exported.events
            )));
        }
        let report = to.check_consistency()?;
        if !report.problems.is_empty() {
            return Err(StoreError::Io(format!(
                "the compacted copy is not consistent ({}); the store was left as it was",
                report.problems.join("; ")
            )));
        }
        to.sync()?;
        (imported.cases, imported.events)
    };
    // The copy was written in one run: without this its first start-up would read all of it.
    SledStore::checkpoint(&new)?;
    exchange(path, &new)?;
    std::fs::remove_dir_all(&new)?;
    Ok(Compacted {
        cases,
        events,
        bytes_before,
        bytes_after: size(path),
    })
}

/// Swaps two directories in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<(), StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| StoreError::Io(format!("{} holds a NUL byte", p.display())))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(StoreError::Io(format!(
            "could not swap {} with its compacted copy: {}; the store was left as it was",
            a.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, _: &Path) -> Result<(), StoreError> {
    Err(StoreError::Io(format!(
        "compacting needs Linux's atomic directory exchange; {} was left as it was",
        a.display()
    )))
}

/// Bytes of every file under `dir`.
fn size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
