//! Tokens and sessions. A login issues an HS256 JWT (RFC 8725 practice: one pinned algorithm,
//! issuer and audience checked, short lifetime) and stores a session under the token's `jti`
//! in the key-value store; [`authenticate`] accepts a token only while its session exists, so
//! logout and revocation take effect everywhere at once.
//!
//! The signing secret is the `jwt_secret` variable. When it is empty the app makes its own:
//! 256 random bits, elected once through SQLite (`INSERT OR IGNORE`, so two first requests
//! agree) and published in the key-value store where every component reads it.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::accounts::Role;
use crate::db::{Db, Param};
use crate::error::ApiError;
use crate::http::RequestCtx;

/// Where the generated secret is published.
const GENERATED_SECRET_KEY: &str = "app:jwt-secret";
const SECRET_BYTES: usize = 32;

/// Token settings, from the component's variables.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub ttl_seconds: i64,
    pub leeway_seconds: u64,
    pub admin_usernames: Vec<String>,
}

impl TokenConfig {
    pub async fn load() -> Result<Self, ApiError> {
        Ok(Self {
            issuer: crate::config::get("jwt_issuer").await?,
            audience: crate::config::get("jwt_audience").await?,
            ttl_seconds: crate::config::parse("jwt_ttl_seconds", |s: &i64| {
                (60..=86_400).contains(s)
            })
            .await?,
            leeway_seconds: crate::config::parse("jwt_leeway_seconds", |s: &u64| *s <= 300).await?,
            admin_usernames: crate::config::list("admin_usernames").await?,
        })
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub iss: String,
    pub aud: String,
}

/// The server-side record of a login, stored under `session:<jti>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// When the account was created (so authenticate needs no database read).
    pub user_created_at: String,
    pub created_at: String,
    pub expires_at: i64,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

pub fn session_key(jti: &str) -> String {
    format!("session:{jti}")
}

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

/// The HS256 key, from the `jwt_secret` variable or generated once for the app.
pub async fn signing_secret(ctx: &mut RequestCtx) -> Result<Vec<u8>, ApiError> {
    let configured = crate::config::get("jwt_secret").await?;
    if !configured.is_empty() {
        if configured.len() < SECRET_BYTES {
            return Err(ApiError::internal(anyhow::anyhow!(
                "jwt_secret is set but shorter than {SECRET_BYTES} bytes; refusing to sign or verify with it"
            )));
        }
        return Ok(configured.into_bytes());
    }
    // Once elected, the generated secret never changes: an instance may keep it.
    thread_local! {
        static GENERATED: std::cell::RefCell<Option<Vec<u8>>> =
            const { std::cell::RefCell::new(None) };
    }
    if let Some(secret) = GENERATED.with(|cached| cached.borrow().clone()) {
        return Ok(secret);
    }
    let secret = match ctx.kv().await?.get_raw(GENERATED_SECRET_KEY).await? {
        Some(secret) if secret.len() == SECRET_BYTES => secret,
        _ => {
            let secret = elect_generated_secret(&*ctx.db().await?).await?;
            ctx.kv()
                .await?
                .set_raw(GENERATED_SECRET_KEY, &secret)
                .await?;
            secret
        }
    };
    GENERATED.with(|cached| *cached.borrow_mut() = Some(secret.clone()));
    Ok(secret)
}

/// Proposes a fresh random secret; the first proposal stored wins and every caller gets it.
async fn elect_generated_secret(db: &Db) -> Result<Vec<u8>, ApiError> {
    let mut candidate = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut candidate)
        .map_err(|error| ApiError::internal(anyhow::anyhow!("no randomness: {error}")))?;
    db.execute(
        "INSERT OR IGNORE INTO app_secrets (name, value, created_at) VALUES ('jwt', ?, ?)",
        [
            Param::Blob(candidate),
            Param::Text(crate::time::now_rfc3339()),
        ],
    )
    .await?;
    let rows = db
        .query("SELECT value FROM app_secrets WHERE name = 'jwt'", [])
        .await?;
    let secret: Vec<u8> = rows
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the elected secret vanished")))?
        .get("value")?;
    Ok(secret)
}

pub fn sign(claims: &Claims, secret: &[u8]) -> Result<String, ApiError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|error| ApiError::internal(anyhow::anyhow!("cannot sign a token: {error}")))
}

/// Checks signature, algorithm (HS256 only), issuer, audience, `exp` and `nbf` (with the
/// configured leeway) and the presence of every claim.
pub fn verify(token: &str, secret: &[u8], config: &TokenConfig) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = config.leeway_seconds;
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
        .map(|data| data.claims)
        .map_err(|error| {
            ApiError::invalid_token(match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                    "the token was not issued for this service"
                }
                _ => "the token is not valid",
            })
        })
}

/// The bearer token of the request, if it sent one (RFC 6750 section 2.1).
pub fn bearer_token(ctx: &RequestCtx) -> Option<&str> {
    let value = ctx.header(http::header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.trim())
}

