//! Plug-ins per district and hook: deploy, list, activate, roll back, dry-run.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::extract::{Auth, Json};
use super::{ApiError, AppState, Route, UPLOAD_LIMIT, blocking};
use crate::auth::Principal;
use crate::dryrun;
use crate::registry::CITY;
use crate::runtime::{Hook, Limits};
use crate::service::Service;

pub(crate) fn routes() -> Vec<Route> {
    let r = Route::authed;
    vec![
        r(
            "/v1/districts/{district}/plugins",
            "GET",
            "Active plug-in per hook of a district (or `city`)",
            None,
            200,
            get(overview),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}",
            "PUT",
            "Deploy a component as a new version (not yet active)",
            Some("wasm"),
            201,
            put(deploy).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}",
            "GET",
            "Versions of a hook, who deployed them, which is active",
            None,
            200,
            get(versions),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/versions/{version}/activate",
            "POST",
            "Make a deployed version active",
            None,
            200,
            post(activate),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/rollback",
            "POST",
            "Re-activate the previous version",
            None,
            200,
            post(rollback),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/shadow",
            "POST",
            "Attach a deployed version as a shadow candidate: it runs alongside the active one without effect",
            Some("{version}"),
            200,
            post(attach_shadow),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/shadow",
            "GET",
            "The shadow candidate's agreements, disagreements and failures",
            None,
            200,
            get(shadow),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/shadow",
            "DELETE",
            "Detach the shadow candidate",
            None,
            200,
            axum::routing::delete(detach_shadow),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/shadow/promote",
            "POST",
            "Make the shadow candidate the active version (one call, recorded in the history)",
            None,
            200,
            post(promote_shadow),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/backtest",
            "POST",
            "Re-evaluate past cases under a candidate and the active version; report the differences",
            Some("{version, from?, to?, sample?}"),
            200,
            post(backtest),
        ),
        r(
            "/v1/districts/{district}/plugins/{hook}/dry-run",
            "POST",
            "Evaluate a case against a version; stores nothing",
            Some("DryRun"),
            200,
            post(dry_run),
        ),
    ]
}

/// A district the principal may see plug-ins of, or `city`; anything else is not found.
fn scope(svc: &Service, p: &Principal, district: &str, manage: bool) -> Result<(), ApiError> {
    use crate::auth::Role;
    let exists = district == CITY || svc.directory()?.is_district(district);
    let readable = if district == CITY {
        matches!(
            p.role,
            Role::CityAdmin | Role::DistrictAdmin | Role::Dispatcher
        )
    } else {
        p.can_read_plugins(district)
    };
    if !exists || !readable {
        return Err(ApiError::NotFound(format!(
            "district {district} has no plug-ins visible to this token"
        )));
    }
    if manage && !p.can_manage_plugins(district) {
        return Err(ApiError::Forbidden(format!(
            "this token may not manage plug-ins of {district}"
        )));
    }
    Ok(())
}

/// The shape every slot-changing route shares: parse the hook, check the token may manage
/// the district's plug-ins, change the slot, answer with the slot.
async fn change_slot(
    state: AppState,
    p: Principal,
    district: String,
    hook_name: &str,
    change: impl FnOnce(
        &crate::registry::Registry,
        &str,
        Hook,
        &str,
        crate::model::Millis,
    ) -> Result<crate::registry::SlotRecord, crate::registry::RegistryError>
    + Send
    + 'static,
) -> Result<axum::Json<crate::registry::SlotRecord>, ApiError> {
    let h = hook(hook_name)?;
    let slot = blocking(&state, move |svc| {
        scope(svc, &p, &district, true)?;
        Ok(change(&svc.registry, &district, h, &p.id, svc.clock.now())?)
    })
    .await?;
    Ok(axum::Json(slot))
}

fn hook(s: &str) -> Result<Hook, ApiError> {
    s.parse().map_err(ApiError::NotFound)
}

async fn overview(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(district): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        let mut hooks = serde_json::Map::new();
        for h in Hook::ALL {
            let own = svc.registry.slot(&district, h)?;
            let resolved = svc.registry.resolve(&district, h);
            hooks.insert(h.as_str().into(), serde_json::json!({
                "own_active": own.active,
                "effective": resolved.as_ref().map(|r| serde_json::json!({"name": r.active.record.name, "version": r.active.record.version, "city_default": r.is_city_default})),
            }));
        }
        Ok(serde_json::json!({"district": district, "hooks": hooks}))
    })
    .await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployQuery {
    name: Option<String>,
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    memory_bytes: Option<u64>,
    config: Option<String>,
}

