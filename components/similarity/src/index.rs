//! The listings index: embeddings of catalog items whose attributes describe a property.
//!
//! It follows the catalog's outbox (`catalog_events`) in batches: each batch is one
//! transaction that embeds what changed (once per item version, and not at all when the
//! property fields did not change) and records how far it got, so concurrent followers never
//! process an event twice. Each instance keeps the index in memory and, on every search,
//! brings it up to date from the rows changed since (one indexed query), so a search never
//! sees an index older than the SQLite one.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::ApiError;
use shared::platform::crypto::hex_sha256;
use shared::platform::db::{self, Db, Param};

use crate::model;

/// Catalog events applied per transaction.
const BATCH: i64 = 500;
/// Rows read per query when loading or refreshing the in-memory index.
const PAGE: i64 = 5_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub item_id: String,
    pub category: String,
    pub price_amount: i64,
    pub price_currency: String,
}

/// An instance's copy of the index.
#[derive(Default)]
pub struct Index {
    model: String,
    as_of_event: i64,
    embeddings: Vec<f32>,
    listings: Vec<Listing>,
    positions: HashMap<String, usize>,
}

thread_local! {
    static INDEX: RefCell<Index> = RefCell::new(Index::default());
    /// Set while a search in this instance refreshes the index: concurrent searches in a new
    /// instance wait for that one load instead of each reading every listing.
    static REFRESHING: Cell<bool> = const { Cell::new(false) };
}

/// How often a search waiting for another's refresh looks again. (Waiting on a guest-side
/// lock would need wit-bindgen's inter-task wakeups; a timer is a host event.)
const REFRESH_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// This instance's turn to refresh the index; the turn passes on when it is dropped.
struct RefreshTurn;

impl RefreshTurn {
    async fn take() -> Self {
        while REFRESHING.with(|refreshing| refreshing.replace(true)) {
            spin_sdk::time::sleep(REFRESH_POLL).await;
        }
        RefreshTurn
    }
}

impl Drop for RefreshTurn {
    fn drop(&mut self) {
        REFRESHING.with(|refreshing| refreshing.set(false));
    }
}

