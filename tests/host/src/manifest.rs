//! The subset of Spin's manifest (version 2) that this app uses, parsed as strictly as Spin does:
//! unknown fields are errors, variables need a default or `required = true`, and every label a
//! component asks for must exist.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: u32,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default, rename = "trigger")]
    triggers: BTreeMap<String, Vec<RawHttpTrigger>>,
    #[serde(default, rename = "component")]
    components: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    version: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    #[allow(dead_code)]
    authors: Vec<String>,
}

/// An application variable from the `[variables]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub secret: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    route: RawRoute,
    component: String,
    #[serde(default)]
    executor: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    build: Option<toml::Table>,
}

/// A component as the host runs it.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub source: PathBuf,
    /// Component variable name -> template over application variables (`"{{ jwt_secret }}"`).
    pub variables: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
    pub key_value_stores: HashSet<String>,
    pub sqlite_databases: HashSet<String>,
}

/// An HTTP route of the app.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    /// The route as written in the manifest, e.g. `/catalog/...`.
    pub route: String,
    pub component: String,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub variables: BTreeMap<String, Variable>,
    pub components: BTreeMap<String, Component>,
    /// Public routes, in manifest order; private components are reachable by no route.
    pub routes: Vec<HttpRoute>,
}

/// The store and database labels Spin defines without runtime configuration.
const BUILT_IN_LABEL: &str = "default";

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("invalid manifest {}", path.display()))
    }

    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        ensure!(
            raw.spin_manifest_version == 2,
            "only spin_manifest_version = 2 is supported"
        );

        for (name, variable) in &raw.variables {
            validate_variable_name(name)?;
            ensure!(
                variable.required != variable.default.is_some(),
                "variable {name:?} must have exactly one of `default` or `required = true`"
            );
        }

        let mut components = BTreeMap::new();
        for (id, raw_component) in raw.components {
            validate_component_id(&id)?;
            for (name, template) in &raw_component.variables {
                validate_variable_name(name)?;
                for referenced in template_references(template)? {
                    ensure!(
                        raw.variables.contains_key(&referenced),
                        "component {id:?} variable {name:?} refers to unknown application variable {referenced:?}"
                    );
                }
            }
            for label in raw_component
                .key_value_stores
                .iter()
                .chain(&raw_component.sqlite_databases)
            {
                ensure!(
                    label == BUILT_IN_LABEL,
                    "component {id:?} uses store or database {label:?}, which needs runtime configuration this host does not read; only \"default\" is built in"
                );
            }
            ensure!(
                raw_component.allowed_outbound_hosts.is_empty(),
                "component {id:?} asks for outbound hosts; this app makes no outbound calls and the test host denies them"
            );
            let source = base.join(&raw_component.source);
            components.insert(
                id.clone(),
                Component {
                    id,
                    source,
                    variables: raw_component.variables,
                    environment: raw_component.environment,
                    key_value_stores: raw_component.key_value_stores.into_iter().collect(),
                    sqlite_databases: raw_component.sqlite_databases.into_iter().collect(),
                },
            );
        }

        let mut routes = Vec::new();
        for (trigger_type, triggers) in raw.triggers {
            ensure!(
                trigger_type == "http",
                "trigger type {trigger_type:?} is not supported by the test host"
            );
            for trigger in triggers {
                ensure!(
                    components.contains_key(&trigger.component),
                    "trigger refers to unknown component {:?}",
                    trigger.component
                );
                ensure!(
                    trigger.executor.is_none(),
                    "custom executors are not supported by the test host"
                );
                match trigger.route {
                    RawRoute::Path(route) => routes.push(HttpRoute {
                        route,
                        component: trigger.component,
                    }),
                    RawRoute::Private { private: true } => {}
                    RawRoute::Private { private: false } => bail!(
                        "route must be a string pattern or '{{ private = true }}': component {:?} has {{ private = false }}",
                        trigger.component
                    ),
                }
            }
        }

        Ok(Self {
            name: raw.application.name,
            variables: raw.variables,
            components,
            routes,
        })
    }
}

