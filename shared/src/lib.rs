//! What the app's components share, in layers that only ever use the ones below them:
//!
//! - [`platform`]: Spin's stores and variables, and plain utilities (time, ids, crypto).
//! - [`web`]: one request's context, routing, input validation, pagination, replies, errors.
//! - [`domain`]: the app's rules and their storage (accounts, auth, catalog, logs, throttles).
//! - [`app`]: the request pipeline every component runs, where the layers meet.

pub mod app;
pub mod domain;
pub mod platform;
pub mod web;

pub use app::serve;
pub use platform::log::Event;
pub use web::{ApiError, FieldError, PathParams, Reply, RequestCtx};
