//! Deadlines and escalation in simulated time: weeks of deadlines in milliseconds, with a
//! restart in the middle; every reminder, supervision, notice and move happens once.

use std::collections::BTreeMap;
use std::sync::Arc;

use civic_host::calendar::{Calendar, parse_date};
use civic_host::clock::ManualClock;
use civic_host::intake::NewCase;
use civic_host::model::{CaseStatus, EventBody};
use civic_host::service::{CaseAction, Service, ServiceConfig};
use civic_host::timers;
use civic_tests::{fixture, fixtures};

const HOUR: i64 = 3_600_000;

fn monday_9() -> i64 {
    Calendar::bundled().start_of(parse_date("2026-11-30").unwrap()) + 9 * HOUR
}

/// The service on `dir`: its sled store, or the PostgreSQL database named in
/// `dir/postgres-url` (see [`on_postgres`]).
fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Service {
    let mut config = ServiceConfig::new(dir);
    if let Ok(url) = std::fs::read_to_string(dir.join("postgres-url")) {
        config.store = civic_host::store::StoreConfig::parse(&url).unwrap();
    }
    let svc = Service::open(&config, clock).unwrap();
    svc.bootstrap(dir).unwrap();
    svc
}

/// A data directory whose service keeps its cases in a fresh PostgreSQL database: the
/// escalation checks that matter most across engines (exactly once across a restart,
/// sweeps racing, the caller window) run on both.
fn on_postgres() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let url = civic_tests::postgres::Postgres::shared().fresh_database();
    std::fs::write(dir.path().join("postgres-url"), url).unwrap();
    dir
}

fn new_case(svc: &Service, district: &str, category: &str, grid: &str, phone: &str) -> String {
    let body = serde_json::json!({"district": district, "category": category, "location": {"grid": grid}, "caller": {"phone": phone}});
    let new: NewCase = serde_json::from_value(body).unwrap();
    svc.intake(&new, "agent").unwrap().case.id
}

/// A service whose clock reads Monday 09:00, with one jiyang noise case dispatched to a
/// grid: (clock, service, case id).
fn dispatched_on_monday(dir: &std::path::Path) -> (Arc<ManualClock>, Service, String) {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let svc = open(dir, clock.clone());
    let id = new_case(
        &svc,
        "jiyang",
        "noise",
        "jiyang/yuehe/grid-01",
        "13900000009",
    );
    (clock, svc, id)
}

/// (timer, action, detail) → how many times it happened.
fn escalations(svc: &Service, id: &str) -> BTreeMap<(String, String, String), usize> {
    let mut out = BTreeMap::new();
    for e in svc.store().history(id).unwrap() {
        if let EventBody::Escalation {
            timer,
            action,
            detail,
        } = e.what
        {
            *out.entry((
                format!("{timer:?}"),
                action,
                if detail.len() > 40 {
                    "notice".into()
                } else {
                    detail
                },
            ))
            .or_default() += 1;
        }
    }
    out
}

/// Deploys and activates the hostile fixture as tianya's escalation plug-in, doing what
/// `config` names.
fn hostile_escalation(svc: &Service, config: &str, limits: civic_host::runtime::Limits) {
    let hook = civic_host::runtime::Hook::Escalation;
    let bytes = fixture(fixtures::FX_HOSTILE);
    let (rec, _) = svc
        .registry()
        .deploy(
            "tianya",
            hook,
            "hostile",
            &bytes,
            limits,
            config,
            "test",
            monday_9(),
        )
        .unwrap();
    svc.registry()
        .activate("tianya", hook, &rec.version, "test", monday_9())
        .unwrap();
}

fn key(t: &str, a: &str, d: &str) -> (String, String, String) {
    (t.into(), a.into(), d.into())
}

#[test]
fn weeks_of_deadlines_fire_once_each_across_a_restart() {
    weeks_of_deadlines(tempfile::tempdir().unwrap());
}

#[test]
fn weeks_of_deadlines_fire_once_each_across_a_restart_on_postgres() {
    weeks_of_deadlines(on_postgres());
}

