//! The catalog: `GET|POST /catalog/items`, `GET|PATCH|DELETE /catalog/items/{id}`,
//! `POST /catalog/items/{id}/stock`, `GET /catalog/categories` and `GET /catalog/events`.
//! Reads are public; writes need a token and, for existing items, their owner or an admin.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::auth::{AuthUser, authenticate};
use shared::catalog::{
    self, Actor, AttributeFilter, Category, Currency, Description, ItemPatch, NewItem, Price,
    SearchQuery, Sort, Title, fts_query, if_none_match_hits, parse_attributes, parse_if_match,
    parse_stock,
};
use shared::http::method_not_allowed;
use shared::{ApiError, Event, FieldError, Reply, RequestCtx, cursor};
use spin_sdk::http::Request;
use spin_sdk::http_service;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("catalog", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let segments = ctx.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["catalog", "items"] => {
            ctx.route = Some("/catalog/items");
            match ctx.method {
                Method::GET => search(ctx).await,
                Method::POST => create(ctx).await,
                _ => Err(method_not_allowed(&[Method::GET, Method::POST])),
            }
        }
        ["catalog", "items", id] => {
            ctx.route = Some("/catalog/items/{id}");
            match ctx.method {
                Method::GET => get(ctx, id).await,
                Method::PATCH => update(ctx, id).await,
                Method::DELETE => delete(ctx, id).await,
                _ => Err(method_not_allowed(&[
                    Method::GET,
                    Method::PATCH,
                    Method::DELETE,
                ])),
            }
        }
        ["catalog", "items", id, "stock"] => {
            ctx.route = Some("/catalog/items/{id}/stock");
            match ctx.method {
                Method::POST => adjust_stock(ctx, id).await,
                _ => Err(method_not_allowed(&[Method::POST])),
            }
        }
        ["catalog", "categories"] => {
            ctx.route = Some("/catalog/categories");
            match ctx.method {
                Method::GET => categories(ctx).await,
                _ => Err(method_not_allowed(&[Method::GET])),
            }
        }
        ["catalog", "events"] => {
            ctx.route = Some("/catalog/events");
            match ctx.method {
                Method::GET => events(ctx).await,
                _ => Err(method_not_allowed(&[Method::GET])),
            }
        }
        _ => Err(ApiError::not_found("no such route")),
    }
}

fn actor(user: &AuthUser) -> Actor {
    Actor {
        id: user.id.clone(),
        username: user.username.clone(),
        is_admin: user.is_admin(),
    }
}

fn with_etag(reply: Reply, item: &catalog::Item) -> Reply {
    reply
        .header(http::header::ETAG, item.etag())
        .header(http::header::CACHE_CONTROL, "no-cache")
}

async fn create(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let title = body.required("title", Title::parse);
    let description = body.optional("description", Description::parse);
    let category = body.required("category", Category::parse);
    let price = body.required("price", Price::parse);
    let stock = body.optional("stock", parse_stock);
    let attributes = body.optional("attributes", parse_attributes);
    let (title, description, category, price, stock, attributes) =
        body.finish((title, description, category, price, stock, attributes))?;
    let new = NewItem {
        title,
        description: description
            .unwrap_or_else(|| Description::parse(&json!("")).expect("empty is valid")),
        category,
        price,
        stock: stock.unwrap_or(0),
        attributes: attributes.unwrap_or_default(),
    };
    let item = catalog::create(&actor(&user), new).await?;
    ctx.event(Event::info(
        "catalog.item_created",
        json!({ "item_id": item.id, "category": item.category }),
    ));
    let location = format!("/catalog/items/{}", item.id);
    Ok(with_etag(Reply::created(&item), &item).header(http::header::LOCATION, location))
}

async fn get(ctx: &mut RequestCtx, id: &str) -> Result<Reply, ApiError> {
    let item = catalog::find(&*ctx.db().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such item"))?
        .item;
    if ctx
        .header(http::header::IF_NONE_MATCH.as_str())
        .is_some_and(|header| if_none_match_hits(header, &item))
    {
        return Ok(with_etag(Reply::empty(StatusCode::NOT_MODIFIED), &item));
    }
    Ok(with_etag(Reply::ok(&item), &item))
}

/// The versions `If-Match` allows (empty for `*`); 428 when the header is missing, 412 when
/// it names no version at all.
fn required_versions(ctx: &RequestCtx) -> Result<Vec<i64>, ApiError> {
    let header = ctx.header(http::header::IF_MATCH.as_str()).ok_or_else(|| {
        ApiError::PreconditionRequired(
            "send If-Match with the item's ETag, so a stale copy cannot overwrite a newer one"
                .into(),
        )
    })?;
    parse_if_match(header).ok_or_else(|| {
        ApiError::PreconditionFailed("If-Match names no current version of this item".into())
    })
}

async fn update(ctx: &mut RequestCtx, id: &str) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let versions = required_versions(ctx)?;
    let mut body = ctx.json_body().await?;
    let title = body.optional("title", Title::parse);
    let description = body.optional("description", Description::parse);
    let category = body.optional("category", Category::parse);
    let price = body.optional("price", Price::parse);
    let stock = body.optional("stock", parse_stock);
    let attributes = body.optional("attributes", |value| match value {
        Value::Object(patch) => Ok(patch.clone()),
        _ => Err("must be a JSON object (a merge patch: null removes a key)".to_owned()),
    });
    let (title, description, category, price, stock, attributes) =
        body.finish((title, description, category, price, stock, attributes))?;
    let patch = ItemPatch {
        title,
        description,
        category,
        price,
        stock,
        attributes,
    };
    let item = catalog::update(&actor(&user), id, &versions, patch).await?;
    ctx.event(Event::info(
        "catalog.item_updated",
        json!({ "item_id": item.id, "version": item.version }),
    ));
    Ok(with_etag(Reply::ok(&item), &item))
}

