//! Access to Spin's SQLite database: pooled connections (with the schema brought up to date
//! first), typed rows, transactions, and rows packed into JSON by SQLite.
//!
//! Connections: under Spin every `open` is a new connection (a file, locks and a schema parse
//! with the embedded SQLite; a new TCP connection and server stream with libSQL), and costs more
//! than most queries. So each instance keeps the connections it opened on the embedded SQLite in
//! a small pool: [`connect`] lends one to a request for as long as it holds it, which also
//! guarantees that a connection never runs two statements at once and that a transaction's
//! statements never interleave with another request's. A connection that failed is not lent
//! again.
//!
//! A libSQL connection is closed after its request instead: an idle one keeps one of the server's
//! connection slots (`--max-concurrent-connections`) until its stream is closed or expires, about
//! ten seconds later (libsql-server 0.24's Hrana streams), so pooling it would hold slots other
//! instances and processes wait for (the scale-out test that exhausts the server's connections
//! failed when they were pooled). Closing hands the slot back at once. Such a backend is known by
//! refusing the per-connection settings below.
//!
//! Durability choice: the database runs in WAL mode with `synchronous = NORMAL` where the
//! backend allows it (Spin's embedded SQLite). A commit is then a write into the WAL file
//! without an fsync; the file is synced at checkpoints. That survives any crash of the server
//! process (SIGKILL included: the data is in the operating system's cache), never corrupts the
//! database, and only an operating-system crash or power loss can lose the last commits before
//! the latest checkpoint. Rollback-journal mode with full sync costs two to three fsyncs per
//! commit. A remote libSQL server refuses these pragmas and keeps its own durability; the
//! refusal only tells the pool not to keep its connections.
//!
//! Temporary data stays in memory (`temp_store = MEMORY`): a statement inside a transaction
//! that writes many rows (the log's seal updating a batch of entries, say) keeps a statement
//! journal, which SQLite otherwise spills to a new temporary file past 64 KiB. Measured under
//! Spin with log batches inserted inside a transaction, that was a file created, written and
//! deleted about once per batch (bench/RESULTS.md).
//!
//! Two ways to run a statement. Spin offers a streaming call (`execute-async`: the statement
//! runs on a blocking thread and hands its rows over a channel and a stream) and a plain one
//! (`execute`: all rows in one answer). Measured under Spin, a `SELECT 1` takes about 75 us by
//! the plain call and 175 us by the streaming one, and a route's CPU falls accordingly
//! (bench/RESULTS.md, "Plain calls for short reads"). But the plain call holds the instance's
//! store until the statement ends, so none of the instance's other requests (up to 16) runs
//! meanwhile. So it is used only where that wait is short and bounded: a `SELECT` (which in WAL
//! mode never waits for another connection's lock) on Spin's embedded SQLite, on a connection
//! lent by [`connect`]. Writes, which may wait for the write lock, everything on a libSQL server
//! (a network round trip), and every statement on a connection from
//! [`connect_for_long_reads`] (searches, the log's pages, counts and flushes, the similarity
//! index's loads) take the streaming call. The plain call also caps a whole answer at Spin's
//! 128 MiB host buffer, where the streaming one caps each row.

use std::cell::RefCell;
use std::ops::Deref;

use anyhow::Context as _;
use spin_sdk::sqlite::Value;
// The SDK's own bindings of `spin:sqlite`: its `Connection` offers only the streaming call.
use spin_sdk::sqlite::wit::sqlite::Connection;

/// Connections kept idle per instance; more are closed when returned.
const MAX_IDLE: usize = 8;

/// Statement parameters.
pub use spin_sdk::sqlite::Value as Param;

/// An SQLite failure, with what was being done.
#[derive(Debug, Clone)]
pub struct DbError {
    pub context: String,
    pub message: String,
}

