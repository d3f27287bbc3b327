//! One district's hostile plug-in against another district's intake.
//!
//! `cargo bench -p civic-tests --bench fairness` — jiyang's intake latency with a few
//! callers, first alone, then while 64 callers take cases into tianya, whose routing
//! plug-in spins to its time limit on every case (and is kept active: suspension off).
//! Each row runs with each district's share of decisions at its default (half the cores)
//! and, for comparison in the same run, with no share (every decision slot open to one
//! district: how the host behaved before shares). Intake goes through the service (real
//! plug-ins, real store, durable writes), not HTTP. Env: `FAIRNESS_SECONDS` per row (5).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use civic_host::intake::NewCase;
use civic_host::registry::NEVER_SUSPEND;
use civic_host::runtime::{Hook, Limits, RuntimeConfig};
use civic_host::service::{Service, ServiceConfig};
use civic_tests::{fixture, fixtures};

fn new_case(district: &str, grid: &str, phone: u64) -> NewCase {
    serde_json::from_value(serde_json::json!({
        "district": district, "category": "noise",
        "location": {"grid": grid}, "caller": {"phone": format!("{phone}")}
    }))
    .unwrap()
}

struct Row {
    p50: Duration,
    p99: Duration,
    cases_per_s: f64,
    hostile_cases: u64,
}

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

fn run(svc: &Arc<Service>, seconds: u64, hostile_callers: usize, phone_base: u64) -> Row {
    let stop = AtomicBool::new(false);
    let hostile_cases = AtomicU64::new(0);
    let next_phone = AtomicU64::new(phone_base);
    let lat = std::thread::scope(|s| {
        for _ in 0..hostile_callers {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let p = next_phone.fetch_add(1, Ordering::Relaxed);
                    svc.intake(&new_case("tianya", "tianya/maling/grid-01", p), "bench")
                        .expect("hostile district's case kept");
                    hostile_cases.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let bystanders: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut lat = Vec::new();
                    let until = Instant::now() + Duration::from_secs(seconds);
                    while Instant::now() < until {
                        let p = next_phone.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        svc.intake(&new_case("jiyang", "jiyang/yuehe/grid-01", p), "bench")
                            .unwrap();
                        lat.push(started.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all: Vec<Duration> = bystanders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        stop.store(true, Ordering::Relaxed);
        all.sort_unstable();
        all
    });
    let mut lat = lat;
    let n = lat.len();
    Row {
        p50: percentile(&mut lat, 0.5),
        p99: percentile(&mut lat, 0.99),
        cases_per_s: n as f64 / seconds as f64,
        hostile_cases: hostile_cases.load(Ordering::Relaxed),
    }
}

fn service(dir: &std::path::Path, district_share: u32) -> Arc<Service> {
    let mut config = ServiceConfig::new(dir);
    config.suspend_after = NEVER_SUSPEND;
    config.runtime = RuntimeConfig {
        district_share,
        ..config.runtime
    };
    let svc = Service::open_default(&config).unwrap();
    svc.bootstrap(dir).unwrap();
    let (rec, _) = svc
        .registry()
        .deploy(
            "tianya",
            Hook::Routing,
            "fx-hostile",
            &fixture(fixtures::FX_HOSTILE),
            Limits {
                fuel: u64::MAX,
                timeout: Duration::from_millis(100),
                ..Limits::default()
            },
            "spin",
            "bench",
            0,
        )
        .unwrap();
    svc.registry()
        .activate("tianya", Hook::Routing, &rec.version, "bench", 0)
        .unwrap();
    Arc::new(svc)
}

fn main() {
    let seconds: u64 = std::env::var("FAIRNESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    let default_share = RuntimeConfig::default().district_share;
    println!(
        "jiyang intake, 4 callers, {seconds} s per row; tianya's routing spins 100 ms CPU per case"
    );
    println!(
        "| shares | tianya callers | jiyang p50 | jiyang p99 | jiyang cases/s | tianya cases taken |"
    );
    println!("|---|---|---|---|---|---|");
    let mut phone = 13_000_000_000u64;
    for (label, share) in [
        (
            format!("{default_share} per district (default)"),
            default_share,
        ),
        (
            format!("none ({} slots, before shares)", 128.max(cores)),
            128,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path(), share);
        for hostile in [0, 64] {
            let r = run(&svc, seconds, hostile, phone);
            phone += 10_000_000;
            println!(
                "| {label} | {hostile} | {:.2} ms | {:.2} ms | {:.0} | {} |",
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.cases_per_s,
                r.hostile_cases
            );
        }
    }
}
