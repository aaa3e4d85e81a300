//! Fixed-window throttles for what unauthenticated callers can make expensive (a login or a
//! registration costs an argon2id hash, ~30 ms of a core). Counters live in SQLite, not in
//! key-value: one atomic upsert ... RETURNING counts concurrent attempts exactly, where a
//! key-value get-then-set would lose increments under a parallel attack.
//!
//! Rows are small (a scope, a subject of bounded length, two numbers) and carry their own
//! expiry, so [`sweep`] can remove the expired ones a few at a time.

use crate::platform::db::{Db, Param};
use crate::web::ApiError;

/// Subjects longer than this are cut: a caller chooses them (a username typed at login).
const MAX_SUBJECT_CHARS: usize = 160;

/// How many attempts `scope` allows per subject per window.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub scope: &'static str,
    pub max: i64,
    pub window_seconds: i64,
}

/// Why an attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub scope: &'static str,
    pub retry_after_secs: u64,
}

impl Throttled {
    pub fn into_error(self, detail: &str) -> ApiError {
        ApiError::TooManyRequests {
            retry_after_secs: self.retry_after_secs,
            detail: detail.to_owned(),
        }
    }
}

/// The upsert that counts an attempt, restarting the window when it has passed, and returns
/// the count. In DO UPDATE every right-hand side sees the row as it was.
const BUMP: &str = "INSERT INTO throttle (scope, subject, attempts, expires_at)
     VALUES (?1, ?2, 1, ?3 + ?4)
     ON CONFLICT (scope, subject) DO UPDATE SET
         attempts = CASE WHEN expires_at <= ?3 THEN 1 ELSE attempts + 1 END,
         expires_at = CASE WHEN expires_at <= ?3 THEN excluded.expires_at ELSE expires_at END
     RETURNING attempts, expires_at";

fn bounded(subject: &str) -> String {
    subject.chars().take(MAX_SUBJECT_CHARS).collect()
}

fn throttled(limit: &Limit, expires_at: i64, now: i64) -> Throttled {
    let remaining_ms = (expires_at - now).max(1_000);
    Throttled {
        scope: limit.scope,
        retry_after_secs: (remaining_ms as u64).div_ceil(1000),
    }
}

/// Counts one attempt of `subject`; refused when it goes past the limit.
pub async fn take(
    db: &Db,
    limit: &Limit,
    subject: &str,
) -> Result<Result<(), Throttled>, ApiError> {
    let now = crate::platform::time::unix_millis();
    let rows = db
        .query(
            BUMP,
            [
                Param::Text(limit.scope.to_owned()),
                Param::Text(bounded(subject)),
                Param::Integer(now),
                Param::Integer(limit.window_seconds * 1000),
            ],
        )
        .await?;
    let row = rows.first().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("the throttle upsert returned nothing"))
    })?;
    if row.get::<i64>("attempts")? > limit.max {
        return Ok(Err(throttled(limit, row.get("expires_at")?, now)));
    }
    Ok(Ok(()))
}

/// Whether `subject` has used up its attempts, without counting one.
pub async fn check(
    db: &Db,
    limit: &Limit,
    subject: &str,
) -> Result<Result<(), Throttled>, ApiError> {
    let now = crate::platform::time::unix_millis();
    let rows = db
        .query(
            "SELECT attempts, expires_at FROM throttle
             WHERE scope = ? AND subject = ? AND expires_at > ?",
            [
                Param::Text(limit.scope.to_owned()),
                Param::Text(bounded(subject)),
                Param::Integer(now),
            ],
        )
        .await?;
    if let Some(row) = rows.first()
        && row.get::<i64>("attempts")? >= limit.max
    {
        return Ok(Err(throttled(limit, row.get("expires_at")?, now)));
    }
    Ok(Ok(()))
}

/// Forgets `subject`'s attempts (a successful login).
pub async fn clear(db: &Db, scope: &str, subject: &str) -> Result<(), ApiError> {
    db.execute(
        "DELETE FROM throttle WHERE scope = ? AND subject = ?",
        [Param::Text(scope.to_owned()), Param::Text(bounded(subject))],
    )
    .await?;
    Ok(())
}

/// Removes up to `max_rows` counters whose window has passed.
pub async fn sweep(db: &Db, max_rows: i64) -> Result<(), ApiError> {
    db.execute(
        "DELETE FROM throttle WHERE rowid IN
             (SELECT rowid FROM throttle WHERE expires_at <= ? LIMIT ?)",
        [
            Param::Integer(crate::platform::time::unix_millis()),
            Param::Integer(max_rows),
        ],
    )
    .await?;
    Ok(())
}
