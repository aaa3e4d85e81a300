//! Structured events: one access entry per request plus the domain events a handler records
//! with `ctx.event(Event::info("user.registered", json!({...})))`.
//!
//! Every entry is written to stderr as one JSON line before the response leaves (what `spin up`
//! and Fermyon Cloud show), then stored in SQLite after the response has been sent, in one
//! autocommit INSERT for the whole request. A failure to store is reported on stderr and never
//! fails the request. Durability: an entry is on stderr once the response is sent, and in the
//! database a moment later; if the instance dies in that moment the stored copy is lost.
//!
//! Tamper evidence: stored entries are sealed into a SHA-256 hash chain in id order, in
//! batches (whenever an entry id crosses a multiple of [`SEAL_EVERY`], and before the logs
//! are verified), so writers never contend for the chain head. See [`seal`].

use std::cell::{Cell, RefCell};

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::db::{Db, Param};
use crate::http::RequestCtx;

/// Entries are sealed into the hash chain at least every this many ids.
pub const SEAL_EVERY: i64 = 64;
/// Most entries sealed by one transaction.
const SEAL_BATCH: i64 = 2_000;
/// Most entries removed by retention in one transaction.
const PRUNE_BATCH: i64 = 5_000;
/// The chain starts from this value.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Field names whose values never reach a log, whatever a caller passes.
const REDACTED_KEYS: &[&str] = &[
    "password",
    "new_password",
    "token",
    "access_token",
    "authorization",
    "secret",
    "jwt_secret",
    "body",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// A domain event: what happened, how important it is, and its details.
#[derive(Debug, Clone)]
pub struct Event {
    pub level: Level,
    pub name: &'static str,
    pub fields: Map<String, Value>,
}

impl Event {
    pub fn new(level: Level, name: &'static str, fields: Value) -> Self {
        let fields = match fields {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_owned(), other)]),
        };
        Self {
            level,
            name,
            fields: redact(fields),
        }
    }

    pub fn info(name: &'static str, fields: Value) -> Self {
        Self::new(Level::Info, name, fields)
    }

    pub fn warn(name: &'static str, fields: Value) -> Self {
        Self::new(Level::Warn, name, fields)
    }

    pub fn error(name: &'static str, fields: Value) -> Self {
        Self::new(Level::Error, name, fields)
    }
}

fn redact(mut fields: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in fields.iter_mut() {
        if REDACTED_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            *value = Value::String("[redacted]".into());
        } else if let Value::Object(inner) = value {
            *inner = redact(std::mem::take(inner));
        }
    }
    fields
}

/// One row of `log_entries`, as stored and as hashed.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Entry {
    pub at: String,
    pub at_ms: i64,
    pub level: String,
    pub component: String,
    pub event: String,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub status: Option<i64>,
    pub duration_us: Option<i64>,
    /// The JSON object, as text exactly as stored.
    pub fields: String,
}

/// An entry as one stderr line; `fields` is embedded as the JSON it already is.
#[derive(serde::Serialize)]
struct Line<'a> {
    at: &'a str,
    level: &'a str,
    component: &'a str,
    event: &'a str,
    request_id: Option<&'a str>,
    user_id: Option<&'a str>,
    method: Option<&'a str>,
    route: Option<&'a str>,
    status: Option<i64>,
    duration_us: Option<i64>,
    fields: &'a serde_json::value::RawValue,
}

impl Entry {
    fn to_json_line(&self) -> String {
        let fallback;
        let fields = match serde_json::from_str::<&serde_json::value::RawValue>(&self.fields) {
            Ok(raw) => raw,
            Err(_) => {
                fallback = serde_json::value::RawValue::from_string("{}".into())
                    .expect("an empty object is JSON");
                &fallback
            }
        };
        serde_json::to_string(&Line {
            at: &self.at,
            level: &self.level,
            component: &self.component,
            event: &self.event,
            request_id: self.request_id.as_deref(),
            user_id: self.user_id.as_deref(),
            method: self.method.as_deref(),
            route: self.route.as_deref(),
            status: self.status,
            duration_us: self.duration_us,
            fields,
        })
        .expect("log lines serialise")
    }
}

