//! Login throttling per username and per client address, in fixed windows.
//!
//! Per username, each attempt is reserved before the password is checked, with one atomic
//! upsert that returns the new count, so N concurrent guesses against one account count as N:
//! a parallel attack gets exactly the allowed number of tries. A successful login clears the
//! username's counter.
//!
//! Per client address only failures are counted (after they happen), so many people signing
//! in at once from one address (an office behind NAT) are not throttled by their successes; a
//! burst from one client can pass the client limit by at most the attempts it has in flight.

use crate::db::{Db, Param};
use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    pub max_failures_per_user: i64,
    pub max_failures_per_client: i64,
    pub window_seconds: i64,
}

impl ThrottleConfig {
    pub async fn load() -> Result<Self, ApiError> {
        Ok(Self {
            max_failures_per_user: crate::config::parse(
                "login_max_failures_per_user",
                |n: &i64| *n > 0,
            )
            .await?,
            max_failures_per_client: crate::config::parse(
                "login_max_failures_per_client",
                |n: &i64| *n > 0,
            )
            .await?,
            window_seconds: crate::config::parse("login_throttle_window_seconds", |n: &i64| *n > 0)
                .await?,
        })
    }
}

/// Why an attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub scope: String,
    pub retry_after_secs: u64,
}

/// The upsert that bumps a counter, restarting it when its window has passed, and returns it.
/// In DO UPDATE every right-hand side sees the row as it was, so both columns test the same
/// old window_start.
const BUMP: &str = "INSERT INTO login_throttle (scope, subject, attempts, window_start)
     VALUES (?1, ?2, 1, ?3)
     ON CONFLICT (scope, subject) DO UPDATE SET
         attempts = CASE WHEN window_start <= ?4 THEN 1 ELSE attempts + 1 END,
         window_start = CASE WHEN window_start <= ?4 THEN excluded.window_start ELSE window_start END
     RETURNING attempts, window_start";

fn throttled(scope: &str, window_start: i64, window_ms: i64, now: i64) -> Throttled {
    let remaining_ms = (window_start + window_ms - now).max(1_000);
    Throttled {
        scope: scope.to_owned(),
        retry_after_secs: (remaining_ms as u64).div_ceil(1000),
    }
}

/// Reserves one attempt for `username_key` and checks `client`'s failures; refuses the attempt
/// when either has used up its allowance in the current window.
pub async fn reserve_attempt(
    db: &Db,
    config: &ThrottleConfig,
    username_key: &str,
    client: Option<&str>,
) -> Result<Result<(), Throttled>, ApiError> {
    let now = crate::time::unix_millis();
    let window = config.window_seconds * 1000;
    if let Some(client) = client {
        let rows = db
            .query(
                "SELECT attempts, window_start FROM login_throttle
                 WHERE scope = 'client' AND subject = ? AND window_start > ?",
                [Param::Text(client.to_owned()), Param::Integer(now - window)],
            )
            .await?;
        if let Some(row) = rows.first()
            && row.get::<i64>("attempts")? >= config.max_failures_per_client
        {
            return Ok(Err(throttled(
                "client",
                row.get("window_start")?,
                window,
                now,
            )));
        }
    }
    let rows = db
        .query(
            BUMP,
            [
                Param::Text("user".into()),
                Param::Text(username_key.to_owned()),
                Param::Integer(now),
                Param::Integer(now - window),
            ],
        )
        .await?;
    let row = rows.first().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("the throttle upsert returned nothing"))
    })?;
    if row.get::<i64>("attempts")? > config.max_failures_per_user {
        return Ok(Err(throttled(
            "user",
            row.get("window_start")?,
            window,
            now,
        )));
    }
    Ok(Ok(()))
}

/// A failed attempt: counts against the client (the username's was counted when reserved).
pub async fn record_failure(
    db: &Db,
    config: &ThrottleConfig,
    client: Option<&str>,
) -> Result<(), ApiError> {
    let Some(client) = client else {
        return Ok(());
    };
    let now = crate::time::unix_millis();
    db.execute(
        BUMP,
        [
            Param::Text("client".into()),
            Param::Text(client.to_owned()),
            Param::Integer(now),
            Param::Integer(now - config.window_seconds * 1000),
        ],
    )
    .await
    .map_err(Into::into)
}

/// A successful login: forget the username's failures, and drop counters whose window has
/// passed.
pub async fn release_after_success(
    db: &Db,
    config: &ThrottleConfig,
    username_key: &str,
) -> Result<(), ApiError> {
    db.execute(
        "DELETE FROM login_throttle WHERE scope = 'user' AND subject = ?",
        [Param::Text(username_key.to_owned())],
    )
    .await?;
    let expired_before = crate::time::unix_millis() - config.window_seconds * 1000;
    db.execute(
        "DELETE FROM login_throttle WHERE window_start <= ?",
        [Param::Integer(expired_before)],
    )
    .await?;
    Ok(())
}
