//! The runtime's floor for benchmarks: every other figure is read as a ratio to this one.

use spin_sdk::http::Request;
use spin_sdk::http_service;

#[http_service]
async fn hello(_request: Request) -> &'static str {
    "Hello, world!"
}
