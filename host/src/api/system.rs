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
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"status": if ready { "ok" } else { "starting" }})),
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
