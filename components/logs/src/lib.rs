//! The structured log, for administrators: `GET /logs` (filtered, newest first, paginated),
//! `GET /logs/stats` (counts per component, status class and time bucket) and
//! `GET /logs/verify` (seals pending entries, then walks the chain).
//!
//! Built natively only for its unit tests, where nothing serves requests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod list;
mod stats;

use shared::domain::auth::require_admin;
use shared::domain::logs;
use shared::platform::{config, db, time};
use shared::{ApiError, PathParams, Reply, RequestCtx};

shared::routes! {
    GET "/logs" => list,
    GET "/logs/stats" => stats,
    GET "/logs/verify" => verify,
}

#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> shared::web::Response {
    shared::serve("logs", request, dispatch).await
}

fn no_store(reply: Reply) -> Reply {
    reply.header(http::header::CACHE_CONTROL, "no-store")
}

async fn list(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    require_admin(ctx).await?;
    Ok(no_store(list::list(ctx).await?))
}

async fn stats(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    require_admin(ctx).await?;
    Ok(no_store(stats::stats(ctx).await?))
}

async fn verify(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    require_admin(ctx).await?;
    ctx.query()?.finish(())?;
    let retention_days = config::parse::<i64>("log_retention_days", |d| *d > 0).await?;
    let db = db::connect_for_long_reads().await?;
    // Sealing refuses to extend a chain whose recorded state was tampered with; the walk
    // below then says what is wrong, which is what the caller asked for.
    let sealed = logs::seal(&db, "logs", retention_days).await;
    let report = logs::verify(&db).await?;
    if let Err(error) = sealed
        && report.valid
    {
        return Err(error);
    }
    Ok(no_store(Reply::ok(&report)))
}

/// The periods the log's counts are kept by (migrations 0012 and 0014), in milliseconds.
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// The start of the period of `period_ms` that `ms` falls in.
fn period_start(ms: i64, period_ms: i64) -> i64 {
    ms.div_euclid(period_ms) * period_ms
}

/// The first period boundary at or after `ms`.
fn next_period_start(ms: i64, period_ms: i64) -> i64 {
    period_start(ms + period_ms - 1, period_ms)
}

/// An RFC 3339 timestamp as Unix milliseconds.
pub fn timestamp(value: &str) -> Result<i64, String> {
    time::parse_rfc3339(value)
        .map(|moment| (moment.unix_timestamp_nanos() / 1_000_000) as i64)
        .ok_or_else(|| "must be an RFC 3339 timestamp such as 2026-11-23T16:00:00Z".to_owned())
}

pub fn format_millis(millis: i64) -> String {
    time::from_unix_millis(millis)
        .map(time::format_rfc3339)
        .unwrap_or_default()
}
