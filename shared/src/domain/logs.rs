//! The log's tamper evidence. Stored entries are sealed into a keyed hash chain in id order, in
//! batches (whenever an entry id crosses a multiple of [`SEAL_EVERY`], and before the logs are
//! verified), so writers never contend for the chain head:
//!
//! `hash(n) = HMAC-SHA-256(key, hash(n-1) || entry n)`
//!
//! The key is not in the database (the `log_hmac_key` variable, or a key the app generated and
//! keeps in the `audit` key-value store), so whoever can edit the database cannot recompute the
//! chain. The chain's own state (how far it is sealed, its head, where retention restarted it)
//! carries a MAC under the same key, so moving the head or the anchor is detected too.
//! Retention removes old entries from the start and records each removal as a `log.pruned`
//! entry in the chain itself.

use std::io::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::secrets::{Candidate, elected_key};
use crate::platform::config;
use crate::platform::crypto::{HmacSha256Key, constant_time_eq, hex_sha256, random_bytes};
use crate::platform::db::{Db, DbError, Param};
use crate::platform::kv::KvStore;
use crate::platform::log::{COLUMNS, Entry, Event};
use crate::web::ApiError;

/// Entries are sealed into the chain at least every this many ids.
pub const SEAL_EVERY: i64 = 256;
/// Most entries sealed by one transaction.
const SEAL_BATCH: i64 = 2_000;
/// Most entries removed by retention in one transaction.
const PRUNE_BATCH: i64 = 5_000;
/// Entries read per query while verifying.
const VERIFY_BATCH: i64 = 1_000;
/// The chain starts from this value.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Configured keys shorter than this are refused.
const MIN_KEY_BYTES: usize = 32;

/// The chain's key and its id (a digest of the key, so a change of key is recognised).
#[derive(Clone)]
pub struct ChainKey {
    pub id: String,
    mac: HmacSha256Key,
}

impl ChainKey {
    pub fn new(secret: Vec<u8>) -> Self {
        Self {
            id: hex_sha256(&secret)[..16].to_owned(),
            mac: HmacSha256Key::new(&secret),
        }
    }

    /// The link that seals entry `id` after the entry hashed `previous`: the MAC of `previous`,
    /// a newline and the JSON array of the id and the entry's columns.
    pub fn link(&self, previous: &str, id: i64, entry: &Entry) -> String {
        let canonical = (
            id,
            &entry.at,
            entry.at_ms,
            &entry.level,
            &entry.component,
            &entry.event,
            &entry.request_id,
            &entry.user_id,
            &entry.method,
            &entry.route,
            entry.status,
            entry.duration_us,
            &entry.fields,
        );
        let mut mac = self.mac.start();
        mac.write_all(previous.as_bytes())
            .and_then(|()| mac.write_all(b"\n"))
            .expect("a MAC takes any bytes");
        serde_json::to_writer(&mut mac, &canonical).expect("the columns serialise");
        mac.finish_hex()
    }

    /// The MAC of the chain's recorded state.
    pub fn state_mac(&self, state: &ChainState) -> String {
        let mut mac = self.mac.start();
        write!(
            mac,
            "log_chain\n{}\n{}\n{}\n{}",
            state.sealed_through, state.head_hash, state.anchor_id, state.anchor_hash
        )
        .expect("a MAC takes any bytes");
        mac.finish_hex()
    }
}

thread_local! {
    static KEY: std::cell::RefCell<Option<ChainKey>> = const { std::cell::RefCell::new(None) };
}

/// The chain key: the `log_hmac_key` variable, or the one the app generated.
pub async fn chain_key(db: &Db) -> Result<ChainKey, ApiError> {
    if let Some(key) = KEY.with(|key| key.borrow().clone()) {
        return Ok(key);
    }
    let configured = config::get("log_hmac_key").await?;
    let key = if configured.is_empty() {
        let make = || {
            let secret = random_bytes::<32>()
                .map_err(|error| ApiError::internal(anyhow::anyhow!("no randomness: {error}")))?;
            Ok(Candidate {
                id: ChainKey::new(secret.to_vec()).id,
                secret: secret.to_vec(),
            })
        };
        ChainKey::new(elected_key(db, KvStore::Audit, "log_chain", make).await?.1)
    } else if configured.len() < MIN_KEY_BYTES {
        return Err(ApiError::internal(anyhow::anyhow!(
            "log_hmac_key is set but shorter than {MIN_KEY_BYTES} bytes; refusing to seal with it"
        )));
    } else {
        ChainKey::new(configured.into_bytes())
    };
    KEY.with(|cached| *cached.borrow_mut() = Some(key.clone()));
    Ok(key)
}

