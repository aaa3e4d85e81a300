//! The access log and domain events of each request, recorded after the response has left: an
//! instance's finished requests are gathered for [`FLUSH_DELAY`], then written to stderr as
//! JSON lines (one write) and stored in SQLite with one INSERT, and sealed into the log's chain
//! whenever the batch crosses a seal point. A failure to store is reported on stderr and never
//! fails a request. Durability: entries reach stderr and the database at most FLUSH_DELAY after
//! their response; an instance killed in that window loses them.
//!
//! Why batch: measured under Spin at 32 connections, storing each request's entries with a
//! statement of its own cost authenticate over half its throughput, and a 2 ms gathering window
//! a third; with 100 ms, one INSERT and one stderr write carry a few hundred entries.

use std::cell::{Cell, RefCell};

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::domain::logs::{SEAL_EVERY, seal};
use crate::platform::config;
use crate::platform::db;
use crate::platform::log::{Entry, Level, write_lines, write_operator_line};
use crate::web::RequestCtx;

thread_local! {
    /// Entries of this instance's finished requests waiting to be stored.
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    /// Whether this instance's flusher is running (there is never more than one).
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
}

/// How long the flusher gathers the instance's finished requests, so their entries share one
/// stderr write and one INSERT (one commit) instead of one each.
const FLUSH_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Logs the cause of a 500 or 503 for operators (the client sees a plain detail).
pub fn failure(ctx: &RequestCtx, status: StatusCode, cause: &str) {
    let event = if status == StatusCode::SERVICE_UNAVAILABLE {
        "store.unavailable"
    } else {
        "internal.error"
    };
    write_operator_line(
        Level::Error,
        ctx.component,
        event,
        json!({"request_id": ctx.request_id, "error": cause}),
    );
}

/// A finished request's entry waiting for the flusher, and whether it is the access entry
/// (dropped there when the operator turned the access log off).
struct Pending {
    entry: Entry,
    access: bool,
}

/// Queues the request's entries for the instance's flusher (see the module documentation).
/// No host call happens here: the `access_log` variable is read by the flusher, after the
/// response has left, so a new instance does not wait on a timer before answering (see
/// [`crate::platform::host`]).
pub fn finish(ctx: RequestCtx, status: StatusCode) {
    let events = ctx
        .events
        .iter()
        .map(|event| with_request(&ctx, Entry::of_event(ctx.component, event)));
    let entries: Vec<Pending> = events
        .map(|entry| Pending {
            entry,
            access: false,
        })
        // Once this instance has read the log as off, a request without events queues nothing.
        .chain(
            (config::kept_flag("access_log") != Some(false)).then(|| Pending {
                entry: access_entry(&ctx, status),
                access: true,
            }),
        )
        .collect();
    if entries.is_empty() {
        return;
    }
    PENDING.with(|pending| pending.borrow_mut().extend(entries));
    if FLUSHING.with(|flushing| flushing.replace(true)) {
        return;
    }
    // Runs after the response has been returned, within this request's task.
    spin_sdk::wit_bindgen::spawn(flush_pending(ctx.component));
}

fn with_request(ctx: &RequestCtx, mut entry: Entry) -> Entry {
    entry.request_id = Some(ctx.request_id.clone());
    entry.user_id = ctx.user_id.clone();
    entry
}

/// The request's access entry: method, route, status and duration.
fn access_entry(ctx: &RequestCtx, status: StatusCode) -> Entry {
    let duration_us = ctx.started.elapsed().as_micros() as i64;
    let level = if status.is_server_error() {
        Level::Error
    } else if status.is_client_error() {
        Level::Warn
    } else {
        Level::Info
    };
    let fields = Map::from_iter([("path".to_owned(), Value::String(ctx.path.clone()))]);
    let event = crate::platform::log::Event {
        level,
        name: "http.request",
        fields,
    };
    let mut access = with_request(ctx, Entry::of_event(ctx.component, &event));
    access.method = Some(ctx.method.to_string());
    access.route = Some(ctx.route.unwrap_or("(unmatched)").to_owned());
    access.status = Some(i64::from(status.as_u16()));
    access.duration_us = Some(duration_us);
    access
}

/// Whether the operator keeps the access log (the `access_log` variable; on when unreadable,
/// which is reported).
async fn access_log_on(component: &str) -> bool {
    match config::flag("access_log").await {
        Ok(on) => on,
        Err(error) => {
            write_operator_line(
                Level::Error,
                component,
                "config.invalid",
                json!({"error": error.to_string()}),
            );
            true
        }
    }
}

/// Stores pending entries until none are left, on one pooled connection at a time.
async fn flush_pending(component: &'static str) {
    loop {
        spin_sdk::time::sleep(FLUSH_DELAY).await;
        let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
        if pending.is_empty() {
            FLUSHING.with(|flushing| flushing.set(false));
            return;
        }
        let access_log = access_log_on(component).await;
        let entries: Vec<Entry> = pending
            .into_iter()
            .filter(|pending| access_log || !pending.access)
            .map(|pending| pending.entry)
            .collect();
        if entries.is_empty() {
            continue;
        }
        write_lines(&entries);
        if let Err(error) = store_and_seal(component, &entries).await {
            write_operator_line(
                Level::Error,
                component,
                "log.store_failed",
                json!({"error": error.to_string(), "entries": entries.len()}),
            );
        }
    }
}

async fn store_and_seal(component: &str, entries: &[Entry]) -> Result<(), crate::web::ApiError> {
    let db = db::connect_for_long_reads().await?;
    let last = crate::platform::log::store(&db, entries).await?;
    let first = last - entries.len() as i64 + 1;
    if (first..=last).any(|id| id % SEAL_EVERY == 0) {
        let retention_days = config::parse::<i64>("log_retention_days", |d| *d > 0).await?;
        seal(&db, component, retention_days).await?;
    }
    Ok(())
}
