//! Following the catalog: the listing rows (`similarity_listings`) are brought up to date with
//! the catalog's outbox (`catalog_events`) in batches. Each batch embeds what changed (once per
//! item version, and not at all when the property fields did not change) before taking the
//! write lock, then, in one transaction, checks that no one did the batch meanwhile, stores it
//! and records how far it got, so concurrent followers never apply an event twice.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::ApiError;
use shared::platform::crypto::hex_sha256;
use shared::platform::db::{Db, Param, placeholders};

use crate::model;

/// Catalog events applied per transaction.
const BATCH: i64 = 500;

pub fn encode_embedding(embedding: &[f32]) -> String {
    let bytes: Vec<u8> = embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

pub fn decode_embedding(text: &str, width: usize) -> anyhow::Result<Vec<f32>> {
    let bytes = STANDARD.decode(text)?;
    anyhow::ensure!(
        bytes.len() == width * 4,
        "an embedding has {} bytes",
        bytes.len()
    );
    Ok(bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect())
}

#[derive(Deserialize)]
struct EventRow {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
    item_id: String,
    item_version: i64,
    data: Value,
}

/// What an event means for the index.
enum Change {
    Upsert {
        version: i64,
        category: String,
        price_amount: i64,
        price_currency: String,
        row: Vec<f32>,
        hash: String,
    },
    Remove {
        version: i64,
    },
}

fn change_of(metadata: &model::Metadata, event: &EventRow) -> Option<Change> {
    match event.kind.as_str() {
        "item.created" | "item.updated" => {
            let item = event.data.get("item")?;
            let attributes: Map<String, Value> = item.get("attributes")?.as_object()?.clone();
            let Ok(row) = metadata.encode(&metadata.property_of(&attributes)) else {
                return Some(Change::Remove {
                    version: event.item_version,
                });
            };
            let hash = hex_sha256(
                &row.iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
            Some(Change::Upsert {
                version: event.item_version,
                category: item.get("category")?.as_str()?.to_owned(),
                price_amount: item.get("price")?.get("amount")?.as_i64()?,
                price_currency: item.get("price")?.get("currency")?.as_str()?.to_owned(),
                row,
                hash,
            })
        }
        "item.deleted" => Some(Change::Remove {
            version: event.item_version,
        }),
        // Stock is not a property feature, and price and category only change with updates.
        _ => None,
    }
}

/// How far the listing rows have followed the catalog, and where the catalog is.
async fn progress(db: &Db, model_id: &str) -> Result<(i64, i64), ApiError> {
    let rows = db
        .query(
            "SELECT coalesce((SELECT last_event_id FROM similarity_progress WHERE model = ?), 0) AS done,
                    coalesce((SELECT max(id) FROM catalog_events), 0) AS latest",
            [Param::Text(model_id.to_owned())],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no progress row")))?;
    Ok((row.get("done")?, row.get("latest")?))
}

/// Follows the catalog's events until the listing rows are current. Returns how many events it
/// applied. `db` is this task's alone (each batch is a transaction on it).
pub async fn catch_up(db: &Db) -> Result<usize, ApiError> {
    let metadata = model::metadata();
    let model_id = metadata.id();
    let mut applied = 0;
    loop {
        let (done, latest) = progress(db, &model_id).await?;
        if done >= latest {
            return Ok(applied);
        }
        // The embeddings are computed before the write lock is taken: a libSQL server times a
        // transaction out after a few seconds, and nobody should wait on the model.
        let batch = prepare_batch(db, metadata, &model_id, done).await?;
        applied += db
            .in_transaction("BEGIN IMMEDIATE", async |db: &Db| {
                store_batch(db, &model_id, done, &batch).await
            })
            .await?;
    }
}

/// A batch of changes ready to store: the rows to upsert, after event `done` up to `last`.
struct Batch {
    last: i64,
    events: usize,
    /// (item id, event id, change, embedding as stored text when it is an upsert).
    rows: Vec<(String, i64, Change, Option<String>)>,
}

async fn prepare_batch(
    db: &Db,
    metadata: &model::Metadata,
    model_id: &str,
    done: i64,
) -> Result<Batch, ApiError> {
    let events: Vec<EventRow> = db
        .query_json(
            "SELECT id, type, item_id, item_version, data FROM catalog_events
             WHERE id > ? ORDER BY id LIMIT ?",
            &[
                ("id", "id"),
                ("type", "type"),
                ("item_id", "item_id"),
                ("item_version", "item_version"),
                ("data", "json(data)"),
            ],
            "id",
            [Param::Integer(done), Param::Integer(BATCH)],
        )
        .await?;
    let last = events.last().map_or(done, |event| event.id);
    // The last change of each item in this batch is the one that counts.
    let mut latest: HashMap<String, (i64, Change)> = HashMap::new();
    for event in &events {
        if let Some(change) = change_of(metadata, event) {
            latest.insert(event.item_id.clone(), (event.id, change));
        }
    }
    let known = stored_embeddings(db, model_id, latest.keys()).await?;
    let fresh = embed_changed(&latest, &known)?;
    let rows = latest
        .into_iter()
        .map(|(item_id, (event_id, change))| {
            let embedding = fresh
                .get(&item_id)
                .cloned()
                .or_else(|| known.get(&item_id).map(|(_, embedding)| embedding.clone()));
            (item_id, event_id, change, embedding)
        })
        .collect();
    Ok(Batch {
        last,
        events: events.len(),
        rows,
    })
}

/// The stored property hash and embedding of each of `item_ids` that is a live listing.
async fn stored_embeddings(
    db: &Db,
    model_id: &str,
    item_ids: impl ExactSizeIterator<Item = &String>,
) -> Result<HashMap<String, (String, String)>, ApiError> {
    if item_ids.len() == 0 {
        return Ok(HashMap::new());
    }
    let mut params = vec![Param::Text(model_id.to_owned())];
    let count = item_ids.len();
    params.extend(item_ids.map(|id| Param::Text(id.clone())));
    let rows = db
        .query(
            &format!(
                "SELECT item_id, property_hash, embedding FROM similarity_listings
                 WHERE model = ? AND live = 1 AND item_id IN ({})",
                placeholders(count)
            ),
            params,
        )
        .await?;
    let mut known = HashMap::new();
    for row in rows.iter() {
        known.insert(
            row.get("item_id")?,
            (row.get("property_hash")?, row.get("embedding")?),
        );
    }
    Ok(known)
}

/// Embeddings for the upserts whose property changed (the others reuse the stored one).
fn embed_changed(
    latest: &HashMap<String, (i64, Change)>,
    known: &HashMap<String, (String, String)>,
) -> Result<HashMap<String, String>, ApiError> {
    let to_embed: Vec<(&String, &Vec<f32>)> = latest
        .iter()
        .filter_map(|(item_id, (_, change))| match change {
            Change::Upsert { row, hash, .. }
                if known.get(item_id).is_none_or(|(stored, _)| stored != hash) =>
            {
                Some((item_id, row))
            }
            _ => None,
        })
        .collect();
    if to_embed.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Vec<f32>> = to_embed.iter().map(|(_, row)| (*row).clone()).collect();
    let embeddings = model::embed(&rows).map_err(ApiError::internal)?;
    Ok(to_embed
        .into_iter()
        .zip(embeddings)
        .map(|((item_id, _), embedding)| (item_id.clone(), encode_embedding(&embedding)))
        .collect())
}

/// Stores a prepared batch, unless another follower stored it first; returns how many events
/// it applied.
async fn store_batch(db: &Db, model_id: &str, done: i64, batch: &Batch) -> Result<usize, ApiError> {
    if progress(db, model_id).await?.0 != done {
        return Ok(0);
    }
    let mut params: Vec<Param> = Vec::new();
    for (item_id, event_id, change, embedding) in &batch.rows {
        params.extend(row_params(
            model_id,
            item_id,
            *event_id,
            change,
            embedding.as_deref(),
        )?);
    }
    if !batch.rows.is_empty() {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; batch.rows.len()].join(", ");
        db.execute(
            &format!(
                "INSERT INTO similarity_listings (model, item_id, item_version, event_id, live, category,
                                                  price_amount, price_currency, property_hash, embedding)
                 VALUES {values}
                 ON CONFLICT (model, item_id) DO UPDATE SET
                     item_version = excluded.item_version, event_id = excluded.event_id,
                     live = excluded.live, category = excluded.category,
                     price_amount = excluded.price_amount, price_currency = excluded.price_currency,
                     property_hash = excluded.property_hash, embedding = excluded.embedding"
            ),
            params,
        )
        .await?;
    }
    db.execute(
        "INSERT INTO similarity_progress (model, last_event_id) VALUES (?, ?)
         ON CONFLICT (model) DO UPDATE SET last_event_id = excluded.last_event_id",
        [Param::Text(model_id.to_owned()), Param::Integer(batch.last)],
    )
    .await?;
    Ok(batch.events)
}

/// The ten values of one `similarity_listings` row.
fn row_params(
    model_id: &str,
    item_id: &str,
    event_id: i64,
    change: &Change,
    embedding: Option<&str>,
) -> Result<Vec<Param>, ApiError> {
    let text = |s: &str| Param::Text(s.to_owned());
    Ok(match change {
        Change::Upsert {
            version,
            category,
            price_amount,
            price_currency,
            hash,
            ..
        } => {
            let embedding = embedding
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no embedding for {item_id}")))?;
            vec![
                text(model_id),
                text(item_id),
                Param::Integer(*version),
                Param::Integer(event_id),
                Param::Integer(1),
                text(category),
                Param::Integer(*price_amount),
                text(price_currency),
                text(hash),
                text(embedding),
            ]
        }
        Change::Remove { version } => vec![
            text(model_id),
            text(item_id),
            Param::Integer(*version),
            Param::Integer(event_id),
            Param::Integer(0),
            Param::Null,
            Param::Null,
            Param::Null,
            Param::Null,
            Param::Null,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_round_trip_through_text() {
        let embedding = vec![0.25_f32, -1.5, 3.0e-7, 0.0];
        assert_eq!(
            decode_embedding(&encode_embedding(&embedding), 4).unwrap(),
            embedding
        );
        assert!(decode_embedding(&encode_embedding(&embedding), 3).is_err());
    }
}