fn encode_embedding(embedding: &[f32]) -> String {
    let bytes: Vec<u8> = embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

fn decode_embedding(text: &str, width: usize) -> anyhow::Result<Vec<f32>> {
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

/// Follows the catalog's events until the index is current. Returns how many it applied.
pub async fn catch_up(db: &Db) -> Result<usize, ApiError> {
    let metadata = model::metadata();
    let model_id = metadata.id();
    let mut applied = 0;
    loop {
        let rows = db
            .query(
                "SELECT coalesce((SELECT last_event_id FROM similarity_progress WHERE model = ?), 0) AS done,
                        coalesce((SELECT max(id) FROM catalog_events), 0) AS latest",
                [Param::Text(model_id.clone())],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no progress row")))?;
        if row.get::<i64>("done")? >= row.get::<i64>("latest")? {
            return Ok(applied);
        }
        applied +=
            db::transaction(async |db: &Db| apply_batch(db, metadata, &model_id).await).await?;
    }
}

async fn apply_batch(
    db: &Db,
    metadata: &model::Metadata,
    model_id: &str,
) -> Result<usize, ApiError> {
    // Re-read under the write lock: another instance may have just done this batch.
    let done: i64 = db
        .query(
            "SELECT coalesce((SELECT last_event_id FROM similarity_progress WHERE model = ?), 0) AS done",
            [Param::Text(model_id.to_owned())],
        )
        .await?
        .first()
        .map(|row| row.get("done"))
        .transpose()?
        .unwrap_or(0);
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
    let Some(last) = events.last().map(|event| event.id) else {
        return Ok(0);
    };

    // The last change of each item in this batch is the one that counts.
    let mut latest: HashMap<&str, (i64, Change)> = HashMap::new();
    for event in &events {
        if let Some(change) = change_of(metadata, event) {
            latest.insert(&event.item_id, (event.id, change));
        }
    }
    // Embeddings already stored for the same property are reused, not recomputed.
    let known: HashMap<String, (String, String)> = if latest.is_empty() {
        HashMap::new()
    } else {
        let ids: Vec<&str> = latest.keys().copied().collect();
        let placeholders = vec!["?"; ids.len()].join(", ");
        let mut params = vec![Param::Text(model_id.to_owned())];
        params.extend(ids.iter().map(|id| Param::Text((*id).to_owned())));
        let rows = db
            .query(
                &format!(
                    "SELECT item_id, property_hash, embedding FROM similarity_listings
                     WHERE model = ? AND live = 1 AND item_id IN ({placeholders})"
                ),
                params,
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.get("item_id")?,
                    (row.get("property_hash")?, row.get("embedding")?),
                ))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut to_embed: Vec<(&str, Vec<f32>)> = Vec::new();
    for (item_id, (_, change)) in &latest {
        if let Change::Upsert { row, hash, .. } = change
            && known.get(*item_id).is_none_or(|(stored, _)| stored != hash)
        {
            to_embed.push((item_id, row.clone()));
        }
    }
    let rows: Vec<Vec<f32>> = to_embed.iter().map(|(_, row)| row.clone()).collect();
    let fresh: HashMap<&str, String> = if rows.is_empty() {
        HashMap::new()
    } else {
        let embeddings = model::embed(&rows).map_err(ApiError::internal)?;
        to_embed
            .iter()
            .zip(embeddings)
            .map(|((item_id, _), embedding)| (*item_id, encode_embedding(&embedding)))
            .collect()
    };

    let mut params: Vec<Param> = Vec::new();
    let mut values = Vec::new();
    for (item_id, (event_id, change)) in &latest {
        let text = |s: &str| Param::Text(s.to_owned());
        match change {
            Change::Upsert {
                version,
                category,
                price_amount,
                price_currency,
                hash,
                ..
            } => {
                let embedding = fresh
                    .get(item_id)
                    .cloned()
                    .or_else(|| known.get(*item_id).map(|(_, embedding)| embedding.clone()))
                    .ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!("no embedding for {item_id}"))
                    })?;
                params.extend([
                    text(model_id),
                    text(item_id),
                    Param::Integer(*version),
                    Param::Integer(*event_id),
                    Param::Integer(1),
                    text(category),
                    Param::Integer(*price_amount),
                    text(price_currency),
                    text(hash),
                    Param::Text(embedding),
                ]);
            }
            Change::Remove { version } => {
                params.extend([
                    text(model_id),
                    text(item_id),
                    Param::Integer(*version),
                    Param::Integer(*event_id),
                    Param::Integer(0),
                    Param::Null,
                    Param::Null,
                    Param::Null,
                    Param::Null,
                    Param::Null,
                ]);
            }
        }
        values.push("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    if !values.is_empty() {
        db.execute(
            &format!(
                "INSERT INTO similarity_listings (model, item_id, item_version, event_id, live, category,
                                                  price_amount, price_currency, property_hash, embedding)
                 VALUES {}
                 ON CONFLICT (model, item_id) DO UPDATE SET
                     item_version = excluded.item_version, event_id = excluded.event_id,
                     live = excluded.live, category = excluded.category,
                     price_amount = excluded.price_amount, price_currency = excluded.price_currency,
                     property_hash = excluded.property_hash, embedding = excluded.embedding",
                values.join(", ")
            ),
            params,
        )
        .await?;
    }
    db.execute(
        "INSERT INTO similarity_progress (model, last_event_id) VALUES (?, ?)
         ON CONFLICT (model) DO UPDATE SET last_event_id = excluded.last_event_id",
        [Param::Text(model_id.to_owned()), Param::Integer(last)],
    )
    .await?;
    Ok(events.len())
}

#[derive(Deserialize)]
struct IndexRow {
    item_id: String,
    event_id: i64,
    live: i64,
    category: Option<String>,
    price_amount: Option<i64>,
    price_currency: Option<String>,
    embedding: Option<String>,
}

