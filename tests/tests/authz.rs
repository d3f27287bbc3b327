//! The authorization matrix: every route × role × own/other district. Another district's
//! case or plug-in answers 404, never its content; a visible thing the role may not touch
//! answers 403.

use civic_tests::TestServer;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq)]
enum E {
    /// Allowed: any 2xx, or a 409/422 from the state of the case.
    Ok,
    /// 404: not visible.
    Hidden,
    /// 403: visible, not allowed.
    Denied,
}
use E::*;

/// (what, method, path, body, expectations on jiyang, expectations on tianya)
type Row = (
    &'static str,
    &'static str,
    String,
    Option<Value>,
    [E; 5],
    [E; 5],
);

const ROLES: [&str; 5] = [
    "city-admin",
    "district-admin",
    "dispatcher",
    "unit-handler",
    "intake-agent",
];

struct World {
    s: TestServer,
    tokens: Vec<String>,
}

impl World {
    async fn new() -> Self {
        let s = TestServer::start();
        let tokens = vec![
            s.admin.clone(),
            s.token("district-admin", Some("jiyang"), None).await,
            s.token("dispatcher", Some("jiyang"), None).await,
            s.token("unit-handler", Some("jiyang"), Some("jiyang/yuehe/grid-01"))
                .await,
            s.token("intake-agent", None, None).await,
        ];
        World { s, tokens }
    }

    async fn case(&self, district: &str, token: Option<&str>) -> String {
        let grid = if district == "jiyang" {
            "jiyang/yuehe/grid-01"
        } else {
            "tianya/maling/grid-01"
        };
        let r = self
            .s
            .json(
                "POST",
                "/v1/cases",
                token.unwrap_or(&self.s.admin),
                json!({"district": district, "category": "noise", "location": {"grid": grid}}),
            )
            .await;
        assert_eq!(r.status, 201);
        r.json["id"].as_str().unwrap().to_owned()
    }

    async fn check(
        &self,
        what: &str,
        role: usize,
        method: &str,
        path: &str,
        body: Option<Value>,
        expect: E,
    ) {
        let token = &self.tokens[role];
        let r = match (method, body) {
            ("PUT", _) => {
                self.s
                    .send(
                        "PUT",
                        path,
                        Some(token),
                        Some("application/wasm"),
                        b"\0asm\x0d\0\x01\0".to_vec(),
                    )
                    .await
            }
            (m, Some(b)) => self.s.json(m, path, token, b).await,
            (m, None) => self.s.send(m, path, Some(token), None, vec![]).await,
        };
        let ok = match expect {
            Ok => (200..300).contains(&r.status) || r.status == 409 || r.status == 422,
            Hidden => r.status == 404,
            Denied => r.status == 403,
        };
        assert!(
            ok,
            "{what}: {} {method} {path} expected {expect:?}, got {} {:?}",
            ROLES[role], r.status, r.json
        );
        if matches!(expect, Hidden | Denied) {
            let text = r.json.to_string();
            assert!(
                !text.contains("\"handler\"") && !text.contains("\"caller_key\""),
                "{what}: a refusal leaks content: {text}"
            );
        }
    }
}

