//! Uploading plug-ins as a careless or hostile district admin would: limits above the
//! district cap, names that would inject metrics, a quota, a compile slower than the
//! request, and deleting what was never used.

use std::time::Duration;

use civic_host::api::ApiConfig;
use civic_tests::{TestServer, fixture, fixtures};

fn wasm() -> Vec<u8> {
    fixture(fixtures::FX_HOSTILE)
}

async fn put(s: &TestServer, token: &str, query: &str) -> civic_tests::Reply {
    s.send(
        "PUT",
        &format!("/v1/districts/jiyang/plugins/routing?{query}"),
        Some(token),
        Some("application/wasm"),
        wasm(),
    )
    .await
}

#[tokio::test]
async fn a_district_admin_cannot_set_limits_past_the_district_cap() {
    let s = TestServer::start();
    let da = s.token("district-admin", Some("jiyang"), None).await;
    for (q, what) in [
        (
            "fuel=2000000000",
            "fuel 2000000000 is over the 200000000 a district admin may set",
        ),
        (
            "timeout_ms=2000",
            "a time limit of (ms) 2000 is over the 500",
        ),
        ("memory_bytes=1000000000", "memory cap"),
    ] {
        let r = put(&s, &da, q).await;
        assert_eq!(r.status, 422, "{q}: {:?}", r.json);
        let msg = r.json["error"]["message"].as_str().unwrap();
        assert!(msg.contains(what), "{q}: {msg}");
    }
    // Within the cap, it deploys.
    let r = put(&s, &da, "fuel=100000000&timeout_ms=300").await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["limits"]["fuel"], 100_000_000);
    // The city admin may go up to the host's maxima, and no further.
    let admin = s.admin.clone();
    let r = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing?fuel=2000000000&timeout_ms=2000",
            Some(&admin),
            Some("application/wasm"),
            civic_plugin_bundle::get("civic-plugin-city-default")
                .unwrap()
                .component
                .to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let r = put(&s, &admin, "fuel=2000000001&config=third").await;
    assert_eq!(r.status, 422, "{:?}", r.json);
}

#[tokio::test]
async fn a_plugin_name_cannot_inject_metrics() {
    let s = TestServer::start();
    let admin = s.admin.clone();
    for name in ["x%22%7D%20civic_fake_total%201%0A", "Capital", "", "a%20b"] {
        let r = put(&s, &admin, &format!("name={name}")).await;
        assert_eq!(r.status, 422, "{name}: {:?}", r.json);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("must be 1-64 characters"),
            "{:?}",
            r.json
        );
    }
    // Made-up methods are counted under one label.
    for m in ["FOO", "BAR", "BAZ"] {
        s.send(m, "/healthz", None, None, vec![]).await;
    }
    let metrics = s.send_raw("GET", "/metrics", None, None, vec![]).await.1;
    assert!(!metrics.contains("civic_fake_total"), "{metrics}");
    assert!(!metrics.contains("method=\"FOO\""), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

#[tokio::test]
async fn uploads_have_a_quota_and_unused_versions_can_be_deleted() {
    let s = TestServer::start_with(|mut c| {
        c.upload_quota.versions = 4;
        c
    });
    let admin = s.admin.clone();
    let first = put(&s, &admin, "config=a").await;
    assert_eq!(first.status, 201, "{:?}", first.json);
    // jiyang already stores its three bundled versions (one per hook): that was the last.
    let r = put(&s, &admin, "config=b").await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    let msg = r.json["error"]["message"].as_str().unwrap();
    assert!(msg.contains("quota: 4 versions"), "{msg}");
    // A version that never ran can be deleted, which frees the quota.
    let v = first.json["version"].as_str().unwrap();
    let del = s
        .send(
            "DELETE",
            &format!("/v1/districts/jiyang/plugins/routing/versions/{v}"),
            Some(&admin),
            None,
            vec![],
        )
        .await;
    assert_eq!(del.status, 204, "{:?}", del.json);
    let r = put(&s, &admin, "config=b").await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    // The active version decided cases: it is kept for replay.
    let slot = s.get("/v1/districts/jiyang/plugins/routing", &admin).await;
    let active = slot.json["slot"]["active"].as_str().unwrap().to_owned();
    let del = s
        .send(
            "DELETE",
            &format!("/v1/districts/jiyang/plugins/routing/versions/{active}"),
            Some(&admin),
            None,
            vec![],
        )
        .await;
    assert_eq!(del.status, 409, "{:?}", del.json);
    assert!(
        del.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kept for replay")
    );
}

/// An upload whose compile outlasts the wait answers 202 with where to look; the final
/// answer — accepted with its record, or refused with its reason — is there afterwards.
#[tokio::test]
async fn a_slow_upload_answers_202_and_its_final_answer_can_be_read() {
    let api = ApiConfig {
        upload_wait: Duration::ZERO,
        ..ApiConfig::default()
    };
    let s = TestServer::start_with_api(|c| c, api);
    let admin = s.admin.clone();
    let poll = |url: String| {
        let s = &s;
        let admin = admin.clone();
        async move {
            loop {
                let r = s.get(&url, &admin).await;
                assert_eq!(r.status, 200, "{:?}", r.json);
                if r.json["status"] != "compiling" {
                    return r.json;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let r = put(&s, &admin, "config=slow").await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let done = poll(r.json["status_url"].as_str().unwrap().to_owned()).await;
    assert_eq!(done["status"], "accepted", "{done}");
    assert_eq!(done["record"]["config"], "slow");

    let refused = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing",
            Some(&admin),
            Some("application/wasm"),
            fixture(fixtures::FX_INCOMPATIBLE),
        )
        .await;
    assert_eq!(refused.status, 202, "{:?}", refused.json);
    let done = poll(refused.json["status_url"].as_str().unwrap().to_owned()).await;
    assert_eq!(done["status"], "refused", "{done}");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("civic:rules@0.9.0"),
        "{done}"
    );

    let none = s
        .get(
            &format!(
                "/v1/districts/jiyang/plugins/routing/uploads/{}",
                "0".repeat(64)
            ),
            &admin,
        )
        .await;
    assert_eq!(none.status, 404);
}
