//! Hostile and careless clients over a real socket and through the router: slow bodies
//! without a token, silent connections, malformed paths, forms and bodies. Each answers in
//! the API's error format, and none keeps authenticated clients or health checks out.

use std::time::Duration;

use civic_host::api::{ApiConfig, ServerConfig};
use civic_tests::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves `s`'s service on a loopback socket with `api` limits and a short header
/// deadline; returns the address.
async fn listen(s: &TestServer, api: ApiConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = civic_host::api::app(s.svc.clone(), api);
    let config = ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    tokio::spawn(civic_host::api::serve(
        listener,
        app,
        config,
        std::future::pending(),
    ));
    addr
}

/// One request on a fresh connection; returns the status.
async fn request(addr: &str, head: &str) -> u16 {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Many unauthenticated clients trickling an Open311 body fill only the anonymous pool:
/// while they hang on, an authenticated request and a health check are answered, and one
/// more anonymous request is turned away with 429.
#[tokio::test]
async fn slow_anonymous_bodies_keep_no_one_else_out() {
    let s = TestServer::start();
    let api = ApiConfig {
        anonymous_in_flight: 20,
        per_client_in_flight: 1000,
        body_frame_timeout: Duration::from_secs(60),
        ..ApiConfig::default()
    };
    let addr = listen(&s, api).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(
            b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nservice_code=",
        )
        .await
        .unwrap();
        slow.push(c);
    }
    // Let the server take them all in (each holds an anonymous slot while its body trickles).
    let mut turned_away = 0;
    for _ in 0..200 {
        let st = request(
            &addr,
            "GET /open311/v2/services.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        if st == 429 {
            turned_away += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(turned_away, 1, "the anonymous pool is full");
    let me = request(
        &addr,
        &format!(
            "GET /v1/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            s.admin
        ),
    )
    .await;
    assert_eq!(me, 200, "authenticated clients are still served");
    let health = request(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(health, 200, "health checks are still answered");
    drop(slow);
}

/// One address may hold only so many anonymous requests.
#[tokio::test]
async fn one_address_holds_only_its_share_of_anonymous_requests() {
    let s = TestServer::start();
    let api = ApiConfig {
        per_client_in_flight: 3,
        body_frame_timeout: Duration::from_secs(60),
        ..ApiConfig::default()
    };
    let addr = listen(&s, api).await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na")
            .await
            .unwrap();
        slow.push(c);
    }
    let mut status = 0;
    for _ in 0..200 {
        status = request(
            &addr,
            "GET /open311/v2/services.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        if status == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 429);
    drop(slow);
}

/// A body that stops arriving is cut off, and its slot freed.
#[tokio::test]
async fn a_stalled_body_is_cut_off() {
    let s = TestServer::start();
    let api = ApiConfig {
        body_frame_timeout: Duration::from_millis(200),
        ..ApiConfig::default()
    };
    let addr = listen(&s, api).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nservice_code=")
        .await
        .unwrap();
    let mut out = Vec::new();
    // The server answers (400) and closes; no time bound is asserted.
    c.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains("\"description\""),
        "Open311's error format: {text}"
    );
}

/// A connection that never sends its headers is closed by the server.
#[tokio::test]
async fn a_silent_connection_is_closed() {
    let s = TestServer::start();
    let addr = listen(&s, ApiConfig::default()).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    // Ends (0 bytes or a reset) once the 1 s header deadline passes.
    let n = c.read(&mut buf).await.unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
}

#[tokio::test]
async fn malformed_requests_answer_in_the_error_format() {
    let s = TestServer::start();
    let admin = s.admin.clone();
    // A path that is not UTF-8.
    let r = s.get("/v1/cases/%FF", &admin).await;
    assert_eq!(r.status, 400, "{:?}", r.json);
    assert_eq!(r.json["error"]["code"], "bad-request");
    // An Open311 form over the limit.
    let big = vec![b'a'; 70 * 1024];
    let (st, body) = s
        .send_raw(
            "POST",
            "/open311/v2/requests.json",
            None,
            Some("application/x-www-form-urlencoded"),
            big,
        )
        .await;
    assert_eq!(st, 413, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["code"], 413, "{body}");
    // Not a form.
    let (st, body) = s
        .send_raw(
            "POST",
            "/open311/v2/requests.json",
            None,
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(st, 415, "{body}");
    // A form that is not UTF-8 once decoded.
    let (st, body) = s
        .send_raw(
            "POST",
            "/open311/v2/requests.json",
            None,
            Some("application/x-www-form-urlencoded"),
            format!("api_key={admin}&service_code=noise&description=%FF%FE").into_bytes(),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("UTF-8"), "{body}");
    // Unknown fields in a dry run.
    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/dry-run",
            &admin,
            serde_json::json!({"case": {"district": "jiyang", "category": "noise"}, "surprise": 1}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.json);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("surprise")
    );
    // NUL in a description, an oversized chamber.
    let r = s
        .json(
            "POST",
            "/v1/cases",
            &admin,
            serde_json::json!({"district": "jiyang", "category": "noise", "description": "a\u{0}b"}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("U+0000")
    );
    let r = s
        .json(
            "POST",
            "/v1/cases",
            &admin,
            serde_json::json!({"district": "jiyang", "category": "wage-arrears",
                "dispute": {"type": "labour", "chambers": ["x".repeat(5000)]}}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.json);
}

/// An empty reason is a bad request (422), not a conflict with the case's state.
#[tokio::test]
async fn an_empty_return_reason_is_a_validation_error() {
    let s = TestServer::start();
    let admin = s.admin.clone();
    let c = s
        .json(
            "POST",
            "/v1/cases",
            &admin,
            serde_json::json!({"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}}),
        )
        .await;
    let id = c.json["id"].as_str().unwrap();
    let r = s
        .json(
            "POST",
            &format!("/v1/cases/{id}/return"),
            &admin,
            serde_json::json!({"reason": "  "}),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    // Still a conflict when the state is wrong.
    let r = s
        .json(
            "POST",
            &format!("/v1/cases/{id}/close"),
            &admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.json);
}

/// The city slot's dry run runs a district's eligibility plug-in for the case's district:
/// a dispatcher may use it only with a case of its own district.
#[tokio::test]
async fn a_city_slot_dry_run_with_another_districts_case_is_not_found() {
    let s = TestServer::start();
    let d = s.token("dispatcher", Some("jiyang"), None).await;
    let body =
        |district: &str| serde_json::json!({"case": {"district": district, "category": "noise"}});
    let r = s
        .json(
            "POST",
            "/v1/districts/city/plugins/routing/dry-run",
            &d,
            body("tianya"),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.json);
    let r = s
        .json(
            "POST",
            "/v1/districts/city/plugins/routing/dry-run",
            &d,
            body("jiyang"),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

/// Rules see only the caller's cases in the case's own district; the history shows no
/// case of another district.
#[tokio::test]
async fn a_decision_input_names_no_case_of_another_district() {
    let s = TestServer::start();
    let admin = s.admin.clone();
    let take = |district: &'static str, grid: &'static str| {
        let s = &s;
        let admin = admin.clone();
        async move {
            s.json(
                "POST",
                "/v1/cases",
                &admin,
                serde_json::json!({"district": district, "category": "noise",
                    "location": {"grid": grid}, "caller": {"phone": "13999999999"}}),
            )
            .await
            .json["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let elsewhere = take("tianya", "tianya/maling/grid-01").await;
    let here_before = take("jiyang", "jiyang/yuehe/grid-01").await;
    let here = take("jiyang", "jiyang/yuehe/grid-02").await;
    let d = s.token("dispatcher", Some("jiyang"), None).await;
    let h = s.get(&format!("/v1/cases/{here}/history"), &d).await;
    let text = h.json.to_string();
    assert!(
        text.contains(&here_before),
        "the district's own earlier case is there"
    );
    assert!(!text.contains(&elsewhere), "tianya's case is not: {text}");
}
