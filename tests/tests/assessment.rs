//! Assessment (考核) through the API: a scripted run of intake and handling shows in
//! `/v1/assessment` exactly as the cases' histories say, and each token sees only its own.

use std::collections::BTreeMap;

use civic_host::assessment::{self, Counts, Figures};
use civic_tests::TestServer;
use serde_json::{Value, json};

const GRID: &str = "jiyang/yuehe/grid-01";

/// Days around today wide enough for every deadline the bundled rules set.
fn window(s: &TestServer) -> (String, String, i64, i64) {
    let cal = s.svc.calendar();
    let today = cal.day_of(s.svc.clock().now());
    let (first, last) = (today - 1, today + 120);
    (
        civic_host::calendar::format_date(first),
        civic_host::calendar::format_date(last),
        cal.start_of(first),
        cal.start_of(last + 1),
    )
}

/// Takes in a noise case in the grid and returns its id.
async fn noise(s: &TestServer) -> String {
    s.take_in("jiyang", "noise", GRID).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The figures the stored histories of `ids` give, per unit, for `[from, to)`.
fn recount(
    s: &TestServer,
    ids: &[String],
    from: i64,
    to: i64,
    now: i64,
) -> BTreeMap<String, Value> {
    let mut counts = Counts::new();
    for id in ids {
        let c = s.svc.store().get_case(id).unwrap().unwrap();
        let history = s.svc.store().history(id).unwrap();
        let facts = assessment::case_facts(&c, &history)
            .into_iter()
            .filter(|f| (from..to).contains(&f.at));
        assessment::count(&mut counts, facts, now);
    }
    let mut units: BTreeMap<String, Counts> = BTreeMap::new();
    for (k, c) in counts {
        units.entry(k.1.clone()).or_default().insert(k, c);
    }
    units
        .into_iter()
        .map(|(u, c)| {
            let f = Figures::of(c.iter().map(|((_, _, m), c)| (m, c)));
            (u, serde_json::to_value(f).unwrap())
        })
        .collect()
}

fn rate<'a>(figures: &'a Value, id: &str) -> &'a Value {
    figures["rates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["indicator"] == id)
        .unwrap_or_else(|| panic!("no rate {id} in {figures}"))
}

