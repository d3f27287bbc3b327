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
        r(
            "/v1/assessment",
            "Assessment (考核): each rate with its numerator and denominator, per unit, per district and for the city, for a month (?month=YYYY-MM, default this month) or days (?from=&to=), as far as the token may see",
            get(assessment),
        )
        .query::<AssessmentQuery>()
        .returns::<crate::views::Assessment>(),
    ]
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct AssessmentQuery {
    /// A calendar month in the city's time, `YYYY-MM` (default: this month).
    month: Option<String>,
    /// The first day, `YYYY-MM-DD` (with `to`, instead of `month`).
    from: Option<String>,
    /// The last day counted, `YYYY-MM-DD`.
    to: Option<String>,
    /// One district only (default: everything this token may see).
    district: Option<String>,
}

/// The longest range of days one assessment covers.
const MAX_ASSESSED_DAYS: i64 = 366;

/// The days a query asks for, first and last.
fn assessed_days(
    q: &AssessmentQuery,
    today: crate::calendar::Day,
) -> Result<(crate::calendar::Day, crate::calendar::Day), ApiError> {
    use crate::calendar::{format_month, parse_date, parse_month};
    let bad = |m: String| ApiError::BadRequest(m);
    let (first, last) = match (&q.month, &q.from, &q.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(bad("give month, or from and to, not both".into()));
        }
        (Some(m), None, None) => {
            parse_month(m).ok_or_else(|| bad(format!("month `{m}` is not a month like 2026-11")))?
        }
        (None, Some(f), Some(t)) => {
            let day = |s: &str, what: &str| {
                parse_date(s)
                    .ok_or_else(|| bad(format!("{what} `{s}` is not a date like 2026-11-30")))
            };
            (day(f, "from")?, day(t, "to")?)
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(bad(
                "give both from and to (dates, the last one counted)".into()
            ));
        }
        (None, None, None) => parse_month(&format_month(today)).expect("a month it formatted"),
    };
    if last < first {
        return Err(bad("to must not be before from".into()));
    }
    if last - first >= MAX_ASSESSED_DAYS {
        return Err(bad(format!(
            "an assessment covers at most {MAX_ASSESSED_DAYS} days; ask for a shorter range"
        )));
    }
    Ok((first, last))
}

async fn assessment(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<AssessmentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    use crate::views::Audience;
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let out = blocking(&state, move |svc| {
        let (first, last) = assessed_days(&q, svc.calendar().day_of(svc.clock().now()))?;
        let hidden = |d: &str| {
            ApiError::NotFound(format!(
                "district {d} has no assessment visible to this token"
            ))
        };
        let own = p.district.clone().unwrap_or_default();
        let audience = match (p.role, q.district) {
            (Role::CityAdmin, None) => Audience::City,
            (Role::CityAdmin, Some(d)) if svc.directory()?.is_district(&d) => Audience::District(d),
            (Role::DistrictAdmin | Role::Dispatcher, None) => Audience::District(own),
            (Role::DistrictAdmin | Role::Dispatcher, Some(d)) if d == own => Audience::District(d),
            (Role::UnitHandler, d) if d.as_deref().is_none_or(|d| d == own) => Audience::Unit {
                district: own,
                unit: p.unit.clone().unwrap_or_default(),
            },
            (_, d) => return Err(hidden(d.as_deref().unwrap_or(&own))),
        };
        Ok(crate::views::assessment(svc, &audience, first, last)?)
    })
    .await?;
    Ok(axum::Json(out))
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
