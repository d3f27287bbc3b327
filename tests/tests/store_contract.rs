//! The store contract (`civic_host::store::contract`), run on every engine: the embedded
//! sled store, and PostgreSQL — a real server the tests start themselves (one cluster for
//! this binary, a fresh database for each store).

use std::sync::Arc;

use civic_host::store::contract::Fresh;
use civic_host::store::postgres::{PostgresConfig, PostgresStore};
use civic_host::store::sled::{Durability, SledStore};

mod sled {
    use super::*;

    fn fresh() -> Fresh {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = SledStore::open(&dir.path().join("store"), Durability::GroupCommit)
            .expect("a fresh sled store");
        Fresh {
            store: Arc::new(store),
            keep: Box::new(dir),
        }
    }

    civic_host::store_contract_tests!(fresh);
}

mod postgres {
    use super::*;
    use civic_tests::postgres::Postgres;

    fn fresh() -> Fresh {
        on(Postgres::shared().fresh_database())
    }

    /// The PostgreSQL engine on the database at `url`.
    pub(super) fn on(url: String) -> Fresh {
        let config = PostgresConfig::new(&url).expect("the harness's url");
        let store = PostgresStore::open(&config)
            .unwrap_or_else(|e| panic!("open {url}: {e}; log: {}", Postgres::shared().log()));
        Fresh {
            store: Arc::new(store),
            keep: Box::new(()),
        }
    }

    civic_host::store_contract_tests!(fresh);
}

/// The same contract on a database whose text collation is linguistic (ICU `en-US`, as
/// many installations are set up), not byte order: nothing may depend on how the database
/// sorts or compares ranges of text.
mod postgres_linguistic_collation {
    use super::*;
    use civic_tests::postgres::Postgres;

    fn fresh() -> Fresh {
        super::postgres::on(Postgres::shared().fresh_database_with(&[
            "--template=template0",
            "--locale-provider=icu",
            "--icu-locale=en-US",
        ]))
    }

    civic_host::store_contract_tests!(fresh);
}

/// Every listing and the due-timer scan are answered from an index, never a walk of the
/// table (the plans PostgreSQL gives them, read with EXPLAIN).
#[test]
fn postgres_answers_listings_and_the_sweep_from_indexes() {
    use civic_tests::postgres::Postgres;
    let url = Postgres::shared().fresh_database();
    let store = PostgresStore::open(&PostgresConfig::new(&url).unwrap()).unwrap();
    let plans = store.explain_hot_queries().unwrap();
    assert!(plans.len() >= 6);
    for (query, plan) in plans {
        assert!(
            plan.contains("Index") && !plan.contains("Seq Scan"),
            "{query} is not answered from an index:\n{plan}"
        );
    }
}

/// A database whose schema is newer than this build's is refused with a message that says
/// so, and left as it was; an empty one gets the schema, and opening it again changes
/// nothing.
#[test]
fn postgres_refuses_a_newer_schema_untouched() {
    use civic_host::store::{CaseStore, StoreError};
    use civic_tests::postgres::Postgres;
    let url = Postgres::shared().fresh_database();
    let config = PostgresConfig::new(&url).unwrap();
    let store = PostgresStore::open(&config).unwrap();
    store
        .record_put("tokens", &[("t".into(), b"kept".to_vec())])
        .unwrap();
    drop(store);
    // Opening again keeps what is there.
    let store = PostgresStore::open(&config).unwrap();
    assert_eq!(
        store.record_get("tokens", "t").unwrap(),
        Some(b"kept".to_vec())
    );
    drop(store);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .execute("UPDATE civic_meta SET value = 99 WHERE key = 'schema'", &[])
            .await
            .unwrap();
    });
    let e = PostgresStore::open(&config)
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(&e, StoreError::UnknownSchema { found, .. } if found == "99"),
        "{e}"
    );
    assert!(e.to_string().contains("was not changed"), "{e}");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT (SELECT value FROM civic_meta WHERE key = 'schema'),
                        (SELECT value FROM civic_records WHERE key = 't')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 99, "the schema marker is untouched");
        assert_eq!(row.get::<_, Vec<u8>>(1), b"kept".to_vec());
    });
}

