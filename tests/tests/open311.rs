//! Open311 GeoReport v2: every method in JSON and XML, the error cases, and a request made
//! through Open311 routed exactly like one made through `/v1/cases`.

use civic_tests::TestServer;
use serde_json::json;

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded_like(pairs).into_bytes()
}

fn serde_urlencoded_like(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn raw(s: &TestServer, method: &str, path: &str, body: Vec<u8>) -> (u16, String) {
    let ct = (method == "POST").then_some("application/x-www-form-urlencoded");
    s.send_raw(method, path, None, ct, body).await
}

#[tokio::test]
async fn services_and_definitions_in_both_formats() {
    let s = TestServer::start();
    let (st, body) = raw(&s, "GET", "/open311/v2/services.json", vec![]).await;
    assert_eq!(st, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 23);
    let wage = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["service_code"] == "wage-arrears")
        .unwrap();
    assert_eq!(
        (
            wage["service_name"].as_str(),
            wage["metadata"].as_bool(),
            wage["type"].as_str()
        ),
        (Some("拖欠工资"), Some(true), Some("realtime"))
    );
    let (st, xml) = raw(&s, "GET", "/open311/v2/services.xml", vec![]).await;
    assert_eq!(st, 200);
    assert!(
        xml.starts_with("<?xml")
            && xml.contains(
                "<service><service_code>noise</service_code><service_name>噪音扰民</service_name>"
            ),
        "{xml}"
    );
    let (st, def) = raw(&s, "GET", "/open311/v2/services/wage-arrears.json", vec![]).await;
    assert_eq!(st, 200);
    let def: serde_json::Value = serde_json::from_str(&def).unwrap();
    assert_eq!(def["attributes"][0]["code"], "dispute_amount");
    let (st, def) = raw(&s, "GET", "/open311/v2/services/wage-arrears.xml", vec![]).await;
    assert_eq!(st, 200);
    assert!(
        def.contains(
            "<service_definition><service_code>wage-arrears</service_code><attributes><attribute>"
        ),
        "{def}"
    );
    let (st, e) = raw(&s, "GET", "/open311/v2/services/karaoke.json", vec![]).await;
    assert_eq!(st, 404);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&e).unwrap()[0]["code"],
        404
    );
    let (st, e) = raw(&s, "GET", "/open311/v2/services/karaoke.xml", vec![]).await;
    assert_eq!(st, 404);
    assert!(e.contains("<errors><error><code>404</code>"), "{e}");
}

