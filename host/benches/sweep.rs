//! One timer sweep over a store of many open cases: the time must grow with the number of
//! due timers, not with the number of open cases.
//!
//! `cargo bench -p civic-host --bench sweep` (env `SWEEP_CASES`, default 1,000,000)

use std::sync::Arc;
use std::time::Instant;

use civic_host::clock::ManualClock;
use civic_host::model::{Case, CaseStatus, Deadlines, PendingTimer, TimerKind};
use civic_host::service::{Service, ServiceConfig};
use civic_host::store::{Change, Durability};
use civic_host::timers;

// The same allocator as the `civic` binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: i64 = 1_796_000_400_000;
const HOUR: i64 = 3_600_000;

fn case(id: String, due: i64) -> Change {
    let mut c = Case::received(id, "jiyang".into(), "noise".into(), "bench".into(), T0);
    c.caller_key = "k".into();
    c.status = CaseStatus::Dispatched;
    c.handler = Some("jiyang/yuehe/grid-01".into());
    c.deadlines = Deadlines {
        sign_off: Some(due),
        ..Deadlines::default()
    };
    c.timers = vec![PendingTimer {
        kind: TimerKind::SignOff,
        due_at: due,
    }];
    Change {
        case: c,
        events: vec![],
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: usize = std::env::var("SWEEP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    {
        let mut config = ServiceConfig::new(dir.path());
        config.durability = Durability::Unsafe;
        let svc = Service::open(&config, clock.clone()).unwrap();
        svc.bootstrap(dir.path()).unwrap();
        let t = Instant::now();
        std::thread::scope(|s| {
            for w in 0..2 {
                let svc = &svc;
                s.spawn(move || {
                    for i in (w..total).step_by(2) {
                        // Ten groups of 1 in 1,000 fall due two hours apart (the first in an
                        // hour); the rest in a year.
                        let due = match i % 1000 {
                            g if g % 100 == 0 => T0 + HOUR + (g as i64 / 100) * 2 * HOUR,
                            _ => T0 + 365 * 24 * HOUR,
                        };
                        svc.store
                            .create_case(case(format!("c-{:010}", i + 1), due))
                            .unwrap();
                    }
                });
            }
        });
        svc.store.sync().unwrap();
        println!(
            "loaded {total} open cases in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let svc = Service::open(&ServiceConfig::new(dir.path()), clock.clone()).unwrap();
    let t = Instant::now();
    let empty = timers::sweep(&svc, T0, 10_000, 2).unwrap();
    println!(
        "sweep with 0 due timers: {:.3} ms ({} fired)",
        t.elapsed().as_secs_f64() * 1000.0,
        empty.fired
    );
    clock.set(T0 + 2 * HOUR);
    let t = Instant::now();
    let r = timers::sweep(&svc, clock.now_ms(), 10_000, 2).unwrap();
    let took = t.elapsed();
    assert_eq!(r.fired, total.div_ceil(1000));
    println!(
        "sweep with {} due timers among {total} open cases, right after opening: {:.1} ms ({} actions, durable), {:.1} µs per timer",
        r.fired,
        took.as_secs_f64() * 1000.0,
        r.actions,
        took.as_secs_f64() * 1e6 / r.fired as f64
    );
    // The next nine groups, one sweep each, with the store warm.
    let mut warm = Vec::new();
    for k in 1..10 {
        clock.set(T0 + 2 * HOUR + k * 2 * HOUR);
        let t = Instant::now();
        let r = timers::sweep(&svc, clock.now_ms(), 10_000, 2).unwrap();
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.fired, total.div_ceil(1000));
    }
    warm.sort_by(f64::total_cmp);
    println!(
        "next 9 sweeps of {} due timers each, store warm: median {:.1} ms (min {:.1}, max {:.1}), {:.1} µs per timer",
        total.div_ceil(1000),
        warm[4],
        warm[0],
        warm[8],
        warm[4] * 1000.0 / total.div_ceil(1000) as f64
    );
}
