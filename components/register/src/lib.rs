//! Account lifecycle: `POST /auth/register` creates an account, `DELETE /auth/users/{username}`
//! deletes one (its owner or an admin) and ends all of its sessions.

use http::Method;
use serde_json::json;
use shared::accounts::{Email, NewPassword, StoredUser, Username, create_user, username_key};
use shared::auth::{authenticate, end_user_sessions};
use shared::db::Param;
use shared::http::{as_str, method_not_allowed};
use shared::{ApiError, Event, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("register", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let segments = ctx.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["auth", "register"] => {
            ctx.route = Some("/auth/register");
            match ctx.method {
                Method::POST => register(ctx).await,
                _ => Err(method_not_allowed(&[Method::POST])),
            }
        }
        ["auth", "users", username] => {
            ctx.route = Some("/auth/users/{username}");
            match ctx.method {
                Method::DELETE => delete_account(ctx, username).await,
                _ => Err(method_not_allowed(&[Method::DELETE])),
            }
        }
        _ => Err(ApiError::not_found("no such route")),
    }
}

async fn register(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let mut body = ctx.json_body().await?;
    let username = body.required("username", |v| Username::parse(as_str(v)?));
    let password = body.required("password", |v| NewPassword::parse(as_str(v)?));
    let email = body.optional("email", |v| Email::parse(as_str(v)?));
    if let (Some(username), Some(password)) = (&username, &password)
        && password.matches_username(username)
    {
        body.reject("password", "must not be the username");
    }
    let (username, password, email) = body.finish((username, password, email))?;

    let db = ctx.db().await?;
    let user = create_user(&db, &username, &password, email.as_ref()).await?;
    ctx.user_id = Some(user.id.clone());
    ctx.event(Event::info(
        "user.registered",
        json!({ "user_id": user.id, "username": user.username }),
    ));
    Ok(Reply::created(&user))
}

async fn delete_account(ctx: &mut RequestCtx, username: &str) -> Result<Reply, ApiError> {
    let caller = authenticate(ctx).await?;
    let target_key = username_key(username);
    let is_self = caller.username.eq_ignore_ascii_case(username);
    if !is_self && !caller.is_admin() {
        return Err(ApiError::Forbidden(
            "only the account's owner or an administrator can delete it".into(),
        ));
    }
    let db = ctx.db().await?;
    let target = StoredUser::find_by_username(&db, &target_key)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    // The row goes first: a login racing with this deletion then fails to index its session.
    db.execute(
        "DELETE FROM users WHERE id = ?",
        [Param::Text(target.public.id.clone())],
    )
    .await?;
    let ended = end_user_sessions(ctx, &target.public.id).await?;
    ctx.event(Event::info(
        "user.deleted",
        json!({
            "user_id": target.public.id,
            "username": target.public.username,
            "by": caller.id,
            "sessions_ended": ended,
        }),
    ));
    Ok(Reply::no_content())
}