impl DbError {
    fn new(context: impl Into<String>, cause: spin_sdk::sqlite::Error) -> Self {
        let message = match cause {
            spin_sdk::sqlite::Error::Io(message) => message,
            other => format!("{other:?}"),
        };
        Self {
            context: context.into(),
            message,
        }
    }

    /// A UNIQUE or PRIMARY KEY constraint rejected the write.
    pub fn is_unique_violation(&self) -> bool {
        self.message.contains("UNIQUE constraint failed")
    }

    /// The database could not take the statement now, and may a moment later: another
    /// connection held the write lock longer than the busy timeout (libSQL's server says so by
    /// timing the waiting transaction out), or a libSQL server had no connection to spare (it
    /// gives each client stream one of `--max-concurrent-connections` and makes a new stream
    /// wait at most `--connection-creation-timeout-sec`).
    pub fn is_busy(&self) -> bool {
        [
            "database is locked",
            "database is busy",
            "TRANSACTION_TIMEOUT",
            "Transaction timed out",
            "Timed out while opening database connection",
            "Too many concurrent requests",
        ]
        .iter()
        .any(|text| self.message.contains(text))
    }

    /// Opening the database failed (nothing was attempted yet).
    pub fn is_unavailable(&self) -> bool {
        self.context == OPENING
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.context, self.message)
    }
}

impl std::error::Error for DbError {}

const OPENING: &str = "opening the database";

/// The rows of a query, with their column names.
#[derive(Debug, Default)]
pub struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

/// One row; columns are read by name.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// Column names compare as SQLite compares them, ignoring ASCII case: libSQL hands back
    /// an alias that is also a keyword (`AS first`) in capitals.
    pub fn get<T: FromValue>(&self, column: &str) -> anyhow::Result<T> {
        T::from_value(self.value(column)?).with_context(|| format!("column {column:?}"))
    }

    /// A text column, borrowed: a value of megabytes need not be copied to be read.
    pub fn text(&self, column: &str) -> anyhow::Result<&'a str> {
        match self.value(column)? {
            Value::Text(text) => Ok(text),
            other => anyhow::bail!("column {column:?}: expected text, found {other:?}"),
        }
    }

    /// A blob column, borrowed (text reads as its bytes, as [`FromValue`] for `Vec<u8>` does).
    pub fn blob(&self, column: &str) -> anyhow::Result<&'a [u8]> {
        match self.value(column)? {
            Value::Blob(bytes) => Ok(bytes),
            Value::Text(text) => Ok(text.as_bytes()),
            other => anyhow::bail!("column {column:?}: expected a blob, found {other:?}"),
        }
    }

    fn value(&self, column: &str) -> anyhow::Result<&'a Value> {
        let index = self
            .columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(column))
            .with_context(|| format!("no column {column:?} in the result {:?}", self.columns))?;
        Ok(&self.values[index])
    }
}

/// Conversion from an SQLite value.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> anyhow::Result<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => anyhow::bail!("expected an integer, found {other:?}"),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Real(r) => Ok(*r),
            Value::Integer(i) => Ok(*i as f64),
            other => anyhow::bail!("expected a real, found {other:?}"),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Text(t) => Ok(t.clone()),
            other => anyhow::bail!("expected text, found {other:?}"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(t) => Ok(t.as_bytes().to_vec()),
            other => anyhow::bail!("expected a blob, found {other:?}"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// An open connection to the app's database.
pub struct Db {
    connection: Connection,
    /// Set when a statement failed in a way that may have left the connection unusable.
    broken: std::cell::Cell<bool>,
    /// Whether the instance may keep it for later requests: on the embedded SQLite, not on a
    /// libSQL server (see the module documentation).
    poolable: bool,
    /// Lent for statements that may run long: every statement takes the streaming call.
    long_reads: std::cell::Cell<bool>,
}

thread_local! {
    static IDLE: RefCell<Vec<Db>> = const { RefCell::new(Vec::new()) };
}

/// A pooled connection lent to one task; it goes back to the instance's pool when dropped.
pub struct PooledDb {
    db: Option<Db>,
}

impl Deref for PooledDb {
    type Target = Db;

    fn deref(&self) -> &Db {
        self.db.as_ref().expect("present until dropped")
    }
}

impl Drop for PooledDb {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else {
            return;
        };
        if db.broken.get() || !db.poolable {
            return;
        }
        db.long_reads.set(false);
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            if idle.len() < MAX_IDLE {
                idle.push(db);
            }
        });
    }
}

