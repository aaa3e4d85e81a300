//! The catalog: `GET|POST /catalog/items`, `GET|PATCH|DELETE /catalog/items/{id}`,
//! `POST /catalog/items/{id}/stock`, `GET /catalog/categories` and `GET /catalog/events`.
//! Reads are public; writes need a token and, for existing items, their owner or an admin.

mod search;

use http::StatusCode;
use serde_json::{Map, Value, json};
use shared::domain::auth::{AuthUser, authenticate, authenticate_if_present};
use shared::domain::catalog::items::{self, IfMatch, if_none_match_hits, parse_if_match};
use shared::domain::catalog::{
    self, Actor, Category, Description, Item, ItemPatch, NewItem, Price, Title, events,
    parse_attributes, parse_stock, parse_stock_delta,
};
use shared::platform::db;
use shared::web::input::integer_in;
use shared::{ApiError, Event, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

shared::routes! {
    GET "/catalog/items" => search::search,
    POST "/catalog/items" => create,
    GET "/catalog/items/{id}" => get,
    PATCH "/catalog/items/{id}" => update,
    DELETE "/catalog/items/{id}" => delete,
    POST "/catalog/items/{id}/stock" => adjust_stock,
    GET "/catalog/categories" => categories,
    GET "/catalog/events" => list_events,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("catalog", request, dispatch).await
}

fn actor(user: &AuthUser) -> Actor {
    Actor {
        id: user.id.clone(),
        username: user.username.clone(),
        is_admin: user.is_admin(),
    }
}

fn with_etag(reply: Reply, item: &Item) -> Reply {
    reply
        .header(http::header::ETAG, item.etag())
        .header(http::header::CACHE_CONTROL, "no-cache")
}

async fn create(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let title = body.required_text("title", Title::parse);
    let description = body.optional_text("description", Description::parse);
    let category = body.required_text("category", Category::parse);
    let price = body.required("price", Price::parse);
    let stock = body.optional("stock", parse_stock);
    let attributes = body.optional("attributes", parse_attributes);
    let (title, description, category, price, stock, attributes) =
        body.finish((title, description, category, price, stock, attributes))?;
    let new = NewItem {
        title,
        description: description.unwrap_or_else(Description::empty),
        category,
        price,
        stock: stock.unwrap_or(0),
        attributes: attributes.unwrap_or_default(),
    };
    let item = items::create(&actor(&user), new).await?;
    ctx.event(Event::info(
        "catalog.item_created",
        json!({ "item_id": item.id, "category": item.category }),
    ));
    let location = format!("/catalog/items/{}", item.id);
    Ok(with_etag(Reply::created(&item), &item).header(http::header::LOCATION, location))
}

async fn get(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    let item = items::find(&*db::connect().await?, params.get("id"))
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

/// What `If-Match` allows; 428 when the header is missing.
fn required_if_match(ctx: &RequestCtx) -> Result<IfMatch, ApiError> {
    let header = ctx.header(http::header::IF_MATCH.as_str()).ok_or_else(|| {
        ApiError::PreconditionRequired(
            "send If-Match with the item's ETag, so a stale copy cannot overwrite a newer one"
                .into(),
        )
    })?;
    Ok(parse_if_match(header))
}

fn attributes_patch(value: &Value) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(patch) => Ok(patch.clone()),
        _ => Err("must be a JSON object (a merge patch: null removes a key)".to_owned()),
    }
}

async fn update(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let title = body.optional_text("title", Title::parse);
    let description = body.optional_text("description", Description::parse);
    let category = body.optional_text("category", Category::parse);
    let price = body.optional("price", Price::parse);
    let stock = body.optional("stock", parse_stock);
    let attributes = body.optional("attributes", attributes_patch);
    let (title, description, category, price, stock, attributes) =
        body.finish((title, description, category, price, stock, attributes))?;
    let expected = required_if_match(ctx)?;
    let patch = ItemPatch {
        title,
        description,
        category,
        price,
        stock,
        attributes,
    };
    let item = items::update(&actor(&user), params.get("id"), &expected, patch).await?;
    ctx.event(Event::info(
        "catalog.item_updated",
        json!({ "item_id": item.id, "version": item.version }),
    ));
    Ok(with_etag(Reply::ok(&item), &item))
}

async fn delete(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    // If-Match is optional for deletion, but honoured when sent.
    let expected = ctx
        .header(http::header::IF_MATCH.as_str())
        .map_or(IfMatch::Any, parse_if_match);
    let item = items::delete(&actor(&user), params.get("id"), &expected).await?;
    ctx.event(Event::info(
        "catalog.item_deleted",
        json!({ "item_id": item.id, "version": item.version }),
    ));
    Ok(Reply::no_content())
}

async fn adjust_stock(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    let user = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let delta = body.required("delta", parse_stock_delta);
    let delta = body.finish(delta)?;
    let item = items::adjust_stock(&actor(&user), params.get("id"), delta).await?;
    ctx.event(Event::info(
        "catalog.stock_changed",
        json!({ "item_id": item.id, "delta": delta, "stock": item.stock }),
    ));
    Ok(with_etag(Reply::ok(&item), &item))
}

async fn categories(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    ctx.query()?.finish(())?;
    let counts = catalog::search::categories(&*db::connect().await?).await?;
    let categories: Vec<Value> = counts
        .into_iter()
        .map(|(category, count)| json!({ "category": category, "count": count }))
        .collect();
    Ok(Reply::ok(&json!({ "categories": categories })))
}

async fn list_events(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let mut query = ctx.query()?;
    let after = query.optional("after", |value| match value.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err("must be an event id (a whole number, 0 for the beginning)".to_owned()),
    });
    let limit = query.optional("limit", integer_in(1, 1000));
    let (after, limit) = query.finish((after, limit))?;
    // Who changed what (user ids) is for administrators; the feed itself is public.
    let show_actors = authenticate_if_present(ctx)
        .await?
        .is_some_and(|user| user.is_admin());
    let after = after.unwrap_or(0);
    let events = events::after(
        &*db::connect_for_long_reads().await?,
        after,
        limit.unwrap_or(100),
        show_actors,
    )
    .await?;
    let last = events.last().and_then(db::raw_row_id).unwrap_or(after);
    Ok(Reply::ok(&EventsPage {
        events,
        last_event_id: last,
    }))
}

/// A page of the change feed as SQLite packed it (serialised as it is, never rebuilt).
#[derive(serde::Serialize)]
struct EventsPage {
    events: Vec<db::RawRow>,
    last_event_id: i64,
}
