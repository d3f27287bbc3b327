//! The background task of `civic serve` that fires due timers: every interval it runs a
//! [`timers::sweep`] at the service's clock, at once again while a backlog remains, and it
//! stops cleanly on shutdown.
//!
//! A failed sweep is logged and counted and tried again at the next interval: nothing is
//! lost, because a timer is only consumed by the write that applies its escalation. A
//! panic anywhere in a sweep is caught, logged and counted the same way, so the sweeper
//! never dies; its [`Heartbeat`] tells `/healthz` when it last completed a sweep.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::service::Service;
use crate::timers;

/// Timers fired by one sweep at most; more due than this and the next sweep starts at once.
pub const SWEEP_LIMIT: usize = 10_000;

/// Threads one sweep decides on.
pub const SWEEP_THREADS: usize = 2;

/// When the background sweeper last completed a sweep, for `/healthz`: a sweeper that
/// has not completed one for [`STALE_AFTER_INTERVALS`] intervals is reported as stalled.
#[derive(Debug, Default)]
pub struct Heartbeat {
    state: Mutex<Option<Beat>>,
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
}

impl Heartbeat {
    fn start(&self, every: Duration) {
        *self.state.lock() = Some(Beat {
            every,
            started: Instant::now(),
            last_ok: None,
            last_failed: None,
        });
    }

    fn beat(&self, ok: bool) {
        if let Some(b) = self.state.lock().as_mut() {
            let now = Instant::now();
            if ok {
                b.last_ok = Some(now);
            } else {
                b.last_failed = Some(now);
            }
        }
    }

    /// The sweeper's health now.
    pub fn health(&self) -> SweeperHealth {
        let Some(b) = *self.state.lock() else {
            return SweeperHealth {
                status: "not-running",
                since_last_sweep_ms: None,
                interval_ms: None,
                last_attempt_failed: false,
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
        }
    }
}

/// The running background sweeper; stops (and waits for a sweep in progress) when stopped
/// or dropped.
pub struct Sweeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Starts sweeping `svc` every `every`.
    pub fn start(svc: Arc<Service>, every: Duration) -> std::io::Result<Sweeper> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        svc.sweep_heartbeat().start(every);
        let thread = std::thread::Builder::new()
            .name("civic-sweeper".into())
            .spawn(move || run(&svc, every, &flag))?;
        Ok(Sweeper {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops sweeping; returns once a sweep in progress has finished.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock() = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            // A panic in the sweeper has already been reported by the panic hook.
            let _ = t.join();
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn run(svc: &Service, every: Duration, stop: &(Mutex<bool>, Condvar)) {
    let (lock, wake) = stop;
    loop {
        if *lock.lock() {
            return;
        }
        let started = Instant::now();
        let swept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            timers::sweep(svc, svc.clock().now(), SWEEP_LIMIT, SWEEP_THREADS)
        }));
        let backlog = match swept {
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
        };
        if backlog {
            continue;
        }
        let mut stopped = lock.lock();
        if !*stopped {
            wake.wait_for(&mut stopped, every);
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