async fn deploy(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
    q: Result<Query<DeployQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let h = hook(&hook_name)?;
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != "application/wasm" {
        return Err(ApiError::UnsupportedMediaType(
            "upload the component as `Content-Type: application/wasm`".into(),
        ));
    }
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("the component is larger than {UPLOAD_LIMIT} bytes"))
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let name = q.name.unwrap_or_else(|| format!("{district}-{hook_name}"));
    if name.is_empty() || name.len() > 100 || q.config.as_ref().is_some_and(|c| c.len() > 16 * 1024)
    {
        return Err(ApiError::BadRequest(
            "name must be 1-100 bytes and config at most 16 KiB".into(),
        ));
    }
    let d = Limits::default();
    let limits = Limits {
        fuel: q.fuel.unwrap_or(d.fuel),
        timeout: q
            .timeout_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(d.timeout),
        memory_bytes: q.memory_bytes.unwrap_or(d.memory_bytes),
    };
    let config = q.config.unwrap_or_else(|| "{}".into());
    let (record, created) = blocking(&state, move |svc| {
        scope(svc, &p, &district, true)?;
        let now = svc.clock.now();
        Ok(svc
            .registry
            .deploy(&district, h, &name, &bytes, limits, &config, &p.id, now)?)
    })
    .await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        axum::Json(record),
    ))
}

async fn versions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        let (versions, slot) = svc.registry.list(&district, h)?;
        Ok(serde_json::json!({"district": district, "hook": h, "versions": versions, "slot": slot}))
    })
    .await?;
    Ok(axum::Json(out))
}

async fn activate(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name, version)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    change_slot(
        state,
        p,
        district,
        &hook_name,
        move |reg, d, h, actor, now| reg.activate(d, h, &version, actor, now),
    )
    .await
}

async fn rollback(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    change_slot(
        state,
        p,
        district,
        &hook_name,
        move |reg, d, h, actor, now| reg.rollback(d, h, actor, now),
    )
    .await
}

async fn dry_run(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
    Json(body): Json<DryRunBody>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        if district != CITY && body.request.case.district != district {
            return Err(ApiError::Unprocessable(format!(
                "the case is in {}, not {district}",
                body.request.case.district
            )));
        }
        let plugin = match &body.version {
            Some(v) => svc.registry.plugin(&district, h, v)?,
            None => svc
                .registry
                .resolve(&district, h)
                .map(|r| r.active.plugin.clone())
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no {} plug-in is active", h.as_str()))
                })?,
        };
        let elig = svc
            .registry
            .resolve(&body.request.case.district, Hook::Eligibility)
            .map(|r| r.active.plugin.clone());
        let dir = svc.directory()?;
        Ok(dryrun::evaluate(
            &svc.runtime,
            &dir,
            &plugin,
            elig.as_deref(),
            h,
            &body.request,
            svc.clock.now(),
            &p.id,
        )?)
    })
    .await?;
    Ok(axum::Json(out))
}

/// A dry run: a case evaluated against a version (default: the one that would run now).
#[derive(Deserialize)]
struct DryRunBody {
    #[serde(default)]
    version: Option<String>,
    #[serde(flatten)]
    request: dryrun::Request,
}

async fn backtest(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
    Json(body): Json<crate::backtest::Request>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        if district == CITY {
            return Err(ApiError::Unprocessable(
                "backtest a district: the city default has no cases of its own".into(),
            ));
        }
        Ok(crate::backtest::run(svc, &district, h, &body)?)
    })
    .await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowBody {
    version: String,
}

async fn attach_shadow(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
    Json(body): Json<ShadowBody>,
) -> Result<impl IntoResponse, ApiError> {
    change_slot(
        state,
        p,
        district,
        &hook_name,
        move |reg, d, h, actor, now| reg.attach_shadow(d, h, &body.version, actor, now),
    )
    .await
}

async fn shadow(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        let s = svc.registry.shadow(&district, h).ok_or_else(|| {
            ApiError::NotFound(format!("{district}/{} has no shadow candidate", h.as_str()))
        })?;
        Ok(s.summary())
    })
    .await?;
    Ok(axum::Json(out))
}

async fn detach_shadow(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    change_slot(
        state,
        p,
        district,
        &hook_name,
        move |reg, d, h, actor, now| reg.detach_shadow(d, h, actor, now),
    )
    .await
}

async fn promote_shadow(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    change_slot(
        state,
        p,
        district,
        &hook_name,
        move |reg, d, h, actor, now| reg.promote_shadow(d, h, actor, now),
    )
    .await
}
