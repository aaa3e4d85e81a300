//! Login throttling per username and per client address, in fixed windows.
//!
//! Each attempt is reserved before the password is checked, with one atomic upsert that
//! returns the new counts, so N concurrent guesses count as N: a parallel attack gets exactly
//! the allowed number of tries. A successful login gives its reservation back (the username's
//! counter is cleared, the client's is decremented), so only failures accumulate.

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

/// Reserves one attempt for `username_key` and `client`; refuses it when either has used up
/// its failures in the current window.
pub async fn reserve_attempt(
    db: &Db,
    config: &ThrottleConfig,
    username_key: &str,
    client: Option<&str>,
) -> Result<Result<(), Throttled>, ApiError> {
    let now = crate::time::unix_millis();
    let window = config.window_seconds * 1000;
    let expired_before = now - window;
    let mut rows = vec![("user", username_key.to_owned())];
    if let Some(client) = client {
        rows.push(("client", client.to_owned()));
    }
    let values = vec!["(?, ?, 1, ?)"; rows.len()].join(", ");
    let mut params = Vec::new();
    for (scope, subject) in &rows {
        params.extend([
            Param::Text((*scope).to_owned()),
            Param::Text(subject.clone()),
            Param::Integer(now),
        ]);
    }
    params.push(Param::Integer(expired_before));
    let n = params.len();
    // In DO UPDATE every right-hand side sees the row as it was, so both columns test the
    // same old window_start.
    let sql = format!(
        "INSERT INTO login_throttle (scope, subject, attempts, window_start) VALUES {values}
         ON CONFLICT (scope, subject) DO UPDATE SET
             attempts = CASE WHEN window_start <= ?{n} THEN 1 ELSE attempts + 1 END,
             window_start = CASE WHEN window_start <= ?{n} THEN excluded.window_start ELSE window_start END
         RETURNING scope, attempts, window_start"
    );
    let counts = db.query(&sql, params).await?;
    for row in counts.iter() {
        let scope: String = row.get("scope")?;
        let attempts: i64 = row.get("attempts")?;
        let window_start: i64 = row.get("window_start")?;
        let limit = match scope.as_str() {
            "user" => config.max_failures_per_user,
            _ => config.max_failures_per_client,
        };
        if attempts > limit {
            let remaining_ms = (window_start + window - now).max(1_000);
            return Ok(Err(Throttled {
                scope,
                retry_after_secs: (remaining_ms as u64).div_ceil(1000),
            }));
        }
    }
    Ok(Ok(()))
}

/// A successful login: forget the username's failures, give the client its attempt back, and
/// drop counters whose window has passed.
pub async fn release_after_success(
    db: &Db,
    config: &ThrottleConfig,
    username_key: &str,
    client: Option<&str>,
) -> Result<(), ApiError> {
    db.execute(
        "DELETE FROM login_throttle WHERE scope = 'user' AND subject = ?",
        [Param::Text(username_key.to_owned())],
    )
    .await?;
    if let Some(client) = client {
        db.execute(
            "UPDATE login_throttle SET attempts = max(attempts - 1, 0)
             WHERE scope = 'client' AND subject = ?",
            [Param::Text(client.to_owned())],
        )
        .await?;
    }
    let expired_before = crate::time::unix_millis() - config.window_seconds * 1000;
    db.execute(
        "DELETE FROM login_throttle WHERE window_start <= ?",
        [Param::Integer(expired_before)],
    )
    .await?;
    Ok(())
}
