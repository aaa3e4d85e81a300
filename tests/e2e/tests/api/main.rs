//! End-to-end tests against the built `.wasm` components on spin-test-host.

mod accounts;
mod catalog;
mod conformance;
mod health;
mod helpers;
mod logs;
mod messages;
mod migrations;
mod openapi;
mod similarity;
mod tokens;
