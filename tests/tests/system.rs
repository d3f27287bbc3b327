//! The system routes through the real router: the OpenAPI document, `/healthz`,
//! `/metrics`, and how the server answers overload and slow requests.

use civic_tests::{TestServer, fixture, fixtures};
use serde_json::json;

#[tokio::test]
async fn openapi_health_and_metrics() {
    let s = TestServer::start();
    let doc = s
        .send("GET", "/v1/openapi.json", None, None, vec![])
        .await
        .json;
    for path in [
        "/v1/cases",
        "/v1/cases/{id}/return",
        "/v1/districts/{district}/plugins/{hook}/dry-run",
        "/v1/tokens/{id}",
        "/metrics",
        "/v1/me",
        "/v1/districts/{district}/overview",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["paths"]["/v1/districts/{district}/plugins/{hook}"]["put"]["requestBody"]["content"]["application/wasm"].is_object());
    // Bodies and queries are described by the types the handlers read.
    let schemas = &doc["components"]["schemas"];
    let new_case = &doc["paths"]["/v1/cases"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(new_case, "#/components/schemas/NewCase");
    assert_eq!(
        schemas["NewCase"]["additionalProperties"], false,
        "unknown fields are refused"
    );
    for field in [
        "district",
        "category",
        "location",
        "caller",
        "flags",
        "dispute",
        "description",
    ] {
        assert!(
            schemas["NewCase"]["properties"][field].is_object(),
            "NewCase.{field}"
        );
    }
    let ret = &doc["paths"]["/v1/cases/{id}/return"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    let ret = schemas[ret.as_str().unwrap().rsplit('/').next().unwrap()]["required"].clone();
    assert_eq!(ret, json!(["reason"]), "{ret}");
    let list = doc["paths"]["/v1/cases"]["get"]["parameters"]
        .as_array()
        .unwrap();
    for q in ["district", "status", "light", "order", "cursor", "limit"] {
        assert!(
            list.iter().any(|p| p["name"] == q && p["in"] == "query"),
            "query {q}"
        );
    }
    let open311 = &doc["paths"]["/open311/v2/{resource}"]["post"];
    assert!(open311["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert_eq!(
        open311["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Open311Errors"
    );
    assert_eq!(
        s.send("GET", "/healthz", None, None, vec![]).await.json["status"],
        "ok"
    );
    s.json(
        "POST",
        "/v1/cases",
        &s.admin,
        json!({"district": "jiyang", "category": "noise"}),
    )
    .await;
    let node = format!("node=\"{}\",", s.svc.node());
    let m = s.svc.metrics().render().replace(&node, "");
    assert!(m.contains("civic_decisions_total{district=\"jiyang\",hook=\"routing\",plugin=\"civic-plugin-jiyang\",outcome=\"decided\"} 1"), "{m}");
    assert!(
        m.contains("route=\"/v1/cases\""),
        "requests are labelled by matched route"
    );
}

#[tokio::test]
async fn overload_and_slow_requests_get_429_and_503() {
    use tower::ServiceExt;
    let s = TestServer::start();
    let admin = s.admin.clone();
    let get = |app: axum::Router, path: &'static str| {
        let admin = admin.clone();
        async move {
            let req = axum::http::Request::get(path)
                .header("authorization", format!("Bearer {admin}"))
                .body(axum::body::Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap().status().as_u16()
        }
    };
    let full = civic_host::api::app(
        s.svc.clone(),
        civic_host::api::ApiConfig {
            max_in_flight: 0,
            ..Default::default()
        },
    );
    assert_eq!(get(full.clone(), "/v1/me").await, 429);
    // Health checks have a pool of their own: a full API still says it is alive.
    assert_eq!(get(full, "/healthz").await, 200);
    assert_eq!(get(s.app.clone(), "/v1/me").await, 200);
    // A request slower than the request timeout: a dry run of a rule that spins for 1 s.
    let put = s
        .send(
            "PUT",
            "/v1/districts/yucai/plugins/routing?config=spin&fuel=2000000000&timeout_ms=1000",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    let v = put.json["version"].as_str().unwrap();
    let hasty = civic_host::api::app(
        s.svc.clone(),
        civic_host::api::ApiConfig {
            request_timeout: std::time::Duration::from_millis(100),
            ..Default::default()
        },
    );
    let body = serde_json::to_vec(
        &json!({"case": {"district": "yucai", "category": "noise"}, "version": v}),
    )
    .unwrap();
    let req = axum::http::Request::post("/v1/districts/yucai/plugins/routing/dry-run")
        .header("authorization", format!("Bearer {}", s.admin))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let resp = hasty.oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
}
