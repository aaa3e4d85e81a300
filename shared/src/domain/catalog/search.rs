//! Search: full-text (FTS5, bm25) over title and description, filters on category, price,
//! owner and attributes, four sort orders, and keyset pages: a page continues strictly after the
//! last item of the previous one in the sort order (sort key, then seq), so an item whose sort
//! key does not change while a client pages is returned exactly once.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Category, Item, PriceRange, is_attribute_key};
use crate::domain::accounts::ACTIVE_USER_BY_KEY;
use crate::platform::db::{Conditions, Db, Param};
use crate::web::ApiError;

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
    let words: Vec<String> =
        crate::domain::text::bounded(text, 200, crate::domain::text::Lines::Multiple)?
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
    pub price: PriceRange,
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

fn invalid_cursor() -> ApiError {
    ApiError::bad_query("cursor", "does not belong to this search's sort order")
}

impl Sort {
    /// The sort a query gets: relevance for a text search, newest first otherwise.
    fn of(query: &SearchQuery) -> Result<Self, ApiError> {
        let sort = query.sort.unwrap_or(if query.text.is_some() {
            Sort::Relevance
        } else {
            Sort::Newest
        });
        if sort == Sort::Relevance && query.text.is_none() {
            return Err(ApiError::bad_query(
                "sort",
                "relevance needs a text query q",
            ));
        }
        Ok(sort)
    }

    /// ORDER BY inside the query and over its packed rows.
    fn order(self) -> (&'static str, &'static str) {
        match self {
            Sort::Relevance => ("_rank, i.seq", "_rank, _seq"),
            Sort::PriceAscending => ("i.price_amount, i.seq", "price_amount, _seq"),
            Sort::PriceDescending => (
                "i.price_amount DESC, i.seq DESC",
                "price_amount DESC, _seq DESC",
            ),
            Sort::Newest => ("i.seq DESC", "_seq DESC"),
        }
    }

    /// The cursor position of `hit` in this order.
    fn position(self, hit: &Hit) -> Value {
        match self {
            Sort::Newest => json!([hit.seq]),
            Sort::PriceAscending | Sort::PriceDescending => json!([hit.item.price.amount, hit.seq]),
            Sort::Relevance => json!([hit.rank.unwrap_or_default(), hit.seq]),
        }
    }
}

/// The FROM clause and rank expression: the full-text index joined to items for a text
/// search, the items alone otherwise.
fn source(query: &SearchQuery, conditions: &mut Conditions) -> (&'static str, &'static str) {
    let Some(text) = &query.text else {
        return ("catalog_items i", "NULL");
    };
    // The words in title or description; within a category, FTS5 narrows to it too (the exact
    // category test of `filter` still decides).
    let mut expression = format!("{{title description}} : ({text})");
    if let Some(category) = &query.category {
        expression.push_str(&format!(" AND category : \"{}\"", category.as_str()));
    }
    conditions.compare("catalog_search MATCH", Param::Text(expression));
    (
        "catalog_search s JOIN catalog_items i ON i.seq = s.rowid",
        RANK,
    )
}

/// The conditions of the query's filters.
fn filter(query: &SearchQuery, conditions: &mut Conditions) {
    if let Some(category) = &query.category {
        conditions.compare("i.category =", Param::Text(category.as_str().to_owned()));
    }
    if let Some(currency) = &query.price.currency {
        conditions.compare(
            "i.price_currency =",
            Param::Text(currency.code().to_owned()),
        );
    }
    if let Some(min) = query.price.min {
        conditions.compare("i.price_amount >=", Param::Integer(min));
    }
    if let Some(max) = query.price.max {
        conditions.compare("i.price_amount <=", Param::Integer(max));
    }
    if let Some(owner) = &query.owner {
        let key = conditions.bind(Param::Text(crate::domain::accounts::username_key(owner)));
        let active = ACTIVE_USER_BY_KEY.replace('?', &key);
        conditions.push(format!("i.owner_id = ({active})"));
    }
    for attribute in &query.attributes {
        let path = conditions.bind(Param::Text(format!("$.\"{}\"", attribute.key)));
        let value = conditions.bind(attribute.param());
        conditions.push(format!("json_extract(i.attributes, {path}) = {value}"));
    }
}

