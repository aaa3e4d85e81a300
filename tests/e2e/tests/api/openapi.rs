//! openapi.yaml must describe every route the manifest serves, and the app must serve it.

use crate::helpers::*;
use serde_json::Value;

/// Routes that are not API operations, and everything under them: the page that renders the
/// description (`/docs`, Swagger UI) is not part of it.
const NOT_DESCRIBED: &[&str] = &["/docs"];

/// Whether `route` (a spin.toml route or a route table's template) is one of [`NOT_DESCRIBED`].
fn not_described(route: &str) -> bool {
    NOT_DESCRIBED
        .iter()
        .any(|prefix| route == *prefix || route.starts_with(&format!("{prefix}/")))
}

fn manifest_routes() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|trigger| trigger["route"].as_str().map(str::to_owned))
        .filter(|route| !not_described(route))
        .collect()
}

fn document() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn described_paths() -> Vec<String> {
    document()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn every_route_in_the_manifest_is_described() {
    let paths = described_paths();
    for route in manifest_routes() {
        let described = match route.strip_suffix("/...") {
            Some(prefix) => paths
                .iter()
                .any(|path| path == prefix || path.starts_with(&format!("{prefix}/"))),
            None => paths.contains(&route),
        };
        assert!(
            described,
            "route {route} from spin.toml is missing from openapi.yaml"
        );
    }
}

#[test]
fn every_described_path_is_routed_by_the_manifest() {
    let routes = manifest_routes();
    for path in described_paths() {
        let routed = routes.iter().any(|route| match route.strip_suffix("/...") {
            Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}/")),
            None => *route == path,
        });
        assert!(
            routed,
            "openapi.yaml describes {path}, which spin.toml does not route"
        );
    }
}

/// Every (method, path template) the components' route tables declare, read from the
/// `shared::routes! { METHOD "template" => handler, ... }` blocks in their sources.
fn routed_operations() -> Vec<(String, String)> {
    let mut operations = Vec::new();
    let components = workspace_root().join("components");
    for entry in walk(&components) {
        let source = std::fs::read_to_string(&entry).unwrap();
        let Some(start) = source.find("routes! {") else {
            continue;
        };
        for line in source[start..].lines().skip(1) {
            if line.trim() == "}" {
                break;
            }
            let mut words = line.split_whitespace();
            let (Some(method), Some(template)) = (words.next(), words.next()) else {
                continue;
            };
            let template = template.trim_matches('"');
            if !not_described(template) {
                operations.push((method.to_lowercase(), template.to_owned()));
            }
        }
    }
    operations.sort();
    operations
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn described_operations() -> Vec<(String, String)> {
    let methods = ["get", "put", "post", "delete", "patch"];
    let mut operations = Vec::new();
    for (path, item) in document()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if methods.contains(&method.as_str()) {
                operations.push((method.clone(), path.clone()));
            }
        }
    }
    operations.sort();
    operations
}

#[test]
fn every_route_table_entry_is_described_and_every_described_operation_is_routed() {
    let routed = routed_operations();
    let described = described_operations();
    assert!(routed.len() > 20, "the route tables were read: {routed:?}");
    let missing: Vec<_> = routed.iter().filter(|op| !described.contains(op)).collect();
    assert!(
        missing.is_empty(),
        "routed but not in openapi.yaml: {missing:?}"
    );
    let unrouted: Vec<_> = described.iter().filter(|op| !routed.contains(op)).collect();
    assert!(
        unrouted.is_empty(),
        "in openapi.yaml but routed by no component: {unrouted:?}"
    );
}

#[test]
fn every_operation_documents_its_responses_and_request_examples() {
    let document = document();
    for (path, item) in document["paths"].as_object().unwrap() {
        let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
        for (method, operation) in item
            .as_object()
            .unwrap()
            .iter()
            .filter(|(key, _)| methods.contains(&key.as_str()))
        {
            let responses = operation["responses"].as_object();
            assert!(
                responses.is_some_and(|r| !r.is_empty()),
                "{method} {path} lists no responses"
            );
            if let Some(body) = operation.get("requestBody") {
                let json = &body["content"]["application/json"];
                assert!(
                    json.get("example").is_some() || json.get("examples").is_some(),
                    "{method} {path} has a request body without an example"
                );
                let statuses = responses.unwrap();
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        statuses.contains_key(status),
                        "{method} {path} takes JSON but does not document {status}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_description_is_served_as_json() {
    let app = spawn_app().await;
    let served = app.get("/openapi.json").await.expect(200).json();
    assert_eq!(served, document());
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[test]
fn the_property_schema_matches_the_models_features() {
    let metadata: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("models/ames-similarity.json")).unwrap(),
    )
    .unwrap();
    let schema = &document()["components"]["schemas"]["Property"];
    let features = metadata["features"].as_array().unwrap();
    let documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(documented.len(), features.len());
    for feature in features {
        let name = feature["name"].as_str().unwrap();
        let property = &schema["properties"][name];
        assert!(property.is_object(), "{name} is not documented");
        let required = schema["required"]
            .as_array()
            .unwrap()
            .contains(&Value::from(name));
        assert_eq!(required, feature["required"] == true, "{name}: required");
        if feature["type"] == "number" {
            assert_eq!(
                property["minimum"].as_f64(),
                feature["minimum"].as_f64(),
                "{name}"
            );
            assert_eq!(
                property["maximum"].as_f64(),
                feature["maximum"].as_f64(),
                "{name}"
            );
        } else {
            assert_eq!(property["enum"], feature["categories"], "{name}");
        }
    }
}
