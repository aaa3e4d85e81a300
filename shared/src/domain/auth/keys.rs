//! The token keys. Login signs with a private key only it can read: the `jwt_private_key`
//! variable (granted to login alone), or one it generates and keeps in the `signing` key-value
//! store (granted to login alone). Every other component verifies with public keys: the one the
//! operator pins in `jwt_public_key`, or, when none is pinned, the public keys login publishes
//! in SQLite by key id. Pinning is what production should do: then no component with database
//! access can slip in a key of its own.
//!
//! Keys change only with a deployment (or, for generated ones, never), so an instance keeps
//! what it loaded.

use std::cell::RefCell;
use std::collections::HashMap;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::domain::secrets::{Candidate, elected_key};
use crate::platform::config;
use crate::platform::crypto::{hex_sha256, random_bytes};
use crate::platform::db::{Db, Param};
use crate::platform::kv::KvStore;
use crate::web::ApiError;

/// An Ed25519 key pair with its id (the first 16 hex digits of the public key's SHA-256).
#[derive(Clone)]
pub struct KeyPair {
    pub kid: String,
    seed: [u8; 32],
    pub public: [u8; 32],
}

impl KeyPair {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        Self {
            kid: key_id(&public),
            seed,
            public,
        }
    }

    /// The private key as PKCS#8 DER, the form the JWT library signs with.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        SigningKey::from_bytes(&self.seed)
            .to_pkcs8_der()
            .expect("an Ed25519 key encodes")
            .as_bytes()
            .to_vec()
    }

    /// A PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519`).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        SigningKey::from_pkcs8_pem(pem.trim())
            .map(|key| Self::from_seed(key.to_bytes()))
            .map_err(|error| format!("not an Ed25519 PKCS#8 PEM private key: {error}"))
    }
}

pub fn key_id(public: &[u8; 32]) -> String {
    hex_sha256(public)[..16].to_owned()
}

/// A SubjectPublicKeyInfo PEM public key (`openssl pkey -pubout`): its id and bytes.
pub fn public_key_from_pem(pem: &str) -> Result<(String, [u8; 32]), String> {
    VerifyingKey::from_public_key_pem(pem.trim())
        .map(|key| (key_id(&key.to_bytes()), key.to_bytes()))
        .map_err(|error| format!("not an Ed25519 SubjectPublicKeyInfo PEM public key: {error}"))
}

thread_local! {
    static SIGNING: RefCell<Option<KeyPair>> = const { RefCell::new(None) };
    static PUBLIC: RefCell<HashMap<String, [u8; 32]>> = RefCell::new(HashMap::new());
}

/// Login's signing key (configured or generated), its public half published for verifiers.
pub async fn signing_key(db: &Db) -> Result<KeyPair, ApiError> {
    if let Some(pair) = SIGNING.with(|cached| cached.borrow().clone()) {
        return Ok(pair);
    }
    let configured = config::get("jwt_private_key").await?;
    let pair = if configured.trim().is_empty() {
        generated_signing_key(db).await?
    } else {
        KeyPair::from_pem(&configured).map_err(|detail| {
            ApiError::internal(anyhow::anyhow!(
                "configuration variable \"jwt_private_key\": {detail}"
            ))
        })?
    };
    db.execute(
        "INSERT OR IGNORE INTO signing_keys (kid, public_key, created_at) VALUES (?, ?, ?)",
        [
            Param::Text(pair.kid.clone()),
            Param::Blob(pair.public.to_vec()),
            Param::Text(crate::platform::time::now_rfc3339()),
        ],
    )
    .await?;
    SIGNING.with(|cached| *cached.borrow_mut() = Some(pair.clone()));
    Ok(pair)
}

async fn generated_signing_key(db: &Db) -> Result<KeyPair, ApiError> {
    let make = || {
        let seed = random_bytes::<32>()
            .map_err(|error| ApiError::internal(anyhow::anyhow!("no randomness: {error}")))?;
        Ok(Candidate {
            id: KeyPair::from_seed(seed).kid,
            secret: seed.to_vec(),
        })
    };
    let (_, seed) = elected_key(db, KvStore::SigningKeys, "signing", make).await?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| {
        ApiError::internal(anyhow::anyhow!("the stored signing key is not 32 bytes"))
    })?;
    Ok(KeyPair::from_seed(seed))
}

/// The public key a token's `kid` names: the pinned one, or one login published.
pub async fn verifying_key(kid: &str) -> Result<[u8; 32], ApiError> {
    let unknown = || ApiError::invalid_token("the token is not valid");
    let pinned = config::get("jwt_public_key").await?;
    if !pinned.trim().is_empty() {
        let (pinned_kid, public) = public_key_from_pem(&pinned).map_err(|detail| {
            ApiError::internal(anyhow::anyhow!(
                "configuration variable \"jwt_public_key\": {detail}"
            ))
        })?;
        return if pinned_kid == kid {
            Ok(public)
        } else {
            Err(unknown())
        };
    }
    if let Some(public) = PUBLIC.with(|keys| keys.borrow().get(kid).copied()) {
        return Ok(public);
    }
    let rows = crate::platform::db::connect()
        .await?
        .query(
            "SELECT public_key FROM signing_keys WHERE kid = ?",
            [Param::Text(kid.to_owned())],
        )
        .await?;
    let stored: Vec<u8> = rows.first().ok_or_else(unknown)?.get("public_key")?;
    let public: [u8; 32] = stored.try_into().map_err(|_| unknown())?;
    if key_id(&public) != kid {
        return Err(unknown());
    }
    PUBLIC.with(|keys| keys.borrow_mut().insert(kid.to_owned(), public));
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
    const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJm/NhFg7lfNLCXGOtJPDyx5qLgfDrS6RyHCuIFMY/eR\n-----END PRIVATE KEY-----\n";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEADw0in0PT3+u9Ue7BLJx+QRs9h7iqpWIVFsy7zJn0yEM=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn pem_keys_parse_and_their_ids_match() {
        let pair = KeyPair::from_pem(PRIVATE_PEM).unwrap();
        let (kid, public) = public_key_from_pem(PUBLIC_PEM).unwrap();
        assert_eq!(public, pair.public);
        assert_eq!(kid, pair.kid);
        assert_eq!(pair.kid.len(), 16);
        assert!(KeyPair::from_pem("not a key").is_err());
        assert!(public_key_from_pem(PRIVATE_PEM).is_err());
    }
}
