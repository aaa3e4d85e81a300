//! The catalog: items with exact prices, optimistic concurrency (versions as ETags), full-text
//! search, and an outbox of change events written in the same transaction as each change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::db::{Db, Param, Row};
use crate::error::ApiError;

// ---------------------------------------------------------------------------------------------
// Values and their rules

/// 1 to 200 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(value: &Value) -> Result<Self, String> {
        let text = crate::http::as_str(value)?;
        if text.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Self(
            crate::http::at_most_chars(text, Self::MAX_CHARS)?.to_owned(),
        ))
    }
}

/// Up to 5,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 5_000;

    pub fn parse(value: &Value) -> Result<Self, String> {
        let text = crate::http::as_str(value)?;
        Ok(Self(
            crate::http::at_most_chars(text, Self::MAX_CHARS)?.to_owned(),
        ))
    }
}

/// A lower-case slug of 1 to 50 characters: `book`, `property`, `pet-food`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category(String);

impl Category {
    pub fn parse_str(text: &str) -> Result<Self, String> {
        let valid = (1..=50).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-')
            && !text.ends_with('-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be 1 to 50 lower-case letters, digits and inner hyphens".into())
        }
    }

    pub fn parse(value: &Value) -> Result<Self, String> {
        Self::parse_str(crate::http::as_str(value)?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

static CURRENCIES: &str = include_str!("../data/currencies.txt");

/// An ISO 4217 currency code with its number of minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    pub minor_digits: u32,
}

impl Currency {
    pub fn parse_str(code: &str) -> Result<Self, String> {
        CURRENCIES
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ' ');
                let known = parts.next()?;
                let digits = parts.next()?.parse().ok()?;
                (known == code).then_some(Currency {
                    code: known,
                    minor_digits: digits,
                })
            })
            .ok_or_else(|| "must be an ISO 4217 currency code such as EUR or USD".to_owned())
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// An exact price: an integer amount of minor units (cents, pence; yen have none) and a
/// currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub amount: i64,
    pub currency: Currency,
}

impl Price {
    /// Ten trillion minor units: beyond any catalog price, well within i64 and JSON numbers.
    pub const MAX_AMOUNT: i64 = 10_000_000_000_000;

    pub fn parse(value: &Value) -> Result<Self, String> {
        let object = value
            .as_object()
            .ok_or("must be an object like {\"amount\": 1299, \"currency\": \"EUR\"}")?;
        if let Some(extra) = object.keys().find(|k| *k != "amount" && *k != "currency") {
            return Err(format!("has an unknown field {extra:?}"));
        }
        let amount = match object.get("amount") {
            Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
            Some(Value::Number(n)) if n.is_u64() => i64::MAX,
            Some(Value::Number(_)) => {
                return Err("amount must be a whole number of minor units (1299 for 12.99)".into());
            }
            Some(_) => return Err("amount must be a number of minor units".into()),
            None => return Err("amount is required".into()),
        };
        if amount < 0 {
            return Err("amount must not be negative".into());
        }
        if amount > Self::MAX_AMOUNT {
            return Err(format!("amount must be at most {}", Self::MAX_AMOUNT));
        }
        let currency = match object.get("currency") {
            Some(Value::String(code)) => {
                Currency::parse_str(code).map_err(|e| format!("currency {e}"))?
            }
            Some(_) => return Err("currency must be a string".into()),
            None => return Err("currency is required".into()),
        };
        Ok(Self { amount, currency })
    }

    /// The amount in major units as a decimal string (`12.99`), for display.
    pub fn formatted(&self) -> String {
        let digits = self.currency.minor_digits;
        if digits == 0 {
            return self.amount.to_string();
        }
        let scale = 10_i64.pow(digits);
        format!(
            "{}.{:0width$}",
            self.amount / scale,
            self.amount % scale,
            width = digits as usize
        )
    }
}

/// A whole number of units in stock, 0 to a billion.
pub fn parse_stock(value: &Value) -> Result<i64, String> {
    match value.as_i64() {
        Some(n) if n < 0 => Err("must not be negative".into()),
        Some(n) if n > 1_000_000_000 => Err("must be at most 1000000000".into()),
        Some(n) => Ok(n),
        None => Err("must be a whole number".into()),
    }
}

