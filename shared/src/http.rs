//! The request pipeline every component runs: build a [`RequestCtx`], run the component's
//! handler, turn its result (or its [`ApiError`]) into a response, echo the request id, and
//! record the access log entry.

use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::db::Db;
use crate::error::{ApiError, FieldError};
use crate::kv::Kv;
use crate::log::Event;

pub type Request = spin_sdk::http::Request;
pub type Response = http::Response<Full<Bytes>>;
type Body = spin_sdk::wasip3::http_compat::IncomingRequestBody;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The largest request body accepted when a component does not choose its own limit.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
const MAX_REQUEST_ID_LEN: usize = 128;

/// One request as a handler sees it.
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
    pub(crate) events: Vec<Event>,
    kv: Option<Kv>,
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
            .unwrap_or_else(crate::ids::time_ordered_uuid);
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
            kv: None,
        }
    }

    /// The instance's connection for single statements (see [`Db::shared`]).
    pub async fn db(&self) -> Result<Rc<Db>, ApiError> {
        Db::shared().await
    }

    /// The request's key-value store, opened on first use.
    pub async fn kv(&mut self) -> Result<&Kv, ApiError> {
        if self.kv.is_none() {
            self.kv = Some(Kv::open().await?);
        }
        Ok(self.kv.as_ref().expect("opened above"))
    }

    /// The client's address: the last value of `trusted_header` when the operator names one
    /// (the value the nearest trusted proxy appended), otherwise the connection's peer as Spin
    /// reports it in `spin-client-addr`.
    pub fn client_address(&self, trusted_header: &str) -> Option<String> {
        let from_header = (!trusted_header.is_empty())
            .then(|| self.header(trusted_header))
            .flatten()
            .and_then(|value| value.rsplit(',').next())
            .map(str::trim)
            .filter(|value| !value.is_empty());
        match from_header {
            Some(address) => Some(address.to_owned()),
            None => self
                .header("spin-client-addr")
                .map(|peer| strip_port(peer).to_owned()),
        }
    }

    /// The path split on `/`, without empty segments: `/catalog/items/7` -> `[catalog, items, 7]`.
    pub fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| percent_decode(segment).unwrap_or_else(|| segment.to_owned()))
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
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
            let frame = frame.map_err(|error| {
                ApiError::bad_request(format!("the request body could not be read ({error:?})"))
            })?;
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
        let limit = crate::config::parse::<usize>("max_request_bytes", |n| *n > 0).await?;
        self.json_body_with_limit(limit).await
    }

    /// Records a domain event for the log, written with this request's access entry.
    pub fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// `203.0.113.9:5123` -> `203.0.113.9`, `[2001:db8::1]:443` -> `2001:db8::1`.
fn strip_port(peer: &str) -> &str {
    if let Some(rest) = peer.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match peer.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => peer,
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

/// Decodes `%XX` escapes (and nothing else); `None` if an escape is malformed or the result
/// is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a handler returns: a status, headers and a body.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: Bytes,
}

impl Reply {
    pub fn json(status: StatusCode, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("API types always serialise");
        Self {
            status,
            headers: vec![(CONTENT_TYPE, "application/json".into())],
            body: body.into(),
        }
    }

    pub fn ok(value: &impl Serialize) -> Self {
        Self::json(StatusCode::OK, value)
    }

    pub fn created(value: &impl Serialize) -> Self {
        Self::json(StatusCode::CREATED, value)
    }

    pub fn no_content() -> Self {
        Self::empty(StatusCode::NO_CONTENT)
    }

    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A body that is already encoded, with its media type.
    pub fn bytes(status: StatusCode, content_type: &str, body: Bytes) -> Self {
        Self {
            status,
            headers: vec![(CONTENT_TYPE, content_type.to_owned())],
            body,
        }
    }

