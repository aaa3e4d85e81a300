//! What every component of the app needs, written once: the error type and its HTTP mapping,
//! the request pipeline, storage access with migrations, configuration, and logging.

pub mod accounts;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod cursor;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
pub mod kv;
pub mod log;
pub mod messages;
pub mod sql;
pub mod throttle;
pub mod time;

pub use error::{ApiError, FieldError};
pub use http::{Reply, RequestCtx, serve};
pub use log::Event;

/// Lower-case hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
