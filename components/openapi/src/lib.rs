//! `GET /openapi.json`: the app's OpenAPI 3.1 description.

use bytes::Bytes;
use http::StatusCode;
use shared::{ApiError, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

static OPENAPI_JSON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json"));

shared::routes! {
    GET "/openapi.json" => openapi,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("openapi", request, dispatch).await
}

async fn openapi(_: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    Ok(Reply::bytes(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(OPENAPI_JSON),
    )
    .header(http::header::CACHE_CONTROL, "public, max-age=300"))
}
