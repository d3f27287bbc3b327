//! The same routing rule — Haitang's night talks: a village's suggestion goes to the
//! village — written in Rust (`plugins/haitang`, on the city default's steps), in Python
//! (`plugins/python/haitang`) and in JavaScript (`plugins/js/haitang`), each in a fresh instance per decision as the host runs
//! every decision: component size, compile time, load time from the compiled cache, fuel,
//! latency p50/p99 and decisions per second on one thread. Rounds alternate between the
//! three so a noisy machine weighs on all alike.
//!
//! `cargo bench -p civic-tests --bench languages` (`LANG_ROUNDS`, default 5)

use std::sync::Arc;
use std::time::{Duration, Instant};

use civic_host::directory::sample_city;
use civic_host::runtime::{Limits, Plugin, Runtime, RuntimeConfig};
use civic_tests::{case, fixture, js_plugins, python_plugins, route};

fn percentile(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_nanos() as f64 / 1000.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("LANG_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let cache = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config()).unwrap();
    let dir = Arc::new(sample_city());
    let rust = civic_plugin_bundle::get("civic-plugin-haitang")
        .unwrap()
        .component
        .to_vec();
    let python = fixture(python_plugins::CIVIC_PLUGIN_HAITANG_PY);
    let js = fixture(js_plugins::CIVIC_PLUGIN_HAITANG_JS);

    println!("component, compile and load");
    println!(
        "{:<8} {:>12} {:>12} {:>16} {:>18}",
        "lang", "bytes", "compile s", "cached load ms", "default limits"
    );
    let mut loaded: Vec<(&str, Arc<Plugin>, usize)> = Vec::new();
    for (lang, bytes, calls) in [
        ("rust", &rust, 20_000),
        ("python", &python, 1_000),
        ("js", &js, 1_000),
    ] {
        let limits = Limits::for_component(bytes);
        let t = Instant::now();
        let plugin = runtime.load(lang, bytes, limits, "{}").unwrap();
        let compile = t.elapsed();
        // A second runtime on the same cache: what a restarted host pays.
        let again = Runtime::new(config()).unwrap();
        let t = Instant::now();
        again.load(lang, bytes, limits, "{}").unwrap();
        let cached = t.elapsed();
        println!(
            "{lang:<8} {:>12} {:>12.2} {:>16.1} {:>8} MiB {:>4} M",
            bytes.len(),
            compile.as_secs_f64(),
            cached.as_secs_f64() * 1000.0,
            limits.memory_bytes >> 20,
            limits.fuel / 1_000_000
        );
        loaded.push((lang, plugin, calls));
    }

    let c = {
        let mut c = case("haitang", "suggestion", None);
        c.kind = civic_host::runtime::wit::CaseKind::Suggestion;
        c.location.community = Some("haitang/longjiang".into());
        c
    };
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); loaded.len()];
    let mut fuel = vec![0u64; loaded.len()];
    let mut busy = vec![Duration::ZERO; loaded.len()];
    for (i, (_, plugin, _)) in loaded.iter().enumerate() {
        for _ in 0..50 {
            route(&runtime, plugin, &c, &dir).unwrap();
        }
        fuel[i] = route(&runtime, plugin, &c, &dir).unwrap().fuel_used;
    }
    for _ in 0..rounds {
        for (i, (_, plugin, calls)) in loaded.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..*calls {
                let t = Instant::now();
                let r = route(&runtime, plugin, &c, &dir).unwrap();
                times[i].push(t.elapsed());
                assert_eq!(r.output.unwrap().lead, "haitang/longjiang");
            }
            busy[i] += started.elapsed();
        }
    }
    println!("\nrouting decision, fresh instance each, one thread, {rounds} rounds (µs)");
    println!(
        "{:<8} {:>8} {:>10} {:>10} {:>14}",
        "lang", "fuel", "p50", "p99", "decisions/s"
    );
    for (i, (lang, _, _)) in loaded.iter().enumerate() {
        let n = times[i].len();
        println!(
            "{lang:<8} {:>8} {:>10.1} {:>10.1} {:>14.0}",
            fuel[i],
            percentile(&mut times[i], 0.50),
            percentile(&mut times[i], 0.99),
            n as f64 / busy[i].as_secs_f64()
        );
    }
}
