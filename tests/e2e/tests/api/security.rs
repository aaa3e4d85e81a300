//! Attacks, tried as an attacker would: cheap ways to make unauthenticated calls expensive, to
//! lock someone else out, to pass for another client, to tamper with the log unseen, and the
//! smaller leaks. (Admin by name, reused names and forged tokens are in accounts.rs and
//! tokens.rs.)

use serde_json::{Value, json};

use crate::helpers::*;
use e2e::PASSWORD;

/// A login attempt that claims to come from `client` through a trusted proxy header.
async fn login_from(app: &TestApp, client: &str, username: &str, password: &str) -> e2e::Reply {
    app.send(
        app.request(reqwest::Method::POST, "/auth/login")
            .header("x-forwarded-for", client)
            .json(&json!({"username": username, "password": password})),
    )
    .await
}

async fn register_from(app: &TestApp, client: &str, username: &str) -> e2e::Reply {
    app.send(
        app.request(reqwest::Method::POST, "/auth/register")
            .header("x-forwarded-for", client)
            .json(&json!({"username": username, "password": PASSWORD})),
    )
    .await
}

#[tokio::test]
async fn a_stranger_guessing_from_one_client_does_not_lock_the_owner_out() {
    let app = spawn_app_with(|config| {
        config
            .variable("client_ip_header", "x-forwarded-for")
            .variable("login_max_failures_per_user_client", "3")
    })
    .await;
    app.register("owner", PASSWORD).await;
    for _ in 0..3 {
        login_from(&app, "203.0.113.66", "owner", "a wrong guess!")
            .await
            .problem(401);
    }
    login_from(&app, "203.0.113.66", "owner", PASSWORD)
        .await
        .problem(429);
    // The owner, from anywhere else, signs in at once.
    login_from(&app, "198.51.100.10", "owner", PASSWORD)
        .await
        .expect(200);
    login_from(&app, "2001:db8:1:2::10", "owner", PASSWORD)
        .await
        .expect(200);
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64_network() {
    let app = spawn_app_with(|config| {
        config
            .variable("client_ip_header", "x-forwarded-for")
            .variable("login_max_failures_per_client", "3")
    })
    .await;
    // Rotating the interface identifier inside one /64 is one client.
    for (i, address) in [
        "2001:db8:7:7::1",
        "2001:db8:7:7:ffff::2",
        "2001:db8:7:7:1:2:3:4",
    ]
    .iter()
    .enumerate()
    {
        login_from(&app, address, &format!("sprayed{i}"), "a wrong guess!")
            .await
            .problem(401);
    }
    login_from(&app, "2001:db8:7:7:abcd::9", "sprayed9", "a wrong guess!")
        .await
        .problem(429);
    login_from(&app, "2001:db8:7:8::1", "sprayed9", "a wrong guess!")
        .await
        .problem(401);
}

#[tokio::test]
async fn a_client_cannot_pass_for_another_by_sending_spins_own_header() {
    let app = spawn_app_with(|config| config.variable("login_max_failures_per_client", "2")).await;
    // Spin adds the real peer after any spin-client-addr a client sends; only Spin's counts.
    for spoofed in ["198.51.100.1:1", "198.51.100.2:1", "198.51.100.3:1"] {
        let reply = app
            .send(
                app.request(reqwest::Method::POST, "/auth/login")
                    .header("spin-client-addr", spoofed)
                    .json(&json!({"username": "someone", "password": "a wrong guess!"})),
            )
            .await;
        if spoofed.starts_with("198.51.100.3") {
            reply.problem(429);
        } else {
            reply.problem(401);
        }
    }
}

#[tokio::test]
async fn registrations_are_limited_per_client_and_the_name_is_checked_before_any_hash() {
    let app = spawn_app_with(|config| {
        config
            .variable("client_ip_header", "x-forwarded-for")
            .variable("register_max_per_client", "3")
    })
    .await;
    for i in 0..3 {
        register_from(&app, "203.0.113.5", &format!("newcomer{i}"))
            .await
            .expect(201);
    }
    let throttled = register_from(&app, "203.0.113.5", "newcomer9").await;
    assert!(throttled.header("retry-after").is_some());
    throttled.problem(429);
    // A taken name is refused before the throttle (and before hashing): a 409, not a 429.
    register_from(&app, "203.0.113.5", "newcomer0")
        .await
        .problem(409);
    register_from(&app, "203.0.113.6", "newcomer9")
        .await
        .expect(201);
}

#[tokio::test]
async fn throttle_rows_and_failed_login_entries_stay_small() {
    let app = spawn_app().await;
    let admin = app.admin("auditor").await;
    let long_name = "x".repeat(5_000);
    app.login_response(&long_name, "a wrong guess!")
        .await
        .problem(401);
    let subject_length: i64 = open_database(&app)
        .query_row("SELECT max(length(subject)) FROM throttle", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(subject_length <= 160, "{subject_length}");
    let entries = app
        .eventually(|| async {
            let page = app
                .get_with_token("/logs?event=login.failed", &admin)
                .await
                .expect(200)
                .json();
            let entries = page["entries"].as_array().unwrap().clone();
            (!entries.is_empty()).then_some(entries)
        })
        .await;
    let stored = entries[0]["fields"].to_string();
    assert!(stored.len() < 1_000, "{} bytes", stored.len());
    // Expired rows are swept by later logins.
    open_database(&app)
        .execute("UPDATE throttle SET expires_at = 0", [])
        .unwrap();
    app.login_response("someone", "a wrong guess!")
        .await
        .problem(401);
    let expired: i64 = open_database(&app)
        .query_row(
            "SELECT count(*) FROM throttle WHERE expires_at = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(expired, 0);
}

/// Waits until at least `n` entries of `component` are stored (they are, shortly after their
/// responses).
async fn stored(app: &TestApp, component: &str, n: i64) {
    app.eventually(|| async {
        let count: i64 = open_database(app)
            .query_row(
                "SELECT count(*) FROM log_entries WHERE component = ?",
                [component],
                |r| r.get(0),
            )
            .unwrap();
        (count >= n).then_some(())
    })
    .await;
}

/// Seals and walks the log's chain.
async fn verify(app: &TestApp, admin: &str) -> Value {
    app.get_with_token("/logs/verify", admin)
        .await
        .expect(200)
        .json()
}

/// Recomputes an unkeyed SHA-256 link the way an attacker without the key would.
fn sha256_link(previous: &str, row: &[rusqlite::types::Value]) -> String {
    use sha2::Digest;
    let text = format!(
        "{previous}\n{}",
        serde_json::to_string(&row_json(row)).unwrap()
    );
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn row_json(row: &[rusqlite::types::Value]) -> Value {
    use rusqlite::types::Value as V;
    Value::Array(
        row.iter()
            .map(|value| match value {
                V::Integer(i) => json!(i),
                V::Text(t) => json!(t),
                _ => Value::Null,
            })
            .collect(),
    )
}

#[tokio::test]
async fn rewriting_the_log_and_recomputing_its_links_without_the_key_is_detected() {
    let app = spawn_app().await;
    let admin = app.admin("auditor").await;
    for _ in 0..5 {
        app.get("/health").await.expect(200);
    }
    stored(&app, "health", 5).await;
    assert_eq!(verify(&app, &admin).await["valid"], true);
    // The attacker edits an entry and recomputes every later link with plain SHA-256.
    let db = open_database(&app);
    let mut rows: Vec<(i64, Vec<rusqlite::types::Value>)> = {
        let mut statement = db
            .prepare(
                "SELECT id, at, at_ms, level, component, event, request_id, user_id, method,
                        route, status, duration_us, fields
                 FROM log_entries WHERE hash IS NOT NULL ORDER BY id",
            )
            .unwrap();
        statement
            .query_map([], |row| {
                let values = (0..13)
                    .map(|i| row.get::<_, rusqlite::types::Value>(i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((row.get(0)?, values))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    rows[1].1[10] = rusqlite::types::Value::Integer(500);
    let mut previous = e2e_genesis();
    for (id, row) in &rows {
        let link = sha256_link(&previous, row);
        db.execute(
            "UPDATE log_entries SET status = ?, hash = ? WHERE id = ?",
            rusqlite::params![row[10], link, id],
        )
        .unwrap();
        previous = link;
    }
    db.execute("UPDATE log_chain SET head_hash = ?", [&previous])
        .unwrap();
    let report = verify(&app, &admin).await;
    assert_eq!(report["valid"], false, "{report}");
}

fn e2e_genesis() -> String {
    "0".repeat(64)
}

#[tokio::test]
async fn moving_the_chains_anchor_or_head_is_detected() {
    let app = spawn_app().await;
    let admin = app.admin("auditor").await;
    for _ in 0..5 {
        app.get("/health").await.expect(200);
    }
    stored(&app, "health", 5).await;
    let report = verify(&app, &admin).await;
    assert_eq!(report["valid"], true);
    // Deleting the oldest entries and moving the anchor past them, as retention would.
    let db = open_database(&app);
    let (id, hash): (i64, String) = db
        .query_row(
            "SELECT id, hash FROM log_entries ORDER BY id LIMIT 1 OFFSET 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    db.execute("DELETE FROM log_entries WHERE id <= ?", [id])
        .unwrap();
    db.execute(
        "UPDATE log_chain SET anchor_id = ?, anchor_hash = ?",
        rusqlite::params![id, hash],
    )
    .unwrap();
    let report = verify(&app, &admin).await;
    assert_eq!(report["valid"], false, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("MAC"),
        "{report}"
    );
}

#[tokio::test]
async fn retention_records_each_prune_in_the_chain_and_verify_reports_the_unsealed_tail() {
    let app = spawn_app().await;
    let admin = app.admin("auditor").await;
    for _ in 0..5 {
        app.get("/health").await.expect(200);
    }
    stored(&app, "health", 5).await;
    let forty_days_ms = 40 * 86_400_000_i64;
    open_database(&app)
        .execute(
            "UPDATE log_entries SET at_ms = at_ms - ?1 WHERE id IN (SELECT id FROM log_entries ORDER BY id LIMIT 3) AND hash IS NULL",
            [forty_days_ms],
        )
        .unwrap();
    let report = verify(&app, &admin).await;
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["anchor_id"], 3);
    let pruned = app
        .get_with_token("/logs?event=log.pruned", &admin)
        .await
        .expect(200)
        .json();
    let entry = &pruned["entries"][0];
    assert_eq!(entry["fields"]["removed_through"], 3, "{pruned}");
    assert_eq!(
        entry["sealed"], true,
        "the prune is itself in the chain: {entry}"
    );
    // Entries stored after the seal are reported as not yet checked.
    let unsealed = &report["unsealed"];
    assert!(unsealed["entries"].as_i64().is_some(), "{report}");
}

#[tokio::test]
async fn the_change_feed_is_bounded_and_shows_no_user_ids_to_anonymous_callers() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let admin = app.admin("auditor").await;
    let big = "y".repeat(4_900);
    for i in 0..80 {
        app.post_json_with_token(
            "/catalog/items",
            &json!({"title": format!("Big {i}"), "description": big, "category": "book",
                    "price": {"amount": 1, "currency": "EUR"}}),
            &seller,
        )
        .await
        .expect(201);
    }
    let page = app.get("/catalog/events?after=0&limit=1000").await;
    assert!(page.body.len() < 400 * 1024, "{} bytes", page.body.len());
    let page = page.expect(200).json();
    let events = page["events"].as_array().unwrap();
    assert!(!events.is_empty() && events.len() < 80, "{}", events.len());
    assert!(events.iter().all(|event| event.get("actor_id").is_none()));
    let as_admin = app
        .get_with_token("/catalog/events?after=0&limit=5", &admin)
        .await
        .expect(200)
        .json();
    assert!(as_admin["events"][0]["actor_id"].is_string());
}

#[tokio::test]
async fn stock_changes_outside_the_range_are_422_for_any_number() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    let item = app
        .post_json_with_token(
            "/catalog/items",
            &json!({"title": "Widget", "category": "tools", "price": {"amount": 1, "currency": "EUR"}, "stock": 5}),
            &seller,
        )
        .await
        .expect(201)
        .json();
    let path = format!("/catalog/items/{}/stock", item["id"].as_str().unwrap());
    for delta in [
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(-1_000_000_001_i64),
        json!(0),
        json!(1e300),
    ] {
        app.post_json_with_token(&path, &json!({ "delta": delta }), &seller)
            .await
            .problem(422);
    }
}

#[tokio::test]
async fn text_refuses_control_characters_and_bidirectional_overrides() {
    let app = spawn_app().await;
    let (_, seller) = app.signed_in_user("seller").await;
    for (title, description) in [
        ("nul\u{0}title", "fine"),
        ("invoice\u{202E}fdp.exe", "fine"),
        ("fine", "bell\u{7}"),
        ("fine", "isolate\u{2067}"),
    ] {
        app.post_json_with_token(
            "/catalog/items",
            &json!({"title": title, "description": description, "category": "book",
                    "price": {"amount": 1, "currency": "EUR"}}),
            &seller,
        )
        .await
        .problem(422);
    }
}

#[tokio::test]
async fn an_unreadable_body_gets_a_plain_400() {
    let app = spawn_app().await;
    // A body that ends before its declared length.
    let mut stream =
        tokio::net::TcpStream::connect(app.spin.base_url.trim_start_matches("http://"))
            .await
            .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            b"POST /auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"username\"",
        )
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    if let Some(body) = answer.split("\r\n\r\n").nth(1) {
        for internal in ["Error", "hyper", "wasi", "stream", "{:?}"] {
            assert!(!body.contains(internal), "{body}");
        }
    }
}
