//! One routing decision on a sample case: (a) the rule as a native Rust function,
//! (b) through the runtime in a fresh store with every limit on, (c) compiling the
//! plug-in, (d) loading it from the compiled cache.
//!
//! `cargo bench -p civic-host --bench runtime`

use std::sync::Arc;

use civic_host::directory::Directory;
use civic_host::runtime::{Hook, Input, Limits, Runtime, RuntimeConfig};
use civic_rules_common::{CityDefault, Plugin as Rules};
use civic_rules_sdk::testing::Sandbox;
use criterion::{Criterion, criterion_group, criterion_main};

mod common;

fn routing(c: &mut Criterion) {
    let component = civic_plugin_bundle::get("civic-plugin-city-default")
        .unwrap()
        .component;
    let directory =
        Arc::new(Directory::from_json(1, common::DIRECTORY, common::CATEGORIES).unwrap());
    let mut g = c.benchmark_group("routing-decision");

    let sandbox = Sandbox::from_json(common::DIRECTORY, common::CATEGORIES).unwrap();
    let native = common::native_case();
    g.bench_function("a-native-rust", |b| {
        b.iter(|| {
            let r = sandbox
                .routing::<Rules<CityDefault>>(std::hint::black_box(&native))
                .unwrap()
                .unwrap();
            assert_eq!(r.lead, "jiyang/yuehe/grid-01");
        })
    });

    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let plugin = runtime
        .load("city-default", component, Limits::default(), "{}")
        .unwrap();
    let case = common::wasm_case();
    let input = Input {
        hook: Hook::Routing,
        case: &case,
        now: case.created_at,
        recent_cases: &[],
        directory: &directory,
        timer: None,
    };
    g.bench_function("b-wasm-fresh-store-all-limits", |b| {
        b.iter(|| {
            let r = runtime
                .evaluate(&plugin, std::hint::black_box(&input))
                .unwrap();
            assert_eq!(
                r.output.unwrap().into_routing().unwrap().lead,
                "jiyang/yuehe/grid-01"
            );
        })
    });
    g.finish();

    let mut g = c.benchmark_group("plugin-load");
    g.sample_size(10);
    g.bench_function("c-compile", |b| {
        b.iter(|| {
            runtime
                .load("city-default", component, Limits::default(), "{}")
                .unwrap()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let cached = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    cached
        .load("city-default", component, Limits::default(), "{}")
        .unwrap();
    g.bench_function("d-load-from-compiled-cache", |b| {
        b.iter(|| {
            cached
                .load("city-default", component, Limits::default(), "{}")
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
