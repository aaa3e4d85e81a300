//! Seeds a state directory for the large-data benchmarks: the app's own migrations (from
//! `shared`), a benchmark user, catalog items (with their FTS rows, through the schema's
//! triggers, and their outbox events), property listings, and log entries sealed into a valid
//! hash chain (with `shared`'s chain function). It writes the SQLite file directly, before the
//! app starts, because a million log entries through HTTP would take an hour.
//!
//! The data is synthetic and deterministic (a fixed seed): pseudo-words with a Zipf-like
//! frequency for text, prices and stocks in plausible ranges, and property listings made by
//! varying the real Ames houses of `models/reference-search.json` within the model's ranges.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};
use shared::domain::catalog::{Item, PriceView};
use shared::domain::logs::{ChainKey, ChainState, GENESIS_HASH};
use shared::platform::log::Entry;

/// SplitMix64: small, fast, deterministic.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A version-4-shaped UUID from this sequence, so that two seedings hold the same ids.
    pub fn uuid(&mut self) -> String {
        let bytes: Vec<u8> = [self.next(), self.next()]
            .iter()
            .flat_map(|half| half.to_be_bytes())
            .collect();
        uuid::Builder::from_random_bytes(bytes.try_into().expect("16 bytes"))
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index in 0..n, small ones much more likely (roughly Zipf with exponent 1).
    pub fn zipf(&mut self, n: usize) -> usize {
        let x = (n as f64 + 1.0).powf(self.unit());
        (x as usize).saturating_sub(1).min(n - 1)
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "ni", "ra", "shi", "mon", "ta", "li", "ber",
    "no", "gra", "fe", "qui", "zan", "pe", "sol", "ar", "vin", "cu", "el", "ma", "tor", "is", "ud",
];

/// `count` distinct pseudo-words, deterministic.
pub fn vocabulary(count: usize) -> Vec<String> {
    let mut random = Random::new(7);
    let mut words = std::collections::BTreeSet::new();
    while words.len() < count {
        let syllables = 2 + random.below(3) as usize;
        let word: String = (0..syllables)
            .map(|_| SYLLABLES[random.below(SYLLABLES.len() as u64) as usize])
            .collect();
        words.insert(word);
    }
    let mut words: Vec<String> = words.into_iter().collect();
    // A fixed shuffle, so frequency rank does not follow alphabetical order.
    for i in (1..words.len()).rev() {
        words.swap(i, random.below(i as u64 + 1) as usize);
    }
    words
}

pub const CATEGORIES: &[&str] = &[
    "book", "toy", "garden", "kitchen", "music", "clothing", "tool", "game",
];
pub const SEED_OWNER: &str = "bench-seller";

fn apply_migrations(connection: &Connection) -> Result<()> {
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    anyhow::ensure!(version == 0, "the state directory is not empty");
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL,
             checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    for migration in shared::platform::migrations::MIGRATIONS {
        for statement in shared::platform::sql::split_statements(migration.sql) {
            connection
                .execute_batch(statement)
                .with_context(|| format!("migration {}", migration.name))?;
        }
        connection.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
            params![
                migration.version,
                migration.name,
                shared::platform::crypto::hex_sha256(migration.sql.as_bytes()),
                shared::platform::time::now_rfc3339()
            ],
        )?;
        connection.execute_batch(&format!("PRAGMA user_version = {}", migration.version))?;
    }
    Ok(())
}

/// Creates an account with `role` (password `password`) and returns its id.
fn create_user(
    connection: &Connection,
    username: &str,
    role: &str,
    password: &str,
) -> Result<String> {
    let id = shared::platform::ids::random_uuid();
    let hash = shared::domain::accounts::hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = shared::platform::time::now_rfc3339();
    connection.execute(
        "INSERT INTO users (id, username, username_key, password_hash, role, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![id, username, username, hash, role, now, now],
    )?;
    Ok(id)
}

fn insert_item(connection: &Connection, owner_id: &str, item: &Item) -> Result<()> {
    connection.execute(
        "INSERT INTO catalog_items (id, title, description, category, price_amount, price_currency,
                                    stock, attributes, owner_id, owner_name, created_at, updated_at, version)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        params![
            item.id,
            item.title,
            item.description,
            item.category,
            item.price.amount,
            item.price.currency,
            item.stock,
            Value::Object(item.attributes.clone()).to_string(),
            owner_id,
            item.owner,
            item.created_at,
            item.updated_at,
        ],
    )?;
    connection.execute(
        "INSERT INTO catalog_events (type, item_id, item_version, at, actor_id, data)
         VALUES ('item.created', ?, 1, ?, ?, ?)",
        params![
            item.id,
            item.created_at,
            owner_id,
            json!({ "item": item }).to_string()
        ],
    )?;
    Ok(())
}

