//! A year of cases on one machine (issue: disk, memory, start-up and every desk view at a
//! million cases).
//!
//! `cargo bench -p civic-tests --bench year` (env `YEAR_CASES`, default 1,000,000;
//! `YEAR_DAYS`, default 365; `YEAR_HANDLED`, cases of every ten handled to the end, default
//! 9; `YEAR_STORE=postgres`, on a PostgreSQL cluster the bench starts itself; `YEAR_CACHE_MB`,
//! sled's page cache; `YEAR_DIR`, a directory to load into and keep).

use civic_host::service::ServiceConfig;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let plan = civic_tests::year::Plan {
        cases: env("YEAR_CASES", 1_000_000),
        days: env("YEAR_DAYS", 365),
        handled_of_ten: env("YEAR_HANDLED", 9),
    };
    // `YEAR_DIR` keeps the loaded store for later runs (start-up, views); else a temp dir.
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("YEAR_DIR").map_or_else(|| temp.path().to_owned(), Into::into);
    let mut config = ServiceConfig::new(&dir);
    let pg = (std::env::var("YEAR_STORE").as_deref() == Ok("postgres"))
        .then(civic_tests::postgres::Postgres::start);
    if let Some(pg) = &pg {
        config.store = civic_host::store::StoreConfig::parse(&pg.fresh_database()).unwrap();
    }
    if let (Some(sled), Ok(mb)) = (config.sled_mut(), std::env::var("YEAR_CACHE_MB")) {
        sled.cache_bytes = mb.parse::<u64>().unwrap() << 20;
    }
    println!("store: {}; plan: {plan:?}", config.store.describe());
    let f = civic_tests::year::run(&plan, &config, &mut |line| println!("{line}"));
    println!("{}", serde_json::to_string_pretty(&f).unwrap());
    // What the sled files hold live, part by part, against their size.
    if let civic_host::store::StoreConfig::Sled(sled) = &config.store {
        let store = civic_host::store::sled::SledStore::open_config(sled).unwrap();
        let live = store.live_bytes().unwrap();
        for (part, entries, bytes) in &live.parts {
            println!(
                "live {part}: {entries} entries, {bytes} bytes, {} per case",
                bytes / f.cases.max(1)
            );
        }
        let total: u64 = live.parts.iter().map(|p| p.2).sum();
        println!(
            "live total {total} bytes ({} per case); sled's size on disk {} ({} per case)",
            total / f.cases.max(1),
            live.on_disk,
            live.on_disk / f.cases.max(1)
        );
    }
}
