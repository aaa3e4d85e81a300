-- The category joins the full-text index, with no weight in the ranking: a text search within
-- a category then intersects the words' and the category's posting lists inside FTS5 and ranks
-- only what is left, instead of ranking every match of the words and dropping the other
-- categories' afterwards (ranking is most of a search's cost for common words).
DROP TRIGGER catalog_items_search_insert;
DROP TRIGGER catalog_items_search_delete;
DROP TRIGGER catalog_items_search_update;
DROP TABLE catalog_search;

CREATE VIRTUAL TABLE catalog_search USING fts5 (
    title, description, category,
    content = 'catalog_items', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
-- rank is bm25 over title and description only.
INSERT INTO catalog_search (catalog_search, rank) VALUES ('rank', 'bm25(1.0, 1.0, 0.0)');
INSERT INTO catalog_search (catalog_search) VALUES ('rebuild');

CREATE TRIGGER catalog_items_search_insert AFTER INSERT ON catalog_items BEGIN
    INSERT INTO catalog_search (rowid, title, description, category)
    VALUES (new.seq, new.title, new.description, new.category);
END;

CREATE TRIGGER catalog_items_search_delete AFTER DELETE ON catalog_items BEGIN
    INSERT INTO catalog_search (catalog_search, rowid, title, description, category)
    VALUES ('delete', old.seq, old.title, old.description, old.category);
END;

CREATE TRIGGER catalog_items_search_update
AFTER UPDATE OF title, description, category ON catalog_items BEGIN
    INSERT INTO catalog_search (catalog_search, rowid, title, description, category)
    VALUES ('delete', old.seq, old.title, old.description, old.category);
    INSERT INTO catalog_search (rowid, title, description, category)
    VALUES (new.seq, new.title, new.description, new.category);
END;
