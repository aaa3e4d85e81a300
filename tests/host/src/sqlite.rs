//! `spin:sqlite/sqlite@3.1.0` as Spin's in-process SQLite implements it: every `open` makes a new
//! connection to `sqlite_db.db` in the state directory (opened lazily, Spin's SQLite defaults, no
//! pragmas), statements run one at a time on a blocking thread that holds the connection while
//! rows stream out through a small channel, and statement errors are reported through the
//! returned future rather than the call itself.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use wasmtime::StoreContextMut;
use wasmtime::component::{
    Accessor, Destination, FutureReader, HasData, Resource, StreamProducer, StreamReader,
    StreamResult,
};

use crate::bindings::sqlite::{self, Error, QueryResult, RowResult, Value};

/// Spin caps what it buffers for a guest at 128 MiB.
const MAX_RESULT_BYTES: usize = 128 << 20;
/// Spin's limit on connections open at once in one instance.
const CONNECTION_TABLE_CAPACITY: usize = 256;
/// Rows buffered between the statement and the guest, as in Spin.
const ROW_CHANNEL_CAPACITY: usize = 4;

/// The guest-visible handle type; the host keeps what it refers to in [`SqliteInstance`].
pub struct ConnectionHandle;

/// Where the databases of the app live, by label.
pub struct SqliteDatabases {
    paths: HashMap<String, PathBuf>,
}

impl SqliteDatabases {
    pub fn new(paths: HashMap<String, PathBuf>) -> Self {
        Self { paths }
    }
}

/// One guest connection: a rusqlite connection made on first use.
struct LazyConnection {
    path: PathBuf,
    connection: OnceLock<Arc<Mutex<rusqlite::Connection>>>,
}

impl LazyConnection {
    fn get(&self) -> Result<Arc<Mutex<rusqlite::Connection>>, Error> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let connection = rusqlite::Connection::open(&self.path).map_err(io_error)?;
        // Spin refuses ATTACH of files unless the runtime config allows it.
        connection.authorizer(Some(|context: rusqlite::hooks::AuthContext<'_>| {
            use rusqlite::hooks::{AuthAction, Authorization};
            match context.action {
                AuthAction::Attach { filename } if !matches!(filename, "" | ":memory:") => {
                    Authorization::Deny
                }
                _ => Authorization::Allow,
            }
        }));
        Ok(self
            .connection
            .get_or_init(|| Arc::new(Mutex::new(connection)))
            .clone())
    }
}

fn io_error(error: rusqlite::Error) -> Error {
    Error::Io(error.to_string())
}

/// Per-instance SQLite state: what the component may open and what it has open.
pub struct SqliteInstance {
    allowed: Arc<HashSet<String>>,
    databases: Arc<SqliteDatabases>,
    connections: HashMap<u32, Arc<LazyConnection>>,
    next_rep: u32,
}

impl SqliteInstance {
    pub fn new(allowed: Arc<HashSet<String>>, databases: Arc<SqliteDatabases>) -> Self {
        Self {
            allowed,
            databases,
            connections: HashMap::new(),
            next_rep: 1,
        }
    }

    fn open(&mut self, label: &str) -> Result<Resource<ConnectionHandle>, Error> {
        if !self.allowed.contains(label) {
            return Err(Error::AccessDenied);
        }
        let path = self
            .databases
            .paths
            .get(label)
            .ok_or(Error::NoSuchDatabase)?
            .clone();
        if self.connections.len() >= CONNECTION_TABLE_CAPACITY {
            return Err(Error::Io("too many connections opened".into()));
        }
        let rep = self.next_rep;
        self.next_rep += 1;
        self.connections.insert(
            rep,
            Arc::new(LazyConnection {
                path,
                connection: OnceLock::new(),
            }),
        );
        Ok(Resource::new_own(rep))
    }

