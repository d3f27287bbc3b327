//! The HTTP API: one router per resource, one error type, limits and metrics around all
//! of it. Handlers translate HTTP to service calls; they do not decide.

mod board;
mod cases;
mod console;
mod directory;
mod error;
mod extract;
mod open311;
mod openapi;
mod plugins;
mod server;
mod system;
mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tokio::sync::Semaphore;

pub use error::ApiError;
pub(crate) use open311::fuzz_form;
pub use server::{ServerConfig, serve};

use crate::service::Service;

/// Largest JSON body.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Largest plug-in upload: the runtime's component limit.
pub const UPLOAD_LIMIT: usize = crate::runtime::MAX_COMPONENT_BYTES;

/// Limits the API enforces.
///
/// Requests are admitted from three pools, so that clients without credentials cannot
/// crowd out the rest: health and metrics have their own; requests that carry a token (a
/// bearer header, or an Open311 `api_key` in the query) share `max_in_flight`; anonymous
/// ones share `anonymous_in_flight`, at most `per_client_in_flight` from one address.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Requests with credentials in flight before new ones get 429.
    pub max_in_flight: usize,
    /// Requests without credentials in flight, from everyone together.
    pub anonymous_in_flight: usize,
    /// Requests without credentials in flight from one address.
    pub per_client_in_flight: usize,
    /// Longest gap between two pieces of a request body (a slow client is cut off).
    pub body_frame_timeout: Duration,
    /// How long an upload waits for its compile before answering 202 with where to read
    /// the final answer (kept well under `request_timeout`).
    pub upload_wait: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_in_flight: 1024,
            anonymous_in_flight: 256,
            per_client_in_flight: 32,
            body_frame_timeout: Duration::from_secs(5),
            upload_wait: Duration::from_secs(20),
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub svc: Arc<Service>,
    in_flight: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
    system: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    timeout: Duration,
    upload_wait: Duration,
    /// Districts with a backtest running (one at a time per district).
    backtests: Arc<crate::backtest::Running>,
}

/// Anonymous requests in flight per client address.
#[derive(Debug)]
struct PerClient {
    max: usize,
    by_addr: parking_lot::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

struct ClientPermit(Arc<PerClient>, std::net::IpAddr);

impl PerClient {
    fn take(self: &Arc<Self>, addr: std::net::IpAddr) -> Option<ClientPermit> {
        let mut map = self.by_addr.lock();
        let n = map.entry(addr).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientPermit(self.clone(), addr))
    }
}

impl Drop for ClientPermit {
    fn drop(&mut self) {
        let mut map = self.0.by_addr.lock();
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// Runs blocking service work (sled, fsync, Wasm) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let svc = state.svc.clone();
    tokio::task::spawn_blocking(move || f(&svc))
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

/// One documented route: the router and the OpenAPI description come from this table,
/// and the request's body, query and response schemas from the types the handler reads
/// and writes.
pub(crate) struct Route {
    pub path: &'static str,
    pub method: &'static str,
    pub summary: &'static str,
    pub auth: bool,
    pub body: Option<openapi::Body>,
    pub query: Option<openapi::ParamsFn>,
    pub ok: u16,
    pub returns: Option<openapi::SchemaFn>,
    pub handler: MethodRouter<AppState>,
}

impl Route {
    /// A route that needs no token.
    pub(crate) fn open(
        path: &'static str,
        method: &'static str,
        summary: &'static str,
        ok: u16,
        handler: MethodRouter<AppState>,
    ) -> Self {
        Route {
            path,
            method,
            summary,
            auth: false,
            body: None,
            query: None,
            ok,
            returns: None,
            handler,
        }
    }

    /// A route that needs a bearer token.
    pub(crate) fn authed(
        path: &'static str,
        method: &'static str,
        summary: &'static str,
        ok: u16,
        handler: MethodRouter<AppState>,
    ) -> Self {
        Route {
            auth: true,
            ..Self::open(path, method, summary, ok, handler)
        }
    }

    /// Its body is JSON read as a `T`.
    pub(crate) fn json<T: utoipa::ToSchema>(mut self) -> Self {
        self.body = Some(openapi::Body::Json(openapi::schema_of::<T>));
        self
    }

    /// Its body is a form read as a `T`.
    pub(crate) fn form<T: utoipa::ToSchema>(mut self) -> Self {
        self.body = Some(openapi::Body::Form(openapi::schema_of::<T>));
        self
    }

    /// Its body is a Wasm component.
    pub(crate) fn wasm(mut self) -> Self {
        self.body = Some(openapi::Body::Wasm);
        self
    }

    /// Its query parameters are read as a `Q`.
    pub(crate) fn query<Q: utoipa::IntoParams>(mut self) -> Self {
        self.query = Some(openapi::params_of::<Q>);
        self
    }

    /// It answers with a `T`.
    pub(crate) fn returns<T: utoipa::ToSchema>(mut self) -> Self {
        self.returns = Some(openapi::schema_of::<T>);
        self
    }
}

fn routes() -> Vec<Route> {
    let mut all = Vec::new();
    all.extend(system::routes());
    all.extend(cases::routes());
    all.extend(plugins::routes());
    all.extend(tokens::routes());
    all.extend(board::routes());
    all.extend(open311::routes());
    all.extend(directory::routes());
    all
}

/// The application router, with every layer, for a service.
pub fn app(svc: Arc<Service>, config: ApiConfig) -> Router {
    let state = AppState {
        svc,
        in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
        anonymous: Arc::new(Semaphore::new(config.anonymous_in_flight)),
        system: Arc::new(Semaphore::new(64)),
        per_client: Arc::new(PerClient {
            max: config.per_client_in_flight.max(1),
            by_addr: Default::default(),
        }),
        timeout: config.request_timeout,
        upload_wait: config.upload_wait.min(config.request_timeout / 2),
        backtests: Default::default(),
    };
    let mut router: Router<AppState> = Router::new();
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for r in routes() {
        match by_path.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, mr)) => *mr = std::mem::take(mr).merge(r.handler),
            None => by_path.push((r.path, r.handler)),
        }
    }
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router
        .merge(console::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(JSON_LIMIT))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            config.body_frame_timeout,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_else(|| "unmatched".into());
                tracing::info_span!("request", method = %req.method(), route = %route)
            }),
        )
        .with_state(state)
}

