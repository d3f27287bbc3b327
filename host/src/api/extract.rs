//! Extractors that turn bad requests into the API's errors: the bearer token, and JSON
//! bodies that must be `application/json`, parse, and carry no unknown fields.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::auth::Principal;

/// The authenticated caller.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        let token = token.trim();
        let svc = state.svc.clone();
        let token = token.to_owned();
        let principal = tokio::task::spawn_blocking(move || svc.authenticate(&token))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        Ok(Auth(principal))
    }
}

/// A JSON body; an empty body counts as `{}` when `EMPTY_OK`.
pub struct Json<T, const EMPTY_OK: bool = false>(pub T);

impl<T: DeserializeOwned, const EMPTY_OK: bool> FromRequest<AppState> for Json<T, EMPTY_OK> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(format!(
                        "the body is larger than {} bytes",
                        super::JSON_LIMIT
                    ))
                } else {
                    ApiError::BadRequest(e.body_text())
                }
            })?;
        if bytes.is_empty() && EMPTY_OK {
            return serde_json::from_slice(b"{}")
                .map(Json)
                .map_err(|e| ApiError::BadRequest(format!("a body is required: {e}")));
        }
        let is_json = content_type.as_deref().is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as `Content-Type: application/json`".into(),
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ApiError::BadRequest(format!("invalid JSON body: {inner}"))
            } else {
                ApiError::BadRequest(format!("invalid JSON body at `{path}`: {inner}"))
            }
        })?;
        de.end()
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        Ok(Json(value))
    }
}
