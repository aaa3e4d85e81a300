//! Every way a bearer token can be wrong gets a 401 with the RFC 6750 challenge. Tokens are
//! EdDSA: these tests give the app a known key pair (the operator's `jwt_private_key` and the
//! pinned `jwt_public_key`) so they can forge tokens as an attacker would.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::*;

/// The operator's key pair (`openssl genpkey -algorithm ed25519`, `openssl pkey -pubout`).
const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJm/NhFg7lfNLCXGOtJPDyx5qLgfDrS6RyHCuIFMY/eR\n-----END PRIVATE KEY-----\n";
const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEADw0in0PT3+u9Ue7BLJx+QRs9h7iqpWIVFsy7zJn0yEM=\n-----END PUBLIC KEY-----\n";
/// A key pair the app has never seen.
const STRANGER_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIL9rM3ddC/Tim7a+fJxdAx4QOCPYvFcXPfMTwSfRdAV0\n-----END PRIVATE KEY-----\n";

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub fn header(token: &str) -> Value {
    decode_part(token, 0)
}

pub fn payload(token: &str) -> Value {
    decode_part(token, 1)
}

/// The DER inside a PEM block.
fn der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

/// Signs `claims` with an Ed25519 private key, naming `kid` in the header.
fn sign_eddsa(claims: &Value, kid: &str, private_pem: &str) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_der(&der(private_pem)),
    )
    .unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let reply = app.get_with_token("/auth/authenticate", token).await;
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\""),
        "{why}"
    );
    assert_eq!(reply.status, 401, "{why}: {}", reply.text());
}

/// An app with the operator's key pair, a signed-in user, that user's genuine token and the
/// key id the app signs with.
async fn app_with_known_key() -> (TestApp, String, Value, String) {
    let app = spawn_app_with(|config| {
        config
            .variable("jwt_private_key", PRIVATE_PEM)
            .variable("jwt_public_key", PUBLIC_PEM)
    })
    .await;
    let (_, token) = app.signed_in_user("mallory").await;
    let claims = payload(&token);
    let kid = header(&token)["kid"].as_str().unwrap().to_owned();
    (app, token, claims, kid)
}

#[tokio::test]
async fn the_genuine_token_and_a_re_signed_identical_one_are_accepted() {
    let (app, token, claims, kid) = app_with_known_key().await;
    assert_eq!(header(&token)["alg"], "EdDSA");
    app.get_with_token("/auth/authenticate", &token)
        .await
        .expect(200);
    // Same claims, same key: proves the refusals below are about the change, not the tooling.
    let resigned = sign_eddsa(&claims, &kid, PRIVATE_PEM);
    app.get_with_token("/auth/authenticate", &resigned)
        .await
        .expect(200);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let (app, _, claims, kid) = app_with_known_key().await;
    let now = claims["iat"].as_i64().unwrap();
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 60);
    assert_refused(&app, &sign_eddsa(&expired, &kid, PRIVATE_PEM), "expired").await;
    let mut early = claims.clone();
    early["nbf"] = json!(now + 600);
    assert_refused(
        &app,
        &sign_eddsa(&early, &kid, PRIVATE_PEM),
        "not yet valid",
    )
    .await;
}

#[tokio::test]
async fn tampered_payloads_and_signatures_are_refused() {
    let (app, token, claims, kid) = app_with_known_key().await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut promoted = claims.clone();
    promoted["role"] = json!("admin");
    let tampered_payload = format!("{}.{}.{}", parts[0], encode_part(&promoted), parts[2]);
    assert_refused(&app, &tampered_payload, "tampered payload").await;

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 0x01;
    let tampered_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert_refused(&app, &tampered_signature, "tampered signature").await;

    // Even correctly signed, a token whose claims differ from its session is refused.
    assert_refused(
        &app,
        &sign_eddsa(&promoted, &kid, PRIVATE_PEM),
        "role not in session",
    )
    .await;
}

#[tokio::test]
async fn unsigned_hmac_and_other_algorithm_tokens_are_refused() {
    let (app, token, claims, kid) = app_with_known_key().await;
    let body = token.split('.').nth(1).unwrap();
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{body}.",
            encode_part(&json!({"alg": alg, "typ": "JWT", "kid": kid}))
        );
        assert_refused(&app, &unsigned, alg).await;
    }
    // Algorithm confusion: an HMAC "signed" with the public key, which everyone may know.
    for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.clone());
        let confused = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&der(PUBLIC_PEM)[12..]),
        )
        .unwrap();
        assert_refused(&app, &confused, &format!("{algorithm:?}")).await;
    }
}

