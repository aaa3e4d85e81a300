-- Embeddings of catalog listings whose attributes describe a property, one row per item and
-- model, kept current by following catalog_events. A row whose item was deleted, or no longer
-- describes a property, stays as a tombstone (live = 0) so followers of this table see it go.
CREATE TABLE similarity_listings (
    model          TEXT    NOT NULL,
    item_id        TEXT    NOT NULL,
    item_version   INTEGER NOT NULL,
    -- The catalog event that last changed this row: readers refresh incrementally from it.
    event_id       INTEGER NOT NULL,
    live           INTEGER NOT NULL,
    category       TEXT,
    price_amount   INTEGER,
    price_currency TEXT,
    -- SHA-256 of the encoded property: an update that leaves it alone is not embedded again.
    property_hash  TEXT,
    -- base64 of the embedding's little-endian f32 values.
    embedding      TEXT,
    PRIMARY KEY (model, item_id)
);
CREATE INDEX similarity_listings_changes ON similarity_listings (model, event_id);

-- How far each model's index has followed catalog_events.
CREATE TABLE similarity_progress (
    model         TEXT    PRIMARY KEY,
    last_event_id INTEGER NOT NULL
);
