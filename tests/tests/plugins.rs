//! `/v1/districts/{d}/plugins`: deploying, activating, rolling back, dry-runs, a failing
//! rule suspended, backtests and shadow candidates; and uploading as a careless or hostile
//! district admin would: limits above the district cap, names that would inject metrics, a
//! quota, a compile slower than the request, and deleting what was never used.

use std::time::Duration;

use civic_host::api::ApiConfig;
use civic_tests::{TestServer, fixture, fixtures, sample_cases};
use serde_json::json;

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

#[tokio::test]
async fn deploy_activate_roll_back_and_dry_run() {
    let s = TestServer::start();
    let hostile = fixture(fixtures::FX_HOSTILE);
    let put = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing?name=jiyang-desk-only&config=desk",
            Some(&s.admin),
            Some("application/wasm"),
            hostile.clone(),
        )
        .await;
    assert_eq!(put.status, 201, "{:?}", put.json);
    let version = put.json["version"].as_str().unwrap().to_owned();
    assert_eq!(put.json["deployed_by"].as_str().unwrap().len(), 13);
    let again = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing?name=jiyang-desk-only&config=desk",
            Some(&s.admin),
            Some("application/wasm"),
            hostile,
        )
        .await;
    assert_eq!(again.status, 200, "same bytes: the existing version");

    // Dry-run the candidate: routes to the desk; nothing is stored.
    let before = s.svc.store().case_count().unwrap();
    let body = json!({"case": {"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}}, "version": version});
    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/dry-run",
            &s.admin,
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["decision"]["lead"], "jiyang");
    assert_eq!(r.json["reasons"], json!(["route.desk"]));
    assert!(r.json["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(s.svc.store().case_count().unwrap(), before);
    // The active version still routes to the grid.
    assert_eq!(
        s.take_in("jiyang", "noise", "jiyang/yuehe/grid-01").await["handler"],
        "jiyang/yuehe/grid-01"
    );

    let r = s
        .json(
            "POST",
            &format!("/v1/districts/jiyang/plugins/routing/versions/{version}/activate"),
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["active"], version);
    assert_eq!(
        s.take_in("jiyang", "noise", "jiyang/yuehe/grid-01").await["handler"],
        "jiyang"
    );

    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/rollback",
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json["active"], version);
    assert_eq!(
        r.json["history"].as_array().unwrap().last().unwrap()["what"],
        "rolled-back"
    );
    assert_eq!(
        s.take_in("jiyang", "noise", "jiyang/yuehe/grid-01").await["handler"],
        "jiyang/yuehe/grid-01"
    );

    let list = s
        .get("/v1/districts/jiyang/plugins/routing", &s.admin)
        .await;
    assert_eq!(list.json["versions"].as_array().unwrap().len(), 2);
    // The same bytes with another configuration is not silently a new version.
    let put = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing?config=panic",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    assert_eq!(put.status, 409, "{:?}", put.json);
    // A dry run of a failing candidate reports the typed failure.
    let put = s
        .send(
            "PUT",
            "/v1/districts/yucai/plugins/routing?config=panic",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    let v = put.json["version"].as_str().unwrap();
    let body = json!({"case": {"district": "yucai", "category": "noise"}, "version": v});
    let r = s
        .json(
            "POST",
            "/v1/districts/yucai/plugins/routing/dry-run",
            &s.admin,
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["failure"]["code"], "trap");
    assert!(
        r.json["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("district rule exploded")
    );
    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/rollback",
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(
        r.status, 405,
        "a hook named `rollback` does not exist; POST is not a method of that route"
    );
    assert_eq!(r.json["error"]["code"], "method-not-allowed");
    let r = s
        .json(
            "POST",
            "/v1/districts/yucai/plugins/escalation/rollback",
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "nothing to roll back to: {:?}", r.json);
}

#[tokio::test]
async fn a_failing_rule_never_loses_a_case_and_is_suspended() {
    let s = TestServer::start_with(|mut c| {
        c.suspend_after = 3;
        c
    });
    let put = s
        .send(
            "PUT",
            "/v1/districts/tianya/plugins/routing?config=panic",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    let version = put.json["version"].as_str().unwrap().to_owned();
    s.json(
        "POST",
        &format!("/v1/districts/tianya/plugins/routing/versions/{version}/activate"),
        &s.admin,
        json!({}),
    )
    .await;
    for i in 0..3 {
        let r = s.json("POST", "/v1/cases", &s.admin, json!({"district": "tianya", "category": "sanitation", "location": {"grid": "tianya/xidao/grid-01"}})).await;
        assert_eq!(
            r.status, 201,
            "the case is stored even though routing failed"
        );
        assert_eq!(
            r.json["handler"], "tianya",
            "manual triage at the district desk (case {i})"
        );
        let h = s
            .get(
                &format!("/v1/cases/{}/history", r.json["id"].as_str().unwrap()),
                &s.admin,
            )
            .await;
        let failure = h.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["what"]["type"] == "rule-failure")
            .unwrap();
        assert_eq!(failure["what"]["failure"]["kind"], "trap");
        assert_eq!(failure["what"]["fallback"], "manual-triage");
    }
    // Suspended after 3 failures: tianya's own previous version takes over.
    let slot = s
        .get("/v1/districts/tianya/plugins/routing", &s.admin)
        .await;
    assert_eq!(slot.json["slot"]["suspended"], json!([version]));
    assert_eq!(
        slot.json["slot"]["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["what"],
        "suspended"
    );
    let c = s
        .take_in("tianya", "sanitation", "tianya/xidao/grid-01")
        .await;
    assert_eq!(c["handler"], "tianya/xidao/grid-01");
    let metrics = s.send("GET", "/metrics", None, None, vec![]).await;
    assert_eq!(metrics.status, 200);
}

#[tokio::test]
async fn backtest_compares_a_candidate_with_the_active_version() {
    let s = TestServer::start();
    for body in sample_cases() {
        s.json("POST", "/v1/cases", &s.admin, body).await;
    }
    // The candidate routes every case to the desk, and traps on noise complaints.
    let put = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing?config=panic-on-noise",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    let version = put.json["version"].as_str().unwrap().to_owned();
    let before = s.svc.store().case_count().unwrap();
    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/backtest",
            &s.admin,
            json!({"version": version}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let rep = &r.json;
    assert_eq!(rep["cases"], 5, "the five jiyang sample cases");
    assert_eq!(rep["evaluated"], 5);
    let failures = rep["failures"].as_array().unwrap();
    assert_eq!(
        failures.len(),
        1,
        "the noise case traps the candidate: {failures:?}"
    );
    assert_eq!(failures[0]["version"], "candidate");
    assert!(
        failures[0]["failure"]
            .as_str()
            .unwrap()
            .contains("noise breaks this rule")
    );
    assert_eq!(rep["changes"]["jiyang/yuehe/grid-01 → failure"], 1);
    assert_eq!(
        rep["changes"]["sanya/mediation/industry/labour → jiyang"],
        1
    );
    assert_eq!(rep["changed"], 5);
    assert!(rep["sample"][0]["active_reasons"].as_array().is_some());
    assert!(rep["fuel_active"]["max"].as_u64().unwrap() > 0);
    assert_eq!(
        s.svc.store().case_count().unwrap(),
        before,
        "a backtest stores nothing"
    );
    // The active version is untouched, and a time range outside the cases finds nothing.
    assert_eq!(
        s.get("/v1/districts/jiyang/plugins/routing", &s.admin)
            .await
            .json["slot"]["active"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/backtest",
            &s.admin,
            json!({"version": version, "to": 1000}),
        )
        .await;
    assert_eq!(r.json["cases"], 0);
    // The version as the tools print it (its first 12 hex digits) names it; fewer than 8
    // digits name nothing; a prefix two versions share is refused, naming both.
    let short = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/backtest",
            &s.admin,
            json!({"version": &version[..12]}),
        )
        .await;
    assert_eq!(short.status, 200, "{:?}", short.json);
    assert_eq!(short.json["changed"], 5);
    let tiny = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/backtest",
            &s.admin,
            json!({"version": &version[..6]}),
        )
        .await;
    assert_eq!(tiny.status, 404, "{:?}", tiny.json);
    // Two versions sharing 8 digits cannot be made by uploading; their records can.
    let twin = |tail: &str| format!("jiyang/routing/{}{tail}", &version[..8]);
    let record = s
        .svc
        .store()
        .record_get("plugin-versions", &format!("jiyang/routing/{version}"))
        .unwrap()
        .expect("the version's record");
    s.svc
        .store()
        .record_put(
            "plugin-versions",
            &[
                (twin(&"0".repeat(56)), record.clone()),
                (twin(&"1".repeat(56)), record),
            ],
        )
        .unwrap();
    let twins = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/backtest",
            &s.admin,
            json!({"version": &version[..8]}),
        )
        .await;
    assert_eq!(twins.status, 422, "{:?}", twins.json);
    let m = twins.json["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("matches 3 versions") && m.contains(&version) && m.contains("give more of it"),
        "{m}"
    );
    let t = s.token("dispatcher", Some("tianya"), None).await;
    assert_eq!(
        s.json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/backtest",
            &t,
            json!({"version": version})
        )
        .await
        .status,
        404
    );
}

/// A backtest reports what would actually happen. A candidate with no opinion on anything
/// is, in effect, the city default (which stands in for it at intake): its backtest shows
/// exactly the changes the city default's own component shows as a candidate — each with
/// the city default's outcome, marked as standing in, never "no opinion" — and each change
/// is classified as routing or deadline.
#[tokio::test]
async fn a_backtest_shows_what_the_city_default_does_where_a_candidate_has_no_opinion() {
    let s = TestServer::start();
    for body in sample_cases() {
        s.json("POST", "/v1/cases", &s.admin, body).await;
    }
    for body in [
        json!({"district": "jiyang", "category": "noise", "urgent": true, "location": {"grid": "jiyang/yuehe/grid-01"}}),
        json!({"district": "tianya", "category": "ev-charging", "location": {"grid": "tianya/xidao/grid-01"}}),
        json!({"district": "tianya", "category": "illegal-parking", "location": {"grid": "tianya/xidao/grid-01"}}),
    ] {
        s.json("POST", "/v1/cases", &s.admin, body).await;
    }
    let backtest = |district: &'static str, component: Vec<u8>, query: &'static str| {
        let s = &s;
        async move {
            let put = s
                .send(
                    "PUT",
                    &format!("/v1/districts/{district}/plugins/routing?{query}"),
                    Some(&s.admin),
                    Some("application/wasm"),
                    component,
                )
                .await;
            assert!(put.status == 201 || put.status == 200, "{:?}", put.json);
            let r = s
                .json(
                    "POST",
                    &format!("/v1/districts/{district}/plugins/routing/backtest"),
                    &s.admin,
                    json!({"version": put.json["version"], "sample": 200}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.json);
            r.json
        }
    };
    let city_default = civic_plugin_bundle::get("civic-plugin-city-default")
        .unwrap()
        .component
        .to_vec();
    for district in ["jiyang", "tianya"] {
        let silent = backtest(
            district,
            fixture(fixtures::FX_HOSTILE),
            "name=silent&config=no-opinion",
        )
        .await;
        let city = backtest(district, city_default.clone(), "name=city").await;
        assert_eq!(silent["changes"], city["changes"], "{district}: {silent}");
        assert_eq!(silent["by_kind"], city["by_kind"], "{district}");
        if district == "tianya" {
            // Tianya resolves e-bike charging within a working day; the city default does not.
            assert!(
                silent["by_kind"]["deadline"].as_u64().unwrap_or(0) >= 1,
                "{silent}"
            );
        }
        for c in silent["sample"].as_array().unwrap() {
            assert_eq!(c["candidate_by_city_default"], true, "{c}");
            assert_eq!(c["active_by_city_default"], false, "{c}");
            assert!(
                !c["candidate"].as_str().unwrap().contains("no opinion"),
                "{c}"
            );
            assert!(
                ["routing", "deadline"].contains(&c["kind"].as_str().unwrap()),
                "{c}"
            );
        }
        for key in silent["changes"].as_object().unwrap().keys() {
            assert!(!key.contains("no opinion"), "{key}");
        }
    }
}

/// Activation says what it replaces. Tianya's rules resolve e-bike charging within one
/// working day; a version with an opinion on nothing, activated there, hands every case to
/// the city default — and the activation's answer says so: the version it replaces, and
/// the e-bike case's deadline change on Tianya's past cases.
#[tokio::test]
async fn an_activation_says_what_it_replaces() {
    let s = TestServer::start();
    for body in [
        json!({"district": "tianya", "category": "ev-charging", "location": {"grid": "tianya/xidao/grid-01"}}),
        json!({"district": "tianya", "category": "noise", "location": {"grid": "tianya/xidao/grid-01"}}),
    ] {
        assert_eq!(
            s.json("POST", "/v1/cases", &s.admin, body).await.status,
            201
        );
    }
    let before = s
        .get("/v1/districts/tianya/plugins/routing", &s.admin)
        .await;
    let active = before.json["slot"]["active"].as_str().unwrap().to_owned();
    let put = s
        .send(
            "PUT",
            "/v1/districts/tianya/plugins/routing?name=careless&config=no-opinion",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    let version = put.json["version"].as_str().unwrap().to_owned();
    let act = s
        .json(
            "POST",
            &format!("/v1/districts/tianya/plugins/routing/versions/{version}/activate"),
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(act.status, 200, "{:?}", act.json);
    assert_eq!(act.json["active"], version.as_str(), "the slot, as before");
    let r = &act.json["replaced"];
    assert_eq!(r["version"], active.as_str(), "{r}");
    assert_eq!(r["city_default"], false);
    assert_eq!(r["compared"]["evaluated"], 2, "{r}");
    assert_eq!(r["compared"]["changed"], 1, "only the e-bike case: {r}");
    assert_eq!(r["compared"]["by_kind"]["deadline"], 1, "{r}");
    let change = &r["compared"]["sample"][0];
    assert_eq!(change["candidate_by_city_default"], true, "{change}");
    assert!(
        change["active_deadlines"]
            .as_str()
            .unwrap()
            .contains("resolution 1 working days"),
        "{change}"
    );
}

#[tokio::test]
async fn shadow_candidates_run_without_effect_and_are_promoted_in_one_call() {
    let s = TestServer::start();
    let put = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing?config=panic-on-noise",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    let version = put.json["version"].as_str().unwrap().to_owned();
    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/shadow",
            &s.admin,
            json!({"version": version}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["shadow"], version);
    let mut ids = Vec::new();
    for (category, grid) in [
        ("noise", "jiyang/yuehe/grid-01"),
        ("street-facilities", "jiyang/yuechuan/grid-01"),
        ("water-power", "jiyang/yuehe/grid-02"),
    ] {
        let r = s
            .json(
                "POST",
                "/v1/cases",
                &s.admin,
                json!({"district": "jiyang", "category": category, "location": {"grid": grid}}),
            )
            .await;
        assert_eq!(r.status, 201, "a trapping shadow breaks nothing");
        assert_ne!(
            r.json["handler"], "jiyang",
            "the active version decided, not the shadow"
        );
        ids.push(r.json["id"].as_str().unwrap().to_owned());
    }
    let st = s
        .get("/v1/districts/jiyang/plugins/routing/shadow", &s.admin)
        .await
        .json;
    assert_eq!(
        (
            st["evaluated"].as_u64(),
            st["disagreed"].as_u64(),
            st["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{st}"
    );
    let notes = st["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["case"] == ids[0].as_str()
            && n["candidate"]["failure"]
                .as_str()
                .unwrap()
                .contains("noise breaks this rule")),
        "{st}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n["case"] == ids[1].as_str() && n["candidate"]["lead"] == "jiyang"),
        "{st}"
    );
    for id in &ids {
        let h = s
            .get(&format!("/v1/cases/{id}/history"), &s.admin)
            .await
            .json
            .to_string();
        assert!(
            !h.contains(&version),
            "nothing of the shadow run is stored on the case"
        );
    }
    let r = s
        .json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/shadow/promote",
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["active"], version);
    assert_eq!(r.json["shadow"], json!(null));
    assert_eq!(
        r.json["history"].as_array().unwrap().last().unwrap()["what"],
        "promoted"
    );
    let c = s
        .take_in("jiyang", "water-power", "jiyang/yuehe/grid-02")
        .await;
    assert_eq!(c["handler"], "jiyang", "the promoted version now decides");
    assert_eq!(
        s.get("/v1/districts/jiyang/plugins/routing/shadow", &s.admin)
            .await
            .status,
        404
    );
    let disp = s.token("dispatcher", Some("jiyang"), None).await;
    assert_eq!(
        s.json(
            "POST",
            "/v1/districts/jiyang/plugins/routing/shadow",
            &disp,
            json!({"version": version})
        )
        .await
        .status,
        403
    );
}
