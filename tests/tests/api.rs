//! The HTTP API through the real router, in-process: intake routes the sample cases as the
//! bundled rules say, every lifecycle action, deployment, dry-runs, bad input.

use civic_tests::{TestServer, fixture, fixtures, sample_cases};
use serde_json::json;

/// Where each sample case (in file order) must go under the bundled plug-ins.
const EXPECTED: [(&str, &[&str]); 20] = [
    ("jiyang/yuehe/grid-01", &[]),
    ("jiyang/jinjilinglu/grid-02", &[]),
    ("jiyang/yuechuan/grid-01", &[]),
    ("sanya/mediation/industry/labour", &[]),
    ("tianya/danzhoucun/grid-01", &[]),
    ("sanya/mediation/industry/tourism", &[]),
    ("tianya/maling/grid-01", &[]),
    ("sanya/mediation/industry/rental", &[]),
    ("haitang/longjiang", &[]),
    ("haitang/dept/housing", &[]),
    (
        "haitang/longjiang/mediation",
        &["haitang/longjiang/grid-02"],
    ),
    ("yazhou/port-station", &[]),
    ("sanya/mediation/industry/fishery", &[]),
    ("sanya/mediation/industry/consumer", &[]),
    ("sanya/mediation/chamber/fujian", &[]),
    ("yucai/dept/ecology", &[]),
    ("yucai", &[]),
    ("yucai/maliang/mediation", &[]),
    ("sanya/mediation/industry/medical", &[]),
    (
        "sanya/mediation/industry/property",
        &["tianya/danzhoucun/grid-02"],
    ),
];

#[tokio::test]
async fn intake_routes_the_sample_cases_as_the_bundled_rules_say() {
    let s = TestServer::start();
    for (i, (body, (lead, co))) in sample_cases().into_iter().zip(EXPECTED).enumerate() {
        let r = s.json("POST", "/v1/cases", &s.admin, body.clone()).await;
        assert_eq!(r.status, 201, "sample {i}: {:?}", r.json);
        assert_eq!(
            r.json["handler"],
            *lead,
            "sample {} ({} in {})",
            i + 1,
            body["category"],
            body["district"]
        );
        assert_eq!(r.json["co_handlers"], json!(co), "sample {}", i + 1);
        assert_eq!(r.json["status"], "dispatched");
        assert!(
            r.json["deadlines"]["resolution"].as_i64().unwrap()
                > r.json["created_at"].as_i64().unwrap()
        );
        let decisions = r.json["decisions"].as_array().unwrap();
        assert_eq!(decisions.len(), 2, "eligibility and routing recorded");
        assert!(
            decisions
                .iter()
                .all(|d| !d["reasons"].as_array().unwrap().is_empty())
        );
        assert!(
            r.json.get("caller").is_none() && !r.json.to_string().contains("138000000"),
            "the phone number is never stored"
        );
    }
    // Every decision replays identically.
    for i in 1..=20 {
        let r = s
            .get(&format!("/v1/cases/c-{i:010}/replay"), &s.admin)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        assert_eq!(r.json["identical"], true, "{:?}", r.json);
        assert_eq!(r.json["decisions"].as_array().unwrap().len(), 2);
    }
    let h = s.get("/v1/cases/c-0000000012/history", &s.admin).await;
    let decision = h.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"]["type"] == "decision" && e["what"]["hook"] == "routing")
        .unwrap();
    assert_eq!(decision["what"]["plugin"]["name"], "civic-plugin-yazhou");
    assert_eq!(decision["what"]["directory_version"], 1);
    assert!(decision["what"]["fuel_used"].as_u64().unwrap() > 0);
    // The digest is of the input's canonical JSON (its fields in declaration order).
    let input: civic_host::decide::RecordedInput =
        serde_json::from_value(decision["what"]["input"].clone()).unwrap();
    assert_eq!(
        decision["what"]["input_digest"].as_str().unwrap(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            serde_json::to_vec(&input).unwrap()
        ))
    );
}

