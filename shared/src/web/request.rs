//! One request as a handler sees it: method, path, query, headers, the body (read once, with a
//! size limit), the client's address, and what the handler learns along the way (the matched
//! route, the user, domain events) for the access log.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::platform::log::Event;
use crate::web::client::ClientAddress;
use crate::web::error::{ApiError, FieldError};
use crate::web::input::{JsonBody, Query};

pub type Request = spin_sdk::http::Request;
type Body = spin_sdk::wasip3::http_compat::IncomingRequestBody;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;

pub struct RequestCtx {
    pub component: &'static str,
    pub request_id: String,
    pub method: Method,
    pub path: String,
    query: String,
    pub headers: HeaderMap,
    pub started: Instant,
    body: Option<Body>,
    /// The route template that matched (`/catalog/items/{id}`), for the access log.
    pub route: Option<&'static str>,
    /// The authenticated user, once known, for the access log.
    pub user_id: Option<String>,
    pub events: Vec<Event>,
}

impl RequestCtx {
    pub fn new(component: &'static str, request: Request) -> Self {
        let (parts, body) = request.into_parts();
        let request_id = parts
            .headers
            .get(&REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .filter(|id| is_acceptable_request_id(id))
            .map(str::to_owned)
            .unwrap_or_else(crate::platform::ids::time_ordered_uuid);
        Self {
            component,
            request_id,
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts.headers,
            started: Instant::now(),
            body: Some(body),
            route: None,
            user_id: None,
            events: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The client's address: the last value of `trusted_header` when the operator names one
    /// (the value the nearest trusted proxy appended), otherwise the connection's peer as Spin
    /// reports it. Spin appends its own `spin-client-addr` after any a client sent, so only the
    /// last value is Spin's.
    pub fn client_address(&self, trusted_header: &str) -> Option<ClientAddress> {
        let last_value = |name: &str| {
            self.headers
                .get_all(name)
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let from_header = (!trusted_header.is_empty())
            .then(|| last_value(trusted_header))
            .flatten()
            .and_then(|value| value.rsplit(',').next().map(|v| v.trim().to_owned()))
            .filter(|value| !value.is_empty());
        from_header
            .or_else(|| last_value("spin-client-addr"))
            .map(|text| ClientAddress::parse(&text))
    }

    /// The query string's parameters, percent-decoded.
    pub fn query(&self) -> Result<Query, ApiError> {
        Query::parse(&self.query)
    }

    /// Reads the whole body, refusing more than `limit` bytes with 413.
    pub async fn body_bytes(&mut self, limit: usize) -> Result<Bytes, ApiError> {
        let declared = self
            .header(CONTENT_LENGTH.as_str())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let mut body = self
            .body
            .take()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the body was already read")))?;
        let mut collected = BytesMut::new();
        while let Some(frame) = body.frame().await {
            // The transport's own error stays out of the answer: it is nothing the caller can
            // act on, and may describe the server.
            let frame =
                frame.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok(collected.freeze())
    }

    /// Reads a JSON object body of at most `limit` bytes: 415 unless it is declared as JSON,
    /// 413 when too large, 400 when malformed, 422 when it is JSON but not an object.
    pub async fn json_body_with_limit(&mut self, limit: usize) -> Result<JsonBody, ApiError> {
        let content_type = self.header(CONTENT_TYPE.as_str()).unwrap_or_default();
        if !is_json_media_type(content_type) {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        let bytes = self.body_bytes(limit).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::bad_request(format!("the request body is not valid JSON: {error}"))
        })?;
        match value {
            Value::Object(fields) => Ok(JsonBody::new(fields)),
            _ => Err(ApiError::Validation(vec![FieldError {
                field: "(body)".into(),
                pointer: Some("#".into()),
                detail: "the request body must be a JSON object".into(),
            }])),
        }
    }

    /// [`Self::json_body_with_limit`] with the limit from the `max_request_bytes` variable.
    pub async fn json_body(&mut self) -> Result<JsonBody, ApiError> {
        let limit =
            crate::platform::config::parse::<usize>("max_request_bytes", |n| *n > 0).await?;
        self.json_body_with_limit(limit).await
    }

    /// Records a domain event for the log, written with this request's access entry.
    pub fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// `application/json`, or any `application/<x>+json`, with any parameters.
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Accepts a caller's request id only if it is short and plainly printable, so it can be
/// echoed and logged without escaping tricks.
fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/merge-patch+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type(""));
    }

    #[test]
    fn request_ids_from_callers_must_be_plain() {
        assert!(is_acceptable_request_id("abc-123_x.y:z/1"));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("has space"));
        assert!(!is_acceptable_request_id(&"a".repeat(200)));
        assert!(!is_acceptable_request_id("new\nline"));
    }
}