/// The state of the chain, from `log_chain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// Entries up to this id are sealed.
    pub sealed_through: i64,
    /// The link of entry `sealed_through`.
    pub head_hash: String,
    /// Entries up to this id were removed by retention; the chain restarts from here.
    pub anchor_id: i64,
    /// The link entry `anchor_id` had, which the first remaining entry chains from.
    pub anchor_hash: String,
    /// The key the state was sealed with, and the state's MAC (none before the first seal).
    pub key_id: Option<String>,
    pub state_mac: Option<String>,
}

impl ChainState {
    /// Whether the recorded state is the one the key sealed. A state never sealed is accepted
    /// only as the state a fresh (or freshly migrated) log starts from.
    fn is_authentic(&self, key: &ChainKey) -> bool {
        match &self.state_mac {
            Some(mac) => constant_time_eq(mac.as_bytes(), key.state_mac(self).as_bytes()),
            None => self.sealed_through == self.anchor_id && self.head_hash == self.anchor_hash,
        }
    }
}

pub async fn chain_state(db: &Db) -> Result<ChainState, ApiError> {
    let rows = db
        .query(
            "SELECT sealed_through, head_hash, anchor_id, anchor_hash, key_id, state_mac
             FROM log_chain WHERE id = 1",
            [],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("log_chain has no row")))?;
    Ok(ChainState {
        sealed_through: row.get("sealed_through")?,
        head_hash: row.get("head_hash")?,
        anchor_id: row.get("anchor_id")?,
        anchor_hash: row.get("anchor_hash")?,
        key_id: row.get("key_id")?,
        state_mac: row.get("state_mac")?,
    })
}

async fn save_state(db: &Db, key: &ChainKey, state: &ChainState) -> Result<(), ApiError> {
    db.execute(
        "UPDATE log_chain SET sealed_through = ?, head_hash = ?, anchor_id = ?, anchor_hash = ?,
                              key_id = ?, state_mac = ?
         WHERE id = 1",
        [
            Param::Integer(state.sealed_through),
            Param::Text(state.head_hash.clone()),
            Param::Integer(state.anchor_id),
            Param::Text(state.anchor_hash.clone()),
            Param::Text(key.id.clone()),
            Param::Text(key.state_mac(state)),
        ],
    )
    .await?;
    Ok(())
}

/// Reads entries with id in `(after, through]`, in id order, at most `limit`, packed by SQLite
/// into one JSON value. Text columns come back exactly as stored, so links computed from them
/// match.
pub async fn read_entries(
    db: &Db,
    after: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<(i64, Entry, Option<String>)>, ApiError> {
    #[derive(serde::Deserialize)]
    struct StoredEntry {
        id: i64,
        #[serde(flatten)]
        entry: Entry,
        hash: Option<String>,
    }
    let mut fields: Vec<(&str, &str)> =
        COLUMNS.split(", ").map(|column| (column, column)).collect();
    fields.extend([("id", "id"), ("hash", "hash")]);
    let rows: Vec<StoredEntry> = db
        .query_json(
            &format!(
                "SELECT id, {COLUMNS}, hash FROM log_entries WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
            ),
            &fields,
            "id",
            [
                Param::Integer(after),
                Param::Integer(through),
                Param::Integer(limit),
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id, row.entry, row.hash))
        .collect())
}

/// The error the seal trigger (migration 0017) raises when the chain moved after its links were
/// computed.
const CHAIN_MOVED: &str = "log chain moved";