    pub fn problem(error: &ApiError, instance: &str) -> Self {
        let mut reply = Self::json(error.status(), &error.problem(Some(instance)));
        reply.headers[0].1 = "application/problem+json".into();
        reply.headers.extend(error.headers());
        reply
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn into_response(self, request_id: &str) -> Response {
        let mut response = http::Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        if let Ok(value) = HeaderValue::from_str(request_id) {
            headers.insert(REQUEST_ID, value);
        }
        response
    }
}

/// Runs `handler` for `request` and makes its outcome a response: errors become problem
/// documents (internal causes are logged with the request id, not returned), the request id
/// is echoed, and the access entry and domain events are recorded.
pub async fn serve(
    component: &'static str,
    request: Request,
    handler: impl AsyncFnOnce(&mut RequestCtx) -> Result<Reply, ApiError>,
) -> Response {
    let mut ctx = RequestCtx::new(component, request);
    let reply = match handler(&mut ctx).await {
        Ok(reply) => reply,
        Err(error) => {
            if let Some(cause) = error.logged_cause() {
                crate::log::failure(&ctx, error.status(), &cause);
            }
            Reply::problem(&error, &ctx.path)
        }
    };
    let status = reply.status();
    let response = reply.into_response(&ctx.request_id);
    crate::log::finish_request(ctx, status).await;
    response
}

/// A JSON object body being validated field by field; every problem is collected so a 422
/// lists them all at once.
pub struct JsonBody {
    fields: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl JsonBody {
    pub fn new(fields: Map<String, Value>) -> Self {
        Self {
            fields,
            errors: Vec::new(),
        }
    }

    /// A field that must be present and valid.
    pub fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::body(name, "is required"));
                None
            }
            Some(value) => self.check(name, parse(&value)),
        }
    }

    /// A field that may be absent or null; `Some(None)` when absent, `None` when invalid.
    pub fn optional<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => self.check(name, parse(&value)).map(Some),
        }
    }

    /// Takes a field out as raw JSON without checking it (for nested validation).
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.fields.remove(name)
    }

    /// Records a problem found while validating fields together.
    pub fn reject(&mut self, name: &str, detail: impl Into<String>) {
        self.errors.push(FieldError::body(name, detail));
    }

    fn check<T>(&mut self, name: &str, outcome: Result<T, String>) -> Option<T> {
        match outcome {
            Ok(value) => Some(value),
            Err(detail) => {
                self.errors.push(FieldError::body(name, detail));
                None
            }
        }
    }

    /// Ends validation: unknown fields are errors too. Returns the validated values when every
    /// one of them is present (`values` is a tuple of the `Option`s returned above).
    pub fn finish<V: Complete>(mut self, values: V) -> Result<V::Output, ApiError> {
        let mut unknown: Vec<&String> = self.fields.keys().collect();
        unknown.sort();
        for name in unknown {
            self.errors
                .push(FieldError::body(name, "is not a known field"));
        }
        if !self.errors.is_empty() {
            return Err(ApiError::Validation(self.errors));
        }
        values
            .complete()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a validated field is missing")))
    }
}

/// Query-string parameters, validated like [`JsonBody`] fields but reported as 400.
pub struct Query {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl Query {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| percent_decode(&text.replace('+', " "));
            match (decode(name), decode(value)) {
                (Some(name), Some(value)) => pairs.push((name, value)),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter {name:?} is not valid percent-encoded UTF-8"
                    )));
                }
            }
        }
        Ok(Self {
            pairs,
            errors: Vec::new(),
        })
    }

    /// The single value of `name`; repeating a parameter is an error.
    fn single(&mut self, name: &str) -> Option<String> {
        let mut values = self.pairs.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.clone());
        if values.next().is_some() {
            self.errors
                .push(FieldError::query(name, "must be given at most once"));
        }
        self.pairs.retain(|(n, _)| n != name);
        first
    }

    /// An optional parameter; `Some(None)` when absent, `None` when invalid.
    pub fn optional<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.single(name) {
            None => Some(None),
            Some(raw) => match parse(&raw) {
                Ok(value) => Some(Some(value)),
                Err(detail) => {
                    self.errors.push(FieldError::query(name, detail));
                    None
                }
            },
        }
    }

    /// Every remaining parameter whose name starts with `prefix` (`attr.isbn=...`), removed.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let (taken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(name, _)| name.starts_with(prefix));
        self.pairs = rest;
        taken
            .into_iter()
            .map(|(name, value)| (name[prefix.len()..].to_owned(), value))
            .collect()
    }

    pub fn reject(&mut self, name: &str, detail: impl Into<String>) {
        self.errors.push(FieldError::query(name, detail));
    }

    /// Ends validation (unknown parameters are errors) and returns the validated values.
    pub fn finish<V: Complete>(mut self, values: V) -> Result<V::Output, ApiError> {
        let mut unknown: Vec<String> = self.pairs.iter().map(|(n, _)| n.clone()).collect();
        unknown.sort();
        unknown.dedup();
        for name in unknown {
            self.errors
                .push(FieldError::query(&name, "is not a known parameter"));
        }
        if !self.errors.is_empty() {
            let detail = match self.errors.as_slice() {
                [one] => format!("query parameter {}: {}", one.field, one.detail),
                many => format!("{} query parameters are invalid", many.len()),
            };
            return Err(ApiError::BadRequest {
                detail,
                errors: self.errors,
            });
        }
        values
            .complete()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a validated parameter is missing")))
    }
}