/// Attribute keys are filterable (`attr.<key>=`), so they are plain names.
pub fn is_attribute_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// A JSON object of at most 64 plainly named keys and 16 KiB.
pub fn parse_attributes(value: &Value) -> Result<Map<String, Value>, String> {
    let object = value
        .as_object()
        .ok_or("must be a JSON object, e.g. {\"author\": \"Ursula K. Le Guin\"}")?;
    check_attributes(object)?;
    Ok(object.clone())
}

fn check_attributes(object: &Map<String, Value>) -> Result<(), String> {
    if object.len() > MAX_ATTRIBUTES {
        return Err(format!("must have at most {MAX_ATTRIBUTES} keys"));
    }
    if let Some(bad) = object.keys().find(|key| !is_attribute_key(key)) {
        return Err(format!(
            "key {bad:?} must be 1 to 64 letters, digits, '_' or '-'"
        ));
    }
    if serde_json::to_vec(object).map_or(0, |bytes| bytes.len()) > MAX_ATTRIBUTES_BYTES {
        return Err(format!(
            "must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"
        ));
    }
    Ok(())
}

/// RFC 7396 merge patch of `patch` into `target` (null removes a key).
fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let entry = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                let mut merged = entry.as_object().cloned().unwrap_or_default();
                merge_patch(&mut merged, inner);
                *entry = Value::Object(merged);
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Items

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PriceView {
    pub amount: i64,
    pub currency: String,
}

/// An item as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub id: String,
    pub title: String,
    pub description: String,
    pub category: String,
    pub price: PriceView,
    pub stock: i64,
    pub attributes: Map<String, Value>,
    pub owner: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

impl Item {
    /// The strong ETag of this version of the item.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// A new item, validated.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub title: Title,
    pub description: Description,
    pub category: Category,
    pub price: Price,
    pub stock: i64,
    pub attributes: Map<String, Value>,
}

/// Changes to an item; absent fields stay as they are; attributes merge (RFC 7396).
#[derive(Debug, Clone, Default)]
pub struct ItemPatch {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub category: Option<Category>,
    pub price: Option<Price>,
    pub stock: Option<i64>,
    pub attributes: Option<Map<String, Value>>,
}

/// The columns of an item row, for [`item_from_row`].
const ITEM_COLUMNS: &str = "seq, id, title, description, category, price_amount, price_currency, \
     stock, attributes, owner_id, owner_name, created_at, updated_at, version";

/// The same columns packed as an API item by SQLite (see [`Db::query_json`]).
pub const ITEM_JSON_FIELDS: &[(&str, &str)] = &[
    ("id", "id"),
    ("title", "title"),
    ("description", "description"),
    ("category", "category"),
    (
        "price",
        "json_object('amount', price_amount, 'currency', price_currency)",
    ),
    ("stock", "stock"),
    ("attributes", "json(attributes)"),
    ("owner", "owner_name"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("version", "version"),
];

/// An item as stored, with what the API does not show.
#[derive(Debug, Clone)]
pub struct StoredItem {
    pub item: Item,
    pub seq: i64,
    pub owner_id: String,
}

fn item_from_row(row: Row<'_>) -> anyhow::Result<StoredItem> {
    let attributes: String = row.get("attributes")?;
    Ok(StoredItem {
        item: Item {
            id: row.get("id")?,
            title: row.get("title")?,
            description: row.get("description")?,
            category: row.get("category")?,
            price: PriceView {
                amount: row.get("price_amount")?,
                currency: row.get("price_currency")?,
            },
            stock: row.get("stock")?,
            attributes: serde_json::from_str(&attributes)?,
            owner: row.get("owner_name")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            version: row.get("version")?,
        },
        seq: row.get("seq")?,
        owner_id: row.get("owner_id")?,
    })
}

pub async fn find(db: &Db, id: &str) -> Result<Option<StoredItem>, ApiError> {
    let rows = db
        .query(
            &format!("SELECT {ITEM_COLUMNS} FROM catalog_items WHERE id = ?"),
            [Param::Text(id.to_owned())],
        )
        .await?;
    Ok(rows.first().map(item_from_row).transpose()?)
}

/// Who is changing the catalog.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
}

impl Actor {
    fn may_change(&self, item: &StoredItem) -> bool {
        self.is_admin || item.owner_id == self.id
    }
}