/// Seals every unsealed entry into the chain and applies retention: entries older than
/// `retention_days` are removed from the start of the chain, the anchor moves to the last one
/// removed, and a `log.pruned` entry records it. `component` names who sealed, for that entry.
///
/// Each batch is linked outside any transaction and committed by one statement that applies
/// the links only if the chain has not moved meanwhile; writers wait for that statement alone.
pub async fn seal(db: &Db, component: &str, retention_days: i64) -> Result<ChainState, ApiError> {
    let key = chain_key(db).await?;
    loop {
        let state = authentic_state(db, &key).await?;
        let batch = read_entries(db, state.sealed_through, i64::MAX, SEAL_BATCH).await?;
        let sealed = match seal_batch(db, &key, state, &batch).await {
            Err(error) if error.message.contains(CHAIN_MOVED) => continue,
            sealed => sealed?,
        };
        if batch.len() as i64 == SEAL_BATCH {
            continue;
        }
        // The `log.pruned` entry is sealed by the next round.
        if prune_due(db, retention_days).await?
            && prune(db, &key, component, retention_days).await?
        {
            continue;
        }
        return Ok(sealed);
    }
}

/// The chain's recorded state, refused if its MAC does not hold under `key`.
async fn authentic_state(db: &Db, key: &ChainKey) -> Result<ChainState, ApiError> {
    let state = chain_state(db).await?;
    if !state.is_authentic(key) {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the log chain's recorded state fails its MAC (edited, or sealed with another key); not sealing over it"
        )));
    }
    Ok(state)
}

/// Links `batch` (the entries after `state.sealed_through`, in id order) into the chain and
/// commits the links with the new state, unless the recorded state is no longer `state`.
async fn seal_batch(
    db: &Db,
    key: &ChainKey,
    state: ChainState,
    batch: &[(i64, Entry, Option<String>)],
) -> Result<ChainState, DbError> {
    let Some((last_id, _, _)) = batch.last() else {
        return Ok(state);
    };
    let mut head = state.head_hash.clone();
    let mut links = Vec::with_capacity(batch.len());
    for (id, entry, _) in batch {
        head = key.link(&head, *id, entry);
        links.push((*id, head.clone()));
    }
    let mut sealed = ChainState {
        sealed_through: *last_id,
        head_hash: head,
        ..state.clone()
    };
    let mac = key.state_mac(&sealed);
    let links = serde_json::to_string(&links).expect("ids and hex links serialise");
    db.execute(
        "INSERT INTO log_seal (expected_through, expected_head, expected_anchor, expected_mac,
                               sealed_through, head_hash, anchor_id, anchor_hash, key_id,
                               state_mac, links)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            Param::Integer(state.sealed_through),
            Param::Text(state.head_hash),
            Param::Integer(state.anchor_id),
            state.state_mac.map_or(Param::Null, Param::Text),
            Param::Integer(sealed.sealed_through),
            Param::Text(sealed.head_hash.clone()),
            Param::Integer(sealed.anchor_id),
            Param::Text(sealed.anchor_hash.clone()),
            Param::Text(key.id.clone()),
            Param::Text(mac.clone()),
            Param::Text(links),
        ],
    )
    .await?;
    sealed.key_id = Some(key.id.clone());
    sealed.state_mac = Some(mac);
    Ok(sealed)
}

/// Whether the oldest entry is past retention: one index lookup, outside any transaction, for
/// the usual answer (no).
async fn prune_due(db: &Db, retention_days: i64) -> Result<bool, ApiError> {
    let oldest = db
        .query("SELECT min(at_ms) AS oldest FROM log_entries", [])
        .await?
        .first()
        .map(|row| row.get::<Option<i64>>("oldest"))
        .transpose()?
        .flatten();
    Ok(oldest.is_some_and(|oldest| oldest < retention_cutoff(retention_days)))
}

fn retention_cutoff(retention_days: i64) -> i64 {
    crate::platform::time::unix_millis() - retention_days * 86_400_000
}

/// Applies retention in one write transaction and records it as a `log.pruned` entry; returns
/// whether anything was removed.
async fn prune(
    db: &Db,
    key: &ChainKey,
    component: &str,
    retention_days: i64,
) -> Result<bool, ApiError> {
    db.in_transaction("BEGIN IMMEDIATE", async |db: &Db| {
        let mut state = authentic_state(db, key).await?;
        let Some(pruned) = remove_expired(db, &mut state, retention_days).await? else {
            return Ok(false);
        };
        let event = Event::info("log.pruned", pruned);
        crate::platform::log::store(db, &[Entry::of_event(component, &event)]).await?;
        save_state(db, key, &state).await?;
        Ok(true)
    })
    .await
}

