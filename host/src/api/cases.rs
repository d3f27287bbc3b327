//! Cases: intake, reading, listing, history, lifecycle actions.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::extract::{Auth, Json};
use super::{ApiError, AppState, Route, blocking};
use crate::actions::{ACTIONS, ActionSpec};
use crate::auth::{Principal, Role};
use crate::intake::NewCase;
use crate::model::{Case, CaseStatus, DecisionSummary, Event, EventBody};
use crate::service::Service;
use crate::store::{Filter, MAX_PAGE};
use crate::views;

pub(crate) fn routes() -> Vec<Route> {
    let r = Route::authed;
    let mut routes = vec![
        r(
            "/v1/cases",
            "POST",
            "Take a case in: eligibility, routing, one durable write",
            201,
            post(create),
        )
        .json::<NewCase>()
        .returns::<CaseView>(),
        r(
            "/v1/cases",
            "GET",
            "List visible cases with their lights (filters incl. light, newest or urgent order, cursor pagination)",
            200,
            get(list),
        )
        .query::<ListQuery>()
        .returns::<crate::views::BoardPage>(),
        r("/v1/cases/{id}", "GET", "A case", 200, get(read)).returns::<CaseView>(),
        r(
            "/v1/cases/{id}/history",
            "GET",
            "A case's history with decision records",
            200,
            get(history),
        ),
        r(
            "/v1/cases/{id}/replay",
            "GET",
            "Re-run the case's recorded decisions and compare",
            200,
            get(replay),
        ),
        r(
            "/v1/actions",
            "GET",
            "The actions people take on cases: names, routes, labels and the fields each asks for (what the console builds its buttons from)",
            200,
            get(declared),
        ),
    ];
    // One route per declared action: its path, body and summary come from the declaration.
    for spec in ACTIONS {
        let handler = move |State(s): State<AppState>,
                            Auth(p): Auth,
                            Path(id): Path<String>,
                            headers: HeaderMap,
                            body: Bytes| act(s, p, id, spec, headers, body);
        let mut route =
            r(spec.path, "POST", spec.summary, 200, post(handler)).returns::<CaseView>();
        route.body = Some(super::openapi::Body::Json(spec.schema));
        routes.push(route);
    }
    routes
}

/// A case with the reason codes of the decisions that shaped it.
#[derive(Serialize, utoipa::ToSchema)]
struct CaseView {
    #[serde(flatten)]
    case: Case,
    decisions: Vec<DecisionSummary>,
    /// The lifecycle actions this token may take on the case as it is now.
    actions: Vec<&'static str>,
}

/// The actions the state machine would accept and the principal may take.
fn actions(p: &Principal, c: &Case) -> Vec<&'static str> {
    crate::actions::offered(c)
        .into_iter()
        .filter(|a| p.can_act(c, a))
        .collect()
}

fn view(svc: &Service, p: &Principal, case: Case) -> Result<CaseView, ApiError> {
    let decisions = svc
        .history(&case)?
        .into_iter()
        .filter_map(|e| match e.what {
            EventBody::Decision(r) => Some(DecisionSummary::of(&r)),
            _ => None,
        })
        .collect();
    Ok(CaseView {
        actions: actions(p, &case),
        case,
        decisions,
    })
}

/// Reads a case the principal may see; any other case is "not found".
fn visible(svc: &Service, p: &Principal, id: &str) -> Result<Case, ApiError> {
    match svc.find_case(id)? {
        Some(c) if p.can_read(&c) => Ok(c),
        _ => Err(ApiError::NotFound(format!("case {id} does not exist"))),
    }
}

