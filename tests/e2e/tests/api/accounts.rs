//! Registration, login, authentication, logout, roles, throttling and deletion.

use std::time::{Duration, Instant};

use e2e::PASSWORD;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_user_registers_logs_in_authenticates_and_logs_out() {
    let app = spawn_app().await;
    let user = app
        .post_json(
            "/auth/register",
            &json!({"username": "Ada", "password": PASSWORD, "email": "ada@example.org"}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(user["username"], "Ada");
    assert_eq!(user["role"], "user");
    assert!(user["id"].as_str().unwrap().len() == 36);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        user.as_object().unwrap().len(),
        4,
        "only the public fields: {user}"
    );

    let login = app.login_response("ada", PASSWORD).await.expect(200);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let login = login.json();
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 3600);
    assert_eq!(login["user"], user);
    let token = login["access_token"].as_str().unwrap();

    let me = app
        .get_with_token("/auth/authenticate", token)
        .await
        .expect(200)
        .json();
    assert_eq!(me["user"], user);
    let expires_in = me["session"]["expires_in"].as_i64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{me}");

    app.send(
        app.request(reqwest::Method::POST, "/auth/logout")
            .bearer_auth(token),
    )
    .await
    .expect(204);
    let after = app.get_with_token("/auth/authenticate", token).await;
    assert_eq!(
        after.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    after.problem(401);
}

#[tokio::test]
async fn the_token_carries_the_standard_claims() {
    let app = spawn_app().await;
    let (user, token) = app.signed_in_user("grace").await;
    let claims = crate::tokens::payload(&token);
    for claim in [
        "sub", "name", "role", "iat", "nbf", "exp", "jti", "iss", "aud",
    ] {
        assert!(claims.get(claim).is_some(), "missing {claim}: {claims}");
    }
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["name"], "grace");
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["iss"], "spin-backend");
    assert_eq!(claims["aud"], "spin-backend-api");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let header = crate::tokens::header(&token);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"].as_str().map(str::len), Some(16));
}

#[tokio::test]
async fn usernames_are_unique_whatever_their_case() {
    let app = spawn_app().await;
    app.register("Linus", PASSWORD).await;
    for variant in ["Linus", "linus", "LINUS"] {
        let body = app
            .post_json(
                "/auth/register",
                &json!({"username": variant, "password": PASSWORD}),
            )
            .await
            .problem(409);
        assert!(body["detail"].as_str().unwrap().contains("taken"));
    }
    // Either case logs in to the one account.
    app.login("lInUs", PASSWORD).await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_username_create_one_account() {
    let app = spawn_app().await;
    let app = &app;
    let attempts = (0..6).map(|i| async move {
        let username = if i % 2 == 0 { "twin" } else { "TWIN" };
        app.post_json(
            "/auth/register",
            &json!({"username": username, "password": PASSWORD}),
        )
        .await
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|reply| reply.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        5,
        "{statuses:?}"
    );
}

async fn invalid_fields(app: &TestApp, body: Value) -> Vec<(String, String)> {
    let problem = app.post_json("/auth/register", &body).await.problem(422);
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_invalid_registration_field_is_reported() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"username": "ab", "password": PASSWORD}),
            "username",
            "3 to 32",
        ),
        (
            json!({"username": "a".repeat(33), "password": PASSWORD}),
            "username",
            "3 to 32",
        ),
        (
            json!({"username": "bad name", "password": PASSWORD}),
            "username",
            "only letters",
        ),
        (
            json!({"username": "_lead", "password": PASSWORD}),
            "username",
            "start with",
        ),
        (
            json!({"username": "zoë123", "password": PASSWORD}),
            "username",
            "only letters",
        ),
        (
            json!({"username": 42, "password": PASSWORD}),
            "username",
            "string",
        ),
        (json!({"password": PASSWORD}), "username", "required"),
        (
            json!({"username": "ok_name", "password": "short"}),
            "password",
            "at least 10",
        ),
        (
            json!({"username": "ok_name", "password": "x".repeat(129)}),
            "password",
            "at most 128",
        ),
        (
            json!({"username": "ok_name", "password": "Password123"}),
            "password",
            "too common",
        ),
        (
            json!({"username": "ok_name", "password": "qwertyuiop"}),
            "password",
            "too common",
        ),
        (
            json!({"username": "longusername", "password": "LongUserName"}),
            "password",
            "username",
        ),
        (json!({"username": "ok_name"}), "password", "required"),
        (
            json!({"username": "ok_name", "password": PASSWORD, "email": "nope"}),
            "email",
            "e-mail",
        ),
        (
            json!({"username": "ok_name", "password": PASSWORD, "admin": true}),
            "admin",
            "not a known field",
        ),
        (
            json!({"username": "ok_name", "password": PASSWORD, "role": "admin"}),
            "role",
            "not a known field",
        ),
    ];
    for (body, field, detail) in cases {
        let errors = invalid_fields(&app, body.clone()).await;
        assert!(
            errors.iter().any(|(f, d)| f == field && d.contains(detail)),
            "{body} -> {errors:?}"
        );
    }
    let all = invalid_fields(
        &app,
        json!({"username": "x", "password": "y", "email": "z"}),
    )
    .await;
    assert_eq!(all.len(), 3, "all problems at once: {all:?}");
    // Nothing was created along the way.
    app.login_response("ok_name", PASSWORD).await.problem(401);
}