/// The columns of `log_entries` in the order [`Entry::params`] binds them.
pub const COLUMNS: &str = "at, at_ms, level, component, event, request_id, user_id, method, route, status, duration_us, fields";

impl Entry {
    /// The values of [`COLUMNS`], in order, as a JSON array (text, integers or null).
    pub fn json_row(&self) -> Value {
        json!([
            self.at,
            self.at_ms,
            self.level,
            self.component,
            self.event,
            self.request_id,
            self.user_id,
            self.method,
            self.route,
            self.status,
            self.duration_us,
            self.fields,
        ])
    }
}

/// The hash that seals `entry` (whose row id is `id`) after the entry hashed `previous`:
/// SHA-256 over the previous hash and a canonical JSON array of every stored column.
pub fn chain_hash(previous: &str, id: i64, entry: &Entry) -> String {
    let canonical = json!([
        id,
        entry.at,
        entry.at_ms,
        entry.level,
        entry.component,
        entry.event,
        entry.request_id,
        entry.user_id,
        entry.method,
        entry.route,
        entry.status,
        entry.duration_us,
        entry.fields,
    ]);
    crate::hex_sha256(format!("{previous}\n{canonical}").as_bytes())
}

fn entries_for(ctx: &RequestCtx, status: StatusCode, access_log: bool) -> Vec<Entry> {
    let now = crate::time::now();
    let at = crate::time::format_rfc3339(now);
    let at_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let duration_us = ctx.started.elapsed().as_micros() as i64;
    let base = |level: Level, event: String, fields: Map<String, Value>| Entry {
        at: at.clone(),
        at_ms,
        level: level.as_str().to_owned(),
        component: ctx.component.to_owned(),
        event,
        request_id: Some(ctx.request_id.clone()),
        user_id: ctx.user_id.clone(),
        method: None,
        route: None,
        status: None,
        duration_us: None,
        fields: Value::Object(fields).to_string(),
    };

    let mut entries: Vec<Entry> = ctx
        .events
        .iter()
        .map(|event| base(event.level, event.name.to_owned(), event.fields.clone()))
        .collect();
    if access_log {
        let level = if status.is_server_error() {
            Level::Error
        } else if status.is_client_error() {
            Level::Warn
        } else {
            Level::Info
        };
        let mut access = base(
            level,
            "http.request".into(),
            Map::from_iter([("path".to_owned(), Value::String(ctx.path.clone()))]),
        );
        access.method = Some(ctx.method.to_string());
        access.route = Some(ctx.route.unwrap_or("(unmatched)").to_owned());
        access.status = Some(i64::from(status.as_u16()));
        access.duration_us = Some(duration_us);
        entries.push(access);
    }
    entries
}

/// Logs the cause of a 500 or 503 for operators (the client sees a plain detail).
pub fn failure(ctx: &RequestCtx, status: StatusCode, cause: &str) {
    eprintln!(
        "{}",
        json!({
            "at": crate::time::now_rfc3339(),
            "level": "error",
            "component": ctx.component,
            "event": if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE { "internal.error" } else { "store.unavailable" },
            "request_id": ctx.request_id,
            "fields": {"error": cause},
        })
    );
}

thread_local! {
    /// Entries of this instance's finished requests waiting to be stored.
    static PENDING: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// Whether this instance's flusher is running (there is never more than one).
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
}

/// How long the flusher waits for other requests of the instance to finish, so their entries
/// share one INSERT (one commit) instead of one each.
const FLUSH_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

/// Emits the request's entries to stderr now; stores them once the response is on its way.
pub(crate) async fn finish_request(ctx: RequestCtx, status: StatusCode) {
    let access_log = crate::config::flag("access_log").await.unwrap_or(true);
    let entries = entries_for(&ctx, status, access_log);
    if entries.is_empty() {
        return;
    }
    // One write per request: the platform's log collector sees whole lines.
    let mut lines = String::new();
    for entry in &entries {
        lines.push_str(&entry.to_json_line());
        lines.push('\n');
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), lines.as_bytes());
    PENDING.with(|pending| pending.borrow_mut().extend(entries));
    if FLUSHING.with(|flushing| flushing.replace(true)) {
        return;
    }
    // Runs after the response has been returned, within this request's task.
    spin_sdk::wit_bindgen::spawn(flush_pending());
}

