//! Packed snapshots of the listings index, so a new instance loads a hundred thousand listings
//! with one read of a few megabytes instead of paging through every listing row.
//!
//! A snapshot row holds the item ids (one text, newline-separated), the category and currency
//! dictionaries (JSON), and one blob of columns, little endian: every listing's quantised
//! embedding (`width` i16 values each), then every scale (f32), price (i64), category and
//! currency (u16 each, positions in the dictionaries). Columns load with one pass each into the
//! index's own vectors, and the ids text becomes the index's `ids` as it is. Whoever has applied
//! [`SNAPSHOT_EVERY`] events past the latest snapshot writes a new one from memory, after its
//! response.

use std::borrow::Cow;
use std::cell::Cell;

use shared::ApiError;
use shared::platform::db::{self, Db, Param};

use super::{INDEX, IdSpan, Index, Listing};

/// Listing changes after which a new snapshot is written.
pub const SNAPSHOT_EVERY: i64 = 1_000;

/// Bytes of one listing's columns beside its embedding: scale, price, category, currency.
const BYTES_BESIDE_EMBEDDING: usize = 4 + 8 + 2 + 2;

thread_local! {
    /// Whether this instance is writing a snapshot (one at a time is plenty).
    static WRITING: Cell<bool> = const { Cell::new(false) };
}

/// The columns of a snapshot, as stored: owned when written, borrowed from the row when read.
pub struct Packed<'a> {
    pub as_of_event: i64,
    pub width: i64,
    pub ids: Cow<'a, str>,
    pub dictionaries: Cow<'a, str>,
    pub columns: Cow<'a, [u8]>,
}

pub fn pack(index: &Index) -> Packed<'static> {
    let count = index.listings.len();
    let mut columns = Vec::with_capacity(count * (BYTES_BESIDE_EMBEDDING + 2 * index.width));
    columns.extend(index.values.iter().flat_map(|v| v.to_le_bytes()));
    columns.extend(index.scales.iter().flat_map(|s| s.to_le_bytes()));
    let listings = &index.listings;
    columns.extend(listings.iter().flat_map(|l| l.price_amount.to_le_bytes()));
    columns.extend(listings.iter().flat_map(|l| l.category.to_le_bytes()));
    columns.extend(listings.iter().flat_map(|l| l.currency.to_le_bytes()));
    let ids: Vec<&str> = (0..count).map(|position| index.item_id(position)).collect();
    Packed {
        as_of_event: index.as_of_event,
        width: index.width as i64,
        ids: Cow::Owned(ids.join("\n")),
        dictionaries: Cow::Owned(
            serde_json::json!([index.categories, index.currencies]).to_string(),
        ),
        columns: Cow::Owned(columns),
    }
}

pub fn unpack(model: &str, packed: &Packed<'_>) -> anyhow::Result<Index> {
    let width = usize::try_from(packed.width)?;
    let (categories, currencies): (Vec<String>, Vec<String>) =
        serde_json::from_str(&packed.dictionaries)?;
    let spans = id_spans(&packed.ids);
    let count = spans.len();
    anyhow::ensure!(
        packed.columns.len() == count * (BYTES_BESIDE_EMBEDDING + 2 * width),
        "a snapshot of {count} listings has {} bytes of columns",
        packed.columns.len()
    );
    let (embeddings, rest) = packed.columns.split_at(count * width * 2);
    let (scales, rest) = rest.split_at(count * 4);
    let (prices, rest) = rest.split_at(count * 8);
    let (category_column, currency_column) = rest.split_at(count * 2);
    let u16_at = |column: &[u8], n: usize| u16::from_le_bytes([column[2 * n], column[2 * n + 1]]);
    let mut index = Index::new(model, width);
    index.categories = categories;
    index.currencies = currencies;
    index.as_of_event = packed.as_of_event;
    index.snapshot_event = packed.as_of_event;
    index.ids = packed.ids.clone().into_owned();
    index.values = i16s_from_le_bytes(embeddings);
    index.scales = scales
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    index.listings = spans
        .into_iter()
        .zip(prices.chunks_exact(8))
        .enumerate()
        .map(|(n, (id, price))| Listing {
            id,
            category: u16_at(category_column, n),
            currency: u16_at(currency_column, n),
            price_amount: i64::from_le_bytes(price.try_into().expect("chunks of eight bytes")),
        })
        .collect();
    Ok(index)
}

