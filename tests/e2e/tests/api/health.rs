use crate::helpers::*;

#[tokio::test]
async fn anonymous_callers_learn_only_pass_or_fail() {
    let app = spawn_app().await;
    let reply = app.get("/health").await.expect(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), serde_json::json!({"status": "pass"}));
    let (_, user) = app.signed_in_user("curious").await;
    let body = app
        .get_with_token("/health", &user)
        .await
        .expect(200)
        .json();
    assert_eq!(body, serde_json::json!({"status": "pass"}));
}

#[tokio::test]
async fn health_passes_with_both_stores_and_the_current_schema() {
    let app = spawn_app().await;
    let admin = app.admin("operator").await;
    let reply = app.get_with_token("/health", &admin).await.expect(200);
    let body = reply.json();
    assert_eq!(body["status"], "pass");
    assert_eq!(body["checks"]["key_value"]["status"], "pass");
    let sqlite = &body["checks"]["sqlite"];
    assert_eq!(sqlite["status"], "pass");
    assert!(sqlite["latest_schema_version"].as_i64().unwrap() >= 1);
    assert_eq!(sqlite["schema_version"], sqlite["latest_schema_version"]);
    assert_eq!(sqlite["journal_mode"], "wal");
}

#[tokio::test]
async fn a_callers_request_id_is_echoed_and_otherwise_one_is_generated() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.request(reqwest::Method::GET, "/health")
                .header("x-request-id", "trace-42"),
        )
        .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-42"));

    let generated = app.get("/health").await;
    let id = generated.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let unsafe_id = app
        .send(
            app.request(reqwest::Method::GET, "/health")
                .header("x-request-id", "a b"),
        )
        .await;
    assert_ne!(unsafe_id.header("x-request-id"), Some("a b"));
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let app = spawn_app().await;
    let reply = app
        .send(app.request(reqwest::Method::POST, "/health"))
        .await;
    assert_eq!(reply.header("allow"), Some("GET"));
    reply.problem(405);
}

#[tokio::test]
async fn health_is_503_when_the_key_value_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = edited_manifest(
        &workspace_root().join("spin.toml"),
        dir.path(),
        |manifest| {
            let health = manifest["component"]["health"].as_table_mut().unwrap();
            health.insert("key_value_stores".into(), toml::Value::Array(vec![]));
        },
    );
    let app = spawn_app_with(|mut config| {
        config.manifest = manifest;
        config
    })
    .await;
    let body = app.get("/health").await.expect(503).json();
    assert_eq!(body, serde_json::json!({"status": "fail"}));
    // The cause is for operators: it is in the log, not in the answer.
    let output = app
        .eventually(|| async {
            let output = app.spin.output();
            output.contains("health.check_failed").then_some(output)
        })
        .await;
    assert!(output.contains("AccessDenied"), "{output}");
}

#[tokio::test]
async fn health_is_503_when_the_database_file_is_not_a_database() {
    let app = spawn_app_with(|config| {
        std::fs::create_dir_all(&config.state_dir).unwrap();
        std::fs::write(config.state_dir.join("sqlite_db.db"), vec![0x42; 8192]).unwrap();
        config
    })
    .await;
    let body = app.get("/health").await.expect(503).json();
    assert_eq!(body, serde_json::json!({"status": "fail"}));
    assert!(app.spin.output().contains("health.check_failed"));
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let app = spawn_app().await;
    assert_eq!(app.get("/no/such/route").await.status, 404);
}
