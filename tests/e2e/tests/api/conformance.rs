//! The test host must behave like Spin 4 for everything the app relies on. These tests run the
//! probe fixture (tests/fixtures/probe) and compare what it sees with Spin's documented and
//! implemented behaviour.

use std::time::Duration;

use crate::helpers::*;

async fn spawn_probe() -> TestApp {
    spawn_probe_with(|config| config).await
}

async fn spawn_probe_with(customise: impl FnOnce(HostConfig) -> HostConfig) -> TestApp {
    spawn_app_with(|mut config| {
        config.manifest = workspace_root().join("tests/fixtures/probe.toml");
        customise(config.variable("needed", "world"))
    })
    .await
}

#[tokio::test]
async fn requests_carry_the_spin_headers_and_an_absolute_uri() {
    let app = spawn_probe().await;
    let body = app.get("/probe/items/headers?x=1").await.expect(200).json();
    let headers = &body["headers"];
    let base = &app.host.base_url;
    assert_eq!(headers["spin-path-info"], "/items/headers");
    assert_eq!(headers["spin-matched-route"], "/probe/...");
    assert_eq!(headers["spin-raw-component-route"], "/probe/...");
    assert_eq!(headers["spin-component-route"], "/probe");
    assert_eq!(headers["spin-base-path"], "/");
    assert_eq!(
        headers["spin-full-url"],
        format!("{base}/probe/items/headers?x=1")
    );
    assert!(
        headers["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(headers.get("connection").is_none());
    assert_eq!(body["uri"], format!("{base}/probe/items/headers?x=1"));
}

#[tokio::test]
async fn exact_routes_win_and_the_longest_wildcard_prefix_wins() {
    let app = spawn_probe().await;
    let exact = app.get("/probe/exact/headers").await.expect(200).json();
    assert_eq!(
        exact["headers"]["spin-component-route"],
        "/probe/exact/headers"
    );
    assert_eq!(exact["headers"]["spin-path-info"], "");
    let wildcard = app
        .get("/probe/exact/other/headers")
        .await
        .expect(200)
        .json();
    assert_eq!(wildcard["headers"]["spin-component-route"], "/probe");
    let catch_all = app.get("/elsewhere/headers").await.expect(200).json();
    assert_eq!(catch_all["headers"]["spin-component-route"], "");
    assert_eq!(catch_all["headers"]["spin-path-info"], "/elsewhere/headers");
}

#[tokio::test]
async fn spin_well_known_health_answers() {
    let app = spawn_probe().await;
    assert_eq!(
        app.get("/.well-known/spin/health").await.expect(200).text(),
        "OK"
    );
}

#[tokio::test]
async fn instances_are_reused_for_sequential_requests_up_to_the_limit() {
    let app = spawn_probe().await;
    let mut counts = Vec::new();
    for _ in 0..130 {
        let body = app.get("/probe/instance").await.expect(200).json();
        counts.push(body["served"].as_u64().unwrap());
    }
    match InstanceReuse::from_env() {
        InstanceReuse::Spin => {
            assert!(counts.iter().max().unwrap() <= &128, "{counts:?}");
            assert!(counts.contains(&100), "one instance served many requests");
            assert!(
                counts[128..].contains(&1),
                "a new instance after 128: {counts:?}"
            );
        }
        InstanceReuse::Fresh => assert!(counts.iter().all(|&n| n == 1), "{counts:?}"),
    }
}

#[tokio::test]
async fn one_instance_serves_several_requests_at_once() {
    let app = spawn_probe().await;
    let requests = (0..8).map(|_| app.get("/probe/sleep?ms=400"));
    let replies = futures::future::join_all(requests).await;
    let most_at_once = replies
        .into_iter()
        .map(|reply| {
            reply.expect(200).json()["in_flight_at_start"]
                .as_u64()
                .unwrap()
        })
        .max()
        .unwrap();
    match InstanceReuse::from_env() {
        InstanceReuse::Spin => assert!(most_at_once >= 2, "requests shared an instance"),
        InstanceReuse::Fresh => assert_eq!(most_at_once, 1),
    }
}

#[tokio::test]
async fn undeclared_stores_and_databases_are_refused_with_access_denied() {
    let app = spawn_probe().await;
    let error = async |path: &str| {
        app.get(path).await.json()["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(error("/bare/kv?label=default").await, "Error::AccessDenied");
    assert_eq!(
        error("/bare/sqlite?label=default").await,
        "Error::AccessDenied"
    );
    // Spin checks the grant before it checks whether the label exists.
    assert_eq!(error("/probe/kv?label=cache").await, "Error::AccessDenied");
    assert_eq!(
        error("/probe/sqlite?label=other").await,
        "Error::AccessDenied"
    );
    assert_eq!(app.get("/probe/kv?label=default").await.json()["ok"], true);
    assert_eq!(
        app.get("/probe/sqlite?label=default").await.json()["ok"],
        true
    );
}

#[tokio::test]
async fn sqlite_statement_errors_arrive_through_the_result_future() {
    let app = spawn_probe().await;
    let body = app.get("/probe/sqlite-error").await.json();
    assert_eq!(body["reported"], "future");
    assert!(body["error"].as_str().unwrap().contains("no such table"));
}

#[tokio::test]
async fn variables_resolve_from_templates_and_only_for_declaring_components() {
    let app = spawn_probe().await;
    assert_eq!(
        app.get("/probe/variable?name=message").await.json()["value"],
        "hello, world!"
    );
    let undeclared = app.get("/probe/variable?name=greeting").await.json();
    assert!(
        undeclared["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::Undefined")
    );
    let invalid = app.get("/probe/variable?name=Bad-Name").await.json();
    assert!(
        invalid["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::InvalidName")
    );
    let other_component = app.get("/bare/variable?name=message").await.json();
    assert!(
        other_component["error"]
            .as_str()
            .unwrap()
            .starts_with("Error::Undefined")
    );
}

#[tokio::test]
async fn environment_variables_override_manifest_defaults() {
    let app = spawn_probe_with(|config| config.variable("greeting", "hi")).await;
    assert_eq!(
        app.get("/probe/variable?name=message").await.json()["value"],
        "hi, world!"
    );
}

#[tokio::test]
async fn a_required_variable_without_a_value_stops_the_host() {
    let state = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(state.path());
    config.manifest = workspace_root().join("tests/fixtures/probe.toml");
    let error = match e2e::RunningHost::start(&config).await {
        Ok(_) => panic!("the host started without a required variable"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("needed"), "{error}");
}

#[tokio::test]
async fn outbound_http_is_denied() {
    let app = spawn_probe().await;
    let body = app.get("/probe/outbound").await.json();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{body}"
    );
}

#[tokio::test]
async fn key_value_data_lives_in_spins_file_under_the_state_directory() {
    let mut app = spawn_probe().await;
    app.get("/probe/kv?label=default").await.expect(200);
    app.restart().await;
    let connection =
        rusqlite::Connection::open(app.config.state_dir.join("sqlite_key_value.db")).unwrap();
    let value: Vec<u8> = connection
        .query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'probe'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(value, b"1");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
