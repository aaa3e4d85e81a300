//! What a handler returns: a status, headers and a whole body, made into the response with its
//! length known.

use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http_body_util::Full;
use serde::Serialize;

use crate::web::error::ApiError;
use crate::web::request::REQUEST_ID;

pub type Response = http::Response<Full<Bytes>>;

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

    /// The response, with the request id echoed and the body's length declared. Spin does not
    /// set TCP_NODELAY: a body of unknown length is sent chunked, its closing chunk goes out in
    /// a write of its own and waits for the client's delayed ACK (about 40 ms).
    pub fn into_response(self, request_id: &str) -> Response {
        let length = self.body.len();
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
        if has_body(self.status) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        response
    }
}

/// Whether a response with this status carries a body at all (RFC 9110 section 6.4.1).
fn has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_declare_their_length_and_echo_the_request_id() {
        let response = Reply::ok(&serde_json::json!({"a": 1})).into_response("r-1");
        assert_eq!(response.headers()[CONTENT_LENGTH], "7");
        assert_eq!(response.headers()[REQUEST_ID], "r-1");
        let empty = Reply::no_content().into_response("r-2");
        assert!(empty.headers().get(CONTENT_LENGTH).is_none());
    }
}
