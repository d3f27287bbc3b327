//! The web console in a real browser: headless Chromium over WebDriver against a server
//! started by the test. Screenshots of the main pages land in
//! `target/tmp/console-screenshots/` for review.

use civic_tests::TestServer;
use civic_tests::browser::Browser;

const SHOTS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/console-screenshots");

/// An intake agent takes a case in through the form; a dispatcher finds it on the board,
/// opens it, signs it and returns it with a reason, and the timeline shows the re-routing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_goes_from_the_intake_form_through_sign_and_return() {
    let server = TestServer::start();
    let base = server.listen().await;
    let agent = server.token("intake-agent", Some("jiyang"), None).await;
    let dispatcher = server.token("dispatcher", Some("jiyang"), None).await;
    let b = Browser::start(SHOTS).await;

    // A wrong token is refused with the API's words, and nothing else is shown.
    b.open(&format!("{base}/console/#/login")).await;
    b.fill("#token", "civic_nobody_0000").await;
    b.click("#sign-in").await;
    let refused = b.wait_text("#flash", "401").await;
    assert!(
        refused.contains("访问令牌无效"),
        "the refusal is in the console's language, with its code: {refused}"
    );
    b.shot("00-sign-in-refused").await;

    b.sign_in(&base, &agent).await;
    b.click("#nav-intake").await;
    // No category is chosen for the agent.
    let category = b.find("#in-category").await.prop("value").await.unwrap();
    assert_eq!(
        category.as_deref(),
        Some(""),
        "the category starts unchosen"
    );
    // Category and place are chosen from the directory, not typed.
    b.choose("#in-district", "jiyang").await;
    b.choose("#in-category", "noise").await;
    b.choose("#in-community", "jiyang/yuehe").await;
    b.choose("#in-grid", "jiyang/yuehe/grid-01").await;
    b.fill("#in-phone", "13800009999").await;
    b.fill("#in-description", "楼下烧烤店凌晨两点仍在经营，噪音扰民。")
        .await;
    b.click("#intake-submit").await;
    let result = b.wait_text("#result-handler", "月河社区第1网格").await;
    let reasons = b.find("#result-reasons").await.text().await.unwrap();
    assert!(
        reasons.contains("grid.admissible"),
        "intake result should say why: {reasons}"
    );
    b.shot("01-intake-result").await;
    // The form is ready for the next caller: what this one said is gone.
    for field in ["#in-phone", "#in-description", "#in-category"] {
        let value = b.find(field).await.prop("value").await.unwrap();
        assert_eq!(
            value.as_deref(),
            Some(""),
            "{field} is cleared after intake"
        );
    }
    let id = result.split(' ').next().unwrap().to_owned();
    assert!(id.starts_with("c-"), "case id in the result: {result}");

    // The dispatcher's board lists it; the agent's sign-out clears the session.
    b.click("#sign-out").await;
    b.find("#token").await;
    b.sign_in(&base, &dispatcher).await;
    b.find(&format!("#board tr[data-case='{id}']")).await;
    // Filtering by another category hides it.
    b.choose("#f-category", "sanitation").await;
    b.click("#apply-filters").await;
    b.find("#board-empty").await;
    b.choose("#f-category", "noise").await;
    b.choose("#f-light", "green").await;
    b.click("#apply-filters").await;
    let row = b.find(&format!("#board tr[data-case='{id}']")).await;
    assert!(
        row.find(fantoccini::Locator::Css(".lamp.green"))
            .await
            .is_ok()
    );
    b.shot("02-board").await;

    row.find(fantoccini::Locator::Css("a.case-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("#case-id", &id).await;
    b.wait_text("#fact-handler", "月河社区第1网格").await;
    // Districts by name, not by their ids.
    b.wait_text("#fact-district", "吉阳区").await;
    b.wait_text("#who", "吉阳区").await;
    b.wait_text("#timeline", "grid.admissible").await;
    b.click("#act-sign").await;
    b.wait_text("#fact-status", "已签收").await;
    // The timeline names who acted, by the token's name and role, not its id.
    let timeline = b.wait_text("#timeline", "dispatcher test (派单员)").await;
    let history = server
        .get(&format!("/v1/cases/{id}/history"), &server.admin)
        .await;
    let actors = history.json["actors"].as_object().unwrap();
    assert!(!actors.is_empty(), "{:?}", history.json["actors"]);
    for token_id in actors.keys() {
        assert!(
            !timeline.contains(token_id.as_str()),
            "the token id {token_id} shows in the timeline: {timeline}"
        );
    }

    // A return without a reason is refused by the API and the refusal is shown.
    b.click("#act-return").await;
    b.click("#submit-return").await;
    b.wait_text("#flash", "reason").await;
    b.fill("#in-reason", "该烧烤店位于相邻网格，非本网格事项。")
        .await;
    b.click("#submit-return").await;
    b.wait_text("#flash", "退单").await;
    // Returned cases are routed again, skipping the unit that returned it.
    let timeline = b.wait_text("#timeline", "route.returned-skip").await;
    let routings = timeline.matches("[派单规则]").count();
    assert_eq!(routings, 2, "two routing decisions in: {timeline}");
    let handler = b.find("#fact-handler").await.text().await.unwrap();
    assert_ne!(
        handler, "月河社区第1网格",
        "re-routed away from the returning grid"
    );
    b.wait_text("#fact-returned", "月河社区第1网格").await;
    b.shot("03-case-page").await;

    // The server agrees with what the page shows.
    let c = server.get(&format!("/v1/cases/{id}"), &server.admin).await;
    assert_eq!(c.json["returned_by"][0], "jiyang/yuehe/grid-01");
    assert_eq!(c.json["status"], "dispatched");

    // English labels on request.
    b.click("#lang").await;
    b.wait_text("#actions h2", "Actions").await;
    b.shot("04-case-page-en").await;
}

/// A district admin deploys a new routing version, activates it and rolls back, and
/// dry-runs a case; the overview draws its charts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_admin_deploys_activates_and_rolls_back_a_plugin() {
    let server = TestServer::start();
    let base = server.listen().await;
    let admin = server.token("district-admin", Some("jiyang"), None).await;
    for c in civic_tests::sample_cases()
        .into_iter()
        .filter(|c| c["district"] == "jiyang")
    {
        assert_eq!(
            server.json("POST", "/v1/cases", &admin, c).await.status,
            201
        );
    }
    let slot = |r: &civic_tests::Reply| r.json["slot"]["active"].as_str().map(str::to_owned);
    let before = slot(
        &server
            .get("/v1/districts/jiyang/plugins/routing", &admin)
            .await,
    )
    .expect("jiyang routing is active");

    let component = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(
        component.path(),
        civic_plugin_bundle::get("civic-plugin-city-default")
            .unwrap()
            .component,
    )
    .unwrap();

    let b = Browser::start(SHOTS).await;
    b.sign_in(&base, &admin).await;
    b.click("#nav-plugins").await;
    b.find("#hook-routing").await;
    b.wait_text("#hook-routing h2", "派单规则").await;
    b.find("#upload-routing")
        .await
        .send_keys(&component.path().display().to_string())
        .await
        .unwrap();
    b.fill("#upload-name-routing", "city-rules-for-jiyang")
        .await;
    b.find("#deploy-routing button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let flash = b.wait_text("#flash", "已部署版本").await;
    let new_version = flash.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(new_version.len(), 64, "sha256 in: {flash}");
    assert_ne!(new_version, before);

    b.click(&format!(
        "#hook-routing button.activate[data-version='{new_version}']"
    ))
    .await;
    b.wait_text("#hook-routing .active-version", &new_version[..12])
        .await;
    let now = slot(
        &server
            .get("/v1/districts/jiyang/plugins/routing", &admin)
            .await,
    );
    assert_eq!(now.as_deref(), Some(new_version.as_str()));
    b.shot("05-plugins-after-activate").await;

    b.click("#rollback-routing").await;
    b.wait_text("#hook-routing .active-version", &before[..12])
        .await;
    let now = slot(
        &server
            .get("/v1/districts/jiyang/plugins/routing", &admin)
            .await,
    );
    assert_eq!(now.as_deref(), Some(before.as_str()));

    // Dry run of the prefilled case against the candidate version: a decision, stored nowhere.
    let cases_before = server.get("/v1/cases?limit=100", &admin).await.json["cases"]
        .as_array()
        .unwrap()
        .len();
    b.choose("#dry-hook", "routing").await;
    b.choose("#dry-version", &new_version).await;
    // Start from a stored case: the form is filled with it as it was taken in.
    let first = server.get("/v1/cases?limit=1", &admin).await.json["cases"][0].clone();
    b.find(&format!(
        "#dry-pick option[value='{}']",
        first["id"].as_str().unwrap()
    ))
    .await;
    b.choose("#dry-pick", first["id"].as_str().unwrap()).await;
    let filled = b
        .find("#dry-case")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let filled: serde_json::Value = serde_json::from_str(&filled).unwrap();
    assert_eq!(filled["case"]["category"], first["category"]);
    assert_eq!(
        filled["case"]["location"]["grid"],
        first["location"]["grid"]
    );
    b.click("#dry-submit").await;
    let out = b.wait_text("#dry-out", "fuel").await;
    assert!(out.contains("lead"), "a routing decision: {out}");
    assert!(out.contains(&new_version), "ran the chosen version: {out}");
    let cases_after = server.get("/v1/cases?limit=100", &admin).await.json["cases"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(cases_before, cases_after, "a dry run stores nothing");
    b.shot("06-plugins-dry-run").await;

    b.click("#nav-overview").await;
    b.find("#ov-status svg rect").await;
    let status = b.find("#ov-status").await.text().await.unwrap();
    assert!(status.contains("已派单"), "open cases by status: {status}");
    let plugins = b.find("#ov-plugins").await.text().await.unwrap();
    assert!(
        plugins.contains("civic-plugin-jiyang"),
        "decisions per plug-in: {plugins}"
    );
    b.shot("07-overview").await;

    // A tablet held upright: the board's table scrolls inside its frame, the page does not.
    b.client.set_window_size(768, 1024).await.unwrap();
    b.click("#nav-board").await;
    b.find("#board").await;
    let overflow = b
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        serde_json::json!(0),
        "no sideways scrolling at 768 px"
    );
    b.shot("09-board-tablet").await;
}

/// A dispatcher of one district sees nothing of another's; a citizen's words are shown as
/// text, never run as markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_cannot_see_another_districts_cases_and_markup_stays_text() {
    let server = TestServer::start();
    let base = server.listen().await;
    let yazhou_case = civic_tests::sample_cases()
        .into_iter()
        .find(|c| c["district"] == "yazhou")
        .unwrap();
    let other = server
        .json("POST", "/v1/cases", &server.admin.clone(), yazhou_case)
        .await;
    assert_eq!(other.status, 201);
    let other_id = other.json["id"].as_str().unwrap().to_owned();
    let hostile =
        "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>";
    let own = server
        .json(
            "POST",
            "/v1/cases",
            &server.admin.clone(),
            serde_json::json!({"district": "jiyang", "category": "noise", "description": hostile,
                "location": {"community": "jiyang/yuehe", "grid": "jiyang/yuehe/grid-02"}}),
        )
        .await;
    assert_eq!(own.status, 201);
    let own_id = own.json["id"].as_str().unwrap().to_owned();

    let dispatcher = server.token("dispatcher", Some("jiyang"), None).await;
    let b = Browser::start(SHOTS).await;
    b.sign_in(&base, &dispatcher).await;
    b.find(&format!("#board tr[data-case='{own_id}']")).await;
    let board = b.find("#view").await.text().await.unwrap();
    assert!(!board.contains(&other_id), "another district's case listed");
    // No district picker for a district-scoped token.
    assert!(
        b.client
            .find(fantoccini::Locator::Css("#f-district"))
            .await
            .is_err()
    );

    b.open(&format!("{base}/console/#/case/{other_id}")).await;
    b.wait_text("#flash", "404").await;
    let page = b.find("#view").await.text().await.unwrap();
    assert!(
        !page.contains("yazhou"),
        "nothing of the other case is shown: {page}"
    );
    b.shot("08-other-district-hidden").await;

    b.open(&format!("{base}/console/#/case/{own_id}")).await;
    let shown = b.wait_text("#fact-description", "<img").await;
    assert_eq!(shown, hostile);
    assert!(
        b.client
            .find(fantoccini::Locator::Css("#fact-description img"))
            .await
            .is_err()
    );
    assert_ne!(b.client.title().await.unwrap(), "pwned");

    // The plug-ins page of another district is refused by the API, and shown as such.
    b.open(&format!("{base}/console/#/plugins/yazhou")).await;
    b.wait_text("#flash", "404").await;
}