/// Stores pending entries until none are left. Being the only user of the instance's
/// background connection matters: Spin answers `last_insert_rowid` by locking the connection
/// on the instance's event loop, which would stall the whole instance behind a concurrent
/// statement waiting for the write lock.
async fn flush_pending() {
    loop {
        spin_sdk::time::sleep(FLUSH_DELAY).await;
        let entries = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
        if entries.is_empty() {
            FLUSHING.with(|flushing| flushing.set(false));
            return;
        }
        if let Err(error) = store(entries).await {
            eprintln!(
                "{}",
                json!({"level": "error", "event": "log.store_failed", "fields": {"error": error.to_string()}})
            );
        }
    }
}

async fn store(entries: Vec<Entry>) -> Result<(), crate::ApiError> {
    if entries.is_empty() {
        return Ok(());
    }
    let db = Db::background().await?;
    let count = entries.len() as i64;
    // The batch travels as one JSON array of rows: one parameter instead of twelve per entry,
    // and one statement text whatever the batch size, so SQLite prepares it once.
    let rows = serde_json::to_string(&entries.iter().map(Entry::json_row).collect::<Vec<_>>())
        .map_err(crate::ApiError::internal)?;
    let values = (0..12)
        .map(|index| format!("value ->> {index}"))
        .collect::<Vec<_>>()
        .join(", ");
    db.execute(
        &format!("INSERT INTO log_entries ({COLUMNS}) SELECT {values} FROM json_each(?)"),
        [Param::Text(rows)],
    )
    .await?;
    // Safe: the instance's single flusher is the only user of this connection.
    let last = db.last_insert_rowid().await;
    let crosses_seal_point = (last - count + 1..=last).any(|id| id % SEAL_EVERY == 0);
    if crosses_seal_point {
        let retention_days = crate::config::parse::<i64>("log_retention_days", |d| *d > 0)
            .await
            .unwrap_or(30);
        seal_on(&db, retention_days).await?;
    }
    Ok(())
}

/// The state of the chain, from `log_chain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// Entries up to this id are hashed.
    pub sealed_through: i64,
    /// The hash of entry `sealed_through`.
    pub head_hash: String,
    /// Entries up to this id were removed by retention; the chain restarts from here.
    pub anchor_id: i64,
    /// The hash entry `anchor_id` had, which the first remaining entry chains from.
    pub anchor_hash: String,
}

pub async fn chain_state(db: &Db) -> Result<ChainState, crate::ApiError> {
    let rows = db
        .query(
            "SELECT sealed_through, head_hash, anchor_id, anchor_hash FROM log_chain WHERE id = 1",
            [],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| crate::ApiError::internal(anyhow::anyhow!("log_chain has no row")))?;
    Ok(ChainState {
        sealed_through: row.get("sealed_through")?,
        head_hash: row.get("head_hash")?,
        anchor_id: row.get("anchor_id")?,
        anchor_hash: row.get("anchor_hash")?,
    })
}

/// Reads entries with id in `(after, through]`, in id order, at most `limit`, packed by SQLite
/// into one JSON value (sealing and verification read thousands at a time). Text columns come
/// back exactly as stored, so hashes computed from them match.
pub async fn read_entries(
    db: &Db,
    after: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<(i64, Entry, Option<String>)>, crate::ApiError> {
    #[derive(serde::Deserialize)]
    struct StoredEntry {
        id: i64,
        #[serde(flatten)]
        entry: Entry,
        hash: Option<String>,
    }
    let mut fields: Vec<(&str, &str)> =
        COLUMNS.split(", ").map(|column| (column, column)).collect();
    fields.extend([("id", "id"), ("hash", "hash")]);
    let rows: Vec<StoredEntry> = db
        .query_json(
            &format!(
                "SELECT id, {COLUMNS}, hash FROM log_entries WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
            ),
            &fields,
            "id",
            [
                Param::Integer(after),
                Param::Integer(through),
                Param::Integer(limit),
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id, row.entry, row.hash))
        .collect())
}

