//! The catalog's change feed: the outbox `catalog_events`, read in id order (ids follow commit
//! order, so a follower reading "after N" never misses or repeats a change).

use crate::platform::db::{Db, Param, RawRow};
use crate::web::ApiError;

/// A page holds events up to about this many bytes of `data` (at least one event, however
/// large), so a page of large items cannot make one response huge.
pub const PAGE_BYTES: i64 = 256 * 1024;

/// Up to `limit` events after `after`, in order, cut at [`PAGE_BYTES`]. Who made each change
/// (`actor_id`, a user id) is shown only when `show_actors`.
pub async fn after(
    db: &Db,
    after: i64,
    limit: i64,
    show_actors: bool,
) -> Result<Vec<RawRow>, ApiError> {
    let mut fields = vec![
        ("id", "id"),
        ("type", "type"),
        ("item_id", "item_id"),
        ("item_version", "item_version"),
        ("at", "at"),
    ];
    if show_actors {
        fields.push(("actor_id", "actor_id"));
    }
    fields.push(("data", "json(data)"));
    Ok(db
        .query_json(
            // The cut is found over ids and lengths alone, then the page is read as one id
            // range: a running sum over whole rows copied every row's data into a temporary
            // table (natively 1.36 ms against 1.04 ms for a page of 100 events).
            "SELECT id, type, item_id, item_version, at, actor_id, data FROM catalog_events
             WHERE id > ?1 AND id <= (
                 SELECT coalesce(max(id), ?1) FROM (
                     SELECT id, sum(len) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) - len AS before
                     FROM (SELECT id, length(data) AS len FROM catalog_events
                           WHERE id > ?1 ORDER BY id LIMIT ?2))
                 WHERE before < ?3)
             ORDER BY id",
            &fields,
            "id",
            [
                Param::Integer(after),
                Param::Integer(limit),
                Param::Integer(PAGE_BYTES),
            ],
        )
        .await?)
}