/// Activating a version that would change what happens to recent cases asks first: a
/// version with no opinion on anything, about to replace Tianya's rules, shows that the
/// e-bike case would lose its one-working-day deadline (the city default deciding); "cancel"
/// leaves Tianya's rules in force, "activate anyway" activates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activating_a_version_that_changes_recent_cases_asks_first() {
    let server = TestServer::start();
    let base = server.listen().await;
    let ebike = serde_json::json!({"district": "tianya", "category": "ev-charging", "location": {"grid": "tianya/xidao/grid-01"}});
    assert_eq!(
        server
            .json("POST", "/v1/cases", &server.admin, ebike)
            .await
            .status,
        201
    );
    let active = |r: &civic_tests::Reply| r.json["slot"]["active"].as_str().map(str::to_owned);
    let before = active(
        &server
            .get("/v1/districts/tianya/plugins/routing", &server.admin)
            .await,
    )
    .unwrap();
    let put = server
        .send(
            "PUT",
            "/v1/districts/tianya/plugins/routing?name=careless&config=no-opinion",
            Some(&server.admin),
            Some("application/wasm"),
            civic_tests::fixture(civic_tests::fixtures::FX_HOSTILE),
        )
        .await;
    let version = put.json["version"].as_str().unwrap().to_owned();

    let b = Browser::start(SHOTS).await;
    b.sign_in(&base, &server.admin).await;
    b.open(&format!("{base}/console/#/plugins/tianya")).await;
    let button = format!("#hook-routing button.activate[data-version='{version}']");
    b.click(&button).await;
    let asked = b.wait_text("#activate-confirm", "1").await;
    assert!(
        asked.contains("resolution 1 working days") && asked.contains("全市默认规则"),
        "{asked}"
    );
    b.shot("05b-plugins-activation-asks").await;
    b.click("#activate-confirm-no").await;
    let still = active(
        &server
            .get("/v1/districts/tianya/plugins/routing", &server.admin)
            .await,
    );
    assert_eq!(
        still.as_deref(),
        Some(before.as_str()),
        "cancel keeps the rules"
    );

    b.click(&button).await;
    b.find("#activate-confirm").await;
    b.click("#activate-confirm-yes").await;
    b.wait_text("#hook-routing .active-version", &version[..12])
        .await;
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