async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(new): Json<NewCase>,
) -> Result<impl IntoResponse, ApiError> {
    if !p.can_create(&new.district) {
        return Err(ApiError::Forbidden(format!(
            "this token may not create cases in {}",
            new.district
        )));
    }
    let out = blocking(&state, move |svc| {
        let taken = svc.intake(&new, &p.id)?;
        Ok(CaseView {
            actions: actions(&p, &taken.case),
            case: taken.case,
            decisions: taken.decisions,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn read(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let out = blocking(&state, move |svc| view(svc, &p, visible(svc, &p, &id)?)).await?;
    Ok(axum::Json(out))
}

async fn history(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (events, actors): (Vec<Event>, _) = blocking(&state, move |svc| {
        let case = visible(svc, &p, &id)?;
        let mut events = svc.history(&case)?;
        if p.role != Role::CityAdmin {
            for e in &mut events {
                if let EventBody::Decision(r) = &mut e.what {
                    redact_other_districts(svc, &case.district, r);
                }
            }
        }
        // People read names; the events keep the token ids an audit needs.
        let actors = svc.actors(events.iter().map(|e| e.actor.as_str()))?;
        Ok((events, actors))
    })
    .await?;
    Ok(axum::Json(
        serde_json::json!({ "events": events, "actors": actors }),
    ))
}

/// Decision records made before rules saw only their own district's cases list the
/// caller's cases elsewhere: those entries are left out for anyone but a city admin (the
/// stored record, which replay uses, is unchanged).
fn redact_other_districts(svc: &Service, district: &str, r: &mut crate::model::DecisionRecord) {
    let mut input = r.input.value();
    let Some(recent) = input.get_mut("recent_cases").and_then(|v| v.as_array_mut()) else {
        return;
    };
    let before = recent.len();
    recent.retain(|rc| {
        rc["id"]
            .as_str()
            .is_some_and(|id| matches!(svc.find_case(id), Ok(Some(c)) if c.district == district))
    });
    if recent.len() != before {
        input["redacted_recent_cases"] = (before - recent.len()).into();
        r.input = crate::model::RawJson::of(&input);
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this district (a district token sees only its own).
    district: Option<String>,
    /// Only this lifecycle state.
    #[param(value_type = Option<CaseStatus>, inline)]
    status: Option<String>,
    /// Only cases this unit leads or helps with.
    unit: Option<String>,
    /// Only this service code.
    category: Option<String>,
    /// Created at or after (ms since the epoch).
    created_from: Option<i64>,
    /// Created before (ms since the epoch).
    created_to: Option<i64>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// Cases per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// Only cases with this light now.
    #[param(value_type = Option<crate::model::Light>, inline)]
    light: Option<String>,
    /// `newest` (default) or `urgent` (needs a district or a unit).
    #[param(value_type = Option<views::Order>, inline)]
    order: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<CaseStatus>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let light = q
        .light
        .as_deref()
        .map(str::parse::<crate::model::Light>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let order = q
        .order
        .as_deref()
        .map(str::parse::<views::Order>)
        .transpose()
        .map_err(ApiError::BadRequest)?
        .unwrap_or_default();
    if q.limit.is_some_and(|l| l == 0 || l > MAX_PAGE) {
        return Err(ApiError::BadRequest(format!("limit must be 1-{MAX_PAGE}")));
    }
    let mut filter = Filter {
        district: q.district,
        status,
        unit: q.unit,
        category: q.category,
        created_from: q.created_from,
        created_to: q.created_to,
        created_by: None,
    };
    // The token's scope narrows every listing; asking for another district shows nothing.
    match p.role {
        Role::CityAdmin => {}
        Role::DistrictAdmin | Role::Dispatcher => {
            if filter.district.is_some() && filter.district != p.district {
                return Ok(axum::Json(serde_json::json!({"cases": [], "next": null})));
            }
            filter.district = p.district.clone();
        }
        Role::UnitHandler => {
            let other_unit = filter.unit.is_some() && filter.unit != p.unit;
            let other_district = filter.district.is_some() && filter.district != p.district;
            if other_unit || other_district {
                return Ok(axum::Json(serde_json::json!({"cases": [], "next": null})));
            }
            filter.unit = p.unit.clone();
            filter.district = p.district.clone();
        }
        Role::IntakeAgent => filter.created_by = Some(p.id.clone()),
    }
    // Urgency has no index: it reads the whole scope, which must be a district's, a unit's
    // or an agent's cases, never the whole city's.
    if order == views::Order::Urgent
        && filter.district.is_none()
        && filter.unit.is_none()
        && filter.created_by.is_none()
    {
        return Err(ApiError::BadRequest(
            "order=urgent needs a district or a unit to rank; add district=… or unit=…".into(),
        ));
    }
    let limit = q.limit.unwrap_or(50);
    let cursor = q.cursor;
    let page = blocking(&state, move |svc| {
        Ok(views::page(
            svc,
            &filter,
            light,
            order,
            cursor.as_deref(),
            limit,
        )?)
    })
    .await?;
    Ok(axum::Json(serde_json::to_value(page).map_err(|e| {
        ApiError::Internal(format!("cannot encode a page: {e}"))
    })?))
}

/// Takes a declared action: the body as its declaration reads it, the role check by its
/// name, the change by the service.
async fn act(
    state: AppState,
    p: Principal,
    id: String,
    spec: &'static ActionSpec,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<CaseView>, ApiError> {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !body.is_empty() && !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as `Content-Type: application/json`".into(),
        ));
    }
    let (action, version) = (spec.read)(&body).map_err(ApiError::BadRequest)?;
    let out = blocking(&state, move |svc| {
        let c = visible(svc, &p, &id)?;
        if !p.can_act(&c, spec.name) {
            return Err(ApiError::Forbidden(format!(
                "this token may not {} case {id}",
                spec.name
            )));
        }
        let c = svc.act(&id, &action, &p.id, version)?;
        view(svc, &p, c)
    })
    .await?;
    Ok(axum::Json(out))
}

async fn declared(Auth(_): Auth) -> impl IntoResponse {
    axum::Json(serde_json::json!({ "actions": ACTIONS }))
}

async fn replay(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let out = blocking(&state, move |svc| {
        visible(svc, &p, &id)?;
        Ok(crate::replay::replay_case(svc, &id)?)
    })
    .await?;
    Ok(axum::Json(out))
}
