//! `civic serve --store postgres://…` as a process: killed with SIGKILL while clients take
//! cases in, started again, and every case it acknowledged is there; and `civic store
//! export | civic store import` moving a city from sled to PostgreSQL as an operator would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use civic_pg_harness::Postgres;

mod common;
use common::{civic, start_with};

/// One HTTP request on its own connection; `None` when the server is gone.
fn http(addr: &str, method: &str, path: &str, token: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_owned()))
}

#[test]
fn acknowledged_cases_survive_sigkill_of_the_server_on_postgres() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("civic-data");
    let mut server = start_with(&data, &["--store", &url]);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let addr = server.addr.clone();
    let acked = Mutex::new(Vec::<String>::new());
    let killed = AtomicBool::new(false);
    let in_flight = AtomicUsize::new(0);
    // Clients take cases in until the server is gone; it is killed once 60 cases have been
    // acknowledged, with requests still under way (a count, not a time).
    std::thread::scope(|s| {
        for t in 0..6 {
            let (addr, token, acked, killed, in_flight) =
                (&addr, &token, &acked, &killed, &in_flight);
            s.spawn(move || {
                for i in 0..2_000 {
                    if killed.load(Ordering::SeqCst) {
                        return;
                    }
                    let body = format!(
                        r#"{{"district":"jiyang","category":"noise","location":{{"grid":"jiyang/yuehe/grid-01"}},"caller":{{"phone":"1380000{t}{i:04}"}}}}"#
                    );
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    let answer = http(addr, "POST", "/v1/cases", token, &body);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match answer {
                        Some((201, b)) => {
                            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
                            acked.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
                        }
                        // Whatever a dying server answered was not an acknowledgement.
                        Some(_) if killed.load(Ordering::SeqCst) => return,
                        Some((status, b)) => panic!("intake before the kill: {status} {b}"),
                        None => return,
                    }
                }
            });
        }
        s.spawn(|| {
            loop {
                if acked.lock().unwrap().len() >= 60 && in_flight.load(Ordering::SeqCst) > 0 {
                    killed.store(true, Ordering::SeqCst);
                    // Child::kill sends SIGKILL.
                    server.child.kill().unwrap();
                    server.child.wait().unwrap();
                    return;
                }
                std::thread::yield_now();
            }
        });
    });
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() >= 60);

    let server = start_with(&data, &["--store", &url]);
    for id in &acked {
        let (status, body) = http(&server.addr, "GET", &format!("/v1/cases/{id}"), &token, "")
            .expect("the restarted server answers");
        assert_eq!(status, 200, "acknowledged case {id} lost: {body}");
    }
    drop(server);
    let check = civic(&["store", "check", "--store", &url]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(
        report["cases"].as_u64().unwrap() >= acked.len() as u64,
        "{report}"
    );
    assert_eq!(report["problems"], serde_json::json!([]));
}

#[test]
fn civic_store_export_and_import_move_a_city_from_sled_to_postgres_and_back() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("civic-data");
    let server = start_with(&data, &[]);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    for i in 0..12 {
        let body = format!(
            r#"{{"district":"jiyang","category":"noise","location":{{"grid":"jiyang/yuehe/grid-01"}},"caller":{{"phone":"139000000{i:02}"}}}}"#
        );
        assert_eq!(
            http(&server.addr, "POST", "/v1/cases", &token, &body)
                .unwrap()
                .0,
            201
        );
    }
    drop(server);

    let data_arg = data.to_str().unwrap();
    let mut export = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(["store", "export", "--data", data_arg])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let import = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(["store", "import", "--store", &url])
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success(), "the export failed");
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let said = String::from_utf8_lossy(&import.stderr);
    assert!(said.contains("imported 12 cases"), "{said}");

    // Back to a new sled store, from a file this time.
    let file = dir.path().join("city.jsonl");
    let out = civic(&[
        "store",
        "export",
        "--store",
        &url,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = dir.path().join("back");
    let sled = format!("sled:{}", back.join("store").display());
    let out = civic(&[
        "store",
        "import",
        "--store",
        &sled,
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let reports: Vec<serde_json::Value> = [
        vec!["store", "check", "--data", data_arg],
        vec!["store", "check", "--store", &url],
        vec!["store", "check", "--store", &sled],
    ]
    .iter()
    .map(|args| {
        let out = civic(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
    .collect();
    for r in &reports {
        assert_eq!(r["problems"], serde_json::json!([]));
        assert_eq!(
            (&r["cases"], &r["events"]),
            (&reports[0]["cases"], &reports[0]["events"])
        );
    }
    assert_eq!(reports[0]["cases"], 12);

    // Importing twice is refused, with a message that says why.
    let again = civic(&[
        "store",
        "import",
        "--store",
        &url,
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("without cases"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // The moved city serves: the server starts on the new sled store and finds a case.
    let server = start_with(&back, &[]);
    let (status, _) = http(&server.addr, "GET", "/v1/cases?limit=5", &token, "").unwrap();
    assert_eq!(status, 200, "the admin token moved with the city");
}

/// A `--store` that names no store is refused before anything is created, and one that
/// cannot be reached is refused with the address; neither ever prints the password.
#[test]
fn a_store_that_cannot_be_named_or_reached_is_refused_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for bad in [
        "bogus",
        "sled:",
        "mysql://civic:s3cret@db/civic",
        "postgres://civic:s3cret@db:notaport/civic",
    ] {
        let out = common::serve_command(&data)
            .args(["--store", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(err.contains("--store"), "{bad}: {err}");
        assert!(!err.contains("s3cret"), "{bad}: {err}");
    }
    assert!(!data.exists(), "nothing created for a store named wrongly");

    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://civic:s3cret@127.0.0.1:{port}/civic");
    let out = common::serve_command(&data)
        .args(["--store", &url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("could not open the store") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    for args in [
        vec!["store", "export", "--store", &url],
        vec!["admin", "token", "--store", &url],
    ] {
        let out = civic(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(!err.contains("s3cret"), "{args:?}: {err}");
    }
}