/// The assessment page: the city admin sees each rate with its counts, as the API answers
/// them, a bar per unit and a six-month trend; choosing a district narrows it; a
/// dispatcher's page shows their district only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assessment_page_shows_each_rate_with_its_counts() {
    let server = TestServer::start();
    let base = server.listen().await;
    let grid_unit = "jiyang/yuehe/grid-01";
    let grid = server
        .token("unit-handler", Some("jiyang"), Some(grid_unit))
        .await;
    let dispatcher = server.token("dispatcher", Some("jiyang"), None).await;
    let id = server.take_in("jiyang", "noise", grid_unit).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let steps = [
        ("sign", &grid, serde_json::json!({})),
        ("start", &grid, serde_json::json!({})),
        (
            "reply",
            &grid,
            serde_json::json!({"text": "已协调商户22点前停止营业"}),
        ),
        (
            "callback",
            &dispatcher,
            serde_json::json!({"satisfied": true, "resolved": true}),
        ),
        ("close", &dispatcher, serde_json::json!({})),
    ];
    for (path, token, body) in steps {
        let r = server
            .json("POST", &format!("/v1/cases/{id}/{path}"), token, body)
            .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.json);
    }
    server
        .take_in("tianya", "noise", "tianya/maling/grid-01")
        .await;

    let b = Browser::start(SHOTS).await;
    b.sign_in(&base, &server.admin).await;
    b.click("#nav-assessment").await;
    let row = format!("#as-table tr[data-unit='{grid_unit}']");
    let satisfied = b
        .wait_text(&format!("{row} td[data-indicator='satisfaction']"), "1/1")
        .await;
    assert!(satisfied.contains("100.0%"), "{satisfied}");
    // The page shows what the API answers, rate by rate.
    let api = server.get("/v1/assessment", &server.admin).await;
    let unit = api.json["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == grid_unit)
        .unwrap()
        .clone();
    for r in unit["figures"]["rates"].as_array().unwrap() {
        let cell = b
            .find(&format!(
                "{row} td[data-indicator='{}']",
                r["indicator"].as_str().unwrap()
            ))
            .await
            .text()
            .await
            .unwrap();
        let counts = format!("{}/{}", r["numerator"], r["denominator"]);
        assert!(cell.contains(&counts), "{cell} should show {counts}");
        if r["rate"].is_null() {
            assert!(cell.contains("无数据"), "{cell}");
        }
    }
    b.find("#as-units svg rect").await;
    b.find("#as-trend circle").await;
    b.shot("20-assessment-city").await;

    b.choose("#as-district", "tianya").await;
    b.find("#as-table tr[data-unit='tianya']").await;
    let html = b.find("#as-table").await.html(true).await.unwrap();
    assert!(
        !html.contains(grid_unit),
        "jiyang's units are not in tianya's page"
    );

    b.click("#sign-out").await;
    b.sign_in(&base, &dispatcher).await;
    b.click("#nav-assessment").await;
    b.find(&row).await;
    let html = b.find("#as-table").await.html(true).await.unwrap();
    assert!(
        !html.contains("data-unit=\"tianya"),
        "a dispatcher sees their district only"
    );
    b.shot("21-assessment-dispatcher").await;
    // The callback on the case page says what each mark is.
    b.open(&format!("{base}/console/#/case/{id}")).await;
    let callback = b.wait_text("#fact-satisfaction", "满意 ✓").await;
    assert!(callback.contains("已解决 ✓"), "{callback}");
}

