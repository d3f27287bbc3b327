//! Several `civic serve` processes on one PostgreSQL database, as a province runs them
//! behind one address: every host answers every request the same, a change made through
//! one (a plug-in activated, a token revoked) is in force on the others, the repeat rule
//! counts cases taken in on different hosts, a timer due while three hosts sweep fires
//! once, and a host killed mid-intake loses no acknowledged case.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use civic_pg_harness::Postgres;
use serde_json::Value;

mod common;
use common::{Server, http, start_with};

/// Hosts `a`, `b`, `c` on one database, each with its own data directory (the compiled
/// plug-in cache is per host); `a` starts first and initialises the store.
struct Hosts {
    servers: Vec<Server>,
    token: String,
    _dirs: Vec<tempfile::TempDir>,
}

fn three_hosts(url: &str) -> Hosts {
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for node in ["a", "b", "c"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("civic-data");
        servers.push(start_with(&data, &["--store", url, "--node", node]));
        if node != "a" {
            assert!(
                servers.last().unwrap().token_line.is_none(),
                "host {node} created a second admin token"
            );
            assert!(!data.join("admin-token").exists());
        }
        dirs.push(dir);
    }
    let token = std::fs::read_to_string(dirs[0].path().join("civic-data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    Hosts {
        servers,
        token,
        _dirs: dirs,
    }
}

impl Hosts {
    fn addr(&self, i: usize) -> &str {
        &self.servers[i].addr
    }
}

/// Asks until `ok` holds for the answer, for at most `within` (a change on another host
/// is in force after that host's next read of the store, every half second).
fn eventually(within: Duration, what: &str, mut ask: impl FnMut() -> (bool, String)) {
    let until = Instant::now() + within;
    loop {
        let (ok, said) = ask();
        if ok {
            return;
        }
        assert!(Instant::now() < until, "{what}: still {said}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `PUT` of a component, as `civic plugin deploy` sends it.
fn put_wasm(addr: &str, path: &str, token: &str, bytes: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    )
    .unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn case_body(district: &str, grid: &str, category: &str, phone: &str) -> String {
    format!(
        r#"{{"district":"{district}","category":"{category}","location":{{"grid":"{grid}"}},"caller":{{"phone":"{phone}"}}}}"#
    )
}

#[test]
fn every_host_answers_the_same_and_follows_the_others_changes() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let hosts = three_hosts(&url);
    let token = hosts.token.clone();

    // Each host says who it is.
    let mut nodes = Vec::new();
    for i in 0..3 {
        let (status, health) = http(hosts.addr(i), "GET", "/healthz", "", "");
        assert_eq!(status, 200, "{health}");
        nodes.push(health["node"].as_str().unwrap().to_owned());
        let (_, metrics) = raw_get(hosts.addr(i), "/metrics");
        assert!(
            metrics.contains(&format!("node=\"{}\"", nodes[i])),
            "host {i}'s metrics do not say whose they are"
        );
    }
    assert_eq!(nodes, ["a", "b", "c"]);

    // Intake spread over the three; any host reads any case, ids never collide.
    let mut ids = Vec::new();
    for n in 0..30 {
        let body = case_body(
            "yazhou",
            "yazhou/port/grid-01",
            "maritime-fishing",
            &format!("1390000{n:04}"),
        );
        let (status, created) = http(hosts.addr(n % 3), "POST", "/v1/cases", &token, &body);
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "two hosts gave one id: {ids:?}");
    for (n, id) in ids.iter().enumerate() {
        let (status, case) = http(
            hosts.addr((n + 1) % 3),
            "GET",
            &format!("/v1/cases/{id}"),
            &token,
            "",
        );
        assert_eq!(status, 200, "{case}");
        assert_eq!(case["handler"], "yazhou/port-station", "{case}");
    }

    // The repeat rule counts one caller's cases whichever host took them in; the third is
    // escalated by a sweep (three hosts sweep) exactly once.
    let repeat = case_body("yucai", "yucai/qingfa/grid-01", "noise", "13700000077");
    let third: Vec<String> = (0..3)
        .map(|i| {
            let (status, created) = http(hosts.addr(i), "POST", "/v1/cases", &token, &repeat);
            assert_eq!(status, 201, "{created}");
            created["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let third = &third[2];
    eventually(Duration::from_secs(30), "the repeat escalated", || {
        let (_, case) = http(
            hosts.addr(0),
            "GET",
            &format!("/v1/cases/{third}"),
            &token,
            "",
        );
        (case["supervised_by"] == "yucai", case.to_string())
    });
    // Every host swept it again meanwhile; the escalation is in the history once.
    for i in 0..3 {
        let (_, health) = http(hosts.addr(i), "GET", "/healthz", "", "");
        assert_eq!(health["sweeper"]["status"], "ok", "{health}");
    }
    let (status, history) = http(
        hosts.addr(1),
        "GET",
        &format!("/v1/cases/{third}/history"),
        &token,
        "",
    );
    assert_eq!(status, 200, "{history}");
    let text = history.to_string();
    let events = history["events"].as_array().expect("events");
    let count = |f: &dyn Fn(&Value) -> bool| events.iter().filter(|e| f(&e["what"])).count();
    assert_eq!(
        count(&|w| w["type"] == "escalation" && w["action"] == "supervise"),
        1,
        "escalated other than once: {text}"
    );
    assert_eq!(
        count(&|w| w["type"] == "decision" && w["hook"] == "escalation"),
        1,
        "the repeat timer fired other than once: {text}"
    );

    // A plug-in deployed and activated through host a decides a case host c takes in.
    let city = civic_plugin_bundle::all()
        .into_iter()
        .find(|b| b.district.is_none())
        .expect("the city default is bundled");
    let (status, deployed) = put_wasm(
        hosts.addr(0),
        "/v1/districts/jiyang/plugins/routing?name=jiyang-override",
        &token,
        city.component,
    );
    assert!(status == 201 || status == 202, "{status} {deployed}");
    let version = deployed["version"].as_str().unwrap_or_default().to_owned();
    let version = if version.is_empty() {
        // A large upload compiles in the background: its status names the version.
        let key = deployed["upload"]
            .as_str()
            .expect("an upload key")
            .to_owned();
        let mut v = String::new();
        eventually(Duration::from_secs(60), "the upload compiled", || {
            let (_, up) = http(hosts.addr(0), "GET", &key, &token, "");
            v = up["version"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (!v.is_empty(), up.to_string())
        });
        v
    } else {
        version
    };
    let (status, slot) = http(
        hosts.addr(0),
        "POST",
        &format!("/v1/districts/jiyang/plugins/routing/versions/{version}/activate"),
        &token,
        "",
    );
    assert_eq!(status, 200, "{slot}");
    let jiyang = case_body("jiyang", "jiyang/yuehe/grid-01", "noise", "13600000001");
    eventually(
        Duration::from_secs(30),
        "host c deciding with the version activated on host a",
        || {
            let (status, case) = http(hosts.addr(2), "POST", "/v1/cases", &token, &jiyang);
            assert_eq!(status, 201, "{case}");
            let routing = case["decisions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["hook"] == "routing")
                .cloned()
                .unwrap_or_default();
            (
                routing["plugin"] == "jiyang-override" && routing["version"] == version,
                routing.to_string(),
            )
        },
    );

    // A token issued on host b works on c; revoked on a, it stops working on c.
    let (status, issued) = http(
        hosts.addr(1),
        "POST",
        "/v1/tokens",
        &token,
        r#"{"name":"desk","role":"dispatcher","district":"jiyang"}"#,
    );
    assert_eq!(status, 201, "{issued}");
    let secret = issued["secret"].as_str().expect("the secret").to_owned();
    let id = issued["token"]["id"].as_str().expect("the id").to_owned();
    let (status, _) = http(
        hosts.addr(2),
        "GET",
        "/v1/cases?district=jiyang",
        &secret,
        "",
    );
    assert_eq!(status, 200);
    let (status, revoked) = http(
        hosts.addr(0),
        "DELETE",
        &format!("/v1/tokens/{id}"),
        &token,
        "",
    );
    assert!(status == 200 || status == 204, "{status} {revoked}");
    eventually(
        Duration::from_secs(30),
        "the revoked token refused on host c",
        || {
            let (status, body) = http(
                hosts.addr(2),
                "GET",
                "/v1/cases?district=jiyang",
                &secret,
                "",
            );
            (status == 401, format!("{status} {body}"))
        },
    );
}

/// A plain `GET` without a token; the status and the body as text.
fn raw_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}
