//! `/v1/directory`: what a token sees of the city's units.

use civic_tests::TestServer;
use serde_json::json;

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