/// A grid worker who returns a case sees where it went and that it is no longer theirs —
/// not a "not found" for the case they were just looking at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_handler_who_returns_a_case_is_told_where_it_went() {
    let server = TestServer::start();
    let base = server.listen().await;
    let grid = server
        .token("unit-handler", Some("jiyang"), Some("jiyang/yuehe/grid-01"))
        .await;
    let id = server
        .take_in("jiyang", "noise", "jiyang/yuehe/grid-01")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = Browser::start(SHOTS).await;
    b.sign_in(&base, &grid).await;
    b.open(&format!("{base}/console/#/case/{id}")).await;
    b.wait_text("#case-id", &id).await;
    b.click("#act-return").await;
    b.fill("#in-reason", "该烧烤店位于相邻网格，非本网格事项。")
        .await;
    b.click("#submit-return").await;
    let told = b.wait_text("#left-scope", "吉阳区月河社区").await;
    assert!(told.contains("不再由本单位承办"), "{told}");
    let flash = b.find("#flash").await.text().await.unwrap();
    assert!(!flash.contains("404"), "no error is shown: {flash}");
    b.shot("22-returned-left-scope").await;
    // The server agrees: the case went to the community, and the grid cannot read it.
    let c = server.get(&format!("/v1/cases/{id}"), &server.admin).await;
    assert_eq!(c.json["handler"], "jiyang/yuehe");
    assert_eq!(
        server.get(&format!("/v1/cases/{id}"), &grid).await.status,
        404
    );
}
