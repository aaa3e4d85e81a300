//! The SQLite floor for benchmarks: one point read by primary key per request on a connection
//! the instance keeps, answered with the row's text and its length (one write).

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::sqlite::{Connection, Value};

thread_local! {
    static CONNECTION: RefCell<Option<Rc<Connection>>> = const { RefCell::new(None) };
}

async fn connection() -> Option<Rc<Connection>> {
    if let Some(connection) = CONNECTION.with(|c| c.borrow().clone()) {
        return Some(connection);
    }
    let connection = Rc::new(Connection::open_default().await.ok()?);
    CONNECTION.with(|c| *c.borrow_mut() = Some(connection.clone()));
    Some(connection)
}

async fn read_row() -> Option<String> {
    let connection = connection().await?;
    let rows = connection
        .execute("SELECT body FROM floor WHERE id = ?", [Value::Integer(1)])
        .await
        .ok()?
        .collect()
        .await
        .ok()?;
    rows.first()?.get::<&str>(0).map(str::to_owned)
}

#[http_service]
async fn sqlite_read(_request: Request) -> http::Response<Full<Bytes>> {
    let body = read_row().await.unwrap_or_default();
    http::Response::builder()
        .header("content-type", "text/plain")
        .header("content-length", body.len().to_string())
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
