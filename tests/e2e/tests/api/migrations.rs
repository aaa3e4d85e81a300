use crate::helpers::*;

fn applied_migrations(app: &TestApp) -> Vec<(i64, String, String)> {
    let db = open_database(app);
    let mut statement = db
        .prepare("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn migration_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("migrations"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_fresh_database_gets_every_migration_in_order_on_first_use() {
    let app = spawn_app().await;
    app.get("/health").await.expect(200);
    let applied = applied_migrations(&app);
    let files = migration_files();
    assert_eq!(applied.len(), files.len());
    for ((version, name, _), file) in applied.iter().zip(&files) {
        assert_eq!(format!("{version:04}_{name}.sql"), *file);
    }
    let version: i64 = open_database(&app)
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, files.len() as i64);
}

#[tokio::test]
async fn concurrent_first_requests_migrate_exactly_once_and_all_succeed() {
    let app = spawn_app().await;
    let replies = futures::future::join_all((0..24).map(|_| app.get("/health"))).await;
    for reply in replies {
        reply.expect(200);
    }
    assert_eq!(applied_migrations(&app).len(), migration_files().len());
}

#[tokio::test]
async fn a_restart_keeps_the_data_and_does_not_migrate_again() {
    let mut app = spawn_app().await;
    app.get("/health").await.expect(200);
    let before = applied_migrations(&app);
    let request_id = "before-restart-1";
    app.send(
        app.request(reqwest::Method::GET, "/health")
            .header("x-request-id", request_id),
    )
    .await
    .expect(200);
    app.eventually(|| async {
        let count: i64 = open_database(&app)
            .query_row(
                "SELECT count(*) FROM log_entries WHERE request_id = ?",
                [request_id],
                |row| row.get(0),
            )
            .unwrap();
        (count > 0).then_some(())
    })
    .await;

    app.restart().await;
    app.get("/health").await.expect(200);
    assert_eq!(applied_migrations(&app), before, "nothing re-applied");
    let kept: i64 = open_database(&app)
        .query_row(
            "SELECT count(*) FROM log_entries WHERE request_id = ?",
            [request_id],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}
