//! Packed snapshots of the listings index, so a new instance loads a hundred thousand listings
//! with one read of a few megabytes instead of paging through every listing row.
//!
//! A snapshot row holds the item ids (one text, newline-separated), the category and currency
//! dictionaries (JSON), and one blob with a fixed-size record per listing: category and currency
//! (u16 each), price (i64), scale (f32) and the quantised embedding (`width` i16 values),
//! little endian. Whoever has applied [`SNAPSHOT_EVERY`] events past the latest snapshot writes a new
//! one from memory, after its response.

use std::cell::Cell;

use shared::ApiError;
use shared::platform::db::{self, Db, Param};

use super::{INDEX, Index, Listing};

/// Listing changes after which a new snapshot is written.
pub const SNAPSHOT_EVERY: i64 = 1_000;

/// Bytes of one listing's record before its embedding values.
const RECORD_HEAD: usize = 2 + 2 + 8 + 4;

thread_local! {
    /// Whether this instance is writing a snapshot (one at a time is plenty).
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// The columns of a snapshot, as stored.
pub struct Packed {
    pub as_of_event: i64,
    pub width: i64,
    pub ids: String,
    pub dictionaries: String,
    pub records: Vec<u8>,
}

pub fn pack(index: &Index) -> Packed {
    let mut records = Vec::with_capacity(index.listings.len() * (RECORD_HEAD + 2 * index.width));
    for (position, listing) in index.listings.iter().enumerate() {
        records.extend(listing.category.to_le_bytes());
        records.extend(listing.currency.to_le_bytes());
        records.extend(listing.price_amount.to_le_bytes());
        records.extend(index.scales[position].to_le_bytes());
        let row = &index.values[position * index.width..(position + 1) * index.width];
        records.extend(row.iter().flat_map(|v| v.to_le_bytes()));
    }
    let ids: Vec<&str> = index.listings.iter().map(|l| l.item_id.as_str()).collect();
    Packed {
        as_of_event: index.as_of_event,
        width: index.width as i64,
        ids: ids.join("\n"),
        dictionaries: serde_json::json!([index.categories, index.currencies]).to_string(),
        records,
    }
}

pub fn unpack(model: &str, packed: &Packed) -> anyhow::Result<Index> {
    let width = usize::try_from(packed.width)?;
    let (categories, currencies): (Vec<String>, Vec<String>) =
        serde_json::from_str(&packed.dictionaries)?;
    let ids: Vec<&str> = if packed.ids.is_empty() {
        Vec::new()
    } else {
        packed.ids.split('\n').collect()
    };
    let size = RECORD_HEAD + 2 * width;
    anyhow::ensure!(
        packed.records.len() == ids.len() * size,
        "a snapshot of {} listings has {} bytes of records",
        ids.len(),
        packed.records.len()
    );
    let mut index = Index::new(model, width);
    index.categories = categories;
    index.currencies = currencies;
    index.as_of_event = packed.as_of_event;
    index.snapshot_event = packed.as_of_event;
    index.values.reserve(ids.len() * width);
    for (id, record) in ids.iter().zip(packed.records.chunks_exact(size)) {
        let number = |range: std::ops::Range<usize>| &record[range];
        index.listings.push(Listing {
            item_id: (*id).to_owned(),
            category: u16::from_le_bytes(number(0..2).try_into()?),
            currency: u16::from_le_bytes(number(2..4).try_into()?),
            price_amount: i64::from_le_bytes(number(4..12).try_into()?),
        });
        index
            .scales
            .push(f32::from_le_bytes(number(12..16).try_into()?));
        index.values.extend(
            record[RECORD_HEAD..]
                .chunks_exact(2)
                .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
        );
    }
    Ok(index)
}

/// The latest snapshot of `model`, if any.
pub async fn load(db: &Db, model: &str) -> Result<Option<Index>, ApiError> {
    let rows = db
        .query(
            "SELECT as_of_event, width, ids, dictionaries, records FROM similarity_snapshots
             WHERE model = ?",
            [Param::Text(model.to_owned())],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let packed = Packed {
        as_of_event: row.get("as_of_event")?,
        width: row.get("width")?,
        ids: row.get("ids")?,
        dictionaries: row.get("dictionaries")?,
        records: row.get("records")?,
    };
    unpack(model, &packed).map(Some).map_err(ApiError::internal)
}

/// Writes a snapshot of this instance's index after the response, when it is far enough ahead
/// of the one it started from; a newer snapshot already stored is kept.
pub fn write_if_due() {
    let due = INDEX.with(|index| {
        let index = index.borrow();
        index.as_of_event - index.snapshot_event >= SNAPSHOT_EVERY
    });
    if !due || WRITING.with(|writing| writing.replace(true)) {
        return;
    }
    spin_sdk::wit_bindgen::spawn(async {
        let (model, packed) = INDEX.with(|index| {
            let index = index.borrow();
            (index.model.clone(), pack(&index))
        });
        if save(&model, &packed).await.is_ok() {
            INDEX.with(|index| index.borrow_mut().snapshot_event = packed.as_of_event);
        }
        WRITING.with(|writing| writing.set(false));
    });
}

async fn save(model: &str, packed: &Packed) -> Result<(), ApiError> {
    db::connect()
        .await?
        .execute(
            "INSERT INTO similarity_snapshots (model, as_of_event, width, listings, ids, dictionaries,
                                               records, written_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (model) DO UPDATE SET
                 as_of_event = excluded.as_of_event, width = excluded.width,
                 listings = excluded.listings, ids = excluded.ids,
                 dictionaries = excluded.dictionaries, records = excluded.records,
                 written_at = excluded.written_at
             WHERE excluded.as_of_event > similarity_snapshots.as_of_event",
            [
                Param::Text(model.to_owned()),
                Param::Integer(packed.as_of_event),
                Param::Integer(packed.width),
                Param::Integer(packed.records.len() as i64 / (RECORD_HEAD as i64 + 2 * packed.width)),
                Param::Text(packed.ids.clone()),
                Param::Text(packed.dictionaries.clone()),
                Param::Blob(packed.records.clone()),
                Param::Text(shared::platform::time::now_rfc3339()),
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Quantised;

    #[test]
    fn a_snapshot_round_trips_the_index() {
        let mut index = Index::new("m@1", 3);
        index.upsert("a", "property", "USD", 12, &Quantised::of(&[0.6, 0.8, 0.0]));
        index.upsert("b", "land", "EUR", -3, &Quantised::of(&[0.0, -1.0, 0.0]));
        index.as_of_event = 42;
        let mut back = unpack("m@1", &pack(&index)).unwrap();
        assert_eq!(back.listings, index.listings);
        assert_eq!(back.values, index.values);
        assert_eq!(back.scales, index.scales);
        assert_eq!(back.positions(), index.positions());
        assert_eq!(back.categories, index.categories);
        assert_eq!((back.as_of_event, back.snapshot_event), (42, 42));
        let empty = unpack("m@1", &pack(&Index::new("m@1", 3))).unwrap();
        assert!(empty.listings.is_empty());
    }
}
