//! The service on the PostgreSQL engine, end to end through the HTTP API: the README's walk,
//! a database stopped with `pg_ctl -m immediate` under intake (503s that say why, never a
//! 500, and recovery by itself), and a city moved sled → PostgreSQL → sled with nothing
//! lost.
//!
//! The store blocks on i/o, so the service is built and read on blocking threads here, as
//! the server does.

use std::sync::Arc;

use civic_host::store::postgres::PostgresConfig;
use civic_host::store::sled::SledConfig;
use civic_host::store::{CaseStore, StoreConfig, backup};
use civic_tests::TestServer;
use civic_tests::postgres::Postgres;
use serde_json::json;

/// A test server whose store is the database at `url`.
async fn server_on(url: String) -> TestServer {
    tokio::task::spawn_blocking(move || {
        TestServer::start_with(|mut c| {
            c.store = StoreConfig::Postgres(PostgresConfig::new(&url).unwrap());
            c
        })
    })
    .await
    .unwrap()
}

/// Drops a server on a blocking thread (its store may block on the way out).
async fn close(s: TestServer) {
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}

#[tokio::test]
async fn the_readme_walk_runs_on_postgres() {
    let s = server_on(Postgres::shared().fresh_database()).await;
    let health = s.get("/healthz", &s.admin).await;
    assert_eq!(health.status, 200, "{:?}", health.json);
    assert_eq!(health.json["store"]["engine"], "postgres");

    let r = s
        .json(
            "POST",
            "/v1/cases",
            &s.admin.clone(),
            json!({"district":"jiyang","category":"noise","location":{"grid":"jiyang/yuehe/grid-01"},
                   "caller":{"phone":"13800000001"},"description":"烧烤店噪音扰民"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["status"], "dispatched");
    assert_eq!(r.json["handler"], "jiyang/yuehe/grid-01");
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("c-") && id.len() == 12, "{id}");

    let history = s.get(&format!("/v1/cases/{id}/history"), &s.admin).await;
    assert_eq!(history.status, 200);
    assert!(
        history.json.to_string().contains("route.grid"),
        "{:?}",
        history.json
    );

    let grid = s
        .token("unit-handler", Some("jiyang"), Some("jiyang/yuehe/grid-01"))
        .await;
    let back = s
        .json(
            "POST",
            &format!("/v1/cases/{id}/return"),
            &grid,
            json!({"reason": "a licensing matter, not the grid's"}),
        )
        .await;
    assert_eq!(back.status, 200, "{:?}", back.json);
    assert_eq!(back.json["handler"], "jiyang/yuehe");

    let listed = s.get("/v1/cases?district=jiyang&limit=10", &s.admin).await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    assert!(listed.json.to_string().contains(&id));
    close(s).await;
}

#[tokio::test]
async fn a_database_stopped_under_intake_answers_503_and_the_server_recovers() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.fresh_database();
    let s = server_on(url).await;
    let body = || json!({"district":"jiyang","category":"noise","location":{"grid":"jiyang/yuehe/grid-01"}});
    let first = s.json("POST", "/v1/cases", &s.admin.clone(), body()).await;
    assert_eq!(first.status, 201, "{:?}", first.json);
    let first_id = first.json["id"].as_str().unwrap().to_owned();

    let pg = tokio::task::spawn_blocking(move || {
        pg.stop_immediately();
        pg
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let r = s.json("POST", "/v1/cases", &s.admin.clone(), body()).await;
        assert_eq!(r.status, 503, "{:?}", r.json);
        let message = r.json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("unavailable"), "{message}");
    }
    let health = s.send("GET", "/healthz", None, None, vec![]).await;
    assert_eq!(health.status, 503, "{:?}", health.json);
    assert_eq!(health.json["store"]["status"], "unavailable");

    let mut pg = pg;
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart();
        pg
    })
    .await
    .unwrap();
    // Pooled connections to the old server are found dead and replaced; a bounded number
    // of attempts, not a time limit.
    let mut taken = None;
    for _ in 0..100 {
        let r = s.json("POST", "/v1/cases", &s.admin.clone(), body()).await;
        assert!(matches!(r.status, 201 | 503), "{:?}", r.json);
        if r.status == 201 {
            taken = Some(r.json);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(taken.is_some(), "intake never recovered; log: {}", pg.log());
    let again = s.get(&format!("/v1/cases/{first_id}"), &s.admin).await;
    assert_eq!(
        again.status, 200,
        "the acknowledged case is there: {:?}",
        again.json
    );
    let health = s.send("GET", "/healthz", None, None, vec![]).await;
    assert_eq!(health.status, 200, "{:?}", health.json);
    close(s).await;
    drop(pg);
}

#[tokio::test]
async fn a_city_moves_from_sled_to_postgres_and_back_with_nothing_lost() {
    let s = tokio::task::spawn_blocking(TestServer::start)
        .await
        .unwrap();
    for case in civic_tests::sample_cases() {
        let r = s.json("POST", "/v1/cases", &s.admin.clone(), case).await;
        assert!(matches!(r.status, 201 | 422), "{:?}", r.json);
    }
    let grid = s
        .token("unit-handler", Some("jiyang"), Some("jiyang/yuehe/grid-01"))
        .await;
    let taken = s.take_in("jiyang", "noise", "jiyang/yuehe/grid-01").await;
    let id = taken["id"].as_str().unwrap();
    let r = s
        .json(
            "POST",
            &format!("/v1/cases/{id}/return"),
            &grid,
            json!({"reason": "not ours"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);

    let url = Postgres::shared().fresh_database();
    let sled_store = s.svc.store().clone();
    tokio::task::spawn_blocking(move || {
        let from: &dyn CaseStore = &*sled_store;
        let mut first = Vec::new();
        let moved = backup::export(from, &mut first, &|_| {}).unwrap();
        assert!(moved.cases > 5, "{moved:?}");

        let pg = StoreConfig::Postgres(PostgresConfig::new(&url).unwrap())
            .open()
            .unwrap();
        backup::import(&*pg, std::io::Cursor::new(&first), &|_| {}).unwrap();
        let mut second = Vec::new();
        backup::export(&*pg, &mut second, &|_| {}).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let back: Arc<dyn CaseStore> = StoreConfig::Sled(SledConfig::new(dir.path().join("store")))
            .open()
            .unwrap();
        backup::import(&*back, std::io::Cursor::new(&second), &|_| {}).unwrap();

        let reports = [from, &*pg, &*back].map(|st| st.check_consistency().unwrap());
        for r in &reports {
            assert!(r.problems.is_empty(), "{:?}", r.problems);
            assert_eq!((r.cases, r.events), (reports[0].cases, reports[0].events));
        }
        let mut after = None;
        loop {
            let page = from.cases_after(after.as_deref(), 100).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for c in page {
                let h = from.history(&c.id).unwrap();
                assert_eq!(pg.history(&c.id).unwrap(), h, "{} on postgres", c.id);
                assert_eq!(back.history(&c.id).unwrap(), h, "{} back on sled", c.id);
                assert_eq!(back.get_case(&c.id).unwrap().as_ref(), Some(&c));
            }
        }
        assert_eq!(
            first, second,
            "the export off PostgreSQL is the export off sled"
        );
        drop(pg);
    })
    .await
    .unwrap();
    close(s).await;
}

/// Two hosts on one database sweep timers exactly once: the sweep partitions are leased,
/// a partition changes hands only when its lease ran out (with a new fencing token), and a
/// firing decided under a lease that was taken over is refused, leaving the case as it was.
/// Each host has its own clock here, so "ran out" is a clock moved, not a wait.
#[test]
fn a_host_that_lost_its_sweep_partitions_cannot_write_a_firing() {
    use civic_host::clock::ManualClock;
    use civic_host::service::{Service, ServiceConfig};
    use civic_host::store::{SWEEP_PARTITIONS, Versioned, partition_of};
    use civic_host::timers::{LEASE_TTL, sweep};

    let url = Postgres::shared().fresh_database();
    let t0 = 1_796_000_400_000;
    let open = |node: &str, dir: &std::path::Path| {
        let mut config = ServiceConfig::new(dir);
        config.store = StoreConfig::Postgres(PostgresConfig::new(&url).unwrap());
        config.node = Some(node.into());
        let clock = Arc::new(ManualClock::new(t0));
        let svc = Service::open(&config, clock.clone()).unwrap();
        svc.bootstrap(dir).unwrap();
        (svc, clock)
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, clock_a) = open("a", da.path());
    let (b, clock_b) = open("b", db.path());
    let new: civic_host::intake::NewCase = serde_json::from_value(json!({
        "district": "jiyang", "category": "noise",
        "location": {"grid": "jiyang/yuehe/grid-01"}, "caller": {"phone": "13500000001"}
    }))
    .unwrap();
    let id = a.intake(&new, "agent").unwrap().case.id;
    let store = a.store().clone();

    // Host a takes every partition; b, while a's leases last, none.
    let held_a = store.sweep_leases("a", t0, LEASE_TTL).unwrap().unwrap();
    assert_eq!(held_a.len(), SWEEP_PARTITIONS as usize);
    let none = store
        .sweep_leases("b", t0 + LEASE_TTL - 1, LEASE_TTL)
        .unwrap();
    assert_eq!(none, Some(vec![]));
    // Renewed by its holder, a lease keeps its token.
    let renewed = store.sweep_leases("a", t0 + 1, LEASE_TTL).unwrap().unwrap();
    assert_eq!(renewed, held_a);

    // A timer due, decided by a as the sweep would decide it.
    let later = t0 + 40 * 86_400_000;
    let case = a.case(&id).unwrap();
    let due = store
        .due_timers_in(later, 10, &[partition_of(&id)])
        .unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    let other = (partition_of(&id) + 1) % SWEEP_PARTITIONS;
    assert!(store.due_timers_in(later, 10, &[other]).unwrap().is_empty());
    let mut fired = case.clone();
    fired.timers.retain(|t| t.due_at > later);
    let a_lease = held_a[partition_of(&id) as usize].clone();
    let firing = |fence| Versioned {
        read: case.clone(),
        change: civic_host::store::Change {
            case: fired.clone(),
            events: vec![],
        },
        fence: Some(fence),
    };

    // a is stopped past its lease; b takes every partition over, with new tokens.
    let held_b = store
        .sweep_leases("b", t0 + 1 + LEASE_TTL, LEASE_TTL)
        .unwrap()
        .unwrap();
    assert_eq!(held_b.len(), SWEEP_PARTITIONS as usize);
    for (old, new) in held_a.iter().zip(&held_b) {
        assert_eq!(old.partition, new.partition);
        assert!(new.fence > old.fence, "{old:?} -> {new:?}");
    }
    // a resumes and writes the firing it had decided: refused, nothing written.
    let refused = store.write(vec![firing(a_lease)]).unwrap().pop().unwrap();
    assert!(
        matches!(&refused, Err(civic_host::store::StoreError::Fenced { case, .. }) if *case == id),
        "{refused:?}"
    );
    assert_eq!(
        a.case(&id).unwrap(),
        case,
        "the refused firing wrote nothing"
    );
    // And a's next sweep finds nothing it may sweep.
    assert_eq!(
        store
            .sweep_leases("a", t0 + 2 + LEASE_TTL, LEASE_TTL)
            .unwrap(),
        Some(vec![])
    );

    // Through the service: b's sweep fires the timer; a's sweeps, at any time while b
    // holds the partitions, fire nothing; the history holds one firing.
    clock_b.set(later);
    let r = sweep(&b, later, 100, 2).unwrap();
    assert!(r.fired >= 1, "{r:?}");
    clock_a.set(later);
    let r = sweep(&a, later, 100, 2).unwrap();
    assert_eq!((r.due, r.fired), (0, 0), "{r:?}");
    let history = a.history(&a.case(&id).unwrap()).unwrap();
    let firings = history
        .iter()
        .filter(|e| {
            matches!(&e.what, civic_host::model::EventBody::Decision(d) if d.hook == civic_host::runtime::Hook::Escalation)
        })
        .count();
    let due_then = case.timers.iter().filter(|t| t.due_at <= later).count();
    assert!(due_then >= 1);
    assert_eq!(firings, due_then, "each due timer fired once: {history:?}");
}
