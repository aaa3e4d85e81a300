//! `GET /openapi.json`: the app's OpenAPI 3.1 description.

use bytes::Bytes;
use http::{Method, StatusCode};
use shared::http::method_not_allowed;
use shared::{ApiError, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

static OPENAPI_JSON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json"));

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("openapi", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    ctx.route = Some("/openapi.json");
    if ctx.method != Method::GET {
        return Err(method_not_allowed(&[Method::GET]));
    }
    Ok(Reply::bytes(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(OPENAPI_JSON),
    )
    .header(http::header::CACHE_CONTROL, "public, max-age=300"))
}
