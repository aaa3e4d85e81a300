//! The deployment files against spin.toml: every manifest under deploy/spinkube is valid YAML,
//! the SpinApp sets exactly the variables the app declares (the secret ones from a Secret that
//! holds them), and every runtime config (runtime-config/*.toml, the one in the SpinApp's Secret,
//! and the scale-out template rendered as render.sh renders it) defines every store a component
//! uses. Nothing here starts Spin.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::helpers::*;

/// What the template's placeholders are filled with here; render.sh takes them from the
/// environment.
const SAMPLE_ENVIRONMENT: [(&str, &str); 3] = [
    ("REDIS_URL", "redis://:password@redis.example:6379"),
    ("LIBSQL_URL", "https://db.example"),
    ("LIBSQL_TOKEN", "sample-token"),
];

fn manifest() -> toml::Table {
    let text = std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

/// Every label that some component lists under `field` (`key_value_stores`, `sqlite_databases`).
fn granted_labels(field: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for component in manifest()["component"].as_table().unwrap().values() {
        for label in component
            .get(field)
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            labels.insert(label.as_str().unwrap().to_owned());
        }
    }
    labels
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    paths.sort();
    paths
}

/// Every YAML document of deploy/spinkube/*.yaml, with the name of its file.
fn documents() -> Vec<(String, Value)> {
    let mut documents = Vec::new();
    for path in files(&workspace_root().join("deploy/spinkube"), ".yaml") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{name} is not valid YAML: {error}"));
            if !value.is_null() {
                documents.push((name.clone(), value));
            }
        }
    }
    documents
}

/// The only document of `kind`.
fn the(kind: &str) -> Value {
    let mut found: Vec<Value> = documents()
        .into_iter()
        .map(|(_, document)| document)
        .filter(|document| document["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} in deploy/spinkube");
    found.remove(0)
}

/// The text under `key` in the Secret named `name`, from `stringData` or (base64) `data`.
fn secret_value(name: &str, key: &str) -> Option<String> {
    use base64::Engine;
    let secret = documents()
        .into_iter()
        .map(|(_, document)| document)
        .find(|document| document["kind"] == "Secret" && document["metadata"]["name"] == name)?;
    if let Some(text) = secret["stringData"][key].as_str() {
        return Some(text.to_owned());
    }
    let encoded = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    Some(String::from_utf8(bytes).unwrap())
}

/// The scale-out template with its placeholders filled from [`SAMPLE_ENVIRONMENT`].
fn rendered(template: &str) -> String {
    SAMPLE_ENVIRONMENT
        .iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("${{{name}}}"), value)
        })
}

/// The `${NAME}` placeholders of a template.
fn placeholders(template: &str) -> BTreeSet<String> {
    template
        .split("${")
        .skip(1)
        .map(|rest| {
            rest.split_once('}')
                .expect("placeholder closed")
                .0
                .to_owned()
        })
        .collect()
}

/// Every runtime config the app may be started with: a description and its text.
fn runtime_configs() -> Vec<(String, String)> {
    let dir = workspace_root().join("runtime-config");
    let mut configs = Vec::new();
    for path in files(&dir, ".toml") {
        let text = std::fs::read_to_string(&path).unwrap();
        configs.push((path.display().to_string(), text));
    }
    for path in files(&dir, ".toml.template") {
        let text = rendered(&std::fs::read_to_string(&path).unwrap());
        configs.push((format!("{} rendered", path.display()), text));
    }
    let secret = the("SpinApp")["spec"]["runtimeConfig"]["loadFromSecret"]
        .as_str()
        .expect("the SpinApp loads its runtime config from a Secret")
        .to_owned();
    let text = secret_value(&secret, "runtime-config.toml")
        .unwrap_or_else(|| panic!("no Secret {secret} with a runtime-config.toml in deploy/"));
    configs.push((format!("Secret {secret}"), text));
    configs
}