async fn delete(ctx: &mut RequestCtx, id: &str) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    // If-Match is optional for deletion, but honoured when sent.
    let versions = match ctx.header(http::header::IF_MATCH.as_str()) {
        Some(_) => required_versions(ctx)?,
        None => Vec::new(),
    };
    let item = catalog::delete(&actor(&user), id, &versions).await?;
    ctx.event(Event::info(
        "catalog.item_deleted",
        json!({ "item_id": item.id, "version": item.version }),
    ));
    Ok(Reply::no_content())
}

async fn adjust_stock(ctx: &mut RequestCtx, id: &str) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let delta = body.required("delta", |value| match value.as_i64() {
        Some(0) => Err("must not be zero".to_owned()),
        Some(n) if n.abs() <= 1_000_000_000 => Ok(n),
        _ => Err("must be a whole number between -1000000000 and 1000000000".to_owned()),
    });
    let delta = body.finish(delta)?;
    let item = catalog::adjust_stock(&actor(&user), id, delta).await?;
    ctx.event(Event::info(
        "catalog.stock_changed",
        json!({ "item_id": item.id, "delta": delta, "stock": item.stock }),
    ));
    Ok(with_etag(Reply::ok(&item), &item))
}

fn limit(value: &str) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("must be 1 to {MAX_LIMIT}")),
    }
}

fn amount(value: &str) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err("must be a whole, non-negative number of minor units".to_owned()),
    }
}

async fn search(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let text = query.optional("q", fts_query);
    let category = query.optional("category", Category::parse_str);
    let currency = query.optional("currency", Currency::parse_str);
    let min_price = query.optional("min_price", amount);
    let max_price = query.optional("max_price", amount);
    let owner = query.optional("owner", |value| Ok::<_, String>(value.to_owned()));
    let sort = query.optional("sort", Sort::parse);
    let limit = query.optional("limit", limit);
    let after = query.optional("cursor", cursor::decode::<Value>);
    let mut attributes = Vec::new();
    for (key, value) in query.take_prefixed("attr.") {
        match AttributeFilter::parse(&key, &value) {
            Ok(filter) => attributes.push(filter),
            Err(detail) => query.reject(&format!("attr.{key}"), detail),
        }
    }
    if (matches!(min_price, Some(Some(_))) || matches!(max_price, Some(Some(_))))
        && matches!(currency, Some(None))
    {
        query.reject(
            "currency",
            "is required with min_price or max_price: amounts in different currencies do not compare",
        );
    }
    let (text, category, currency, min_price, max_price, owner, sort, limit, after) = query
        .finish((
            text, category, currency, min_price, max_price, owner, sort, limit, after,
        ))?;
    if let (Some(min), Some(max)) = (min_price, max_price)
        && min > max
    {
        return Err(ApiError::BadRequest {
            detail: "min_price must not exceed max_price".into(),
            errors: vec![FieldError::query("min_price", "must not exceed max_price")],
        });
    }
    let page = catalog::search(
        &*ctx.db().await?,
        SearchQuery {
            text,
            category,
            currency,
            min_price,
            max_price,
            owner,
            attributes,
            sort,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            after,
        },
    )
    .await?;
    Ok(Reply::ok(&page))
}

async fn categories(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    ctx.query()?.finish(())?;
    let counts = catalog::categories(&*ctx.db().await?).await?;
    let categories: Vec<Value> = counts
        .into_iter()
        .map(|(category, count)| json!({ "category": category, "count": count }))
        .collect();
    Ok(Reply::ok(&json!({ "categories": categories })))
}

async fn events(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let after = query.optional("after", |value| match value.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err("must be an event id (a whole number, 0 for the beginning)".to_owned()),
    });
    let limit = query.optional("limit", |value| match value.parse::<i64>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err("must be 1 to 1000".to_owned()),
    });
    let (after, limit) = query.finish((after, limit))?;
    let after = after.unwrap_or(0);
    let events = catalog::events(&*ctx.db().await?, after, limit.unwrap_or(100)).await?;
    let last = events
        .last()
        .and_then(|event| event["id"].as_i64())
        .unwrap_or(after);
    Ok(Reply::ok(
        &json!({ "events": events, "last_event_id": last }),
    ))
}