#[tokio::test]
async fn a_request_through_open311_routes_like_one_through_the_api() {
    let s = TestServer::start();
    let agent = s.token("intake-agent", None, None).await;
    let (st, body) = raw(
        &s,
        "POST",
        "/open311/v2/requests.json",
        form(&[
            ("api_key", &agent),
            ("service_code", "wage-arrears"),
            ("address_id", "jiyang/yuehe/grid-02"),
            ("description", "外卖配送站拖欠骑手工资"),
            ("phone", "13800000004"),
            ("attribute[dispute_amount]", "12000"),
        ]),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        created[0]["service_notice"]
            .as_str()
            .unwrap()
            .contains("劳动争议"),
        "{created}"
    );
    let via_api = s.json("POST", "/v1/cases", &s.admin, json!({"district": "jiyang", "category": "wage-arrears", "location": {"grid": "jiyang/yuehe/grid-02"}, "dispute": {"type": "labour", "amount": 12000}})).await;
    let case = s.get(&format!("/v1/cases/{id}"), &s.admin).await.json;
    assert_eq!(case["channel"], "open311");
    assert_eq!(case["handler"], via_api.json["handler"]);
    assert_eq!(case["co_handlers"], via_api.json["co_handlers"]);
    assert_eq!(
        case["decisions"].as_array().unwrap().len(),
        2,
        "the same intake: eligibility and routing recorded"
    );
    // The same request in XML.
    let (st, xml) = raw(
        &s,
        "POST",
        "/open311/v2/requests.xml",
        form(&[
            ("api_key", &agent),
            ("service_code", "noise"),
            ("address_string", "月河社区第1网格"),
            ("lat", "18.25"),
            ("long", "109.5"),
        ]),
    )
    .await;
    assert_eq!(st, 201, "{xml}");
    assert!(
        xml.contains("<service_requests><request><service_request_id>c-"),
        "{xml}"
    );

    // Queries, both formats.
    let (st, one) = raw(
        &s,
        "GET",
        &format!("/open311/v2/requests/{id}.json"),
        vec![],
    )
    .await;
    assert_eq!(st, 200);
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(
        (one[0]["status"].as_str(), one[0]["status_notes"].as_str()),
        (Some("open"), Some("dispatched"))
    );
    // Without a key: category, status, community and dates only.
    assert!(one[0]["agency_responsible"].is_null(), "{one}");
    assert!(one[0]["lat"].is_null() && one[0]["long"].is_null(), "{one}");
    // With the key that created it, everything Open311 carries.
    let (st, full) = raw(
        &s,
        "GET",
        &format!("/open311/v2/requests/{id}.json?api_key={agent}"),
        vec![],
    )
    .await;
    assert_eq!(st, 200, "{full}");
    let full: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(
        full[0]["agency_responsible"],
        "三亚市劳动争议人民调解委员会"
    );
    assert!(
        one[0]["requested_datetime"]
            .as_str()
            .unwrap()
            .ends_with("+08:00")
    );
    assert!(
        one[0]["expected_datetime"]
            .as_str()
            .unwrap()
            .ends_with("+08:00")
    );
    assert!(
        one[0]["description"].is_null(),
        "the citizen's words are not published"
    );
    let (st, x) = raw(&s, "GET", &format!("/open311/v2/requests/{id}.xml"), vec![]).await;
    assert_eq!(st, 200);
    assert!(
        x.contains(&format!(
            "<service_request_id>{id}</service_request_id><status>open</status>"
        )),
        "{x}"
    );
    let (_, all) = raw(
        &s,
        "GET",
        "/open311/v2/requests.json?service_code=wage-arrears&status=open",
        vec![],
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&all)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, none) = raw(&s, "GET", "/open311/v2/requests.json?status=closed", vec![]).await;
    assert_eq!(none, "[]");
    let (_, ids) = raw(
        &s,
        "GET",
        &format!("/open311/v2/requests.xml?service_request_id={id},c-9999999999"),
        vec![],
    )
    .await;
    assert_eq!(ids.matches("<request>").count(), 1);
    let (_, old) = raw(
        &s,
        "GET",
        "/open311/v2/requests.json?start_date=2020-01-01T00:00:00Z&end_date=2020-02-01T00:00:00Z",
        vec![],
    )
    .await;
    assert_eq!(old, "[]");
}

#[tokio::test]
async fn open311_errors_follow_the_spec() {
    let s = TestServer::start();
    let agent = s.token("intake-agent", Some("tianya"), None).await;
    /// (form fields, expected status, text the description must contain)
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("service_code", "noise"), ("address_id", "jiyang/yuehe")],
            403,
            "api_key is required",
        ),
        (
            vec![
                ("api_key", "civic_nope_nope"),
                ("service_code", "noise"),
                ("address_id", "jiyang/yuehe"),
            ],
            403,
            "not valid",
        ),
        (
            vec![
                ("api_key", agent.as_str()),
                ("service_code", "noise"),
                ("address_id", "jiyang/yuehe"),
            ],
            403,
            "may not create requests in jiyang",
        ),
        (
            vec![("api_key", agent.as_str()), ("address_id", "tianya/maling")],
            400,
            "service_code is required",
        ),
        (
            vec![
                ("api_key", agent.as_str()),
                ("service_code", "karaoke"),
                ("address_id", "tianya/maling"),
            ],
            400,
            "not a service",
        ),
        (
            vec![("api_key", agent.as_str()), ("service_code", "noise")],
            400,
            "a location is required",
        ),
        (
            vec![
                ("api_key", agent.as_str()),
                ("service_code", "noise"),
                ("lat", "18.3"),
                ("long", "109.4"),
            ],
            400,
            "no grid areas",
        ),
        (
            vec![
                ("api_key", agent.as_str()),
                ("service_code", "noise"),
                ("address_id", "atlantis"),
            ],
            400,
            "not a community or grid",
        ),
        (
            vec![
                ("api_key", agent.as_str()),
                ("service_code", "noise"),
                ("lat", "north"),
                ("long", "1"),
            ],
            400,
            "lat is not a number",
        ),
    ];
    let before = s.svc.store().case_count().unwrap();
    for (fields, status, text) in cases {
        for fmt in ["json", "xml"] {
            let (st, body) = raw(
                &s,
                "POST",
                &format!("/open311/v2/requests.{fmt}"),
                form(&fields),
            )
            .await;
            assert_eq!(st, status, "{fields:?} {fmt}: {body}");
            assert!(body.contains(text), "{fields:?} {fmt}: {body}");
            if fmt == "json" {
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(&body).unwrap()[0]["code"],
                    status
                );
            } else {
                assert!(
                    body.contains(&format!("<errors><error><code>{status}</code>")),
                    "{body}"
                );
            }
        }
    }
    assert_eq!(
        s.svc.store().case_count().unwrap(),
        before,
        "nothing stored"
    );
    let (st, body) = raw(
        &s,
        "GET",
        "/open311/v2/requests.json?start_date=yesterday",
        vec![],
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        raw(
            &s,
            "GET",
            "/open311/v2/requests.json?status=pending",
            vec![]
        )
        .await
        .0,
        400
    );
    assert_eq!(
        raw(&s, "GET", "/open311/v2/requests/c-0000000404.json", vec![])
            .await
            .0,
        404
    );
    assert_eq!(
        raw(&s, "GET", "/open311/v2/widgets.json", vec![]).await.0,
        404
    );
    assert_eq!(
        raw(&s, "GET", "/open311/v2/services.csv", vec![]).await.0,
        404
    );
}

