//! The fail-safe promise, through the real service and store: whatever way a district's
//! plug-in fails, in whichever hook, the case is stored, goes to a person (or, for
//! escalation, gets the host's fallback), the typed failure is in its history, and the
//! timer sweeper goes on sweeping.
//!
//! Each failure kind runs on its own service, with each hook on its own district so that
//! one failure never suspends the version another site tests.

#![allow(clippy::result_large_err)] // PluginError is returned unboxed by the runtime.

use std::sync::Arc;
use std::time::Duration;

use civic_host::calendar::{Calendar, parse_date};
use civic_host::clock::ManualClock;
use civic_host::intake::NewCase;
use civic_host::model::{Case, CaseStatus, EventBody};
use civic_host::runtime::{Hook, Limits, RuntimeConfig};
use civic_host::service::{CaseAction, Service, ServiceConfig};
use civic_host::timers;
use civic_tests::{fixture, fixtures};

const HOUR: i64 = 3_600_000;

fn monday_9() -> i64 {
    Calendar::bundled().start_of(parse_date("2026-11-30").unwrap()) + 9 * HOUR
}

/// One way to fail: the fixture's configuration, the limits it runs under, and the failure
/// code the history must show.
struct Kind {
    config: &'static str,
    limits: Limits,
    code: &'static str,
}

fn kinds() -> Vec<Kind> {
    let d = Limits::default();
    vec![
        Kind {
            config: "spin",
            limits: Limits {
                fuel: 2_000_000,
                ..d
            },
            code: "out-of-fuel",
        },
        Kind {
            config: "spin",
            limits: Limits {
                fuel: u64::MAX,
                timeout: Duration::from_millis(20),
                ..d
            },
            code: "timeout",
        },
        Kind {
            config: "memory-bomb",
            limits: d,
            code: "memory-limit",
        },
        Kind {
            config: "panic",
            limits: d,
            code: "trap",
        },
        Kind {
            config: "ghost-unit",
            limits: d,
            code: "invalid-decision",
        },
        Kind {
            config: "oversized",
            limits: Limits {
                memory_bytes: 16 << 20,
                ..d
            },
            code: "invalid-decision",
        },
        Kind {
            config: "rule-error",
            limits: d,
            code: "rule-error",
        },
    ]
}

/// Every failure kind serialises and is recorded: there is no kind left out of the table
/// that a plug-in can cause while deciding (the load-time kinds cannot happen in a hook).
#[test]
fn the_table_covers_every_decision_time_failure_kind() {
    let codes: std::collections::BTreeSet<&str> = kinds().iter().map(|k| k.code).collect();
    for code in [
        "out-of-fuel",
        "timeout",
        "memory-limit",
        "trap",
        "invalid-decision",
        "rule-error",
    ] {
        assert!(codes.contains(code), "no row fails with {code}");
    }
}

struct World {
    svc: Service,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn world(cache: &std::path::Path) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    let mut config = ServiceConfig::new(dir.path());
    config.runtime = RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        ..RuntimeConfig::default()
    };
    let svc = Service::open(&config, clock.clone()).unwrap();
    svc.bootstrap(dir.path()).unwrap();
    World {
        svc,
        clock,
        _dir: dir,
    }
}

impl World {
    /// Deploys and activates the fixture; returns its version.
    fn deploy_hostile(&self, district: &str, hook: Hook, kind: &Kind) -> String {
        let (rec, _) = self
            .svc
            .registry()
            .deploy(
                district,
                hook,
                "fx-hostile",
                &fixture(fixtures::FX_HOSTILE),
                kind.limits,
                kind.config,
                "test",
                monday_9(),
            )
            .unwrap();
        self.svc
            .registry()
            .activate(district, hook, &rec.version, "test", monday_9())
            .unwrap();
        rec.version
    }

    fn take_in(&self, district: &str, grid: &str, phone: &str) -> Case {
        let new: NewCase = serde_json::from_value(serde_json::json!({
            "district": district, "category": "noise",
            "location": {"grid": grid}, "caller": {"phone": phone},
            "description": "烧烤店噪音"
        }))
        .unwrap();
        let taken = self
            .svc
            .intake(&new, "agent")
            .unwrap_or_else(|e| panic!("intake in {district} must not fail: {e}"));
        // Stored, and read back from the store, not only returned.
        let stored = self.svc.case(&taken.case.id).unwrap();
        assert_eq!(stored, taken.case);
        stored
    }