fn weeks_of_deadlines(dir: tempfile::TempDir) {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let mut svc = open(dir.path(), clock.clone());
    let neglected = new_case(
        &svc,
        "jiyang",
        "noise",
        "jiyang/yuehe/grid-01",
        "13900000001",
    );
    let ebike = new_case(
        &svc,
        "tianya",
        "ev-charging",
        "tianya/maling/grid-01",
        "13900000002",
    );
    let handled = new_case(
        &svc,
        "jiyang",
        "sanitation",
        "jiyang/yuechuan/grid-01",
        "13900000003",
    );
    for a in [CaseAction::Sign, CaseAction::Start] {
        svc.act(&handled, &a, "grid", None).unwrap();
    }
    let end = monday_9() + 42 * 24 * HOUR;
    let restart_at = monday_9() + 10 * 24 * HOUR;
    let mut restarted = false;
    let mut fired = 0;
    while clock.now_ms() < end {
        clock.advance(HOUR);
        if !restarted && clock.now_ms() >= restart_at {
            drop(svc);
            svc = open(dir.path(), clock.clone());
            restarted = true;
        }
        let r = timers::sweep(&svc, clock.now_ms(), 10_000, 2).unwrap();
        fired += r.fired;
        if clock.now_ms() == monday_9() + 5 * 24 * HOUR {
            svc.act(&handled, &CaseAction::Reply("cleaned".into()), "grid", None)
                .unwrap();
        }
    }
    assert!(restarted && fired > 0);

    let n = escalations(&svc, &neglected);
    let expected = [
        (key("SignOff", "remind", "jiyang/yuehe/grid-01"), 1),
        (key("SignOff", "move-to", "jiyang/yuehe"), 1),
        (key("SignOff", "remind", "jiyang/yuehe"), 1),
        (key("SignOff", "move-to", "jiyang"), 1),
        (key("SignOff", "remind", "jiyang"), 1),
        (key("FirstContact", "remind", "jiyang/yuehe/grid-01"), 1),
        (key("Warning", "remind", "jiyang"), 1),
        (key("Resolution", "supervise", "jiyang"), 1),
        (key("Overdue", "public-notice", "notice"), 1),
        (key("Overdue", "move-to", "sanya"), 1),
        (key("SignOff", "remind", "sanya"), 1),
    ];
    for (k, count) in &expected {
        assert_eq!(n.get(k), Some(count), "{k:?} in {n:#?}");
    }
    assert_eq!(
        n.values().sum::<usize>(),
        expected.iter().map(|(_, c)| c).sum::<usize>(),
        "nothing else, nothing twice: {n:#?}"
    );
    let c = svc.case(&neglected).unwrap();
    assert_eq!(
        (
            c.handler.as_deref(),
            c.supervised_by.as_deref(),
            c.escalation_level
        ),
        (Some("sanya"), Some("jiyang"), 3)
    );
    assert!(c.timers.is_empty(), "every timer fired: {:?}", c.timers);
    for id in [&neglected, &ebike, &handled] {
        let report = civic_host::replay::replay_case(&svc, id).unwrap();
        assert!(
            report.identical,
            "{id}: {:#?}",
            report
                .decisions
                .iter()
                .filter(|d| !d.identical)
                .collect::<Vec<_>>()
        );
    }
    assert!(
        civic_host::replay::replay_case(&svc, &neglected)
            .unwrap()
            .decisions
            .iter()
            .filter(|d| d.hook == civic_host::runtime::Hook::Escalation)
            .count()
            >= 8
    );

    // Tianya: a missed e-bike sign-off goes straight to the desk; resolution in 1 working day.
    let e = escalations(&svc, &ebike);
    assert_eq!(
        e.get(&key("SignOff", "move-to", "tianya")),
        Some(&1),
        "{e:#?}"
    );
    assert_eq!(
        e.get(&key("Resolution", "supervise", "tianya")),
        Some(&1),
        "{e:#?}"
    );
    assert_eq!(
        e.get(&key("Overdue", "move-to", "sanya")),
        Some(&1),
        "{e:#?}"
    );
    assert!(e.values().all(|n| *n == 1), "nothing twice: {e:#?}");
    assert_eq!(svc.case(&ebike).unwrap().handler.as_deref(), Some("sanya"));

    // The handled case was signed, started and replied: nothing to escalate but its warning? No:
    // replying stops its timers before the warning point.
    assert!(
        escalations(&svc, &handled).is_empty(),
        "{:#?}",
        escalations(&svc, &handled)
    );
    assert_eq!(svc.case(&handled).unwrap().status, CaseStatus::Replied);
}