/// The configs meant for several machines: the rendered template and the SpinApp's Secret.
fn scale_out_configs() -> Vec<(String, toml::Table)> {
    runtime_configs()
        .into_iter()
        .filter(|(name, _)| name.ends_with("rendered") || name.starts_with("Secret "))
        .map(|(name, text)| (name, toml::from_str(&text).unwrap()))
        .collect()
}

#[test]
fn every_deployment_manifest_is_valid_yaml_naming_its_kind() {
    let documents = documents();
    for (file, document) in &documents {
        for field in ["apiVersion", "kind"] {
            assert!(
                document[field].is_string(),
                "{file}: a document without {field}"
            );
        }
        assert!(
            document["metadata"]["name"].is_string(),
            "{file}: a document without metadata.name"
        );
    }
    let kinds: BTreeSet<&str> = documents
        .iter()
        .map(|(_, document)| document["kind"].as_str().unwrap())
        .collect();
    for kind in ["SpinApp", "Secret", "HorizontalPodAutoscaler"] {
        assert!(kinds.contains(kind), "no {kind} in deploy/spinkube");
    }
}

#[test]
fn the_spin_app_sets_exactly_the_variables_spin_toml_declares() {
    let manifest = manifest();
    let declared = manifest["variables"].as_table().unwrap();
    let app = the("SpinApp");
    assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1");
    let variables = app["spec"]["variables"].as_array().unwrap();
    let names: Vec<&str> = variables
        .iter()
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    let set: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(set.len(), names.len(), "a variable is set twice");
    let expected: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
    assert_eq!(set, expected, "the SpinApp's variables are spin.toml's");
    for variable in variables {
        let name = variable["name"].as_str().unwrap();
        let plain = variable.get("value").is_some();
        let from = variable.get("valueFrom").is_some();
        assert!(
            plain != from,
            "{name} has exactly one of value and valueFrom"
        );
        if plain {
            assert!(variable["value"].is_string(), "{name}'s value is a string");
        }
        if declared[name].get("secret").and_then(|s| s.as_bool()) == Some(true) {
            let reference = &variable["valueFrom"]["secretKeyRef"];
            let (secret, key) = (
                reference["name"].as_str().expect("secretKeyRef.name"),
                reference["key"].as_str().expect("secretKeyRef.key"),
            );
            assert!(
                secret_value(secret, key).is_some(),
                "secret {name} comes from {secret}/{key}, which deploy/spinkube defines"
            );
        }
    }
}

#[test]
fn the_spin_app_runs_as_the_operator_accepts_and_the_autoscaler_targets_its_deployment() {
    let app = the("SpinApp");
    let spec = &app["spec"];
    assert!(
        spec["image"]
            .as_str()
            .is_some_and(|image| !image.is_empty())
    );
    assert!(spec["executor"].as_str().is_some_and(|e| !e.is_empty()));
    // The operator's rule: replicas (at least 1) or enableAutoscaling, never both.
    if spec["enableAutoscaling"] == true {
        assert!(
            spec.get("replicas").is_none(),
            "replicas with enableAutoscaling"
        );
    } else {
        assert!(
            spec["replicas"].as_i64().is_some_and(|n| n >= 1),
            "replicas >= 1"
        );
    }
    let autoscaler = the("HorizontalPodAutoscaler");
    assert_eq!(autoscaler["apiVersion"], "autoscaling/v2");
    let target = &autoscaler["spec"]["scaleTargetRef"];
    assert_eq!(target["apiVersion"], "apps/v1");
    assert_eq!(target["kind"], "Deployment");
    assert_eq!(
        target["name"], app["metadata"]["name"],
        "the operator names the Deployment after the SpinApp"
    );
}

