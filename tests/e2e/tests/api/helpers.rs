//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};

pub use e2e::{TestApp, spawn_app, spawn_app_with, workspace_root};

/// Writes a copy of a manifest into `dir` with `edit` applied, its component sources made
/// absolute so they still resolve, and returns its path.
pub fn edited_manifest(source: &Path, dir: &Path, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let text = std::fs::read_to_string(source).unwrap();
    let mut manifest: toml::Table = toml::from_str(&text).unwrap();
    let base = source.parent().unwrap();
    if let Some(components) = manifest.get_mut("component").and_then(|c| c.as_table_mut()) {
        for (_, component) in components.iter_mut() {
            let component = component.as_table_mut().unwrap();
            let relative = component["source"].as_str().unwrap().to_owned();
            component.insert(
                "source".into(),
                toml::Value::String(base.join(relative).display().to_string()),
            );
        }
    }
    edit(&mut manifest);
    let path = dir.join("spin.toml");
    std::fs::write(&path, toml::to_string(&manifest).unwrap()).unwrap();
    path
}

/// The `field` of each entry of a problem document's `errors`, in order.
pub fn error_fields(problem: &serde_json::Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect()
}

/// A connection to the app's SQLite file, to look at or tamper with what it stored.
pub fn open_database(app: &TestApp) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(app.config.state_dir.join("sqlite_db.db")).unwrap();
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    connection
}
