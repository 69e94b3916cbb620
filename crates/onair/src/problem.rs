//! [`ApiError`]: every failure an HTTP route answers (the REST API, and the media routes:
//! HTTP-FLV, HLS), sent as one `application/problem+json` shape (RFC 9457) with a stable
//! `type` per kind.
//!
//! The client sees the kind's title, the status and a detail written for it. A server-side
//! cause (a database error, a failed hash) never reaches the client: it rides in the
//! response's extensions as [`InternalCause`] and [`log_causes`] logs it inside the request's
//! span.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use onair_store::StoreError;
use serde::{Deserialize, Serialize};
use tracing::{error, warn};
use utoipa::{ToResponse, ToSchema};

use crate::platform::PlatformError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the problem types live; each kind appends its slug.
const TYPE_BASE: &str = "https://onair.dev/problems/";

/// The kinds of problem, each with a stable `type` URI, a title and a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// 400: the request is malformed or a field is invalid; `errors` names the fields.
    InvalidRequest,
    /// 401: no token, or one that is invalid, expired, logged out or of a banned account.
    Unauthorized,
    /// 401: a login with a wrong name or password.
    BadCredentials,
    /// 403: the caller's role does not allow this.
    Forbidden,
    /// 403: the account is banned.
    AccountBanned,
    /// 403: self-registration is turned off.
    RegistrationClosed,
    /// 404: no such resource (or not one the caller may see).
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 408: the request body did not arrive within `http.body_timeout`.
    RequestTimeout,
    /// 409: the name, slug or id is taken, or the resource is in a state that forbids this.
    Conflict,
    /// 413: the body is larger than the server accepts.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 412: a tus request without `Tus-Resumable: 1.0.0` (the only version served).
    PreconditionFailed,
    /// 416: a `Range` header asks for bytes a file does not have.
    RangeNotSatisfiable,
    /// 422: well-formed, but it cannot be done (e.g. an admin banning themselves).
    Unprocessable,
    /// 429: too many login attempts; `Retry-After` says when to try again.
    RateLimited,
    /// 500: a fault of ours; the cause is in the server log.
    Internal,
    /// 503: the database cannot be reached; try again later.
    Unavailable,
    /// 503: every password hashing thread stayed busy for the login's whole wait;
    /// `Retry-After` says when to try again.
    Busy,
}

impl ProblemKind {
    /// Every kind, for the documentation and the tests.
    pub const ALL: [ProblemKind; 19] = [
        Self::InvalidRequest,
        Self::Unauthorized,
        Self::BadCredentials,
        Self::Forbidden,
        Self::AccountBanned,
        Self::RegistrationClosed,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::PreconditionFailed,
        Self::RangeNotSatisfiable,
        Self::Unprocessable,
        Self::RateLimited,
        Self::Internal,
        Self::Unavailable,
        Self::Busy,
    ];

