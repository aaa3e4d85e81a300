//! The structured log, for administrators: `GET /logs` (filtered, newest first, paginated),
//! `GET /logs/stats` (counts per component, status class and time bucket) and
//! `GET /logs/verify` (seals pending entries, then walks the hash chain).

use std::collections::BTreeMap;

use http::Method;
use serde_json::{Value, json};
use shared::accounts::username_key;
use shared::auth::require_admin;
use shared::db::Param;
use shared::http::method_not_allowed;
use shared::log::Level;
use shared::{ApiError, Reply, RequestCtx, cursor, time};
use spin_sdk::http::Request;
use spin_sdk::http_service;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("logs", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let route = match ctx.path.trim_end_matches('/') {
        "/logs" => "/logs",
        "/logs/stats" => "/logs/stats",
        "/logs/verify" => "/logs/verify",
        _ => return Err(ApiError::not_found("no such route")),
    };
    ctx.route = Some(route);
    if ctx.method != Method::GET {
        return Err(method_not_allowed(&[Method::GET]));
    }
    require_admin(ctx).await?;
    match route {
        "/logs" => list(ctx).await,
        "/logs/stats" => stats(ctx).await,
        _ => verify(ctx).await,
    }
}

fn text(max: usize) -> impl Fn(&str) -> Result<String, String> {
    move |value: &str| {
        if value.is_empty() || value.chars().count() > max {
            Err(format!("must be 1 to {max} characters"))
        } else {
            Ok(value.to_owned())
        }
    }
}

fn timestamp(value: &str) -> Result<i64, String> {
    time::parse_rfc3339(value)
        .map(|moment| (moment.unix_timestamp_nanos() / 1_000_000) as i64)
        .ok_or_else(|| "must be an RFC 3339 timestamp such as 2026-11-23T16:00:00Z".to_owned())
}

/// `404` exactly, or a class such as `4xx`, as an inclusive range.
fn status_filter(value: &str) -> Result<(i64, i64), String> {
    let invalid = || "must be a status code (404) or a class (4xx)".to_owned();
    if let Some(class) = value.strip_suffix("xx") {
        let class: i64 = class.parse().map_err(|_| invalid())?;
        return if (1..=5).contains(&class) {
            Ok((class * 100, class * 100 + 99))
        } else {
            Err(invalid())
        };
    }
    match value.parse::<i64>() {
        Ok(code) if (100..=599).contains(&code) => Ok((code, code)),
        _ => Err(invalid()),
    }
}

fn limit(value: &str) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("must be 1 to {MAX_LIMIT}")),
    }
}

/// A log entry as the API shows it, packed by SQLite (see [`shared::db::Db::query_json`]).
const ENTRY_JSON_FIELDS: &[(&str, &str)] = &[
    ("id", "id"),
    ("at", "at"),
    ("level", "level"),
    ("component", "component"),
    ("event", "event"),
    ("request_id", "request_id"),
    ("user_id", "user_id"),
    ("method", "method"),
    ("route", "route"),
    ("status", "status"),
    ("duration_ms", "duration_us / 1000.0"),
    (
        "fields",
        "CASE WHEN json_valid(fields) THEN json(fields) END",
    ),
    ("sealed", "json(iif(hash IS NULL, 'false', 'true'))"),
];

