//! Structured log records: what an entry holds, how it is written to stderr as one JSON line
//! (what `spin up`, Fermyon Cloud and Kubernetes show), and how a batch of entries is stored in
//! the `log_entries` table with one statement. The tamper-evident chain over stored entries is
//! the logs domain's business (`domain::logs`).

use serde_json::{Map, Value, json};

use crate::platform::db::{Db, DbError, Param};

/// Field names whose values never reach a log, whatever a caller passes.
const REDACTED_KEYS: &[&str] = &[
    "password",
    "new_password",
    "token",
    "access_token",
    "authorization",
    "secret",
    "private_key",
    "bootstrap_token",
    "body",
];

/// Text fields of an event are cut to this many characters, so no caller can make one entry
/// large (a username typed as a megabyte, say).
const MAX_FIELD_CHARS: usize = 256;

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
            fields: sanitise(fields),
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

/// Redacts secrets and shortens long text, at any depth.
fn sanitise(mut fields: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in fields.iter_mut() {
        if REDACTED_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            *value = Value::String("[redacted]".into());
            continue;
        }
        match value {
            Value::Object(inner) => *inner = sanitise(std::mem::take(inner)),
            Value::String(text) if text.chars().count() > MAX_FIELD_CHARS => {
                *text = text.chars().take(MAX_FIELD_CHARS).collect::<String>() + "…";
            }
            _ => {}
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

/// The columns of `log_entries` in the order [`Entry::json_row`] lists them.
pub const COLUMNS: &str = "at, at_ms, level, component, event, request_id, user_id, method, route, status, duration_us, fields";

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
    /// An event of `component`, now.
    pub fn of_event(component: &str, event: &Event) -> Self {
        let now = crate::platform::time::now();
        Self {
            at: crate::platform::time::format_rfc3339(now),
            at_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
            level: event.level.as_str().to_owned(),
            component: component.to_owned(),
            event: event.name.to_owned(),
            request_id: None,
            user_id: None,
            method: None,
            route: None,
            status: None,
            duration_us: None,
            fields: Value::Object(event.fields.clone()).to_string(),
        }
    }

    pub fn to_json_line(&self) -> String {
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

/// Writes entries to stderr, one JSON line each, in one write (so a log collector sees whole
/// lines even when instances interleave).
pub fn write_lines(entries: &[Entry]) {
    let mut lines = String::new();
    for entry in entries {
        lines.push_str(&entry.to_json_line());
        lines.push('\n');
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), lines.as_bytes());
}

/// Writes one operator-facing line to stderr (failures that have no request to belong to).
pub fn write_operator_line(level: Level, component: &str, event: &str, fields: Value) {
    eprintln!(
        "{}",
        json!({
            "at": crate::platform::time::now_rfc3339(),
            "level": level.as_str(),
            "component": component,
            "event": event,
            "fields": fields,
        })
    );
}

/// Stores `entries` with one INSERT on `db` and returns the id of the last one. The batch
/// travels as one JSON array of rows: one parameter instead of twelve per entry, and one
/// statement text whatever the batch size, so SQLite prepares it once.
pub async fn store(db: &Db, entries: &[Entry]) -> Result<i64, DbError> {
    let rows = Value::Array(entries.iter().map(Entry::json_row).collect()).to_string();
    let values = (0..12)
        .map(|index| format!("value ->> {index}"))
        .collect::<Vec<_>>()
        .join(", ");
    db.execute(
        &format!("INSERT INTO log_entries ({COLUMNS}) SELECT {values} FROM json_each(?)"),
        [Param::Text(rows)],
    )
    .await?;
    // The SQL function, not the host's `last_insert_rowid`: libSQL answers the latter with 0.
    // The connection is this task's alone, so no other insert can come between.
    db.query_integer("SELECT last_insert_rowid()", []).await
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn long_text_fields_are_cut() {
        let event = Event::warn("x", json!({"username": "a".repeat(10_000)}));
        let kept = event.fields["username"].as_str().unwrap();
        assert_eq!(kept.chars().count(), MAX_FIELD_CHARS + 1);
    }

    #[test]
    fn lines_embed_the_fields_as_json() {
        let entry = Entry::of_event("login", &Event::info("x", json!({"n": 1})));
        let line: Value = serde_json::from_str(&entry.to_json_line()).unwrap();
        assert_eq!(line["fields"]["n"], 1);
        assert_eq!(line["component"], "login");
    }
}
