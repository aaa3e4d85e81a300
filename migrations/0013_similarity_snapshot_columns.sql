-- Snapshots of the listings index store their numbers by column instead of by listing (see
-- components/similarity/src/index/snapshot.rs): every embedding, then every scale, price,
-- category and currency, so a new instance copies each column in one pass.
-- A snapshot is derived from similarity_listings, so the old ones are dropped rather than
-- converted: the next instance that finds none loads the listing rows and writes a new one.
-- The column is renamed so that code expecting either layout fails loudly on the other.
DELETE FROM similarity_snapshots;
ALTER TABLE similarity_snapshots RENAME COLUMN records TO columns;
