-- Structured log entries from every component, sealed into a SHA-256 hash chain (see shared/src/log.rs).
CREATE TABLE log_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    level       TEXT    NOT NULL,
    component   TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    request_id  TEXT,
    user_id     TEXT,
    method      TEXT,
    route       TEXT,
    status      INTEGER,
    duration_us INTEGER,
    fields      TEXT    NOT NULL,
    -- NULL until the entry is sealed into the chain.
    hash        TEXT
);

-- Every filter of GET /logs walks one of these newest-first (id is the keyset cursor).
CREATE INDEX log_entries_component  ON log_entries (component, id);
CREATE INDEX log_entries_level      ON log_entries (level, id);
CREATE INDEX log_entries_event      ON log_entries (event, id);
CREATE INDEX log_entries_user       ON log_entries (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX log_entries_request    ON log_entries (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX log_entries_status     ON log_entries (status, id) WHERE status IS NOT NULL;
CREATE INDEX log_entries_at         ON log_entries (at_ms);

-- The chain's state: how far it is sealed, and where it restarts after retention pruning.
CREATE TABLE log_chain (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    sealed_through INTEGER NOT NULL,
    head_hash      TEXT    NOT NULL,
    anchor_id      INTEGER NOT NULL,
    anchor_hash    TEXT    NOT NULL
);
INSERT INTO log_chain (id, sealed_through, head_hash, anchor_id, anchor_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000');
