//! Converts the repository's openapi.yaml to JSON once, at build time, so serving it costs
//! nothing and a malformed description fails the build.

use std::path::Path;

fn main() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source).expect("openapi.yaml is readable");
    let document: serde_json::Value =
        serde_yaml::from_str(&text).expect("openapi.yaml is valid YAML");
    assert_eq!(
        document["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true),
        "openapi.yaml must be OpenAPI 3.1"
    );
    let json = serde_json::to_vec(&document).unwrap();
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("openapi.json");
    std::fs::write(out, json).unwrap();
}