#[tokio::test]
async fn wrong_issuer_audience_key_or_key_id_are_refused() {
    let (app, _, claims, kid) = app_with_known_key().await;
    let mut issuer = claims.clone();
    issuer["iss"] = json!("someone-else");
    assert_refused(&app, &sign_eddsa(&issuer, &kid, PRIVATE_PEM), "issuer").await;
    let mut audience = claims.clone();
    audience["aud"] = json!("another-api");
    assert_refused(&app, &sign_eddsa(&audience, &kid, PRIVATE_PEM), "audience").await;
    assert_refused(
        &app,
        &sign_eddsa(&claims, &kid, STRANGER_PEM),
        "another key",
    )
    .await;
    assert_refused(
        &app,
        &sign_eddsa(&claims, "0123456789abcdef", PRIVATE_PEM),
        "another key id",
    )
    .await;
}

/// The key id the app gives a public key: the first 16 hex digits of its SHA-256.
fn key_id(public_pem: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&der(public_pem)[12..]);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

const STRANGER_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAkmXFwWcm6bdD91CO9Z1Mza87pZqj7b1PZu33qvRtOBY=\n-----END PUBLIC KEY-----\n";

#[tokio::test]
async fn a_pinned_public_key_refuses_keys_slipped_into_the_database() {
    let (app, _, claims, kid) = app_with_known_key().await;
    assert_eq!(kid, key_id(PUBLIC_PEM));
    // Someone with write access to the database publishes a key of their own, under its id.
    let stranger_kid = key_id(STRANGER_PUBLIC_PEM);
    open_database(&app)
        .execute(
            "INSERT INTO signing_keys (kid, public_key, created_at) VALUES (?, ?, 'now')",
            rusqlite::params![stranger_kid, &der(STRANGER_PUBLIC_PEM)[12..]],
        )
        .unwrap();
    let forged = sign_eddsa(&claims, &stranger_kid, STRANGER_PEM);
    assert_refused(
        &app,
        &forged,
        "a key published in the database but not pinned",
    )
    .await;
    // A key id that is not the digest of the key stored under it is refused as well.
    open_database(&app)
        .execute(
            "INSERT INTO signing_keys (kid, public_key, created_at) VALUES ('ffffffffffffffff', ?, 'now')",
            rusqlite::params![&der(STRANGER_PUBLIC_PEM)[12..]],
        )
        .unwrap();
    let unpinned = spawn_app().await;
    let (_, token) = unpinned.signed_in_user("victim").await;
    let claims = payload(&token);
    open_database(&unpinned)
        .execute(
            "INSERT INTO signing_keys (kid, public_key, created_at) VALUES ('ffffffffffffffff', ?, 'now')",
            rusqlite::params![&der(STRANGER_PUBLIC_PEM)[12..]],
        )
        .unwrap();
    let mislabelled = sign_eddsa(&claims, "ffffffffffffffff", STRANGER_PEM);
    assert_refused(
        &unpinned,
        &mislabelled,
        "a key id that is not its key's digest",
    )
    .await;
}

#[tokio::test]
async fn with_a_pinned_public_key_only_that_key_signs() {
    let app = spawn_app_with(|config| config.variable("jwt_public_key", PUBLIC_PEM)).await;
    app.register("victim", e2e::PASSWORD).await;
    // Login signs with a generated key, which the pinned key does not match.
    let token = app.login("victim", e2e::PASSWORD).await;
    assert_refused(&app, &token, "signed by a key other than the pinned one").await;
}

#[tokio::test]
async fn a_well_signed_token_without_a_session_is_refused() {
    let (app, _, claims, kid) = app_with_known_key().await;
    let mut forged = claims.clone();
    forged["jti"] = json!("00000000-0000-4000-8000-000000000000");
    assert_refused(&app, &sign_eddsa(&forged, &kid, PRIVATE_PEM), "no session").await;
}

#[tokio::test]
async fn logged_out_tokens_are_refused_everywhere() {
    let (app, token, _, _) = app_with_known_key().await;
    app.send(
        app.request(reqwest::Method::POST, "/auth/logout")
            .bearer_auth(&token),
    )
    .await
    .expect(204);
    assert_refused(&app, &token, "after logout").await;
    let again = app
        .send(
            app.request(reqwest::Method::POST, "/auth/logout")
                .bearer_auth(&token),
        )
        .await;
    again.problem(401);
}

#[tokio::test]
async fn garbage_and_missing_credentials_are_refused() {
    let app = spawn_app().await;
    for garbage in ["not-a-jwt", "a.b.c", "...", "eyJhbGciOiJIUzI1NiJ9.e30."] {
        assert_refused(&app, garbage, garbage).await;
    }
    let missing = app.get("/auth/authenticate").await;
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    missing.problem(401);
    let basic = app
        .send(
            app.request(reqwest::Method::GET, "/auth/authenticate")
                .header("authorization", "Basic YWRhOnB3"),
        )
        .await;
    basic.problem(401);
}
