//! Dispatcher views: a district's overdue cases, its warning board (yellow and red) and
//! its overview.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;

use super::extract::Auth;
use super::{ApiError, AppState, Route, blocking};
use crate::auth::{Principal, Role};
use crate::timers;

pub(crate) fn routes() -> Vec<Route> {
    let r = |path, summary, handler| Route::authed(path, "GET", summary, 200, handler);
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
        r(
            "/v1/districts/{district}/overview",
            "Open cases by status, unit and light; decisions per plug-in and rule failures per day (?days=1-31, default 7)",
            get(overview),
        )
        .query::<OverviewQuery>(),
    ]
}

fn allowed(p: &Principal, district: &str) -> bool {
    match p.role {
        Role::CityAdmin => true,
        Role::DistrictAdmin | Role::Dispatcher => p.district.as_deref() == Some(district),
        _ => false,
    }
}

fn district_visible(
    svc: &crate::service::Service,
    p: &Principal,
    district: &str,
) -> Result<(), ApiError> {
    if !allowed(p, district) || !svc.directory()?.is_district(district) {
        return Err(ApiError::NotFound(format!(
            "district {district} has no board visible to this token"
        )));
    }
    Ok(())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct OverviewQuery {
    /// Days of rule activity to count (default 7).
    #[param(minimum = 1, maximum = 31)]
    days: Option<u32>,
}

async fn overview(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(district): Path<String>,
    q: Result<Query<OverviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let days = q.days.unwrap_or(7);
    if !(1..=31).contains(&days) {
        return Err(ApiError::BadRequest("days must be 1-31".into()));
    }
    let out = blocking(&state, move |svc| {
        district_visible(svc, &p, &district)?;
        Ok(crate::views::overview(svc, &district, days)?)
    })
    .await?;
    Ok(axum::Json(out))
}

async fn view(
    state: AppState,
    p: Principal,
    district: String,
    only_red: bool,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let out = blocking(&state, move |svc| {
        district_visible(svc, &p, &district)?;
        let now = svc.clock().now();
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
