//! Access to Spin's SQLite database: opening it (with the schema brought up to date first),
//! typed rows, transactions, and the embedded migrations from `migrations/`.
//!
//! Connections: under Spin every `open` is a new SQLite connection, and opening one (file,
//! locks, schema parse) costs more than most queries. So each instance keeps one connection,
//! [`Db::shared`], for single statements: reads see the latest commit at the moment they start,
//! and autocommit writes commit at once, so nothing is cached but the handle. A transaction
//! runs on a connection of its own ([`Db::transaction`]), so concurrent requests in the
//! instance can never find their statements inside someone else's transaction. Because other
//! requests interleave on the shared connection, callers use `RETURNING` (for a row or two)
//! rather than the connection's `changes()` / `last_insert_rowid()`.
//!
//! Durability choice: the database runs in WAL mode with `synchronous = NORMAL`. A commit is
//! then a write into the WAL file without an fsync; the file is synced at checkpoints. That
//! survives any crash of the server process (SIGKILL included: the data is in the operating
//! system's cache), never corrupts the database, and only on an operating-system crash or power
//! loss can the last commits before the latest checkpoint be lost. Rollback-journal mode with
//! full sync costs two to three fsyncs per commit and limits writers to a few hundred per second.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use spin_sdk::sqlite::{Connection, Value};

use crate::error::ApiError;

/// A migration embedded from `migrations/NNNN_name.sql` by the build script.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The schema version this build expects (the highest migration number).
pub fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Set once this instance has seen the schema at the latest version. The schema version only
/// ever grows, so the flag can never become wrong; it saves the per-request check.
static SCHEMA_CURRENT: AtomicBool = AtomicBool::new(false);

/// An SQLite failure, with what was being done.
#[derive(Debug)]
pub struct DbError {
    pub context: String,
    pub cause: spin_sdk::sqlite::Error,
}

impl DbError {
    fn new(context: impl Into<String>, cause: spin_sdk::sqlite::Error) -> Self {
        Self {
            context: context.into(),
            cause,
        }
    }

    fn message(&self) -> String {
        match &self.cause {
            spin_sdk::sqlite::Error::Io(message) => message.clone(),
            other => format!("{other:?}"),
        }
    }

    /// A UNIQUE or PRIMARY KEY constraint rejected the write.
    pub fn is_unique_violation(&self) -> bool {
        self.message().contains("UNIQUE constraint failed")
    }

    /// Another connection held the write lock longer than the busy timeout.
    pub fn is_busy(&self) -> bool {
        let message = self.message();
        message.contains("database is locked") || message.contains("database is busy")
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.context, self.message())
    }
}

impl std::error::Error for DbError {}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        if error.is_busy() {
            ApiError::unavailable("the database is busy; try again", error)
        } else {
            ApiError::Internal(error.into())
        }
    }
}

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

