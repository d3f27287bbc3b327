//! `/v1/cases` through the real router, in-process: intake routes the sample cases as the
//! bundled rules say, rejected and transferred cases, every lifecycle action, listings,
//! bad input, replay.

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
    let c = s.take_in("jiyang", "noise", "jiyang/yuehe/grid-01").await;
    c["id"].as_str().unwrap().to_owned()
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
    // The history names the tokens that acted (their ids stay on the events).
    let h = s.get(&format!("/v1/cases/{id}/history"), &disp).await;
    let signer = h.json["events"].as_array().unwrap().last().unwrap()["actor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(signer.starts_with('t'), "{signer}");
    assert_eq!(
        h.json["actors"][&signer],
        json!({"name": "dispatcher test", "role": "dispatcher"})
    );
    assert!(
        h.json["actors"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("plugin:")),
        "only tokens are named: {}",
        h.json["actors"]
    );
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
async fn bad_input_gets_the_right_status_and_changes_nothing() {
    let s = TestServer::start();
    let count = || s.svc.store().case_count().unwrap();
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
            vec![0u8; civic_host::api::UPLOAD_LIMIT + 1],
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
async fn replay_reports_a_difference() {
    let s = TestServer::start();
    let c = s.take_in("jiyang", "noise", "jiyang/yuehe/grid-01").await;
    let id = c["id"].as_str().unwrap();
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
