//! Every way a district's code can misbehave is contained with a typed error, and a
//! well-behaved plug-in evaluated at the same time still succeeds.

#![allow(clippy::result_large_err)] // PluginError is returned unboxed by the runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use civic_host::directory::{Directory, sample_city};
use civic_host::runtime::{
    Evaluation, Hook, Limits, MAX_LOG_LINES, Plugin, PluginError, PluginFailure, Runtime,
    RuntimeConfig, wit,
};
use civic_tests::{case, fixture, fixtures, route};

struct World {
    runtime: Runtime,
    directory: Arc<Directory>,
    city: Arc<Plugin>,
}

fn world() -> World {
    world_with(RuntimeConfig::default())
}

fn world_with(config: RuntimeConfig) -> World {
    let runtime = Runtime::new(config).expect("runtime");
    let city = runtime
        .load(
            "city-default",
            civic_plugin_bundle::get("civic-plugin-city-default")
                .unwrap()
                .component,
            Limits::default(),
            "{}",
        )
        .expect("city default loads");
    World {
        runtime,
        directory: Arc::new(sample_city()),
        city,
    }
}

impl World {
    fn hostile(&self, behaviour: &str, limits: Limits) -> Arc<Plugin> {
        self.runtime
            .load(
                "fx-hostile",
                &fixture(fixtures::FX_HOSTILE),
                limits,
                behaviour,
            )
            .expect("fixture loads")
    }

    fn route(&self, plugin: &Plugin) -> Result<Evaluation<wit::RoutingDecision>, PluginError> {
        let mut c = case("jiyang", "noise", Some("jiyang/yuehe/grid-01"));
        c.eligibility = Some(wit::EligibilityOutcome {
            grid_admissible: true,
            mediation: None,
        });
        route(&self.runtime, plugin, &c, &self.directory)
    }

