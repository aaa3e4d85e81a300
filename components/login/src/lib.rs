//! `POST /auth/login`: checks a username and password (argon2id, the same work for unknown
//! users), backs off repeated failures per (username, client) and per client, and issues an
//! EdDSA JWT backed by a server-side session.
//!
//! Failures never lock an account: a stranger guessing from one client slows down only that
//! client (for that username, and for all usernames past a larger limit), so the owner can still
//! sign in from anywhere else.

use serde_json::json;
use shared::domain::accounts::{
    DUMMY_HASH, StoredUser, hash_password, needs_rehash, username_key, verify_password,
};
use shared::domain::auth::{keys, sessions, tokens};
use shared::domain::throttle::{self, Limit};
use shared::platform::{config, db, ids, time};
use shared::web::client::ClientAddress;
use shared::web::input::as_str;
use shared::{ApiError, Event, PathParams, Reply, RequestCtx};
use spin_sdk::http::Request;
use spin_sdk::http_service;

/// Passwords longer than this are not hashed at all: argon2 over megabytes is a cheap DoS.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Expired sessions and throttle rows cleaned up per login.
const SWEEP_PER_LOGIN: i64 = 20;

shared::routes! {
    POST "/auth/login" => login,
}

#[http_service]
async fn handle(request: Request) -> shared::web::Response {
    shared::serve("login", request, dispatch).await
}

/// The one answer for a wrong password and for an unknown user.
fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        detail: "the username or password is incorrect".into(),
        challenge: "Bearer".into(),
    }
}

async fn login(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let mut body = ctx.json_body().await?;
    let username = body.required("username", |v| as_str(v).map(str::to_owned));
    let password = body.required("password", |v| match as_str(v)? {
        p if p.len() > MAX_PASSWORD_BYTES => Err("is too long".to_owned()),
        p => Ok(p.to_owned()),
    });
    let (username, password) = body.finish((username, password))?;
    let client = ctx.client_address(&config::get("client_ip_header").await?);
    let db = db::connect().await?;
    let user = check_credentials(ctx, &db, &username, &password, client.as_ref()).await?;
    open_session(ctx, &db, user, client).await
}

/// The per-client and per-(username, client) limits, from the variables.
async fn limits() -> Result<(Limit, Limit), ApiError> {
    let window_seconds = config::parse("login_throttle_window_seconds", |n: &i64| *n > 0).await?;
    let client = Limit {
        scope: "login_client",
        max: config::parse("login_max_failures_per_client", |n: &i64| *n > 0).await?,
        window_seconds,
    };
    let user_at_client = Limit {
        scope: "login_user_client",
        max: config::parse("login_max_failures_per_user_client", |n: &i64| *n > 0).await?,
        window_seconds,
    };
    Ok((client, user_at_client))
}

/// The account whose password this is, or the reason there is none. Each attempt for a
/// (username, client) pair is counted before the password is checked, so concurrent guesses
/// count as many; a client's failures are counted after they happen.
async fn check_credentials(
    ctx: &mut RequestCtx,
    db: &db::PooledDb,
    username: &str,
    password: &str,
    client: Option<&ClientAddress>,
) -> Result<StoredUser, ApiError> {
    let (client_limit, pair_limit) = limits().await?;
    let key = username_key(username);
    let client_key = client.map_or("unknown", |c| c.key.as_str());
    let pair = format!("{key}|{client_key}");
    throttle::sweep(db, SWEEP_PER_LOGIN).await?;
    let allowed = match throttle::check(db, &client_limit, client_key).await? {
        Ok(()) => throttle::take(db, &pair_limit, &pair).await?,
        refused => refused,
    };
    if let Err(throttled) = allowed {
        ctx.event(Event::warn(
            "login.throttled",
            json!({ "username": key, "client": client_key, "scope": throttled.scope }),
        ));
        return Err(throttled.into_error("too many failed sign-in attempts; try again later"));
    }
    let user = StoredUser::find_active(db, &key).await?;
    let stored_hash = user
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str());
    let password_ok = verify_password(password.as_bytes(), stored_hash);
    let Some(user) = user.filter(|_| password_ok) else {
        // Counted, not checked: the refusal comes on the next attempt.
        let _ = throttle::take(db, &client_limit, client_key).await?;
        ctx.event(Event::warn(
            "login.failed",
            json!({ "username": key, "client": client_key }),
        ));
        return Err(invalid_credentials());
    };
    throttle::clear(db, pair_limit.scope, &pair).await?;
    if needs_rehash(&user.password_hash) {
        rehash(db, &user.public.id, password).await?;
    }
    Ok(user)
}

async fn rehash(db: &db::Db, user_id: &str, password: &str) -> Result<(), ApiError> {
    db.execute(
        "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
        [
            db::Param::Text(hash_password(password.as_bytes())?),
            db::Param::Text(time::now_rfc3339()),
            db::Param::Text(user_id.to_owned()),
        ],
    )
    .await?;
    Ok(())
}

/// Stores a session for `user` and answers with a token for it.
async fn open_session(
    ctx: &mut RequestCtx,
    db: &db::PooledDb,
    user: StoredUser,
    client: Option<ClientAddress>,
) -> Result<Reply, ApiError> {
    let ttl = tokens::ttl_seconds().await?;
    let settings = tokens::TokenSettings::load().await?;
    let signing_key = keys::signing_key(db).await?;
    let role = user.public.role;
    let user_agent = ctx.header("user-agent").map(str::to_owned);
    let client_address = client.map(|c| c.address);
    let session =
        sessions::new_session(&user.public, role, ttl, client_address.clone(), user_agent);
    let jti = ids::random_uuid();
    if !sessions::open(db, &jti, &session).await? {
        // The account was deleted, or its role changed, while this login ran.
        return Err(invalid_credentials());
    }
    let now = time::unix_seconds();
    let claims = tokens::Claims {
        sub: user.public.id.clone(),
        name: user.public.username.clone(),
        role,
        iat: now,
        nbf: now,
        exp: session.expires_at,
        jti,
        iss: settings.issuer,
        aud: settings.audience,
    };
    let access_token = tokens::sign(&claims, &signing_key.kid, &signing_key.pkcs8_der())?;
    sessions::sweep_expired(db, SWEEP_PER_LOGIN).await?;
    ctx.user_id = Some(user.public.id.clone());
    ctx.event(Event::info(
        "login.succeeded",
        json!({ "user_id": user.public.id, "username": user.public.username, "client": client_address }),
    ));
    Ok(Reply::ok(&json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "user": user.public,
    }))
    .header(http::header::CACHE_CONTROL, "no-store"))
}
