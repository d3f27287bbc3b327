//! Latency distribution (p50/p99) and throughput of one routing decision, native and
//! in Wasm, on 1 and 2 threads. Interleaves native and Wasm rounds so a noisy machine
//! affects both alike.
//!
//! `cargo bench -p civic-host --bench decision_latency`

use std::sync::Arc;
use std::time::{Duration, Instant};

use civic_host::directory::Directory;
use civic_host::runtime::{Hook, Input, Limits, Runtime, RuntimeConfig};
use civic_rules_common::{CityDefault, Plugin as Rules};
use civic_rules_sdk::testing::Sandbox;

mod common;

const CALLS: usize = 50_000;

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at =
        |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_nanos() as f64 / 1000.0;
    (at(0.50), at(0.99))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let component = civic_plugin_bundle::get("civic-plugin-city-default")
        .unwrap()
        .component;
    let directory =
        Arc::new(Directory::from_json(1, common::DIRECTORY, common::CATEGORIES).unwrap());
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let plugin = runtime
        .load("city-default", component, Limits::default(), "{}")
        .unwrap();
    let wasm = || {
        let case = common::wasm_case();
        let input = Input {
            hook: Hook::Routing,
            case: &case,
            now: case.created_at,
            recent_cases: &[],
            directory: &directory,
            timer: None,
        };
        let t = Instant::now();
        let r = runtime.evaluate(&plugin, &input).unwrap();
        let d = t.elapsed();
        assert_eq!(
            r.output.unwrap().into_routing().unwrap().lead,
            "jiyang/yuehe/grid-01"
        );
        d
    };
    let native = || {
        let sandbox = Sandbox::from_json(common::DIRECTORY, common::CATEGORIES).unwrap();
        let case = common::native_case();
        move || {
            let t = Instant::now();
            let r = sandbox
                .routing::<Rules<CityDefault>>(&case)
                .unwrap()
                .unwrap();
            let d = t.elapsed();
            assert_eq!(r.lead, "jiyang/yuehe/grid-01");
            d
        }
    };
    // warm up
    for _ in 0..2000 {
        wasm();
    }
    println!("routing decision, {CALLS} calls per row (µs)");
    println!(
        "{:<28} {:>8} {:>8} {:>14}",
        "set-up", "p50", "p99", "decisions/s"
    );
    for round in 0..2 {
        let n = native();
        let mut lat = Vec::with_capacity(CALLS);
        let t = Instant::now();
        for _ in 0..CALLS {
            lat.push(n());
        }
        let rate = CALLS as f64 / t.elapsed().as_secs_f64();
        let (p50, p99) = percentiles(lat);
        println!(
            "{:<28} {p50:>8.2} {p99:>8.2} {rate:>14.0}",
            format!("native rust (round {round})")
        );

        let mut lat = Vec::with_capacity(CALLS);
        let t = Instant::now();
        for _ in 0..CALLS {
            lat.push(wasm());
        }
        let rate = CALLS as f64 / t.elapsed().as_secs_f64();
        let (p50, p99) = percentiles(lat);
        println!(
            "{:<28} {p50:>8.2} {p99:>8.2} {rate:>14.0}",
            format!("wasm 1 thread (round {round})")
        );

        let t = Instant::now();
        let lat: Vec<Duration> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| s.spawn(|| (0..CALLS / 2).map(|_| wasm()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let rate = CALLS as f64 / t.elapsed().as_secs_f64();
        let (p50, p99) = percentiles(lat);
        println!(
            "{:<28} {p50:>8.2} {p99:>8.2} {rate:>14.0}",
            format!("wasm 2 threads (round {round})")
        );
    }
}