    /// Runs `hostile` while another thread keeps routing with the city default, and
    /// checks every one of the bystander's decisions succeeded.
    fn with_bystander<T: Send>(&self, hostile: impl FnOnce() -> T + Send) -> T {
        let done = AtomicBool::new(false);
        let ok = AtomicU64::new(0);
        let out = std::thread::scope(|s| {
            let bystander = s.spawn(|| {
                while !done.load(Ordering::Relaxed) || ok.load(Ordering::Relaxed) == 0 {
                    let eval = self
                        .route(&self.city)
                        .expect("the well-behaved plug-in keeps working");
                    assert_eq!(eval.output.unwrap().lead, "jiyang/yuehe/grid-01");
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            });
            let out = hostile();
            done.store(true, Ordering::Relaxed);
            bystander.join().expect("bystander thread");
            out
        });
        assert!(ok.load(Ordering::Relaxed) > 0);
        out
    }
}

fn failure(r: Result<Evaluation<wit::RoutingDecision>, PluginError>) -> PluginError {
    match r {
        Ok(e) => panic!("expected a failure, got {:?}", e.output),
        Err(e) => e,
    }
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let w = world();
    let p = w.hostile(
        "spin",
        Limits {
            fuel: 5_000_000,
            ..Limits::default()
        },
    );
    let e = failure(w.with_bystander(|| w.route(&p)));
    assert_eq!(e.failure, PluginFailure::OutOfFuel { budget: 5_000_000 });
    assert_eq!(e.plugin.name, "fx-hostile");
    assert_eq!(e.hook, Some(Hook::Routing));
    assert!(e.fuel_used >= 5_000_000, "fuel used {}", e.fuel_used);
    assert!(e.to_string().contains("fx-hostile@"), "{e}");
}

#[test]
fn infinite_loop_with_huge_fuel_hits_the_deadline() {
    let w = world();
    let p = w.hostile(
        "spin",
        Limits {
            fuel: u64::MAX,
            timeout: Duration::from_millis(50),
            ..Limits::default()
        },
    );
    assert_eq!(
        p.limits().fuel,
        w.runtime.config().max_fuel,
        "fuel is capped by the host maximum"
    );
    let e = failure(w.with_bystander(|| w.route(&p)));
    assert_eq!(e.failure, PluginFailure::Timeout { limit_ms: 50 });
    assert!(
        e.duration < Duration::from_millis(1000),
        "took {:?}",
        e.duration
    );
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let w = world();
    let p = w.hostile(
        "memory-bomb",
        Limits {
            memory_bytes: 2 << 20,
            ..Limits::default()
        },
    );
    let e = failure(w.with_bystander(|| w.route(&p)));
    assert_eq!(
        e.failure,
        PluginFailure::MemoryLimit {
            limit_bytes: 2 << 20
        }
    );
}

#[test]
fn deep_recursion_traps() {
    let w = world();
    let p = w.hostile("deep-recursion", Limits::default());
    let e = failure(w.with_bystander(|| w.route(&p)));
    match &e.failure {
        PluginFailure::Trap { message, .. } => {
            assert!(
                message.contains("stack") || message.contains("out of bounds"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let w = world();
    let p = w.hostile("panic", Limits::default());
    let e = failure(w.with_bystander(|| w.route(&p)));
    match &e.failure {
        PluginFailure::Trap { panic: Some(p), .. } => {
            assert!(
                p.contains("district rule exploded on case c-test-0001"),
                "{p}"
            )
        }
        other => panic!("expected a trap with a panic message, got {other:?}"),
    }
    // The trapped instance was thrown away; the same plug-in keeps evaluating.
    let again = failure(w.route(&p));
    assert!(matches!(again.failure, PluginFailure::Trap { .. }));
    let healthy = w.hostile("", Limits::default());
    assert_eq!(w.route(&healthy).unwrap().output.unwrap().lead, "jiyang");
}

/// A decision larger than any valid one is refused while it is being copied out of the
/// guest (hostcall fuel), before the host has copied more than the largest valid decision:
/// a 1 MiB reason, 100,000 co-handlers, sixteen 128 KiB reasons.
#[test]
fn huge_output_is_an_invalid_decision() {
    let w = world();
    let generous = Limits {
        fuel: 500_000_000,
        timeout: Duration::from_secs(2),
        memory_bytes: 16 << 20,
    };
    for config in ["huge-output", "many-co-handlers", "oversized"] {
        let p = w.hostile(config, generous);
        let e = failure(w.with_bystander(|| w.route(&p)));
        assert!(
            matches!(&e.failure, PluginFailure::InvalidDecision { detail: m }
                if m.contains("larger than the 65536 bytes a plug-in may return")),
            "{config}: {e}"
        );
    }
}

/// A decision over the validation limits but within the copy limit is still checked field
/// by field.
#[test]
fn a_reason_code_that_is_not_a_code_is_an_invalid_decision() {
    let w = world();
    let p = w.hostile("bad-reason", Limits::default());
    let e = failure(w.route(&p));
    assert!(
        matches!(&e.failure, PluginFailure::InvalidDecision { detail: m } if m.contains("reason code")),
        "{e}"
    );
}

#[test]
fn log_flood_is_bounded() {
    let w = world();
    let p = w.hostile(
        "log-flood",
        Limits {
            fuel: 500_000_000,
            timeout: Duration::from_secs(2),
            ..Limits::default()
        },
    );
    let eval = w
        .with_bystander(|| w.route(&p))
        .expect("a flood of logs is not an error");
    assert_eq!(eval.log.lines.len(), MAX_LOG_LINES);
    assert_eq!(eval.log.dropped, 100_000 - MAX_LOG_LINES as u64);
    assert_eq!(eval.log.lines[0].message, "line 0 of a flood");
}

#[test]
fn unit_that_does_not_exist_is_refused() {
    let w = world();
    let p = w.hostile("ghost-unit", Limits::default());
    let e = failure(w.with_bystander(|| w.route(&p)));
    assert!(
        matches!(&e.failure, PluginFailure::InvalidDecision { detail: m } if m.contains("`jiyang/no-such-unit` does not exist")),
        "{e}"
    );
}

#[test]
fn unit_of_another_district_is_refused() {
    let w = world();
    let p = w.hostile("foreign-unit", Limits::default());
    let e = failure(w.with_bystander(|| w.route(&p)));
    assert!(
        matches!(&e.failure, PluginFailure::InvalidDecision { detail: m } if m.contains("belongs to district tianya")),
        "{e}"
    );
}

#[test]
fn incompatible_contract_is_refused_at_load() {
    let w = world();
    let e = w.with_bystander(|| {
        w.runtime
            .load(
                "fx-incompatible",
                &fixture(fixtures::FX_INCOMPATIBLE),
                Limits::default(),
                "{}",
            )
            .unwrap_err()
    });
    match &e.failure {
        PluginFailure::IncompatibleContract { expected, detail } => {
            assert_eq!(expected, "0.1.0");
            assert!(detail.contains("civic:rules@0.9.0"), "{detail}");
        }
        other => panic!("expected incompatible-contract, got {other:?}"),
    }
    assert_eq!(e.hook, None);
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let w = world();
    for (bytes, expect) in [
        (&b"#!/bin/sh\nrm -rf /\n"[..], "not WebAssembly"),
        (&b""[..], "not WebAssembly"),
        (&b"\0asm\x01\0\0\0"[..], "core Wasm module"),
        (&b"\0asm\x0d\0\x01\0garbage"[..], "not a valid component"),
    ] {
        let e = w
            .runtime
            .load("junk", bytes, Limits::default(), "{}")
            .unwrap_err();
        assert!(
            matches!(e.failure, PluginFailure::InvalidComponent { .. }),
            "{e}"
        );
        assert!(
            e.to_string().contains(expect),
            "{e} should mention {expect}"
        );
    }
}

#[test]
fn oversized_component_is_refused_before_compiling() {
    let runtime = Runtime::new(RuntimeConfig {
        max_component_bytes: 1000,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = runtime
        .load("big", &fixture(fixtures::FX_HOSTILE), Limits::default(), "")
        .unwrap_err();
    assert!(
        matches!(&e.failure, PluginFailure::InvalidComponent { detail: m } if m.contains("over the 1000-byte limit")),
        "{e}"
    );
}

#[test]
fn globals_do_not_survive_between_decisions() {
    let w = world();
    let p = w.hostile("global-counter", Limits::default());
    for _ in 0..3 {
        let eval = w.route(&p).unwrap();
        assert_eq!(
            eval.output.unwrap().reasons,
            ["call.1"],
            "each decision starts from a fresh instance"
        );
    }
}

#[test]
fn rule_errors_and_no_opinion_are_distinct() {
    let w = world();
    let e = failure(w.route(&w.hostile("rule-error", Limits::default())));
    assert_eq!(
        e.failure,
        PluginFailure::RuleError {
            detail: "invalid input: case c-test-0001 has no location".into()
        }
    );
    let eval = w
        .route(&w.hostile("no-opinion", Limits::default()))
        .unwrap();
    assert!(eval.output.is_none());
}

#[test]
fn every_fixture_has_a_test() {
    let sources = include_str!("hostile_plugins.rs");
    for (name, _) in fixtures::GUESTS {
        let ident = name.to_uppercase().replace('-', "_");
        assert!(
            sources.contains(&format!("fixtures::{ident}")),
            "fixture {name} has no test"
        );
    }
}

#[test]
fn a_burst_beyond_the_instance_pool_waits_instead_of_failing() {
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let city = runtime
        .load(
            "city-default",
            civic_plugin_bundle::get("civic-plugin-city-default")
                .unwrap()
                .component,
            Limits::default(),
            "{}",
        )
        .unwrap();
    let directory = Arc::new(sample_city());
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let mut c = case("jiyang", "noise", Some("jiyang/yuehe/grid-01"));
                c.eligibility = Some(wit::EligibilityOutcome {
                    grid_admissible: true,
                    mediation: None,
                });
                for _ in 0..20 {
                    let e = route(&runtime, &city, &c, &directory)
                        .expect("more callers than pool slots wait their turn");
                    assert_eq!(e.output.unwrap().lead, "jiyang/yuehe/grid-01");
                }
            });
        }
    });
}

/// A decision's time limit counts the CPU time its thread had, not wall-clock time: with
/// every core kept busy and the deciding thread at the lowest priority, so that a
/// millisecond of work takes far longer than its 20 ms limit in wall-clock time, no
/// well-behaved decision fails. (Measured against wall-clock time, each one timed out.)
#[test]
fn a_starved_host_does_not_fail_a_well_behaved_decision() {
    let w = world_with(RuntimeConfig {
        // The wall-clock backstop is out of reach here: this test must not depend on how
        // loaded the machine running it is.
        overload_backstop: Duration::from_secs(60),
        ..RuntimeConfig::default()
    });
    let p = w.hostile(
        "busy",
        Limits {
            fuel: 500_000_000,
            timeout: Duration::from_millis(20),
            ..Limits::default()
        },
    );
    let stop = AtomicBool::new(false);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..cores * 2 {
            s.spawn(|| {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            });
        }
        let decider = s.spawn(|| {
            // SAFETY: plain syscalls on the calling thread.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19);
            }
            let mut slowest = Duration::ZERO;
            for i in 0..10 {
                let eval = w
                    .route(&p)
                    .unwrap_or_else(|e| panic!("decision {i} on a starved host failed: {e}"));
                assert_eq!(eval.output.unwrap().lead, "jiyang");
                slowest = slowest.max(eval.duration);
            }
            slowest
        });
        // Stop the busy threads whatever happened, or a failure would hang the test.
        let outcome = decider.join();
        stop.store(true, Ordering::Relaxed);
        let slowest = outcome.unwrap_or_else(|p| std::panic::resume_unwind(p));
        eprintln!("slowest starved decision took {slowest:?} of wall-clock time");
    });
}