async fn append_event(
    db: &Db,
    kind: &str,
    item: &Item,
    actor: &Actor,
    data: Value,
) -> Result<(), ApiError> {
    db.execute(
        "INSERT INTO catalog_events (type, item_id, item_version, at, actor_id, data)
         VALUES (?, ?, ?, ?, ?, ?)",
        [
            Param::Text(kind.to_owned()),
            Param::Text(item.id.clone()),
            Param::Integer(item.version),
            Param::Text(crate::time::now_rfc3339()),
            Param::Text(actor.id.clone()),
            Param::Text(data.to_string()),
        ],
    )
    .await?;
    Ok(())
}

pub async fn create(actor: &Actor, new: NewItem) -> Result<Item, ApiError> {
    let now = crate::time::now_rfc3339();
    let item = Item {
        id: crate::ids::random_uuid(),
        title: new.title.0,
        description: new.description.0,
        category: new.category.0,
        price: PriceView {
            amount: new.price.amount,
            currency: new.price.currency.code().to_owned(),
        },
        stock: new.stock,
        attributes: new.attributes,
        owner: actor.username.clone(),
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
    Db::transaction(async |db: &Db| -> Result<(), ApiError> {
        db.execute(
            "INSERT INTO catalog_items (id, title, description, category, price_amount, price_currency,
                                        stock, attributes, owner_id, owner_name, created_at, updated_at, version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            [
                Param::Text(item.id.clone()),
                Param::Text(item.title.clone()),
                Param::Text(item.description.clone()),
                Param::Text(item.category.clone()),
                Param::Integer(item.price.amount),
                Param::Text(item.price.currency.clone()),
                Param::Integer(item.stock),
                Param::Text(Value::Object(item.attributes.clone()).to_string()),
                Param::Text(actor.id.clone()),
                Param::Text(actor.username.clone()),
                Param::Text(item.created_at.clone()),
                Param::Text(item.updated_at.clone()),
            ],
        )
        .await?;
        append_event(db, "item.created", &item, actor, json!({ "item": item })).await
    })
    .await?;
    Ok(item)
}

/// The versions listed in an `If-Match` header, or `Any` for `*`. `None` if unparseable.
pub fn parse_if_match(header: &str) -> Option<Vec<i64>> {
    if header.trim() == "*" {
        return Some(Vec::new());
    }
    header
        .split(',')
        .map(|tag| {
            let tag = tag.trim();
            // Strong comparison: weak tags never match (RFC 9110 section 13.1.1).
            tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
        })
        .collect()
}

/// Whether `If-None-Match` names the item's current version (weak comparison, or `*`).
pub fn if_none_match_hits(header: &str, item: &Item) -> bool {
    header.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.trim_start_matches("W/") == item.etag()
    })
}

