//! The key-value floor for benchmarks: one `get` of a small value from the default store per
//! request, answered with the value and its length (so Spin sends it in one write).

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

#[http_service]
async fn kv_get(_request: Request) -> http::Response<Full<Bytes>> {
    let value = match Store::open_default().await {
        Ok(store) => store.get("floor").await.ok().flatten().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    http::Response::builder()
        .header("content-type", "application/octet-stream")
        .header("content-length", value.len().to_string())
        .body(Full::new(Bytes::from(value)))
        .expect("a valid response")
}
