//! The schema: numbered migrations from `migrations/`, embedded at build time and applied by
//! whichever request first touches the database of a new schema version.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::platform::db::{Db, DbError, Param};

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
/// ever grows, so the flag can never become wrong; it saves the per-connection check.
static SCHEMA_CURRENT: AtomicBool = AtomicBool::new(false);

/// Brings the schema to the latest version unless this instance already saw it there.
/// The check is one read of the database header (`PRAGMA user_version`).
pub async fn ensure_schema(db: &Db) -> Result<(), DbError> {
    if SCHEMA_CURRENT.load(Ordering::Relaxed) {
        return Ok(());
    }
    if db.schema_version().await? < latest_schema_version() {
        migrate(db).await?;
    }
    SCHEMA_CURRENT.store(true, Ordering::Relaxed);
    Ok(())
}

/// Applies the pending migrations in order, exactly once, even when several instances (or
/// several Spin processes) start at the same moment: `BEGIN IMMEDIATE` serialises them and each
/// re-reads the version under the lock, so the second one finds nothing left to do.
async fn migrate(db: &Db) -> Result<(), DbError> {
    // The journal mode belongs to the file and cannot change inside a transaction. A backend
    // that refuses it (libSQL) keeps its own journal.
    let _ = db.query("PRAGMA journal_mode = WAL", []).await;
    db.in_transaction("BEGIN IMMEDIATE", async |db: &Db| -> Result<(), DbError> {
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
            apply(db, migration).await?;
        }
        Ok(())
    })
    .await
}

async fn apply(db: &Db, migration: &Migration) -> Result<(), DbError> {
    for statement in crate::platform::sql::split_statements(migration.sql) {
        db.execute(statement, []).await.map_err(|error| DbError {
            context: format!("migration {:04}_{}", migration.version, migration.name),
            message: error.to_string(),
        })?;
    }
    db.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        [
            Param::Integer(migration.version),
            Param::Text(migration.name.to_owned()),
            Param::Text(crate::platform::crypto::hex_sha256(
                migration.sql.as_bytes(),
            )),
            Param::Text(crate::platform::time::now_rfc3339()),
        ],
    )
    .await?;
    // PRAGMA takes no parameters; the version is an integer from the build script.
    db.execute(&format!("PRAGMA user_version = {}", migration.version), [])
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
                !crate::platform::sql::split_statements(migration.sql).is_empty(),
                "{} is empty",
                migration.name
            );
        }
    }
}
