//! What `/healthz` reports of background work: the sweeper beats a [`Heartbeat`] after
//! each sweep, and the health check reads it. Kept apart from the sweeper so the service
//! can hold it without depending on the task that drives it.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// When the background sweeper last completed a sweep, for `/healthz`: a sweeper that
/// has not completed one for [`STALE_AFTER_INTERVALS`] intervals is reported as stalled.
#[derive(Debug, Default)]
pub struct Heartbeat {
    state: Mutex<Option<Beat>>,
    /// Sweep partitions this host held at its last sweep; `None` when the store is one
    /// process's and the sweep is not partitioned.
    partitions: Mutex<Option<usize>>,
}

#[derive(Debug, Clone, Copy)]
struct Beat {
    every: Duration,
    started: Instant,
    last_ok: Option<Instant>,
    last_failed: Option<Instant>,
}

/// Intervals without a completed sweep after which the sweeper counts as stalled.
pub const STALE_AFTER_INTERVALS: u32 = 5;

/// What `/healthz` says of the sweeper.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweeperHealth {
    /// `ok`, `stalled`, or `not-running` (a process that does not sweep, such as a test).
    pub status: &'static str,
    /// Milliseconds since the last completed sweep (since the start, before the first).
    pub since_last_sweep_ms: Option<u64>,
    /// The sweep interval in milliseconds.
    pub interval_ms: Option<u64>,
    /// Whether the latest attempt failed or panicked.
    pub last_attempt_failed: bool,
    /// On a store several hosts share: how many of the sweep partitions this host held at
    /// its last sweep (the others' hosts sweep the rest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<usize>,
}

impl Heartbeat {
    /// The sweeper started, sweeping every `every`.
    pub(crate) fn start(&self, every: Duration) {
        *self.state.lock() = Some(Beat {
            every,
            started: Instant::now(),
            last_ok: None,
            last_failed: None,
        });
    }

    /// A sweep completed (`ok`) or failed.
    pub(crate) fn beat(&self, ok: bool) {
        if let Some(b) = self.state.lock().as_mut() {
            let now = Instant::now();
            if ok {
                b.last_ok = Some(now);
            } else {
                b.last_failed = Some(now);
            }
        }
    }

    /// A sweep found this host holding `held` sweep partitions.
    pub(crate) fn partitions(&self, held: usize) {
        *self.partitions.lock() = Some(held);
    }

    /// The sweeper's health now.
    pub fn health(&self) -> SweeperHealth {
        let partitions = *self.partitions.lock();
        let Some(b) = *self.state.lock() else {
            return SweeperHealth {
                status: "not-running",
                since_last_sweep_ms: None,
                interval_ms: None,
                last_attempt_failed: false,
                partitions,
            };
        };
        let since = b.last_ok.unwrap_or(b.started).elapsed();
        // At least a few seconds: one sweep may take a while when many timers are due.
        let stale = (b.every * STALE_AFTER_INTERVALS).max(Duration::from_secs(5));
        SweeperHealth {
            status: if since > stale { "stalled" } else { "ok" },
            since_last_sweep_ms: Some(since.as_millis() as u64),
            interval_ms: Some(b.every.as_millis() as u64),
            last_attempt_failed: match (b.last_failed, b.last_ok) {
                (Some(f), Some(o)) => f > o,
                (Some(_), None) => true,
                _ => false,
            },
            partitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweeper_that_completes_no_sweep_for_several_intervals_is_stalled() {
        let h = Heartbeat::default();
        assert_eq!(h.health().status, "not-running");
        h.start(Duration::from_millis(100));
        assert_eq!(h.health().status, "ok");
        // Started long ago, never completed a sweep.
        h.state.lock().as_mut().unwrap().started = Instant::now() - Duration::from_secs(60);
        let stalled = h.health();
        assert_eq!(stalled.status, "stalled");
        assert!(stalled.since_last_sweep_ms.unwrap() >= 60_000);
        h.beat(false);
        assert!(h.health().last_attempt_failed);
        h.beat(true);
        let ok = h.health();
        assert_eq!((ok.status, ok.last_attempt_failed), ("ok", false));
    }
}
