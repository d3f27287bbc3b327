//! Dispatcher views: a district's overdue cases, and its warning board (yellow and red).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;

use super::extract::Auth;
use super::{ApiError, AppState, Route, blocking};
use crate::auth::{Principal, Role};
use crate::timers;

pub(crate) fn routes() -> Vec<Route> {
    let r = |path, summary, handler| Route {
        path,
        method: "GET",
        summary,
        auth: true,
        body: None,
        ok: 200,
        handler,
    };
    vec![
        r(
            "/v1/districts/{district}/overdue",
            "Open cases past their resolution deadline (red)",
            get(overdue),
        ),
        r(
            "/v1/districts/{district}/warnings",
            "Open cases past their warning point (yellow) or overdue (red)",
            get(warnings),
        ),
    ]
}

fn allowed(p: &Principal, district: &str) -> bool {
    match p.role {
        Role::CityAdmin => true,
        Role::DistrictAdmin | Role::Dispatcher => p.district.as_deref() == Some(district),
        _ => false,
    }
}

async fn view(
    state: AppState,
    p: Principal,
    district: String,
    only_red: bool,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let out = blocking(&state, move |svc| {
        if !allowed(&p, &district) || !svc.directory()?.is_district(&district) {
            return Err(ApiError::NotFound(format!(
                "district {district} has no board visible to this token"
            )));
        }
        let now = svc.clock.now();
        let cases = timers::board(svc, &district, now, only_red)?;
        Ok(serde_json::json!({"district": district, "now": now, "cases": cases}))
    })
    .await?;
    Ok(axum::Json(out))
}

async fn overdue(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(d): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    view(s, p, d, true).await
}

async fn warnings(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(d): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    view(s, p, d, false).await
}