/// A connection of this instance's pool (or a new one, its schema brought up to date first),
/// for statements that take little time: its `SELECT`s hold the instance while they run (see
/// the module documentation).
pub async fn connect() -> Result<PooledDb, DbError> {
    if let Some(db) = IDLE.with(|idle| idle.borrow_mut().pop()) {
        return Ok(PooledDb { db: Some(db) });
    }
    let db = Db::open().await?;
    crate::platform::migrations::ensure_schema(&db).await?;
    Ok(PooledDb { db: Some(db) })
}

/// A connection as [`connect`] lends it, for statements that may run long (a search, a scan,
/// a large page): the instance's other requests go on while each of them runs.
pub async fn connect_for_long_reads() -> Result<PooledDb, DbError> {
    let db = connect().await?;
    db.long_reads.set(true);
    Ok(db)
}

/// Runs `work` inside `BEGIN IMMEDIATE` ... `COMMIT` on a connection of its own, rolling back
/// if it fails. IMMEDIATE takes the write lock up front, so a read-then-write transaction
/// cannot fail half way with SQLITE_BUSY when another writer got there first.
pub async fn transaction<T, E>(work: impl AsyncFnOnce(&Db) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    let db = connect().await?;
    db.in_transaction("BEGIN IMMEDIATE", work).await
}

/// Runs `work` inside one read transaction (`BEGIN` ... `COMMIT`), so every statement sees the
/// same snapshot of the database.
pub async fn read_transaction<T, E>(work: impl AsyncFnOnce(&Db) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    let db = connect().await?;
    db.in_transaction("BEGIN", work).await
}

impl Db {
    /// A new connection to the default database, its schema untouched.
    pub async fn open() -> Result<Self, DbError> {
        let connection = Connection::open_async("default".to_owned())
            .await
            .map_err(|error| DbError::new(OPENING, error))?;
        let mut db = Self {
            connection,
            broken: std::cell::Cell::new(false),
            poolable: false,
            long_reads: std::cell::Cell::new(false),
        };
        // Per-connection settings; see the module documentation. A libSQL server refuses them,
        // which is how its connections are told apart.
        db.poolable = db.run("PRAGMA synchronous = NORMAL", []).await.is_ok();
        let _ = db.run("PRAGMA temp_store = MEMORY", []).await;
        Ok(db)
    }