    fn act(&self, c: &Case, action: CaseAction) -> Case {
        self.svc
            .act(&c.id, &action, "admin", None)
            .unwrap_or_else(|e| panic!("{action:?} on {}: {e}", c.id))
    }

    /// The rule failures in a case's stored history: (hook, failure code, fallback).
    fn failures(&self, id: &str) -> Vec<(String, String, String)> {
        self.svc
            .store()
            .history(id)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.what {
                EventBody::RuleFailure {
                    hook,
                    failure,
                    fallback,
                    plugin,
                } => {
                    assert_eq!(plugin.name, "fx-hostile");
                    Some((
                        hook.as_str().to_owned(),
                        failure.code().to_owned(),
                        fallback,
                    ))
                }
                _ => None,
            })
            .collect()
    }
}

/// A case sent to manual triage: dispatched to its district desk with deadlines running.
fn assert_manual_triage(c: &Case, why: &str) {
    assert_eq!(c.status, CaseStatus::Dispatched, "{why}: {c:?}");
    assert_eq!(c.handler.as_deref(), Some(c.district.as_str()), "{why}");
    assert!(c.deadlines.resolution.is_some(), "{why}: deadlines run");
}

#[test]
fn every_failure_kind_in_every_hook_keeps_the_case_and_the_sweeper() {
    let cache = tempfile::tempdir().unwrap();
    for kind in kinds() {
        let w = world(cache.path());
        let row = format!("{} ({})", kind.config, kind.code);

        // Eligibility at intake (jiyang).
        let _ = w.deploy_hostile("jiyang", Hook::Eligibility, &kind);
        let c = w.take_in("jiyang", "jiyang/yuehe/grid-01", "13700000001");
        assert_manual_triage(&c, &format!("{row}: eligibility at intake"));
        assert_eq!(
            w.failures(&c.id),
            vec![(
                "eligibility".into(),
                kind.code.into(),
                "manual-triage".into()
            )],
            "{row}"
        );

        // Routing at intake (yazhou).
        let _ = w.deploy_hostile("yazhou", Hook::Routing, &kind);
        let c = w.take_in("yazhou", "yazhou/nanbin/grid-01", "13700000002");
        assert_manual_triage(&c, &format!("{row}: routing at intake"));
        assert_eq!(
            w.failures(&c.id),
            vec![("routing".into(), kind.code.into(), "manual-triage".into())],
            "{row}"
        );

        // Routing after a return (tianya): taken in while its own rules work, then the
        // hostile version goes live and the grid returns the case.
        let c = w.take_in("tianya", "tianya/maling/grid-01", "13700000003");
        assert_ne!(
            c.handler.as_deref(),
            Some("tianya"),
            "routed by tianya's rules"
        );
        let _ = w.deploy_hostile("tianya", Hook::Routing, &kind);
        let c = w.act(&c, CaseAction::Return("不属于网格职责".into()));
        assert_manual_triage(&c, &format!("{row}: routing on return"));
        assert_eq!(
            w.failures(&c.id),
            vec![("routing".into(), kind.code.into(), "manual-triage".into())],
            "{row}"
        );

        // Routing after a reopen (haitang).
        let c = w.take_in("haitang", "haitang/longjiang/grid-01", "13700000004");
        let c = w.act(&c, CaseAction::Sign);
        let c = w.act(&c, CaseAction::Start);
        let c = w.act(&c, CaseAction::Reply("已处理".into()));
        let c = w.act(
            &c,
            CaseAction::Callback {
                satisfied: false,
                resolved: false,
                note: String::new(),
            },
        );
        let _ = w.deploy_hostile("haitang", Hook::Routing, &kind);
        let c = w.act(&c, CaseAction::Reopen("群众不满意".into()));
        assert_manual_triage(&c, &format!("{row}: routing on reopen"));
        assert_eq!(
            w.failures(&c.id),
            vec![("routing".into(), kind.code.into(), "manual-triage".into())],
            "{row}"
        );

        // Escalation in the sweep (yucai), with a bystander case in another district due
        // in the same sweep.
        let failing = w.take_in("yucai", "yucai/qingfa/grid-01", "13700000005");
        let bystander = w.take_in("jiyang", "jiyang/yuehe/grid-02", "13700000006");
        let _ = w.deploy_hostile("yucai", Hook::Escalation, &kind);
        w.clock.advance(30 * 24 * HOUR);
        let report = timers::sweep(&w.svc, w.clock.now_ms(), 10_000, 2)
            .unwrap_or_else(|e| panic!("{row}: the sweep must not fail: {e}"));
        assert_eq!(report.panicked, 0, "{row}");
        assert!(report.plugin_failures > 0, "{row}: {report:?}");
        let f = w.failures(&failing.id);
        assert!(!f.is_empty(), "{row}: the escalation failure is recorded");
        assert!(
            f.iter()
                .all(|x| *x == ("escalation".into(), kind.code.into(), "city-default".into())),
            "{row}: {f:?}"
        );
        let after = w.svc.case(&failing.id).unwrap();
        assert!(
            after.timers.iter().all(|t| t.due_at > w.clock.now_ms()),
            "{row}: every due timer fired: {after:?}"
        );
        let history = w.svc.store().history(&failing.id).unwrap();
        assert!(
            history
                .iter()
                .any(|e| matches!(&e.what, EventBody::Escalation { .. })),
            "{row}: the city default (or the host) escalated instead"
        );
        let other = w.svc.case(&bystander.id).unwrap();
        assert!(
            other.timers.iter().all(|t| t.due_at > w.clock.now_ms()),
            "{row}: the other district's timers fired in the same sweep"
        );
        // And the next sweep runs too.
        w.clock.advance(HOUR);
        timers::sweep(&w.svc, w.clock.now_ms(), 10_000, 2).unwrap();
    }
}