#[tokio::test]
async fn malformed_oversized_and_non_json_bodies_get_their_own_statuses() {
    let app = spawn_app().await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.send(
            app.request(reqwest::Method::POST, "/auth/register")
                .header("content-type", content_type)
                .body(body),
        )
    };
    let problem = raw("{\"username\": ", "application/json")
        .await
        .problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    raw("username=ada", "application/x-www-form-urlencoded")
        .await
        .problem(415);
    raw("{}", "text/plain").await.problem(415);
    raw("[1, 2]", "application/json").await.problem(422);
    raw("\"text\"", "application/json; charset=utf-8")
        .await
        .problem(422);

    let huge = json!({"username": "ada", "password": "x".repeat(70_000)});
    let problem = app.post_json("/auth/register", &huge).await.problem(413);
    assert!(problem["detail"].as_str().unwrap().contains("65536"));
    let reply = app
        .send(app.request(reqwest::Method::GET, "/auth/register"))
        .await;
    assert_eq!(reply.header("allow"), Some("POST"));
    reply.problem(405);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer_in_comparable_time() {
    let app =
        spawn_app_with(|config| config.variable("login_max_failures_per_user_client", "100")).await;
    app.register("known", PASSWORD).await;

    let mut wrong_password = Vec::new();
    let mut unknown_user = Vec::new();
    let mut bodies = Vec::new();
    for round in 0..5 {
        for (username, times) in [
            ("known", &mut wrong_password),
            ("nobody-here", &mut unknown_user),
        ] {
            let started = Instant::now();
            let reply = app
                .post_json(
                    "/auth/login",
                    &json!({"username": username, "password": format!("wrong password {round}")}),
                )
                .await;
            times.push(started.elapsed());
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
            bodies.push(reply.problem(401));
        }
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );

    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (known, unknown) = (median(&mut wrong_password), median(&mut unknown_user));
    // Both pay for one argon2id verification (tens of milliseconds), the unknown user against
    // a dummy hash; a skipped hash would be over ten times faster.
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "wrong password {known:?} vs unknown user {unknown:?}"
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_until_the_window_passes() {
    let app = spawn_app_with(|config| {
        config
            .variable("login_max_failures_per_user_client", "3")
            .variable("login_throttle_window_seconds", "2")
    })
    .await;
    app.register("target", PASSWORD).await;
    for _ in 0..3 {
        app.login_response("target", "wrong password!")
            .await
            .problem(401);
    }
    let throttled = app.login_response("target", PASSWORD).await;
    let retry_after: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    throttled.problem(429);
    // Another username is not affected.
    app.login_response("someone-else", "wrong password!")
        .await
        .problem(401);

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    app.login("target", PASSWORD).await;
}

#[tokio::test]
async fn a_successful_login_resets_the_usernames_failures() {
    let app =
        spawn_app_with(|config| config.variable("login_max_failures_per_user_client", "3")).await;
    app.register("forgetful", PASSWORD).await;
    for _ in 0..2 {
        app.login_response("forgetful", "wrong password!")
            .await
            .problem(401);
    }
    app.login("forgetful", PASSWORD).await;
    for _ in 0..3 {
        app.login_response("forgetful", "wrong password!")
            .await
            .problem(401);
    }
    app.login_response("forgetful", PASSWORD).await.problem(429);
}

#[tokio::test]
async fn concurrent_guesses_get_exactly_the_allowed_number_of_tries() {
    let app =
        spawn_app_with(|config| config.variable("login_max_failures_per_user_client", "3")).await;
    app.register("victim", PASSWORD).await;
    let app = &app;
    let guesses = (0..12).map(|i| async move {
        app.login_response("victim", &format!("guess number {i}"))
            .await
    });
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|reply| reply.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn failures_from_one_client_are_throttled_across_usernames() {
    let app = spawn_app_with(|config| config.variable("login_max_failures_per_client", "4")).await;
    for i in 0..4 {
        app.login_response(&format!("spray{i}"), "wrong password!")
            .await
            .problem(401);
    }
    app.login_response("spray9", "wrong password!")
        .await
        .problem(429);
}

#[tokio::test]
async fn the_client_address_comes_from_the_trusted_header_when_configured() {
    let app = spawn_app_with(|config| {
        config
            .variable("login_max_failures_per_client", "2")
            .variable("client_ip_header", "x-forwarded-for")
    })
    .await;
    let attempt = |client: &'static str, user: &'static str| {
        app.send(
            app.request(reqwest::Method::POST, "/auth/login")
                .header("x-forwarded-for", format!("198.51.100.7, {client}"))
                .json(&json!({"username": user, "password": "wrong password!"})),
        )
    };
    attempt("203.0.113.1", "a1").await.problem(401);
    attempt("203.0.113.1", "a2").await.problem(401);
    attempt("203.0.113.1", "a3").await.problem(429);
    attempt("203.0.113.2", "a4").await.problem(401);
}

#[tokio::test]
async fn registering_a_name_meant_for_an_admin_never_yields_admin() {
    let app = spawn_app().await;
    // Names an operator might have in mind for administrators are ordinary names here.
    for name in ["admin", "root", "ada", "operator"] {
        let user = app.register(name, PASSWORD).await;
        assert_eq!(user["role"], "user");
        let login = app.login_response(name, PASSWORD).await.expect(200).json();
        assert_eq!(login["user"]["role"], "user");
        let token = login["access_token"].as_str().unwrap();
        assert_eq!(crate::tokens::payload(token)["role"], "user");
        app.get_with_token("/logs", token).await.problem(403);
    }
}

#[tokio::test]
async fn the_bootstrap_credential_makes_one_admin_once_and_only_for_a_signed_in_caller() {
    let app = spawn_app().await;
    let bootstrap = |token: Option<String>, credential: &str| {
        let request = app
            .request(reqwest::Method::POST, "/auth/bootstrap")
            .json(&json!({ "bootstrap_token": credential }));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        app.send(request)
    };
    bootstrap(None, e2e::BOOTSTRAP_TOKEN).await.problem(401);
    let (_, first) = app.signed_in_user("first").await;
    bootstrap(
        Some(first.clone()),
        "a-wrong-credential-of-a-decent-length!!",
    )
    .await
    .problem(403);
    let granted = bootstrap(Some(first.clone()), e2e::BOOTSTRAP_TOKEN)
        .await
        .expect(200)
        .json();
    assert_eq!(granted["role"], "admin");
    // The old token carried the old role: it ended with the change.
    app.get_with_token("/auth/authenticate", &first)
        .await
        .problem(401);
    let admin = app.login("first", PASSWORD).await;
    assert_eq!(
        app.get_with_token("/auth/authenticate", &admin)
            .await
            .expect(200)
            .json()["user"]["role"],
        "admin"
    );
    let (_, second) = app.signed_in_user("second").await;
    let problem = bootstrap(Some(second), e2e::BOOTSTRAP_TOKEN)
        .await
        .problem(403);
    assert!(problem["detail"].as_str().unwrap().contains("already used"));
}

#[tokio::test]
async fn bootstrapping_is_off_unless_the_operator_sets_a_long_credential() {
    let app = spawn_app_with(|config| config.variable("admin_bootstrap_token", "")).await;
    let (_, token) = app.signed_in_user("hopeful").await;
    let problem = app
        .post_json_with_token("/auth/bootstrap", &json!({"bootstrap_token": ""}), &token)
        .await
        .problem(403);
    assert!(problem["detail"].as_str().unwrap().contains("not enabled"));
    let short = spawn_app_with(|config| config.variable("admin_bootstrap_token", "short")).await;
    let (_, token) = short.signed_in_user("hopeful").await;
    short
        .post_json_with_token(
            "/auth/bootstrap",
            &json!({"bootstrap_token": "short"}),
            &token,
        )
        .await
        .problem(403);
}

/// `PUT /auth/users/{username}/role` as `token`.
async fn set_role(app: &TestApp, token: &str, username: &str, role: &str) -> e2e::Reply {
    app.send(
        app.request(
            reqwest::Method::PUT,
            &format!("/auth/users/{username}/role"),
        )
        .bearer_auth(token)
        .json(&json!({ "role": role })),
    )
    .await
}

#[tokio::test]
async fn an_admin_grants_and_revokes_roles_and_revoking_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let root = app.admin("root").await;
    let (_, helper) = app.signed_in_user("helper").await;
    set_role(&app, &helper, "helper", "admin")
        .await
        .problem(403);
    let granted = set_role(&app, &root, "helper", "admin")
        .await
        .expect(200)
        .json();
    assert_eq!(granted["role"], "admin");
    app.get_with_token("/auth/authenticate", &helper)
        .await
        .problem(401);
    let helper = app.login("helper", PASSWORD).await;
    app.get_with_token("/logs", &helper).await.expect(200);

    set_role(&app, &root, "helper", "user").await.expect(200);
    // The very next request with the admin token is refused.
    app.get_with_token("/logs", &helper).await.problem(401);
    let helper = app.login("helper", PASSWORD).await;
    app.get_with_token("/logs", &helper).await.problem(403);

    set_role(&app, &root, "root", "user").await.problem(409);
    set_role(&app, &root, "nobody", "admin").await.problem(404);
    set_role(&app, &root, "helper", "superuser")
        .await
        .problem(422);
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session() {
    let app = spawn_app().await;
    app.register("traveller", PASSWORD).await;
    let laptop = app.login("traveller", PASSWORD).await;
    let phone = app.login("traveller", PASSWORD).await;
    app.get_with_token("/auth/authenticate", &phone)
        .await
        .expect(200);
    app.send(
        app.request(reqwest::Method::POST, "/auth/logout?everywhere=true")
            .bearer_auth(&laptop),
    )
    .await
    .expect(204);
    app.get_with_token("/auth/authenticate", &laptop)
        .await
        .problem(401);
    app.get_with_token("/auth/authenticate", &phone)
        .await
        .problem(401);
}

#[tokio::test]
async fn deleting_an_account_ends_its_sessions_and_only_owners_and_admins_may() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in_user("alice").await;
    let (_, bob) = app.signed_in_user("bob").await;
    let (_, carol) = app.signed_in_user("carol").await;
    let boss = app.admin("boss").await;
    let delete = |username: &str, token: &str| {
        app.send(
            app.request(reqwest::Method::DELETE, &format!("/auth/users/{username}"))
                .bearer_auth(token),
        )
    };
    delete("bob", &alice).await.problem(403);
    delete("alice", &alice).await.expect(204);
    app.get_with_token("/auth/authenticate", &alice)
        .await
        .problem(401);
    app.login_response("alice", PASSWORD).await.problem(401);
    delete("BOB", &boss).await.expect(204);
    app.get_with_token("/auth/authenticate", &bob)
        .await
        .problem(401);
    delete("nobody", &boss).await.problem(404);
    app.get_with_token("/auth/authenticate", &carol)
        .await
        .expect(200);
    app.send(app.request(reqwest::Method::DELETE, "/auth/users/carol"))
        .await
        .problem(401);
    // The username is not given out again, in any case.
    for name in ["alice", "ALICE", "bob"] {
        app.post_json(
            "/auth/register",
            &json!({"username": name, "password": PASSWORD}),
        )
        .await
        .problem(409);
    }
    // The last admin cannot delete itself away.
    delete("boss", &boss).await.problem(409);
}

#[tokio::test]
async fn sessions_and_the_generated_secret_survive_a_restart() {
    let mut app = spawn_app().await;
    let (_, token) = app.signed_in_user("steady").await;
    app.restart().await;
    app.get_with_token("/auth/authenticate", &token)
        .await
        .expect(200);
}

#[tokio::test]
async fn a_configured_signing_key_that_is_not_a_key_is_refused() {
    let app = spawn_app_with(|config| config.variable("jwt_private_key", "short")).await;
    app.register("quiet", PASSWORD).await;
    app.login_response("quiet", PASSWORD).await.problem(500);
    assert!(app.spin.output().contains("jwt_private_key"));
}

#[tokio::test]
async fn password_hashes_tokens_and_passwords_never_leak() {
    let app = spawn_app().await;
    let (user, token) = app.signed_in_user("private").await;
    let hash: String = open_database(&app)
        .query_row(
            "SELECT password_hash FROM users WHERE username_key = 'private'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    let me = app
        .get_with_token("/auth/authenticate", &token)
        .await
        .text();
    for body in [user.to_string(), me] {
        assert!(
            !body.contains("$argon2") && !body.contains("password"),
            "{body}"
        );
    }
    let logs = app.spin.output();
    for secret in [PASSWORD, &token, &hash] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}