impl Row<'_> {
    pub fn get<T: FromValue>(&self, column: &str) -> anyhow::Result<T> {
        let index = self
            .columns
            .iter()
            .position(|c| c == column)
            .with_context(|| format!("no column {column:?} in the result"))?;
        T::from_value(&self.values[index]).with_context(|| format!("column {column:?}"))
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

/// Statement parameters, built with `params![...]`-like `vec![...]` of these.
pub use spin_sdk::sqlite::Value as Param;

/// An open connection to the app's database.
pub struct Db {
    connection: Connection,
}

thread_local! {
    /// This instance's connection for single statements.
    static SHARED: RefCell<Option<Rc<Db>>> = const { RefCell::new(None) };
    /// This instance's connection for background writes (the log), kept apart so that a write
    /// waiting for SQLite's write lock never holds up the requests' reads.
    static BACKGROUND: RefCell<Option<Rc<Db>>> = const { RefCell::new(None) };
}

impl Db {
    /// This instance's connection for single statements (opened and migrated on first use).
    /// Never run BEGIN on it: use [`Db::transaction`].
    pub async fn shared() -> Result<Rc<Self>, ApiError> {
        if let Some(db) = SHARED.with(|shared| shared.borrow().clone()) {
            return Ok(db);
        }
        let db = Rc::new(Self::open().await?);
        SHARED.with(|shared| *shared.borrow_mut() = Some(db.clone()));
        Ok(db)
    }

    /// This instance's connection for writes made after responses (the log).
    pub async fn background() -> Result<Rc<Self>, ApiError> {
        if let Some(db) = BACKGROUND.with(|background| background.borrow().clone()) {
            return Ok(db);
        }
        let db = Rc::new(Self::open().await?);
        BACKGROUND.with(|background| *background.borrow_mut() = Some(db.clone()));
        Ok(db)
    }

    /// A new connection to the default database, pending migrations applied first.
    pub async fn open() -> Result<Self, ApiError> {
        let db = Self::open_unmigrated().await?;
        ensure_schema(&db).await?;
        Ok(db)
    }

    /// Opens the default database without touching its schema (health checks).
    pub async fn open_unmigrated() -> Result<Self, ApiError> {
        let connection = Connection::open_default().await.map_err(|error| {
            ApiError::unavailable(
                "the database is unavailable; try again",
                format!("the database cannot be opened: {error:?}"),
            )
        })?;
        let db = Self { connection };
        // Per-connection setting; see the module documentation. A backend that refuses it
        // (a remote libSQL database) keeps its own durability, which is fine.
        let _ = db.query("PRAGMA synchronous = NORMAL", []).await;
        Ok(db)
    }

    pub async fn query(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Rows, DbError> {
        let context = || statement_summary(sql);
        let result = self
            .connection
            .execute(sql, params)
            .await
            .map_err(|e| DbError::new(context(), e))?;
        let columns = result.columns().to_vec();
        let rows = result
            .collect()
            .await
            .map_err(|e| DbError::new(context(), e))?;
        Ok(Rows {
            columns,
            rows: rows.into_iter().map(|row| row.values).collect(),
        })
    }

    /// Runs `sql` and returns its rows as `T`s, having SQLite pack them into one JSON array:
    /// Spin streams query results row by row (a host round trip each), so a page of fifty rows
    /// costs fifty round trips as rows and one as JSON. `fields` are the JSON keys with the SQL
    /// expressions (over `sql`'s result columns) that fill them, and `order` re-states the
    /// query's order.
    pub async fn query_json<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        fields: &[(&str, &str)],
        order: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<T>, DbError> {
        let packed = format!(
            "SELECT {} AS rows FROM ({sql})",
            json_array_of(fields, order)
        );
        let rows = self.query(&packed, params).await?;
        let json: String = rows
            .first()
            .and_then(|row| row.get("rows").ok())
            .unwrap_or_else(|| "[]".to_owned());
        serde_json::from_str(&json).map_err(|error| DbError {
            context: statement_summary(sql),
            cause: spin_sdk::sqlite::Error::Io(format!("unreadable packed rows: {error}")),
        })
    }

    /// The rowid of this connection's latest INSERT. Only meaningful on a connection that no
    /// other task uses meanwhile (a transaction's, or the background writer's).
    pub async fn last_insert_rowid(&self) -> i64 {
        self.connection.last_insert_rowid().await
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

    /// Runs `work` inside `BEGIN IMMEDIATE` ... `COMMIT` on a connection of its own, rolling
    /// back if it fails. IMMEDIATE takes the write lock up front, so a read-then-write
    /// transaction cannot fail half way with SQLITE_BUSY when another writer got there first.
    pub async fn transaction<T, E>(work: impl AsyncFnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError> + From<ApiError>,
    {
        let db = Self::open().await?;
        db.in_transaction(work).await
    }

    /// Runs `work` inside `BEGIN IMMEDIATE` ... `COMMIT` on this connection, which no other
    /// task may use meanwhile (see [`Db::transaction`] for one that is always safe).
    pub async fn in_transaction<T, E>(
        &self,
        work: impl AsyncFnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.execute("BEGIN IMMEDIATE", []).await?;
        match work(self).await {
            Ok(value) => {
                if let Err(error) = self.execute("COMMIT", []).await {
                    let _ = self.execute("ROLLBACK", []).await;
                    return Err(error.into());
                }
                Ok(value)
            }
            Err(error) => {
                let _ = self.execute("ROLLBACK", []).await;
                Err(error)
            }
        }
    }

    /// The schema version recorded in the database file header.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        let rows = self.query("PRAGMA user_version", []).await?;
        let version = rows
            .first()
            .and_then(|row| row.get::<i64>("user_version").ok())
            .unwrap_or(0);
        Ok(version)
    }
}

/// `json_group_array(json_object('key', expression, ...) ORDER BY order)`.
pub fn json_array_of(fields: &[(&str, &str)], order: &str) -> String {
    let object = fields
        .iter()
        .map(|(key, expression)| format!("'{key}', {expression}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("json_group_array(json_object({object}) ORDER BY {order})")
}

fn statement_summary(sql: &str) -> String {
    let compact: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match compact.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &compact[..cut]),
        None => compact,
    }
}

/// Brings the schema to the latest version unless this instance already saw it there.
/// The check is one read of the database header (`PRAGMA user_version`).
async fn ensure_schema(db: &Db) -> Result<(), ApiError> {
    if SCHEMA_CURRENT.load(Ordering::Relaxed) {
        return Ok(());
    }
    let version = db.schema_version().await?;
    if version < latest_schema_version() {
        migrate(db).await?;
    }
    SCHEMA_CURRENT.store(true, Ordering::Relaxed);
    Ok(())
}

/// Applies the pending migrations in order, exactly once, even when several instances start at
/// the same moment: `BEGIN IMMEDIATE` serialises them and each re-reads the version under the
/// lock, so the second one finds nothing left to do.
async fn migrate(db: &Db) -> Result<(), ApiError> {
    // The journal mode belongs to the file and cannot change inside a transaction.
    let _ = db.query("PRAGMA journal_mode = WAL", []).await;

    db.in_transaction(async |db: &Db| -> Result<(), ApiError> {
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                checksum   TEXT NOT NULL,
                applied_at TEXT NOT NULL
            )",
            [],
        )
        .await?;
        let current = db.schema_version().await?;
        for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
            for statement in crate::sql::split_statements(migration.sql) {
                db.execute(statement, []).await.map_err(|error| {
                    ApiError::internal(anyhow::anyhow!(
                        "migration {:04}_{} failed: {error}",
                        migration.version,
                        migration.name
                    ))
                })?;
            }
            db.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                [
                    Value::Integer(migration.version),
                    Value::Text(migration.name.to_owned()),
                    Value::Text(crate::hex_sha256(migration.sql.as_bytes())),
                    Value::Text(crate::time::now_rfc3339()),
                ],
            )
            .await?;
            // PRAGMA takes no parameters; the version is an integer from the build script.
            db.execute(&format!("PRAGMA user_version = {}", migration.version), [])
                .await?;
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1, "{}", migration.name);
        }
        assert_eq!(latest_schema_version(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn every_migration_splits_into_statements() {
        for migration in MIGRATIONS {
            assert!(
                !crate::sql::split_statements(migration.sql).is_empty(),
                "{} is empty",
                migration.name
            );
        }
    }

    #[test]
    fn long_statements_are_summarised_for_error_context() {
        let summary = statement_summary(&format!("SELECT {}", "x, ".repeat(50)));
        assert!(summary.ends_with("...") && summary.len() < 70);
        assert_eq!(statement_summary("SELECT\n  1"), "SELECT 1");
    }
}
