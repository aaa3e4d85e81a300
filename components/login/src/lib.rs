//! `POST /auth/login`: checks a username and password (argon2id, constant work for unknown
//! users), throttles repeated failures per username and per client, and issues a JWT backed by
//! a server-side session.

use http::Method;
use serde_json::json;
use shared::accounts::{
    DUMMY_HASH, Role, StoredUser, hash_password, needs_rehash, username_key, verify_password,
};
use shared::auth::{
    Claims, Session, TokenConfig, end_user_sessions, session_key, sign, signing_secret,
};
use shared::db::Param;
use shared::http::{as_str, method_not_allowed};
use shared::throttle::{ThrottleConfig, record_failure, release_after_success, reserve_attempt};
use shared::{ApiError, Event, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

/// Passwords longer than this are not hashed at all: argon2 over megabytes is a cheap DoS.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Expired sessions cleaned up per login.
const SWEEP_PER_LOGIN: i64 = 20;

#[http_service]
async fn handle(request: Request) -> shared::http::Response {
    shared::serve("login", request, route).await
}

async fn route(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    ctx.route = Some("/auth/login");
    match ctx.method {
        Method::POST => login(ctx).await,
        _ => Err(method_not_allowed(&[Method::POST])),
    }
}

/// The one answer for a wrong password and for an unknown user.
fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        detail: "the username or password is incorrect".into(),
        challenge: "Bearer".into(),
    }
}

async fn login(ctx: &mut RequestCtx) -> Result<Reply, ApiError> {
    let mut body = ctx.json_body().await?;
    let username = body.required("username", |v| as_str(v).map(str::to_owned));
    let password = body.required("password", |v| match as_str(v)? {
        p if p.len() > MAX_PASSWORD_BYTES => Err("is too long".to_owned()),
        p => Ok(p.to_owned()),
    });
    let (username, password) = body.finish((username, password))?;
    let key = username_key(&username);

    let tokens = TokenConfig::load().await?;
    let throttle = ThrottleConfig::load().await?;
    let client_header = shared::config::get("client_ip_header").await?;
    let client = ctx.client_address(&client_header);
    let secret = signing_secret(ctx).await?;

    let db = ctx.db().await?;
    if let Err(throttled) = reserve_attempt(&db, &throttle, &key, client.as_deref()).await? {
        ctx.event(Event::warn(
            "login.throttled",
            json!({ "username": key, "client": client, "scope": throttled.scope }),
        ));
        return Err(ApiError::TooManyRequests {
            retry_after_secs: throttled.retry_after_secs,
            detail: "too many failed sign-in attempts; try again later".into(),
        });
    }

    let user = StoredUser::find_by_username(&db, &key).await?;
    let stored_hash = user
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str());
    let password_ok = verify_password(password.as_bytes(), stored_hash);
    let Some(user) = user.filter(|_| password_ok) else {
        record_failure(&db, &throttle, client.as_deref()).await?;
        ctx.event(Event::warn(
            "login.failed",
            json!({ "username": key, "client": client }),
        ));
        return Err(invalid_credentials());
    };
    release_after_success(&db, &throttle, &key).await?;

    if needs_rehash(&user.password_hash) {
        db.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
            [
                Param::Text(hash_password(password.as_bytes())?),
                Param::Text(shared::time::now_rfc3339()),
                Param::Text(user.public.id.clone()),
            ],
        )
        .await?;
    }

    let role = Role::granted_to(&user.username_key, &tokens.admin_usernames);
    if role != user.public.role {
        ctx.db()
            .await?
            .execute(
                "UPDATE users SET role = ?, updated_at = ? WHERE id = ?",
                [
                    Param::Text(role.as_str().to_owned()),
                    Param::Text(shared::time::now_rfc3339()),
                    Param::Text(user.public.id.clone()),
                ],
            )
            .await?;
        // Tokens carrying the old role must not outlive the change.
        let ended = end_user_sessions(ctx, &user.public.id).await?;
        ctx.event(Event::info(
            "user.role_changed",
            json!({
                "user_id": user.public.id,
                "from": user.public.role,
                "to": role,
                "sessions_ended": ended,
            }),
        ));
    }

    let now = shared::time::unix_seconds();
    let expires_at = now + tokens.ttl_seconds;
    let jti = shared::ids::random_uuid();
    let session = Session {
        user_id: user.public.id.clone(),
        username: user.public.username.clone(),
        role,
        user_created_at: user.public.created_at.clone(),
        created_at: shared::time::now_rfc3339(),
        expires_at,
        client_address: client.clone(),
        user_agent: ctx
            .header("user-agent")
            .map(|ua| ua.chars().take(256).collect()),
    };
    ctx.kv()
        .await?
        .set(&session_key(&jti), &session, Some(expires_at))
        .await?;
    // Indexed only if the account still exists: a deletion racing with this login wins.
    let indexed = ctx
        .db()
        .await?
        .query(
            "INSERT INTO sessions (jti, user_id, expires_at, created_at)
             SELECT ?, id, ?, ? FROM users WHERE id = ? RETURNING jti",
            [
                Param::Text(jti.clone()),
                Param::Integer(expires_at),
                Param::Text(session.created_at.clone()),
                Param::Text(user.public.id.clone()),
            ],
        )
        .await?;
    if indexed.is_empty() {
        ctx.kv().await?.delete(&session_key(&jti)).await?;
        return Err(invalid_credentials());
    }

    let claims = Claims {
        sub: user.public.id.clone(),
        name: user.public.username.clone(),
        role,
        iat: now,
        nbf: now,
        exp: expires_at,
        jti,
        iss: tokens.issuer.clone(),
        aud: tokens.audience.clone(),
    };
    let access_token = sign(&claims, &secret)?;
    shared::auth::sweep_expired_sessions(ctx, SWEEP_PER_LOGIN).await?;

    ctx.user_id = Some(user.public.id.clone());
    ctx.event(Event::info(
        "login.succeeded",
        json!({ "user_id": user.public.id, "username": user.public.username, "client": client }),
    ));
    let mut public = user.public;
    public.role = role;
    Ok(Reply::ok(&json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": tokens.ttl_seconds,
        "user": public,
    }))
    .header(http::header::CACHE_CONTROL, "no-store"))
}