    /// The last segment of the `type` URI.
    pub const fn slug(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid-request",
            Self::Unauthorized => "unauthorized",
            Self::BadCredentials => "bad-credentials",
            Self::Forbidden => "forbidden",
            Self::AccountBanned => "account-banned",
            Self::RegistrationClosed => "registration-closed",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::RequestTimeout => "request-timeout",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::PreconditionFailed => "precondition-failed",
            Self::RangeNotSatisfiable => "range-not-satisfiable",
            Self::Unprocessable => "unprocessable",
            Self::RateLimited => "rate-limited",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::Busy => "busy",
        }
    }

    /// The `type` URI: `https://onair.dev/problems/{slug}`.
    pub fn type_uri(self) -> String {
        format!("{TYPE_BASE}{}", self.slug())
    }

    /// The same for every problem of this kind (RFC 9457 §3.1.3).
    pub const fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "Invalid request",
            Self::Unauthorized => "Authentication required",
            Self::BadCredentials => "Wrong username or password",
            Self::Forbidden => "Forbidden",
            Self::AccountBanned => "Account banned",
            Self::RegistrationClosed => "Registration is closed",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::RequestTimeout => "Request timeout",
            Self::Conflict => "Conflict",
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PreconditionFailed => "Precondition failed",
            Self::RangeNotSatisfiable => "Range not satisfiable",
            Self::Unprocessable => "Unprocessable request",
            Self::RateLimited => "Too many requests",
            Self::Internal => "Internal server error",
            Self::Unavailable => "Service unavailable",
            Self::Busy => "Server busy",
        }
    }

    /// The HTTP status.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::AccountBanned | Self::RegistrationClosed => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The body of every error response (RFC 9457 problem details).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "https://onair.dev/problems/invalid-request",
    "title": "Invalid request",
    "status": 400,
    "detail": "1 field is invalid",
    "errors": [{ "field": "title", "message": "must be 1 to 140 characters" }]
}))]
pub struct Problem {
    /// A stable URI naming the kind of problem; clients branch on this.
    #[serde(rename = "type")]
    #[schema(example = "https://onair.dev/problems/not-found")]
    pub kind: String,
    /// A short summary, the same for every problem of this type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
    /// For `invalid-request`: each offending field and what is wrong with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field: a body member (`title`, `tags[2]`), a query parameter (`limit`), a path
    /// parameter (`id`), or `body` for a body that is not valid JSON at all.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A server-side cause of a 500 or 503, carried in the response's extensions for
/// [`log_causes`]. Never serialized.
#[derive(Clone, Debug)]
pub struct InternalCause(pub Arc<str>);

/// Why a request failed. Converts into a problem+json response.
#[derive(Debug)]
pub struct ApiError {
    kind: ProblemKind,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<Duration>,
    www_authenticate: Option<&'static str>,
    cause: Option<String>,
}

impl ApiError {
    /// A problem of `kind` with a detail for the client.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        ApiError {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            www_authenticate: None,
            cause: None,
        }
    }

    /// 400 naming the offending fields.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => "1 field is invalid".to_owned(),
            n => format!("{n} fields are invalid"),
        };
        ApiError {
            errors,
            ..Self::new(ProblemKind::InvalidRequest, detail)
        }
    }

    /// 400 for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    /// 401 for a request without a bearer token.
    pub fn missing_token() -> Self {
        ApiError {
            www_authenticate: Some(r#"Bearer realm="onair""#),
            ..Self::new(
                ProblemKind::Unauthorized,
                "send an access token from POST /api/v1/auth/login as `Authorization: Bearer <token>`",
            )
        }
    }

    /// 401 for a token that is malformed, forged, expired, logged out, or of a banned or
    /// deleted account. One answer for all, so a caller learns nothing about which.
    pub fn invalid_token() -> Self {
        ApiError {
            // RFC 6750 §3.1: invalid_token for expired, revoked or malformed tokens.
            www_authenticate: Some(r#"Bearer realm="onair", error="invalid_token""#),
            ..Self::new(
                ProblemKind::Unauthorized,
                "the access token is invalid, expired or revoked; log in again",
            )
        }
    }

    /// 403 for a role that may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Forbidden, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Conflict, detail)
    }

    /// 422.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Unprocessable, detail)
    }

    /// 422 naming the field whose well-formed value cannot be used (a URL of another
    /// scheme), in the same `errors` list a 400 has.
    pub fn unprocessable_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            errors: vec![FieldError::new(field, message)],
            ..Self::new(ProblemKind::Unprocessable, "1 field cannot be used")
        }
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                ProblemKind::RateLimited,
                "too many login attempts; wait before trying again",
            )
        }
    }

    /// 429 with `Retry-After` and a `detail` saying what was too frequent.
    pub fn too_frequent(retry_after: Duration, detail: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(ProblemKind::RateLimited, detail)
        }
    }

    /// 500; `cause` goes to the log, never to the client.
    pub fn internal(cause: impl fmt::Display) -> Self {
        ApiError {
            cause: Some(cause.to_string()),
            ..Self::new(
                ProblemKind::Internal,
                "the server failed to handle the request; the cause is in its log",
            )
        }
    }

    /// 503; `cause` goes to the log.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        ApiError {
            cause: Some(cause.to_string()),
            retry_after: Some(Duration::from_secs(5)),
            ..Self::new(
                ProblemKind::Unavailable,
                "the database cannot be reached; try again shortly",
            )
        }
    }

    /// 503 with `Retry-After`: no password hashing thread came free in time.
    pub fn busy(retry_after: Duration) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                ProblemKind::Busy,
                "the server is checking too many passwords at once; try again shortly",
            )
        }
    }

    /// 503 with `Retry-After`: a limit of the server's is reached (e.g. a channel's viewer
    /// cap); `detail` says which.
    pub fn at_capacity(detail: impl Into<String>, retry_after: Duration) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(ProblemKind::Busy, detail)
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The body the client gets.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: self.kind.type_uri(),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.title(), self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.kind.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up, so a client that waits exactly this long gets in.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(cause) = self.cause {
            response
                .extensions_mut()
                .insert(InternalCause(Arc::from(cause)));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // The store's message names what collided, e.g. `channel slug "demo"`; the
            // constraint name stays out of the answer.
            StoreError::Conflict { what, .. } => {
                ApiError::conflict(format!("{what} already exists"))
            }
            StoreError::NotFound { what } => ApiError::not_found(format!("{what} not found")),
            e @ StoreError::Unavailable(_) => ApiError::unavailable(chain(&e)),
            e => ApiError::internal(chain(&e)),
        }
    }
}

impl From<PlatformError> for ApiError {
    fn from(error: PlatformError) -> Self {
        match error {
            PlatformError::Store(e) => e.into(),
            PlatformError::NoSuchChannel(id) => {
                ApiError::not_found(format!("channel {id} not found"))
            }
            PlatformError::Busy { retry_after } => ApiError::busy(retry_after),
            e => ApiError::internal(chain(&e)),
        }
    }
}

/// An error with its sources, for the log.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Middleware: logs the cause of a 500 (error: our fault) or a 503 (warn: the database is
/// away) inside the request's span, then passes the response on.
pub async fn log_causes(response: Response) -> Response {
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            warn!(status = response.status().as_u16(), %cause, "api request failed");
        } else {
            error!(status = response.status().as_u16(), %cause, "api request failed");
        }
    }
    response
}

