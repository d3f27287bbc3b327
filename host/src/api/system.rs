//! Health, metrics and the API description.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use super::{AppState, Route, blocking};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route {
            path: "/healthz",
            method: "GET",
            summary: "Liveness and readiness",
            auth: false,
            body: None,
            ok: 200,
            handler: get(health),
        },
        Route {
            path: "/metrics",
            method: "GET",
            summary: "Prometheus metrics",
            auth: false,
            body: None,
            ok: 200,
            handler: get(metrics),
        },
        Route {
            path: "/v1/openapi.json",
            method: "GET",
            summary: "This API's OpenAPI document",
            auth: false,
            body: None,
            ok: 200,
            handler: get(openapi),
        },
    ]
}

/// Ready (200) once the store answers with a directory; the body also says whether the
/// timer sweeper is completing its sweeps. A stalled sweeper leaves the host ready — intake
/// still works and must not be taken out of a load balancer for it — but the status reads
/// `degraded` for monitoring, with `civic_timer_sweeps_total` to alert on.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let ready = blocking(&state, |svc| {
        Ok(svc
            .store
            .current_directory()
            .map(|d| d.is_some())
            .unwrap_or(false))
    })
    .await
    .unwrap_or(false);
    let sweeper = state.svc.sweep_heartbeat().health();
    let (code, status) = match (ready, sweeper.status) {
        (false, _) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting"),
        (true, "stalled") => (axum::http::StatusCode::OK, "degraded"),
        (true, _) => (axum::http::StatusCode::OK, "ok"),
    };
    (
        code,
        axum::Json(serde_json::json!({"status": status, "sweeper": sweeper})),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = blocking(&state, |svc| {
        if let Ok(counts) = svc.store.status_counts() {
            for ((district, status), n) in counts {
                svc.metrics.set_cases(&district, status.as_str(), n as i64);
            }
        }
        Ok(svc.metrics.render())
    })
    .await
    .unwrap_or_default();
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn openapi() -> impl IntoResponse {
    axum::Json(super::openapi())
}