/// A component that needs WASI is refused from its import list, before anything is
/// compiled, with a message naming the import and what to do about it; a refused component
/// leaves nothing in the compiled cache.
#[test]
fn a_component_that_imports_wasi_is_refused_before_compiling_and_leaves_no_cache() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = runtime
        .load("wasi", &fixture(fixtures::FX_WASI), Limits::default(), "{}")
        .unwrap_err();
    match &e.failure {
        PluginFailure::InvalidComponent { detail } => {
            assert!(
                detail.contains("wasi:cli/environment@0.2.0") && detail.contains("stub WASI"),
                "{detail}"
            );
        }
        other => panic!("expected invalid-component, got {other:?}"),
    }
    // Compiled, then refused when linking: not cached either.
    runtime
        .load(
            "fx-incompatible",
            &fixture(fixtures::FX_INCOMPATIBLE),
            Limits::default(),
            "{}",
        )
        .unwrap_err();
    let cached = || std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(cached(), 0, "refused components are not cached");
    runtime
        .load(
            "city-default",
            civic_plugin_bundle::get("civic-plugin-city-default")
                .unwrap()
                .component,
            Limits::default(),
            "{}",
        )
        .unwrap();
    assert_eq!(cached(), 1);
}

/// The compiled cache keeps to its quota, dropping the least recently used entries.
#[test]
fn the_compiled_cache_keeps_to_its_quota() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        // Room for about one compiled plug-in.
        cache_max_bytes: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    for b in civic_plugin_bundle::all().iter().take(3) {
        runtime
            .load(b.package, b.component, Limits::default(), "{}")
            .unwrap();
        let entries = std::fs::read_dir(cache.path()).unwrap().count();
        assert_eq!(
            entries, 1,
            "only the newest entry is kept under a tiny quota"
        );
    }
}