#[test]
fn a_sweep_interrupted_after_deciding_fires_again_but_applies_once() {
    racing_sweeps(tempfile::tempdir().unwrap());
}

#[test]
fn racing_sweeps_apply_each_firing_once_on_postgres() {
    racing_sweeps(on_postgres());
}

fn racing_sweeps(dir: tempfile::TempDir) {
    let (clock, svc, id) = dispatched_on_monday(dir.path());
    clock.set(monday_9() + 2 * 24 * HOUR);
    // Two sweeps racing over the same due timers: each timer is consumed by exactly one.
    let (a, b) = std::thread::scope(|s| {
        let h1 = s.spawn(|| timers::sweep(&svc, clock.now_ms(), 100, 1).unwrap());
        let h2 = s.spawn(|| timers::sweep(&svc, clock.now_ms(), 100, 1).unwrap());
        (h1.join().unwrap(), h2.join().unwrap())
    });
    assert_eq!(
        a.fired + b.fired,
        2,
        "sign-off and first contact, once each: {a:?} {b:?}"
    );
    let n = escalations(&svc, &id);
    assert_eq!(
        n.get(&key("SignOff", "remind", "jiyang/yuehe/grid-01")),
        Some(&1),
        "{n:#?}"
    );
    assert_eq!(
        n.get(&key("FirstContact", "remind", "jiyang/yuehe/grid-01")),
        Some(&1),
        "{n:#?}"
    );
    assert_eq!(
        timers::sweep(&svc, clock.now_ms(), 100, 2).unwrap().fired,
        0
    );
}