/// A tuple of validated `Option`s that is complete when all of them are `Some`.
pub trait Complete {
    type Output;
    fn complete(self) -> Option<Self::Output>;
}

impl Complete for () {
    type Output = ();
    fn complete(self) -> Option<()> {
        Some(())
    }
}

impl<A> Complete for Option<A> {
    type Output = A;
    fn complete(self) -> Option<A> {
        self
    }
}

macro_rules! complete_tuple {
    ($($name:ident),+) => {
        impl<$($name),+> Complete for ($(Option<$name>,)+) {
            type Output = ($($name,)+);
            #[allow(non_snake_case)]
            fn complete(self) -> Option<Self::Output> {
                let ($($name,)+) = self;
                Some(($($name?,)+))
            }
        }
    };
}

complete_tuple!(A);
complete_tuple!(A, B);
complete_tuple!(A, B, C);
complete_tuple!(A, B, C, D);
complete_tuple!(A, B, C, D, E);
complete_tuple!(A, B, C, D, E, F);
complete_tuple!(A, B, C, D, E, F, G);
complete_tuple!(A, B, C, D, E, F, G, H);
complete_tuple!(A, B, C, D, E, F, G, H, I);
complete_tuple!(A, B, C, D, E, F, G, H, I, J);

/// A JSON string field, or why the value is not one.
pub fn as_str(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a string".to_owned())
}

/// `text` if it has at most `max_chars` characters (Unicode scalar values, not bytes).
pub fn at_most_chars(text: &str, max_chars: usize) -> Result<&str, String> {
    if text.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    Ok(text)
}

/// The methods a path supports, as a 405.
pub fn method_not_allowed(allowed: &[Method]) -> ApiError {
    ApiError::MethodNotAllowed {
        allowed: allowed.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> JsonBody {
        JsonBody::new(value.as_object().unwrap().clone())
    }

    #[test]
    fn every_invalid_and_unknown_field_is_reported_together() {
        let mut input = body(json!({"name": 5, "extra": true}));
        let name = input.required("name", |v| as_str(v).map(str::to_owned));
        let age = input.required("age", |v| v.as_u64().ok_or("must be a number".to_owned()));
        let Err(ApiError::Validation(errors)) = input.finish((name, age)) else {
            panic!("expected a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["name", "age", "extra"]);
        assert_eq!(errors[1].detail, "is required");
    }

    #[test]
    fn valid_fields_come_back_as_a_tuple() {
        let mut input = body(json!({"name": "ada", "note": null}));
        let name = input.required("name", |v| as_str(v).map(str::to_owned));
        let note = input.optional("note", |v| as_str(v).map(str::to_owned));
        let (name, note) = input.finish((name, note)).unwrap();
        assert_eq!(name, "ada");
        assert_eq!(note, None);
    }

    #[test]
    fn query_parameters_are_decoded_and_checked() {
        let mut query =
            Query::parse("q=red+shoes&limit=5&city=S%C3%A3o%20Paulo&attr.isbn=1").unwrap();
        let q = query.optional("q", |s| Ok::<_, String>(s.to_owned()));
        let limit = query.optional("limit", |s| s.parse::<u32>().map_err(|e| e.to_string()));
        let city = query.optional("city", |s| Ok::<_, String>(s.to_owned()));
        let attributes = query.take_prefixed("attr.");
        let (q, limit, city) = query.finish((q, limit, city)).unwrap();
        assert_eq!(q.as_deref(), Some("red shoes"));
        assert_eq!(limit, Some(5));
        assert_eq!(city.as_deref(), Some("São Paulo"));
        assert_eq!(attributes, vec![("isbn".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn repeated_unknown_and_invalid_query_parameters_are_400() {
        let mut query = Query::parse("limit=x&limit=2&bogus=1").unwrap();
        let limit = query.optional("limit", |s| s.parse::<u32>().map_err(|e| e.to_string()));
        let error = query.finish(limit).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let ApiError::BadRequest { errors, .. } = error else {
            panic!()
        };
        assert_eq!(errors.len(), 3);
    }

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

    #[test]
    fn peer_addresses_lose_their_port() {
        assert_eq!(strip_port("203.0.113.9:5123"), "203.0.113.9");
        assert_eq!(strip_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn percent_decoding_rejects_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