/// One district's decisions take at most its share of the machine: four callers of a
/// spinning plug-in run one at a time (each gets its full time limit, none is overloaded),
/// while another district's decisions go on beside them.
#[test]
fn a_districts_decisions_run_within_its_share() {
    let w = world_with(RuntimeConfig {
        district_share: 1,
        overload_backstop: Duration::from_secs(60),
        ..RuntimeConfig::default()
    });
    let spin = w.hostile(
        "spin",
        Limits {
            fuel: u64::MAX,
            timeout: Duration::from_millis(30),
            ..Limits::default()
        },
    );
    let done = AtomicU64::new(0);
    let peak = AtomicU64::new(0);
    let other = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let e = failure(w.route(&spin));
                assert_eq!(e.failure, PluginFailure::Timeout { limit_ms: 30 });
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        s.spawn(|| {
            let mut c = case("tianya", "noise", Some("tianya/maling/grid-01"));
            c.eligibility = Some(wit::EligibilityOutcome {
                grid_admissible: true,
                mediation: None,
            });
            while done.load(Ordering::SeqCst) < 4 {
                route(&w.runtime, &w.city, &c, &w.directory)
                    .expect("another district decides beside the spinning one");
                other.fetch_add(1, Ordering::SeqCst);
            }
        });
        while done.load(Ordering::SeqCst) < 4 {
            peak.fetch_max(u64::from(w.runtime.in_flight("jiyang")), Ordering::SeqCst);
            std::thread::yield_now();
        }
    });
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "jiyang's decisions ran one at a time"
    );
    assert!(other.load(Ordering::SeqCst) > 0);
    assert_eq!(w.runtime.in_flight("jiyang"), 0);
}

/// A decision that cannot get its district's share in time fails as host-overloaded, the
/// one failure never counted against a plug-in.
#[test]
fn a_decision_that_waits_too_long_for_its_share_is_host_overloaded() {
    let w = world_with(RuntimeConfig {
        district_share: 1,
        overload_backstop: Duration::ZERO,
        ..RuntimeConfig::default()
    });
    let spin = w.hostile(
        "spin",
        Limits {
            fuel: u64::MAX,
            timeout: Duration::from_secs(2),
            ..Limits::default()
        },
    );
    let started = AtomicBool::new(false);
    std::thread::scope(|s| {
        let holder = s.spawn(|| {
            started.store(true, Ordering::SeqCst);
            w.route(&spin)
        });
        // Wait until the spinning decision holds jiyang's one share.
        while w.runtime.in_flight("jiyang") == 0 && !holder.is_finished() {
            std::thread::yield_now();
        }
        let e = failure(w.route(&w.city));
        assert!(
            matches!(e.failure, PluginFailure::HostOverloaded { cpu_ms: 0, .. }),
            "{e}"
        );
        assert!(e.failure.is_host_fault());
        let _ = holder.join();
    });
}
