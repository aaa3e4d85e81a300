//! The password-hash floor for benchmarks: one argon2id verification per request, through the
//! same function and against a hash with the same parameters as a login's, and nothing else.
//! A login cannot be cheaper than this; at full load its rate is the cores divided by one
//! verification's time in Wasm under Spin.

use spin_sdk::http::Request;
use spin_sdk::http_service;

use shared::domain::accounts::{DUMMY_HASH, verify_password};

#[http_service]
async fn argon2_verify(_request: Request) -> &'static str {
    // The dummy hash belongs to no password, so this is always the full (failing) check.
    if verify_password(b"not the password", DUMMY_HASH) {
        "matched"
    } else {
        "checked"
    }
}
