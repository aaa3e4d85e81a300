//! Benchmark scenarios: what each one sends, to which app, after what setup.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::load::RequestFactory;

/// Which running app a scenario targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// bench/spin.toml: the bench-only floor components.
    Floors,
    /// spin.toml with default settings.
    App,
    /// spin.toml with `access_log=off`, to price logging.
    AppWithoutAccessLog,
    /// spin.toml on a state directory seeded with many items, listings and log entries.
    Seeded,
    /// The same seeded data (same ids) under `access_log=off`.
    SeededWithoutAccessLog,
}

/// The platform floor a scenario is read against: the storage (or the hash) it cannot avoid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Floor {
    /// Nothing but Spin: the hello component.
    Hello,
    /// One key-value `get` (a session lookup).
    KeyValue,
    /// One SQLite point read by primary key.
    Sqlite,
    /// One argon2id verification with the app's parameters (what a login cannot avoid).
    Argon2,
    /// One SQLite INSERT of a small row (one commit). The targets read writes against
    /// [`Floor::Sqlite`]; this floor is measured beside them, to show what Spin lets a write cost.
    SqliteWrite,
}

impl Floor {
    pub fn scenario(self) -> &'static str {
        match self {
            Floor::Hello => "hello",
            Floor::KeyValue => "kv-get",
            Floor::Sqlite => "sqlite-read",
            Floor::Argon2 => "argon2-verify",
            Floor::SqliteWrite => "sqlite-write",
        }
    }

    /// The floor a floor scenario measures.
    pub fn of_scenario(name: &str) -> Option<Floor> {
        [
            Floor::Hello,
            Floor::KeyValue,
            Floor::Sqlite,
            Floor::SqliteWrite,
            Floor::Argon2,
        ]
        .into_iter()
        .find(|floor| floor.scenario() == name)
    }
}

#[derive(Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub target: Target,
    pub floor: Floor,
    /// Whether the scenario is a GET whose one-connection latency is reported.
    pub get_route: bool,
    pub description: &'static str,
}

const fn scenario(
    name: &'static str,
    target: Target,
    floor: Floor,
    get_route: bool,
    description: &'static str,
) -> Scenario {
    Scenario {
        name,
        target,
        floor,
        get_route,
        description,
    }
}

use Floor::{Argon2, Hello, KeyValue, Sqlite};
use Target::{App, AppWithoutAccessLog, Floors, Seeded, SeededWithoutAccessLog};

pub const FLOORS: &[Scenario] = &[
    scenario(
        "hello",
        Floors,
        Hello,
        false,
        "GET /hello: the hello component, Spin's own floor",
    ),
    scenario(
        "kv-get",
        Floors,
        Hello,
        false,
        "GET /kv-get: one key-value get of a small value",
    ),
    scenario(
        "sqlite-read",
        Floors,
        Hello,
        false,
        "GET /sqlite-read: one SQLite read by primary key",
    ),
    scenario(
        "sqlite-write",
        Floors,
        Hello,
        false,
        "POST /sqlite-write: one SQLite INSERT of a small row (measured when a scenario stores one)",
    ),
    scenario(
        "argon2-verify",
        Floors,
        Hello,
        false,
        "GET /argon2-verify: one argon2id verification (measured when a scenario needs it)",
    ),
];

/// Whether a scenario's request stores a row in SQLite (so the write floor is measured beside it).
pub fn stores_a_row(name: &str) -> bool {
    name == "messages-write"
}

