//! `GET /health`: whether SQLite and the key-value store are usable and the schema is current.
//! 200 when every check passes, 503 otherwise. Anonymous callers learn only pass or fail; an
//! administrator's token also gets each check's details (the store's own error, the schema
//! version, the journal mode), which are for operators, and a failed check's details are
//! written to the log whoever asked.

use http::StatusCode;
use serde_json::{Value, json};
use shared::domain::auth::{authenticate_if_present, sessions};
use shared::platform::log::{Level, write_operator_line};
use shared::platform::{db, migrations::latest_schema_version};
use shared::{ApiError, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

shared::routes! {
    GET "/health" => health,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("health", request, dispatch).await
}

async fn health(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    ctx.query()?.finish(())?;
    // With a store down nobody may be verifiable; then everyone gets the anonymous answer.
    let admin = authenticate_if_present(ctx)
        .await
        .ok()
        .flatten()
        .is_some_and(|user| user.is_admin());
    let sqlite = check_sqlite(admin).await;
    let key_value = check_key_value().await;
    let healthy = [&sqlite, &key_value]
        .iter()
        .all(|check| check["status"] == "pass");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({ "status": if healthy { "pass" } else { "fail" } });
    if !healthy {
        write_operator_line(
            Level::Error,
            "health",
            "health.check_failed",
            json!({ "request_id": ctx.request_id, "sqlite": sqlite, "key_value": key_value }),
        );
    }
    if admin {
        body["version"] = json!(env!("CARGO_PKG_VERSION"));
        body["checks"] = json!({ "sqlite": sqlite, "key_value": key_value });
    }
    Ok(Reply::json(status, &body).header(http::header::CACHE_CONTROL, "no-store"))
}

/// A failed check, with the store's own error: health exists to tell operators what is wrong.
fn failed(error: impl std::fmt::Display) -> Value {
    json!({ "status": "fail", "detail": error.to_string() })
}

/// The schema version, and with `details` the journal mode (for administrators only, so a
/// probe's request costs one statement, not two).
async fn check_sqlite(details: bool) -> Value {
    let db = match db::connect().await {
        Ok(db) => db,
        Err(error) => return failed(error),
    };
    let version = match db.schema_version().await {
        Ok(version) => version,
        Err(error) => return failed(error),
    };
    let latest = latest_schema_version();
    let mut check = json!({
        "status": if version >= latest { "pass" } else { "fail" },
        "schema_version": version,
        "latest_schema_version": latest,
    });
    if version < latest {
        check["detail"] = json!("the schema is behind this build and could not be migrated");
    }
    if details {
        let journal_mode = db
            .query("PRAGMA journal_mode", [])
            .await
            .ok()
            .and_then(|rows| {
                rows.first()
                    .and_then(|row| row.get::<String>("journal_mode").ok())
            });
        check["journal_mode"] = json!(journal_mode);
    }
    check
}

async fn check_key_value() -> Value {
    match sessions::probe().await {
        Ok(()) => json!({ "status": "pass" }),
        Err(error) => failed(error),
    }
}
