//! Backtest throughput: past cases re-evaluated per second under a candidate and the
//! active version (two Wasm decisions per case, on both cores).
//!
//! `cargo bench -p civic-host --bench backtest` (env `BACKTEST_CASES`, default 20,000;
//! `BACKTEST_STORE=postgres` on the PostgreSQL engine, against a cluster it starts itself)

use std::sync::Arc;

use civic_host::backtest::{self, Request};
use civic_host::clock::ManualClock;
use civic_host::intake::NewCase;
use civic_host::runtime::{Hook, Limits};
use civic_host::service::{Service, ServiceConfig};
use civic_host::store::sled::Durability;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("BACKTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServiceConfig::new(dir.path());
    if let Some(sled) = config.sled_mut() {
        sled.durability = Durability::Unsafe;
    }
    let pg = (std::env::var("BACKTEST_STORE").as_deref() == Ok("postgres"))
        .then(civic_pg_harness::Postgres::start);
    if let Some(pg) = &pg {
        config.store = civic_host::store::StoreConfig::parse(&pg.fresh_database()).unwrap();
    }
    println!("store: {}", config.store.describe());
    let svc = Service::open(&config, Arc::new(ManualClock::new(1_796_000_400_000))).unwrap();
    svc.bootstrap(dir.path()).unwrap();
    let bodies: Vec<serde_json::Value> = include_str!("../../data/sample-cases.jsonl")
        .lines()
        .filter(|l| l.contains("\"jiyang\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let t = std::time::Instant::now();
    for i in 0..n {
        let mut b = bodies[i % bodies.len()].clone();
        b["caller"] = serde_json::json!({"phone": format!("139{i:08}")});
        let new: NewCase = serde_json::from_value(b).unwrap();
        svc.intake(&new, "bench").unwrap();
    }
    println!(
        "took in {n} jiyang cases in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let city = civic_plugin_bundle::get("civic-plugin-city-default").unwrap();
    let (rec, _) = svc
        .registry()
        .deploy(
            "jiyang",
            Hook::Routing,
            "candidate",
            city.component,
            Limits::default(),
            "{}",
            "bench",
            0,
        )
        .unwrap();
    let running = backtest::Running::default();
    for round in 0..2 {
        let r = backtest::run(
            &svc,
            &running,
            "jiyang",
            Hook::Routing,
            &Request {
                version: rec.version.clone(),
                from: None,
                to: None,
                sample: Some(5),
            },
            backtest::Budget::ADMIN,
        )
        .unwrap();
        println!(
            "round {round}: {} cases backtested in {} ms: {:.0} cases/s; {} changed ({:?})",
            r.evaluated, r.elapsed_ms, r.cases_per_second, r.changed, r.changes
        );
    }
}