    /// The (opened) SQLite connection behind a handle; a bad handle traps, as in Spin.
    fn sqlite_connection(
        &self,
        handle: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<Arc<Mutex<rusqlite::Connection>>> {
        self.connection(handle)
            .and_then(|lazy| lazy.get())
            .map_err(|error| wasmtime::format_err!("{error:?}"))
    }

    fn connection(
        &self,
        handle: &Resource<ConnectionHandle>,
    ) -> Result<Arc<LazyConnection>, Error> {
        self.connections
            .get(&handle.rep())
            .cloned()
            .ok_or(Error::InvalidConnection)
    }
}

/// Marker for the linker: the host data behind `spin:sqlite`.
pub struct Sqlite;

impl HasData for Sqlite {
    type Data<'a> = &'a mut SqliteInstance;
}

fn to_sql(value: Value) -> rusqlite::types::Value {
    match value {
        Value::Integer(i) => rusqlite::types::Value::Integer(i),
        Value::Real(r) => rusqlite::types::Value::Real(r),
        Value::Text(t) => rusqlite::types::Value::Text(t),
        Value::Blob(b) => rusqlite::types::Value::Blob(b),
        Value::Null => rusqlite::types::Value::Null,
    }
}

fn from_sql(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn value_size(value: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match value {
            Value::Text(t) => t.len(),
            Value::Blob(b) => b.len(),
            _ => 0,
        }
}

fn read_row(row: &rusqlite::Row<'_>, width: usize) -> Result<RowResult, Error> {
    let values = (0..width)
        .map(|i| row.get_ref(i).map(from_sql).map_err(io_error))
        .collect::<Result<Vec<_>, _>>()?;
    if values.iter().map(value_size).sum::<usize>() > MAX_RESULT_BYTES {
        return Err(Error::Io(format!(
            "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
        )));
    }
    Ok(RowResult { values })
}

/// Runs a statement to completion and returns every row (the synchronous `execute`).
fn query_all(
    connection: &Mutex<rusqlite::Connection>,
    statement: &str,
    parameters: Vec<Value>,
) -> Result<QueryResult, Error> {
    let connection = connection.lock().unwrap();
    let mut prepared = connection.prepare_cached(statement).map_err(io_error)?;
    let columns: Vec<String> = prepared
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let width = columns.len();
    let mut rows = prepared
        .query(rusqlite::params_from_iter(
            parameters.into_iter().map(to_sql),
        ))
        .map_err(io_error)?;
    let mut result = Vec::new();
    let mut total = 0;
    while let Some(row) = rows.next().map_err(io_error)? {
        let row = read_row(row, width)?;
        total += row.values.iter().map(value_size).sum::<usize>();
        if total > MAX_RESULT_BYTES {
            return Err(Error::Io(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            )));
        }
        result.push(row);
    }
    Ok(QueryResult {
        columns,
        rows: result,
    })
}

/// The pieces `execute-async` hands back: columns now, rows as they come, the outcome last.
struct Streaming {
    columns: Vec<String>,
    rows: tokio::sync::mpsc::Receiver<RowResult>,
    outcome: tokio::sync::oneshot::Receiver<Result<(), Error>>,
}

/// Starts a statement on a blocking thread, which keeps the connection until the last row is
/// taken, exactly as Spin does (a guest that runs a second statement on the same connection
/// before draining the first one's rows waits for them).
async fn query_streaming(
    connection: Arc<Mutex<rusqlite::Connection>>,
    statement: String,
    parameters: Vec<Value>,
) -> Streaming {
    let (columns_tx, columns_rx) = tokio::sync::oneshot::channel();
    let (rows_tx, rows_rx) = tokio::sync::mpsc::channel(ROW_CHANNEL_CAPACITY);
    let (outcome_tx, outcome_rx) = tokio::sync::oneshot::channel();

    tokio::task::spawn_blocking(move || {
        let run = || -> Result<(), Error> {
            let connection = connection.lock().unwrap();
            let mut columns_tx = Some(columns_tx);
            let mut prepared = match connection.prepare_cached(&statement) {
                Ok(prepared) => prepared,
                Err(error) => {
                    let _ = columns_tx.take().map(|tx| tx.send(Vec::new()));
                    return Err(io_error(error));
                }
            };
            let columns: Vec<String> = prepared
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let width = columns.len();
            let _ = columns_tx.take().map(|tx| tx.send(columns));
            let mut rows = prepared
                .query(rusqlite::params_from_iter(
                    parameters.into_iter().map(to_sql),
                ))
                .map_err(io_error)?;
            while let Some(row) = rows.next().map_err(io_error)? {
                let row = read_row(row, width)?;
                rows_tx
                    .blocking_send(row)
                    .map_err(|_| Error::Io("row send error".into()))?;
            }
            Ok(())
        };
        let _ = outcome_tx.send(run());
    });

    let columns = columns_rx.await.unwrap_or_default();
    Streaming {
        columns,
        rows: rows_rx,
        outcome: outcome_rx,
    }
}

/// Feeds rows from the statement's channel into the guest's stream.
struct RowProducer {
    rows: tokio::sync::mpsc::Receiver<RowResult>,
}

impl<D> StreamProducer<D> for RowProducer {
    type Item = RowResult;
    type Buffer = Option<RowResult>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, Self::Item, Self::Buffer>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        if destination.remaining(store) == Some(0) {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        match self.get_mut().rows.poll_recv(cx) {
            Poll::Ready(Some(row)) => {
                destination.set_buffer(Some(row));
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Poll::Ready(None) => Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl sqlite::Host for SqliteInstance {}

impl sqlite::HostConnection for SqliteInstance {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, Error>> {
        Ok(SqliteInstance::open(self, &database))
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let outcome = match self.connection(&connection).and_then(|lazy| lazy.get()) {
            Ok(connection) => {
                tokio::task::spawn_blocking(move || query_all(&connection, &statement, parameters))
                    .await
                    .map_err(|error| wasmtime::format_err!("sqlite worker failed: {error}"))?
            }
            Err(error) => Err(error),
        };
        Ok(outcome)
    }

    async fn last_insert_rowid(
        &mut self,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        let connection = self.sqlite_connection(&connection)?;
        Ok(connection.lock().unwrap().last_insert_rowid())
    }

    async fn changes(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<u64> {
        let connection = self.sqlite_connection(&connection)?;
        Ok(connection.lock().unwrap().changes())
    }

    async fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.connections.remove(&connection.rep());
        Ok(())
    }
}

impl<T: Send> sqlite::HostConnectionWithStore<T> for Sqlite {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, Error>> {
        Ok(accessor.with(|mut access| access.get().open(&database)))
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<String>,
                StreamReader<RowResult>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let lazy = match accessor.with(|mut access| access.get().connection(&connection)) {
            Ok(lazy) => lazy,
            Err(error) => return Ok(Err(error)),
        };
        let connection = match lazy.get() {
            Ok(connection) => connection,
            Err(error) => return Ok(Err(error)),
        };
        let Streaming {
            columns,
            rows,
            outcome,
        } = query_streaming(connection, statement, parameters).await;
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, RowProducer { rows })?;
            let outcome = FutureReader::new(&mut access, outcome)?;
            Ok(Ok((columns, rows, outcome)))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        let connection = accessor.with(|mut access| access.get().sqlite_connection(&connection))?;
        // Like Spin: the connection is locked on this (async) thread.
        Ok(connection.lock().unwrap().last_insert_rowid())
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<u64> {
        let connection = accessor.with(|mut access| access.get().sqlite_connection(&connection))?;
        Ok(connection.lock().unwrap().changes())
    }
}