/// Which pool admits a request.
enum Pool {
    System,
    Credentialed,
    Anonymous(Option<std::net::IpAddr>),
}

fn pool_of(req: &Request) -> Pool {
    let path = req.uri().path();
    if path == "/healthz" || path == "/metrics" {
        return Pool::System;
    }
    let has_bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .is_some();
    let has_key = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("api_key=")));
    if has_bearer || has_key {
        // Checked before any body is read: a made-up token costs one lookup and a 401.
        Pool::Credentialed
    } else {
        Pool::Anonymous(
            req.extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        )
    }
}

/// Load shedding by pool, request timeout and metrics around every request.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let open311 = req.uri().path().starts_with("/open311/");
    let busy = |what: &str| {
        ApiError::TooManyRequests(format!("too many {what} requests in flight; retry shortly"))
            .into_response()
    };
    let pool = pool_of(&req);
    let what = match pool {
        Pool::System => "health and metrics",
        Pool::Credentialed => "authenticated",
        Pool::Anonymous(_) => "unauthenticated",
    };
    let admitted = match pool {
        Pool::System => state.system.clone().try_acquire_owned().map(|p| (p, None)),
        Pool::Credentialed => state
            .in_flight
            .clone()
            .try_acquire_owned()
            .map(|p| (p, None)),
        Pool::Anonymous(addr) => {
            let client = match addr {
                Some(a) => match state.per_client.take(a) {
                    Some(c) => Some(c),
                    None => {
                        let r = busy("unauthenticated requests from this address");
                        state.svc.metrics().request(
                            &route,
                            &method,
                            r.status().as_u16(),
                            started.elapsed(),
                        );
                        return r;
                    }
                },
                None => None,
            };
            state
                .anonymous
                .clone()
                .try_acquire_owned()
                .map(|p| (p, client))
        }
    };
    let response = match admitted {
        Err(_) => busy(what),
        Ok(_permits) => match tokio::time::timeout(state.timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Unavailable(format!(
                "the request took longer than {} s",
                state.timeout.as_secs()
            ))
            .into_response(),
        },
    };
    let response = as_error_format(response, open311).await;
    state.svc.metrics().request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Every error answers in the API's format, including the ones axum's extractors and
/// layers write as plain text (a path that is not UTF-8, a body over the limit): JSON
/// `{"error": …}`, or Open311's list of `{code, description}` under `/open311/`.
async fn as_error_format(response: Response, open311: bool) -> Response {
    let status = response.status();
    let structured = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json") || c.contains("xml"));
    if !(status.is_client_error() || status.is_server_error()) || structured {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 16 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    if open311 {
        let body = serde_json::json!([{ "code": status.as_u16(), "description": message }]);
        return (status, axum::Json(body)).into_response();
    }
    let code = match status.as_u16() {
        400 => "bad-request",
        404 => "not-found",
        405 => "method-not-allowed",
        408 => "request-timeout",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        422 => "unprocessable",
        429 => "too-many-requests",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    };
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

/// The OpenAPI document, built from the route table.
pub fn openapi() -> serde_json::Value {
    openapi::document(&routes())
}