async fn list(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let component = query.optional("component", text(64));
    let level = query.optional("level", |value| {
        Level::parse(value)
            .map(Level::as_str)
            .ok_or_else(|| "must be debug, info, warn or error".to_owned())
    });
    let event = query.optional("event", text(128));
    let user = query.optional("user", text(64));
    let request_id = query.optional("request_id", text(128));
    let since = query.optional("since", timestamp);
    let until = query.optional("until", timestamp);
    let status = query.optional("status", status_filter);
    let limit = query.optional("limit", limit);
    let after = query.optional("cursor", cursor::decode::<i64>);
    let (component, level, event, user, request_id, since, until, status, limit, after) = query
        .finish((
            component, level, event, user, request_id, since, until, status, limit, after,
        ))?;
    let limit = limit.unwrap_or(DEFAULT_LIMIT);

    let db = ctx.db().await?;
    let mut conditions: Vec<&str> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let mut condition = |sql: &'static str, value: Param| {
        conditions.push(sql);
        params.push(value);
    };
    if let Some(component) = component {
        condition("component = ?", Param::Text(component));
    }
    if let Some(level) = level {
        condition("level = ?", Param::Text(level.to_owned()));
    }
    if let Some(event) = event {
        condition("event = ?", Param::Text(event));
    }
    if let Some(user) = user {
        // A user id, or a username resolved to its current account.
        let user_id = if shared::ids::is_uuid(&user) {
            Some(user)
        } else {
            db.query(
                "SELECT id FROM users WHERE username_key = ?",
                [Param::Text(username_key(&user))],
            )
            .await?
            .first()
            .map(|row| row.get::<String>("id"))
            .transpose()?
        };
        match user_id {
            Some(id) => condition("user_id = ?", Param::Text(id)),
            None => return Ok(Reply::ok(&json!({ "entries": [], "next_cursor": null }))),
        }
    }
    if let Some(request_id) = request_id {
        condition("request_id = ?", Param::Text(request_id));
    }
    if let Some((low, high)) = status {
        condition("status >= ?", Param::Integer(low));
        condition("status <= ?", Param::Integer(high));
    }
    if let Some(since) = since {
        condition("at_ms >= ?", Param::Integer(since));
        // Ids grow with time: bounding them lets the id-ordered scan stop early.
        condition(
            "id >= coalesce((SELECT min(id) FROM log_entries WHERE at_ms >= ?), 0)",
            Param::Integer(since),
        );
    }
    if let Some(until) = until {
        condition("at_ms < ?", Param::Integer(until));
    }
    if let Some(after) = after {
        condition("id < ?", Param::Integer(after));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    params.push(Param::Integer(limit + 1));
    let mut entries: Vec<Value> = db
        .query_json(
            &format!(
                "SELECT id, at, level, component, event, request_id, user_id, method, route,
                        status, duration_us, fields, hash
                 FROM log_entries {filter} ORDER BY id DESC LIMIT ?"
            ),
            ENTRY_JSON_FIELDS,
            "id DESC",
            params,
        )
        .await?;
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries
            .last()
            .and_then(|entry| entry["id"].as_i64())
            .map(|id| cursor::encode(&id))
    } else {
        None
    };
    Ok(
        Reply::ok(&json!({ "entries": entries, "next_cursor": next_cursor }))
            .header(http::header::CACHE_CONTROL, "no-store"),
    )
}

async fn stats(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let since = query.optional("since", timestamp);
    let until = query.optional("until", timestamp);
    let bucket = query.optional("bucket", |value| match value {
        "minute" => Ok(60_000),
        "hour" => Ok(3_600_000),
        "day" => Ok(86_400_000),
        _ => Err("must be minute, hour or day".to_owned()),
    });
    let (since, until, bucket) = query.finish((since, until, bucket))?;
    let until = until.unwrap_or_else(|| time::unix_millis() + 1);
    let since = since.unwrap_or(until - 86_400_000);
    let bucket_ms: i64 = bucket.unwrap_or(3_600_000);
    if since >= until {
        return Err(ApiError::BadRequest {
            detail: "since must be before until".into(),
            errors: vec![shared::FieldError::query("since", "must be before until")],
        });
    }

    let rows = ctx
        .db()
        .await?
        .query(
            "SELECT component,
                    CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END AS class,
                    (at_ms / ?1) * ?1 AS bucket,
                    count(*) AS n
             FROM log_entries
             WHERE at_ms >= ?2 AND at_ms < ?3
             GROUP BY component, class, bucket
             ORDER BY bucket, component, class",
            [
                Param::Integer(bucket_ms),
                Param::Integer(since),
                Param::Integer(until),
            ],
        )
        .await?;

    let mut total = 0;
    let mut by_component: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_class: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_bucket: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    let mut breakdown = Vec::new();
    for row in rows.iter() {
        let component: String = row.get("component")?;
        let class: String = row.get("class")?;
        let bucket: i64 = row.get("bucket")?;
        let n: i64 = row.get("n")?;
        total += n;
        *by_component.entry(component.clone()).or_default() += n;
        *by_class.entry(class.clone()).or_default() += n;
        *by_bucket
            .entry(bucket)
            .or_default()
            .entry(class.clone())
            .or_default() += n;
        breakdown.push(json!({
            "bucket": format_millis(bucket),
            "component": component,
            "status_class": class,
            "count": n,
        }));
    }
    let buckets: Vec<Value> = by_bucket
        .into_iter()
        .map(|(start, classes)| {
            json!({
                "start": format_millis(start),
                "count": classes.values().sum::<i64>(),
                "by_status_class": classes,
            })
        })
        .collect();
    Ok(Reply::ok(&json!({
        "since": format_millis(since),
        "until": format_millis(until),
        "bucket_seconds": bucket_ms / 1000,
        "total": total,
        "by_component": by_component,
        "by_status_class": by_class,
        "buckets": buckets,
        "breakdown": breakdown,
    }))
    .header(http::header::CACHE_CONTROL, "no-store"))
}

fn format_millis(millis: i64) -> String {
    time::from_unix_millis(millis)
        .map(time::format_rfc3339)
        .unwrap_or_default()
}

async fn verify(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    ctx.query()?.finish(())?;
    let retention_days = shared::config::parse::<i64>("log_retention_days", |d| *d > 0).await?;
    shared::log::seal(retention_days).await?;
    let report = shared::log::verify(&*ctx.db().await?).await?;
    Ok(Reply::ok(&report).header(http::header::CACHE_CONTROL, "no-store"))
}
