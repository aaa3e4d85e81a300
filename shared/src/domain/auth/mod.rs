//! Who is calling: the one authentication check every component uses, [`authenticate`]. A
//! request is authenticated by an EdDSA access token (see [`tokens`]) whose session (see
//! [`sessions`]) still exists and still carries the token's role.

pub mod keys;
pub mod sessions;
pub mod tokens;

use crate::domain::accounts::Role;
use crate::web::{ApiError, RequestCtx};

/// Who made the request, as established by [`authenticate`].
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub created_at: String,
    pub jti: String,
    pub session_expires_at: i64,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The bearer token of the request, if it sent one (RFC 6750 section 2.1).
pub fn bearer_token(ctx: &RequestCtx) -> Option<&str> {
    let value = ctx.header(http::header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// A valid token whose session is still stored with the token's user and role. Records the
/// user on `ctx` for the access log.
pub async fn authenticate(ctx: &mut RequestCtx) -> Result<AuthUser, ApiError> {
    let token = bearer_token(ctx).ok_or_else(ApiError::missing_token)?;
    let claims = verified_claims(token).await?;
    let session = sessions::find(&claims.jti)
        .await?
        .ok_or_else(|| ApiError::invalid_token("the session has ended; sign in again"))?;
    if session.user_id != claims.sub || session.role != claims.role {
        return Err(ApiError::invalid_token(
            "the token does not match its session",
        ));
    }
    ctx.user_id = Some(claims.sub.clone());
    Ok(AuthUser {
        id: claims.sub,
        username: session.username,
        role: session.role,
        created_at: session.user_created_at,
        jti: claims.jti,
        session_expires_at: session.expires_at,
    })
}

/// The claims of a token whose signature, issuer, audience and times check out.
async fn verified_claims(token: &str) -> Result<tokens::Claims, ApiError> {
    let leeway = tokens::leeway_seconds().await?;
    let now = crate::platform::time::unix_seconds();
    if let Some(claims) = tokens::remembered(token, now, leeway) {
        return Ok(claims);
    }
    let kid = tokens::key_id(token)?;
    let public = keys::verifying_key(&kid).await?;
    let settings = tokens::TokenSettings::load().await?;
    let claims = tokens::verify(token, &public, &settings, leeway)?;
    tokens::remember(token, &claims, now);
    Ok(claims)
}

/// Like [`authenticate`], or `None` when the request carries no credentials at all (an
/// invalid token is still a 401).
pub async fn authenticate_if_present(ctx: &mut RequestCtx) -> Result<Option<AuthUser>, ApiError> {
    if bearer_token(ctx).is_none() {
        return Ok(None);
    }
    authenticate(ctx).await.map(Some)
}

/// [`authenticate`], then insists on the admin role (403 otherwise).
pub async fn require_admin(ctx: &mut RequestCtx) -> Result<AuthUser, ApiError> {
    let user = authenticate(ctx).await?;
    if !user.is_admin() {
        return Err(ApiError::Forbidden(
            "this endpoint is for administrators".into(),
        ));
    }
    Ok(user)
}
