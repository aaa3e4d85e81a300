-- Packed snapshots of the listings index (see components/similarity/src/index/snapshot.rs): a
-- new instance loads one row of a few megabytes instead of paging through every listing row.
CREATE TABLE similarity_snapshots (
    model        TEXT    PRIMARY KEY,
    -- The listing rows (similarity_listings.event_id) the snapshot includes.
    as_of_event  INTEGER NOT NULL,
    width        INTEGER NOT NULL,
    listings     INTEGER NOT NULL,
    -- The item ids, newline-separated, in record order.
    ids          TEXT    NOT NULL,
    -- [categories, currencies]: the dictionaries the records index into.
    dictionaries TEXT    NOT NULL,
    -- One record per listing: category u16, currency u16, price i64, scale f32, then the
    -- quantised embedding (width i16 values), little endian.
    records      BLOB    NOT NULL,
    written_at   TEXT    NOT NULL
);