/// Reads the item inside a write transaction and checks that `actor` may `action` it and that
/// it is still at one of `expected` (empty: any version).
async fn load_for_change(
    db: &Db,
    actor: &Actor,
    id: &str,
    expected: &[i64],
    action: &str,
) -> Result<StoredItem, ApiError> {
    let current = find(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such item"))?;
    if !actor.may_change(&current) {
        return Err(ApiError::Forbidden(format!(
            "only the item's owner or an administrator can {action} it"
        )));
    }
    if !expected.is_empty() && !expected.contains(&current.item.version) {
        return Err(ApiError::PreconditionFailed(format!(
            "the item is at version {}, not the one in If-Match",
            current.item.version
        )));
    }
    Ok(current)
}

/// Applies `patch` if the item is still at one of `expected` (empty: any version) and the
/// actor may change it; writes the change and its events in one transaction.
pub async fn update(
    actor: &Actor,
    id: &str,
    expected: &[i64],
    patch: ItemPatch,
) -> Result<Item, ApiError> {
    Db::transaction(async |db: &Db| -> Result<Item, ApiError> {
        let current = load_for_change(db, actor, id, expected, "change").await?;
        let before = current.item.clone();
        let mut item = current.item;
        let mut changed = Vec::new();
        if let Some(title) = patch.title {
            changed.push("title");
            item.title = title.0;
        }
        if let Some(description) = patch.description {
            changed.push("description");
            item.description = description.0;
        }
        if let Some(category) = patch.category {
            changed.push("category");
            item.category = category.0;
        }
        if let Some(price) = patch.price {
            changed.push("price");
            item.price = PriceView {
                amount: price.amount,
                currency: price.currency.code().to_owned(),
            };
        }
        if let Some(stock) = patch.stock {
            changed.push("stock");
            item.stock = stock;
        }
        if let Some(attributes) = patch.attributes {
            changed.push("attributes");
            merge_patch(&mut item.attributes, &attributes);
            check_attributes(&item.attributes).map_err(|detail| {
                ApiError::validation("attributes", format!("after merging, {detail}"))
            })?;
        }
        item.version += 1;
        item.updated_at = crate::time::now_rfc3339();
        db.execute(
            "UPDATE catalog_items SET title = ?, description = ?, category = ?, price_amount = ?,
                    price_currency = ?, stock = ?, attributes = ?, updated_at = ?, version = ?
             WHERE id = ?",
            [
                Param::Text(item.title.clone()),
                Param::Text(item.description.clone()),
                Param::Text(item.category.clone()),
                Param::Integer(item.price.amount),
                Param::Text(item.price.currency.clone()),
                Param::Integer(item.stock),
                Param::Text(Value::Object(item.attributes.clone()).to_string()),
                Param::Text(item.updated_at.clone()),
                Param::Integer(item.version),
                Param::Text(item.id.clone()),
            ],
        )
        .await?;
        append_event(
            db,
            "item.updated",
            &item,
            actor,
            json!({ "item": item, "changed": changed }),
        )
        .await?;
        if before.stock != item.stock {
            append_event(
                db,
                "item.stock_changed",
                &item,
                actor,
                json!({ "from": before.stock, "to": item.stock }),
            )
            .await?;
        }
        Ok(item)
    })
    .await
}

/// Adds `delta` (possibly negative) to the stock, atomically; 409 if that would go below zero.
pub async fn adjust_stock(actor: &Actor, id: &str, delta: i64) -> Result<Item, ApiError> {
    Db::transaction(async |db: &Db| -> Result<Item, ApiError> {
        let current = load_for_change(db, actor, id, &[], "change the stock of").await?;
        let mut item = current.item;
        let stock = item
            .stock
            .checked_add(delta)
            .filter(|s| (0..=1_000_000_000).contains(s))
            .ok_or_else(|| {
                ApiError::Conflict(format!(
                    "the stock is {} and cannot change by {delta}",
                    item.stock
                ))
            })?;
        let from = item.stock;
        item.stock = stock;
        item.version += 1;
        item.updated_at = crate::time::now_rfc3339();
        db.execute(
            "UPDATE catalog_items SET stock = ?, version = ?, updated_at = ? WHERE id = ?",
            [
                Param::Integer(item.stock),
                Param::Integer(item.version),
                Param::Text(item.updated_at.clone()),
                Param::Text(item.id.clone()),
            ],
        )
        .await?;
        append_event(
            db,
            "item.stock_changed",
            &item,
            actor,
            json!({ "from": from, "to": stock, "delta": delta }),
        )
        .await?;
        Ok(item)
    })
    .await
}

/// Deletes the item if it is still at one of `expected` (empty: any) and the actor may.
pub async fn delete(actor: &Actor, id: &str, expected: &[i64]) -> Result<Item, ApiError> {
    Db::transaction(async |db: &Db| -> Result<Item, ApiError> {
        let current = load_for_change(db, actor, id, expected, "delete").await?;
        db.execute(
            "DELETE FROM catalog_items WHERE id = ?",
            [Param::Text(id.to_owned())],
        )
        .await?;
        let item = current.item;
        append_event(db, "item.deleted", &item, actor, json!({ "item": item })).await?;
        Ok(item)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Search

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Relevance,
    PriceAscending,
    PriceDescending,
    Newest,
}

impl Sort {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "relevance" => Ok(Sort::Relevance),
            "price" => Ok(Sort::PriceAscending),
            "-price" => Ok(Sort::PriceDescending),
            "newest" => Ok(Sort::Newest),
            _ => Err("must be relevance, price, -price or newest".into()),
        }
    }
}

/// A text query for FTS5: the words of `text`, each quoted, all required.
pub fn fts_query(text: &str) -> Result<String, String> {
    let words: Vec<String> = crate::http::at_most_chars(text, 200)?
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| format!("\"{word}\""))
        .collect();
    if words.is_empty() {
        return Err("must contain at least one word".into());
    }
    if words.len() > 16 {
        return Err("must have at most 16 words".into());
    }
    Ok(words.join(" "))
}

