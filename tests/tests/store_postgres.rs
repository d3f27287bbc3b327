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