#[tokio::test]
async fn case_routes() {
    let w = World::new().await;
    let own_by_agent = w.case("jiyang", Some(&w.tokens[4].clone())).await;
    // Reads: [admin, dadmin, dispatcher, unit, intake] on own district (handled by grid-01), then on tianya.
    let own = w.case("jiyang", None).await;
    let other = w.case("tianya", None).await;
    for (sub, expect_own, expect_other) in [
        (
            "",
            [Ok, Ok, Ok, Ok, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
        (
            "/history",
            [Ok, Ok, Ok, Ok, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
    ] {
        for role in 0..5 {
            w.check(
                "read own",
                role,
                "GET",
                &format!("/v1/cases/{own}{sub}"),
                None,
                expect_own[role],
            )
            .await;
            w.check(
                "read other",
                role,
                "GET",
                &format!("/v1/cases/{other}{sub}"),
                None,
                expect_other[role],
            )
            .await;
        }
    }
    w.check(
        "agent reads its own case",
        4,
        "GET",
        &format!("/v1/cases/{own_by_agent}"),
        None,
        Ok,
    )
    .await;
    // Create.
    for (role, own, other) in [
        (0, Ok, Ok),
        (1, Ok, Denied),
        (2, Ok, Denied),
        (3, Denied, Denied),
        (4, Ok, Ok),
    ] {
        let body = |d: &str| json!({"district": d, "category": "noise"});
        w.check(
            "create own",
            role,
            "POST",
            "/v1/cases",
            Some(body("jiyang")),
            own,
        )
        .await;
        w.check(
            "create other",
            role,
            "POST",
            "/v1/cases",
            Some(body("tianya")),
            other,
        )
        .await;
    }
    // Actions, each on a fresh case so state does not decide the outcome.
    let unit_actions = ["sign", "start", "reply", "return", "extension"];
    let actions: [(&str, Value); 11] = [
        ("sign", json!({})),
        ("start", json!({})),
        ("reply", json!({"text": "done"})),
        ("return", json!({"reason": "not ours"})),
        ("extension", json!({"days": 2, "reason": "parts"})),
        ("extension/approve", json!({})),
        ("extension/refuse", json!({"reason": "no"})),
        ("callback", json!({"satisfied": true, "resolved": true})),
        ("close", json!({})),
        ("reopen", json!({"reason": "again"})),
        ("merge", json!({"into": "c-0000000001"})),
    ];
    for (action, body) in &actions {
        for role in 0..5 {
            let own = w.case("jiyang", None).await;
            let expect = match role {
                0..=2 => Ok,
                3 if unit_actions.contains(action) => Ok,
                3 => Denied,
                _ => Hidden,
            };
            w.check(
                "act own",
                role,
                "POST",
                &format!("/v1/cases/{own}/{action}"),
                Some(body.clone()),
                expect,
            )
            .await;
            let other = w.case("tianya", None).await;
            let expect = if role == 0 { Ok } else { Hidden };
            w.check(
                "act other",
                role,
                "POST",
                &format!("/v1/cases/{other}/{action}"),
                Some(body.clone()),
                expect,
            )
            .await;
        }
        w.check(
            "agent acts on its own case",
            4,
            "POST",
            &format!("/v1/cases/{own_by_agent}/{action}"),
            Some(body.clone()),
            Denied,
        )
        .await;
    }
}

#[tokio::test]
async fn listings_show_only_what_a_token_may_see() {
    let w = World::new().await;
    let agent_case = w.case("tianya", Some(&w.tokens[4].clone())).await;
    w.case("jiyang", None).await;
    w.case("tianya", None).await;
    let ids = |v: &Value| {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["district"].as_str().unwrap().to_owned(),
                    c["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let all = w.s.get("/v1/cases", &w.tokens[0]).await;
    assert_eq!(ids(&all.json).len(), 3);
    for role in [1, 2, 3] {
        let r = w.s.get("/v1/cases", &w.tokens[role]).await;
        assert!(
            ids(&r.json).iter().all(|(d, _)| d == "jiyang"),
            "{}: {:?}",
            ROLES[role],
            r.json
        );
        assert_eq!(ids(&r.json).len(), 1);
        let r = w.s.get("/v1/cases?district=tianya", &w.tokens[role]).await;
        assert_eq!(r.status, 200);
        assert!(
            ids(&r.json).is_empty(),
            "{} asking for tianya sees nothing",
            ROLES[role]
        );
    }
    let r = w.s.get("/v1/cases", &w.tokens[4]).await;
    assert_eq!(ids(&r.json), [("tianya".to_string(), agent_case)]);
}

#[tokio::test]
async fn plugin_and_token_routes() {
    let w = World::new().await;
    let v =
        w.s.get("/v1/districts/jiyang/plugins/routing", &w.s.admin)
            .await
            .json["versions"][0]["version"]
            .as_str()
            .unwrap()
            .to_owned();
    let vt =
        w.s.get("/v1/districts/tianya/plugins/routing", &w.s.admin)
            .await
            .json["versions"][0]["version"]
            .as_str()
            .unwrap()
            .to_owned();
    let dry = |d: &str| json!({"case": {"district": d, "category": "noise"}});
    // [admin, dadmin jiyang, dispatcher jiyang, unit, intake]
    let table: Vec<Row> = vec![
        (
            "overview",
            "GET",
            "/v1/districts/{d}/plugins".into(),
            None,
            [Ok, Ok, Ok, Hidden, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
        (
            "versions",
            "GET",
            "/v1/districts/{d}/plugins/routing".into(),
            None,
            [Ok, Ok, Ok, Hidden, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
        (
            "deploy",
            "PUT",
            "/v1/districts/{d}/plugins/routing".into(),
            None,
            [Ok, Ok, Denied, Hidden, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
        (
            "activate",
            "POST",
            "/v1/districts/{d}/plugins/routing/versions/{v}/activate".into(),
            Some(json!({})),
            [Ok, Ok, Denied, Hidden, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
        (
            "rollback",
            "POST",
            "/v1/districts/{d}/plugins/routing/rollback".into(),
            Some(json!({})),
            [Ok, Ok, Denied, Hidden, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
        (
            "dry-run",
            "POST",
            "/v1/districts/{d}/plugins/routing/dry-run".into(),
            Some(json!({})),
            [Ok, Ok, Ok, Hidden, Hidden],
            [Ok, Hidden, Hidden, Hidden, Hidden],
        ),
    ];
    for (what, method, path, body, own, other) in table {
        for role in 0..5 {
            for (d, version, expect) in [("jiyang", &v, own[role]), ("tianya", &vt, other[role])] {
                let p = path.replace("{d}", d).replace("{v}", version);
                let b = if what == "dry-run" {
                    Some(dry(d))
                } else {
                    body.clone()
                };
                w.check(what, role, method, &p, b, expect).await;
            }
        }
    }
    // The city default: everyone who may read plug-ins sees it; only the city admin manages it.
    w.check(
        "city versions",
        2,
        "GET",
        "/v1/districts/city/plugins/routing",
        None,
        Ok,
    )
    .await;
    w.check(
        "city deploy",
        1,
        "PUT",
        "/v1/districts/city/plugins/routing",
        None,
        Denied,
    )
    .await;
    w.check(
        "unknown district",
        0,
        "GET",
        "/v1/districts/atlantis/plugins",
        None,
        Hidden,
    )
    .await;

    // Tokens: admins only; district admins within their district.
    let new = |role: &str, d: Option<&str>| json!({"name": "x", "role": role, "district": d});
    for role in 0..5 {
        let expect = if role <= 1 { Ok } else { Denied };
        w.check(
            "issue own",
            role,
            "POST",
            "/v1/tokens",
            Some(new("dispatcher", Some("jiyang"))),
            expect,
        )
        .await;
        w.check("list", role, "GET", "/v1/tokens", None, expect)
            .await;
    }
    w.check(
        "dadmin issues for tianya",
        1,
        "POST",
        "/v1/tokens",
        Some(new("dispatcher", Some("tianya"))),
        Denied,
    )
    .await;
    w.check(
        "dadmin issues a city admin",
        1,
        "POST",
        "/v1/tokens",
        Some(json!({"name": "x", "role": "city-admin"})),
        Denied,
    )
    .await;
    let tianya_token =
        w.s.json(
            "POST",
            "/v1/tokens",
            &w.s.admin,
            new("dispatcher", Some("tianya")),
        )
        .await
        .json["token"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    w.check(
        "dadmin revokes tianya's",
        1,
        "DELETE",
        &format!("/v1/tokens/{tianya_token}"),
        None,
        Hidden,
    )
    .await;
    let listed = w.s.get("/v1/tokens", &w.tokens[1]).await.json;
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["district"] == "jiyang"),
        "{listed}"
    );
    assert!(
        !listed.to_string().contains("\"secret\""),
        "secrets are never listed"
    );
    // A revoked token authenticates nothing.
    let r =
        w.s.json(
            "POST",
            "/v1/tokens",
            &w.s.admin,
            new("dispatcher", Some("jiyang")),
        )
        .await;
    let (id, secret) = (
        r.json["token"]["id"].as_str().unwrap().to_owned(),
        r.json["secret"].as_str().unwrap().to_owned(),
    );
    assert_eq!(w.s.get("/v1/cases", &secret).await.status, 200);
    assert_eq!(
        w.s.send(
            "DELETE",
            &format!("/v1/tokens/{id}"),
            Some(&w.s.admin),
            None,
            vec![]
        )
        .await
        .status,
        204
    );
    assert_eq!(w.s.get("/v1/cases", &secret).await.status, 401);
}

#[tokio::test]
async fn board_views_and_who_am_i() {
    let w = World::new().await;
    // [admin, dadmin jiyang, dispatcher jiyang, unit, intake] on jiyang, then on tianya.
    for view in ["overdue", "warnings", "overview"] {
        let path = |d: &str| format!("/v1/districts/{d}/{view}");
        let own = [Ok, Ok, Ok, Hidden, Hidden];
        let other = [Ok, Hidden, Hidden, Hidden, Hidden];
        for role in 0..5 {
            w.check(view, role, "GET", &path("jiyang"), None, own[role])
                .await;
            w.check(view, role, "GET", &path("tianya"), None, other[role])
                .await;
        }
        w.check(view, 0, "GET", &path("atlantis"), None, Hidden)
            .await;
    }
    // Every token may ask who it is, and learns only that.
    for (role, name) in ROLES.iter().enumerate() {
        let me = w.s.get("/v1/me", &w.tokens[role]).await;
        assert_eq!(me.status, 200);
        assert_eq!(me.json["role"], *name);
        let district = if role == 0 || role == 4 {
            Value::Null
        } else {
            json!("jiyang")
        };
        assert_eq!(me.json["district"], district, "{name}");
    }
    assert_eq!(
        w.s.send("GET", "/v1/me", None, None, vec![]).await.status,
        401
    );
}

/// The actions a case offers are those the role may take in the case's state: a console
/// shows no button that the API would refuse.
#[tokio::test]
async fn a_case_offers_only_the_actions_the_role_may_take() {
    let w = World::new().await;
    let id = w.case("jiyang", None).await;
    let actions = |role: usize| {
        let w = &w;
        let id = id.clone();
        async move {
            let r = w.s.get(&format!("/v1/cases/{id}"), &w.tokens[role]).await;
            assert_eq!(r.status, 200, "{:?}", r.json);
            r.json["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    // Dispatched: the dispatcher may sign, return or merge; the handling grid signs or returns.
    assert_eq!(actions(2).await, ["sign", "return", "merge"]);
    assert_eq!(actions(3).await, ["sign", "return"]);
    // Every offered action is accepted: sign as the unit, then the offer moves on.
    let r =
        w.s.json(
            "POST",
            &format!("/v1/cases/{id}/sign"),
            &w.tokens[3],
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // Pausing (waiting for the citizen) is the dispatcher's call, not the unit's.
    assert_eq!(
        r.json["actions"],
        json!(["start", "reply", "return", "request-extension"])
    );
    assert_eq!(
        actions(0).await,
        [
            "start",
            "reply",
            "return",
            "request-extension",
            "pause",
            "merge"
        ]
    );
    // An intake agent that created the case may read it but act on nothing.
    let mine = w.case("jiyang", Some(&w.tokens[4].clone())).await;
    let r = w.s.get(&format!("/v1/cases/{mine}"), &w.tokens[4]).await;
    assert_eq!(r.json["actions"], json!([]));
}

/// Tokens expire; listing them never shows the hash of a secret; the last city admin
/// cannot be revoked.
#[tokio::test]
async fn tokens_expire_list_without_hashes_and_the_last_admin_stays() {
    let s = TestServer::start();
    let admin = s.admin.clone();
    let r = s
        .json(
            "POST",
            "/v1/tokens",
            &admin,
            json!({"name": "short", "role": "dispatcher", "district": "jiyang", "expires_in_days": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert!(
        r.json["token"].get("secret_sha256").is_none(),
        "{:?}",
        r.json
    );
    let short = r.json["secret"].as_str().unwrap().to_owned();
    let now = civic_host::clock::Clock::now(&civic_host::clock::SystemClock);
    let expires = r.json["token"]["expires_at"].as_i64().unwrap();
    assert!(
        (expires - now - 86_400_000).abs() < 60_000,
        "a day from now"
    );
    assert_eq!(s.get("/v1/me", &short).await.status, 200);
    // Past its expiry it authenticates nothing.
    let stored = civic_host::auth::authenticate(&**s.svc.store(), &short, expires);
    assert!(stored.is_err(), "expired at its expiry time");
    assert!(civic_host::auth::authenticate(&**s.svc.store(), &short, expires - 1).is_ok());
    let r = s
        .json("POST", "/v1/tokens", &admin, json!({"name": "x", "role": "dispatcher", "district": "jiyang", "expires_in_days": 99999}))
        .await;
    assert_eq!(r.status, 422);
    let list = s.get("/v1/tokens", &admin).await;
    assert!(
        !list.json.to_string().contains("secret_sha256"),
        "{:?}",
        list.json
    );
    // The only city admin cannot revoke itself.
    let me = s.get("/v1/me", &admin).await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .send(
            "DELETE",
            &format!("/v1/tokens/{me}"),
            Some(&admin),
            None,
            vec![],
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.json);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last city admin")
    );
    // With a second one, it can.
    let second = s.token("city-admin", None, None).await;
    let r = s
        .send(
            "DELETE",
            &format!("/v1/tokens/{me}"),
            Some(&second),
            None,
            vec![],
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json);
    assert_eq!(s.get("/v1/me", &admin).await.status, 401);
}

/// Every declared action has its route in the API and its document, a label in both
/// languages for the console, and a role rule that the API enforces: a case's lead unit
/// may take exactly the actions declared for unit handlers.
#[tokio::test]
async fn every_declared_action_has_a_route_a_label_and_a_role_rule() {
    let s = TestServer::start();
    let admin = s.admin.clone();
    let declared = s.get("/v1/actions", &admin).await.json["actions"].clone();
    let doc = s
        .send("GET", "/v1/openapi.json", None, None, vec![])
        .await
        .json;
    let c = s
        .json("POST", "/v1/cases", &admin, json!({"district": "jiyang", "category": "noise", "location": {"grid": "jiyang/yuehe/grid-01"}}))
        .await;
    let id = c.json["id"].as_str().unwrap().to_owned();
    let unit = c.json["handler"].as_str().unwrap().to_owned();
    let handler = s.token("unit-handler", Some("jiyang"), Some(&unit)).await;
    let list = declared.as_array().unwrap();
    assert_eq!(list.len(), civic_host::actions::ACTIONS.len());
    for a in list {
        let name = a["name"].as_str().unwrap();
        let path = a["path"].as_str().unwrap();
        assert!(
            doc["paths"][path]["post"]["requestBody"].is_object(),
            "{name}: {path} is routed and documented"
        );
        for l in a["label"].as_array().unwrap() {
            assert!(!l.as_str().unwrap().is_empty(), "{name} has a label");
        }
        for f in a["fields"].as_array().unwrap() {
            assert!(
                f["label"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|l| !l.as_str().unwrap().is_empty()),
                "{name}.{}",
                f["name"]
            );
        }
        // The role rule as the API applies it: a lead unit is refused (403) exactly the
        // actions not declared for unit handlers; others get past the role check.
        let mut body = json!({"version": 999});
        for f in a["fields"].as_array().unwrap() {
            body[f["name"].as_str().unwrap()] = match f["kind"].as_str().unwrap() {
                "number" => json!(2),
                "check" => json!(true),
                _ => json!("x"),
            };
        }
        let r = s
            .json("POST", &path.replace("{id}", &id), &handler, body)
            .await;
        let may = a["unit_handler"].as_bool().unwrap();
        assert_eq!(r.status == 403, !may, "{name}: {} {:?}", r.status, r.json);
    }
}