/// Apps send addresses as people write them: a community without its district's name, a
/// street address around it — each placed in the directory; an address the directory cannot
/// place but that names a district is taken to that district's desk with the address kept;
/// only text that names no place of the city is refused, saying what it understands.
#[tokio::test]
async fn addresses_are_matched_as_people_write_them() {
    let s = TestServer::start();
    let key = s.admin.clone();
    let post = |address: &'static str| {
        let (s, key) = (&s, key.clone());
        async move {
            let (st, body) = raw(
                s,
                "POST",
                "/open311/v2/requests.json",
                form(&[
                    ("api_key", &key),
                    ("service_code", "noise"),
                    ("address_string", address),
                ]),
            )
            .await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or(json!(body));
            (st, v)
        }
    };
    let case = |v: &serde_json::Value| {
        let id = v[0]["service_request_id"].as_str().unwrap().to_owned();
        s.svc.store().get_case(&id).unwrap().unwrap()
    };
    for (address, community) in [
        ("月河社区", "jiyang/yuehe"),
        ("吉阳区月河社区", "jiyang/yuehe"),
        ("三亚市吉阳区月河社区迎宾路12号楼下烧烤店", "jiyang/yuehe"),
    ] {
        let (st, v) = post(address).await;
        assert_eq!(st, 201, "{address}: {v}");
        let c = case(&v);
        assert_eq!(c.district, "jiyang", "{address}");
        assert_eq!(
            c.location.community.as_deref(),
            Some(community),
            "{address}"
        );
        assert_eq!(c.location.address.as_deref(), Some(address));
    }
    // A grid's name is more specific than its community's.
    let (st, v) = post("月河社区第1网格旁").await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        case(&v).location.grid.as_deref(),
        Some("jiyang/yuehe/grid-01")
    );
    // A street the directory does not know, in a district it does: taken, for triage.
    let (st, v) = post("吉阳区不存在路88号").await;
    assert_eq!(st, 201, "the citizen is not refused: {v}");
    let c = case(&v);
    assert_eq!(c.district, "jiyang");
    assert_eq!(c.location.address.as_deref(), Some("吉阳区不存在路88号"));
    assert!(c.location.community.is_none() && c.location.grid.is_none());
    assert_eq!(
        c.handler.as_deref(),
        Some("jiyang"),
        "the district desk triages it"
    );
    // Nothing of the city named: refused, saying what would be understood.
    let (st, v) = post("火星基地一号").await;
    assert_eq!(st, 400, "{v}");
    let said = v.to_string();
    assert!(
        said.contains("吉阳区") && said.contains("address_id"),
        "{said}"
    );
}
