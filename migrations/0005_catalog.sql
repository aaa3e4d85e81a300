-- Catalog items (products, books, property listings). seq orders items by creation and links
-- the full-text index; id is the public identifier; version counts changes (the ETag).
CREATE TABLE catalog_items (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    title          TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    price_amount   INTEGER NOT NULL CHECK (price_amount >= 0),
    price_currency TEXT    NOT NULL,
    stock          INTEGER NOT NULL CHECK (stock >= 0),
    attributes     TEXT    NOT NULL CHECK (json_type(attributes) = 'object'),
    owner_id       TEXT    NOT NULL,
    owner_name     TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    version        INTEGER NOT NULL
);

-- Each supports one filter and keeps its rows in a sort order, so pages are index walks.
CREATE INDEX catalog_items_category ON catalog_items (category, seq);
CREATE INDEX catalog_items_owner    ON catalog_items (owner_id, seq);
CREATE INDEX catalog_items_price    ON catalog_items (price_currency, price_amount, seq);
CREATE INDEX catalog_items_category_price ON catalog_items (category, price_currency, price_amount, seq);

-- Full-text search over title and description, kept in step by the triggers below.
CREATE VIRTUAL TABLE catalog_search USING fts5 (
    title, description,
    content = 'catalog_items', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER catalog_items_search_insert AFTER INSERT ON catalog_items BEGIN
    INSERT INTO catalog_search (rowid, title, description)
    VALUES (new.seq, new.title, new.description);
END;

CREATE TRIGGER catalog_items_search_delete AFTER DELETE ON catalog_items BEGIN
    INSERT INTO catalog_search (catalog_search, rowid, title, description)
    VALUES ('delete', old.seq, old.title, old.description);
END;

CREATE TRIGGER catalog_items_search_update AFTER UPDATE OF title, description ON catalog_items BEGIN
    INSERT INTO catalog_search (catalog_search, rowid, title, description)
    VALUES ('delete', old.seq, old.title, old.description);
    INSERT INTO catalog_search (rowid, title, description)
    VALUES (new.seq, new.title, new.description);
END;

-- The outbox: every change to the catalog, appended in the same transaction as the change.
-- Ids follow commit order, so a follower reading "after N" never misses or repeats a change.
CREATE TABLE catalog_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    type         TEXT    NOT NULL,
    item_id      TEXT    NOT NULL,
    item_version INTEGER NOT NULL,
    at           TEXT    NOT NULL,
    actor_id     TEXT,
    data         TEXT    NOT NULL
);
CREATE INDEX catalog_events_item ON catalog_events (item_id, id);
