//! Roles are a property of an account. An admin grants and revokes them; the first admin is
//! made by the operator's bootstrap credential (the `admin_bootstrap_token` variable, secret and
//! granted to this component alone), which works once per credential and only for a caller who
//! is already signed in. A role change ends the account's sessions, so it takes effect on the
//! account's very next request.

use serde_json::json;
use shared::domain::accounts::{self, Role};
use shared::domain::auth::{AuthUser, authenticate, require_admin, sessions};
use shared::domain::throttle::{self, Limit};
use shared::platform::crypto::{constant_time_eq, hex_sha256};
use shared::platform::db::{self, Db, Param};
use shared::platform::{config, time};
use shared::web::input::as_str;
use shared::{ApiError, Event, PathParams, Reply, RequestCtx};

/// A bootstrap credential shorter than this is refused: it must not be guessable.
const MIN_BOOTSTRAP_CHARS: usize = 32;
/// Wrong bootstrap credentials allowed per client per hour.
const BOOTSTRAP_ATTEMPTS: Limit = Limit {
    scope: "bootstrap_client",
    max: 10,
    window_seconds: 3600,
};

pub async fn set_role(ctx: &mut RequestCtx, params: PathParams) -> Result<Reply, ApiError> {
    let admin = require_admin(ctx).await?;
    let mut body = ctx.json_body().await?;
    let role = body.required("role", |v| {
        Role::parse(as_str(v)?).ok_or_else(|| "must be user or admin".to_owned())
    });
    let role = body.finish(role)?;
    let db = db::connect().await?;
    let target = accounts::find_public_user(&db, params.get("username"))
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    if target.role == Role::Admin && role == Role::User {
        ensure_another_admin(&db, &target.id).await?;
    }
    let ended = change_role(ctx, &db, &target.id, role, &admin.id).await?;
    Ok(Reply::ok(&json!({
        "username": target.username,
        "role": role,
        "sessions_ended": ended,
    })))
}

/// 409 unless an admin other than `user_id` remains: the app never locks itself out.
pub async fn ensure_another_admin(db: &Db, user_id: &str) -> Result<(), ApiError> {
    let others = db
        .query_integer(
            "SELECT count(*) FROM users WHERE role = 'admin' AND deleted_at IS NULL AND id != ?",
            [Param::Text(user_id.to_owned())],
        )
        .await?;
    if others == 0 {
        return Err(ApiError::Conflict(
            "this is the only administrator; make another one first".into(),
        ));
    }
    Ok(())
}

/// Gives `user_id` `role` and ends its sessions; returns how many ended.
async fn change_role(
    ctx: &mut RequestCtx,
    db: &Db,
    user_id: &str,
    role: Role,
    by: &str,
) -> Result<usize, ApiError> {
    let previous = accounts::set_role(db, user_id, role)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    let ended = sessions::end_all_of_user(db, user_id).await?;
    ctx.event(Event::info(
        "user.role_changed",
        json!({ "user_id": user_id, "from": previous, "to": role, "by": by, "sessions_ended": ended }),
    ));
    Ok(ended)
}

pub async fn bootstrap(ctx: &mut RequestCtx, _: PathParams) -> Result<Reply, ApiError> {
    let caller = authenticate(ctx).await?;
    let mut body = ctx.json_body().await?;
    let offered = body.required("bootstrap_token", |v| as_str(v).map(str::to_owned));
    let offered = body.finish(offered)?;
    let db = db::connect().await?;
    check_bootstrap_credential(ctx, &db, &offered).await?;
    claim_bootstrap(&db, &caller, &offered).await?;
    let ended = change_role(ctx, &db, &caller.id, Role::Admin, "bootstrap").await?;
    Ok(Reply::ok(&json!({
        "username": caller.username,
        "role": Role::Admin,
        "sessions_ended": ended,
        "detail": "you are an administrator now; sign in again to get a token with the role",
    })))
}

/// 403 unless `offered` is the configured credential (compared in constant time), with wrong
/// guesses throttled per client.
async fn check_bootstrap_credential(
    ctx: &mut RequestCtx,
    db: &Db,
    offered: &str,
) -> Result<(), ApiError> {
    let configured = config::get("admin_bootstrap_token").await?;
    if configured.chars().count() < MIN_BOOTSTRAP_CHARS {
        return Err(ApiError::Forbidden(
            "bootstrapping an administrator is not enabled: the operator sets admin_bootstrap_token (at least 32 characters) to enable it".into(),
        ));
    }
    let client = ctx.client_address(&config::get("client_ip_header").await?);
    let client_key = client.as_ref().map_or("unknown", |c| c.key.as_str());
    throttle::check(db, &BOOTSTRAP_ATTEMPTS, client_key)
        .await?
        .map_err(|throttled| {
            throttled.into_error("too many wrong bootstrap credentials; try again later")
        })?;
    if !constant_time_eq(configured.as_bytes(), offered.as_bytes()) {
        let _ = throttle::take(db, &BOOTSTRAP_ATTEMPTS, client_key).await?;
        ctx.event(Event::warn(
            "admin.bootstrap_refused",
            json!({ "client": client_key }),
        ));
        return Err(ApiError::Forbidden(
            "the bootstrap credential is not valid".into(),
        ));
    }
    Ok(())
}

/// Records the credential as used by `caller`; 403 if it was used before.
async fn claim_bootstrap(db: &Db, caller: &AuthUser, credential: &str) -> Result<(), ApiError> {
    let claimed = db
        .query(
            "INSERT OR IGNORE INTO admin_bootstraps (credential_hash, user_id, used_at)
             VALUES (?, ?, ?) RETURNING user_id",
            [
                Param::Text(hex_sha256(credential.as_bytes())),
                Param::Text(caller.id.clone()),
                Param::Text(time::now_rfc3339()),
            ],
        )
        .await?;
    if claimed.is_empty() {
        return Err(ApiError::Forbidden(
            "this bootstrap credential was already used; the operator sets a new one to bootstrap again".into(),
        ));
    }
    Ok(())
}
