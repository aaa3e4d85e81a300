//! Messages between users. `POST /messages` sends one as the token's user; `GET /messages`
//! pages through a conversation (`?with=`) or everything to and from the caller, newest first;
//! `GET /messages/{id}` reads one; `GET /messages/unread` counts unread messages and
//! `POST /messages/read` marks a sender's messages as read.

mod store;

use serde_json::json;
use shared::domain::auth::{AuthUser, authenticate};
use shared::platform::db;
use shared::web::cursor;
use shared::web::input::{any_text, integer_in};
use shared::{ApiError, Event, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;
use store::{MessageBody, Participant};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

shared::routes! {
    GET "/messages" => list,
    POST "/messages" => send,
    GET "/messages/unread" => unread,
    POST "/messages/read" => mark_read,
    GET "/messages/{id}" => read_one,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("messages", request, dispatch).await
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

fn private(reply: Reply) -> Reply {
    reply.header(http::header::CACHE_CONTROL, "private, no-store")
}

async fn send(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let sender = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let to = body.required_text("to", any_text);
    let text = body.required_text("body", MessageBody::parse);
    if to
        .as_deref()
        .is_some_and(|to| to.eq_ignore_ascii_case(&sender.username))
    {
        body.reject("to", "must be someone other than yourself");
    }
    let (to, text) = body.finish((to, text))?;
    let message = store::send(&*db::connect().await?, &participant(&sender), &to, &text)
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

async fn list(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    let mut query = ctx.query()?;
    let with = query.optional("with", any_text);
    let limit = query.optional("limit", integer_in(1, MAX_LIMIT));
    let after = query.optional("cursor", cursor::decode::<String>);
    let (with, limit, after) = query.finish((with, limit, after))?;
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let db = db::connect().await?;
    let reader = participant(&reader);
    let page = match with {
        Some(username) => store::conversation(&db, &reader, &username, after.as_deref(), limit)
            .await?
            .ok_or_else(|| no_such_user(&username))?,
        None => store::inbox_and_outbox(&db, &reader, after.as_deref(), limit).await?,
    };
    Ok(private(Reply::ok(&page)))
}

async fn read_one(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    // Someone else's message and a missing one look the same: ids never leak.
    let message = store::find(&*db::connect().await?, &reader.id, params.get("id"))
        .await?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    Ok(private(Reply::ok(&message)))
}

async fn unread(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    let counts = store::unread(&*db::connect().await?, &reader.id).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let by_sender: serde_json::Map<String, serde_json::Value> = counts
        .into_iter()
        .map(|(name, n)| (name, json!(n)))
        .collect();
    Ok(private(Reply::ok(
        &json!({ "unread": total, "by_sender": by_sender }),
    )))
}

async fn mark_read(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let reader = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let with = body.required_text("with", any_text);
    let with = body.finish(with)?;
    let marked = store::mark_read(&*db::connect().await?, &reader.id, &with)
        .await?
        .ok_or_else(|| no_such_user(&with))?;
    Ok(Reply::ok(&json!({ "marked": marked })))
}
