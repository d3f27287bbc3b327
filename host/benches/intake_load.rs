//! Load generator: drives `POST /v1/cases` over loopback against a real server (real
//! socket, durable acknowledgement) at 1, 16 and 64 concurrent keep-alive clients, with
//! the bundled Wasm plug-ins and again with the same rules compiled natively into the host.
//!
//! `cargo bench -p civic-host --bench intake_load` (env `LOAD_SECONDS`, default 5;
//! `LOAD_STORES=sled,postgres` also runs every row on the PostgreSQL engine, against a
//! cluster the benchmark starts itself, and measures that database's `pgbench` rate of
//! single-row inserts as the engine's ceiling; `LOAD_NATIVE=0` skips the native rows)

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use civic_host::api::{ApiConfig, app};
use civic_host::runtime::{Input, wit};
use civic_host::service::{NativeRules, Service, ServiceConfig};
use civic_rules_common::{CityDefault, District, Plugin as Rules};
use civic_rules_sdk as sdk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

// The same allocator as the `civic` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bundled district policies, natively.
struct Native;

thread_local! {
    static SANDBOX: sdk::testing::Sandbox = sdk::testing::Sandbox::from_json(common::DIRECTORY, common::CATEGORIES).unwrap();
}

fn to_sdk(c: &wit::Case, now: i64) -> sdk::Case {
    let mut b = sdk::testing::case(&c.district, &c.category)
        .id(&c.id)
        .caller(&c.caller_key)
        .created_at(c.created_at);
    if let Some(g) = &c.location.grid {
        b = b.grid(g);
    } else if let Some(cm) = &c.location.community {
        b = b.community(cm);
    }
    if let Some(d) = &c.dispute {
        let ch: Vec<Option<&str>> = d.party_chambers.iter().map(|x| x.as_deref()).collect();
        b = b.dispute(&d.dispute_type, d.amount, &ch);
    }
    let mut case = b.build();
    case.kind = match c.kind {
        wit::CaseKind::Consultation => sdk::CaseKind::Consultation,
        wit::CaseKind::Help => sdk::CaseKind::Help,
        wit::CaseKind::Complaint => sdk::CaseKind::Complaint,
        wit::CaseKind::Report => sdk::CaseKind::Report,
        wit::CaseKind::Suggestion => sdk::CaseKind::Suggestion,
        wit::CaseKind::Praise => sdk::CaseKind::Praise,
    };
    if c.urgency == wit::Urgency::Urgent {
        case.urgency = sdk::Urgency::Urgent;
    }
    let set = c.flags.names();
    let bits = wit::CaseFlags::all_names()
        .enumerate()
        .filter(|(_, n)| set.contains(n))
        .fold(0u16, |b, (i, _)| b | 1 << i);
    case.flags = sdk::CaseFlags::from_bits_retain(bits as _);
    case.eligibility = c.eligibility.as_ref().map(|e| sdk::EligibilityOutcome {
        grid_admissible: e.grid_admissible,
        mediation: e.mediation.as_ref().map(|m| sdk::Mediation {
            track: sdk::MediationTrack::Industry,
            unit: m.unit.clone(),
        }),
    });
    case.returned_by = c.returned_by.clone();
    case.updated_at = now;
    case
}

fn run<D: District>(
    case: &sdk::Case,
    routing: bool,
) -> (
    Option<sdk::EligibilityDecision>,
    Option<sdk::RoutingDecision>,
) {
    SANDBOX.with(|s| {
        if routing {
            (None, s.routing::<Rules<D>>(case).unwrap())
        } else {
            (s.eligibility::<Rules<D>>(case).unwrap(), None)
        }
    })
}

fn dispatch(
    case: &sdk::Case,
    routing: bool,
) -> (
    Option<sdk::EligibilityDecision>,
    Option<sdk::RoutingDecision>,
) {
    match case.district.as_str() {
        "yazhou" => run::<civic_plugin_yazhou::Yazhou>(case, routing),
        "jiyang" => run::<civic_plugin_jiyang::Jiyang>(case, routing),
        "tianya" => run::<civic_plugin_tianya::Tianya>(case, routing),
        "haitang" => run::<civic_plugin_haitang::Haitang>(case, routing),
        "yucai" => run::<civic_plugin_yucai::Yucai>(case, routing),
        _ => run::<CityDefault>(case, routing),
    }
}

