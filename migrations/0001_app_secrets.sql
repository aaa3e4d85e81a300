-- Secrets the app generates for itself when the operator provides none (the JWT signing key).
-- A row is written once with INSERT OR IGNORE, so concurrent first requests agree on one value.
CREATE TABLE app_secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at TEXT NOT NULL
);
