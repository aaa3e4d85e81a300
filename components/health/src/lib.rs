//! `GET /health`: whether SQLite and the key-value store are usable, and the schema version.
//! 200 when every check passes, 503 with the failing check's detail otherwise.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::db::latest_schema_version;
use shared::http::method_not_allowed;
use shared::kv::Kv;
use shared::{ApiError, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("health", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    ctx.route = Some("/health");
    if ctx.method != Method::GET {
        return Err(method_not_allowed(&[Method::GET]));
    }
    let sqlite = check_sqlite(ctx).await;
    let key_value = check_key_value().await;
    let healthy = [&sqlite, &key_value]
        .iter()
        .all(|check| check["status"] == "pass");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "pass" } else { "fail" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": { "sqlite": sqlite, "key_value": key_value },
    });
    Ok(Reply::json(status, &body).header(http::header::CACHE_CONTROL, "no-store"))
}

/// A failed check, with the store's own error: health exists to tell operators what is wrong.
fn failed(error: &ApiError) -> Value {
    let detail = error.logged_cause().unwrap_or_else(|| error.to_string());
    json!({ "status": "fail", "detail": detail })
}

async fn check_sqlite(ctx: &mut RequestCtx) -> Value {
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(error) => return failed(&error),
    };
    let version = match db.schema_version().await {
        Ok(version) => version,
        Err(error) => return failed(&error.into()),
    };
    let journal_mode = db
        .query("PRAGMA journal_mode", [])
        .await
        .ok()
        .and_then(|rows| {
            rows.first()
                .and_then(|row| row.get::<String>("journal_mode").ok())
        });
    let latest = latest_schema_version();
    let status = if version >= latest { "pass" } else { "fail" };
    let mut check = json!({
        "status": status,
        "schema_version": version,
        "latest_schema_version": latest,
        "journal_mode": journal_mode,
    });
    if version < latest {
        check["detail"] = json!("the schema is behind this build and could not be migrated");
    }
    check
}

async fn check_key_value() -> Value {
    let kv = match Kv::open().await {
        Ok(kv) => kv,
        Err(error) => return failed(&error),
    };
    match kv.exists("health:probe").await {
        Ok(_) => json!({ "status": "pass" }),
        Err(error) => failed(&error),
    }
}