#[test]
fn a_failing_escalation_plugin_falls_back_to_the_city_default() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    let svc = open(dir.path(), clock.clone());
    hostile_escalation(&svc, "panic", Default::default());
    let id = new_case(
        &svc,
        "tianya",
        "sanitation",
        "tianya/xidao/grid-01",
        "13900000010",
    );
    clock.set(monday_9() + 2 * 24 * HOUR);
    let r = timers::sweep(&svc, clock.now_ms(), 100, 1).unwrap();
    assert_eq!((r.fired, r.plugin_failures), (2, 2));
    let h = svc.store().history(&id).unwrap();
    let failures: Vec<_> = h
        .iter()
        .filter_map(|e| match &e.what {
            EventBody::RuleFailure { hook, fallback, .. } => Some((*hook, fallback.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        vec![
            (
                civic_host::runtime::Hook::Escalation,
                "city-default".to_string()
            );
            2
        ]
    );
    let n = escalations(&svc, &id);
    assert_eq!(
        n.get(&key("SignOff", "move-to", "tianya/xidao")),
        Some(&1),
        "the city default decided: {n:#?}"
    );
}

#[test]
fn the_third_case_from_one_caller_is_flagged_and_supervised_at_once() {
    third_case_from_one_caller(tempfile::tempdir().unwrap());
}

#[test]
fn the_third_case_from_one_caller_is_flagged_and_supervised_at_once_on_postgres() {
    third_case_from_one_caller(on_postgres());
}

fn third_case_from_one_caller(dir: tempfile::TempDir) {
    let clock = Arc::new(ManualClock::new(monday_9()));
    let svc = open(dir.path(), clock.clone());
    let ids: Vec<String> = (0..3)
        .map(|i| {
            clock.advance(HOUR * i);
            new_case(
                &svc,
                "yucai",
                "noise",
                "yucai/qingfa/grid-01",
                "13700000000",
            )
        })
        .collect();
    let other = new_case(
        &svc,
        "yucai",
        "sanitation",
        "yucai/qingfa/grid-01",
        "13700000000",
    );
    let third = svc.case(&ids[2]).unwrap();
    assert!(third.flags.names().contains(&"repeat"));
    assert!(!svc.case(&ids[1]).unwrap().flags.names().contains(&"repeat"));
    assert!(
        !svc.case(&other).unwrap().flags.names().contains(&"repeat"),
        "another category is not a repeat"
    );
    let r = timers::sweep(&svc, clock.now_ms(), 100, 1).unwrap();
    assert_eq!(r.fired, 1, "only the repeat timer is due now");
    let third = svc.case(&ids[2]).unwrap();
    assert_eq!(third.supervised_by.as_deref(), Some("yucai"));
    assert_eq!(third.marks, ["repeat"]);
}

#[test]
fn pauses_and_extensions_move_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    let svc = open(dir.path(), clock.clone());
    let id = new_case(
        &svc,
        "jiyang",
        "noise",
        "jiyang/yuehe/grid-01",
        "13900000020",
    );
    svc.act(&id, &CaseAction::Sign, "grid", None).unwrap();
    let before = svc.case(&id).unwrap().deadlines.resolution.unwrap();
    svc.act(
        &id,
        &CaseAction::Pause("waiting for the citizen's photos".into()),
        "grid",
        None,
    )
    .unwrap();
    assert!(
        svc.case(&id).unwrap().timers.is_empty(),
        "a paused case burns no time"
    );
    clock.advance(2 * 24 * HOUR); // Monday → Wednesday: two working days
    let c = svc.act(&id, &CaseAction::Resume, "grid", None).unwrap();
    let cal = Calendar::bundled();
    assert_eq!(
        cal.working_days_between(before, c.deadlines.resolution.unwrap()),
        2
    );
    assert!(c.timers.iter().all(|t| t.due_at > clock.now_ms()));
    svc.act(
        &id,
        &CaseAction::RequestExtension(3, "parts".into()),
        "grid",
        None,
    )
    .unwrap();
    let c = svc
        .act(&id, &CaseAction::ApproveExtension, "desk", None)
        .unwrap();
    assert_eq!(
        cal.working_days_between(before, c.deadlines.resolution.unwrap()),
        5
    );
}

#[tokio::test]
async fn dispatcher_views_show_yellow_and_red_lights() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    let svc = Arc::new(open(dir.path(), clock.clone()));
    let token = std::fs::read_to_string(dir.path().join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let late = new_case(
        &svc,
        "yucai",
        "environment-pollution",
        "yucai/qingfa/grid-01",
        "13600000001",
    );
    clock.advance(4 * 24 * HOUR);
    let fresh = new_case(
        &svc,
        "yucai",
        "noise",
        "yucai/qingfa/grid-02",
        "13600000002",
    );
    let app = civic_host::api::app(svc.clone(), Default::default());
    let get = |path: String, token: String| {
        let app = app.clone();
        async move {
            let req = axum::http::Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
            )
        }
    };
    // Friday: the pollution case (5 working days, warning at half) is past its warning point.
    let (status, w) = get("/v1/districts/yucai/warnings".into(), token.clone()).await;
    assert_eq!(status, 200);
    let lights: Vec<(String, String)> = w["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().into(),
                c["light"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(lights, [(late.clone(), "yellow".to_string())]);
    assert!(
        get("/v1/districts/yucai/overdue".into(), token.clone())
            .await
            .1["cases"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The case board carries the same lights, filters on them and orders by urgency.
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = get(
        "/v1/cases?district=yucai&light=yellow".into(),
        token.clone(),
    )
    .await;
    assert_eq!((status, ids(&page)), (200, vec![late.clone()]));
    assert_eq!(page["cases"][0]["light"], "yellow");
    let (_, page) = get("/v1/cases?district=yucai&light=green".into(), token.clone()).await;
    assert_eq!(ids(&page), vec![fresh.clone()]);
    // Newest first puts the fresh case first; urgency puts the late one first, a page at a time.
    let (_, page) = get("/v1/cases?district=yucai".into(), token.clone()).await;
    assert_eq!(ids(&page), [fresh.clone(), late.clone()]);
    let (_, page) = get(
        "/v1/cases?district=yucai&order=urgent&limit=1".into(),
        token.clone(),
    )
    .await;
    assert_eq!(ids(&page), vec![late.clone()]);
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, page) = get(
        format!("/v1/cases?district=yucai&order=urgent&limit=1&cursor={next}"),
        token.clone(),
    )
    .await;
    assert_eq!(
        (ids(&page), page["next"].clone()),
        (vec![fresh.clone()], serde_json::Value::Null)
    );
    for bad in [
        "light=blue",
        "order=oldest",
        "district=yucai&order=urgent&cursor=zz",
        // The city admin's whole city is not ranked by urgency (no index: it would read it all).
        "order=urgent",
    ] {
        let (status, body) = get(format!("/v1/cases?{bad}"), token.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // The overview counts the same lights and the decisions of the last days.
    let (status, ov) = get("/v1/districts/yucai/overview?days=7".into(), token.clone()).await;
    assert_eq!(status, 200, "{ov}");
    assert_eq!(ov["lights"], serde_json::json!({"green": 1, "yellow": 1}));
    assert_eq!(ov["open_by_status"]["dispatched"], 2);
    assert_eq!(ov["days"].as_array().unwrap().len(), 7);
    let decisions: u64 = ov["days"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["decisions"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(decisions, 4, "eligibility and routing for two cases: {ov}");
    for bad in ["days=0", "days=32", "weeks=1"] {
        let (status, _) = get(format!("/v1/districts/yucai/overview?{bad}"), token.clone()).await;
        assert_eq!(status, 400, "{bad}");
    }
    clock.advance(11 * 24 * HOUR);
    let (_, o) = get("/v1/districts/yucai/overdue".into(), token.clone()).await;
    let red: Vec<&str> = o["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(red, [late.as_str()]);
    assert!(o["cases"][0]["working_days_overdue"].as_u64().unwrap() >= 1);
    let (_, w) = get("/v1/districts/yucai/warnings".into(), token.clone()).await;
    assert!(
        w["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == fresh.as_str() && c["light"] == "yellow"),
        "{w}"
    );
    let (_, page) = get(
        "/v1/cases?district=yucai&order=urgent".into(),
        token.clone(),
    )
    .await;
    assert_eq!(page["cases"][0]["id"], late.as_str());
    assert_eq!(page["cases"][0]["light"], "red");
    // Access control like every other route.
    let (t, _) = {
        let new = civic_host::auth::NewToken {
            name: "d".into(),
            role: civic_host::auth::Role::Dispatcher,
            district: Some("jiyang".into()),
            unit: None,
            expires_in_days: None,
        };
        let now = svc.clock().now();
        let (_, secret) = civic_host::auth::issue(&**svc.store(), None, &new, now).unwrap();
        (secret, ())
    };
    assert_eq!(
        get("/v1/districts/yucai/overdue".into(), t.clone()).await.0,
        404
    );
    assert_eq!(get("/v1/districts/jiyang/overdue".into(), t).await.0, 200);
}

/// What `civic serve` runs in the background: due timers fire without anyone calling the
/// sweep, once each, and nothing fires after the sweeper is stopped.
#[test]
fn the_background_sweeper_fires_due_timers_once_and_stops_when_told() {
    use civic_host::sweeper::Sweeper;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    let svc = Arc::new(open(dir.path(), clock.clone()));
    let id = new_case(
        &svc,
        "jiyang",
        "noise",
        "jiyang/yuehe/grid-01",
        "13900000001",
    );
    let sweeper = Sweeper::start(svc.clone(), Duration::from_millis(10)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(escalations(&svc, &id).is_empty(), "nothing is due yet");

    let sign_off = svc.case(&id).unwrap().deadlines.sign_off.unwrap();
    clock.set(sign_off + 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while escalations(&svc, &id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the sweeper never fired the due sign-off timer"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Many more sweeps at the same time fire nothing more.
    std::thread::sleep(Duration::from_millis(200));
    let fired = escalations(&svc, &id);
    assert!(
        fired.contains_key(&key("SignOff", "remind", "jiyang/yuehe/grid-01")),
        "{fired:?}"
    );
    assert!(
        fired.values().all(|&n| n == 1),
        "each action once: {fired:?}"
    );
    // Sign-off and first contact fall due together here.
    let timers: std::collections::BTreeSet<_> = fired.keys().map(|(t, _, _)| t).collect();
    let metrics = unlabelled(&svc);
    assert!(
        metrics.contains(&format!("civic_timers_fired_total {}\n", timers.len())),
        "{timers:?} {metrics}"
    );
    assert!(
        metrics.contains("civic_timer_sweeps_total{outcome=\"ok\"}"),
        "{metrics}"
    );

    sweeper.stop();
    let case = svc.case(&id).unwrap();
    clock.advance(30 * 24 * HOUR);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        svc.case(&id).unwrap(),
        case,
        "a stopped sweeper fires nothing"
    );
    assert_eq!(escalations(&svc, &id), fired);
}

/// A sweep that fails (here: no directory loaded yet) is counted as an error and tried
/// again at the next interval; the sweeper does not give up.
#[test]
fn a_failing_sweep_is_counted_and_tried_again() {
    use civic_host::sweeper::Sweeper;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    // Not bootstrapped: no directory, so every sweep fails.
    let svc = Arc::new(Service::open(&ServiceConfig::new(dir.path()), clock).unwrap());
    let errors = |svc: &Service| -> u64 {
        let text = unlabelled(svc);
        text.lines()
            .find_map(|l| l.strip_prefix("civic_timer_sweeps_total{outcome=\"error\"} "))
            .map_or(0, |n| n.parse().unwrap())
    };
    let sweeper = Sweeper::start(svc.clone(), Duration::from_millis(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while errors(&svc) < 3 {
        assert!(
            Instant::now() < deadline,
            "failed sweeps were not retried and counted: {}",
            unlabelled(&svc)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    sweeper.stop();
    assert!(
        !unlabelled(&svc).contains("outcome=\"ok\""),
        "no sweep can succeed without a directory"
    );
}

/// A case that changes while its timer is being decided (the handler signs it during a slow
/// escalation plug-in) is not overwritten: the sweep's write is refused, the timer decided
/// again from the signed case, and every action applied once on top of the signature.
#[test]
fn a_case_changed_while_its_timer_is_decided_is_decided_again() {
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(monday_9()));
    let svc = open(dir.path(), clock.clone());
    let limits = civic_host::runtime::Limits {
        fuel: 2_000_000_000,
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    hostile_escalation(&svc, "spin", limits);
    let id = new_case(
        &svc,
        "tianya",
        "sanitation",
        "tianya/xidao/grid-01",
        "13900000011",
    );
    let handler = svc.case(&id).unwrap().handler.unwrap();
    let sign_off = svc.case(&id).unwrap().deadlines.sign_off.unwrap();
    clock.set(sign_off + 1);
    let report = std::thread::scope(|s| {
        let sweep = s.spawn(|| timers::sweep(&svc, clock.now_ms(), 100, 1).unwrap());
        // The plug-in spins for a second; sign while the sweep is deciding.
        std::thread::sleep(Duration::from_millis(300));
        svc.act(&id, &CaseAction::Sign, &handler, None).unwrap();
        sweep.join().unwrap()
    });
    assert!(
        report.retried >= 1,
        "the stale decision was written: {report:?}"
    );
    let case = svc.case(&id).unwrap();
    assert!(
        case.timers.iter().all(|t| t.due_at > sign_off + 1),
        "{:?}",
        case.timers
    );
    let history = svc.store().history(&id).unwrap();
    assert!(
        history.iter().any(|e| matches!(
            &e.what,
            EventBody::Transition {
                to: CaseStatus::Signed,
                ..
            }
        )),
        "the signature survives the escalation: {history:#?}"
    );
    let fired = escalations(&svc, &id);
    assert!(!fired.is_empty(), "the timer fired");
    assert!(
        fired.values().all(|&n| n == 1),
        "each action once: {fired:?}"
    );
}

/// The timer index holds each case's earliest timer only; one sweep still fires every
/// timer of a case that is due, round by round, and a second sweep at the same time fires
/// nothing.
#[test]
fn one_sweep_fires_every_due_timer_of_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let (_, svc, id) = dispatched_on_monday(dir.path());
    let case = svc.store().get_case(&id).unwrap().unwrap();
    let mut dues: Vec<i64> = case.timers.iter().map(|t| t.due_at).collect();
    dues.sort();
    assert!(dues.len() >= 3, "{:?}", case.timers);
    // Past the two earliest timers, before the last.
    let at = dues[1];
    assert!(at < dues[dues.len() - 1]);
    let expected = case.timers.iter().filter(|t| t.due_at <= at).count();
    assert!(expected >= 2);
    let r = timers::sweep(&svc, at, 10_000, 2).unwrap();
    assert_eq!((r.fired, r.due), (expected, expected), "{r:?}");
    let after = svc.store().get_case(&id).unwrap().unwrap();
    assert!(
        after.timers.iter().all(|t| t.due_at > at),
        "{:?}",
        after.timers
    );
    assert_eq!(timers::sweep(&svc, at, 10_000, 2).unwrap().fired, 0);
    assert!(svc.store().check_consistency().unwrap().problems.is_empty());
}

/// The metrics without this host's `node` label, which every line carries.
fn unlabelled(svc: &Service) -> String {
    let node = svc.node();
    svc.metrics()
        .render()
        .replace(&format!("{{node=\"{node}\"}}"), "")
        .replace(&format!("node=\"{node}\","), "")
}