#[tokio::test]
async fn a_run_of_handling_shows_in_the_assessment_as_the_histories_say() {
    let s = TestServer::start();
    let grid = s.token("unit-handler", Some("jiyang"), Some(GRID)).await;
    let disp = s.token("dispatcher", Some("jiyang"), None).await;
    let act = |id: &str, path: &str, tok: &str, body: Value| {
        let (id, path, tok) = (id.to_owned(), path.to_owned(), tok.to_owned());
        let s = &s;
        async move {
            let r = s
                .json("POST", &format!("/v1/cases/{id}/{path}"), &tok, body)
                .await;
            assert_eq!(r.status, 200, "{path} on {id}: {:?}", r.json);
            r.json
        }
    };
    // Handled through to a satisfied, resolved close.
    let a = noise(&s).await;
    act(&a, "sign", &grid, json!({})).await;
    act(&a, "start", &grid, json!({})).await;
    act(
        &a,
        "reply",
        &grid,
        json!({"text": "the stall closes at 22:00"}),
    )
    .await;
    act(
        &a,
        "callback",
        &disp,
        json!({"satisfied": true, "resolved": true}),
    )
    .await;
    act(&a, "close", &disp, json!({})).await;
    // Returned by the grid (it goes on to its community).
    let b = noise(&s).await;
    act(&b, "return", &grid, json!({"reason": "a licensing matter"})).await;
    // An extension approved, an unsatisfied callback, reopened.
    let c = noise(&s).await;
    act(&c, "sign", &grid, json!({})).await;
    act(&c, "start", &grid, json!({})).await;
    act(
        &c,
        "extension",
        &grid,
        json!({"days": 3, "reason": "the owner is away"}),
    )
    .await;
    act(&c, "extension/approve", &disp, json!({})).await;
    act(&c, "reply", &grid, json!({"text": "done"})).await;
    act(
        &c,
        "callback",
        &disp,
        json!({"satisfied": false, "resolved": false}),
    )
    .await;
    act(&c, "reopen", &disp, json!({"reason": "still noisy"})).await;
    // Untouched: owes its deadlines, none passed yet.
    let d = noise(&s).await;
    // Another district's case.
    let t = s.take_in("tianya", "noise", "tianya/maling/grid-01").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (from, to, from_ms, to_ms) = window(&s);
    let r = s
        .get(&format!("/v1/assessment?from={from}&to={to}"), &s.admin)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let now = r.json["now"].as_i64().unwrap();
    let units: BTreeMap<String, Value> = r.json["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["id"].as_str().unwrap().to_owned(), u["figures"].clone()))
        .collect();
    let ids = [a.clone(), b.clone(), c.clone(), d.clone(), t.clone()];
    assert_eq!(
        units,
        recount(&s, &ids, from_ms, to_ms, now),
        "the API and the histories disagree"
    );

    // What the script did, in the grid's figures.
    let g = &units[GRID];
    let pair = |id: &str| {
        let r = rate(g, id);
        (
            r["numerator"].as_u64().unwrap(),
            r["denominator"].as_u64().unwrap(),
        )
    };
    // The reopened case was routed again (to the grid, by the bundled rules), so it owes its
    // deadlines a second time: numerators are what the script did, denominators at least.
    let numerators = [
        ("return", 1),
        ("satisfaction", 1),
        ("resolution", 1),
        ("redo", 1),
        ("extensions", 1),
        ("on-time-sign-off", 2),
        ("response", 2),
        ("on-time-completion", 2),
    ];
    for (id, n) in numerators {
        assert_eq!(pair(id).0, n, "{id}: {g}");
    }
    assert_eq!(pair("satisfaction").1, 2);
    assert_eq!((pair("redo").1, pair("extensions").1), (1, 1));
    assert!(
        pair("return").1 >= 4,
        "four cases dispatched to the grid: {g}"
    );
    // Deadlines still to come (the untouched case's, the reopened case's second ones) are
    // not counted yet.
    assert_eq!(pair("on-time-sign-off").1, 2, "{g}");
    assert_eq!(pair("on-time-completion").1, 2, "{g}");
    assert!(
        g["counts"]["sign-off-due"].as_u64().unwrap() >= 3,
        "still owed, shown in the counts: {g}"
    );
    assert_eq!(g["overdue_now"], 0);
    assert!(
        units.contains_key("jiyang/yuehe"),
        "the returned case counts for the community it went to"
    );
    // The city and its districts add up.
    let dispatched = |v: &Value| v["counts"]["dispatched"].as_u64().unwrap_or(0);
    let districts = r.json["districts"].as_array().unwrap();
    let jiyang = districts.iter().find(|x| x["id"] == "jiyang").unwrap();
    assert_eq!(
        dispatched(&jiyang["figures"]),
        units
            .iter()
            .filter(|(u, _)| u.starts_with("jiyang/"))
            .map(|(_, f)| dispatched(f))
            .sum::<u64>()
    );
    assert_eq!(
        dispatched(&r.json["city"]["figures"]),
        districts
            .iter()
            .map(|x| dispatched(&x["figures"]))
            .sum::<u64>()
    );
    assert!(
        jiyang["name"].as_str().unwrap().starts_with("吉阳区"),
        "{jiyang}"
    );
    assert!(
        r.json["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["zh"] == "满意率")
    );
}

#[tokio::test]
async fn each_token_sees_only_its_own_figures_and_bad_periods_are_refused() {
    let s = TestServer::start();
    let grid = s.token("unit-handler", Some("jiyang"), Some(GRID)).await;
    let disp = s.token("dispatcher", Some("jiyang"), None).await;
    let agent = s.token("intake-agent", Some("jiyang"), None).await;
    noise(&s).await;
    s.take_in("tianya", "noise", "tianya/maling/grid-01").await;
    let (from, to, _, _) = window(&s);
    let q = format!("from={from}&to={to}");

    let r = s.get(&format!("/v1/assessment?{q}"), &disp).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert!(
        r.json.get("city").is_none(),
        "a dispatcher sees no city totals"
    );
    let districts: Vec<&str> = r.json["districts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(districts, ["jiyang"]);
    assert!(
        r.json["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["id"].as_str().unwrap().starts_with("jiyang"))
    );
    assert_eq!(
        s.get(&format!("/v1/assessment?{q}&district=tianya"), &disp)
            .await
            .status,
        404
    );
    assert_eq!(
        s.get(&format!("/v1/assessment?{q}&district=jiyang"), &disp)
            .await
            .status,
        200
    );

    let r = s.get(&format!("/v1/assessment?{q}"), &grid).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let units: Vec<&str> = r.json["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(units, [GRID], "a unit handler sees its own unit only");
    assert_eq!(r.json["districts"], json!([]));
    assert_eq!(
        s.get(&format!("/v1/assessment?{q}&district=tianya"), &grid)
            .await
            .status,
        404
    );

    assert_eq!(
        s.get(&format!("/v1/assessment?{q}"), &agent).await.status,
        404
    );
    assert_eq!(
        s.get(&format!("/v1/assessment?{q}&district=nowhere"), &s.admin)
            .await
            .status,
        404
    );
    let tianya = s
        .get(&format!("/v1/assessment?{q}&district=tianya"), &s.admin)
        .await;
    assert_eq!(tianya.status, 200);
    assert!(
        tianya.json["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["id"].as_str().unwrap().starts_with("tianya"))
    );

    for bad in [
        "month=2026-13",
        "month=2026-1",
        "month=2026-11&from=2026-11-01",
        "from=2026-11-01",
        "from=2026-11-30&to=2026-11-01",
        "from=2025-01-01&to=2026-12-31",
        "from=2026-02-30&to=2026-03-01",
        "week=3",
    ] {
        let r = s.get(&format!("/v1/assessment?{bad}"), &s.admin).await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.json);
    }
    // This month by default, a named month too.
    let r = s.get("/v1/assessment", &s.admin).await;
    assert_eq!(r.status, 200);
    assert!(r.json["from"].as_str().unwrap().ends_with("-01"));
    let r = s.get("/v1/assessment?month=2024-02", &s.admin).await;
    assert_eq!(
        (r.json["from"].as_str(), r.json["to"].as_str()),
        (Some("2024-02-01"), Some("2024-02-29"))
    );
}
