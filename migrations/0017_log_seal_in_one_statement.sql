-- Sealing a batch of the log commits in one statement, an INSERT into this view, so the write
-- lock is held for that statement alone. Before, a seal held `BEGIN IMMEDIATE` across seven
-- host calls (about 12 ms under load, every 256 entries) while every writer of the database
-- waited in SQLite's busy handler. The links are now computed before, outside any transaction,
-- from the state the sealer read; the trigger applies them only if the chain's recorded state is
-- still that one, and otherwise fails with 'log chain moved' so the sealer reads it again.
CREATE VIEW log_seal (
    expected_through, expected_head, expected_anchor, expected_mac,
    sealed_through, head_hash, anchor_id, anchor_hash, key_id, state_mac, links
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

-- `links` is a JSON array of [entry id, link] pairs.
CREATE TRIGGER log_seal_apply INSTEAD OF INSERT ON log_seal BEGIN
    SELECT RAISE(ABORT, 'log chain moved')
    WHERE NOT EXISTS (
        SELECT 1 FROM log_chain
        WHERE id = 1
          AND sealed_through = NEW.expected_through
          AND head_hash = NEW.expected_head
          AND anchor_id = NEW.expected_anchor
          AND state_mac IS NEW.expected_mac
    );
    UPDATE log_entries SET hash = link.value ->> 1
    FROM json_each(NEW.links) AS link
    WHERE log_entries.id = link.value ->> 0;
    UPDATE log_chain
    SET sealed_through = NEW.sealed_through, head_hash = NEW.head_hash,
        anchor_id = NEW.anchor_id, anchor_hash = NEW.anchor_hash,
        key_id = NEW.key_id, state_mac = NEW.state_mac
    WHERE id = 1;
END;
