//! The HTTP API: one router per resource, one error type, limits and metrics around all
//! of it. Handlers translate HTTP to service calls; they do not decide.

mod board;
mod cases;
mod console;
mod directory;
mod error;
mod extract;
mod open311;
mod plugins;
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

use crate::service::Service;

/// Largest JSON body.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Largest plug-in upload.
pub const UPLOAD_LIMIT: usize = 16 * 1024 * 1024;

/// Limits the API enforces.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Requests in flight before new ones get 429.
    pub max_in_flight: usize,
    /// How long an upload waits for its compile before answering 202 with where to read
    /// the final answer (kept well under `request_timeout`).
    pub upload_wait: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_in_flight: 1024,
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
    timeout: Duration,
    upload_wait: Duration,
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

/// One documented route: the router and the OpenAPI description come from this table.
pub(crate) struct Route {
    pub path: &'static str,
    pub method: &'static str,
    pub summary: &'static str,
    pub auth: bool,
    pub body: Option<&'static str>,
    pub ok: u16,
    pub handler: MethodRouter<AppState>,
}

impl Route {
    /// A route that needs a bearer token.
    pub(crate) fn authed(
        path: &'static str,
        method: &'static str,
        summary: &'static str,
        body: Option<&'static str>,
        ok: u16,
        handler: MethodRouter<AppState>,
    ) -> Self {
        Route {
            path,
            method,
            summary,
            auth: true,
            body,
            ok,
            handler,
        }
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
        timeout: config.request_timeout,
        upload_wait: config.upload_wait.min(config.request_timeout / 2),
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

/// Load shedding, request timeout and metrics around every request.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = match state.in_flight.clone().try_acquire_owned() {
        Err(_) => ApiError::TooManyRequests("too many requests in flight; retry shortly".into())
            .into_response(),
        Ok(_permit) => match tokio::time::timeout(state.timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Unavailable(format!(
                "the request took longer than {} s",
                state.timeout.as_secs()
            ))
            .into_response(),
        },
    };
    state.svc.metrics.request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The OpenAPI document, built from the route table.
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for r in routes() {
        let params: Vec<serde_json::Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| serde_json::json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = serde_json::json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {
                r.ok.to_string(): {"description": "success"},
                "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if r.auth {
            op["security"] = serde_json::json!([{"bearer": []}]);
        }
        if let Some(body) = r.body {
            let media = if body == "wasm" {
                "application/wasm"
            } else {
                "application/json"
            };
            op["requestBody"] = serde_json::json!({"required": true, "content": {media: {"schema": {"description": body}}}});
        }
        let entry = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| serde_json::json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "civic-rules", "version": env!("CARGO_PKG_VERSION"), "description": "City service hotline platform with district rule plug-ins."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
        }
    })
}
