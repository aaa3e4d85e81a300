//! End-to-end tests: the built `.wasm` components served by real `spin up`, driven over HTTP.

mod accounts;
mod catalog;
mod deploy;
mod health;
mod helpers;
mod latency;
mod least_privilege;
mod logs;
mod messages;
mod migrations;
mod openapi;
mod security;
mod similarity;
mod tokens;
