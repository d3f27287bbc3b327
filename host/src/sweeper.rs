//! The background task of `civic serve` that fires due timers: every interval it runs a
//! [`timers::sweep`] at the service's clock, at once again while a backlog remains, and it
//! stops cleanly on shutdown.
//!
//! A failed sweep is logged and counted and tried again at the next interval: nothing is
//! lost, because a timer is only consumed by the write that applies its escalation. A
//! panic anywhere in a sweep is caught, logged and counted the same way, so the sweeper
//! never dies; its [`crate::health::Heartbeat`] tells `/healthz` when it last completed a sweep.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::service::Service;
use crate::timers;

/// Timers fired by one sweep at most; more due than this and the next sweep starts at once.
pub const SWEEP_LIMIT: usize = 10_000;

/// Threads one sweep decides on at least (an engine that waits on a database asks for more,
/// see [`crate::store::CaseStore::writers`]).
pub const SWEEP_THREADS: usize = 2;

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
            timers::sweep(
                svc,
                svc.clock().now(),
                SWEEP_LIMIT,
                SWEEP_THREADS.max(svc.store().writers()),
            )
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