fn span(s: sdk::Span) -> wit::Span {
    match s {
        sdk::Span::Minutes(m) => wit::Span::Minutes(m),
        sdk::Span::WorkingDays(d) => wit::Span::WorkingDays(d),
    }
}

impl NativeRules for Native {
    fn eligibility(&self, input: &Input<'_>) -> Option<wit::EligibilityDecision> {
        let e = dispatch(&to_sdk(input.case, input.now), false).0?;
        Some(wit::EligibilityDecision {
            admissibility: match e.admissibility {
                sdk::Admissibility::Admissible => wit::Admissibility::Admissible,
                sdk::Admissibility::Rejected(_) => wit::Admissibility::Rejected(wit::Rejection {
                    reason: wit::RejectionReason::OutOfScope,
                    related_case: None,
                }),
                sdk::Admissibility::Transferred(_) => {
                    wit::Admissibility::Transferred(wit::EmergencyLine::Police)
                }
            },
            grid_admissible: e.grid_admissible,
            mediation: e.mediation.map(|m| wit::Mediation {
                track: wit::MediationTrack::Industry,
                unit: m.unit,
            }),
            reasons: e.reasons,
        })
    }

    fn routing(&self, input: &Input<'_>) -> Option<wit::RoutingDecision> {
        let r = dispatch(&to_sdk(input.case, input.now), true).1?;
        Some(wit::RoutingDecision {
            lead: r.lead,
            co_handlers: r.co_handlers,
            deadlines: wit::DeadlineOverrides {
                sign_off: r.deadlines.sign_off.map(span),
                first_contact: r.deadlines.first_contact.map(span),
                resolution: r.deadlines.resolution.map(span),
                warning_percent: r.deadlines.warning_percent,
            },
            reasons: r.reasons,
        })
    }
}

/// A minimal HTTP/1.1 keep-alive client: enough to measure the server, nothing in the way.
struct Client {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends `request` (head and body) and returns the answer's status.
    async fn send(&mut self, request: &[u8]) -> u16 {
        self.stream.write_all(request).await.unwrap();
        self.buf.clear();
        loop {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&self.buf[..end])
                .unwrap()
                .to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if self.buf.len() >= end + 4 + len {
                return head[9..12].parse().unwrap();
            }
        }
    }
}

