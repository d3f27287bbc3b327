//! The background task of `civic serve` that keeps this host in line with the others on
//! the same store: every [`EVERY`] it reads the store's generations and reads again what
//! another host changed (see [`crate::generation`]). A plug-in activated or a token revoked
//! through one host is in force on every host within that interval plus one read.

use std::sync::Arc;
use std::time::Duration;

use crate::periodic::Periodic;
use crate::service::Service;

/// How often a host looks for other hosts' changes: half a second keeps a change in force
/// everywhere within a second, for two reads of two small records per host and interval.
pub const EVERY: Duration = Duration::from_millis(500);

/// The running follower; stops when stopped or dropped.
pub struct Follower(Periodic);

impl Follower {
    /// Starts following the store under `svc` every `every`.
    pub fn start(svc: Arc<Service>, every: Duration) -> std::io::Result<Follower> {
        Periodic::start("civic-follower", every, move |_| {
            // A failure (the store briefly unreachable) is tried again next interval; the
            // generations not seen stay unseen, so nothing is skipped.
            if let Err(e) = svc.follow_store() {
                tracing::warn!(error = %e, "could not read other hosts' changes; trying again");
            }
            false
        })
        .map(Follower)
    }

    /// Stops following.
    pub fn stop(self) {
        self.0.stop();
    }
}