/// A database of schema 1 (before the sweep was leased across hosts, and before assessment
/// facts) is migrated in place when a newer host opens it: what it held stays, the lease
/// table appears, the facts of its cases are derived from their histories, and the marker
/// names the current schema.
#[test]
fn postgres_migrates_a_schema_1_database_in_place() {
    use civic_host::store::{CaseStore, SWEEP_PARTITIONS};
    use civic_tests::postgres::Postgres;
    let url = Postgres::shared().fresh_database();
    let config = PostgresConfig::new(&url).unwrap();
    let store = PostgresStore::open(&config).unwrap();
    store
        .record_put("tokens", &[("t".into(), b"kept".to_vec())])
        .unwrap();
    let (t0, day) = (1_796_000_400_000_i64, 86_400_000_i64);
    let case = dispatched_case(&store, t0);
    let counts = store
        .assessment("jiyang", t0 - day, t0 + 60 * day, t0)
        .unwrap();
    assert!(!counts.is_empty(), "the case has facts: {case:?}");
    drop(store);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sql = |statements: &'static str| {
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(statements).await.unwrap();
            client
                .query_one("SELECT value FROM civic_meta WHERE key = 'schema'", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        })
    };
    // What schema 1 was: no lease table.
    let was = sql("DROP TABLE civic_sweep_leases; DROP TABLE civic_facts; \
         UPDATE civic_meta SET value = 1 WHERE key = 'schema'");
    assert_eq!(was, 1);
    let store = PostgresStore::open(&config).unwrap();
    assert_eq!(
        store.record_get("tokens", "t").unwrap(),
        Some(b"kept".to_vec())
    );
    let held = store.sweep_leases("a", 0, 5_000).unwrap().unwrap();
    assert_eq!(held.len(), SWEEP_PARTITIONS as usize);
    assert_eq!(
        store
            .assessment("jiyang", t0 - day, t0 + 60 * day, t0)
            .unwrap(),
        counts,
        "the facts are derived from the histories"
    );
    let report = store.check_consistency().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop(store);
    assert_eq!(
        sql("SELECT 1"),
        civic_host::store::postgres::SCHEMA_VERSION,
        "the marker names the new schema"
    );
}

/// A case taken in and dispatched, as the service writes it.
fn dispatched_case(store: &dyn civic_host::store::CaseStore, t0: i64) -> civic_host::model::Case {
    use civic_host::model::{Action, Case, Deadlines, EventBody};
    use civic_host::store::{Change, Versioned};
    let c = Case::received(
        store.next_case_id().unwrap(),
        "jiyang".into(),
        "noise".into(),
        "t".into(),
        t0,
    );
    let mut read = store
        .create_case(Change {
            case: c,
            events: vec![],
        })
        .unwrap();
    for action in [
        Action::QueueForDispatch,
        Action::Dispatch {
            lead: "jiyang/yuehe/grid-01".into(),
            co_handlers: vec![],
            deadlines: Deadlines {
                sign_off: Some(t0 + 3_600_000),
                first_contact: Some(t0 + 7_200_000),
                resolution: Some(t0 + 20 * 86_400_000),
                warning: None,
            },
            timers: vec![],
        },
    ] {
        let next = civic_host::lifecycle::apply(&read, &action, t0).unwrap();
        let to = next.status;
        let event = EventBody::Transition {
            action,
            from: read.status,
            to,
        };
        let change = Change {
            case: next,
            events: vec![(t0, "t".into(), event)],
        };
        read = store
            .write(vec![Versioned {
                read: read.clone(),
                change,
                fence: None,
            }])
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
    }
    read
}