/// The reproduction, through HTTP: a routing plug-in naming a unit that does not
/// exist, deployed and activated by the district admin; five intakes all answer 201, each
/// case is stored and sent to the desk, and the version is suspended after the fifth.
#[tokio::test]
async fn a_ghost_unit_routing_plugin_loses_no_case_over_http() {
    let s = civic_tests::TestServer::start();
    let admin = s.admin.clone();
    let up = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing?name=ghost&config=ghost-unit",
            Some(&admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    assert_eq!(up.status, 201, "{:?}", up.json);
    let version = up.json["version"].as_str().unwrap().to_owned();
    let act = s
        .json(
            "POST",
            &format!("/v1/districts/jiyang/plugins/routing/versions/{version}/activate"),
            &admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(act.status, 200, "{:?}", act.json);
    for i in 0..5 {
        let r = s
            .json(
                "POST",
                "/v1/cases",
                &admin,
                serde_json::json!({"district": "jiyang", "category": "noise",
                    "location": {"grid": "jiyang/yuehe/grid-01"},
                    "caller": {"phone": format!("1360000000{i}")}}),
            )
            .await;
        assert_eq!(r.status, 201, "intake {i}: {:?}", r.json);
        assert_eq!(r.json["handler"], "jiyang", "intake {i}: to the desk");
        let id = r.json["id"].as_str().unwrap();
        let h = s.get(&format!("/v1/cases/{id}/history"), &admin).await;
        let failure = h.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["what"]["type"] == "rule-failure")
            .unwrap_or_else(|| panic!("no failure in {:?}", h.json));
        assert_eq!(failure["what"]["failure"]["kind"], "invalid-decision");
        assert!(
            failure["what"]["failure"]["detail"]
                .as_str()
                .unwrap()
                .contains("jiyang/no-such-unit"),
            "{failure}"
        );
    }
    let slot = s.get("/v1/districts/jiyang/plugins/routing", &admin).await;
    assert!(
        slot.json["slot"]["suspended"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == version.as_str()),
        "{:?}",
        slot.json["slot"]
    );
}

/// A version failing three cases in four never fails five in a row, but is suspended by
/// its failure rate; the cases it failed were all kept.
#[test]
fn a_version_that_fails_often_but_never_five_in_a_row_is_suspended() {
    let cache = tempfile::tempdir().unwrap();
    let w = world(cache.path());
    let kind = Kind {
        config: "flaky",
        limits: Limits::default(),
        code: "rule-error",
    };
    let version = w.deploy_hostile("jiyang", Hook::Routing, &kind);
    let suspended = || {
        let slot = w.svc.registry().slot("jiyang", Hook::Routing).unwrap();
        slot.active.as_deref() != Some(version.as_str()) && slot.suspended.contains(&version)
    };
    let mut failed = 0;
    for i in 0..64 {
        let c = w.take_in("jiyang", "jiyang/yuehe/grid-01", &format!("1340000{i:04}"));
        failed += w.failures(&c.id).len();
        if suspended() {
            break;
        }
    }
    let slot = w.svc.registry().slot("jiyang", Hook::Routing).unwrap();
    assert!(suspended(), "{slot:?}");
    let why = &slot.history.last().unwrap().detail;
    assert!(why.contains("of its last 32 decisions failed"), "{why}");
    assert!(failed >= 16, "{failed}");
}

/// A failure the host caused (overload) is recorded on the case but never counts toward
/// suspending the plug-in; the same number of the plug-in's own failures does.
#[test]
fn host_overload_never_suspends_a_plugin() {
    use civic_host::decide::{self, RecordedInput};
    use civic_host::runtime::{PluginError, PluginFailure};
    let cache = tempfile::tempdir().unwrap();
    let w = world(cache.path());
    let version = w.deploy_hostile(
        "jiyang",
        Hook::Routing,
        &Kind {
            config: "desk",
            limits: Limits::default(),
            code: "",
        },
    );
    let c = w.take_in("jiyang", "jiyang/yuehe/grid-01", "13300000001");
    let input = RecordedInput {
        case: c.to_wit(),
        now: c.created_at,
        recent_cases: vec![],
        timer: None,
    };
    let directory = w.svc.directory().unwrap();
    let fail_with = |failure: PluginFailure| {
        let evaluate = |p: &civic_host::runtime::Plugin, _: &civic_host::runtime::Input<'_>| {
            Err(PluginError {
                plugin: p.id().clone(),
                hook: Some(Hook::Routing),
                failure: failure.clone(),
                fuel_used: 0,
                duration: Duration::ZERO,
            })
        };
        decide::decide(
            &decide::Deciders {
                registry: w.svc.registry(),
                metrics: w.svc.metrics(),
                evaluate: &evaluate,
            },
            &decide::Request {
                district: "jiyang",
                hook: Hook::Routing,
                directory: &directory,
                input: &input,
                now: c.created_at,
                city_default_on_failure: false,
            },
        )
    };
    let overloaded = PluginFailure::HostOverloaded {
        limit_ms: 100,
        cpu_ms: 1,
        wall_ms: 2100,
    };
    for _ in 0..40 {
        let d = fail_with(overloaded.clone());
        assert!(d.failed);
        assert!(
            matches!(&d.events[0].1, EventBody::RuleFailure { failure, .. } if *failure == overloaded)
        );
    }
    let active = w
        .svc
        .registry()
        .slot("jiyang", Hook::Routing)
        .unwrap()
        .active;
    assert_eq!(
        active,
        Some(version.clone()),
        "an overloaded host suspended the plug-in"
    );
    for _ in 0..5 {
        fail_with(PluginFailure::Timeout { limit_ms: 100 });
    }
    let slot = w.svc.registry().slot("jiyang", Hook::Routing).unwrap();
    assert!(
        slot.suspended.contains(&version),
        "its own timeouts do: {slot:?}"
    );
}

