//! Health, metrics and the API description.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use super::{AppState, Route, blocking};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::open(
            "/healthz",
            "GET",
            "Liveness and readiness",
            200,
            get(health),
        ),
        Route::open("/metrics", "GET", "Prometheus metrics", 200, get(metrics)),
        Route::open(
            "/v1/openapi.json",
            "GET",
            "This API's OpenAPI document",
            200,
            get(openapi),
        ),
    ]
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, store) = blocking(&state, |svc| Ok((svc.is_ready(), svc.store_health())))
        .await
        .unwrap_or((false, crate::service::StoreHealth::unknown()));
    let sweeper = state.svc.sweep_heartbeat().health();
    let (code, status) = match (ready, store.error.is_some(), sweeper.status) {
        (_, true, _) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (false, _, _) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting"),
        (true, _, "stalled") => (axum::http::StatusCode::OK, "degraded"),
        (true, _, _) => (axum::http::StatusCode::OK, "ok"),
    };
    (
        code,
        axum::Json(
            serde_json::json!({"status": status, "node": state.svc.node(), "store": store, "sweeper": sweeper}),
        ),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = blocking(&state, |svc| {
        if let Ok(counts) = svc.status_counts() {
            for ((district, status), n) in counts {
                svc.metrics()
                    .set_cases(&district, status.as_str(), n as i64);
            }
        }
        Ok(svc.metrics().render())
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
