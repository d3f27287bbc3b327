//! The background task of `civic serve` that fires due timers: every interval it runs a
//! [`timers::sweep`] at the service's clock, at once again while a backlog remains, and it
//! stops cleanly on shutdown.
//!
//! A failed sweep is logged and counted and tried again at the next interval: nothing is
//! lost, because a timer is only consumed by the write that applies its escalation. A
//! panic anywhere in a sweep is caught, logged and counted the same way, so the sweeper
//! never dies; its [`crate::health::Heartbeat`] tells `/healthz` when it last completed a sweep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::periodic::Periodic;
use crate::service::Service;
use crate::timers;

/// Timers fired by one sweep at most; more due than this and the next sweep starts at once.
pub const SWEEP_LIMIT: usize = 10_000;

/// Threads one sweep decides on at least (an engine that waits on a database asks for more,
/// see [`crate::store::CaseStore::writers`]).
pub const SWEEP_THREADS: usize = 2;

/// The running background sweeper; stops (and waits for a sweep in progress) when stopped
/// or dropped.
pub struct Sweeper(Periodic);

impl Sweeper {
    /// Starts sweeping `svc` every `every`.
    pub fn start(svc: Arc<Service>, every: Duration) -> std::io::Result<Sweeper> {
        svc.sweep_heartbeat().start(every);
        Periodic::start("civic-sweeper", every, move |_| sweep_once(&svc)).map(Sweeper)
    }

    /// Stops sweeping; returns once a sweep in progress has finished.
    pub fn stop(self) {
        self.0.stop();
    }
}

/// One sweep, its outcome logged and counted; whether a backlog remains.
fn sweep_once(svc: &Service) -> bool {
    let started = Instant::now();
    let swept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        timers::sweep(
            svc,
            svc.clock().now(),
            SWEEP_LIMIT,
            SWEEP_THREADS.max(svc.store().writers()),
        )
    }));
    match swept {
        Ok(Ok(r)) => {
            svc.sweep_heartbeat().beat(true);
            svc.metrics()
                .sweep("ok", r.fired as u64, r.panicked as u64, started.elapsed());
            if r.fired > 0 {
                tracing::info!(
                    fired = r.fired,
                    skipped = r.skipped,
                    actions = r.actions,
                    plugin_failures = r.plugin_failures,
                    retried = r.retried,
                    panicked = r.panicked,
                    fenced = r.fenced,
                    took_ms = started.elapsed().as_millis() as u64,
                    "timers fired"
                );
            }
            // A full sweep that made progress leaves more due: go on at once.
            r.due >= SWEEP_LIMIT && r.fired > 0
        }
        Ok(Err(e)) => {
            svc.sweep_heartbeat().beat(false);
            svc.metrics().sweep("error", 0, 0, started.elapsed());
            tracing::error!(error = %e, "timer sweep failed; trying again at the next interval");
            false
        }
        Err(_) => {
            svc.sweep_heartbeat().beat(false);
            svc.metrics().sweep("panic", 0, 0, started.elapsed());
            tracing::error!("timer sweep panicked; trying again at the next interval");
            false
        }
    }
}
