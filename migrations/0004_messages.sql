-- Messages between users. seq is assigned under SQLite's write lock, so it follows commit
-- order: a message committed later always sorts newer, which keeps keyset pages stable while
-- others write. id is the public, unguessable identifier.
CREATE TABLE messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    -- The two participants' user ids, sorted and joined with ':' (one key per pair).
    conversation   TEXT    NOT NULL,
    sender_id      TEXT    NOT NULL,
    sender_name    TEXT    NOT NULL,
    recipient_id   TEXT    NOT NULL,
    recipient_name TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    read_at        TEXT
);

-- A conversation page is one range scan newest-first, however long the conversation.
CREATE INDEX messages_conversation ON messages (conversation, seq);
-- "Everything to or from me" reads both of these newest-first and merges them.
CREATE INDEX messages_sender       ON messages (sender_id, seq);
CREATE INDEX messages_recipient    ON messages (recipient_id, seq);
CREATE INDEX messages_unread       ON messages (recipient_id, sender_id) WHERE read_at IS NULL;
