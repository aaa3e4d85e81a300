//! The platform layer: Spin's stores and variables, and plain utilities (time, identifiers,
//! cryptography). Nothing here knows about HTTP or the app's domain.

pub mod config;
pub mod crypto;
pub mod db;
pub mod host;
pub mod ids;
pub mod kv;
pub mod log;
pub mod migrations;
pub mod sql;
pub mod time;
