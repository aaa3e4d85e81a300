//! `GET /logs/stats`: counts per component, status class and time bucket over a time range.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shared::platform::db::{self, Param, Rows};
use shared::platform::time;
use shared::{ApiError, Reply, RequestCtx};

use crate::{HOUR_MS, MINUTE_MS, format_millis, next_period_start, period_start, timestamp};

const DAY_MS: i64 = 86_400_000;

/// The range and bucket size of a stats request, in milliseconds.
struct Range {
    since: i64,
    until: i64,
    /// No `until` was given: everything from `since` on, so the current minute (or hour) is read
    /// from its count rather than counted entry by entry.
    open_ended: bool,
    bucket_ms: i64,
}

fn range(ctx: &RequestCtx) -> Result<Range, ApiError> {
    let mut query = ctx.query()?;
    let since = query.optional("since", timestamp);
    let until = query.optional("until", timestamp);
    let bucket = query.optional("bucket", |value| match value {
        "minute" => Ok(MINUTE_MS),
        "hour" => Ok(HOUR_MS),
        "day" => Ok(DAY_MS),
        _ => Err("must be minute, hour or day".to_owned()),
    });
    let (since, until, bucket) = query.finish((since, until, bucket))?;
    let open_ended = until.is_none();
    let until = until.unwrap_or_else(|| time::unix_millis() + 1);
    let since = since.unwrap_or(until - DAY_MS);
    if since >= until {
        return Err(ApiError::bad_query("since", "must be before until"));
    }
    Ok(Range {
        since,
        until,
        open_ended,
        bucket_ms: bucket.unwrap_or(HOUR_MS),
    })
}

/// The whole periods of `period_ms` inside `[since, until)`, as `[from, to)`; an open-ended
/// range takes every period from `from` on. With no whole period inside, `from == to == since`,
/// so the finer counts answer it all.
fn whole_periods(since: i64, until: i64, open_ended: bool, period_ms: i64) -> (i64, i64) {
    let from = next_period_start(since, period_ms);
    if open_ended {
        return (from, i64::MAX);
    }
    let to = period_start(until, period_ms);
    if to <= from {
        (since, since)
    } else {
        (from, to)
    }
}

/// Where each part of the range is counted: whole hours from `log_hour_counts` (only when
/// buckets are hours or longer), the minutes around them from `log_minute_counts` (both kept by
/// triggers, migrations 0012 and 0014), and the partial minutes at the ends from the entries.
struct Sources {
    minutes: (i64, i64),
    hours: (i64, i64),
    /// The parts of the range outside the whole minutes, each inside one minute:
    /// (that minute, from, to). Unused ones are empty.
    partial_minutes: [(i64, i64, i64); 2],
}

fn sources(range: &Range) -> Sources {
    let minutes = whole_periods(range.since, range.until, range.open_ended, MINUTE_MS);
    let hours = if range.bucket_ms >= HOUR_MS {
        whole_periods(minutes.0, minutes.1, range.open_ended, HOUR_MS)
    } else {
        // No hour is read: the minutes cover everything from their start.
        (minutes.0, minutes.0)
    };
    // Before the whole minutes, and after them: each inside a minute, except when no whole
    // minute fits, where the range itself is the part after, in at most two minutes.
    let mut partial_minutes = [(0, 0, 0); 2];
    let parts = [
        (range.since, minutes.0),
        (minutes.1.min(range.until), range.until),
    ];
    let mut slots = partial_minutes.iter_mut();
    for (mut from, to) in parts {
        while from < to {
            let minute = period_start(from, MINUTE_MS);
            let end = to.min(minute + MINUTE_MS);
            *slots.next().expect("at most two partial minutes") = (minute, from, end);
            from = end;
        }
    }
    Sources {
        minutes,
        hours,
        partial_minutes,
    }
}

/// The entries of one period, read in place from SQLite's packed array
/// `[period start, component, status class, count]`.
#[derive(Deserialize)]
struct PeriodCount<'a> {
    period_ms: i64,
    #[serde(borrow)]
    component: Cow<'a, str>,
    #[serde(borrow)]
    class: Cow<'a, str>,
    n: i64,
}

/// Counts per period, where a period is a stored hour, a stored minute or a partial minute
/// counted from the entries: packed by SQLite into one JSON array without sorting (the stored
/// counts come in key order, and a GROUP BY over tens of thousands of per-minute rows was most
/// of a request), returned as the row that holds that text, and folded into buckets by
/// [`stats`]. A partial minute is grouped by the stored columns rather than by its minute and
/// class: SQLite sorts every entry it groups, and computing those keys for each of a busy
/// minute's entries more than doubled that sort.
async fn packed_counts(range: &Range) -> Result<Rows, ApiError> {
    let Sources {
        minutes,
        hours,
        partial_minutes,
    } = sources(range);
    let partial = |first: usize| {
        let [minute, from, to] = [first, first + 1, first + 2];
        format!(
            "SELECT ?{minute}, component,
                    CASE WHEN status IS NULL THEN 'none' ELSE (status / 100) || 'xx' END, count(*)
             FROM log_entries WHERE at_ms >= ?{from} AND at_ms < ?{to}
             GROUP BY component, status"
        )
    };
    let mut params = vec![
        Param::Integer(minutes.0),
        Param::Integer(minutes.1),
        Param::Integer(hours.0),
        Param::Integer(hours.1),
    ];
    params.extend(
        partial_minutes
            .iter()
            .flat_map(|&(minute, from, to)| [minute, from, to].map(Param::Integer)),
    );
    let rows = db::connect_for_long_reads()
        .await?
        .query(
            &format!(
                "SELECT json_group_array(json_array(period_ms, component, class, n)) AS packed
                 FROM (
                     SELECT hour_ms AS period_ms, component, class, n FROM log_hour_counts
                     WHERE hour_ms >= ?3 AND hour_ms < ?4
                     UNION ALL
                     SELECT minute_ms, component, class, n FROM log_minute_counts
                     WHERE (minute_ms >= ?1 AND minute_ms < ?3) OR (minute_ms >= ?4 AND minute_ms < ?2)
                     UNION ALL {} UNION ALL {}
                 )",
                partial(5),
                partial(8)
            ),
            params,
        )
        .await?;
    Ok(rows)
}

