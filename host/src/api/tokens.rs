//! Tokens: issue, list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};

use super::extract::{Auth, Json};
use super::{ApiError, AppState, Route, blocking};
use crate::auth::{self, NewToken, Role};

pub(crate) fn routes() -> Vec<Route> {
    let r = Route::authed;
    vec![
        r(
            "/v1/tokens",
            "POST",
            "Issue a token (the secret is shown once)",
            201,
            post(create),
        )
        .json::<NewToken>(),
        r(
            "/v1/tokens",
            "GET",
            "Tokens this token manages",
            200,
            get(list),
        ),
        r(
            "/v1/me",
            "GET",
            "Who this token is: id, role, district and unit (for clients to shape their views)",
            200,
            get(me),
        ),
        r(
            "/v1/tokens/{id}",
            "DELETE",
            "Revoke a token",
            204,
            delete(revoke),
        ),
    ]
}

async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(new): Json<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    if !matches!(p.role, Role::CityAdmin | Role::DistrictAdmin) {
        return Err(ApiError::Forbidden("only admins issue tokens".into()));
    }
    let out = blocking(&state, move |svc| {
        if let Some(d) = &new.district
            && !svc.directory()?.is_district(d)
        {
            return Err(ApiError::Unprocessable(format!("`{d}` is not a district")));
        }
        if let Some(u) = &new.unit {
            let dir = svc.directory()?;
            if dir.unit(u).is_none() || dir.district_of(u) != new.district.as_deref() {
                return Err(ApiError::Unprocessable(format!(
                    "`{u}` is not a unit of the token's district"
                )));
            }
        }
        let (token, secret) = svc.issue_token(&p, &new)?;
        Ok(serde_json::json!({"token": auth::TokenInfo::from(&token), "secret": secret}))
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

async fn me(Auth(p): Auth) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "id": p.id,
        "role": p.role,
        "district": p.district,
        "unit": p.unit,
    }))
}

async fn list(State(state): State<AppState>, Auth(p): Auth) -> Result<impl IntoResponse, ApiError> {
    if !matches!(p.role, Role::CityAdmin | Role::DistrictAdmin) {
        return Err(ApiError::Forbidden("only admins list tokens".into()));
    }
    let tokens: Vec<auth::TokenInfo> = blocking(&state, move |svc| {
        Ok(svc
            .list_tokens(&p)?
            .iter()
            .map(auth::TokenInfo::from)
            .collect())
    })
    .await?;
    Ok(axum::Json(serde_json::json!({"tokens": tokens})))
}

async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !matches!(p.role, Role::CityAdmin | Role::DistrictAdmin) {
        return Err(ApiError::Forbidden("only admins revoke tokens".into()));
    }
    let found = blocking(&state, move |svc| Ok(svc.revoke_token(&p, &id)?)).await?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such token".into()))
    }
}
