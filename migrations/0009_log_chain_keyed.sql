-- The log's chain becomes keyed (HMAC-SHA-256 with a key outside the database) and its recorded
-- state carries a MAC. Links made by the unkeyed chain cannot be checked with the key, so the
-- chain restarts: every remaining entry is sealed again, from the current anchor.
ALTER TABLE log_chain ADD COLUMN key_id TEXT;
ALTER TABLE log_chain ADD COLUMN state_mac TEXT;
UPDATE log_entries SET hash = NULL;
UPDATE log_chain
SET sealed_through = anchor_id,
    head_hash = '0000000000000000000000000000000000000000000000000000000000000000',
    anchor_hash = '0000000000000000000000000000000000000000000000000000000000000000';
