//! Every way a bearer token can be wrong gets a 401 with the RFC 6750 challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "an-operator-chosen-secret-of-48-bytes-0123456789";

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

fn sign(claims: &Value, algorithm: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
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

/// An app with a known signing secret, a signed-in user, and that user's genuine token.
async fn app_with_known_secret() -> (TestApp, String, Value) {
    let app = spawn_app_with(|config| config.variable("jwt_secret", SECRET)).await;
    let (_, token) = app.signed_in_user("mallory").await;
    let claims = payload(&token);
    (app, token, claims)
}

#[tokio::test]
async fn the_genuine_token_and_a_re_signed_identical_one_are_accepted() {
    let (app, token, claims) = app_with_known_secret().await;
    app.get_with_token("/auth/authenticate", &token)
        .await
        .expect(200);
    // Same claims, same key: proves the refusals below are about the change, not the tooling.
    let resigned = sign(&claims, Algorithm::HS256, SECRET);
    app.get_with_token("/auth/authenticate", &resigned)
        .await
        .expect(200);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let (app, _, claims) = app_with_known_secret().await;
    let now = claims["iat"].as_i64().unwrap();
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 60);
    assert_refused(&app, &sign(&expired, Algorithm::HS256, SECRET), "expired").await;
    let mut early = claims.clone();
    early["nbf"] = json!(now + 600);
    assert_refused(
        &app,
        &sign(&early, Algorithm::HS256, SECRET),
        "not yet valid",
    )
    .await;
}

#[tokio::test]
async fn tampered_payloads_and_signatures_are_refused() {
    let (app, token, claims) = app_with_known_secret().await;
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
        &sign(&promoted, Algorithm::HS256, SECRET),
        "role not in session",
    )
    .await;
}

#[tokio::test]
async fn unsigned_and_other_algorithm_tokens_are_refused() {
    let (app, token, claims) = app_with_known_secret().await;
    let body = token.split('.').nth(1).unwrap();
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{body}.",
            encode_part(&json!({"alg": alg, "typ": "JWT"}))
        );
        assert_refused(&app, &unsigned, alg).await;
    }
    assert_refused(&app, &sign(&claims, Algorithm::HS384, SECRET), "HS384").await;
    assert_refused(&app, &sign(&claims, Algorithm::HS512, SECRET), "HS512").await;
}

#[tokio::test]
async fn wrong_issuer_audience_or_key_are_refused() {
    let (app, _, claims) = app_with_known_secret().await;
    let mut issuer = claims.clone();
    issuer["iss"] = json!("someone-else");
    assert_refused(&app, &sign(&issuer, Algorithm::HS256, SECRET), "issuer").await;
    let mut audience = claims.clone();
    audience["aud"] = json!("another-api");
    assert_refused(&app, &sign(&audience, Algorithm::HS256, SECRET), "audience").await;
    let other_key = "a-different-secret-that-is-also-long-enough-42";
    assert_refused(
        &app,
        &sign(&claims, Algorithm::HS256, other_key),
        "other key",
    )
    .await;
}

#[tokio::test]
async fn a_well_signed_token_without_a_session_is_refused() {
    let (app, _, claims) = app_with_known_secret().await;
    let mut forged = claims.clone();
    forged["jti"] = json!("00000000-0000-4000-8000-000000000000");
    assert_refused(&app, &sign(&forged, Algorithm::HS256, SECRET), "no session").await;
}

#[tokio::test]
async fn logged_out_tokens_are_refused_everywhere() {
    let (app, token, _) = app_with_known_secret().await;
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