/// Brings this instance's copy of the index up to date with SQLite.
pub async fn refresh(db: &Db) -> Result<(), ApiError> {
    let _turn = RefreshTurn::take().await;
    let model_id = model::metadata().id();
    let as_of_event = INDEX.with(|index| {
        let mut index = index.borrow_mut();
        if index.model != model_id {
            *index = Index {
                model: model_id.clone(),
                ..Index::default()
            };
        }
        index.as_of_event
    });
    if as_of_event == 0 {
        // A new copy needs only the live listings as of the latest change so far (removed and
        // non-property items are half the rows); what changes meanwhile is read just below.
        let latest: i64 = db
            .query(
                "SELECT coalesce(max(event_id), 0) AS latest FROM similarity_listings WHERE model = ?",
                [Param::Text(model_id.clone())],
            )
            .await?
            .first()
            .map(|row| row.get("latest"))
            .transpose()?
            .unwrap_or(0);
        read_changes(db, &model_id, 0, latest, true).await?;
        INDEX.with(|index| index.borrow_mut().as_of_event = latest);
    }
    let as_of_event = INDEX.with(|index| index.borrow().as_of_event);
    read_changes(db, &model_id, as_of_event, i64::MAX, false).await
}

/// Applies the index rows changed after event `after` up to event `until` (only live ones if
/// `live_only`) to this instance's copy, a page at a time.
async fn read_changes(
    db: &Db,
    model_id: &str,
    mut after: i64,
    until: i64,
    live_only: bool,
) -> Result<(), ApiError> {
    let width = model::metadata().output.width;
    loop {
        let rows: Vec<IndexRow> = db
            .query_json(
                "SELECT item_id, event_id, live, category, price_amount, price_currency, embedding
                 FROM similarity_listings
                 WHERE model = ? AND event_id > ? AND event_id <= ? AND (live = 1 OR NOT ?)
                 ORDER BY event_id LIMIT ?",
                &[
                    ("item_id", "item_id"),
                    ("event_id", "event_id"),
                    ("live", "live"),
                    ("category", "category"),
                    ("price_amount", "price_amount"),
                    ("price_currency", "price_currency"),
                    ("embedding", "embedding"),
                ],
                "event_id",
                [
                    Param::Text(model_id.to_owned()),
                    Param::Integer(after),
                    Param::Integer(until),
                    Param::Integer(live_only.into()),
                    Param::Integer(PAGE),
                ],
            )
            .await?;
        let count = rows.len() as i64;
        let mut decoded = Vec::with_capacity(rows.len());
        for row in rows {
            let embedding = match (&row.embedding, row.live) {
                (Some(text), 1) => Some(decode_embedding(text, width).map_err(ApiError::internal)?),
                _ => None,
            };
            decoded.push((row, embedding));
        }
        INDEX.with(|index| {
            let mut index = index.borrow_mut();
            for (row, embedding) in decoded {
                index.as_of_event = index.as_of_event.max(row.event_id);
                after = row.event_id;
                match embedding {
                    Some(embedding) => index.upsert(
                        Listing {
                            item_id: row.item_id,
                            category: row.category.unwrap_or_default(),
                            price_amount: row.price_amount.unwrap_or_default(),
                            price_currency: row.price_currency.unwrap_or_default(),
                        },
                        &embedding,
                    ),
                    None => index.remove(&row.item_id),
                }
            }
        });
        if count < PAGE {
            return Ok(());
        }
    }
}

impl Index {
    fn upsert(&mut self, listing: Listing, embedding: &[f32]) {
        let width = embedding.len();
        match self.positions.get(&listing.item_id) {
            Some(&position) => {
                self.embeddings[position * width..(position + 1) * width]
                    .copy_from_slice(embedding);
                self.listings[position] = listing;
            }
            None => {
                self.positions
                    .insert(listing.item_id.clone(), self.listings.len());
                self.listings.push(listing);
                self.embeddings.extend_from_slice(embedding);
            }
        }
    }

