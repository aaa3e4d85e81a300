//! `GET /logs`: entries matching the filters, newest first, a keyset page at a time.

use serde::Serialize;
use serde_json::json;
use shared::domain::accounts::active_user_id;
use shared::platform::db::{self, Conditions, Param, RawRow, raw_row_id};
use shared::platform::ids::is_uuid;
use shared::platform::log::Level;
use shared::web::cursor;
use shared::web::input::integer_in;
use shared::{ApiError, Reply, RequestCtx};

use crate::timestamp;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// A log entry as the API shows it, packed by SQLite (see `Db::query_json`).
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

/// The filters of a listing, validated.
struct Filters {
    component: Option<String>,
    level: Option<&'static str>,
    event: Option<String>,
    user: Option<String>,
    request_id: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    status: Option<(i64, i64)>,
    limit: i64,
    before_id: Option<i64>,
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

fn filters(ctx: &RequestCtx) -> Result<Filters, ApiError> {
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
    let limit = query.optional("limit", integer_in(1, MAX_LIMIT));
    let before_id = query.optional("cursor", cursor::decode::<i64>);
    let (component, level, event, user, request_id, since, until, status, limit, before_id) = query
        .finish((
            component, level, event, user, request_id, since, until, status, limit, before_id,
        ))?;
    Ok(Filters {
        component,
        level,
        event,
        user,
        request_id,
        since,
        until,
        status,
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        before_id,
    })
}

/// Bounds on ids for a time filter, from the per-minute and per-hour counts (migration 0015):
/// the least and greatest id counted in the periods that hold `[since, until)`. Ids follow the
/// order entries were stored in, not their times; with these, the newest-first walk that a page
/// is starts and stops where the time filter does instead of visiting every entry outside it.
/// Counting nothing, no entry is inside.
mod id_bounds {
    use shared::platform::db::{Conditions, Param};

    use crate::{HOUR_MS, MINUTE_MS, next_period_start, period_start};

    /// Binds the bounds of `[since, until)` (an absent side is open) and returns the `WITH`
    /// clause that reads them from the counts once, for the conditions it adds.
    pub fn of_time_range(
        conditions: &mut Conditions,
        since: Option<i64>,
        until: Option<i64>,
    ) -> String {
        let periods = counted_periods(conditions, since, until);
        conditions.push(format!(
            "id >= coalesce((SELECT first_id FROM time_range_ids), {})",
            i64::MAX
        ));
        conditions.push("id <= coalesce((SELECT last_id FROM time_range_ids), 0)");
        format!(
            "WITH time_range_ids (first_id, last_id) AS MATERIALIZED (
                 SELECT min(first_id), max(last_id) FROM ({periods}))"
        )
    }

    /// The counts' rows that cover every entry in `[since, until)`: the minutes from since's to
    /// the next whole hour, the whole hours, then the minutes of until's hour before it; or the
    /// minutes alone when one hour holds the range.
    fn counted_periods(
        conditions: &mut Conditions,
        since: Option<i64>,
        until: Option<i64>,
    ) -> String {
        let since_minute = since.map(|since| period_start(since, MINUTE_MS));
        let first_hour = since_minute.map(|minute| next_period_start(minute, HOUR_MS));
        let last_hour = until.map(|until| period_start(until, HOUR_MS));
        if let (Some(first), Some(last)) = (first_hour, last_hour)
            && first > last
        {
            return id_rows(conditions, MINUTES, since_minute, until);
        }
        let mut parts = vec![id_rows(conditions, HOURS, first_hour, last_hour)];
        if since.is_some() {
            parts.push(id_rows(conditions, MINUTES, since_minute, first_hour));
        }
        if until.is_some() {
            parts.push(id_rows(conditions, MINUTES, last_hour, until));
        }
        parts.join(" UNION ALL ")
    }

    /// A table of counts and its period column.
    const MINUTES: (&str, &str) = ("log_minute_counts", "minute_ms");
    const HOURS: (&str, &str) = ("log_hour_counts", "hour_ms");