/// A guest's panic message that tries to forge a log line and drive the terminal shows up
/// in the server log as one escaped line.
#[test]
fn a_guest_cannot_forge_or_colour_the_server_log() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cache = tempfile::tempdir().unwrap();
    let w = world(cache.path());
    let _ = w.deploy_hostile(
        "jiyang",
        Hook::Routing,
        &Kind {
            config: "forged-log",
            limits: Limits::default(),
            code: "trap",
        },
    );
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // tracing caches each callsite's interest process-wide, and while one dispatcher is
    // registered it asks only the registering thread's: a sibling test reaching the same
    // warning first, with no subscriber on its thread, cached "never" and nothing was
    // captured (about one run in four). With a second, always-interested dispatcher alive
    // every registration asks all of them.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let c = tracing::subscriber::with_default(subscriber, || {
        w.take_in("jiyang", "jiyang/yuehe/grid-01", "13200000001")
    });
    assert_manual_triage(&c, "forged-log");
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("plug-in failed"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no escape byte reaches the log: {text:?}"
    );
    for line in text.lines() {
        assert!(
            !line.starts_with("2026-12-01T00:00:00.000000Z"),
            "a forged line: {text}"
        );
    }
    assert!(text.contains("\\u{1b}[31m"), "shown escaped: {text}");
}