/// The one authentication check every component uses: a valid token whose session is still
/// stored and whose role is still the one the operator grants. Records the user on `ctx`.
pub async fn authenticate(ctx: &mut RequestCtx) -> Result<AuthUser, ApiError> {
    let token = bearer_token(ctx)
        .ok_or_else(ApiError::missing_token)?
        .to_owned();
    let config = TokenConfig::load().await?;
    let secret = signing_secret(ctx).await?;
    let claims = verify(&token, &secret, &config)?;

    let session: Session = ctx
        .kv()
        .await?
        .get(&session_key(&claims.jti))
        .await?
        .ok_or_else(|| ApiError::invalid_token("the session has ended; sign in again"))?;
    if session.user_id != claims.sub || session.role != claims.role {
        return Err(ApiError::invalid_token(
            "the token does not match its session",
        ));
    }
    let granted = Role::granted_to(&session.username, &config.admin_usernames);
    if granted != session.role {
        return Err(ApiError::invalid_token(
            "your role has changed; sign in again",
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

/// Ends sessions: removes them from the key-value store (the token dies at once) and from the
/// SQLite index of sessions.
pub async fn end_sessions(ctx: &mut RequestCtx, jtis: &[String]) -> Result<(), ApiError> {
    for jti in jtis {
        ctx.kv().await?.delete(&session_key(jti)).await?;
    }
    if !jtis.is_empty() {
        let placeholders = vec!["?"; jtis.len()].join(", ");
        ctx.db()
            .await?
            .execute(
                &format!("DELETE FROM sessions WHERE jti IN ({placeholders})"),
                jtis.iter().map(|jti| Param::Text(jti.clone())),
            )
            .await?;
    }
    Ok(())
}

/// Ends the sessions whose ids `select` (a query returning `jti`) finds; returns how many.
async fn end_selected_sessions(
    ctx: &mut RequestCtx,
    select: &str,
    params: Vec<Param>,
) -> Result<usize, ApiError> {
    let rows = ctx.db().await?.query(select, params).await?;
    let jtis = rows
        .iter()
        .map(|row| row.get::<String>("jti"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    end_sessions(ctx, &jtis).await?;
    Ok(jtis.len())
}

/// Ends every session of a user (role change, account deletion, "log out everywhere").
pub async fn end_user_sessions(ctx: &mut RequestCtx, user_id: &str) -> Result<usize, ApiError> {
    end_selected_sessions(
        ctx,
        "SELECT jti FROM sessions WHERE user_id = ?",
        vec![Param::Text(user_id.to_owned())],
    )
    .await
}

/// Ends up to `limit` sessions whose expiry has passed (their records would otherwise stay in
/// the key-value store forever: it has no expiry of its own).
pub async fn sweep_expired_sessions(ctx: &mut RequestCtx, limit: i64) -> Result<usize, ApiError> {
    end_selected_sessions(
        ctx,
        "SELECT jti FROM sessions WHERE expires_at < ? ORDER BY expires_at LIMIT ?",
        vec![
            Param::Integer(crate::time::unix_seconds()),
            Param::Integer(limit),
        ],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TokenConfig {
        TokenConfig {
            issuer: "spin-backend".into(),
            audience: "spin-backend-api".into(),
            ttl_seconds: 3600,
            leeway_seconds: 5,
            admin_usernames: vec![],
        }
    }

    fn claims(now: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            name: "ada".into(),
            role: Role::User,
            iat: now,
            nbf: now,
            exp: now + 3600,
            jti: "j1".into(),
            iss: "spin-backend".into(),
            aud: "spin-backend-api".into(),
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let now = crate::time::unix_seconds();
        let token = sign(&claims(now), SECRET).unwrap();
        assert_eq!(verify(&token, SECRET, &config()).unwrap(), claims(now));
    }

    #[test]
    fn expired_future_and_foreign_tokens_are_rejected() {
        let now = crate::time::unix_seconds();
        let mut expired = claims(now - 7200);
        expired.exp = now - 60;
        assert!(verify(&sign(&expired, SECRET).unwrap(), SECRET, &config()).is_err());
        let mut early = claims(now);
        early.nbf = now + 600;
        assert!(verify(&sign(&early, SECRET).unwrap(), SECRET, &config()).is_err());
        let mut other_issuer = claims(now);
        other_issuer.iss = "someone-else".into();
        assert!(verify(&sign(&other_issuer, SECRET).unwrap(), SECRET, &config()).is_err());
        let token = sign(&claims(now), b"another-secret-another-secret-xx").unwrap();
        assert!(verify(&token, SECRET, &config()).is_err());
    }

    #[test]
    fn the_leeway_tolerates_small_clock_skew() {
        let now = crate::time::unix_seconds();
        let mut just_expired = claims(now - 3600);
        just_expired.exp = now - 2;
        assert!(verify(&sign(&just_expired, SECRET).unwrap(), SECRET, &config()).is_ok());
    }

    #[test]
    fn other_algorithms_and_unsigned_tokens_are_rejected() {
        let now = crate::time::unix_seconds();
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(now),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(verify(&hs512, SECRET, &config()).is_err());
        let token = sign(&claims(now), SECRET).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verify(&unsigned, SECRET, &config()).is_err());
    }
}
