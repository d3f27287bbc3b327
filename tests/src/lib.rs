//! Shared helpers for the integration tests: fixture paths and sample inputs.
#![deny(missing_docs)]

pub mod browser;
pub mod year;
/// The PostgreSQL the tests start (a crate of its own, so the host's process tests use it too).
pub use civic_pg_harness as postgres;

/// Paths of the fixture components, built from source by the build script.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Paths of the plug-ins written in Python (`plugins/python/`), built from source with
/// componentize-py by the build script.
pub mod python_plugins {
    include!(concat!(env!("OUT_DIR"), "/python_guests.rs"));
}

/// Paths of the plug-ins written in JavaScript (`plugins/js/`), built from source with
/// componentize-js by the build script.
pub mod js_plugins {
    include!(concat!(env!("OUT_DIR"), "/js_guests.rs"));
}

/// Reads a fixture component.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

use civic_host::runtime::wit;

/// Asks `plugin` to route `case` as at its creation (no recent cases, no timer): the one
/// routing call the runtime tests and benchmarks make. (Its error is the runtime's own
/// `PluginError`, large by design: it says which plug-in failed and how.)
#[allow(clippy::result_large_err)]
pub fn route(
    runtime: &civic_host::runtime::Runtime,
    plugin: &civic_host::runtime::Plugin,
    case: &wit::Case,
    directory: &std::sync::Arc<civic_host::directory::Directory>,
) -> Result<civic_host::runtime::Evaluation<wit::RoutingDecision>, civic_host::runtime::PluginError>
{
    let input = civic_host::runtime::Input {
        hook: civic_host::runtime::Hook::Routing,
        case,
        now: case.created_at,
        recent_cases: &[],
        directory,
        timer: None,
    };
    runtime.evaluate(plugin, &input).map(|e| {
        e.map(|d| {
            d.into_routing()
                .expect("a routing hook answers with a routing decision")
        })
    })
}

/// A case of `district` and `category` located in `grid` (community = the grid's parent),
/// created 2026-11-30T09:00+08:00 (a Monday).
pub fn case(district: &str, category: &str, grid: Option<&str>) -> wit::Case {
    wit::Case {
        id: "c-test-0001".into(),
        district: district.into(),
        category: category.into(),
        kind: wit::CaseKind::Complaint,
        channel: wit::Channel::Phone,
        urgency: wit::Urgency::Normal,
        location: wit::Location {
            community: grid
                .and_then(|g| g.rsplit_once('/'))
                .map(|(c, _)| c.to_owned()),
            grid: grid.map(str::to_owned),
            lat: None,
            lon: None,
        },
        caller_key: "k-test".into(),
        flags: wit::CaseFlags::empty(),
        dispute: None,
        status: wit::CaseStatus::Received,
        eligibility: None,
        handler: None,
        co_handlers: vec![],
        returned_by: vec![],
        escalation_level: 0,
        reopen_count: 0,
        created_at: 1_796_000_400_000,
        updated_at: 1_796_000_400_000,
    }
}

/// A service on a temporary data directory with the sample city and the bundled plug-ins,
/// driven through the real router in-process (no socket).
pub struct TestServer {
    /// The service behind the router.
    pub svc: std::sync::Arc<civic_host::service::Service>,
    /// The router.
    pub app: axum::Router,
    /// The first admin's token.
    pub admin: String,
    /// The data directory (removed on drop).
    pub dir: tempfile::TempDir,
}

/// A response: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub json: serde_json::Value,
}

impl TestServer {
    /// Starts a service with the system clock.
    pub fn start() -> Self {
        Self::start_with(|c| c)
    }

    /// Starts a service with an adjusted configuration.
    pub fn start_with(
        f: impl FnOnce(civic_host::service::ServiceConfig) -> civic_host::service::ServiceConfig,
    ) -> Self {
        Self::start_with_api(f, civic_host::api::ApiConfig::default())
    }

    /// Starts a service with an adjusted configuration and API limits.
    pub fn start_with_api(
        f: impl FnOnce(civic_host::service::ServiceConfig) -> civic_host::service::ServiceConfig,
        api: civic_host::api::ApiConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = f(civic_host::service::ServiceConfig::new(dir.path()));
        let svc = civic_host::service::Service::open_default(&config).unwrap();
        let boot = svc.bootstrap(dir.path()).unwrap();
        let svc = std::sync::Arc::new(svc);
        let app = civic_host::api::app(svc.clone(), api);
        TestServer {
            svc,
            app,
            admin: boot.admin_token.unwrap(),
            dir,
        }
    }

    /// Sends a request with an optional bearer token and body (JSON unless `content_type` says otherwise).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let (status, text) = self.send_raw(method, path, token, content_type, body).await;
        Reply {
            status,
            json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Sends a request and returns the status and the body as text (for XML and errors).
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String) {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends JSON.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> Reply {
        self.send(
            method,
            path,
            Some(token),
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send("GET", path, Some(token), None, vec![]).await
    }

    /// Serves the router on a loopback socket (for a browser); returns its base URL.
    pub async fn listen(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.app.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// Takes in a case as the admin (district, category, grid), checks it was accepted (201)
    /// and returns the stored case as the API answered it.
    pub async fn take_in(&self, district: &str, category: &str, grid: &str) -> serde_json::Value {
        let body = serde_json::json!({"district": district, "category": category, "location": {"grid": grid}});
        let r = self.json("POST", "/v1/cases", &self.admin, body).await;
        assert_eq!(
            r.status, 201,
            "intake of {category} in {grid}: {:?}",
            r.json
        );
        r.json
    }

    /// Uploads a component as the admin (`path_query`: the plug-in route with its query)
    /// and waits for the final answer as `civic plugin deploy` does: a compile slower than
    /// the request answers 202, and the upload's status URL then gives the outcome. Returns
    /// `Ok(version record)` or `Err(reason)`.
    pub async fn deploy(
        &self,
        path_query: &str,
        component: Vec<u8>,
    ) -> Result<serde_json::Value, String> {
        let r = self
            .send(
                "PUT",
                path_query,
                Some(&self.admin),
                Some("application/wasm"),
                component,
            )
            .await;
        match r.status {
            200 | 201 => return Ok(r.json),
            202 => {}
            _ => {
                return Err(r.json["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned());
            }
        }
        let url = r.json["status_url"]
            .as_str()
            .expect("a 202 names its status URL")
            .to_owned();
        loop {
            let s = self.get(&url, &self.admin).await;
            assert_eq!(s.status, 200, "{:?}", s.json);
            match s.json["status"].as_str() {
                Some("compiling") => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Some("accepted") => return Ok(s.json["record"].clone()),
                _ => return Err(s.json["reason"].as_str().unwrap_or_default().to_owned()),
            }
        }
    }

    /// Issues a token with the admin token and returns its secret.
    pub async fn token(&self, role: &str, district: Option<&str>, unit: Option<&str>) -> String {
        let r = self.json("POST", "/v1/tokens", &self.admin.clone(), serde_json::json!({"name": format!("{role} test"), "role": role, "district": district, "unit": unit})).await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        r.json["secret"].as_str().unwrap().to_owned()
    }
}

/// The sample cases, as intake bodies.
pub fn sample_cases() -> Vec<serde_json::Value> {
    include_str!("../../data/sample-cases.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