/// Removes the oldest sealed entries past retention, moving the anchor to the last one
/// removed; returns what the `log.pruned` entry records, if anything was removed.
async fn remove_expired(
    db: &Db,
    state: &mut ChainState,
    retention_days: i64,
) -> Result<Option<Value>, ApiError> {
    let cutoff = retention_cutoff(retention_days);
    // Entries are pruned from the oldest id on, only while they are all expired and sealed:
    // an old entry kept alive behind a newer one (clock skew) waits.
    let rows = db
        .query(
            "SELECT id, hash, at_ms FROM log_entries WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            [
                Param::Integer(state.anchor_id),
                Param::Integer(state.sealed_through),
                Param::Integer(PRUNE_BATCH),
            ],
        )
        .await?;
    let mut last: Option<(i64, String)> = None;
    let mut removed = 0;
    for row in rows.iter() {
        if row.get::<i64>("at_ms")? >= cutoff {
            break;
        }
        match row.get::<Option<String>>("hash")? {
            Some(hash) => last = Some((row.get("id")?, hash)),
            None => break,
        }
        removed += 1;
    }
    let Some((last_id, last_hash)) = last else {
        return Ok(None);
    };
    db.execute(
        "DELETE FROM log_entries WHERE id <= ?",
        [Param::Integer(last_id)],
    )
    .await?;
    state.anchor_id = last_id;
    state.anchor_hash = last_hash.clone();
    Ok(Some(json!({
        "removed_through": last_id,
        "removed": removed,
        "anchor_hash": last_hash,
        "retention_days": retention_days,
    })))
}

/// Entries stored but not sealed yet: nothing vouches for them until they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsealed {
    pub entries: i64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
}

/// What walking the chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub valid: bool,
    pub entries_checked: i64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub head_hash: String,
    pub anchor_id: i64,
    /// The first entry whose stored link does not match, with why.
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
    /// What the walk could not check.
    pub unsealed: Unsealed,
}

/// Walks the sealed chain from its anchor, in one read transaction (one snapshot), and reports
/// the first broken link and the unsealed tail.
pub async fn verify(db: &Db) -> Result<Verification, ApiError> {
    let key = chain_key(db).await?;
    db.in_transaction("BEGIN", async |db: &Db| verify_snapshot(db, &key).await)
        .await
}

