//! The SQLite write floor for benchmarks: one INSERT of a small row per request (one commit),
//! on a connection the instance keeps, answered with the new row's id. The database is in WAL
//! mode and the connection uses `synchronous = NORMAL`, as the app's are, so a route that stores
//! something is read against the least Spin lets a write cost. It has a database of its own
//! (`writes`), so the read floor's database stays as it was.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::sqlite::{Connection, RowResult, Value};

thread_local! {
    static CONNECTION: RefCell<Option<Rc<Connection>>> = const { RefCell::new(None) };
}

/// Statements a new instance runs once on its connection, before its first write.
const SET_UP: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "CREATE TABLE IF NOT EXISTS floor_writes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
];

async fn run(connection: &Connection, sql: &str, params: Vec<Value>) -> Option<Vec<RowResult>> {
    connection
        .execute(sql, params)
        .await
        .ok()?
        .collect()
        .await
        .ok()
}

async fn connection() -> Option<Rc<Connection>> {
    if let Some(connection) = CONNECTION.with(|c| c.borrow().clone()) {
        return Some(connection);
    }
    let connection = Connection::open("writes").await.ok()?;
    for sql in SET_UP {
        run(&connection, sql, Vec::new()).await?;
    }
    let connection = Rc::new(connection);
    CONNECTION.with(|c| *c.borrow_mut() = Some(connection.clone()));
    Some(connection)
}

async fn insert_row() -> Option<String> {
    let connection = connection().await?;
    let body = Value::Text("a small row, like a message".to_owned());
    let rows = run(
        &connection,
        "INSERT INTO floor_writes (body) VALUES (?) RETURNING id",
        vec![body],
    )
    .await?;
    rows.first()?.get::<i64>(0).map(|id| id.to_string())
}

#[http_service]
async fn sqlite_write(_request: Request) -> http::Response<Full<Bytes>> {
    let (status, body) = match insert_row().await {
        Some(id) => (http::StatusCode::CREATED, id),
        None => (http::StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    };
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .header("content-length", body.len().to_string())
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