impl AttributeFilter {
    /// The value as SQLite compares it with `json_extract`'s result.
    fn param(&self) -> Param {
        match &self.value {
            Value::Bool(b) => Param::Integer(i64::from(*b)),
            Value::Number(n) if n.is_i64() => Param::Integer(n.as_i64().unwrap_or_default()),
            Value::Number(n) => Param::Real(n.as_f64().unwrap_or_default()),
            Value::String(s) => Param::Text(s.clone()),
            other => Param::Text(other.to_string()),
        }
    }
}

/// Keyset: continue strictly after the cursor's (sort key, seq).
fn continue_after(sort: Sort, after: &Value, conditions: &mut Conditions) -> Result<(), ApiError> {
    let position = after.as_array().ok_or_else(invalid_cursor)?;
    let int = |value: &Value| value.as_i64().ok_or_else(invalid_cursor);
    match (sort, position.as_slice()) {
        (Sort::Newest, [seq]) => conditions.compare("i.seq <", Param::Integer(int(seq)?)),
        (Sort::PriceAscending | Sort::PriceDescending, [price, seq]) => {
            let op = if sort == Sort::PriceAscending {
                ">"
            } else {
                "<"
            };
            let price = conditions.bind(Param::Integer(int(price)?));
            let seq = conditions.bind(Param::Integer(int(seq)?));
            conditions.push(format!(
                "(i.price_amount {op} {price} OR (i.price_amount = {price} AND i.seq {op} {seq}))"
            ));
        }
        (Sort::Relevance, [rank, seq]) => {
            let rank = conditions.bind(Param::Integer(int(rank)?));
            let seq = conditions.bind(Param::Integer(int(seq)?));
            conditions.push(format!(
                "({RANK} > {rank} OR ({RANK} = {rank} AND i.seq > {seq}))"
            ));
        }
        _ => return Err(invalid_cursor()),
    }
    Ok(())
}

/// Finds items, sorted and paged by keyset (see the module documentation).
pub async fn search(db: &Db, query: SearchQuery) -> Result<SearchPage, ApiError> {
    let sort = Sort::of(&query)?;
    let mut conditions = Conditions::default();
    let (from, rank) = source(&query, &mut conditions);
    filter(&query, &mut conditions);
    if let Some(after) = &query.after {
        continue_after(sort, after, &mut conditions)?;
    }
    let (order, outer_order) = sort.order();
    let filter = conditions.where_clause();
    let limit = conditions.bind(Param::Integer(query.limit + 1));
    let sql = format!(
        "SELECT i.*, i.seq AS _seq, {rank} AS _rank FROM {from} {filter}
         ORDER BY {order} LIMIT {limit}"
    );
    let mut fields: Vec<(&str, &str)> = super::items::ITEM_JSON_FIELDS.to_vec();
    fields.extend([("_seq", "_seq"), ("_rank", "_rank")]);
    let mut hits: Vec<Hit> = db
        .query_json(&sql, &fields, outer_order, conditions.into_params())
        .await?;
    let next_cursor = if hits.len() as i64 > query.limit {
        hits.truncate(query.limit as usize);
        hits.last()
            .map(|hit| crate::web::cursor::encode(&sort.position(hit)))
    } else {
        None
    };
    Ok(SearchPage {
        items: hits.into_iter().map(|hit| hit.item).collect(),
        next_cursor,
    })
}

/// Every category with its number of items (kept by triggers in `catalog_category_counts`).
pub async fn categories(db: &Db) -> Result<Vec<(String, i64)>, ApiError> {
    let rows = db
        .query(
            "SELECT category, items AS n FROM catalog_category_counts ORDER BY category",
            [],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.get("category")?, row.get("n")?)))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

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
