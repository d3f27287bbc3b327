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
        r("/v1/districts/{district}/plugins", "GET", "Active plug-in per hook of a district (or `city`)", 200, get(overview)),
        r("/v1/districts/{district}/plugins/{hook}", "PUT", "Deploy a component as a new version (not yet active)", 201, put(deploy).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)))
            .wasm()
            .query::<DeployQuery>(),
        r("/v1/districts/{district}/plugins/{hook}/uploads/{version}", "GET", "What became of an upload: compiling, accepted (with its version record) or refused (with the reason)", 200, get(upload_status)),
        r("/v1/districts/{district}/plugins/{hook}/versions/{version}", "DELETE", "Delete a version that was never activated or shadowed (frees upload quota)", 204, axum::routing::delete(delete_version)),
        r("/v1/districts/{district}/plugins/{hook}", "GET", "Versions of a hook, who deployed them, which is active", 200, get(versions)),
        r("/v1/districts/{district}/plugins/{hook}/versions/{version}/activate", "POST", "Make a deployed version active", 200, post(activate)),
        r("/v1/districts/{district}/plugins/{hook}/rollback", "POST", "Re-activate the previous version", 200, post(rollback)),
        r("/v1/districts/{district}/plugins/{hook}/shadow", "POST", "Attach a deployed version as a shadow candidate: it runs alongside the active one without effect", 200, post(attach_shadow))
            .json::<ShadowBody>(),
        r("/v1/districts/{district}/plugins/{hook}/shadow", "GET", "The shadow candidate's agreements, disagreements and failures", 200, get(shadow)),
        r("/v1/districts/{district}/plugins/{hook}/shadow", "DELETE", "Detach the shadow candidate", 200, axum::routing::delete(detach_shadow)),
        r("/v1/districts/{district}/plugins/{hook}/shadow/promote", "POST", "Make the shadow candidate the active version (one call, recorded in the history)", 200, post(promote_shadow)),
        r("/v1/districts/{district}/plugins/{hook}/backtest", "POST", "Re-evaluate past cases under a candidate and the active version; report the differences", 200, post(backtest))
            .json::<crate::backtest::Request>(),
        r("/v1/districts/{district}/plugins/{hook}/dry-run", "POST", "Evaluate a case against a version; stores nothing", 200, post(dry_run))
            .json::<dryrun::Request>(),
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
        Ok(change(
            svc.registry(),
            &district,
            h,
            &p.id,
            svc.clock().now(),
        )?)
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
            let own = svc.registry().slot(&district, h)?;
            let resolved = svc.registry().resolve(&district, h);
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct DeployQuery {
    /// The plug-in's name: 1-64 of a-z, 0-9, '.', '-', '_' (default `{district}-{hook}`).
    name: Option<String>,
    /// Fuel per decision (default 10,000,000, or 100,000,000 for a component that carries an
    /// interpreter; district admins at most 200,000,000).
    fuel: Option<u64>,
    /// CPU-time limit per decision in ms (default 100; district admins at most 500).
    timeout_ms: Option<u64>,
    /// Linear-memory cap in bytes (default 4 MiB, or what the component starts with plus
    /// 8 MiB when that is more; at most 64 MiB).
    memory_bytes: Option<u64>,
    /// The configuration string the plug-in receives (at most 16 KiB).
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
    if q.config.as_ref().is_some_and(|c| c.len() > 16 * 1024) {
        return Err(ApiError::BadRequest("config must be at most 16 KiB".into()));
    }
    let limits = Limits::for_component(&bytes).overridden(q.fuel, q.timeout_ms, q.memory_bytes);
    let config = q.config.unwrap_or_else(|| "{}".into());
    // Checked before anything is compiled: scope, name, limits and quota.
    let (district, version, started) = {
        let (district, name) = (district.clone(), name.clone());
        blocking(&state, move |svc| {
            let version = crate::runtime::Runtime::version_of(&bytes);
            scope(svc, &p, &district, true)?;
            let rt = svc.runtime().config();
            let (caps, whose) = if p.role == crate::auth::Role::CityAdmin {
                (
                    Limits {
                        fuel: rt.max_fuel,
                        timeout: rt.max_timeout,
                        memory_bytes: rt.max_memory_bytes,
                    },
                    "this host",
                )
            } else {
                (rt.district_max, "a district admin")
            };
            svc.registry()
                .admit(&district, &name, limits, bytes.len(), caps, whose)?;
            let started = svc.registry().begin_upload(&district, h, &version);
            if !started {
                return Ok((district, version, None));
            }
            Ok((district, version, Some((bytes, name, p.id))))
        })
        .await?
    };
    let Some((bytes, name, actor)) = started else {
        return Ok(compiling(&district, h, &version));
    };
    // The compile runs to its end on its own; the request waits a while for it, then
    // answers 202 with where the final answer will be.
    let job = {
        let (svc, district, version) = (state.svc.clone(), district.clone(), version.clone());
        tokio::task::spawn_blocking(move || {
            let now = svc.clock().now();
            let outcome = svc
                .registry()
                .deploy(&district, h, &name, &bytes, limits, &config, &actor, now);
            if let Err(e) = svc
                .registry()
                .finish_upload(&district, h, &version, now, &outcome)
            {
                tracing::error!(%district, %version, error = %e, "could not record an upload's outcome");
            }
            outcome
        })
    };
    match tokio::time::timeout(state.upload_wait, job).await {
        Err(_) => Ok(compiling(&district, h, &version)),
        Ok(joined) => {
            let (record, created) = joined
                .map_err(|e| ApiError::Internal(format!("the upload's compile failed: {e}")))??;
            Ok((
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                axum::Json(serde_json::to_value(record).unwrap_or_default()),
            )
                .into_response())
        }
    }
}

