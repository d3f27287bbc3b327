//! The retention policy of `civic serve` (`--keep-years N`): at start and then once a day,
//! finished cases last changed more than N years ago are archived to a new file in the
//! archive directory and removed from the live store ([`retention::run`]). The server keeps
//! answering meanwhile — the only way to archive a sled store without stopping it — and a
//! shutdown stops a long run after its current batch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::periodic::{Periodic, Stopping};
use crate::service::Service;
use crate::store::retention::{self, Policy};

/// How often the policy runs.
pub const EVERY: Duration = Duration::from_secs(24 * 3600);

/// What `civic serve` keeps and where it puts the rest.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Years a finished case is kept after its last change.
    pub keep_years: u32,
    /// Where archives are written (`archive-<UTC time>.jsonl`).
    pub dir: PathBuf,
}

/// The running policy; stops (after the batch in progress) when stopped or dropped.
pub struct Archiver(Periodic);

impl Archiver {
    /// Starts applying `config` to `svc`'s store every `every`.
    pub fn start(
        svc: Arc<Service>,
        config: RetentionConfig,
        every: Duration,
    ) -> std::io::Result<Archiver> {
        Periodic::start("civic-archiver", every, move |stopping| {
            archive_once(&svc, &config, stopping);
            false
        })
        .map(Archiver)
    }

    /// Stops; returns once the batch in progress is archived.
    pub fn stop(self) {
        self.0.stop();
    }
}

/// One run of the policy, logged (a failure is tried again at the next run: what a failed
/// run archived was removed, what it did not is still live).
fn archive_once(svc: &Service, config: &RetentionConfig, stopping: Stopping<'_>) {
    let now = svc.clock().now();
    let policy = match Policy::keep_years(now, config.keep_years) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "the retention policy is not valid; nothing archived");
            return;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&config.dir) {
        tracing::error!(dir = %config.dir.display(), error = %e, "cannot create the archive directory; nothing archived");
        return;
    }
    let stamp = crate::calendar::format_datetime(now, 0)
        .replace([':', '+'], "")
        .replace("T", "-");
    let path = config.dir.join(format!("archive-{stamp}.jsonl"));
    match retention::run(&**svc.store(), &policy, &path, "policy", now, &|_| {
        !stopping()
    }) {
        Ok(run) if run.cases > 0 => tracing::info!(
            cases = run.cases,
            archive = %run.archive,
            sha256 = %run.sha256,
            "archived finished cases past the retention period"
        ),
        Ok(_) => tracing::debug!("no finished case past the retention period"),
        Err(e) => {
            tracing::error!(error = %e, "the retention run failed; trying again at the next run")
        }
    }
}
