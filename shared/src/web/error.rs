//! The one error type every handler returns, mapped once to an HTTP status and an RFC 9457
//! `application/problem+json` body. Internal causes are logged with the request id and never
//! sent to the client.

use std::fmt;

use http::StatusCode;
use serde::Serialize;

use crate::platform::config::ConfigError;
use crate::platform::db::DbError;
use crate::platform::kv::KvError;

/// Where a problem with one input field was found, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the client sent it (`username`, `attributes.isbn`, `limit`).
    pub field: String,
    /// A JSON Pointer into the request body (RFC 6901), or `None` for query parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    pub detail: String,
}

impl FieldError {
    /// An invalid field of the JSON body.
    pub fn body(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            pointer: Some(format!("#/{}", field.replace('.', "/"))),
            detail: detail.into(),
        }
    }

    /// An invalid query parameter.
    pub fn query(parameter: &str, detail: impl Into<String>) -> Self {
        Self {
            field: parameter.to_owned(),
            pointer: None,
            detail: detail.into(),
        }
    }
}

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request cannot be parsed (malformed JSON, bad query parameters).
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 401: no valid credentials; `challenge` becomes the `WWW-Authenticate` header.
    Unauthorized { detail: String, challenge: String },
    /// 403: authenticated, but not allowed to do this.
    Forbidden(String),
    /// 404: nothing here, or nothing the caller may know about.
    NotFound(String),
    /// 405: the path exists but not with this method.
    MethodNotAllowed { allowed: Vec<http::Method> },
    /// 409: the request conflicts with what is stored (a duplicate username).
    Conflict(String),
    /// 412: `If-Match` names a version that is no longer current.
    PreconditionFailed(String),
    /// 413: the body is larger than the endpoint accepts.
    PayloadTooLarge { limit: usize },
    /// 415: the body is not JSON.
    UnsupportedMediaType { expected: &'static str },
    /// 422: the JSON is well-formed but some fields are invalid.
    Validation(Vec<FieldError>),
    /// 428: the endpoint needs a conditional request (`If-Match`).
    PreconditionRequired(String),
    /// 429: too many attempts; retry after this many seconds.
    TooManyRequests {
        retry_after_secs: u64,
        detail: String,
    },
    /// 503: a store the request needs is unusable right now. `detail` is for the client; the
    /// store's own error is `cause`, logged with the request id.
    Unavailable { detail: String, cause: String },
    /// 500: a bug or an unexpected failure; the cause is logged, not returned.
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(detail.into())
    }

    /// A 401 with the RFC 6750 challenge for a missing or unusable bearer token.
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            detail: detail.into(),
            challenge: "Bearer error=\"invalid_token\"".into(),
        }
    }

    /// A 401 for a request that carried no credentials at all (RFC 6750 section 3.1).
    pub fn missing_token() -> Self {
        Self::Unauthorized {
            detail: "this endpoint needs a bearer token".into(),
            challenge: "Bearer".into(),
        }
    }

    /// A 503 for a store failure: a plain detail for the client, the cause for the log.
    pub fn unavailable(detail: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            cause: cause.to_string(),
        }
    }

    /// What an operator needs to know about this error, if it is worth logging.
    pub fn logged_cause(&self) -> Option<String> {
        match self {
            Self::Internal(cause) => Some(format!("{cause:#}")),
            Self::Unavailable { cause, .. } => Some(cause.clone()),
            _ => None,
        }
    }

    /// A 400 for one invalid query parameter, named in `errors` as well as in the detail.
    pub fn bad_query(parameter: &'static str, detail: impl Into<String>) -> Self {
        Self::bad_queries([(parameter, detail.into())])
    }

    /// A 400 for invalid query parameters, each named with what is wrong with it.
    pub fn bad_queries<D: Into<String>>(
        problems: impl IntoIterator<Item = (&'static str, D)>,
    ) -> Self {
        let errors: Vec<FieldError> = problems
            .into_iter()
            .map(|(parameter, detail)| FieldError::query(parameter, detail))
            .collect();
        let detail = match errors.as_slice() {
            [one] => format!("query parameter {}: {}", one.field, one.detail),
            many => format!("{} query parameters are invalid", many.len()),
        };
        Self::BadRequest { detail, errors }
    }

    pub fn validation(field: &str, detail: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::body(field, detail)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem type, a stable identifier clients can switch on (documented in openapi.yaml).
    fn problem_type(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "urn:problem:bad-request",
            Self::Unauthorized { .. } => "urn:problem:unauthorized",
            Self::Forbidden(_) => "urn:problem:forbidden",
            Self::NotFound(_) => "urn:problem:not-found",
            Self::MethodNotAllowed { .. } => "urn:problem:method-not-allowed",
            Self::Conflict(_) => "urn:problem:conflict",
            Self::PreconditionFailed(_) => "urn:problem:precondition-failed",
            Self::PayloadTooLarge { .. } => "urn:problem:payload-too-large",
            Self::UnsupportedMediaType { .. } => "urn:problem:unsupported-media-type",
            Self::Validation(_) => "urn:problem:validation",
            Self::PreconditionRequired(_) => "urn:problem:precondition-required",
            Self::TooManyRequests { .. } => "urn:problem:too-many-requests",
            Self::Unavailable { .. } => "urn:problem:unavailable",
            Self::Internal(_) => "urn:problem:internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. }
            | Self::Unauthorized { detail, .. }
            | Self::TooManyRequests { detail, .. } => detail.clone(),
            Self::Forbidden(detail)
            | Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::PreconditionFailed(detail)
            | Self::PreconditionRequired(detail)
            | Self::Unavailable { detail, .. } => detail.clone(),
            Self::MethodNotAllowed { allowed } => format!(
                "this resource supports {}",
                allowed
                    .iter()
                    .map(http::Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::PayloadTooLarge { limit } => {
                format!("the request body is larger than this endpoint's limit of {limit} bytes")
            }
            Self::UnsupportedMediaType { expected } => {
                format!("the request body must be sent as {expected}")
            }
            Self::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.detail),
                _ => format!("{} fields are invalid", errors.len()),
            },
            Self::Internal(_) => "the server could not complete the request".into(),
        }
    }

    /// The RFC 9457 body for this error.
    pub fn problem(&self, instance: Option<&str>) -> Problem {
        let status = self.status();
        let errors = match self {
            Self::Validation(errors) | Self::BadRequest { errors, .. } if !errors.is_empty() => {
                Some(errors.clone())
            }
            _ => None,
        };
        Problem {
            problem_type: self.problem_type(),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.detail(),
            instance: instance.map(str::to_owned),
            errors,
        }
    }

    /// Headers that belong with this status (`WWW-Authenticate`, `Retry-After`, `Allow`).
    pub fn headers(&self) -> Vec<(http::HeaderName, String)> {
        match self {
            Self::Unauthorized { challenge, .. } => {
                vec![(http::header::WWW_AUTHENTICATE, challenge.clone())]
            }
            Self::TooManyRequests {
                retry_after_secs, ..
            } => vec![(http::header::RETRY_AFTER, retry_after_secs.to_string())],
            Self::MethodNotAllowed { allowed } => vec![(
                http::header::ALLOW,
                allowed
                    .iter()
                    .map(http::Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            )],
            Self::Unavailable { .. } => vec![(http::header::RETRY_AFTER, "1".into())],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Internal(cause) => write!(f, "internal error: {cause:#}"),
            other => write!(f, "{}: {}", other.status(), other.detail()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(cause: anyhow::Error) -> Self {
        Self::Internal(cause)
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        if error.is_busy() {
            ApiError::unavailable("the database is busy; try again", error)
        } else if error.is_unavailable() {
            ApiError::unavailable("the database is unavailable; try again", error)
        } else {
            ApiError::Internal(error.into())
        }
    }
}

impl From<KvError> for ApiError {
    fn from(error: KvError) -> Self {
        ApiError::unavailable("the key-value store is unavailable; try again", error)
    }
}

impl From<ConfigError> for ApiError {
    fn from(error: ConfigError) -> Self {
        ApiError::Internal(error.into())
    }
}

/// An RFC 9457 problem details object.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_carry_each_field() {
        let error = ApiError::Validation(vec![
            FieldError::body("username", "too short"),
            FieldError::body("password", "too common"),
        ]);
        let problem = serde_json::to_value(error.problem(Some("/auth/register"))).unwrap();
        assert_eq!(problem["status"], 422);
        assert_eq!(problem["type"], "urn:problem:validation");
        assert_eq!(problem["title"], "Unprocessable Entity");
        assert_eq!(problem["errors"][0]["field"], "username");
        assert_eq!(problem["errors"][0]["pointer"], "#/username");
        assert_eq!(problem["errors"][1]["detail"], "too common");
        assert_eq!(problem["instance"], "/auth/register");
    }

    #[test]
    fn internal_causes_never_reach_the_body() {
        let error = ApiError::internal(anyhow::anyhow!("disk /var/secret is full"));
        let body = serde_json::to_string(&error.problem(None)).unwrap();
        assert!(!body.contains("secret"));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn store_failures_keep_their_cause_out_of_the_body() {
        let error = ApiError::unavailable(
            "the key-value store is unavailable",
            "session:abc: disk I/O error",
        );
        let body = serde_json::to_string(&error.problem(None)).unwrap();
        assert!(!body.contains("session:abc"));
        assert_eq!(
            error.logged_cause().as_deref(),
            Some("session:abc: disk I/O error")
        );
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_database_that_cannot_take_the_statement_now_is_a_503_to_retry() {
        let busy = DbError {
            context: "PRAGMA user_version".into(),
            message:
                "Hrana: `api error: `{\"error\":\"Timed out while opening database connection\"}``"
                    .into(),
        };
        let error = ApiError::from(busy);
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.headers()[0].0, http::header::RETRY_AFTER);
        let broken = DbError {
            context: "SELECT 1".into(),
            message: "no such table: users".into(),
        };
        assert_eq!(
            ApiError::from(broken).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn status_specific_headers_are_set() {
        let error = ApiError::TooManyRequests {
            retry_after_secs: 30,
            detail: "slow down".into(),
        };
        assert_eq!(
            error.headers(),
            vec![(http::header::RETRY_AFTER, "30".to_owned())]
        );
        assert_eq!(
            ApiError::invalid_token("expired").headers()[0].1,
            "Bearer error=\"invalid_token\""
        );
        let error = ApiError::MethodNotAllowed {
            allowed: vec![http::Method::GET, http::Method::POST],
        };
        assert_eq!(error.headers()[0].1, "GET, POST");
    }
}
