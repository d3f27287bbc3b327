//! One timer sweep over a store of many open cases: the time must grow with the number of
//! due timers, not with the number of open cases.
//!
//! `cargo bench -p civic-host --bench sweep` (env `SWEEP_CASES`, default 1,000,000;
//! `SWEEP_CACHE_MB`, sled's page cache, default 1,024; `SWEEP_TEMPLATE`, a directory that
//! keeps a copy of the loaded store between runs so only the first run loads it;
//! `SWEEP_NO_FLOOR`, skip the raw-sled floor; `SWEEP_THREADS`, default the server's;
//! `SWEEP_STORE=postgres`, the same on the PostgreSQL engine, against a cluster the
//! benchmark starts itself, loaded through the import path in batches)

use std::sync::Arc;
use std::time::Instant;

use civic_host::clock::ManualClock;
use civic_host::model::{Case, CaseStatus, Deadlines, PendingTimer, TimerKind};
use civic_host::service::{Service, ServiceConfig};
use civic_host::store::Change;
use civic_host::store::sled::Durability;
use civic_host::sweeper::{SWEEP_LIMIT, SWEEP_THREADS};
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
    civic_host::alloc::tune();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: usize = std::env::var("SWEEP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    if std::env::var("SWEEP_STORE").as_deref() == Ok("postgres") {
        return on_postgres(total, dir.path(), clock);
    }
    let template = std::env::var_os("SWEEP_TEMPLATE").map(std::path::PathBuf::from);
    if let Some(t) = template.as_ref().filter(|t| {
        std::fs::read_to_string(t.join(".loaded")).is_ok_and(|n| n == total.to_string())
    }) {
        copy_dir(t, dir.path());
        println!("copied the loaded store from {}", t.display());
    } else {
        let mut config = ServiceConfig::new(dir.path());
        if let Some(sled) = config.sled_mut() {
            sled.durability = Durability::Unsafe;
        }
        let svc = Service::open(&config, clock.clone()).unwrap();
        svc.bootstrap(dir.path()).unwrap();
        let t = Instant::now();
        std::thread::scope(|s| {
            for w in 0..2 {
                let svc = &svc;
                s.spawn(move || {
                    for i in (w..total).step_by(2) {
                        svc.store()
                            .create_case(case(format!("c-{:010}", i + 1), due_of(i)))
                            .unwrap();
                    }
                });
            }
        });
        svc.store().sync().unwrap();
        println!(
            "loaded {total} open cases in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        drop(svc);
        if let Some(t) = &template {
            copy_dir(dir.path(), t);
            std::fs::write(t.join(".loaded"), total.to_string()).unwrap();
        }
    }
    // The load leaves gigabytes of dirty pages; written back during the sweeps, they
    // would be measured with them.
    let t = Instant::now();
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    println!(
        "wrote the loaded store back to disk in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut config = ServiceConfig::new(dir.path());
    if let Some(mb) = std::env::var("SWEEP_CACHE_MB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        && let Some(sled) = config.sled_mut()
    {
        sled.cache_bytes = mb << 20;
    }
    let threads = std::env::var("SWEEP_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SWEEP_THREADS);
    println!(
        "sled page cache {} MiB, {threads} sweep threads",
        config.sled_mut().map_or(0, |s| s.cache_bytes >> 20)
    );
    let cache_bytes = config.sled_mut().map_or(0, |s| s.cache_bytes);
    let svc = Service::open(&config, clock.clone()).unwrap();
    let t = Instant::now();
    let empty = timers::sweep(&svc, T0, SWEEP_LIMIT, threads).unwrap();
    println!(
        "sweep with 0 due timers: {:.3} ms ({} fired)",
        t.elapsed().as_secs_f64() * 1000.0,
        empty.fired
    );
    clock.set(T0 + 2 * HOUR);
    let t = Instant::now();
    let r = timers::sweep(&svc, clock.now_ms(), SWEEP_LIMIT, threads).unwrap();
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
    let mut cpu = Vec::new();
    for k in 1..10 {
        clock.set(T0 + 2 * HOUR + k * 2 * HOUR);
        let (t, c) = (Instant::now(), cpu_ms());
        let r = timers::sweep(&svc, clock.now_ms(), SWEEP_LIMIT, threads).unwrap();
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
        cpu.push(cpu_ms() - c);
        assert_eq!(r.fired, total.div_ceil(1000));
    }
    warm.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    println!(
        "next 9 sweeps of {} due timers each, store warm: median {:.1} ms (min {:.1}, max {:.1}), {:.1} µs per timer",
        total.div_ceil(1000),
        warm[4],
        warm[0],
        warm[8],
        warm[4] * 1000.0 / total.div_ceil(1000) as f64
    );
    println!(
        "  CPU time of the process per warm sweep (both cores): median {:.1} ms (min {:.1}, max {:.1})",
        cpu[4], cpu[0], cpu[8]
    );

    // What one firing wrote, to give the raw-sled floor the same shape.
    let first = "c-0000000001";
    let fired_case = svc.store().get_case(first).unwrap().unwrap();
    let fire_at = T0 + 2 * HOUR;
    let written: Vec<_> = svc
        .store()
        .history(first)
        .unwrap()
        .into_iter()
        .filter(|e| e.at == fire_at)
        .collect();
    let case_bytes = serde_json::to_vec(&fired_case).unwrap().len();
    let event_bytes = serde_json::to_vec(&written).unwrap().len();
    drop(svc);
    if std::env::var_os("SWEEP_NO_FLOOR").is_some() {
        return;
    }
    raw_floor(total, case_bytes, event_bytes, written.len(), cache_bytes);
}

/// Where each bench case's timer falls: ten groups of 1 in 1,000 two hours apart (the first
/// in an hour); the rest in a year.
fn due_of(i: usize) -> i64 {
    match i % 1000 {
        g if g % 100 == 0 => T0 + HOUR + (g as i64 / 100) * 2 * HOUR,
        _ => T0 + 365 * 24 * HOUR,
    }
}

/// The sweep on the PostgreSQL engine: `total` open cases loaded in batches through the
/// import path (one transaction per 500), then ten sweeps of the cases that fall due.
fn on_postgres(total: usize, dir: &std::path::Path, clock: Arc<ManualClock>) {
    use civic_host::store::Imported;
    let pg = civic_pg_harness::Postgres::start();
    let url = pg.fresh_database();
    let mut config = ServiceConfig::new(dir);
    config.store = civic_host::store::StoreConfig::parse(&url).unwrap();
    let svc = Service::open(&config, clock.clone()).unwrap();
    svc.bootstrap(dir).unwrap();
    let t = Instant::now();
    std::thread::scope(|s| {
        for w in 0..2 {
            let svc = &svc;
            s.spawn(move || {
                let mut batch = Vec::with_capacity(500);
                for i in (w..total).step_by(2) {
                    let mut c = case(format!("c-{:010}", i + 1), due_of(i)).case;
                    c.version = 1;
                    batch.push(Imported::Case(Box::new(c)));
                    if batch.len() == 500 {
                        svc.store().import(std::mem::take(&mut batch)).unwrap();
                    }
                }
                svc.store().import(batch).unwrap();
            });
        }
    });
    svc.store().finish_import().unwrap();
    if std::env::var_os("SWEEP_PG_STATEMENTS").is_some() {
        statements(&url, "SELECT pg_stat_statements_reset()");
    }
    println!(
        "postgres: loaded {total} open cases in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // As the server's sweeper does: the engine says how many writers serve it well.
    let threads = SWEEP_THREADS.max(svc.store().writers());
    println!("postgres: {threads} sweep threads");
    let t = Instant::now();
    let empty = timers::sweep(&svc, T0, SWEEP_LIMIT, threads).unwrap();
    println!(
        "postgres: sweep with 0 due timers: {:.3} ms ({} fired)",
        t.elapsed().as_secs_f64() * 1000.0,
        empty.fired
    );
    let mut times = Vec::new();
    for k in 0..10 {
        clock.set(T0 + 2 * HOUR + k * 2 * HOUR);
        let t = Instant::now();
        let r = timers::sweep(&svc, clock.now_ms(), SWEEP_LIMIT, threads).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.fired, total.div_ceil(1000));
    }
    println!(
        "postgres: first sweep of {} due timers among {total} open cases: {:.1} ms",
        total.div_ceil(1000),
        times[0]
    );
    let mut warm = times[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    println!(
        "postgres: next 9 sweeps: median {:.1} ms (min {:.1}, max {:.1}), {:.1} µs per timer",
        warm[4],
        warm[0],
        warm[8],
        warm[4] * 1000.0 / total.div_ceil(1000) as f64
    );
    if std::env::var_os("SWEEP_PG_STATEMENTS").is_some() {
        statements(
            &url,
            "SELECT calls, total_exec_time, mean_exec_time,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12",
        );
    }
    drop(svc);
    drop(pg);
}

/// Where the database's time went in the sweeps: `pg_stat_statements`, reset after the load
/// and read after the sweeps (run with `SWEEP_PG_STATEMENTS=1
/// CIVIC_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements"`).
fn statements(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .unwrap();
        let rows = client.query(sql, &[]).await.unwrap();
        if rows.first().is_none_or(|r| r.len() < 4) {
            return;
        }
        println!("postgres: the sweeps' statements by total execution time");
        for r in rows {
            println!(
                "  {:>9} calls {:>10.1} ms total {:>8.3} ms mean  {}",
                r.get::<_, i64>(0),
                r.get::<_, f64>(1),
                r.get::<_, f64>(2),
                r.get::<_, String>(3)
            );
        }
    });
}

/// Copies a store directory (files and subdirectories).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// CPU time used so far by the whole process (user and system, every thread), in ms: a
/// sweep that keeps both cores busy uses about twice its wall time, one that waits less.
fn cpu_ms() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(u.ru_utime) + ms(u.ru_stime)
}

/// The floor under the sweep: the same reads and writes on raw sled (same mode, same store
/// size, same value sizes, two threads, one flush per sweep) with nothing else — no plug-in,
/// no JSON, no record building — written one sled batch per case and one per thread.
fn raw_floor(total: usize, case_bytes: usize, event_bytes: usize, events: usize, cache: u64) {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        sled::Config::new()
            .path(dir.path())
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache)
            .open()
            .unwrap()
    };
    let case_key = |i: usize| format!("c{:010}", i + 1).into_bytes();
    let idx = |i: usize, what: &str, round: usize| {
        format!("i{what}\0{round:04}\0{:010}", i + 1).into_bytes()
    };
    {
        let db = open();
        let tree = db.open_tree("data").unwrap();
        for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
            let mut b = sled::Batch::default();
            for &i in chunk {
                b.insert(case_key(i), vec![b'x'; case_bytes]);
                b.insert(
                    format!("e{:010}\0{:016}", i + 1, 0).into_bytes(),
                    vec![b'x'; 2048],
                );
                b.insert(idx(i, "timer", 0), &[]);
                b.insert(idx(i, "unit", 0), &[]);
                b.insert(idx(i, "district", 0), &[]);
            }
            tree.apply_batch(b).unwrap();
        }
        db.flush().unwrap();
    }
    let db = open();
    let tree = db.open_tree("data").unwrap();
    // How each firing's six changes reach sled: as one batch per firing, in batches of
    // `BATCH` firings (what the sweep did before), or as single operations (what it does
    // now, plus the two operations of its pending record).
    const BATCH: usize = 50;
    #[derive(Clone, Copy, PartialEq)]
    enum Way {
        PerCase,
        Batches,
        Single,
    }
    let ways = [Way::Batches, Way::PerCase, Way::Single];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    // Round 0 warms up; then the ways take turns.
    for round in 0..10usize {
        let way = ways[round % ways.len()];
        let due: Vec<usize> = (0..total).filter(|i| i % 1000 == round * 100).collect();
        let t = Instant::now();
        std::thread::scope(|s| {
            for part in due.chunks(due.len().div_ceil(2)) {
                let tree = &tree;
                s.spawn(move || {
                    let mut b = sled::Batch::default();
                    for (n, &i) in part.iter().enumerate() {
                        let case = tree.get(case_key(i)).unwrap().unwrap();
                        let ops: [(Vec<u8>, Option<Vec<u8>>); 6] = [
                            (
                                format!("e{:010}\0{:016}", i + 1, round + 1).into_bytes(),
                                Some(vec![b'x'; event_bytes]),
                            ),
                            (idx(i, "timer", round), None),
                            (idx(i, "timer", round + 1), Some(vec![])),
                            (idx(i, "unit", round), None),
                            (idx(i, "unit", round + 1), Some(vec![])),
                            (case_key(i), Some(vec![case[0]; case_bytes])),
                        ];
                        for (k, v) in ops {
                            match (way, v) {
                                (Way::Single, Some(v)) => drop(tree.insert(k, v).unwrap()),
                                (Way::Single, None) => drop(tree.remove(k).unwrap()),
                                (_, Some(v)) => b.insert(k, v),
                                (_, None) => b.remove(k),
                            }
                        }
                        let full =
                            way == Way::PerCase || (n + 1) % BATCH == 0 || n + 1 == part.len();
                        if way != Way::Single && full {
                            tree.apply_batch(std::mem::take(&mut b)).unwrap();
                        }
                    }
                });
            }
        });
        db.flush().unwrap();
        if round > 0 {
            times[round % ways.len()].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "raw sled floor, same shape ({case_bytes} B case, {events} events in {event_bytes} B, 4 index changes, one flush), median: batches of {} firings {:.1} ms, one batch per firing {:.1} ms, single operations {:.1} ms",
        BATCH,
        median(&mut times[0]),
        median(&mut times[1]),
        median(&mut times[2]),
    );
}