/// The answer of the router for a path that does not exist under `/api`.
pub async fn no_such_route() -> ApiError {
    ApiError::not_found("no such API route")
}

/// The answer of the router for a method a path does not have.
pub async fn no_such_method() -> ApiError {
    ApiError::new(
        ProblemKind::MethodNotAllowed,
        "this route does not take that method",
    )
}

/// A JSON body with its status; for handlers that answer something other than 200.
pub fn json_with<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}

/// 400: a field is invalid or the body is malformed.
#[derive(ToResponse)]
#[response(
    description = "Invalid request: `errors` names each offending field.",
    content_type = "application/problem+json"
)]
pub struct BadRequest(#[allow(dead_code)] Problem);

/// 408: the body did not arrive in time.
#[derive(ToResponse)]
#[response(
    description = "The request body did not arrive within the server's body timeout.",
    content_type = "application/problem+json"
)]
pub struct RequestTimeout(#[allow(dead_code)] Problem);

/// 413: the body is too large.
#[derive(ToResponse)]
#[response(
    description = "The request body is larger than the server accepts (64 KiB).",
    content_type = "application/problem+json"
)]
pub struct PayloadTooLarge(#[allow(dead_code)] Problem);

/// 415: the body is not JSON.
#[derive(ToResponse)]
#[response(
    description = "The body is not sent as `Content-Type: application/json`.",
    content_type = "application/problem+json"
)]
pub struct UnsupportedMediaType(#[allow(dead_code)] Problem);

/// 401: missing, invalid, expired or revoked access token.
#[derive(ToResponse)]
#[response(
    description = "Authentication required: no token, or an invalid, expired or revoked one. Carries `WWW-Authenticate: Bearer`.",
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"onair\"`, with `error=\"invalid_token\"` for a bad token"))
)]
pub struct Unauthorized(#[allow(dead_code)] Problem);

/// 403.
#[derive(ToResponse)]
#[response(
    description = "Forbidden: the caller's role does not allow this.",
    content_type = "application/problem+json"
)]
pub struct Forbidden(#[allow(dead_code)] Problem);

/// 404.
#[derive(ToResponse)]
#[response(
    description = "Not found, or not the caller's.",
    content_type = "application/problem+json"
)]
pub struct NotFound(#[allow(dead_code)] Problem);

/// 409.
#[derive(ToResponse)]
#[response(
    description = "Conflict: the name is taken or the resource's state forbids this.",
    content_type = "application/problem+json"
)]
pub struct Conflict(#[allow(dead_code)] Problem);

/// 422.
#[derive(ToResponse)]
#[response(
    description = "Well-formed but cannot be done.",
    content_type = "application/problem+json"
)]
pub struct Unprocessable(#[allow(dead_code)] Problem);

/// 429.
#[derive(ToResponse)]
#[response(
    description = "Too many login attempts from this address or for this account.",
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait"))
)]
pub struct TooManyRequests(#[allow(dead_code)] Problem);

/// 500.
#[derive(ToResponse)]
#[response(
    description = "A fault of the server; the cause is in its log.",
    content_type = "application/problem+json"
)]
pub struct InternalError(#[allow(dead_code)] Problem);

/// 503.
#[derive(ToResponse)]
#[response(
    description = "The database cannot be reached (`type` …/unavailable), or, for a request that checks a password, no hashing thread came free in time (…/busy).",
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait"))
)]
pub struct ServiceUnavailable(#[allow(dead_code)] Problem);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_types_and_matching_statuses() {
        let mut slugs: Vec<_> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemKind::ALL.len());
        assert_eq!(
            ProblemKind::NotFound.type_uri(),
            "https://onair.dev/problems/not-found"
        );
    }

    #[test]
    fn internal_causes_stay_out_of_the_body() {
        let response = ApiError::internal("pool exploded: password=hunter2").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let cause = response.extensions().get::<InternalCause>().unwrap();
        assert!(cause.0.contains("hunter2"));
        let problem = ApiError::internal("pool exploded: password=hunter2").problem();
        assert!(!serde_json::to_string(&problem).unwrap().contains("hunter2"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let response = ApiError::rate_limited(Duration::from_millis(4200)).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let response = ApiError::rate_limited(Duration::ZERO).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn busy_hashing_is_a_503_of_its_own_type_with_retry_after() {
        let error = ApiError::from(PlatformError::Busy {
            retry_after: Duration::from_secs(5),
        });
        assert_eq!(error.kind(), ProblemKind::Busy);
        let problem = error.problem();
        assert_eq!(problem.status, 503);
        assert_eq!(problem.kind, "https://onair.dev/problems/busy");
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn store_conflicts_are_409_without_the_constraint_name() {
        let conflict = ApiError::from(StoreError::Conflict {
            what: "channel slug \"demo\"".into(),
            constraint: "channels_slug_key".into(),
        });
        assert_eq!(conflict.kind(), ProblemKind::Conflict);
        assert!(!conflict.problem().detail.contains("channels_slug_key"));
    }
}
