//! Benchmark scenarios: what each one sends, to which app, after what setup.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::load::RequestFactory;

/// Which running app a scenario targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// bench/spin.toml: the hello component, the floor.
    Floor,
    /// spin.toml with default settings.
    App,
    /// spin.toml with `access_log=off`, to price logging.
    AppWithoutAccessLog,
    /// spin.toml on a state directory seeded with many items, listings and log entries.
    Seeded,
}

#[derive(Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub target: Target,
    pub description: &'static str,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hello",
        target: Target::Floor,
        description: "GET /hello on the bench-only hello component (the floor)",
    },
    Scenario {
        name: "health",
        target: Target::App,
        description: "GET /health (SQLite and key-value checks)",
    },
    Scenario {
        name: "authenticate",
        target: Target::App,
        description: "GET /auth/authenticate with a valid token",
    },
    Scenario {
        name: "authenticate-no-access-log",
        target: Target::AppWithoutAccessLog,
        description: "GET /auth/authenticate with access_log=off",
    },
    Scenario {
        name: "messages-read",
        target: Target::App,
        description: "GET /messages?with=...&limit=50 (a page of a 200-message conversation)",
    },
    Scenario {
        name: "messages-write",
        target: Target::App,
        description: "POST /messages from 32 senders to one recipient",
    },
    Scenario {
        name: "catalog-get",
        target: Target::Seeded,
        description: "GET /catalog/items/{id} over the seeded items",
    },
    Scenario {
        name: "catalog-search",
        target: Target::Seeded,
        description: "GET /catalog/items?q=<word>&category=<category> over the seeded items",
    },
    Scenario {
        name: "logs-query",
        target: Target::Seeded,
        description: "GET /logs?component=<component>&limit=50 over the seeded log",
    },
    Scenario {
        name: "similarity-cached",
        target: Target::App,
        description: "POST /similarity for 16 pairs, cached after the warm-up",
    },
    Scenario {
        name: "similarity-uncached",
        target: Target::App,
        description: "POST /similarity for a new pair every time",
    },
    Scenario {
        name: "similarity-search",
        target: Target::Seeded,
        description: "POST /similarity/search with k=10 over the seeded listings",
    },
    Scenario {
        name: "login",
        target: Target::App,
        description: "POST /auth/login with the right password (argon2id-bound)",
    },
];

/// A named scenario, or `GET:/any/path` for an ad-hoc GET against the app.
pub fn find(name: &str) -> Option<Scenario> {
    if let Some(path) = name.strip_prefix("GET:") {
        let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
        return Some(Scenario {
            name: Box::leak(name.to_owned().into_boxed_str()),
            target: Target::App,
            description: path,
        });
    }
    SCENARIOS
        .iter()
        .find(|scenario| scenario.name == name)
        .map(|scenario| Scenario { ..*scenario })
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

fn get(path: &'static str, token: Option<String>) -> RequestFactory {
    Arc::new(move |_| {
        let mut builder = request(http::Method::GET, path);
        if let Some(token) = &token {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    })
}

/// Prepares a scenario against its app and returns what to send.
pub async fn prepare(scenario: &Scenario, setup: &Setup) -> Result<RequestFactory> {
    Ok(match scenario.name {
        "hello" => get("/hello", None),
        "health" => get("/health", None),
        "authenticate" | "authenticate-no-access-log" => get(
            "/auth/authenticate",
            Some(setup.token_for("bench-reader").await?),
        ),
        "login" => {
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
        "catalog-get" => {
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
        other if other.starts_with("GET:") => get(scenario.description, None),
        other => anyhow::bail!("no setup for scenario {other}"),
    })
}