/// Hashes every unsealed entry into the chain (in batches, each its own transaction) and
/// applies retention: entries older than `retention_days` are removed from the start of the
/// chain, and the chain's anchor moves to the last removed entry so verification still holds.
pub async fn seal(retention_days: i64) -> Result<ChainState, crate::ApiError> {
    seal_on(&Db::open().await?, retention_days).await
}

/// [`seal`] on `connection`, which no other task may use meanwhile (each batch is a
/// transaction on it). The flusher seals on its own connection rather than opening one each
/// time: opening a connection parses the whole schema.
async fn seal_on(connection: &Db, retention_days: i64) -> Result<ChainState, crate::ApiError> {
    loop {
        let (state, more) = connection
            .in_transaction(async |db: &Db| -> Result<(ChainState, bool), crate::ApiError> {
                let mut state = chain_state(db).await?;
                let batch = read_entries(db, state.sealed_through, i64::MAX, SEAL_BATCH).await?;
                let more = batch.len() as i64 == SEAL_BATCH;
                if !batch.is_empty() {
                    let mut previous = state.head_hash.clone();
                    let mut updates = Vec::with_capacity(batch.len() * 2);
                    for (id, entry, _) in &batch {
                        previous = chain_hash(&previous, *id, entry);
                        updates.push(Param::Integer(*id));
                        updates.push(Param::Text(previous.clone()));
                    }
                    let values = vec!["(?, ?)"; batch.len()].join(", ");
                    db.execute(
                        &format!(
                            "UPDATE log_entries SET hash = sealed.column2
                             FROM (VALUES {values}) AS sealed
                             WHERE log_entries.id = sealed.column1"
                        ),
                        updates,
                    )
                    .await?;
                    state.sealed_through = batch.last().map(|(id, _, _)| *id).unwrap_or(0);
                    state.head_hash = previous;
                }
                prune(db, &mut state, retention_days).await?;
                db.execute(
                    "UPDATE log_chain SET sealed_through = ?, head_hash = ?, anchor_id = ?, anchor_hash = ? WHERE id = 1",
                    [
                        Param::Integer(state.sealed_through),
                        Param::Text(state.head_hash.clone()),
                        Param::Integer(state.anchor_id),
                        Param::Text(state.anchor_hash.clone()),
                    ],
                )
                .await?;
                Ok((state, more))
            })
            .await?;
        if !more {
            return Ok(state);
        }
    }
}

/// Removes the oldest sealed entries past retention, moving the anchor to the last one removed.
async fn prune(
    db: &Db,
    state: &mut ChainState,
    retention_days: i64,
) -> Result<(), crate::ApiError> {
    let cutoff = crate::time::unix_millis() - retention_days * 86_400_000;
    // One index lookup answers the usual case: nothing has expired.
    let oldest: Option<i64> = db
        .query("SELECT min(at_ms) AS oldest FROM log_entries", [])
        .await?
        .first()
        .map(|row| row.get("oldest"))
        .transpose()?
        .flatten();
    if oldest.is_none_or(|oldest| oldest >= cutoff) {
        return Ok(());
    }
    // Entries are pruned from the oldest id on, up to PRUNE_BATCH of them, and only while they
    // are all expired: an old entry kept alive behind a newer one (clock skew) waits.
    let rows = db
        .query(
            "SELECT id, hash, at_ms FROM log_entries WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            [
                Param::Integer(state.anchor_id),
                Param::Integer(state.sealed_through),
                Param::Integer(PRUNE_BATCH),
            ],
        )
        .await?;
    let mut last: Option<(i64, String)> = None;
    for row in rows.iter() {
        if row.get::<i64>("at_ms")? >= cutoff {
            break;
        }
        match row.get::<Option<String>>("hash")? {
            Some(hash) => last = Some((row.get("id")?, hash)),
            None => break,
        }
    }
    let Some((last_id, last_hash)) = last else {
        return Ok(());
    };
    db.execute(
        "DELETE FROM log_entries WHERE id <= ?",
        [Param::Integer(last_id)],
    )
    .await?;
    state.anchor_id = last_id;
    state.anchor_hash = last_hash;
    Ok(())
}

