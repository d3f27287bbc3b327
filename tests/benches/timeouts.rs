//! How close to its limit a spinning decision is stopped.
//!
//! `cargo bench -p civic-tests --bench timeouts` — a routing rule that never returns, with a
//! 100 ms limit (and fuel out of reach), decided 20 times in a row on an otherwise idle
//! thread: the wall time each took until it was stopped, and the CPU time it had.

use std::sync::Arc;
use std::time::Duration;

use civic_host::directory::sample_city;
use civic_host::runtime::{Limits, Runtime, RuntimeConfig, wit};
use civic_tests::{case, fixture, fixtures, route};

fn main() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let dir = Arc::new(sample_city());
    let spin = runtime
        .load(
            "fx-hostile",
            &fixture(fixtures::FX_HOSTILE),
            Limits {
                fuel: u64::MAX,
                timeout: Duration::from_millis(100),
                ..Limits::default()
            },
            "spin",
        )
        .unwrap();
    let mut c = case("jiyang", "noise", Some("jiyang/yuehe/grid-01"));
    c.eligibility = Some(wit::EligibilityOutcome {
        grid_admissible: true,
        mediation: None,
    });
    let mut walls = Vec::new();
    for _ in 0..20 {
        let e = route(&runtime, &spin, &c, &dir).unwrap_err();
        assert_eq!(e.failure.code(), "timeout", "{e}");
        walls.push(e.duration);
    }
    walls.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    println!(
        "100 ms limit, 20 spinning decisions: wall min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(&walls[0]),
        ms(&walls[10]),
        ms(&walls[19])
    );
}