pub const SCENARIOS: &[Scenario] = &[
    scenario(
        "health",
        App,
        Sqlite,
        true,
        "GET /health (SQLite and key-value checks)",
    ),
    scenario(
        "openapi",
        App,
        Hello,
        true,
        "GET /openapi.json (47 KB, compiled in)",
    ),
    scenario(
        "authenticate",
        App,
        KeyValue,
        true,
        "GET /auth/authenticate with a valid token",
    ),
    scenario(
        "authenticate-no-access-log",
        AppWithoutAccessLog,
        KeyValue,
        false,
        "GET /auth/authenticate with access_log=off",
    ),
    scenario(
        "authenticate-32-users",
        App,
        KeyValue,
        false,
        "GET /auth/authenticate with 32 users' tokens in turn (the log indexes its entries by user)",
    ),
    scenario(
        "authenticate-32-users-no-access-log",
        AppWithoutAccessLog,
        KeyValue,
        false,
        "GET /auth/authenticate with 32 users' tokens in turn, access_log=off",
    ),
    scenario(
        "messages-read",
        App,
        Sqlite,
        true,
        "GET /messages?with=...&limit=50 (a page of a 200-message conversation)",
    ),
    scenario(
        "messages-inbox",
        App,
        Sqlite,
        true,
        "GET /messages?limit=50 (everything to and from the reader)",
    ),
    scenario("messages-one", App, Sqlite, true, "GET /messages/{id}"),
    scenario("messages-unread", App, Sqlite, true, "GET /messages/unread"),
    scenario(
        "messages-write",
        App,
        Sqlite,
        false,
        "POST /messages from 32 senders to one recipient",
    ),
    scenario(
        "catalog-get",
        Seeded,
        Sqlite,
        true,
        "GET /catalog/items/{id} over the seeded items",
    ),
    scenario(
        "catalog-get-no-access-log",
        SeededWithoutAccessLog,
        Sqlite,
        false,
        "GET /catalog/items/{id} over the same items with access_log=off",
    ),
    scenario(
        "catalog-search",
        Seeded,
        Sqlite,
        true,
        "GET /catalog/items?q=<word>&category=<category> over 200k items",
    ),
    scenario(
        "catalog-list",
        Seeded,
        Sqlite,
        true,
        "GET /catalog/items?category=<category>&sort=price (no text)",
    ),
    scenario(
        "catalog-categories",
        Seeded,
        Sqlite,
        true,
        "GET /catalog/categories over 200k items",
    ),
    scenario(
        "catalog-events",
        Seeded,
        Sqlite,
        true,
        "GET /catalog/events?after=<n>&limit=100",
    ),
    scenario(
        "logs-query",
        Seeded,
        Sqlite,
        true,
        "GET /logs?component=<component>&limit=50 over 1M entries",
    ),
    scenario(
        "logs-window",
        Seeded,
        Sqlite,
        true,
        "GET /logs?since=<3 days ago>&until=<a day ago>&limit=50 over 1M entries",
    ),
    scenario(
        "logs-status",
        Seeded,
        Sqlite,
        true,
        "GET /logs?status=4xx&limit=50 over 1M entries",
    ),
    scenario(
        "logs-stats",
        Seeded,
        Sqlite,
        true,
        "GET /logs/stats over the last hour of a 1M-entry log",
    ),
    scenario(
        "similarity-cached",
        App,
        KeyValue,
        false,
        "POST /similarity for 16 pairs, cached after the warm-up",
    ),
    scenario(
        "similarity-uncached",
        App,
        KeyValue,
        false,
        "POST /similarity for a new pair every time",
    ),
    scenario(
        "similarity-search",
        Seeded,
        Sqlite,
        false,
        "POST /similarity/search with k=10 over 100k listings",
    ),
    scenario(
        "login",
        App,
        Argon2,
        false,
        "POST /auth/login with the right password (argon2id-bound)",
    ),
    scenario(
        "login-no-access-log",
        AppWithoutAccessLog,
        Argon2,
        false,
        "POST /auth/login with access_log=off",
    ),
];

/// A named scenario or floor.
pub fn find(name: &str) -> Option<Scenario> {
    FLOORS
        .iter()
        .chain(SCENARIOS)
        .find(|scenario| scenario.name == name)
        .copied()
}

/// A client for setup calls (registering users, seeding data).
pub struct Setup {
    pub client: reqwest::Client,
    pub base_url: String,
    /// What was seeded into the Seeded target's state directory.
    pub seeded: Arc<crate::seed::Seeded>,
}

impl Setup {
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(
            status.is_success(),
            "setup POST {path} failed with {status}: {body}"
        );
        Ok(body)
    }

    /// Registers `username` (if new) and returns a fresh access token.
    pub async fn token_for(&self, username: &str) -> Result<String> {
        let credentials = json!({"username": username, "password": PASSWORD});
        let _ = self.post("/auth/register", &credentials, None).await;
        let login = self.post("/auth/login", &credentials, None).await?;
        login["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("login returned no token")
    }
}

pub const PASSWORD: &str = "benchmark password 2026";
const LOGIN_USERS: usize = 64;
/// Users whose tokens `authenticate-32-users` sends in turn, as a real service's instances see
/// many tokens: each instance then verifies up to this many signatures in its life instead of
/// one, and a flush of the access log holds many users' entries (a leaf each in its user index).
const AUTHENTICATE_USERS: usize = 32;

fn request(method: http::Method, uri: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::HOST, "127.0.0.1")
}

/// Real Ames houses from the model's reference files.
fn reference_houses() -> Result<Vec<Value>> {
    let path = e2e::workspace_root().join("models/reference-search.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(reference["listings"]
        .as_array()
        .context("listings")?
        .clone())
}

/// A required whole-number feature of the model and its range, to make pairs unique.
fn varied_feature() -> Result<(String, f64, f64)> {
    let path = e2e::workspace_root().join("models/ames-similarity.json");
    let metadata: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let feature = metadata["features"]
        .as_array()
        .context("features")?
        .iter()
        .find(|f| {
            f["type"] == "number"
                && f["required"] == true
                && !f["name"].as_str().unwrap_or("").starts_with("year")
        })
        .context("a required numeric feature")?;
    Ok((
        feature["name"].as_str().unwrap_or_default().to_owned(),
        feature["minimum"].as_f64().unwrap_or(0.0),
        feature["maximum"].as_f64().unwrap_or(1.0),
    ))
}

