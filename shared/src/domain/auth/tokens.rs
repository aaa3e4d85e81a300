//! Access tokens: EdDSA (Ed25519) JWTs, following RFC 8725: one pinned algorithm, issuer and
//! audience checked, every claim required, a short lifetime. Only login holds the private key;
//! everything else verifies with the public key named by the token's `kid`.

use std::cell::RefCell;
use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::domain::accounts::Role;
use crate::platform::config;
use crate::web::ApiError;

/// Token settings, from the component's variables.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
}

impl TokenSettings {
    pub async fn load() -> Result<Self, ApiError> {
        Ok(Self {
            issuer: config::get("jwt_issuer").await?,
            audience: config::get("jwt_audience").await?,
        })
    }
}

/// How long tokens (and their sessions) last, for the component that issues them.
pub async fn ttl_seconds() -> Result<i64, ApiError> {
    Ok(config::parse("jwt_ttl_seconds", |s: &i64| (60..=86_400).contains(s)).await?)
}

/// The clock skew tolerated on `exp` and `nbf`, for components that verify.
pub async fn leeway_seconds() -> Result<u64, ApiError> {
    Ok(config::parse("jwt_leeway_seconds", |s: &u64| *s <= 300).await?)
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

/// Signs `claims` with the Ed25519 key `pkcs8_der`, naming it `kid` in the header.
pub fn sign(claims: &Claims, kid: &str, pkcs8_der: &[u8]) -> Result<String, ApiError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(pkcs8_der))
        .map_err(|error| ApiError::internal(anyhow::anyhow!("cannot sign a token: {error}")))
}

/// The key id a token names in its header, if it is an EdDSA token at all.
pub fn key_id(token: &str) -> Result<String, ApiError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| ApiError::invalid_token("the token is not valid"))?;
    match (header.alg, header.kid) {
        (Algorithm::EdDSA, Some(kid)) => Ok(kid),
        _ => Err(ApiError::invalid_token("the token is not valid")),
    }
}

/// Checks the signature with `public_key` (32 bytes), the algorithm (EdDSA only), issuer,
/// audience, `exp` and `nbf` (with `leeway_seconds`) and the presence of every claim.
pub fn verify(
    token: &str,
    public_key: &[u8; 32],
    settings: &TokenSettings,
    leeway_seconds: u64,
) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = leeway_seconds;
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_ed_der(public_key), &validation)
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

/// Most tokens an instance remembers as verified.
const VERIFIED_CAPACITY: usize = 1024;

thread_local! {
    /// Tokens whose signature and claims this instance has checked, until their `exp`: a token
    /// cannot change, and checking an Ed25519 signature costs more than the rest of a request.
    /// The session behind a token is still checked on every request.
    static VERIFIED: RefCell<HashMap<String, Claims>> = RefCell::new(HashMap::new());
}

/// The claims of `token` if this instance verified it and it has not expired since.
pub fn remembered(token: &str, now: i64, leeway_seconds: u64) -> Option<Claims> {
    VERIFIED.with(|verified| {
        let claims = verified.borrow().get(token).cloned()?;
        (claims.exp + leeway_seconds as i64 > now).then_some(claims)
    })
}

/// Remembers a verified token (see [`remembered`]); expired ones make room first.
pub fn remember(token: &str, claims: &Claims, now: i64) {
    VERIFIED.with(|verified| {
        let mut verified = verified.borrow_mut();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, claims| claims.exp > now);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), claims.clone());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth::keys::KeyPair;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "spin-backend".into(),
            audience: "spin-backend-api".into(),
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

    fn pair(seed: u8) -> KeyPair {
        KeyPair::from_seed([seed; 32])
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let now = crate::platform::time::unix_seconds();
        let keys = pair(1);
        let token = sign(&claims(now), &keys.kid, &keys.pkcs8_der()).unwrap();
        assert_eq!(key_id(&token).unwrap(), keys.kid);
        assert_eq!(
            verify(&token, &keys.public, &settings(), 5).unwrap(),
            claims(now)
        );
    }

    #[test]
    fn expired_future_foreign_and_otherwise_signed_tokens_are_rejected() {
        let now = crate::platform::time::unix_seconds();
        let keys = pair(1);
        let signed = |c: &Claims| sign(c, &keys.kid, &keys.pkcs8_der()).unwrap();
        let mut expired = claims(now - 7200);
        expired.exp = now - 60;
        assert!(verify(&signed(&expired), &keys.public, &settings(), 5).is_err());
        let mut early = claims(now);
        early.nbf = now + 600;
        assert!(verify(&signed(&early), &keys.public, &settings(), 5).is_err());
        let mut other_issuer = claims(now);
        other_issuer.iss = "someone-else".into();
        assert!(verify(&signed(&other_issuer), &keys.public, &settings(), 5).is_err());
        let stranger = pair(2);
        let forged = sign(&claims(now), &keys.kid, &stranger.pkcs8_der()).unwrap();
        assert!(verify(&forged, &keys.public, &settings(), 5).is_err());
    }

    #[test]
    fn the_leeway_tolerates_small_clock_skew() {
        let now = crate::platform::time::unix_seconds();
        let keys = pair(1);
        let mut just_expired = claims(now - 3600);
        just_expired.exp = now - 2;
        let token = sign(&just_expired, &keys.kid, &keys.pkcs8_der()).unwrap();
        assert!(verify(&token, &keys.public, &settings(), 5).is_ok());
        assert!(verify(&token, &keys.public, &settings(), 0).is_err());
    }

    #[test]
    fn hmac_and_unsigned_tokens_are_rejected() {
        let now = crate::platform::time::unix_seconds();
        let keys = pair(1);
        // An HS256 token "signed" with the public key, the classic algorithm-confusion attack.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.kid.clone());
        let confused = jsonwebtoken::encode(
            &header,
            &claims(now),
            &EncodingKey::from_secret(&keys.public),
        )
        .unwrap();
        assert!(key_id(&confused).is_err());
        assert!(verify(&confused, &keys.public, &settings(), 5).is_err());
        let token = sign(&claims(now), &keys.kid, &keys.pkcs8_der()).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(key_id(&unsigned).is_err());
        assert!(verify(&unsigned, &keys.public, &settings(), 5).is_err());
    }

    #[test]
    fn remembered_tokens_expire_with_their_claims() {
        let now = 1_000_000;
        let mut short = claims(now);
        short.exp = now + 10;
        remember("t", &short, now);
        assert!(remembered("t", now + 5, 0).is_some());
        assert!(remembered("t", now + 10, 0).is_none());
        assert!(remembered("other", now, 0).is_none());
    }
}