    pub async fn query(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Rows, DbError> {
        let outcome = self.run(sql, params).await;
        if let Err(error) = &outcome
            && !error.is_unique_violation()
            && !error.is_busy()
        {
            self.broken.set(true);
        }
        outcome
    }

    async fn run(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Rows, DbError> {
        let context = || statement_summary(sql);
        let params: Vec<Value> = params.into_iter().collect();
        let (columns, rows) = if self.takes_plain_call(sql) {
            let result = self
                .connection
                .execute(sql, &params)
                .map_err(|e| DbError::new(context(), e))?;
            (result.columns, result.rows)
        } else {
            let (columns, rows, outcome) = self
                .connection
                .execute_async(sql.to_owned(), params)
                .await
                .map_err(|e| DbError::new(context(), e))?;
            let rows = rows.collect().await;
            outcome.await.map_err(|e| DbError::new(context(), e))?;
            (columns, rows)
        };
        Ok(Rows {
            columns,
            rows: rows.into_iter().map(|row| row.values).collect(),
        })
    }

    /// Whether `sql` runs by the plain call, which holds the instance until it ends (see the
    /// module documentation).
    fn takes_plain_call(&self, sql: &str) -> bool {
        self.poolable && !self.long_reads.get() && is_select(sql)
    }

    /// Runs `sql` and returns its rows as `T`s, having SQLite pack them into one JSON array:
    /// Spin's streaming call hands rows over one by one (a host round trip each), so a page of
    /// fifty rows costs fifty round trips as rows and one as JSON. `fields` are the JSON keys
    /// with the SQL expressions (over `sql`'s result columns) that fill them, and `order`
    /// re-states the query's order.
    pub async fn query_json<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        fields: &[(&str, &str)],
        order: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<T>, DbError> {
        let packed = format!("{} FROM ({sql}) LIMIT 1", json_array_of(fields, order));
        let rows = self.query(&packed, params).await?;
        let unreadable = |message: String| DbError {
            context: statement_summary(sql),
            message,
        };
        let json: String = match rows.first() {
            None => return Ok(Vec::new()),
            Some(row) => row
                .get("packed")
                .map_err(|error| unreadable(format!("{error:#}")))?,
        };
        serde_json::from_str(&json)
            .map_err(|error| unreadable(format!("unreadable packed rows: {error}")))
    }

    /// Runs a statement for its effect. (To learn what it changed, add `RETURNING`, but only
    /// for a row or two: an autocommit write commits when its last returned row has been read,
    /// and Spin streams rows to the guest a few at a time, so a long RETURNING holds SQLite's
    /// write lock while the guest is busy elsewhere.)
    pub async fn execute(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<(), DbError> {
        self.query(sql, params).await.map(drop)
    }

    /// The single integer `sql` returns (0 when it returns no row or NULL).
    pub async fn query_integer(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<i64, DbError> {
        let rows = self.query(sql, params).await?;
        Ok(rows
            .rows
            .first()
            .and_then(|row| row.first())
            .and_then(|value| match value {
                Value::Integer(i) => Some(*i),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Runs `work` between `begin` and `COMMIT` on this connection, rolling back if it fails.
    /// A connection whose rollback failed is not lent again.
    pub async fn in_transaction<T, E>(
        &self,
        begin: &str,
        work: impl AsyncFnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.execute(begin, []).await?;
        let outcome = match work(self).await {
            Ok(value) => self
                .execute("COMMIT", [])
                .await
                .map(|()| value)
                .map_err(E::from),
            Err(error) => Err(error),
        };
        if outcome.is_err() && self.execute("ROLLBACK", []).await.is_err() {
            self.broken.set(true);
        }
        outcome
    }

    /// The schema version recorded in the database header.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        self.query_integer("PRAGMA user_version", []).await
    }
}

/// Whether `sql` is a plain `SELECT`, which never writes (a `WITH` may front a write).
fn is_select(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("SELECT"))
}

/// `SELECT json_group_array(json_object('key', expression, ...)) OVER (ORDER BY order ...)
/// AS packed`: the window form, because libSQL's server refuses ORDER BY inside an aggregate
/// while the window's order is as well defined. The caller adds `FROM (...) LIMIT 1`.
pub fn json_array_of(fields: &[(&str, &str)], order: &str) -> String {
    let object = fields
        .iter()
        .map(|(key, expression)| format!("'{key}', {expression}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT json_group_array(json_object({object})) OVER (ORDER BY {order} \
         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS packed"
    )
}

/// A row of [`Db::query_json`] kept as the JSON text SQLite wrote: a page that goes out as it
/// came in is passed through without building a value for each of its fields.
pub type RawRow = Box<serde_json::value::RawValue>;

/// The integer `id` of a raw row (its other fields are skipped, not built).
pub fn raw_row_id(row: &RawRow) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: i64,
    }
    serde_json::from_str::<Id>(row.get()).ok().map(|row| row.id)
}

/// A WHERE clause built condition by condition, with its parameters numbered as they are
/// bound (so one value can appear in a condition twice).
#[derive(Debug, Default)]
pub struct Conditions {
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    /// Binds `value` and returns its placeholder (`?3`).
    pub fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    /// Adds a condition, built from the placeholders [`Self::bind`] returned.
    pub fn push(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// Adds `sql_left <op> value`, binding `value` (`"status >="`, 400).
    pub fn compare(&mut self, column_and_operator: &str, value: Value) {
        let placeholder = self.bind(value);
        self.push(format!("{column_and_operator} {placeholder}"));
    }

    /// `WHERE a AND b ...`, or nothing when there are no conditions.
    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    pub fn into_params(self) -> Vec<Value> {
        self.params
    }
}

/// `n` comma-separated placeholders: `?, ?, ?`.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn statement_summary(sql: &str) -> String {
    let compact: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match compact.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &compact[..cut]),
        None => compact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_row_passes_through_unchanged_and_gives_its_id() {
        let rows: Vec<RawRow> =
            serde_json::from_str(r#"[{"id":7,"fields":{"a":[1,2]},"x":1.5},{"id":8}]"#).unwrap();
        assert_eq!(rows[0].get(), r#"{"id":7,"fields":{"a":[1,2]},"x":1.5}"#);
        assert_eq!(raw_row_id(&rows[0]), Some(7));
        assert_eq!(raw_row_id(&rows[1]), Some(8));
        let no_id: RawRow = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(raw_row_id(&no_id), None);
    }

    #[test]
    fn only_plain_selects_are_recognised_as_reads() {
        assert!(is_select("SELECT 1"));
        assert!(is_select("\n   select id FROM users"));
        assert!(!is_select("INSERT INTO t SELECT 1"));
        assert!(!is_select("WITH x AS (SELECT 1) DELETE FROM t"));
        assert!(!is_select("PRAGMA user_version"));
        assert!(!is_select("SEL"));
        assert!(!is_select("ßELECT 1"));
    }

    fn failure(message: &str) -> DbError {
        DbError {
            context: "SELECT 1".into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_libsql_server_out_of_connections_is_busy_not_broken() {
        let out_of_connections = failure(
            "Hrana: `api error: `{\"error\":\"Timed out while opening database connection\"}``",
        );
        assert!(out_of_connections.is_busy());
        assert!(
            failure("Hrana: `api error: `{\"error\":\"Too many concurrent requests\"}``").is_busy()
        );
        assert!(failure("database is locked").is_busy());
        assert!(!failure("no such table: users").is_busy());
    }

    #[test]
    fn long_statements_are_summarised_for_error_context() {
        let summary = statement_summary(&format!("SELECT {}", "x, ".repeat(50)));
        assert!(summary.ends_with("...") && summary.len() < 70);
        assert_eq!(statement_summary("SELECT\n  1"), "SELECT 1");
    }

    #[test]
    fn rows_are_packed_as_ordered_json_objects() {
        let packed = json_array_of(&[("id", "id"), ("n", "count")], "id DESC");
        assert!(packed.starts_with(
            "SELECT json_group_array(json_object('id', id, 'n', count)) OVER (ORDER BY id DESC"
        ));
        assert!(packed.ends_with("AS packed"));
        assert_eq!(placeholders(3), "?, ?, ?");
    }

    #[test]
    fn conditions_number_their_parameters() {
        let mut conditions = Conditions::default();
        assert_eq!(conditions.where_clause(), "");
        conditions.compare("a =", Value::Integer(1));
        let b = conditions.bind(Value::Integer(2));
        conditions.push(format!("(b > {b} OR c = {b})"));
        assert_eq!(
            conditions.where_clause(),
            "WHERE a = ?1 AND (b > ?2 OR c = ?2)"
        );
        assert_eq!(conditions.into_params().len(), 2);
    }
}
