//! Cases: intake, reading, listing, history, lifecycle actions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::extract::{Auth, Json};
use super::{ApiError, AppState, Route, blocking};
use crate::auth::{Principal, Role};
use crate::intake::{self, NewCase};
use crate::lifecycle;
use crate::model::{Case, CaseStatus, Event, EventBody};
use crate::service::{CaseAction, Service};
use crate::store::{Filter, MAX_PAGE};
use crate::views;

pub(crate) fn routes() -> Vec<Route> {
    let r = Route::authed;
    vec![
        r("/v1/cases", "POST", "Take a case in: eligibility, routing, one durable write", 201, post(create))
            .json::<NewCase>()
            .returns::<CaseView>(),
        r("/v1/cases", "GET", "List visible cases with their lights (filters incl. light, newest or urgent order, cursor pagination)", 200, get(list))
            .query::<ListQuery>()
            .returns::<crate::views::BoardPage>(),
        r("/v1/cases/{id}", "GET", "A case", 200, get(read)).returns::<CaseView>(),
        r("/v1/cases/{id}/history", "GET", "A case's history with decision records", 200, get(history)),
        r("/v1/cases/{id}/sign", "POST", "The handling unit signs for the case (签收)", 200, post(sign))
            .json::<Versioned>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/start", "POST", "First contact made; work starts", 200, post(start))
            .json::<Versioned>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/reply", "POST", "The unit replies with its result", 200, post(reply))
            .json::<WithText>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/return", "POST", "Return the case (退单) with a reason; it is routed again", 200, post(return_case))
            .json::<WithReason>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/extension", "POST", "Request an extension (延期)", 200, post(request_extension))
            .json::<ExtensionBody>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/extension/approve", "POST", "Approve the pending extension", 200, post(approve_extension))
            .json::<Versioned>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/extension/refuse", "POST", "Refuse the pending extension", 200, post(refuse_extension))
            .json::<WithReason>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/callback", "POST", "Record the callback (回访)", 200, post(callback))
            .json::<CallbackBody>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/close", "POST", "Close the case (办结)", 200, post(close))
            .json::<Versioned>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/reopen", "POST", "Reopen the case; it is routed again", 200, post(reopen))
            .json::<WithReason>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/merge", "POST", "Merge into a duplicate", 200, post(merge))
            .json::<MergeBody>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/replay", "GET", "Re-run the case's recorded decisions and compare", 200, get(replay)),
        r("/v1/cases/{id}/pause", "POST", "Wait for the citizen: deadlines stop", 200, post(pause))
            .json::<WithReason>()
            .returns::<CaseView>(),
        r("/v1/cases/{id}/resume", "POST", "End the wait: deadlines move by the paused working time", 200, post(resume))
            .json::<Versioned>()
            .returns::<CaseView>(),
    ]
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
    lifecycle::offered(c)
        .into_iter()
        .filter(|a| p.can_act(c, a))
        .collect()
}

#[derive(Serialize, utoipa::ToSchema)]
struct DecisionSummary {
    hook: String,
    plugin: String,
    version: String,
    reasons: Vec<String>,
    fallback: bool,
}

fn summary(d: intake::Decided) -> DecisionSummary {
    DecisionSummary {
        hook: d.hook,
        plugin: d.plugin.name,
        version: d.plugin.version,
        reasons: d.reasons,
        fallback: d.fallback,
    }
}

fn view(svc: &Service, p: &Principal, case: Case) -> Result<CaseView, ApiError> {
    let decisions = svc
        .store
        .history_of(&case.id, case.event_count)?
        .into_iter()
        .filter_map(|e| match e.what {
            EventBody::Decision(r) => Some(summary(intake::Decided::of(&r))),
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
    match svc.store.get_case(id)? {
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
        let taken = intake::intake(svc, &new, &p.id)?;
        Ok(CaseView {
            actions: actions(&p, &taken.case),
            case: taken.case,
            decisions: taken.decisions.into_iter().map(summary).collect(),
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
    let events: Vec<Event> = blocking(&state, move |svc| {
        let case = visible(svc, &p, &id)?;
        let mut events = svc.store.history_of(&id, case.event_count)?;
        if p.role != Role::CityAdmin {
            for e in &mut events {
                if let EventBody::Decision(r) = &mut e.what {
                    redact_other_districts(svc, &case.district, r);
                }
            }
        }
        Ok(events)
    })
    .await?;
    Ok(axum::Json(serde_json::json!({ "events": events })))
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
        rc["id"].as_str().is_some_and(
            |id| matches!(svc.store.get_case(id), Ok(Some(c)) if c.district == district),
        )
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
    #[param(value_type = Option<views::Lamp>, inline)]
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
        .map(str::parse::<views::Lamp>)
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

async fn run(
    state: AppState,
    p: Principal,
    id: String,
    action: CaseAction,
    version: Option<u64>,
) -> Result<axum::Json<CaseView>, ApiError> {
    let out = blocking(&state, move |svc| {
        let c = visible(svc, &p, &id)?;
        if !p.can_act(&c, action.name()) {
            return Err(ApiError::Forbidden(format!(
                "this token may not {} case {id}",
                action.name()
            )));
        }
        let c = svc.act(&id, &action, &p.id, version)?;
        view(svc, &p, c)
    })
    .await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Versioned {
    version: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WithText {
    #[serde(alias = "reason")]
    text: String,
    version: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WithReason {
    reason: String,
    version: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExtensionBody {
    days: u32,
    reason: String,
    version: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    satisfied: bool,
    resolved: bool,
    #[serde(default)]
    note: String,
    version: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    into: String,
    version: Option<u64>,
}

type Id = Path<String>;

async fn sign(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<Versioned, true>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Sign, b.version).await
}
async fn start(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<Versioned, true>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Start, b.version).await
}
async fn reply(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<WithText>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Reply(b.text), b.version).await
}
async fn return_case(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<WithReason>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Return(b.reason), b.version).await
}
async fn request_extension(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<ExtensionBody>,
) -> Result<impl IntoResponse, ApiError> {
    run(
        s,
        p,
        id,
        CaseAction::RequestExtension(b.days, b.reason),
        b.version,
    )
    .await
}
async fn approve_extension(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<Versioned, true>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::ApproveExtension, b.version).await
}
async fn refuse_extension(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<WithReason>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::RefuseExtension(b.reason), b.version).await
}
async fn callback(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<CallbackBody>,
) -> Result<impl IntoResponse, ApiError> {
    run(
        s,
        p,
        id,
        CaseAction::Callback {
            satisfied: b.satisfied,
            resolved: b.resolved,
            note: b.note,
        },
        b.version,
    )
    .await
}
async fn close(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<Versioned, true>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Close, b.version).await
}
async fn reopen(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<WithReason>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Reopen(b.reason), b.version).await
}
async fn merge(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<MergeBody>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Merge(b.into), b.version).await
}
async fn pause(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<WithReason>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Pause(b.reason), b.version).await
}
async fn resume(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Id,
    Json(b): Json<Versioned, true>,
) -> Result<impl IntoResponse, ApiError> {
    run(s, p, id, CaseAction::Resume, b.version).await
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