/// The moment `ms` milliseconds ago, as the API's timestamps are written.
fn rfc3339_ago(ms: i64) -> String {
    shared::platform::time::from_unix_millis(shared::platform::time::unix_millis() - ms)
        .map(shared::platform::time::format_rfc3339)
        .unwrap_or_default()
}

fn get(path: &'static str, token: Option<String>) -> RequestFactory {
    get_as(path, token.into_iter().collect())
}

/// GETs of `path` bearing `tokens` in turn, one per request (none: anonymous).
fn get_as(path: &'static str, tokens: Vec<String>) -> RequestFactory {
    Arc::new(move |n| {
        let mut builder = request(http::Method::GET, path);
        if !tokens.is_empty() {
            let token = &tokens[n as usize % tokens.len()];
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    })
}

/// Prepares a scenario against its app and returns what to send.
pub async fn prepare(scenario: &Scenario, setup: &Setup) -> Result<RequestFactory> {
    Ok(match scenario.name {
        "hello" => get("/hello", None),
        "kv-get" => get("/kv-get", None),
        "sqlite-read" => get("/sqlite-read", None),
        "sqlite-write" => Arc::new(|_| {
            request(http::Method::POST, "/sqlite-write")
                .body(Full::new(Bytes::new()))
                .unwrap()
        }),
        "argon2-verify" => get("/argon2-verify", None),
        "health" => get("/health", None),
        "openapi" => get("/openapi.json", None),
        "authenticate" | "authenticate-no-access-log" => get(
            "/auth/authenticate",
            Some(setup.token_for("bench-reader").await?),
        ),
        "authenticate-32-users" | "authenticate-32-users-no-access-log" => {
            let mut tokens = Vec::new();
            for i in 0..AUTHENTICATE_USERS {
                tokens.push(setup.token_for(&format!("bench-user-{i}")).await?);
            }
            get_as("/auth/authenticate", tokens)
        }
        "login" | "login-no-access-log" => {
            // One account per connection or so: the per-username throttle (rightly) refuses
            // more concurrent attempts on one account than its failure allowance.
            let users: Vec<String> = (0..LOGIN_USERS)
                .map(|i| format!("bench-login-{i}"))
                .collect();
            for user in &users {
                setup.token_for(user).await?;
            }
            let bodies: Vec<Bytes> = users
                .iter()
                .map(|user| {
                    Bytes::from(
                        serde_json::to_vec(&json!({"username": user, "password": PASSWORD}))
                            .unwrap(),
                    )
                })
                .collect();
            Arc::new(move |n| {
                request(http::Method::POST, "/auth/login")
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(bodies[n as usize % bodies.len()].clone()))
                    .unwrap()
            })
        }
        "messages-read" => {
            let reader = setup.token_for("bench-reader").await?;
            let writer = setup.token_for("bench-writer").await?;
            for i in 0..200 {
                let (token, to) = if i % 2 == 0 {
                    (&writer, "bench-reader")
                } else {
                    (&reader, "bench-writer")
                };
                setup
                    .post(
                        "/messages",
                        &json!({"to": to, "body": format!("message {i}")}),
                        Some(token),
                    )
                    .await?;
            }
            get("/messages?with=bench-writer&limit=50", Some(reader))
        }
        "messages-write" => {
            setup.token_for("bench-inbox").await?;
            let mut senders = Vec::new();
            for i in 0..32 {
                senders.push(setup.token_for(&format!("bench-sender-{i}")).await?);
            }
            let body = Bytes::from_static(br#"{"to":"bench-inbox","body":"A benchmark message of ordinary length, about a hundred characters or so."}"#);
            Arc::new(move |n| {
                request(http::Method::POST, "/messages")
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(
                        http::header::AUTHORIZATION,
                        format!("Bearer {}", senders[n as usize % senders.len()]),
                    )
                    .body(Full::new(body.clone()))
                    .unwrap()
            })
        }
        "catalog-get" | "catalog-get-no-access-log" => {
            let ids = setup.seeded.item_ids.clone();
            anyhow::ensure!(!ids.is_empty(), "nothing was seeded");
            Arc::new(move |n| {
                request(
                    http::Method::GET,
                    &format!("/catalog/items/{}", ids[(n as usize * 7919) % ids.len()]),
                )
                .body(Full::new(Bytes::new()))
                .unwrap()
            })
        }
        "catalog-search" => {
            let words = crate::seed::vocabulary(5_000);
            // Query words are drawn uniformly from the vocabulary the descriptions were written
            // with (Zipf-distributed there), so most queries are for ordinary words and a few
            // for words in most items: the tail is in p99.
            Arc::new(move |n| {
                let word = &words[crate::seed::Random::new(n).below(words.len() as u64) as usize];
                let category = crate::seed::CATEGORIES[n as usize % crate::seed::CATEGORIES.len()];
                request(
                    http::Method::GET,
                    &format!("/catalog/items?q={word}&category={category}"),
                )
                .body(Full::new(Bytes::new()))
                .unwrap()
            })
        }
        "logs-query" => {
            let token = setup.token_for(crate::BENCH_ADMIN).await?;
            const COMPONENTS: &[&str] = &["authenticate", "login", "messages", "catalog", "health"];
            Arc::new(move |n| {
                request(
                    http::Method::GET,
                    &format!(
                        "/logs?component={}&limit=50",
                        COMPONENTS[n as usize % COMPONENTS.len()]
                    ),
                )
                .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .unwrap()
            })
        }
        "similarity-cached" | "similarity-uncached" => {
            let token = setup.token_for("bench-appraiser").await?;
            let houses = reference_houses()?;
            let unique = scenario.name == "similarity-uncached";
            let (vary, low, high) = varied_feature()?;
            Arc::new(move |n| {
                let n = n as usize;
                let mut a = houses[n % houses.len()].clone();
                let b = houses[(n / houses.len() + 1 + n) % houses.len()].clone();
                if unique {
                    // A different value every request (within the model's range): a new pair.
                    let span = (high - low).max(1.0);
                    a[&vary] = json!((low + (n as f64 * 0.37) % span).round());
                } else {
                    a = houses[n % 4].clone();
                }
                let body = serde_json::to_vec(
                    &json!({"a": a, "b": if unique { b } else { houses[4 + n % 4].clone() }}),
                )
                .unwrap();
                request(http::Method::POST, "/similarity")
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            })
        }
        "similarity-search" => {
            let token = setup.token_for("bench-appraiser").await?;
            let houses = reference_houses()?;
            // The first search brings the listings index up to date with the seeded catalog.
            setup
                .post(
                    "/similarity/search",
                    &json!({"property": houses[0], "k": 10}),
                    Some(&token),
                )
                .await?;
            Arc::new(move |n| {
                let body = serde_json::to_vec(
                    &json!({"property": houses[n as usize % houses.len()], "k": 10}),
                )
                .unwrap();
                request(http::Method::POST, "/similarity/search")
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            })
        }
        "messages-inbox" | "messages-one" | "messages-unread" => {
            let reader = setup.token_for("bench-reader").await?;
            let writer = setup.token_for("bench-writer").await?;
            let sent = setup
                .post(
                    "/messages",
                    &json!({"to": "bench-reader", "body": "one to read"}),
                    Some(&writer),
                )
                .await?;
            let path: &'static str = match scenario.name {
                "messages-inbox" => "/messages?limit=50",
                "messages-unread" => "/messages/unread",
                _ => Box::leak(
                    format!("/messages/{}", sent["id"].as_str().unwrap_or_default())
                        .into_boxed_str(),
                ),
            };
            get(path, Some(reader))
        }
        "catalog-list" => Arc::new(move |n| {
            let category = crate::seed::CATEGORIES[n as usize % crate::seed::CATEGORIES.len()];
            request(
                http::Method::GET,
                &format!("/catalog/items?category={category}&sort=price&limit=20"),
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
        }),
        "catalog-categories" => get("/catalog/categories", None),
        "catalog-events" => {
            let total = setup.seeded.item_ids.len() + setup.seeded.listing_ids.len();
            Arc::new(move |n| {
                let after = (n as usize * 7919) % total.max(1);
                request(
                    http::Method::GET,
                    &format!("/catalog/events?after={after}&limit=100"),
                )
                .body(Full::new(Bytes::new()))
                .unwrap()
            })
        }
        "logs-window" => {
            let token = setup.token_for(crate::BENCH_ADMIN).await?;
            let path = format!(
                "/logs?since={}&until={}&limit=50",
                rfc3339_ago(3 * 86_400_000),
                rfc3339_ago(86_400_000)
            );
            get(Box::leak(path.into_boxed_str()), Some(token))
        }
        "logs-status" => {
            let token = setup.token_for(crate::BENCH_ADMIN).await?;
            get("/logs?status=4xx&limit=50", Some(token))
        }
        "logs-stats" => {
            let token = setup.token_for(crate::BENCH_ADMIN).await?;
            let since = rfc3339_ago(3_600_000);
            let path: &'static str =
                Box::leak(format!("/logs/stats?since={since}&bucket=minute").into_boxed_str());
            get(path, Some(token))
        }
        other => anyhow::bail!("no setup for scenario {other}"),
    })
}