/// The response: totals, then per bucket, then per (bucket, component, status class). Built
/// from borrowed counts and serialised once: a day by minute is thousands of breakdown rows.
#[derive(Serialize)]
struct Stats<'a> {
    since: String,
    until: String,
    bucket_seconds: i64,
    total: i64,
    by_component: BTreeMap<&'a str, i64>,
    by_status_class: BTreeMap<&'a str, i64>,
    buckets: Vec<Bucket<'a>>,
    breakdown: Vec<BreakdownRow<'a>>,
}

#[derive(Serialize)]
struct Bucket<'a> {
    start: &'a str,
    count: i64,
    by_status_class: BTreeMap<&'a str, i64>,
}

#[derive(Serialize)]
struct BreakdownRow<'a> {
    bucket: &'a str,
    component: &'a str,
    status_class: &'a str,
    count: i64,
}

pub async fn stats(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let range = range(ctx)?;
    let rows = packed_counts(&range).await?;
    let packed = match rows.first() {
        Some(row) => row.text("packed").map_err(ApiError::internal)?,
        None => "[]",
    };
    let counts: Vec<PeriodCount> = serde_json::from_str(packed).map_err(ApiError::internal)?;
    // Periods are whole minutes or hours, and buckets whole multiples of them.
    let mut folded: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
    for count in &counts {
        let bucket = period_start(count.period_ms, range.bucket_ms);
        *folded
            .entry((bucket, &count.component, &count.class))
            .or_default() += count.n;
    }
    // Each bucket's start is formatted once, however many rows it has (formatting one per row
    // was a third of the request for an hour by minute).
    let mut starts: BTreeMap<i64, String> = BTreeMap::new();
    for &(bucket, _, _) in folded.keys() {
        starts
            .entry(bucket)
            .or_insert_with(|| format_millis(bucket));
    }
    let mut by_component: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_class: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_bucket: BTreeMap<i64, BTreeMap<&str, i64>> = BTreeMap::new();
    for (&(bucket, component, class), &n) in &folded {
        *by_component.entry(component).or_default() += n;
        *by_class.entry(class).or_default() += n;
        *by_bucket
            .entry(bucket)
            .or_default()
            .entry(class)
            .or_default() += n;
    }
    let buckets = by_bucket
        .into_iter()
        .map(|(start, classes)| Bucket {
            start: &starts[&start],
            count: classes.values().sum(),
            by_status_class: classes,
        })
        .collect();
    let breakdown = folded
        .iter()
        .map(
            |(&(bucket, component, status_class), &count)| BreakdownRow {
                bucket: &starts[&bucket],
                component,
                status_class,
                count,
            },
        )
        .collect();
    Ok(Reply::ok(&Stats {
        since: format_millis(range.since),
        until: format_millis(range.until),
        bucket_seconds: range.bucket_ms / 1000,
        total: folded.values().sum(),
        by_component,
        by_status_class: by_class,
        buckets,
        breakdown,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(since: i64, until: i64, open_ended: bool, bucket_ms: i64) -> Range {
        Range {
            since,
            until,
            open_ended,
            bucket_ms,
        }
    }

    /// Every millisecond of a range is counted exactly once: in its whole minutes or in one
    /// partial minute, which lies inside the minute it is counted as. An open-ended range
    /// counts everything from `since` on, past `until` (now) too.
    #[test]
    fn partial_minutes_and_whole_minutes_tile_the_range() {
        let base = 1_796_212_800_000; // an hour's start
        let offsets = [
            0, 1, 59_999, 60_000, 61_000, 119_999, 120_000, 150_000, 3_599_999,
        ];
        for since in offsets.map(|offset| base + offset) {
            for length in [1, 1_000, 59_999, 60_000, 60_001, 90_000, 119_999, 180_500] {
                for open_ended in [false, true] {
                    let until = since + length;
                    let end = if open_ended {
                        until + 5 * HOUR_MS
                    } else {
                        until
                    };
                    let sources = sources(&range(since, until, open_ended, MINUTE_MS));
                    let (first, last) = sources.minutes;
                    let last = last.min(end);
                    let mut counted = 0;
                    for (minute, from, to) in sources.partial_minutes {
                        if from == to {
                            continue;
                        }
                        assert_eq!(minute, from.div_euclid(MINUTE_MS) * MINUTE_MS);
                        assert!(since <= from && from < to && to <= end.min(minute + MINUTE_MS));
                        assert!(to <= first || from >= last, "overlaps the whole minutes");
                        counted += to - from;
                    }
                    if last > first {
                        assert_eq!(first % MINUTE_MS, 0);
                        counted += last - first;
                    }
                    let case = format!("since {since}, until {until}, open-ended {open_ended}");
                    assert_eq!(counted, end - since, "{case}");
                }
            }
        }
    }
}