fn main() {
    civic_host::alloc::tune();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds: u64 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // Each sample case split around its caller's phone number, so a client builds a request
    // by concatenation: the generator shares the two cores with the server and should
    // spend them on sending, not on JSON.
    const PHONE: &str = "PHONE-GOES-HERE";
    let bodies: Vec<(String, String)> = include_str!("../../data/sample-cases.jsonl")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut body: serde_json::Value = serde_json::from_str(l).unwrap();
            body["caller"] = serde_json::json!({ "phone": PHONE });
            let text = body.to_string();
            let (before, after) = text.split_once(PHONE).unwrap();
            (before.to_owned(), after.to_owned())
        })
        .collect();
    // LOAD_TARGET=ADDR LOAD_TOKEN=TOKEN: drive a running `civic serve` (say, on a store of
    // a million cases) at LOAD_CLIENTS clients, printing one row every LOAD_SECONDS, until
    // LOAD_ROWS rows; the server's memory is read from outside meanwhile.
    if let Ok(target) = std::env::var("LOAD_TARGET") {
        let addr: Vec<std::net::SocketAddr> = target
            .split(',')
            .map(|a| a.parse().expect("LOAD_TARGET=HOST:PORT[,HOST:PORT…]"))
            .collect();
        let token = std::env::var("LOAD_TOKEN").expect("LOAD_TOKEN, an admin token");
        let env_or = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default)
        };
        let (clients, rows) = (env_or("LOAD_CLIENTS", 64), env_or("LOAD_ROWS", 1));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Each row's callers differ from the earlier rows' (their numbers start further on).
        for row in 0..rows {
            let (rate, p50, p90, p99, max) = rt.block_on(drive(
                &addr,
                &token,
                &bodies,
                clients,
                seconds,
                row * 50_000,
            ));
            println!(
                "row {row}: {clients} clients {rate:.0} cases/s p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} max {max:.2} ms"
            );
        }
        return;
    }
    // LOAD_HOSTS=1,2,3: that many `civic serve` processes on one PostgreSQL database (a
    // fresh one per row, on a cluster started here), 64 clients spread over them.
    if let Ok(counts) = std::env::var("LOAD_HOSTS") {
        let pg = civic_pg_harness::Postgres::start();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        println!(
            "POST /v1/cases, 64 clients spread over N hosts on one database, {seconds} s per row"
        );
        for n in counts
            .split(',')
            .map(|n| n.parse::<usize>().expect("LOAD_HOSTS=1,2,3"))
        {
            let url = pg.fresh_database();
            let dirs: Vec<tempfile::TempDir> =
                (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
            // The first initialises the store alone, then the others.
            let hosts: Vec<Host> = dirs
                .iter()
                .enumerate()
                .map(|(i, d)| Host::start(d.path(), &url, &format!("h{i}")))
                .collect();
            let token = std::fs::read_to_string(dirs[0].path().join("admin-token"))
                .unwrap()
                .trim()
                .to_owned();
            let addrs: Vec<std::net::SocketAddr> = hosts.iter().map(|h| h.addr).collect();
            let (rate, p50, p90, p99, max) =
                rt.block_on(drive(&addrs, &token, &bodies, 64, seconds, 0));
            println!(
                "{n} host(s): {rate:.0} cases/s p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} max {max:.2} ms"
            );
        }
        return;
    }
    let stores: Vec<String> = std::env::var("LOAD_STORES")
        .unwrap_or_else(|_| "sled".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let natives: &[bool] = if std::env::var("LOAD_NATIVE").as_deref() == Ok("0") {
        &[false]
    } else {
        &[false, true]
    };
    let pg = stores
        .iter()
        .any(|s| s == "postgres")
        .then(civic_pg_harness::Postgres::start);
    println!("POST /v1/cases over loopback, durable acknowledgement, {seconds} s per row");
    println!(
        "{:<9} {:<8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "store", "rules", "clients", "cases/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (store, native) in stores
        .iter()
        .flat_map(|s| natives.iter().map(move |n| (s.as_str(), *n)))
    {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServiceConfig::new(dir.path());
        if store == "postgres" {
            let url = pg.as_ref().unwrap().fresh_database();
            config.store = civic_host::store::StoreConfig::parse(&url).unwrap();
        }
        // Diagnosis only: LOAD_DURABILITY=unsafe shows what the flushes cost.
        if std::env::var("LOAD_DURABILITY").as_deref() == Ok("unsafe")
            && let Some(sled) = config.sled_mut()
        {
            sled.durability = civic_host::store::sled::Durability::Unsafe;
        }
        let mut svc = Service::open_default(&config).unwrap();
        let token = svc.bootstrap(dir.path()).unwrap().admin_token.unwrap();
        if native {
            svc.set_native(Arc::new(Native));
        }
        let svc = Arc::new(svc);
        let svc_metrics = svc.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move {
                axum::serve(listener, app(svc, ApiConfig::default()))
                    .await
                    .unwrap()
            });
            addr
        });
        for clients in [1usize, 16, 64] {
            let (rate, p50, p90, p99, max) =
                rt.block_on(drive(&[addr], &token, &bodies, clients, seconds, 0));
            println!(
                "{store:<9} {:<8} {clients:>8} {rate:>10.0} {p50:>9.2} {p90:>9.2} {p99:>9.2} {max:>9.2}",
                if native { "native" } else { "wasm" }
            );
        }
        if std::env::var("LOAD_METRICS").is_ok() {
            for l in svc_metrics.metrics().render().lines().filter(|l| {
                l.starts_with("civic_decision_duration_seconds_sum")
                    || l.starts_with("civic_decision_duration_seconds_count")
            }) {
                println!("  {l}");
            }
        }
        rt.shutdown_timeout(Duration::from_secs(1));
    }
    if let Some(pg) = &pg {
        pgbench(pg, seconds);
    }
}

