//! `GET /logs/stats`: counts per component, status class and time bucket over a time range.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shared::platform::db::{self, Param};
use shared::platform::time;
use shared::{ApiError, Reply, RequestCtx};

use crate::{format_millis, timestamp};

/// The range and bucket size of a stats request, in milliseconds.
struct Range {
    since: i64,
    until: i64,
    bucket_ms: i64,
}

fn range(ctx: &RequestCtx) -> Result<Range, ApiError> {
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
    if since >= until {
        return Err(ApiError::bad_query("since", "must be before until"));
    }
    Ok(Range {
        since,
        until,
        bucket_ms: bucket.unwrap_or(3_600_000),
    })
}

/// One (bucket, component, status class) count.
#[derive(serde::Deserialize)]
struct Count {
    bucket: i64,
    component: String,
    class: String,
    n: i64,
}

/// The counts, packed into one JSON row by SQLite (a range can group into thousands of rows,
/// and Spin hands rows to the component one host call each).
async fn counts(range: &Range) -> Result<Vec<Count>, ApiError> {
    let counts = db::connect()
        .await?
        .query_json(
            "SELECT component,
                    CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END AS class,
                    (at_ms / ?1) * ?1 AS bucket,
                    count(*) AS n
             FROM log_entries
             WHERE at_ms >= ?2 AND at_ms < ?3
             GROUP BY component, class, bucket",
            &[
                ("bucket", "bucket"),
                ("component", "component"),
                ("class", "class"),
                ("n", "n"),
            ],
            "bucket, component, class",
            [
                Param::Integer(range.bucket_ms),
                Param::Integer(range.since),
                Param::Integer(range.until),
            ],
        )
        .await?;
    Ok(counts)
}

pub async fn stats(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let range = range(ctx)?;
    let counts = counts(&range).await?;
    let mut by_component: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_class: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_bucket: BTreeMap<i64, BTreeMap<&str, i64>> = BTreeMap::new();
    for count in &counts {
        *by_component.entry(&count.component).or_default() += count.n;
        *by_class.entry(&count.class).or_default() += count.n;
        *by_bucket
            .entry(count.bucket)
            .or_default()
            .entry(&count.class)
            .or_default() += count.n;
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
    let breakdown: Vec<Value> = counts
        .iter()
        .map(|count| {
            json!({
                "bucket": format_millis(count.bucket),
                "component": count.component,
                "status_class": count.class,
                "count": count.n,
            })
        })
        .collect();
    Ok(Reply::ok(&json!({
        "since": format_millis(range.since),
        "until": format_millis(range.until),
        "bucket_seconds": range.bucket_ms / 1000,
        "total": counts.iter().map(|count| count.n).sum::<i64>(),
        "by_component": by_component,
        "by_status_class": by_class,
        "buckets": buckets,
        "breakdown": breakdown,
    })))
}
