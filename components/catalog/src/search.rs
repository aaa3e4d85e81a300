//! `GET /catalog/items`: the query string made into a [`SearchQuery`].

use serde_json::Value;
use shared::domain::catalog::search::{self, fts_query};
use shared::domain::catalog::{
    AttributeFilter, Category, Currency, PriceRange, SearchQuery, Sort, parse_amount,
};
use shared::platform::db;
use shared::web::cursor;
use shared::web::input::{Query, any_text, integer_in};
use shared::{ApiError, PathParams, Reply, RequestCtx};

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

pub async fn search(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let text = query.optional("q", fts_query);
    let category = query.optional("category", Category::parse);
    let currency = query.optional("currency", Currency::parse);
    let min_price = query.optional("min_price", parse_amount);
    let max_price = query.optional("max_price", parse_amount);
    let owner = query.optional("owner", any_text);
    let sort = query.optional("sort", Sort::parse);
    let limit = query.optional("limit", integer_in(1, MAX_LIMIT));
    let after = query.optional("cursor", cursor::decode::<Value>);
    let attributes = attribute_filters(&mut query);
    let (text, category, currency, min, max, owner, sort, limit, after) = query.finish((
        text, category, currency, min_price, max_price, owner, sort, limit, after,
    ))?;
    let price = PriceRange { currency, min, max };
    let problems = price.problems();
    if !problems.is_empty() {
        return Err(ApiError::bad_queries(problems));
    }
    let query = SearchQuery {
        text,
        category,
        price,
        owner,
        attributes,
        sort,
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        after,
    };
    let page = search::search(&*db::connect_for_long_reads().await?, query).await?;
    Ok(Reply::ok(&page))
}

/// The `attr.<key>=<value>` parameters.
fn attribute_filters(query: &mut Query) -> Vec<AttributeFilter> {
    let mut filters = Vec::new();
    for (key, value) in query.take_prefixed("attr.") {
        match AttributeFilter::parse(&key, &value) {
            Ok(filter) => filters.push(filter),
            Err(detail) => query.reject(&format!("attr.{key}"), detail),
        }
    }
    filters
}