#[tokio::test]
async fn rejected_and_transferred_cases_are_stored_but_not_routed() {
    let s = TestServer::start();
    let r = s
        .json(
            "POST",
            "/v1/cases",
            &s.admin,
            json!({"district": "jiyang", "category": "wage-arrears", "flags": ["litigation"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (201, Some("rejected"))
    );
    assert!(r.json["handler"].is_null());
    let r = s.json("POST", "/v1/cases", &s.admin, json!({"district": "tianya", "category": "public-security", "flags": ["crime-in-progress"]})).await;
    assert_eq!(r.json["status"], "transferred");
    let h = s
        .get(
            &format!("/v1/cases/{}/history", r.json["id"].as_str().unwrap()),
            &s.admin,
        )
        .await;
    let t = h.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"]["type"] == "transition")
        .unwrap();
    assert_eq!(t["what"]["action"]["line"], "110");
}

async fn new_case(s: &TestServer) -> String {
    let r = s.json("POST", "/v1/cases", &s.admin, json!({"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}})).await;
    assert_eq!(r.status, 201);
    r.json["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_lifecycle_action_works_through_the_api() {
    let s = TestServer::start();
    let grid = s
        .token("unit-handler", Some("jiyang"), Some("jiyang/yuehe/grid-01"))
        .await;
    let disp = s.token("dispatcher", Some("jiyang"), None).await;
    let id = new_case(&s).await;
    let act = |path: &'static str, tok: String, body: serde_json::Value| {
        let s = &s;
        let id = id.clone();
        async move {
            s.json("POST", &format!("/v1/cases/{id}/{path}"), &tok, body)
                .await
        }
    };
    // Return by the grid: re-routed one level up, to its community.
    let r = act(
        "return",
        grid.clone(),
        json!({"reason": "this is the restaurant licensing office's matter"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        (r.json["status"].as_str(), r.json["handler"].as_str()),
        (Some("dispatched"), Some("jiyang/yuehe"))
    );
    assert_eq!(r.json["returned_by"], json!(["jiyang/yuehe/grid-01"]));
    // The grid no longer handles it and cannot see it.
    assert_eq!(s.get(&format!("/v1/cases/{id}"), &grid).await.status, 404);
    let version = r.json["version"].as_u64().unwrap();
    let r = act("sign", disp.clone(), json!({"version": version})).await;
    assert_eq!(r.json["status"], "signed");
    let stale = act("start", disp.clone(), json!({"version": version})).await;
    assert_eq!(
        stale.status, 409,
        "a stale version is a conflict: {:?}",
        stale.json
    );
    assert_eq!(
        act("start", disp.clone(), json!({})).await.json["status"],
        "in-progress"
    );
    let r = act(
        "extension",
        disp.clone(),
        json!({"days": 3, "reason": "waiting for the owner to return"}),
    )
    .await;
    assert_eq!(r.json["extension"]["approved"], json!(null));
    let before = r.json["deadlines"]["resolution"].as_i64().unwrap();
    let r = act("extension/approve", disp.clone(), json!({})).await;
    assert!(
        r.json["deadlines"]["resolution"].as_i64().unwrap() > before,
        "approval moves the deadline"
    );
    let r = act(
        "extension",
        disp.clone(),
        json!({"days": 2, "reason": "more"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        act(
            "extension/refuse",
            disp.clone(),
            json!({"reason": "not justified"})
        )
        .await
        .json["extension"]["approved"],
        false
    );
    assert_eq!(
        act(
            "reply",
            disp.clone(),
            json!({"text": "the stall closes at 22:00 now"})
        )
        .await
        .json["status"],
        "replied"
    );
    assert_eq!(
        act(
            "callback",
            disp.clone(),
            json!({"satisfied": false, "resolved": false, "note": "still noisy"})
        )
        .await
        .json["status"],
        "callback"
    );
    let r = act(
        "reopen",
        disp.clone(),
        json!({"reason": "citizen not satisfied"}),
    )
    .await;
    assert_eq!(
        (r.json["status"].as_str(), r.json["reopen_count"].as_u64()),
        (Some("dispatched"), Some(1))
    );
    act("sign", disp.clone(), json!({})).await;
    act("reply", disp.clone(), json!({"text": "fixed for good"})).await;
    act(
        "callback",
        disp.clone(),
        json!({"satisfied": true, "resolved": true}),
    )
    .await;
    assert_eq!(
        act("close", disp.clone(), json!({})).await.json["status"],
        "closed"
    );
    assert_eq!(
        act("close", disp.clone(), json!({})).await.status,
        409,
        "closing twice is illegal"
    );
    // Merge another case into a third.
    let a = new_case(&s).await;
    let b = new_case(&s).await;
    let r = s
        .json(
            "POST",
            &format!("/v1/cases/{a}/merge"),
            &disp,
            json!({"into": b}),
        )
        .await;
    assert_eq!(
        (r.json["status"].as_str(), r.json["merged_into"].as_str()),
        (Some("merged"), Some(b.as_str()))
    );
    assert_eq!(
        s.json(
            "POST",
            &format!("/v1/cases/{b}/merge"),
            &disp,
            json!({"into": "c-9999999999"})
        )
        .await
        .status,
        422
    );
    let replay = s.get(&format!("/v1/cases/{id}/replay"), &disp).await;
    assert_eq!(
        replay.json["identical"], true,
        "re-routing decisions replay identically: {:?}",
        replay.json
    );
    assert!(replay.json["decisions"].as_array().unwrap().len() >= 4);
    let h = s.get(&format!("/v1/cases/{id}/history"), &disp).await;
    let kinds: Vec<&str> = h.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"]["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().filter(|k| **k == "decision").count() >= 4,
        "re-routing recorded its decisions: {kinds:?}"
    );
}

#[tokio::test]
async fn listing_filters_and_paginates() {
    let s = TestServer::start();
    for body in sample_cases() {
        s.json("POST", "/v1/cases", &s.admin, body).await;
    }
    let r = s.get("/v1/cases?district=jiyang&limit=2", &s.admin).await;
    assert_eq!(r.json["cases"].as_array().unwrap().len(), 2);
    let next = r.json["next"].as_str().unwrap().to_owned();
    let r2 = s
        .get(
            &format!("/v1/cases?district=jiyang&limit=2&cursor={next}"),
            &s.admin,
        )
        .await;
    assert_eq!(r2.json["cases"].as_array().unwrap().len(), 2);
    assert_ne!(r.json["cases"][0]["id"], r2.json["cases"][0]["id"]);
    let r = s
        .get("/v1/cases?status=dispatched&district=tianya", &s.admin)
        .await;
    assert_eq!(r.json["cases"].as_array().unwrap().len(), 5);
    let r = s.get("/v1/cases?unit=yazhou/port-station", &s.admin).await;
    assert_eq!(r.json["cases"].as_array().unwrap().len(), 1);
    let r = s.get("/v1/cases?category=noise", &s.admin).await;
    assert_eq!(r.json["cases"].as_array().unwrap().len(), 1);
    assert_eq!(s.get("/v1/cases?limit=100000", &s.admin).await.status, 400);
    assert_eq!(
        s.get("/v1/cases?status=sleeping", &s.admin).await.status,
        400
    );
    assert_eq!(s.get("/v1/cases?colour=red", &s.admin).await.status, 400);
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
    let before = s.svc.store().case_count();
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
    assert_eq!(s.svc.store().case_count(), before);
    // The active version still routes to the grid.
    assert_eq!(s.json("POST", "/v1/cases", &s.admin, json!({"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}})).await.json["handler"], "jiyang/yuehe/grid-01");

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
    assert_eq!(s.json("POST", "/v1/cases", &s.admin, json!({"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}})).await.json["handler"], "jiyang");

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
    assert_eq!(s.json("POST", "/v1/cases", &s.admin, json!({"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}})).await.json["handler"], "jiyang/yuehe/grid-01");

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
    let r = s.json("POST", "/v1/cases", &s.admin, json!({"district": "tianya", "category": "sanitation", "location": {"grid": "tianya/xidao/grid-01"}})).await;
    assert_eq!(r.json["handler"], "tianya/xidao/grid-01");
    let metrics = s.send("GET", "/metrics", None, None, vec![]).await;
    assert_eq!(metrics.status, 200);
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_changes_nothing() {
    let s = TestServer::start();
    let count = || s.svc.store().case_count();
    let start = count();
    let cases = [
        (Some("application/json"), b"{\"district\": ".to_vec(), 400, "malformed JSON"),
        (Some("application/json"), b"{\"district\":\"jiyang\",\"category\":\"noise\",\"status\":\"closed\"}".to_vec(), 400, "a field the caller may not set"),
        (Some("application/json"), b"{\"district\":\"jiyang\",\"category\":\"noise\",\"handler\":\"jiyang\"}".to_vec(), 400, "the handler"),
        (Some("text/plain"), b"{\"district\":\"jiyang\",\"category\":\"noise\"}".to_vec(), 415, "wrong content type"),
        (None, b"{\"district\":\"jiyang\",\"category\":\"noise\"}".to_vec(), 415, "no content type"),
        (Some("application/json"), format!("{{\"district\":\"jiyang\",\"category\":\"noise\",\"description\":\"{}\"}}", "x".repeat(70_000)).into_bytes(), 413, "oversized"),
        (Some("application/json"), b"{\"district\":\"atlantis\",\"category\":\"noise\"}".to_vec(), 422, "unknown district"),
        (Some("application/json"), b"{\"district\":\"jiyang\",\"category\":\"karaoke\"}".to_vec(), 422, "unknown category"),
        (Some("application/json"), b"{\"district\":\"jiyang\",\"category\":\"noise\",\"location\":{\"grid\":\"tianya/maling/grid-01\"}}".to_vec(), 422, "another district's grid"),
        (Some("application/json"), b"{\"district\":\"jiyang\",\"category\":\"noise\",\"flags\":[\"urgent-please\"]}".to_vec(), 422, "unknown flag"),
    ];
    for (ct, body, status, what) in cases {
        let r = s.send("POST", "/v1/cases", Some(&s.admin), ct, body).await;
        assert_eq!(r.status, status, "{what}: {:?}", r.json);
        assert!(
            r.json["error"]["code"].is_string() && r.json["error"]["message"].is_string(),
            "{what}: error body {:?}",
            r.json
        );
    }
    assert_eq!(count(), start, "nothing was stored");
    // Uploads.
    let r = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing",
            Some(&s.admin),
            Some("application/wasm"),
            b"not wasm at all".to_vec(),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not WebAssembly")
    );
    let r = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing",
            Some(&s.admin),
            Some("application/json"),
            fixture(fixtures::FX_HOSTILE),
        )
        .await;
    assert_eq!(r.status, 415);
    let r = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing",
            Some(&s.admin),
            Some("application/wasm"),
            vec![0u8; 17 * 1024 * 1024],
        )
        .await;
    assert_eq!(r.status, 413);
    let r = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/routing",
            Some(&s.admin),
            Some("application/wasm"),
            fixture(fixtures::FX_INCOMPATIBLE),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0.9.0")
    );
    assert!(
        s.get("/v1/districts/jiyang/plugins/routing", &s.admin)
            .await
            .json["versions"]
            .as_array()
            .unwrap()
            .len()
            == 1,
        "only the bundled version"
    );
    let r = s
        .send(
            "PUT",
            "/v1/districts/jiyang/plugins/teleport",
            Some(&s.admin),
            Some("application/wasm"),
            vec![],
        )
        .await;
    assert_eq!(r.status, 404);
    // Auth.
    assert_eq!(
        s.send("GET", "/v1/cases", None, None, vec![]).await.status,
        401
    );
    assert_eq!(
        s.send("GET", "/v1/cases", Some("civic_nope_nope"), None, vec![])
            .await
            .status,
        401
    );
    let mut wrong = s.admin.clone();
    wrong.pop();
    wrong.push('x');
    assert_eq!(
        s.send("GET", "/v1/cases", Some(&wrong), None, vec![])
            .await
            .status,
        401
    );
    assert_eq!(s.get("/v1/nothing-here", &s.admin).await.status, 404);
}

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
    let m = s.svc.metrics().render();
    assert!(m.contains("civic_decisions_total{district=\"jiyang\",hook=\"routing\",plugin=\"civic-plugin-jiyang\",outcome=\"decided\"} 1"), "{m}");
    assert!(
        m.contains("route=\"/v1/cases\""),
        "requests are labelled by matched route"
    );
}

/// The console is served by the same process, with headers that keep citizens' text inert.
#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    use tower::ServiceExt;
    let s = TestServer::start();
    let get = |path: &'static str| {
        s.app.clone().oneshot(
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
    };
    let root = get("/").await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/console/");
    for (path, ty, needle) in [
        ("/console/", "text/html", "/console/app.js"),
        ("/console/app.js", "text/javascript", "textContent"),
        ("/console/app.css", "text/css", ".lamp.red"),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(ty),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(needle), "{path}");
    }
    // Anything else under /console is the API's JSON 404, not a page.
    let (status, body) = s
        .send_raw("GET", "/console/secrets.txt", None, None, vec![])
        .await;
    assert_eq!(status, 404);
    assert!(body.contains("\"not-found\""), "{body}");
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

#[tokio::test]
async fn replay_reports_a_difference() {
    let s = TestServer::start();
    let r = s.json("POST", "/v1/cases", &s.admin, json!({"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}})).await;
    let id = r.json["id"].as_str().unwrap();
    let history = s.svc.store().history(id).unwrap();
    let (seq, mut rec) = history
        .iter()
        .find_map(|e| match &e.what {
            civic_host::model::EventBody::Decision(r)
                if r.hook == civic_host::runtime::Hook::Routing =>
            {
                Some((e.seq, (**r).clone()))
            }
            _ => None,
        })
        .unwrap();
    assert!(
        civic_host::replay::replay_decision(&s.svc, seq, &rec)
            .unwrap()
            .identical
    );
    let mut output = rec.output.value();
    output["lead"] = "jiyang/yuehe".into();
    rec.output = civic_host::model::RawJson::of(&output);
    let replayed = civic_host::replay::replay_decision(&s.svc, seq, &rec).unwrap();
    assert!(!replayed.identical);
    assert_eq!(replayed.differences, [".lead"]);
    assert_eq!(replayed.replayed["lead"], "jiyang/yuehe/grid-01");
    // Another district's token cannot replay it.
    let t = s.token("dispatcher", Some("tianya"), None).await;
    assert_eq!(
        s.get(&format!("/v1/cases/{id}/replay"), &t).await.status,
        404
    );
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
    let before = s.svc.store().case_count();
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
        s.svc.store().case_count(),
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
    let r = s.json("POST", "/v1/cases", &s.admin, json!({"district": "jiyang", "category": "water-power", "location": {"grid": "jiyang/yuehe/grid-02"}})).await;
    assert_eq!(
        r.json["handler"], "jiyang",
        "the promoted version now decides"
    );
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

#[tokio::test]
async fn the_directory_shows_a_token_its_district_and_the_city() {
    let s = TestServer::start();
    let all = s.get("/v1/directory", &s.admin).await.json;
    assert_eq!(all["version"], 1);
    assert_eq!(all["districts"].as_array().unwrap().len(), 5);
    assert_eq!(all["categories"].as_array().unwrap().len(), 23);
    let disp = s.token("dispatcher", Some("jiyang"), None).await;
    let own = s.get("/v1/directory", &disp).await.json;
    assert_eq!(own["districts"], json!(["jiyang"]));
    let ids: Vec<&str> = own["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"jiyang/yuehe/grid-01") && ids.contains(&"sanya/mediation/industry/labour")
    );
    assert!(
        !ids.iter().any(|i| i.starts_with("tianya")),
        "another district's units are not listed"
    );
    assert_eq!(
        s.send("GET", "/v1/directory", None, None, vec![])
            .await
            .status,
        401
    );
}
