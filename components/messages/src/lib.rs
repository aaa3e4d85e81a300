//! Messages between users. `POST /messages` sends one as the token's user; `GET /messages`
//! pages through a conversation (`?with=`) or everything to and from the caller, newest first;
//! `GET /messages/{id}` reads one; `GET /messages/unread` counts unread messages and
//! `POST /messages/read` marks a sender's messages as read.

use http::Method;
use serde_json::json;
use shared::auth::{AuthUser, authenticate};
use shared::http::{as_str, method_not_allowed};
use shared::messages::{self, MessageBody, Participant};
use shared::{ApiError, Event, Reply, RequestCtx, cursor};
use spin_sdk::http::Request;
use spin_sdk::http_service;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("messages", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let segments = ctx.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["messages"] => {
            ctx.route = Some("/messages");
            match ctx.method {
                Method::GET => list(ctx).await,
                Method::POST => send(ctx).await,
                _ => Err(method_not_allowed(&[Method::GET, Method::POST])),
            }
        }
        ["messages", "unread"] => {
            ctx.route = Some("/messages/unread");
            match ctx.method {
                Method::GET => unread(ctx).await,
                _ => Err(method_not_allowed(&[Method::GET])),
            }
        }
        ["messages", "read"] => {
            ctx.route = Some("/messages/read");
            match ctx.method {
                Method::POST => mark_read(ctx).await,
                _ => Err(method_not_allowed(&[Method::POST])),
            }
        }
        ["messages", id] => {
            ctx.route = Some("/messages/{id}");
            match ctx.method {
                Method::GET => read_one(ctx, id).await,
                _ => Err(method_not_allowed(&[Method::GET])),
            }
        }
        _ => Err(ApiError::not_found("no such route")),
    }
}

fn participant(user: &AuthUser) -> Participant {
    Participant {
        id: user.id.clone(),
        username: user.username.clone(),
    }
}

fn no_such_user(username: &str) -> ApiError {
    ApiError::not_found(format!("there is no user {username:?}"))
}

async fn send(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let sender = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let to = body.required("to", |v| as_str(v).map(str::to_owned));
    let text = body.required("body", |v| MessageBody::parse(as_str(v)?));
    if to
        .as_deref()
        .is_some_and(|to| to.eq_ignore_ascii_case(&sender.username))
    {
        body.reject("to", "must be someone other than yourself");
    }
    let (to, text) = body.finish((to, text))?;
    let message = messages::send(&*ctx.db().await?, &participant(&sender), &to, &text)
        .await?
        .ok_or_else(|| no_such_user(&to))?;
    ctx.event(Event::info(
        "message.sent",
        json!({ "message_id": message.id, "to": message.to, "characters": text.as_str().chars().count() }),
    ));
    Ok(
        Reply::created(&message)
            .header(http::header::LOCATION, format!("/messages/{}", message.id)),
    )
}

async fn list(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    let mut query = ctx.query()?;
    let with = query.optional("with", |value| Ok::<_, String>(value.to_owned()));
    let limit = query.optional("limit", |value| match value.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("must be 1 to {MAX_LIMIT}")),
    });
    let after = query.optional("cursor", cursor::decode::<String>);
    let (with, limit, after) = query.finish((with, limit, after))?;
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let db = ctx.db().await?;
    let page = match with {
        Some(username) => messages::conversation(
            &db,
            &participant(&reader),
            &username,
            after.as_deref(),
            limit,
        )
        .await?
        .ok_or_else(|| no_such_user(&username))?,
        None => {
            messages::inbox_and_outbox(&db, &participant(&reader), after.as_deref(), limit).await?
        }
    };
    Ok(Reply::ok(&page).header(http::header::CACHE_CONTROL, "private, no-store"))
}

async fn read_one(ctx: &mut RequestCtx, id: &str) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    // Someone else's message and a missing one look the same: ids never leak.
    let message = messages::find(&*ctx.db().await?, &reader.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    Ok(Reply::ok(&message).header(http::header::CACHE_CONTROL, "private, no-store"))
}

async fn unread(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    let counts = messages::unread(&*ctx.db().await?, &reader.id).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let by_sender: serde_json::Map<String, serde_json::Value> = counts
        .into_iter()
        .map(|(name, n)| (name, json!(n)))
        .collect();
    Ok(
        Reply::ok(&json!({ "unread": total, "by_sender": by_sender }))
            .header(http::header::CACHE_CONTROL, "private, no-store"),
    )
}

async fn mark_read(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let with = body.required("with", |v| as_str(v).map(str::to_owned));
    let with = body.finish(with)?;
    let marked = messages::mark_read(&*ctx.db().await?, &reader.id, &with)
        .await?
        .ok_or_else(|| no_such_user(&with))?;
    Ok(Reply::ok(&json!({ "marked": marked })))
}