/// What walking the chain found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    pub valid: bool,
    pub entries_checked: i64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub head_hash: String,
    pub anchor_id: i64,
    /// The first entry whose stored hash does not match, with why.
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
}

/// Walks the sealed chain from its anchor and reports the first broken link.
pub async fn verify(db: &Db) -> Result<Verification, crate::ApiError> {
    let state = chain_state(db).await?;
    let mut previous = state.anchor_hash.clone();
    let mut after = state.anchor_id;
    let mut checked = 0;
    let mut first_id = None;
    let broken = |id: i64, reason: String, checked: i64, first_id: Option<i64>| Verification {
        valid: false,
        entries_checked: checked,
        first_id,
        last_id: Some(id),
        head_hash: state.head_hash.clone(),
        anchor_id: state.anchor_id,
        broken_at: Some(id),
        reason: Some(reason),
    };
    loop {
        let batch = read_entries(db, after, state.sealed_through, 1_000).await?;
        if batch.is_empty() {
            break;
        }
        for (id, entry, stored) in batch {
            first_id.get_or_insert(id);
            let expected = chain_hash(&previous, id, &entry);
            match stored {
                Some(stored) if stored == expected => {}
                Some(_) => {
                    return Ok(broken(
                        id,
                        "the entry's stored hash does not match its content and the entry before it: this entry was edited, or the one before it was edited or removed".into(),
                        checked,
                        first_id,
                    ));
                }
                None => {
                    return Ok(broken(
                        id,
                        "the entry is inside the sealed range but has no hash".into(),
                        checked,
                        first_id,
                    ));
                }
            }
            previous = expected;
            after = id;
            checked += 1;
        }
    }
    if after != state.sealed_through || previous != state.head_hash {
        return Ok(broken(
            after,
            "the chain ends before its recorded head: entries at the end were removed or edited"
                .into(),
            checked,
            first_id,
        ));
    }
    Ok(Verification {
        valid: true,
        entries_checked: checked,
        first_id,
        last_id: (checked > 0).then_some(after),
        head_hash: state.head_hash,
        anchor_id: state.anchor_id,
        broken_at: None,
        reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            at: "2026-11-23T10:00:00.000Z".into(),
            at_ms: 1,
            level: "info".into(),
            component: "login".into(),
            event: "http.request".into(),
            request_id: Some("r1".into()),
            user_id: None,
            method: Some("POST".into()),
            route: Some("/auth/login".into()),
            status: Some(200),
            duration_us: Some(10),
            fields: "{}".into(),
        }
    }

    #[test]
    fn every_column_and_the_previous_hash_feed_the_chain() {
        let base = chain_hash(GENESIS_HASH, 1, &entry());
        assert_eq!(base.len(), 64);
        assert_ne!(chain_hash(GENESIS_HASH, 2, &entry()), base);
        assert_ne!(chain_hash(&base, 1, &entry()), base);
        let mut edited = entry();
        edited.status = Some(500);
        assert_ne!(chain_hash(GENESIS_HASH, 1, &edited), base);
        let mut edited = entry();
        edited.fields = "{\"a\":1}".into();
        assert_ne!(chain_hash(GENESIS_HASH, 1, &edited), base);
        assert_eq!(chain_hash(GENESIS_HASH, 1, &entry()), base);
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let event = Event::info(
            "x",
            json!({"user": "ada", "password": "hunter22", "nested": {"token": "abc"}}),
        );
        assert_eq!(event.fields["user"], "ada");
        assert_eq!(event.fields["password"], "[redacted]");
        assert_eq!(event.fields["nested"]["token"], "[redacted]");
    }
}
