//! Keys the app makes for itself when the operator sets none (the token signing key, the log
//! chain's key). The key itself never touches SQLite: a candidate is written to a key-value
//! store granted only to the components that need it, and SQLite only elects which candidate
//! is the key (by id, `INSERT OR IGNORE`), so instances that start at the same moment agree.

use crate::platform::db::{Db, Param};
use crate::platform::kv::{Kv, KvStore};
use crate::web::ApiError;

/// A key candidate: its public id and its secret bytes.
pub struct Candidate {
    pub id: String,
    pub secret: Vec<u8>,
}

/// The elected key `name` (its id and secret), electing `make()`'s candidate when there is
/// none yet, or when the elected one's secret is gone from `store` (a wiped store).
pub async fn elected_key(
    db: &Db,
    store: KvStore,
    name: &str,
    make: impl Fn() -> Result<Candidate, ApiError>,
) -> Result<(String, Vec<u8>), ApiError> {
    let kv = Kv::shared(store).await?;
    let slot = |id: &str| format!("{name}:{id}");
    let elected = elected_id(db, name).await?;
    if let Some(id) = &elected
        && let Some(secret) = kv.get_raw(&slot(id)).await?
    {
        return Ok((id.clone(), secret));
    }
    let candidate = make()?;
    // The secret is stored before its id can win, so whoever reads the winner finds it.
    kv.set_raw(&slot(&candidate.id), &candidate.secret).await?;
    match &elected {
        None => {
            db.execute(
                "INSERT OR IGNORE INTO key_elections (name, key_id, elected_at) VALUES (?, ?, ?)",
                [
                    Param::Text(name.to_owned()),
                    Param::Text(candidate.id.clone()),
                    Param::Text(crate::platform::time::now_rfc3339()),
                ],
            )
            .await?
        }
        Some(lost) => {
            db.execute(
                "UPDATE key_elections SET key_id = ?, elected_at = ? WHERE name = ? AND key_id = ?",
                [
                    Param::Text(candidate.id.clone()),
                    Param::Text(crate::platform::time::now_rfc3339()),
                    Param::Text(name.to_owned()),
                    Param::Text(lost.clone()),
                ],
            )
            .await?
        }
    }
    let winner = elected_id(db, name)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no {name} key was elected")))?;
    if winner == candidate.id {
        return Ok((winner, candidate.secret));
    }
    let secret = kv.get_raw(&slot(&winner)).await?.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "the elected {name} key is not in its store"
        ))
    })?;
    Ok((winner, secret))
}

async fn elected_id(db: &Db, name: &str) -> Result<Option<String>, ApiError> {
    let rows = db
        .query(
            "SELECT key_id FROM key_elections WHERE name = ?",
            [Param::Text(name.to_owned())],
        )
        .await?;
    Ok(rows.first().map(|row| row.get("key_id")).transpose()?)
}
