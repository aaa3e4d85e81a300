//! Sessions: the server-side record of a login, stored under `session:<jti>` in the `sessions`
//! key-value store. A token is accepted only while its session exists, so logout, "log out
//! everywhere", account deletion and role changes take effect on the very next request. SQLite
//! keeps an index of them (`sessions`) to find a user's sessions and sweep expired ones, since
//! the key-value store can neither search nor expire.

use serde::{Deserialize, Serialize};

use crate::domain::accounts::{PublicUser, Role};
use crate::platform::db::{Db, Param, placeholders};
use crate::platform::kv::{Kv, KvStore};
use crate::web::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// When the account was created (so authenticate needs no database read).
    pub user_created_at: String,
    pub created_at: String,
    pub expires_at: i64,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

pub fn session_key(jti: &str) -> String {
    format!("session:{jti}")
}

pub async fn find(jti: &str) -> Result<Option<Session>, ApiError> {
    let kv = Kv::shared(KvStore::Sessions).await?;
    Ok(kv.get(&session_key(jti)).await?)
}

/// Stores a new session for `user` with `role` under `jti`, and indexes it only if the account
/// is still active with that role: a deletion or role change racing with this login wins.
/// Returns `false` (and stores nothing) when it lost.
pub async fn open(db: &Db, jti: &str, session: &Session) -> Result<bool, ApiError> {
    let kv = Kv::shared(KvStore::Sessions).await?;
    kv.set(&session_key(jti), session, Some(session.expires_at))
        .await?;
    let indexed = db
        .query(
            "INSERT INTO sessions (jti, user_id, expires_at, created_at)
             SELECT ?, id, ?, ? FROM users WHERE id = ? AND role = ? AND deleted_at IS NULL
             RETURNING jti",
            [
                Param::Text(jti.to_owned()),
                Param::Integer(session.expires_at),
                Param::Text(session.created_at.clone()),
                Param::Text(session.user_id.clone()),
                Param::Text(session.role.as_str().to_owned()),
            ],
        )
        .await?;
    if indexed.is_empty() {
        kv.delete(&session_key(jti)).await?;
        return Ok(false);
    }
    Ok(true)
}

/// A new session record for `user` with `role`, lasting `ttl_seconds` from now.
pub fn new_session(
    user: &PublicUser,
    role: Role,
    ttl_seconds: i64,
    client_address: Option<String>,
    user_agent: Option<String>,
) -> Session {
    Session {
        user_id: user.id.clone(),
        username: user.username.clone(),
        role,
        user_created_at: user.created_at.clone(),
        created_at: crate::platform::time::now_rfc3339(),
        expires_at: crate::platform::time::unix_seconds() + ttl_seconds,
        client_address,
        user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
    }
}

/// Ends sessions: removes them from the key-value store (their tokens die at once) and from
/// the index.
pub async fn end(db: &Db, jtis: &[String]) -> Result<(), ApiError> {
    if jtis.is_empty() {
        return Ok(());
    }
    let kv = Kv::shared(KvStore::Sessions).await?;
    for jti in jtis {
        kv.delete(&session_key(jti)).await?;
    }
    db.execute(
        &format!(
            "DELETE FROM sessions WHERE jti IN ({})",
            placeholders(jtis.len())
        ),
        jtis.iter().map(|jti| Param::Text(jti.clone())),
    )
    .await?;
    Ok(())
}

/// Ends the sessions whose ids `select` (a query returning `jti`) finds; returns how many.
async fn end_selected(db: &Db, select: &str, params: Vec<Param>) -> Result<usize, ApiError> {
    let rows = db.query(select, params).await?;
    let jtis = rows
        .iter()
        .map(|row| row.get::<String>("jti"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    end(db, &jtis).await?;
    Ok(jtis.len())
}

/// Ends every session of a user (role change, account deletion, "log out everywhere").
pub async fn end_all_of_user(db: &Db, user_id: &str) -> Result<usize, ApiError> {
    end_selected(
        db,
        "SELECT jti FROM sessions WHERE user_id = ?",
        vec![Param::Text(user_id.to_owned())],
    )
    .await
}

/// Ends up to `limit` sessions whose expiry has passed (their records would otherwise stay in
/// the key-value store forever: it has no expiry of its own).
pub async fn sweep_expired(db: &Db, limit: i64) -> Result<usize, ApiError> {
    end_selected(
        db,
        "SELECT jti FROM sessions WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
        vec![
            Param::Integer(crate::platform::time::unix_seconds()),
            Param::Integer(limit),
        ],
    )
    .await
}

/// Whether the sessions store answers (for health checks).
pub async fn probe() -> Result<(), crate::platform::kv::KvError> {
    Kv::shared(KvStore::Sessions)
        .await?
        .exists("health:probe")
        .await
        .map(drop)
}