#[test]
fn every_runtime_config_names_every_store_label() {
    let stores = granted_labels("key_value_stores");
    let databases = granted_labels("sqlite_databases");
    assert!(!stores.is_empty());
    let configs = runtime_configs();
    let names: Vec<&str> = configs.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.len() >= 4,
        "local, redis, the template and the Secret: {names:?}"
    );
    for (name, text) in configs {
        assert!(
            text.trim_start().starts_with('#'),
            "{name} starts with a comment on what it is for"
        );
        let config: toml::Table =
            toml::from_str(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
        let defined = config
            .get("key_value_store")
            .and_then(|s| s.as_table())
            .unwrap_or_else(|| panic!("{name} has no [key_value_store.*]"));
        for label in &stores {
            let store = defined
                .get(label)
                .unwrap_or_else(|| panic!("{name} does not define key-value store {label}"));
            match store.get("type").and_then(toml::Value::as_str) {
                Some("spin") => {}
                Some("redis") => {
                    let url = store.get("url").and_then(|u| u.as_str()).unwrap_or("");
                    assert!(
                        url.starts_with("redis://") || url.starts_with("rediss://"),
                        "{name}: {label} has a redis:// url"
                    );
                }
                other => panic!("{name}: {label} has type {other:?}"),
            }
        }
        let sqlite = config.get("sqlite_database").and_then(|d| d.as_table());
        for (label, database) in sqlite.into_iter().flatten() {
            assert!(
                databases.contains(label),
                "{name}: no component uses database {label}"
            );
            match database.get("type").and_then(toml::Value::as_str) {
                Some("spin") => {}
                Some("libsql") => {
                    let url = database.get("url").and_then(|u| u.as_str()).unwrap_or("");
                    assert!(
                        url.starts_with("http://") || url.starts_with("https://"),
                        "{name}: {label}'s libsql url is http:// or https://, got {url:?}"
                    );
                    assert!(
                        database.get("token").is_some_and(|t| t.is_str()),
                        "{name}: {label} has a token (Spin requires it, even empty)"
                    );
                }
                other => panic!("{name}: database {label} has type {other:?}"),
            }
        }
    }
}

#[test]
fn scale_out_configs_keep_every_store_on_redis_and_sqlite_on_libsql() {
    let configs = scale_out_configs();
    assert!(configs.len() >= 2, "the rendered template and the Secret");
    for (name, config) in configs {
        for label in granted_labels("key_value_stores") {
            assert_eq!(
                config["key_value_store"][&label]["type"].as_str(),
                Some("redis"),
                "{name}: {label}"
            );
        }
        for label in granted_labels("sqlite_databases") {
            assert_eq!(
                config["sqlite_database"][&label]["type"].as_str(),
                Some("libsql"),
                "{name}: {label}"
            );
        }
    }
}

#[test]
fn redis_stores_never_share_a_database() {
    // Spin's Redis store does not prefix keys with the label: two labels on one database would
    // read and overwrite each other's keys.
    for (name, text) in runtime_configs() {
        let config: toml::Table = toml::from_str(&text).unwrap();
        let mut urls = BTreeSet::new();
        for (label, store) in config["key_value_store"].as_table().unwrap() {
            if store["type"].as_str() == Some("redis") {
                let url = store["url"].as_str().unwrap();
                assert!(urls.insert(url.to_owned()), "{name}: {label} shares {url}");
            }
        }
    }
}

#[test]
fn render_sh_fills_every_placeholder_of_the_template() {
    let dir = workspace_root().join("runtime-config");
    let script = std::fs::read_to_string(dir.join("render.sh")).unwrap();
    assert!(
        script.starts_with("#!/bin/sh\n"),
        "render.sh is a POSIX shell script"
    );
    let templates = files(&dir, ".toml.template");
    assert!(
        !templates.is_empty(),
        "a scale-out template in runtime-config/"
    );
    let sample: BTreeSet<String> = SAMPLE_ENVIRONMENT
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    for path in templates {
        let template = std::fs::read_to_string(&path).unwrap();
        assert_eq!(placeholders(&template), sample, "{}", path.display());
        for name in &sample {
            assert!(
                script.contains(&format!("{{{name}}}")),
                "render.sh fills {name}"
            );
        }
        assert!(!rendered(&template).contains("${"), "{}", path.display());
    }
}
