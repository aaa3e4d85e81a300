-- Accounts. username_key is the case-folded username: it makes "Ada" and "ada" one account.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Index of the sessions stored in key-value (session:<jti>), so a user's sessions can be
-- found and ended (role change, account deletion, log out everywhere) and expired ones swept.
CREATE TABLE sessions (
    jti        TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Failed-login counters, per username and per client address, in fixed windows. They live in
-- SQLite, not key-value: an upsert ... RETURNING counts concurrent attempts exactly, where a
-- key-value get-then-set would lose increments under a parallel guessing attack.
CREATE TABLE login_throttle (
    scope        TEXT    NOT NULL CHECK (scope IN ('user', 'client')),
    subject      TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX login_throttle_window ON login_throttle (window_start);
