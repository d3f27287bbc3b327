//! The PostgreSQL the tests start themselves: a real server from `initdb`, run as an
//! unprivileged user, on loopback, gone with its folder when the harness is dropped.

use civic_tests::postgres::Postgres;

/// The uid a process runs as, from `/proc`.
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_cluster_starts_serves_serializable_transactions_and_is_removed() {
    let pg = Postgres::start();
    let pid = pg.pid();
    let dir = pg.dir().to_owned();
    assert!(dir.join("data/PG_VERSION").exists());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_ne!(uid_of(pid), Some(0), "PostgreSQL must not run as root");
    }

    let (mut client, conn) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}; log: {}", pg.log()));
    let conn = tokio::spawn(conn);
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version.starts_with("15."), "{version}");
    client
        .batch_execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INT NOT NULL)")
        .await
        .unwrap();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::Serializable)
        .start()
        .await
        .unwrap();
    tx.execute("INSERT INTO t VALUES ('c-1', 1)", &[])
        .await
        .unwrap();
    let level: String = tx
        .query_one("SHOW transaction_isolation", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(level, "serializable");
    tx.commit().await.unwrap();
    let n: i32 = client
        .query_one("SELECT n FROM t WHERE id = 'c-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop(client);
    let _ = conn.await;

    drop(pg);
    assert!(!dir.exists(), "the cluster's folder is removed");
    assert!(
        uid_of(pid).is_none(),
        "the server is stopped (pid {pid} still runs)"
    );
}
