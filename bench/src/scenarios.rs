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
        other if other.starts_with("GET:") => get(scenario.description, None),
        other => anyhow::bail!("no setup for scenario {other}"),
    })
}