/// Spin's rule for variable names: lower-case letters, digits and single underscores,
/// starting with a letter and ending with a letter or digit.
pub fn validate_variable_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !name.contains("__");
    ensure!(valid, "invalid variable name {name:?}");
    Ok(())
}

fn validate_component_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && id.as_bytes()[0].is_ascii_lowercase();
    ensure!(valid, "invalid component id {id:?} (must be kebab-case)");
    Ok(())
}

/// A part of a component variable's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Variable(String),
}

/// Splits `"prefix-{{ name }}"` into literal and variable parts, as Spin's expressions do.
pub fn parse_template(template: &str) -> Result<Vec<TemplatePart>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after_open) = rest.strip_prefix("{{") {
            let (expr, after) = after_open
                .split_once("}}")
                .context("unmatched '{{' in template")?;
            parts.push(TemplatePart::Variable(expr.trim().to_owned()));
            rest = after;
        } else {
            let end = rest.find("{{").unwrap_or(rest.len());
            parts.push(TemplatePart::Literal(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    Ok(parts)
}

fn template_references(template: &str) -> Result<Vec<String>> {
    Ok(parse_template(template)?
        .into_iter()
        .filter_map(|part| match part {
            TemplatePart::Variable(name) => Some(name),
            TemplatePart::Literal(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
secret = { default = "", secret = true }
needed = { required = true }
[[trigger.http]]
route = "/hello/..."
component = "hello"
[[trigger.http]]
route = { private = true }
component = "hidden"
[component.hello]
source = "hello.wasm"
key_value_stores = ["default"]
[component.hello.variables]
token = "x-{{ secret }}"
[component.hidden]
source = "hidden.wasm"
"#;

    #[test]
    fn a_valid_manifest_yields_its_routes_and_components() {
        let manifest = Manifest::parse(MINIMAL, Path::new("/app")).unwrap();
        assert_eq!(manifest.routes.len(), 1);
        assert_eq!(manifest.routes[0].route, "/hello/...");
        assert_eq!(
            manifest.components["hello"].source,
            PathBuf::from("/app/hello.wasm")
        );
        assert!(
            manifest.components["hello"]
                .key_value_stores
                .contains("default")
        );
        assert!(manifest.components["hidden"].key_value_stores.is_empty());
    }

    #[test]
    fn unknown_fields_are_rejected_like_spin_does() {
        let text = MINIMAL.replace(
            "source = \"hello.wasm\"",
            "source = \"hello.wasm\"\nbogus = 1",
        );
        assert!(Manifest::parse(&text, Path::new("/")).is_err());
    }

    #[test]
    fn a_variable_needs_a_default_or_required() {
        let text = MINIMAL.replace("needed = { required = true }", "needed = { secret = true }");
        assert!(Manifest::parse(&text, Path::new("/")).is_err());
    }

    #[test]
    fn templates_must_refer_to_declared_variables() {
        let text = MINIMAL.replace("{{ secret }}", "{{ missing }}");
        assert!(Manifest::parse(&text, Path::new("/")).is_err());
    }

    #[test]
    fn non_default_labels_need_runtime_configuration() {
        let text = MINIMAL.replace(
            "key_value_stores = [\"default\"]",
            "key_value_stores = [\"cache\"]",
        );
        assert!(Manifest::parse(&text, Path::new("/")).is_err());
    }

    #[test]
    fn templates_split_into_literals_and_variables() {
        assert_eq!(
            parse_template("a{{ b }}c").unwrap(),
            vec![
                TemplatePart::Literal("a".into()),
                TemplatePart::Variable("b".into()),
                TemplatePart::Literal("c".into())
            ]
        );
        assert!(parse_template("{{ open").is_err());
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        assert!(validate_variable_name("jwt_secret").is_ok());
        for bad in ["", "Upper", "1abc", "ends_", "dou__ble", "has-dash"] {
            assert!(validate_variable_name(bad).is_err(), "{bad}");
        }
    }
}