    fn remove(&mut self, item_id: &str) {
        let Some(position) = self.positions.remove(item_id) else {
            return;
        };
        let width = self.embeddings.len() / self.listings.len().max(1);
        let last = self.listings.len() - 1;
        if position != last {
            self.listings.swap(position, last);
            for column in 0..width {
                self.embeddings
                    .swap(position * width + column, last * width + column);
            }
            self.positions
                .insert(self.listings[position].item_id.clone(), position);
        }
        self.listings.pop();
        self.embeddings.truncate(last * width);
    }
}

/// Which listings a search may return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub category: Option<String>,
    pub currency: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub exclude: Option<String>,
}

impl Filter {
    fn accepts(&self, listing: &Listing) -> bool {
        self.category
            .as_ref()
            .is_none_or(|c| *c == listing.category)
            && self
                .currency
                .as_ref()
                .is_none_or(|c| *c == listing.price_currency)
            && self.min_price.is_none_or(|min| listing.price_amount >= min)
            && self.max_price.is_none_or(|max| listing.price_amount <= max)
            && self
                .exclude
                .as_ref()
                .is_none_or(|id| *id != listing.item_id)
    }
}

/// The embedding of an indexed listing, if the item is one.
pub fn embedding_of(item_id: &str) -> Option<Vec<f32>> {
    INDEX.with(|index| {
        let index = index.borrow();
        let position = *index.positions.get(item_id)?;
        let width = index.embeddings.len() / index.listings.len().max(1);
        Some(index.embeddings[position * width..(position + 1) * width].to_vec())
    })
}

/// The `k` listings most similar to `query` among those `filter` accepts, best first (ties by
/// item id), with their scores.
pub fn nearest(query: &[f32], k: usize, filter: &Filter) -> Vec<(String, f64)> {
    let metadata = model::metadata();
    INDEX.with(|index| {
        let index = index.borrow();
        let width = query.len();
        let mut scored: Vec<(f32, usize)> = index
            .listings
            .iter()
            .enumerate()
            .filter(|(_, listing)| filter.accepts(listing))
            .map(|(position, _)| {
                let embedding = &index.embeddings[position * width..(position + 1) * width];
                let cosine: f32 = embedding.iter().zip(query).map(|(a, b)| a * b).sum();
                (cosine, position)
            })
            .collect();
        let by_similarity = |a: &(f32, usize), b: &(f32, usize)| {
            b.0.total_cmp(&a.0).then_with(|| {
                index.listings[a.1]
                    .item_id
                    .cmp(&index.listings[b.1].item_id)
            })
        };
        if scored.len() > k {
            scored.select_nth_unstable_by(k, by_similarity);
            scored.truncate(k);
        }
        scored.sort_by(by_similarity);
        scored
            .into_iter()
            .map(|(_, position)| {
                let embedding = &index.embeddings[position * width..(position + 1) * width];
                (
                    index.listings[position].item_id.clone(),
                    metadata.score(query, embedding),
                )
            })
            .collect()
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

    #[test]
    fn the_index_upserts_and_removes_in_place() {
        let mut index = Index::default();
        let listing = |id: &str| Listing {
            item_id: id.into(),
            category: "property".into(),
            price_amount: 1,
            price_currency: "USD".into(),
        };
        index.upsert(listing("a"), &[1.0, 0.0]);
        index.upsert(listing("b"), &[0.0, 1.0]);
        index.upsert(listing("c"), &[0.6, 0.8]);
        index.remove("a");
        assert_eq!(index.listings.len(), 2);
        assert_eq!(index.positions["c"], 0);
        assert_eq!(&index.embeddings[0..2], &[0.6, 0.8]);
        index.upsert(listing("b"), &[0.8, 0.6]);
        assert_eq!(&index.embeddings[2..4], &[0.8, 0.6]);
        index.remove("missing");
        assert_eq!(index.listings.len(), 2);
    }
}
