//! Bringing an instance's copy of the index up to date: from the latest snapshot when the copy
//! is new, then from the listing rows changed since.

use std::cell::Cell;

use serde::Deserialize;
use shared::ApiError;
use shared::platform::db::{Db, Param};

use super::follow::{catch_up, decode_embedding};
use super::{INDEX, Index, Quantised, snapshot};
use crate::model;

/// Rows read per query when loading without a snapshot, or catching up.
const PAGE: i64 = 5_000;

thread_local! {
    /// Set while a search in this instance refreshes the index: concurrent searches in a new
    /// instance wait for that one load instead of each reading every listing.
    static REFRESHING: Cell<bool> = const { Cell::new(false) };
}

/// How often a search waiting for another's refresh looks again. (A timer is a host event, so
/// the waiting task is woken without a guest-side waker.)
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

/// Brings the listing rows up to date with the catalog, then this instance's copy up to date
/// with the listing rows. Most searches find both current, which one statement tells them.
pub async fn update(db: &Db) -> Result<(), ApiError> {
    if is_current(db).await? {
        return Ok(());
    }
    catch_up(db).await?;
    refresh(db).await
}

/// Whether the listing rows have followed every catalog event and this instance's copy holds
/// every listing row.
async fn is_current(db: &Db) -> Result<bool, ApiError> {
    let model_id = model::metadata().id();
    let (copy_model, as_of_event) = INDEX.with(|index| {
        let index = index.borrow();
        (index.model.clone(), index.as_of_event)
    });
    if copy_model != model_id || as_of_event == 0 {
        return Ok(false);
    }
    let rows = db
        .query(
            "SELECT coalesce((SELECT last_event_id FROM similarity_progress WHERE model = ?1), 0)
                        >= coalesce((SELECT max(id) FROM catalog_events), 0)
                    AND coalesce((SELECT max(event_id) FROM similarity_listings WHERE model = ?1), 0)
                        <= ?2 AS current",
            [Param::Text(model_id), Param::Integer(as_of_event)],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no freshness row")))?;
    Ok(row.get::<i64>("current")? == 1)
}

/// Brings this instance's copy of the index up to date with SQLite.
pub async fn refresh(db: &Db) -> Result<(), ApiError> {
    let _turn = RefreshTurn::take().await;
    let metadata = model::metadata();
    let model_id = metadata.id();
    let current = INDEX.with(|index| {
        let index = index.borrow();
        index.model == model_id && index.as_of_event > 0
    });
    if !current {
        let start = match snapshot::load(db, &model_id).await? {
            Some(index) => index,
            None => load_live_listings(db, &model_id, metadata.output.width).await?,
        };
        INDEX.with(|index| *index.borrow_mut() = start);
    }
    let as_of_event = INDEX.with(|index| index.borrow().as_of_event);
    read_changes(db, &model_id, as_of_event, i64::MAX, false).await?;
    snapshot::write_if_due();
    Ok(())
}

/// A new copy without a snapshot: only the live listings as of the latest change so far
/// (removed and non-property items are half the rows); what changes meanwhile is read after.
async fn load_live_listings(db: &Db, model_id: &str, width: usize) -> Result<Index, ApiError> {
    let latest = db
        .query_integer(
            "SELECT coalesce(max(event_id), 0) FROM similarity_listings WHERE model = ?",
            [Param::Text(model_id.to_owned())],
        )
        .await?;
    INDEX.with(|index| *index.borrow_mut() = Index::new(model_id, width));
    read_changes(db, model_id, 0, latest, true).await?;
    Ok(INDEX.with(|index| {
        let mut index = index.take();
        index.as_of_event = latest;
        index
    }))
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

/// Applies the listing rows changed after event `after` up to event `until` (only live ones if
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
        if let Some(last) = rows.last() {
            after = last.event_id;
        }
        apply(rows, width)?;
        if count < PAGE {
            return Ok(());
        }
    }
}

/// Applies listing rows to this instance's copy, in order.
fn apply(rows: Vec<IndexRow>, width: usize) -> Result<(), ApiError> {
    let mut decoded = Vec::with_capacity(rows.len());
    for row in rows {
        let embedding = match (&row.embedding, row.live) {
            (Some(text), 1) => Some(Quantised::of(
                &decode_embedding(text, width).map_err(ApiError::internal)?,
            )),
            _ => None,
        };
        decoded.push((row, embedding));
    }
    INDEX.with(|index| {
        let mut index = index.borrow_mut();
        for (row, embedding) in decoded {
            index.as_of_event = index.as_of_event.max(row.event_id);
            match embedding {
                Some(embedding) => index.upsert(
                    &row.item_id,
                    row.category.as_deref().unwrap_or_default(),
                    row.price_currency.as_deref().unwrap_or_default(),
                    row.price_amount.unwrap_or_default(),
                    &embedding,
                ),
                None => index.remove(&row.item_id),
            }
        }
    });
    Ok(())
}