/// The database's own ceiling: `pgbench` committing single-row inserts of a case-sized
/// row (1.5 KB) in autocommit, at 1, 16 and 64 clients, on the same cluster.
fn pgbench(pg: &civic_pg_harness::Postgres, seconds: u64) {
    let url = pg.fresh_database();
    let bin = civic_pg_harness::bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("insert.sql");
    std::fs::write(
        &script,
        "\\set id random(1, 2000000000)\nINSERT INTO bench_insert (id, body) VALUES (:id, repeat('x', 1500)) ON CONFLICT DO NOTHING;\n",
    )
    .unwrap();
    let psql = std::process::Command::new(bin.join("psql"))
        .args([
            &url,
            "-c",
            "CREATE TABLE bench_insert (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
        ])
        .output()
        .unwrap();
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    println!(
        "pgbench: single-row inserts of 1.5 KB in autocommit, same cluster, {seconds} s per row"
    );
    for clients in [1, 16, 64] {
        let out = std::process::Command::new(bin.join("pgbench"))
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &seconds.to_string(),
                "-f",
            ])
            .arg(&script)
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let tps = text
            .lines()
            .find(|l| l.starts_with("tps"))
            .unwrap_or("tps = ? (no result)");
        let lat = text
            .lines()
            .find(|l| l.starts_with("latency average"))
            .unwrap_or("");
        println!("pgbench   {clients:>3} clients  {tps}  {lat}");
    }
}

/// Drives `POST /v1/cases` at `addrs` (client `c` at `addrs[c % len]`) from `clients`
/// keep-alive connections for `seconds`;
/// the rate and the latency quantiles (p50, p90, p99, max) in milliseconds. Callers'
/// numbers count from `first`, so rows do not repeat each other's callers.
async fn drive(
    addrs: &[std::net::SocketAddr],
    token: &str,
    bodies: &[(String, String)],
    clients: usize,
    seconds: u64,
    first: usize,
) -> (f64, f64, f64, f64, f64) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (token, bodies) = (token.to_owned(), bodies.to_vec());
        let addr = addrs[c % addrs.len()];
        tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut lat = Vec::new();
                let mut i = first + c;
                let mut request = Vec::with_capacity(2048);
                while Instant::now() < deadline {
                    // Every call from a different caller, as on a real hotline:
                    // numbers unique per row too, or a later row's calls would be
                    // the earlier rows' callers calling again (repeat checks, repeat
                    // escalations) and the rows would not measure the same work.
                    let (before, after) = &bodies[i % bodies.len()];
                    let phone = format!("1{clients:02}{c:02}{i:06}");
                    let length = before.len() + phone.len() + after.len();
                    request.clear();
                    write!(
                        request,
                        "POST /v1/cases HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{before}{phone}{after}"
                    )
                    .unwrap();
                    let t = Instant::now();
                    let status = client.send(&request).await;
                    assert_eq!(status, 201);
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    let q =
        |f: f64| all[((all.len() as f64 * f) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    (rate, q(0.5), q(0.9), q(0.99), q(1.0))
}

/// A `civic serve` process on a database; killed when dropped.
struct Host {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Host {
    /// Starts the real binary and waits until it listens.
    fn start(data: &std::path::Path, url: &str, node: &str) -> Host {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_civic"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--node",
                node,
                "--store",
                url,
            ])
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        for line in out.lines() {
            if let Some(a) = line
                .unwrap()
                .strip_prefix("civic-rules listening on http://")
            {
                return Host {
                    child,
                    addr: a.parse().unwrap(),
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("host {node} did not start");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
