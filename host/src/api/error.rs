//! The API's one error type: each variant maps to a status code, and the body is
//! `{"error": {"code": "...", "message": "..."}}`. Internal errors are logged, not shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::registry::RegistryError;
use crate::service::ServiceError;
use crate::store::StoreError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid token.
    #[error("a valid bearer token is required: send `Authorization: Bearer civic_...`")]
    Unauthorized,
    /// 403: the token may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing (or not visible to this token).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    /// 409: conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: wrong content type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but not acceptable.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: too many requests in flight, or the same work already running.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: not available now.
    #[error("{0}")]
    Unavailable(String),
    /// 500: logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        (status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ApiError::NotFound(format!("case {id} does not exist")),
            StoreError::Lifecycle(l) if l.invalid_input => ApiError::Unprocessable(l.to_string()),
            StoreError::Conflict { .. } | StoreError::Exists(_) | StoreError::Lifecycle(_) => {
                ApiError::Conflict(e.to_string())
            }
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Directory(d) => ApiError::Unprocessable(d.to_string()),
            StoreError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::views::BoardError> for ApiError {
    fn from(e: crate::views::BoardError) -> Self {
        match e {
            crate::views::BoardError::Cursor(_) => ApiError::BadRequest(e.to_string()),
            crate::views::BoardError::Service(s) => s.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => ApiError::Unprocessable(m),
            ServiceError::Intake(i) => ApiError::Unprocessable(i.0),
            ServiceError::NotFound(id) => ApiError::NotFound(format!("case {id} does not exist")),
            ServiceError::Lifecycle(l) if l.invalid_input => ApiError::Unprocessable(l.to_string()),
            ServiceError::Lifecycle(l) => ApiError::Conflict(l.to_string()),
            ServiceError::Store(s) => s.into(),
            ServiceError::Registry(r) => r.into(),
            ServiceError::Unavailable(m) => ApiError::Unavailable(m),
            ServiceError::Busy(m) => ApiError::TooManyRequests(m),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Plugin(p) => ApiError::Unprocessable(p.to_string()),
            RegistryError::UnknownVersion { .. } | RegistryError::NoShadow { .. } => {
                ApiError::NotFound(e.to_string())
            }
            RegistryError::NoPrevious { .. }
            | RegistryError::DeployedDifferently { .. }
            | RegistryError::InUse { .. } => ApiError::Conflict(e.to_string()),
            RegistryError::OverCap { .. }
            | RegistryError::BadName(_)
            | RegistryError::AmbiguousVersion { .. }
            | RegistryError::Quota { .. } => ApiError::Unprocessable(e.to_string()),
            RegistryError::Store(s) => s.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => ApiError::Unauthorized,
            AuthError::Forbidden(m) => ApiError::Forbidden(m),
            AuthError::Invalid(m) => ApiError::Unprocessable(m),
            AuthError::LastAdmin => ApiError::Conflict(e.to_string()),
            AuthError::Store(s) => s.into(),
        }
    }
}
