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
    /// No `until` was given: everything from `since` on, so the current minute is read from its
    /// count rather than counted entry by entry.
    open_ended: bool,
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
    let open_ended = until.is_none();
    let until = until.unwrap_or_else(|| time::unix_millis() + 1);
    let since = since.unwrap_or(until - 86_400_000);
    if since >= until {
        return Err(ApiError::bad_query("since", "must be before until"));
    }
    Ok(Range {
        since,
        until,
        open_ended,
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

const MINUTE_MS: i64 = 60_000;

/// Where the range reads the per-minute counts: the whole minutes inside it, `[from, to)`.
/// The partial minutes at either end are counted from the entries themselves. A range within
/// one minute has no whole minute: `from == to == since`, and the entries answer it all. An
/// open-ended range takes every minute from `from` on.
fn whole_minutes(range: &Range) -> (i64, i64) {
    // The first minute boundary at or after `since`.
    let from = (range.since + MINUTE_MS - 1).div_euclid(MINUTE_MS) * MINUTE_MS;
    if range.open_ended {
        return (from, i64::MAX);
    }
    let to = range.until.div_euclid(MINUTE_MS) * MINUTE_MS;
    if to <= from {
        (range.since, range.since)
    } else {
        (from, to)
    }
}

/// The counts, from `log_minute_counts` (kept by triggers, migration 0012) for the whole
/// minutes and from the entries for the ends; packed into one JSON row by SQLite, since Spin
/// hands rows to the component one host call each. Buckets are whole minutes, so each minute's
/// count falls in one bucket.
async fn counts(range: &Range) -> Result<Vec<Count>, ApiError> {
    let (from, to) = whole_minutes(range);
    let counts = db::connect()
        .await?
        .query_json(
            "SELECT component, class, (at_ms / ?1) * ?1 AS bucket, sum(n) AS n
             FROM (
                 SELECT minute_ms AS at_ms, component, class, n FROM log_minute_counts
                 WHERE minute_ms >= ?4 AND minute_ms < ?5
                 UNION ALL
                 SELECT at_ms, component,
                        CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END, 1
                 FROM log_entries
                 WHERE (at_ms >= ?2 AND at_ms < ?4) OR (at_ms >= ?5 AND at_ms < ?3)
             )
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
                Param::Integer(from),
                Param::Integer(to),
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
