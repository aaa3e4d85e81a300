//! Items: create, read, update (only the version the client saw: `If-Match`), change stock,
//! delete. Every change appends its events to `catalog_events` in the same transaction.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Category, Description, Price, Title, check_attributes, merge_patch};
use crate::platform::db::{self, Db, Param, Row};
use crate::web::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PriceView {
    pub amount: i64,
    pub currency: String,
}

impl PriceView {
    fn of(price: &Price) -> Self {
        Self {
            amount: price.amount,
            currency: price.currency.code().to_owned(),
        }
    }
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
            Param::Text(crate::platform::time::now_rfc3339()),
            Param::Text(actor.id.clone()),
            Param::Text(data.to_string()),
        ],
    )
    .await?;
    Ok(())
}

pub async fn create(actor: &Actor, new: NewItem) -> Result<Item, ApiError> {
    let now = crate::platform::time::now_rfc3339();
    let item = Item {
        id: crate::platform::ids::random_uuid(),
        title: new.title.0,
        description: new.description.0,
        category: new.category.0,
        price: PriceView::of(&new.price),
        stock: new.stock,
        attributes: new.attributes,
        owner: actor.username.clone(),
        created_at: now.clone(),
        updated_at: now,
        version: 1,
    };
    db::transaction(async |db: &Db| -> Result<(), ApiError> {
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

/// What an `If-Match` header allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header (where it is optional), or `*`.
    Any,
    /// Only these versions: the strong tags that parse. Weak or malformed tags match nothing
    /// (RFC 9110 section 13.1.1), so they end in 412, after the existence and permission checks
    /// as RFC 9110 section 13.2.2 orders them.
    Versions(Vec<i64>),
}

impl IfMatch {
    fn allows(&self, version: i64) -> bool {
        match self {
            Self::Any => true,
            Self::Versions(versions) => versions.contains(&version),
        }
    }
}

pub fn parse_if_match(header: &str) -> IfMatch {
    if header.trim() == "*" {
        return IfMatch::Any;
    }
    let versions = header
        .split(',')
        .filter_map(|tag| {
            tag.trim()
                .strip_prefix('"')?
                .strip_suffix('"')?
                .parse()
                .ok()
        })
        .collect();
    IfMatch::Versions(versions)
}

/// Whether `If-None-Match` names the item's current version (weak comparison, or `*`).
pub fn if_none_match_hits(header: &str, item: &Item) -> bool {
    header.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.trim_start_matches("W/") == item.etag()
    })
}

/// Reads the item inside a write transaction and checks that `actor` may `action` it and that
/// `expected` allows its current version.
async fn load_for_change(
    db: &Db,
    actor: &Actor,
    id: &str,
    expected: &IfMatch,
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
    if !expected.allows(current.item.version) {
        return Err(ApiError::PreconditionFailed(format!(
            "the item is at version {}, not the one in If-Match",
            current.item.version
        )));
    }
    Ok(current)
}

/// Applies `patch` if `expected` allows the item's current version and the
/// actor may change it; writes the change and its events in one transaction.
pub async fn update(
    actor: &Actor,
    id: &str,
    expected: &IfMatch,
    patch: ItemPatch,
) -> Result<Item, ApiError> {
    db::transaction(async |db: &Db| -> Result<Item, ApiError> {
        let current = load_for_change(db, actor, id, expected, "change").await?;
        let before = current.item.clone();
        let mut item = current.item;
        let changed = patch.apply_to(&mut item)?;
        item.version += 1;
        item.updated_at = crate::platform::time::now_rfc3339();
        save(db, &item).await?;
        let data = json!({ "item": item, "changed": changed });
        append_event(db, "item.updated", &item, actor, data).await?;
        if before.stock != item.stock {
            let data = json!({ "from": before.stock, "to": item.stock });
            append_event(db, "item.stock_changed", &item, actor, data).await?;
        }
        Ok(item)
    })
    .await
}

impl ItemPatch {
    /// Applies the patch to `item` and names the fields it changed; attributes merge as an
    /// RFC 7396 merge patch and must still follow the rules afterwards.
    fn apply_to(self, item: &mut Item) -> Result<Vec<&'static str>, ApiError> {
        let mut changed = Vec::new();
        if let Some(title) = self.title {
            changed.push("title");
            item.title = title.0;
        }
        if let Some(description) = self.description {
            changed.push("description");
            item.description = description.0;
        }
        if let Some(category) = self.category {
            changed.push("category");
            item.category = category.0;
        }
        if let Some(price) = self.price {
            changed.push("price");
            item.price = PriceView::of(&price);
        }
        if let Some(stock) = self.stock {
            changed.push("stock");
            item.stock = stock;
        }
        if let Some(attributes) = self.attributes {
            changed.push("attributes");
            merge_patch(&mut item.attributes, &attributes);
            check_attributes(&item.attributes).map_err(|detail| {
                ApiError::validation("attributes", format!("after merging, {detail}"))
            })?;
        }
        Ok(changed)
    }
}

/// Writes every changeable column of `item`.
async fn save(db: &Db, item: &Item) -> Result<(), ApiError> {
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
    Ok(())
}

/// Adds `delta` (possibly negative) to the stock, atomically; 409 if that would go below zero.
pub async fn adjust_stock(actor: &Actor, id: &str, delta: i64) -> Result<Item, ApiError> {
    db::transaction(async |db: &Db| -> Result<Item, ApiError> {
        let current = load_for_change(db, actor, id, &IfMatch::Any, "change the stock of").await?;
        let mut item = current.item;
        let stock = item
            .stock
            .checked_add(delta)
            .filter(|s| (0..=super::MAX_STOCK).contains(s))
            .ok_or_else(|| {
                ApiError::Conflict(format!(
                    "the stock is {} and cannot change by {delta}",
                    item.stock
                ))
            })?;
        let from = item.stock;
        item.stock = stock;
        item.version += 1;
        item.updated_at = crate::platform::time::now_rfc3339();
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

/// Deletes the item if `expected` allows its current version and the actor may.
pub async fn delete(actor: &Actor, id: &str, expected: &IfMatch) -> Result<Item, ApiError> {
    db::transaction(async |db: &Db| -> Result<Item, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_headers_are_compared_as_rfc_9110_says() {
        assert_eq!(parse_if_match("\"3\""), IfMatch::Versions(vec![3]));
        assert_eq!(
            parse_if_match("\"3\", \"4\""),
            IfMatch::Versions(vec![3, 4])
        );
        assert_eq!(parse_if_match(" * "), IfMatch::Any);
        let weak = parse_if_match("W/\"3\"");
        assert!(!weak.allows(3), "weak tags never match If-Match");
        assert!(!parse_if_match("3").allows(3));
        assert!(!parse_if_match("").allows(1));
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
}