async fn verify_snapshot(db: &Db, key: &ChainKey) -> Result<Verification, ApiError> {
    let state = chain_state(db).await?;
    let unsealed = unsealed_tail(db, state.sealed_through).await?;
    let mut report = Verification {
        valid: false,
        entries_checked: 0,
        first_id: None,
        last_id: None,
        head_hash: state.head_hash.clone(),
        anchor_id: state.anchor_id,
        broken_at: None,
        reason: None,
        unsealed,
    };
    if state.key_id.as_ref().is_some_and(|id| *id != key.id) {
        report.reason = Some("the chain was sealed with another key than this deployment's".into());
        return Ok(report);
    }
    if !state.is_authentic(key) {
        report.reason =
            Some("the chain's recorded state (head, anchor) was edited: it fails its MAC".into());
        return Ok(report);
    }
    let mut previous = state.anchor_hash.clone();
    let mut after = state.anchor_id;
    loop {
        let batch = read_entries(db, after, state.sealed_through, VERIFY_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for (id, entry, stored) in batch {
            report.first_id.get_or_insert(id);
            report.last_id = Some(id);
            let expected = key.link(&previous, id, &entry);
            let reason = match stored {
                Some(stored) if constant_time_eq(stored.as_bytes(), expected.as_bytes()) => None,
                Some(_) => Some(
                    "the entry's stored link does not match its content and the entry before it: this entry was edited, or the one before it was edited or removed",
                ),
                None => Some("the entry is inside the sealed range but has no link"),
            };
            if let Some(reason) = reason {
                report.broken_at = Some(id);
                report.reason = Some(reason.into());
                return Ok(report);
            }
            previous = expected;
            after = id;
            report.entries_checked += 1;
        }
    }
    if after != state.sealed_through || previous != state.head_hash {
        report.broken_at = Some(after);
        report.reason = Some(
            "the chain ends before its recorded head: entries at the end were removed or edited"
                .into(),
        );
        return Ok(report);
    }
    report.valid = true;
    Ok(report)
}

async fn unsealed_tail(db: &Db, sealed_through: i64) -> Result<Unsealed, ApiError> {
    let rows = db
        .query(
            "SELECT count(*) AS n, min(id) AS first_id, max(id) AS last_id
             FROM log_entries WHERE id > ?",
            [Param::Integer(sealed_through)],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("count returned no row")))?;
    Ok(Unsealed {
        entries: row.get("n")?,
        first_id: row.get("first_id")?,
        last_id: row.get("last_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            at: "2026-11-23T10:00:00.000Z".into(),
            at_ms: 1,
            level: "info".into(),
            component: "login".into(),
            event: "http.request".into(),
            request_id: Some("r1".into()),
            user_id: None,
            method: Some("POST".into()),
            route: Some("/auth/login".into()),
            status: Some(200),
            duration_us: Some(10),
            fields: "{}".into(),
        }
    }

    #[test]
    fn every_column_the_previous_link_and_the_key_feed_the_chain() {
        let key = ChainKey::new(vec![7; 32]);
        let base = key.link(GENESIS_HASH, 1, &entry());
        assert_eq!(base.len(), 64);
        assert_ne!(key.link(GENESIS_HASH, 2, &entry()), base);
        assert_ne!(key.link(&base, 1, &entry()), base);
        let mut edited = entry();
        edited.status = Some(500);
        assert_ne!(key.link(GENESIS_HASH, 1, &edited), base);
        let mut edited = entry();
        edited.fields = "{\"a\":1}".into();
        assert_ne!(key.link(GENESIS_HASH, 1, &edited), base);
        assert_ne!(
            ChainKey::new(vec![8; 32]).link(GENESIS_HASH, 1, &entry()),
            base
        );
        assert_eq!(key.link(GENESIS_HASH, 1, &entry()), base);
    }

    /// Links and state MACs as every earlier version computed them: chains already stored must
    /// keep verifying.
    #[test]
    fn links_and_state_macs_are_the_ones_earlier_versions_stored() {
        use crate::platform::crypto::hex_hmac_sha256;
        let secret = b"a key of at least thirty-two bytes!!".to_vec();
        let key = ChainKey::new(secret.clone());
        let mut unusual = entry();
        unusual.user_id = Some("ünïcode \"quoted\" \\ tab\t newline\n \u{1}".into());
        unusual.request_id = None;
        unusual.status = None;
        unusual.fields = "{\"path\":\"/a?b=\\\"c\\\"\"}".into();
        for (id, entry) in [(1, entry()), (i64::MAX, unusual)] {
            let canonical = json!([
                id,
                entry.at,
                entry.at_ms,
                entry.level,
                entry.component,
                entry.event,
                entry.request_id,
                entry.user_id,
                entry.method,
                entry.route,
                entry.status,
                entry.duration_us,
                entry.fields,
            ]);
            let earlier =
                hex_hmac_sha256(&secret, format!("{GENESIS_HASH}\n{canonical}").as_bytes());
            assert_eq!(key.link(GENESIS_HASH, id, &entry), earlier);
        }
        let state = ChainState {
            sealed_through: 12,
            head_hash: "ab".repeat(32),
            anchor_id: 3,
            anchor_hash: GENESIS_HASH.into(),
            key_id: None,
            state_mac: None,
        };
        let text = format!("log_chain\n12\n{}\n3\n{GENESIS_HASH}", "ab".repeat(32));
        assert_eq!(
            key.state_mac(&state),
            hex_hmac_sha256(&secret, text.as_bytes())
        );
    }

    #[test]
    fn the_recorded_state_must_carry_its_mac() {
        let key = ChainKey::new(vec![7; 32]);
        let mut state = ChainState {
            sealed_through: 0,
            head_hash: GENESIS_HASH.into(),
            anchor_id: 0,
            anchor_hash: GENESIS_HASH.into(),
            key_id: None,
            state_mac: None,
        };
        assert!(state.is_authentic(&key), "a fresh chain");
        state.sealed_through = 10;
        assert!(!state.is_authentic(&key), "moved without a MAC");
        state.state_mac = Some(key.state_mac(&state));
        assert!(state.is_authentic(&key));
        state.anchor_id = 5;
        assert!(!state.is_authentic(&key), "anchor moved after sealing");
    }
}