fn sentence(random: &mut Random, words: &[String], count: usize) -> String {
    (0..count)
        .map(|_| words[random.zipf(words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What was seeded, for the scenarios that use it.
#[derive(Debug, Default)]
pub struct Seeded {
    pub item_ids: Vec<String>,
    pub listing_ids: Vec<String>,
}

/// Seeds `state_dir` (which must not hold a database yet).
pub fn seed(
    state_dir: &Path,
    password: &str,
    items: usize,
    listings: usize,
    log_entries: usize,
) -> Result<Seeded> {
    std::fs::create_dir_all(state_dir)?;
    let mut connection = Connection::open(state_dir.join("sqlite_db.db"))?;
    apply_migrations(&connection)?;
    let owner_id = create_user(&connection, SEED_OWNER, "user", password)?;
    create_user(&connection, crate::BENCH_ADMIN, "admin", password)?;
    let mut random = Random::new(42);
    let words = vocabulary(5_000);
    let mut seeded = Seeded::default();
    let now = shared::platform::time::now_rfc3339();

    let transaction = connection.transaction()?;
    for _ in 0..items {
        let title_words = 3 + random.below(4) as usize;
        let description_words = 20 + random.below(40) as usize;
        let mut attributes = Map::new();
        attributes.insert(
            "color".into(),
            json!(["red", "blue", "green", "black", "white"][random.below(5) as usize]),
        );
        attributes.insert("weight_grams".into(), json!(50 + random.below(5_000)));
        let item = Item {
            id: random.uuid(),
            title: sentence(&mut random, &words, title_words),
            description: sentence(&mut random, &words, description_words),
            category: CATEGORIES[random.below(CATEGORIES.len() as u64) as usize].to_owned(),
            price: PriceView {
                amount: 100 + random.below(50_000) as i64,
                currency: ["EUR", "USD", "GBP"][random.below(3) as usize].to_owned(),
            },
            stock: random.below(100) as i64,
            attributes,
            owner: SEED_OWNER.to_owned(),
            created_at: now.clone(),
            updated_at: now.clone(),
            version: 1,
        };
        insert_item(&transaction, &owner_id, &item)?;
        seeded.item_ids.push(item.id);
    }
    transaction.commit()?;

    if listings > 0 {
        let templates = property_templates()?;
        let transaction = connection.transaction()?;
        for n in 0..listings {
            let template = &templates[n % templates.len()];
            let property = vary_property(&mut random, template);
            let item = Item {
                id: random.uuid(),
                title: format!(
                    "{} home, {}",
                    property["neighborhood"]
                        .as_str()
                        .unwrap_or("Ames")
                        .replace('_', " "),
                    sentence(&mut random, &words, 3)
                ),
                description: sentence(&mut random, &words, 25),
                category: "property".to_owned(),
                price: PriceView {
                    amount: 5_000_000 + random.below(40_000_000) as i64,
                    currency: "USD".to_owned(),
                },
                stock: 1,
                attributes: property.as_object().cloned().unwrap_or_default(),
                owner: SEED_OWNER.to_owned(),
                created_at: now.clone(),
                updated_at: now.clone(),
                version: 1,
            };
            insert_item(&transaction, &owner_id, &item)?;
            seeded.listing_ids.push(item.id);
        }
        transaction.commit()?;
    }

    if log_entries > 0 {
        seed_logs(&mut connection, &mut random, log_entries)?;
    }
    connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(seeded)
}

/// The real Ames houses the model's reference files carry, as property objects.
fn property_templates() -> Result<Vec<Value>> {
    let path = e2e::workspace_root().join("models/reference-search.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let reference: Value = serde_json::from_str(&text)?;
    let listings = reference["listings"]
        .as_array()
        .context("reference-search.json has listings")?
        .clone();
    anyhow::ensure!(!listings.is_empty(), "no listings to vary");
    Ok(listings)
}

/// A template house with its numeric features moved by up to ±10 % (whole numbers stay
/// whole), so listings are realistic but distinct.
fn vary_property(random: &mut Random, template: &Value) -> Value {
    let mut property = template.clone();
    if let Some(object) = property.as_object_mut() {
        for (key, value) in object.iter_mut() {
            if key.starts_with("year") {
                continue;
            }
            if let Some(number) = value.as_f64() {
                let factor = 0.9 + 0.2 * random.unit();
                *value = if value.is_i64() || value.is_u64() {
                    json!((number * factor).round() as i64)
                } else {
                    json!(number * factor)
                };
            }
        }
    }
    property
}

fn seed_logs(connection: &mut Connection, random: &mut Random, count: usize) -> Result<()> {
    const COMPONENTS: &[&str] = &[
        "authenticate",
        "login",
        "messages",
        "catalog",
        "health",
        "accounts",
        "similarity",
        "logs",
    ];
    const EVENTS: &[(&str, &str)] = &[
        ("login.failed", "warn"),
        ("login.succeeded", "info"),
        ("message.sent", "info"),
        ("catalog.item_created", "info"),
        ("user.registered", "info"),
    ];
    let users: Vec<String> = (0..500)
        .map(|_| shared::platform::ids::random_uuid())
        .collect();
    let start_ms = shared::platform::time::unix_millis() - 7 * 86_400_000;
    let step_ms = (7 * 86_400_000 / count.max(1) as i64).max(1);
    let key = ChainKey::new(crate::BENCH_LOG_KEY.as_bytes().to_vec());
    let transaction = connection.transaction()?;
    let mut previous = GENESIS_HASH.to_owned();
    {
        let mut insert = transaction.prepare(&format!(
            "INSERT INTO log_entries (id, hash, {}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            shared::platform::log::COLUMNS
        ))?;
        for n in 0..count {
            let id = n as i64 + 1;
            let at_ms = start_ms + id * step_ms;
            let at = shared::platform::time::from_unix_millis(at_ms)
                .map(shared::platform::time::format_rfc3339)
                .unwrap_or_default();
            let component = COMPONENTS[random.zipf(COMPONENTS.len())];
            let user = (random.below(3) > 0).then(|| users[random.zipf(users.len())].clone());
            let entry = if random.below(5) == 0 {
                let (event, level) = EVENTS[random.below(EVENTS.len() as u64) as usize];
                Entry {
                    at,
                    at_ms,
                    level: level.into(),
                    component: component.into(),
                    event: event.into(),
                    request_id: Some(format!("seed-{id}")),
                    user_id: user,
                    method: None,
                    route: None,
                    status: None,
                    duration_us: None,
                    fields: json!({"seeded": true}).to_string(),
                }
            } else {
                let status = [
                    200, 200, 200, 200, 201, 204, 304, 400, 401, 404, 422, 429, 500,
                ][random.below(13) as usize];
                let level = if status >= 500 {
                    "error"
                } else if status >= 400 {
                    "warn"
                } else {
                    "info"
                };
                Entry {
                    at,
                    at_ms,
                    level: level.into(),
                    component: component.into(),
                    event: "http.request".into(),
                    request_id: Some(format!("seed-{id}")),
                    user_id: user,
                    method: Some(["GET", "POST"][random.below(2) as usize].into()),
                    route: Some(format!("/{component}")),
                    status: Some(status),
                    duration_us: Some(200 + random.below(20_000) as i64),
                    fields: json!({"path": format!("/{component}")}).to_string(),
                }
            };
            let hash = key.link(&previous, id, &entry);
            let mut values = vec![
                rusqlite::types::Value::Integer(id),
                rusqlite::types::Value::Text(hash.clone()),
            ];
            values.extend(
                entry
                    .json_row()
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(sql_value),
            );
            insert.execute(rusqlite::params_from_iter(values))?;
            previous = hash;
        }
    }
    let state = ChainState {
        sealed_through: count as i64,
        head_hash: previous,
        anchor_id: 0,
        anchor_hash: GENESIS_HASH.to_owned(),
        key_id: Some(key.id.clone()),
        state_mac: None,
    };
    transaction.execute(
        "UPDATE log_chain SET sealed_through = ?, head_hash = ?, key_id = ?, state_mac = ? WHERE id = 1",
        params![state.sealed_through, state.head_hash, key.id, key.state_mac(&state)],
    )?;
    transaction.commit()?;
    Ok(())
}

/// A log column's value (see `Entry::json_row`) as rusqlite binds it.
fn sql_value(value: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Number(number) => number.as_i64().map_or_else(
            || Value::Real(number.as_f64().unwrap_or_default()),
            Value::Integer,
        ),
        serde_json::Value::String(text) => Value::Text(text.clone()),
        other => Value::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_state_is_valid_and_deterministic_in_shape() {
        let dir = tempfile::tempdir().unwrap();
        let seeded = seed(dir.path(), "benchmark password 2026", 50, 0, 300).unwrap();
        assert_eq!(seeded.item_ids.len(), 50);
        let connection = Connection::open(dir.path().join("sqlite_db.db")).unwrap();
        let events: i64 = connection
            .query_row("SELECT count(*) FROM catalog_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 50);
        let indexed: i64 = connection
            .query_row("SELECT count(*) FROM catalog_search", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexed, 50);
        let sealed: i64 = connection
            .query_row("SELECT sealed_through FROM log_chain", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sealed, 300);
        assert_eq!(vocabulary(100), vocabulary(100));
    }
}
