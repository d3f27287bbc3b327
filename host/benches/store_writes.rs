//! Durable case writes per second with 1, 8 and 64 concurrent writers: group commit
//! against a flush per write, with raw sled inserts (no flush) as the ceiling.
//!
//! `cargo bench -p civic-host --bench store_writes`

use std::time::{Duration, Instant};

use civic_host::model::{Case, Channel, EventBody};
use civic_host::store::sled::{Durability, SledStore as Store};
use civic_host::store::{CaseStore, Change};

const RUN: Duration = Duration::from_secs(3);

fn case(store: &Store, t: usize, i: usize) -> Change {
    let mut c = Case::received(
        store.next_case_id().unwrap(),
        "jiyang".into(),
        "noise".into(),
        format!("w{t}"),
        1_796_000_400_000 + i as i64,
    );
    c.caller_key = format!("caller-{t}-{i}");
    c.description =
        "月河社区某小区楼下烧烤店每晚经营到凌晨两点，噪音和油烟扰民，多次劝说无果。".into();
    Change {
        case: c,
        events: vec![(
            0,
            "bench".into(),
            EventBody::Received {
                channel: Channel::App,
            },
        )],
    }
}

fn run(writers: usize, f: impl Fn(usize, usize) + Sync) -> f64 {
    let start = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..writers)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    let mut n = 0;
                    while start.elapsed() < RUN {
                        f(t, n);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "{:<36} {:>8} {:>8} {:>8}",
        "writes/s (3 s per cell)", "1", "8", "64"
    );
    for (name, mode) in [
        ("durable, group commit", Durability::GroupCommit),
        ("durable, flush per write", Durability::FlushEachWrite),
        ("not durable (sled background flush)", Durability::Unsafe),
    ] {
        let mut row = format!("{name:<36}");
        for writers in [1, 8, 64] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("s"), mode).unwrap();
            let rate = run(writers, |t, i| {
                store.create_case(case(&store, t, i)).unwrap();
            });
            row.push_str(&format!(" {rate:>8.0}"));
        }
        println!("{row}");
    }
    let mut row = format!("{:<36}", "raw sled insert, no flush (ceiling)");
    for writers in [1, 8, 64] {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let value = vec![7u8; 900];
        let rate = run(writers, |t, i| {
            db.insert(format!("{t}-{i}"), value.as_slice()).unwrap();
        });
        row.push_str(&format!(" {rate:>8.0}"));
    }
    println!("{row}");
}
