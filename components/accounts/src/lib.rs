//! Accounts: `POST /auth/register` creates one, `DELETE /auth/users/{username}` deletes one
//! (its owner or an admin; the username stays taken), `PUT /auth/users/{username}/role` lets an
//! admin grant or revoke the admin role, and `POST /auth/bootstrap` makes the caller the first
//! admin with the operator's one-time bootstrap credential.

mod roles;

use serde_json::json;
use shared::domain::accounts::{
    self, Email, NewPassword, Username, hash_password, username_is_taken, username_taken,
};
use shared::domain::auth::{authenticate, sessions};
use shared::domain::throttle::{self, Limit};
use shared::platform::{config, db};
use shared::{ApiError, Event, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

shared::routes! {
    POST "/auth/register" => register,
    DELETE "/auth/users/{username}" => delete_account,
    PUT "/auth/users/{username}/role" => roles::set_role,
    POST "/auth/bootstrap" => roles::bootstrap,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("accounts", request, dispatch).await
}

/// Registrations allowed per client address per window, from the variables.
async fn registration_limit() -> Result<Limit, ApiError> {
    Ok(Limit {
        scope: "register_client",
        max: config::parse("register_max_per_client", |n: &i64| *n > 0).await?,
        window_seconds: config::parse("register_window_seconds", |n: &i64| *n > 0).await?,
    })
}

async fn register(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let mut body = ctx.json_body().await?;
    let username = body.required_text("username", Username::parse);
    let password = body.required_text("password", NewPassword::parse);
    let email = body.optional_text("email", Email::parse);
    if let (Some(username), Some(password)) = (&username, &password)
        && password.matches_username(username)
    {
        body.reject("password", "must not be the username");
    }
    let (username, password, email) = body.finish((username, password, email))?;

    let db = db::connect().await?;
    // Both checks come before the hash, which is what makes a registration expensive.
    if username_taken(&db, &username).await? {
        return Err(username_is_taken(&username));
    }
    let client = ctx.client_address(&config::get("client_ip_header").await?);
    let client_key = client.as_ref().map_or("unknown", |c| c.key.as_str());
    if let Err(throttled) = throttle::take(&db, &registration_limit().await?, client_key).await? {
        ctx.event(Event::warn(
            "register.throttled",
            json!({ "client": client_key }),
        ));
        return Err(
            throttled.into_error("too many registrations from this address; try again later")
        );
    }
    let password_hash = hash_password(password.as_bytes())?;
    let user = accounts::create_user(&db, &username, password_hash, email.as_ref()).await?;
    ctx.user_id = Some(user.id.clone());
    ctx.event(Event::info(
        "user.registered",
        json!({ "user_id": user.id, "username": user.username }),
    ));
    Ok(Reply::created(&user))
}

async fn delete_account(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    let caller = authenticate(ctx).await?;
    let username = params.get("username");
    if !caller.username.eq_ignore_ascii_case(username) && !caller.is_admin() {
        return Err(ApiError::Forbidden(
            "only the account's owner or an administrator can delete it".into(),
        ));
    }
    let db = db::connect().await?;
    let target = accounts::find_public_user(&db, username)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    if target.role == accounts::Role::Admin {
        roles::ensure_another_admin(&db, &target.id).await?;
    }
    // The row changes first: a login racing with this deletion then fails to index its session.
    if !accounts::delete_user(&db, &target.id).await? {
        return Err(ApiError::not_found("no such user"));
    }
    let ended = sessions::end_all_of_user(&db, &target.id).await?;
    ctx.event(Event::info(
        "user.deleted",
        json!({
            "user_id": target.id,
            "username": target.username,
            "by": caller.id,
            "sessions_ended": ended,
        }),
    ));
    Ok(Reply::no_content())
}
