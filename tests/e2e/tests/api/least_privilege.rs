//! Each component gets only the stores and variables it uses. spin.toml grants them; this test
//! proves every grant is needed: for each component and each of its grants, it starts Spin on
//! the same state with that one grant removed, runs requests that use everything the component
//! does, and expects a failure (a 5xx, or an error the component logs, for what only runs after
//! the response, such as sealing the log).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use e2e::{AppConfig, RunningSpin, workspace_root};

fn manifest() -> toml::Table {
    let text = std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

/// (component, "kv:<label>" or "var:<name>") for every grant in spin.toml.
fn grants() -> Vec<(String, String)> {
    let mut grants = Vec::new();
    for (id, component) in manifest()["component"].as_table().unwrap() {
        let stores = component
            .get("key_value_stores")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        for store in stores {
            grants.push((id.clone(), format!("kv:{}", store.as_str().unwrap())));
        }
        if let Some(variables) = component.get("variables").and_then(|v| v.as_table()) {
            for name in variables.keys() {
                grants.push((id.clone(), format!("var:{name}")));
            }
        }
    }
    grants
}

#[test]
fn every_app_variable_is_used_and_components_read_only_declared_ones() {
    let manifest = manifest();
    let declared: BTreeSet<String> = manifest["variables"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut used = BTreeSet::new();
    for (id, component) in manifest["component"].as_table().unwrap() {
        let Some(variables) = component.get("variables").and_then(|v| v.as_table()) else {
            continue;
        };
        for (name, template) in variables {
            assert_eq!(
                template.as_str(),
                Some(format!("{{{{ {name} }}}}").as_str()),
                "{id}.{name} passes the app variable of the same name"
            );
            assert!(declared.contains(name), "{id} reads undeclared {name}");
            used.insert(name.clone());
        }
    }
    assert_eq!(used, declared, "every app variable reaches some component");
    // Secrets reach only what needs them.
    let holders = |variable: &str| -> BTreeSet<String> {
        grants()
            .into_iter()
            .filter(|(_, grant)| *grant == format!("var:{variable}"))
            .map(|(id, _)| id)
            .collect()
    };
    assert_eq!(
        holders("jwt_private_key"),
        BTreeSet::from(["login".to_owned()])
    );
    assert_eq!(
        holders("admin_bootstrap_token"),
        BTreeSet::from(["accounts".to_owned()])
    );
    let store_holders = |label: &str| -> BTreeSet<String> {
        grants()
            .into_iter()
            .filter(|(_, grant)| *grant == format!("kv:{label}"))
            .map(|(id, _)| id)
            .collect()
    };
    assert_eq!(
        store_holders("signing"),
        BTreeSet::from(["login".to_owned()])
    );
    assert_eq!(
        store_holders("similarity_cache"),
        BTreeSet::from(["similarity".to_owned()])
    );
    assert!(!store_holders("sessions").contains("openapi"));
    assert!(!store_holders("sessions").contains("docs"));
}

/// A request an exercise sends: method, path, JSON body, and whether it carries a token.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    token: bool,
}

fn call(method: Method, path: &str, body: Option<Value>, token: bool) -> Call {
    Call {
        method,
        path: path.to_owned(),
        body,
        token,
    }
}

/// Requests that, together, use every grant `component` has (see the module documentation).
fn exercise(component: &str, item: &str, run: usize) -> Vec<Call> {
    let property = |n: usize| {
        json!({"living_area": 1000 + run * 7 + n, "year_built": 1960, "neighborhood": "Edwards",
               "bedrooms": 3, "lot_area": 8000, "overall_condition": 6, "total_basement_area": 900,
               "full_baths": 1, "half_baths": 0, "garage_cars": 1, "fireplaces": 0,
               "building_type": "OneFam", "house_style": "One_Story"})
    };
    match component {
        "health" => vec![call(Method::GET, "/health", None, true)],
        "openapi" => vec![call(Method::GET, "/openapi.json", None, false)],
        "docs" => vec![call(Method::GET, "/docs", None, false)],
        "accounts" => vec![
            call(
                Method::POST,
                "/auth/register",
                Some(json!({"username": format!("probe{run}"), "password": e2e::PASSWORD})),
                false,
            ),
            call(
                Method::POST,
                "/auth/bootstrap",
                Some(json!({"bootstrap_token": "not-the-credential-but-long-enough!!"})),
                true,
            ),
        ],
        "login" => vec![call(
            Method::POST,
            "/auth/login",
            Some(json!({"username": "prober", "password": e2e::PASSWORD})),
            false,
        )],
        "authenticate" => vec![call(Method::GET, "/auth/authenticate", None, true)],
        "messages" => vec![call(
            Method::POST,
            "/messages",
            Some(json!({"to": "recipient", "body": "hello"})),
            true,
        )],
        "catalog" => vec![call(
            Method::POST,
            &format!("/catalog/items/{item}/stock"),
            Some(json!({"delta": 1})),
            true,
        )],
        "similarity" => vec![call(
            Method::POST,
            "/similarity",
            Some(json!({"a": property(0), "b": property(1)})),
            true,
        )],
        "logs" => vec![call(Method::GET, "/logs/verify", None, true)],
        other => panic!("no exercise for {other}"),
    }
}

/// Sends the calls; returns a description of the first failure, if any.
async fn failure(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    calls: &[Call],
) -> Option<String> {
    for call in calls {
        let mut request = client.request(call.method.clone(), format!("{base}{}", call.path));
        if call.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let status = request.send().await.ok()?.status();
        if status.is_server_error() {
            return Some(format!("{} {} answered {status}", call.method, call.path));
        }
    }
    None
}

/// The manifest with `grant` taken from `component`.
fn without(component: &str, grant: &str) -> impl FnOnce(&mut toml::Table) {
    let (component, grant) = (component.to_owned(), grant.to_owned());
    move |manifest: &mut toml::Table| {
        let entry = manifest["component"][&component].as_table_mut().unwrap();
        match grant.split_once(':') {
            Some(("kv", label)) => {
                let stores = entry["key_value_stores"].as_array_mut().unwrap();
                stores.retain(|store| store.as_str() != Some(label));
            }
            Some(("var", name)) => {
                entry["variables"].as_table_mut().unwrap().remove(name);
            }
            _ => panic!("unknown grant {grant}"),
        }
    }
}

#[tokio::test]
async fn every_grant_in_spin_toml_is_needed_by_its_component() {
    if std::env::var("E2E_INSTANCE_REUSE").as_deref() == Ok("fresh") {
        return; // Nothing here depends on instance reuse; once is enough.
    }
    let app = spawn_app().await;
    let admin = app.admin("prober").await;
    app.register("recipient", e2e::PASSWORD).await;
    let item = app
        .post_json_with_token(
            "/catalog/items",
            &json!({"title": "Probe", "category": "tools", "price": {"amount": 1, "currency": "EUR"}}),
            &admin,
        )
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let mut unneeded = Vec::new();
    for (run, (component, grant)) in grants().into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = edited_manifest(
            &workspace_root().join("spin.toml"),
            dir.path(),
            without(&component, &grant),
        );
        let mut config = AppConfig::new(&app.config.state_dir);
        config.manifest = manifest;
        config.runtime_config = Some(app.config.state_dir.join("runtime-config.toml"));
        let spin = RunningSpin::start(&config).await.unwrap();
        let calls = exercise(&component, &item, run);
        // The next stored log entry gets an id that is a multiple of the seal interval, so the
        // component seals the chain right after these requests (with the keys it holds).
        open_database(&app)
            .execute(
                "UPDATE sqlite_sequence SET seq = (seq / 256 + 1) * 256 - 1 WHERE name = 'log_entries'",
                [],
            )
            .unwrap();
        let mut failed = failure(&client, &spin.base_url, &admin, &calls).await;
        if failed.is_none() {
            // What runs after responses (storing and sealing the log) fails in the log.
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            let output = spin.output();
            failed = ["log.store_failed", "config.invalid"]
                .iter()
                .find(|marker| output.contains(*marker))
                .map(|marker| marker.to_string());
        }
        if failed.is_none() {
            unneeded.push(format!("{component} {grant}"));
        }
        drop(spin);
    }
    assert!(unneeded.is_empty(), "granted but not needed: {unneeded:?}");
}