/// Where each newline-separated id is in `ids`. (memchr finds the newlines with SIMD: splitting
/// the text with `str::split` took 4-7 ms of a new instance's load for 100k ids.)
fn id_spans(ids: &str) -> Vec<IdSpan> {
    if ids.is_empty() {
        return Vec::new();
    }
    let mut start = 0;
    let mut spans: Vec<IdSpan> = memchr::memchr_iter(b'\n', ids.as_bytes())
        .map(|end| {
            let span = IdSpan { start, end };
            start = end + 1;
            span
        })
        .collect();
    spans.push(IdSpan {
        start,
        end: ids.len(),
    });
    spans
}

/// Little-endian 16-bit values from their bytes, copied in one piece where the machine is
/// little endian too (Wasm is): decoding them one by one took 4-5 ms for 100k embeddings.
fn i16s_from_le_bytes(bytes: &[u8]) -> Vec<i16> {
    let mut values = vec![0i16; bytes.len() / 2];
    if cfg!(target_endian = "little") {
        // SAFETY: `values` owns exactly `values.len() * 2` bytes, which `bytes` has, the two do
        // not overlap, and every bit pattern is a valid i16.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                values.as_mut_ptr().cast::<u8>(),
                values.len() * 2,
            );
        }
    } else {
        for (value, pair) in values.iter_mut().zip(bytes.chunks_exact(2)) {
            *value = i16::from_le_bytes([pair[0], pair[1]]);
        }
    }
    values
}

/// The latest snapshot of `model`, if any.
pub async fn load(db: &Db, model: &str) -> Result<Option<Index>, ApiError> {
    let rows = db
        .query(
            "SELECT as_of_event, width, ids, dictionaries, columns FROM similarity_snapshots
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
        ids: Cow::Borrowed(row.text("ids")?),
        dictionaries: Cow::Borrowed(row.text("dictionaries")?),
        columns: Cow::Borrowed(row.blob("columns")?),
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

async fn save(model: &str, packed: &Packed<'_>) -> Result<(), ApiError> {
    db::connect()
        .await?
        .execute(
            "INSERT INTO similarity_snapshots (model, as_of_event, width, listings, ids, dictionaries,
                                               columns, written_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (model) DO UPDATE SET
                 as_of_event = excluded.as_of_event, width = excluded.width,
                 listings = excluded.listings, ids = excluded.ids,
                 dictionaries = excluded.dictionaries, columns = excluded.columns,
                 written_at = excluded.written_at
             WHERE excluded.as_of_event > similarity_snapshots.as_of_event",
            [
                Param::Text(model.to_owned()),
                Param::Integer(packed.as_of_event),
                Param::Integer(packed.width),
                Param::Integer(
                    packed.columns.len() as i64 / (BYTES_BESIDE_EMBEDDING as i64 + 2 * packed.width),
                ),
                Param::Text(packed.ids.to_string()),
                Param::Text(packed.dictionaries.to_string()),
                Param::Blob(packed.columns.to_vec()),
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
        index.remove("a");
        index.upsert("c", "property", "USD", 7, &Quantised::of(&[0.0, 0.0, 1.0]));
        let mut back = unpack("m@1", &pack(&index)).unwrap();
        let ids = |index: &Index| -> Vec<String> {
            (0..index.listings.len())
                .map(|position| index.item_id(position).to_owned())
                .collect()
        };
        assert_eq!(ids(&back), ["b", "c"]);
        assert_eq!(ids(&back), ids(&index));
        let attributes = |index: &Index| -> Vec<(u16, u16, i64)> {
            let listings = index.listings.iter();
            listings
                .map(|l| (l.category, l.currency, l.price_amount))
                .collect()
        };
        assert_eq!(attributes(&back), attributes(&index));
        assert_eq!(back.values, index.values);
        assert_eq!(back.scales, index.scales);
        assert_eq!(back.positions(), index.positions());
        assert_eq!(back.categories, index.categories);
        assert_eq!((back.as_of_event, back.snapshot_event), (42, 42));
        let empty = unpack("m@1", &pack(&Index::new("m@1", 3))).unwrap();
        assert!(empty.listings.is_empty());
    }

    #[test]
    fn ids_and_values_unpack_from_their_texts_and_bytes() {
        let spans = id_spans("ab\n\ncde");
        let texts: Vec<&str> = spans.iter().map(|s| &"ab\n\ncde"[s.start..s.end]).collect();
        assert_eq!(texts, ["ab", "", "cde"]);
        assert!(id_spans("").is_empty());
        let values = [1i16, -2, 32_767, -32_767];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(i16s_from_le_bytes(&bytes), values);
    }
}