/// Equality on a top-level attribute: a number, a boolean or text, as written in the query.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeFilter {
    pub key: String,
    pub value: Value,
}

impl AttributeFilter {
    pub fn parse(key: &str, raw: &str) -> Result<Self, String> {
        if !is_attribute_key(key) {
            return Err("the attribute name must be 1 to 64 letters, digits, '_' or '-'".into());
        }
        let value = match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => match raw.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => match raw.parse::<f64>() {
                    Ok(f) if f.is_finite() => json!(f),
                    _ => Value::String(raw.to_owned()),
                },
            },
        };
        Ok(Self {
            key: key.to_owned(),
            value,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub category: Option<Category>,
    pub currency: Option<Currency>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub owner: Option<String>,
    pub attributes: Vec<AttributeFilter>,
    pub sort: Option<Sort>,
    pub limit: i64,
    pub after: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct SearchPage {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(flatten)]
    item: Item,
    #[serde(rename = "_seq")]
    seq: i64,
    #[serde(rename = "_rank", default)]
    rank: Option<i64>,
}

/// Relevance as an exact integer (FTS5's bm25 rank, lower is better, in millionths), so a
/// cursor can hold it without floating-point drift.
const RANK: &str = "CAST(round(s.rank * 1000000) AS INTEGER)";

/// Finds items, sorted and paged by keyset: a page continues strictly after the last item of
/// the previous one in the sort order (sort key, then seq), so an item whose sort key does not
/// change while a client pages is returned exactly once.
pub async fn search(db: &Db, query: SearchQuery) -> Result<SearchPage, ApiError> {
    let sort = query.sort.unwrap_or(if query.text.is_some() {
        Sort::Relevance
    } else {
        Sort::Newest
    });
    if sort == Sort::Relevance && query.text.is_none() {
        return Err(ApiError::BadRequest {
            detail: "sort=relevance needs a text query q".into(),
            errors: vec![crate::FieldError::query("sort", "relevance needs q")],
        });
    }
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    // Binds a value and returns its numbered placeholder (usable more than once).
    let mut bind = |value: Param| {
        params.push(value);
        format!("?{}", params.len())
    };
    let (from, rank) = match &query.text {
        Some(text) => {
            // The words in title or description; within a category, FTS5 narrows to it too
            // (the exact category test below still decides).
            let mut expression = format!("{{title description}} : ({text})");
            if let Some(category) = &query.category {
                expression.push_str(&format!(" AND category : \"{}\"", category.as_str()));
            }
            conditions.push(format!(
                "catalog_search MATCH {}",
                bind(Param::Text(expression))
            ));
            (
                "catalog_search s JOIN catalog_items i ON i.seq = s.rowid",
                RANK,
            )
        }
        None => ("catalog_items i", "NULL"),
    };
    if let Some(category) = &query.category {
        conditions.push(format!(
            "i.category = {}",
            bind(Param::Text(category.as_str().to_owned()))
        ));
    }
    if let Some(currency) = &query.currency {
        conditions.push(format!(
            "i.price_currency = {}",
            bind(Param::Text(currency.code().to_owned()))
        ));
    }
    if let Some(min) = query.min_price {
        conditions.push(format!("i.price_amount >= {}", bind(Param::Integer(min))));
    }
    if let Some(max) = query.max_price {
        conditions.push(format!("i.price_amount <= {}", bind(Param::Integer(max))));
    }
    if let Some(owner) = &query.owner {
        let owner = bind(Param::Text(crate::accounts::username_key(owner)));
        conditions.push(format!(
            "i.owner_id = (SELECT id FROM users WHERE username_key = {owner})"
        ));
    }
    for filter in &query.attributes {
        let path = bind(Param::Text(format!("$.\"{}\"", filter.key)));
        let value = bind(match &filter.value {
            Value::Bool(b) => Param::Integer(i64::from(*b)),
            Value::Number(n) if n.is_i64() => Param::Integer(n.as_i64().unwrap_or_default()),
            Value::Number(n) => Param::Real(n.as_f64().unwrap_or_default()),
            Value::String(s) => Param::Text(s.clone()),
            other => Param::Text(other.to_string()),
        });
        conditions.push(format!("json_extract(i.attributes, {path}) = {value}"));
    }

    // Keyset: continue strictly after the last item's (sort key, seq).
    let invalid_cursor = || ApiError::BadRequest {
        detail: "query parameter cursor: does not belong to this search's sort order".into(),
        errors: vec![crate::FieldError::query(
            "cursor",
            "does not belong to this search's sort order",
        )],
    };
    let (order, outer_order) = match sort {
        Sort::Relevance => ("_rank, i.seq", "_rank, _seq"),
        Sort::PriceAscending => ("i.price_amount, i.seq", "price_amount, _seq"),
        Sort::PriceDescending => (
            "i.price_amount DESC, i.seq DESC",
            "price_amount DESC, _seq DESC",
        ),
        Sort::Newest => ("i.seq DESC", "_seq DESC"),
    };
    if let Some(after) = &query.after {
        let position = after.as_array().ok_or_else(invalid_cursor)?;
        let int = |value: &Value| value.as_i64().ok_or_else(invalid_cursor);
        match (sort, position.as_slice()) {
            (Sort::Newest, [seq]) => {
                conditions.push(format!("i.seq < {}", bind(Param::Integer(int(seq)?))));
            }
            (Sort::PriceAscending | Sort::PriceDescending, [price, seq]) => {
                let op = if sort == Sort::PriceAscending {
                    ">"
                } else {
                    "<"
                };
                let (price, seq) = (
                    bind(Param::Integer(int(price)?)),
                    bind(Param::Integer(int(seq)?)),
                );
                conditions.push(format!(
                    "(i.price_amount {op} {price} OR (i.price_amount = {price} AND i.seq {op} {seq}))"
                ));
            }
            (Sort::Relevance, [rank, seq]) => {
                let (rank, seq) = (
                    bind(Param::Integer(int(rank)?)),
                    bind(Param::Integer(int(seq)?)),
                );
                conditions.push(format!(
                    "({RANK} > {rank} OR ({RANK} = {rank} AND i.seq > {seq}))"
                ));
            }
            _ => return Err(invalid_cursor()),
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let limit = bind(Param::Integer(query.limit + 1));
    let sql = format!(
        "SELECT i.*, i.seq AS _seq, {rank} AS _rank FROM {from} {filter}
         ORDER BY {order} LIMIT {limit}"
    );
    let mut fields: Vec<(&str, &str)> = ITEM_JSON_FIELDS.to_vec();
    fields.push(("_seq", "_seq"));
    fields.push(("_rank", "_rank"));
    let mut hits: Vec<Hit> = db.query_json(&sql, &fields, outer_order, params).await?;
    let next_cursor = if hits.len() as i64 > query.limit {
        hits.truncate(query.limit as usize);
        hits.last().map(|hit| {
            let position = match sort {
                Sort::Newest => json!([hit.seq]),
                Sort::PriceAscending | Sort::PriceDescending => {
                    json!([hit.item.price.amount, hit.seq])
                }
                Sort::Relevance => json!([hit.rank.unwrap_or_default(), hit.seq]),
            };
            crate::cursor::encode(&position)
        })
    } else {
        None
    };
    Ok(SearchPage {
        items: hits.into_iter().map(|hit| hit.item).collect(),
        next_cursor,
    })
}

/// Every category with its number of items.
pub async fn categories(db: &Db) -> Result<Vec<(String, i64)>, ApiError> {
    let rows = db
        .query(
            "SELECT category, count(*) AS n FROM catalog_items GROUP BY category ORDER BY category",
            [],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.get("category")?, row.get("n")?)))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(ApiError::internal)
}

/// Events after `after`, in order.
pub async fn events(db: &Db, after: i64, limit: i64) -> Result<Vec<Value>, ApiError> {
    Ok(db
        .query_json(
            "SELECT id, type, item_id, item_version, at, actor_id, data FROM catalog_events
             WHERE id > ? ORDER BY id LIMIT ?",
            &[
                ("id", "id"),
                ("type", "type"),
                ("item_id", "item_id"),
                ("item_version", "item_version"),
                ("at", "at"),
                ("actor_id", "actor_id"),
                ("data", "json(data)"),
            ],
            "id",
            [Param::Integer(after), Param::Integer(limit)],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_exact_integers_in_known_currencies() {
        let price = Price::parse(&json!({"amount": 1299, "currency": "EUR"})).unwrap();
        assert_eq!(price.formatted(), "12.99");
        let yen = Price::parse(&json!({"amount": 1500, "currency": "JPY"})).unwrap();
        assert_eq!(yen.formatted(), "1500");
        let dinar = Price::parse(&json!({"amount": 1005, "currency": "BHD"})).unwrap();
        assert_eq!(dinar.formatted(), "1.005");
        for bad in [
            json!({"amount": -1, "currency": "EUR"}),
            json!({"amount": 12.5, "currency": "EUR"}),
            json!({"amount": "12", "currency": "EUR"}),
            json!({"amount": 1, "currency": "EURO"}),
            json!({"amount": 1, "currency": "eur"}),
            json!({"amount": 1}),
            json!({"currency": "EUR"}),
            json!({"amount": 1, "currency": "EUR", "tax": 2}),
            json!(1299),
            json!({"amount": 18446744073709551615_u64, "currency": "EUR"}),
        ] {
            assert!(Price::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn categories_are_slugs() {
        assert!(Category::parse_str("pet-food").is_ok());
        for bad in ["", "Books", "a b", "-x", "x-", &"a".repeat(51)] {
            assert!(Category::parse_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_are_limited_objects() {
        assert!(parse_attributes(&json!({"isbn": "978-0", "pages": 300})).is_ok());
        assert!(parse_attributes(&json!([1, 2])).is_err());
        assert!(parse_attributes(&json!({"bad key": 1})).is_err());
        let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(parse_attributes(&Value::Object(many)).is_err());
        assert!(parse_attributes(&json!({"big": "x".repeat(17_000)})).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"a": null, "b": {"c": null, "f": 5}, "g": [1]});
        merge_patch(&mut target, patch.as_object().unwrap());
        assert_eq!(
            Value::Object(target),
            json!({"b": {"d": 3, "f": 5}, "e": 4, "g": [1]})
        );
    }

    #[test]
    fn text_queries_become_quoted_fts_terms() {
        assert_eq!(fts_query("red  shoes!").unwrap(), "\"red\" \"shoes\"");
        assert_eq!(
            fts_query("\"NEAR(x)\" OR y*").unwrap(),
            "\"NEAR\" \"x\" \"OR\" \"y\""
        );
        assert!(fts_query("  !!  ").is_err());
    }

    #[test]
    fn conditional_headers_are_compared_as_rfc_9110_says() {
        assert_eq!(parse_if_match("\"3\""), Some(vec![3]));
        assert_eq!(parse_if_match("\"3\", \"4\""), Some(vec![3, 4]));
        assert_eq!(parse_if_match("*"), Some(vec![]));
        assert_eq!(
            parse_if_match("W/\"3\""),
            None,
            "weak tags never match If-Match"
        );
        assert_eq!(parse_if_match("3"), None);
        let item = Item {
            id: "i".into(),
            title: "t".into(),
            description: String::new(),
            category: "c".into(),
            price: PriceView {
                amount: 1,
                currency: "EUR".into(),
            },
            stock: 0,
            attributes: Map::new(),
            owner: "o".into(),
            created_at: String::new(),
            updated_at: String::new(),
            version: 3,
        };
        assert!(if_none_match_hits("\"3\"", &item));
        assert!(if_none_match_hits("W/\"3\"", &item));
        assert!(if_none_match_hits("\"1\", \"3\"", &item));
        assert!(if_none_match_hits("*", &item));
        assert!(!if_none_match_hits("\"2\"", &item));
    }

    #[test]
    fn attribute_filters_keep_their_json_type() {
        assert_eq!(
            AttributeFilter::parse("rooms", "3").unwrap().value,
            json!(3)
        );
        assert_eq!(
            AttributeFilter::parse("new", "true").unwrap().value,
            json!(true)
        );
        assert_eq!(
            AttributeFilter::parse("author", "Le Guin").unwrap().value,
            json!("Le Guin")
        );
        assert!(AttributeFilter::parse("bad key", "1").is_err());
    }
}