/// 202: the component is still compiling; where to read the final answer.
fn compiling(district: &str, hook: Hook, version: &str) -> axum::response::Response {
    let url = format!(
        "/v1/districts/{district}/plugins/{}/uploads/{version}",
        hook.as_str()
    );
    (
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, url.clone())],
        axum::Json(serde_json::json!({
            "status": "compiling",
            "version": version,
            "status_url": url,
        })),
    )
        .into_response()
}

async fn upload_status(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name, version)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        svc.registry().upload(&district, h, &version)?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no upload of {version} to {district}/{}: upload it (again) with PUT; an upload interrupted by a restart leaves no answer",
                h.as_str()
            ))
        })
    })
    .await?;
    Ok(axum::Json(out))
}

async fn delete_version(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name, version)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    blocking(&state, move |svc| {
        scope(svc, &p, &district, true)?;
        Ok(svc.registry().delete(&district, h, &version)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn versions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        let (versions, slot) = svc.registry().list(&district, h)?;
        Ok(serde_json::json!({"district": district, "hook": h, "versions": versions, "slot": slot}))
    })
    .await?;
    Ok(axum::Json(out))
}

/// Activates a version, and says what it replaces: the newest past cases of the district
/// decided under the version in force until now and under this one (as a backtest does:
/// effective outcomes, the city default standing in for "no opinion"), so a district
/// engineer who changed one rule sees at once if other cases change too.
async fn activate(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name, version)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let running = state.backtests.clone();
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, true)?;
        let replaced = crate::backtest::what_it_replaces(svc, &running, &district, h, &version);
        let slot = svc
            .registry()
            .activate(&district, h, &version, &p.id, svc.clock().now())?;
        let mut answer = serde_json::to_value(slot).unwrap_or_default();
        if let Some(o) = answer.as_object_mut() {
            o.insert(
                "replaced".into(),
                serde_json::to_value(replaced).unwrap_or_default(),
            );
        }
        Ok(answer)
    })
    .await?;
    Ok(axum::Json(out))
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
    Json(body): Json<dryrun::Request>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        let case_district = &body.case.district;
        if district != CITY && *case_district != district {
            return Err(ApiError::Unprocessable(format!(
                "the case is in {case_district}, not {district}"
            )));
        }
        // The city slot runs for any district's case, and its eligibility step runs that
        // district's plug-in: only with a case of a district the token may see.
        if district == CITY && !p.can_read_plugins(case_district) {
            return Err(ApiError::NotFound(format!(
                "district {case_district} has no plug-ins visible to this token"
            )));
        }
        let plugin = match &body.version {
            Some(v) => svc.registry().plugin(&district, h, v)?,
            None => svc
                .registry()
                .resolve(&district, h)
                .map(|r| r.active.plugin.clone())
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no {} plug-in is active", h.as_str()))
                })?,
        };
        let elig = svc
            .registry()
            .resolve(&body.case.district, Hook::Eligibility)
            .map(|r| r.active.plugin.clone());
        let dir = svc.directory()?;
        Ok(dryrun::evaluate(
            svc.runtime(),
            &dir,
            &plugin,
            elig.as_deref(),
            h,
            &body,
            svc.clock().now(),
            &p.id,
        )?)
    })
    .await?;
    Ok(axum::Json(out))
}

async fn backtest(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((district, hook_name)): Path<(String, String)>,
    Json(body): Json<crate::backtest::Request>,
) -> Result<impl IntoResponse, ApiError> {
    let h = hook(&hook_name)?;
    let running = state.backtests.clone();
    let out = blocking(&state, move |svc| {
        scope(svc, &p, &district, false)?;
        if district == CITY {
            return Err(ApiError::Unprocessable(
                "backtest a district: the city default has no cases of its own".into(),
            ));
        }
        let budget = match p.role {
            crate::auth::Role::CityAdmin | crate::auth::Role::DistrictAdmin => {
                crate::backtest::Budget::ADMIN
            }
            _ => crate::backtest::Budget::DISPATCHER,
        };
        Ok(crate::backtest::run(
            svc, &running, &district, h, &body, budget,
        )?)
    })
    .await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, utoipa::ToSchema)]
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
        svc.registry().shadow_summary(&district, h)?.ok_or_else(|| {
            ApiError::NotFound(format!("{district}/{} has no shadow candidate", h.as_str()))
        })
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
