//! A background thread that does one job now and then every interval, and stops cleanly:
//! what the timer sweeper and the retention policy of `civic serve` run on.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Tells a running job whether it has been asked to stop (a long job checks between
/// steps, so shutting down does not wait for all of it).
pub type Stopping<'a> = &'a dyn Fn() -> bool;

/// A running periodic job; stops (and waits for a run in progress) when stopped or
/// dropped.
pub struct Periodic {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Periodic {
    /// Runs `job` on a thread called `name` at once and then every `every`; at once again
    /// when it returns `true` (a backlog remains).
    pub fn start(
        name: &str,
        every: Duration,
        mut job: impl FnMut(Stopping<'_>) -> bool + Send + 'static,
    ) -> std::io::Result<Periodic> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let (lock, wake) = &*flag;
                let stopping = || *lock.lock();
                loop {
                    if stopping() {
                        return;
                    }
                    if job(&stopping) {
                        continue;
                    }
                    let mut stopped = lock.lock();
                    if !*stopped {
                        wake.wait_for(&mut stopped, every);
                    }
                }
            })?;
        Ok(Periodic {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops; returns once a run in progress has finished.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock() = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            // A panic in the job has already been reported by the panic hook.
            let _ = t.join();
        }
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.shut_down();
    }
}