    /// The id bounds of the counts whose period lies in `[from, to)`. One side may be absent
    /// (open); [`counted_periods`] always gives at least one, as a time range has one.
    fn id_rows(
        conditions: &mut Conditions,
        (table, period): (&str, &str),
        from: Option<i64>,
        to: Option<i64>,
    ) -> String {
        let range: Vec<String> = [(from, ">="), (to, "<")]
            .into_iter()
            .filter_map(|(value, operator)| {
                let placeholder = conditions.bind(Param::Integer(value?));
                Some(format!("{period} {operator} {placeholder}"))
            })
            .collect();
        format!(
            "SELECT first_id, last_id FROM {table} WHERE {}",
            range.join(" AND ")
        )
    }
}

/// The WHERE conditions of `filters`, and the `WITH` clause they need (or nothing); `user_id`
/// is the resolved `user` filter.
fn conditions(filters: Filters, user_id: Option<String>) -> (String, Conditions) {
    let mut conditions = Conditions::default();
    let text = |value: String| Param::Text(value);
    if let Some(component) = filters.component {
        conditions.compare("component =", text(component));
    }
    if let Some(level) = filters.level {
        conditions.compare("level =", text(level.to_owned()));
    }
    if let Some(event) = filters.event {
        conditions.compare("event =", text(event));
    }
    if let Some(user_id) = user_id {
        conditions.compare("user_id =", text(user_id));
    }
    if let Some(request_id) = filters.request_id {
        conditions.compare("request_id =", text(request_id));
    }
    if let Some((low, high)) = filters.status {
        // The class is what the index holds (migration 0016), in the order of ids.
        conditions.compare("status / 100 =", Param::Integer(low / 100));
        conditions.compare("status >=", Param::Integer(low));
        conditions.compare("status <=", Param::Integer(high));
    }
    if let Some(since) = filters.since {
        conditions.compare("at_ms >=", Param::Integer(since));
    }
    if let Some(until) = filters.until {
        conditions.compare("at_ms <", Param::Integer(until));
    }
    let with = if filters.since.is_some() || filters.until.is_some() {
        id_bounds::of_time_range(&mut conditions, filters.since, filters.until)
    } else {
        String::new()
    };
    if let Some(before_id) = filters.before_id {
        conditions.compare("id <", Param::Integer(before_id));
    }
    (with, conditions)
}

pub async fn list(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let filters = filters(ctx)?;
    let db = db::connect_for_long_reads().await?;
    // A user id, or a username resolved to its current account (none: nothing matches).
    let user_id = match &filters.user {
        None => None,
        Some(user) if is_uuid(user) => Some(user.clone()),
        Some(user) => match active_user_id(&db, user).await? {
            Some(id) => Some(id),
            None => return Ok(Reply::ok(&json!({ "entries": [], "next_cursor": null }))),
        },
    };
    let limit = filters.limit;
    let (with, mut conditions) = conditions(filters, user_id);
    let filter = conditions.where_clause();
    let limit_placeholder = conditions.bind(Param::Integer(limit + 1));
    let mut entries: Vec<RawRow> = db
        .query_json(
            &format!(
                "{with} SELECT id, at, level, component, event, request_id, user_id, method, route,
                        status, duration_us, fields, hash
                 FROM log_entries {filter} ORDER BY id DESC LIMIT {limit_placeholder}"
            ),
            ENTRY_JSON_FIELDS,
            "id DESC",
            conditions.into_params(),
        )
        .await?;
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries
            .last()
            .and_then(raw_row_id)
            .map(|id| cursor::encode(&id))
    } else {
        None
    };
    Ok(Reply::ok(&Page {
        entries,
        next_cursor,
    }))
}

/// A page of entries as SQLite packed them (serialised as they are, never rebuilt).
#[derive(Serialize)]
struct Page {
    entries: Vec<RawRow>,
    next_cursor: Option<String>,
}
