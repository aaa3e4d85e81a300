//! `spin:variables/variables@3.0.0` with Spin's resolution: a component sees only the variables
//! declared in its `[component.<id>.variables]` table; each is a template over application
//! variables, whose values come from `SPIN_VARIABLE_<NAME>` in the environment or else from the
//! manifest default. A required application variable with no value stops the host at start-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Result, bail};
use wasmtime::component::{Accessor, HasData};

use crate::bindings::variables::{self, Error};
use crate::manifest::{Manifest, TemplatePart, parse_template, validate_variable_name};

/// Every variable value of the app, resolved once at start-up.
#[derive(Debug)]
pub struct Resolver {
    application: HashMap<String, String>,
    /// Component id -> variable name -> template.
    templates: HashMap<String, BTreeMap<String, Vec<TemplatePart>>>,
}

impl Resolver {
    /// Resolves every application variable from `lookup_env` (the process environment in
    /// production) and the manifest defaults.
    pub fn new(manifest: &Manifest, lookup_env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut application = HashMap::new();
        let mut missing = Vec::new();
        for (name, variable) in &manifest.variables {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            match lookup_env(&env_name).or_else(|| variable.default.clone()) {
                Some(value) => {
                    application.insert(name.clone(), value);
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            bail!("no provider resolved required variable(s): {missing:?}");
        }
        let mut templates = HashMap::new();
        for (id, component) in &manifest.components {
            let mut parsed = BTreeMap::new();
            for (name, template) in &component.variables {
                parsed.insert(name.clone(), parse_template(template)?);
            }
            templates.insert(id.clone(), parsed);
        }
        Ok(Self {
            application,
            templates,
        })
    }

    pub fn resolve(&self, component: &str, name: &str) -> Result<String, Error> {
        validate_variable_name(name).map_err(|e| Error::InvalidName(e.to_string()))?;
        let template = self
            .templates
            .get(component)
            .and_then(|variables| variables.get(name))
            .ok_or_else(|| Error::Undefined(format!("no variable for {component:?}.{name:?}")))?;
        let mut value = String::new();
        for part in template {
            match part {
                TemplatePart::Literal(text) => value.push_str(text),
                TemplatePart::Variable(var) => match self.application.get(var) {
                    Some(text) => value.push_str(text),
                    None => return Err(Error::InvalidName(var.clone())),
                },
            }
        }
        Ok(value)
    }
}

/// Per-instance variables state.
pub struct VariablesInstance {
    component: String,
    resolver: Arc<Resolver>,
}

impl VariablesInstance {
    pub fn new(component: String, resolver: Arc<Resolver>) -> Self {
        Self {
            component,
            resolver,
        }
    }
}

/// Marker for the linker: the host data behind `spin:variables`.
pub struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a mut VariablesInstance;
}

impl variables::Host for VariablesInstance {}

impl<T: Send> variables::HostWithStore<T> for Variables {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(accessor.with(|mut access| {
            let state = access.get();
            state.resolver.resolve(&state.component, &name)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
greeting = { default = "hello" }
token = { required = true }
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
[component.web.variables]
message = "{{ greeting }}, {{ token }}!"
"#,
            Path::new("/"),
        )
        .unwrap()
    }

    #[test]
    fn environment_overrides_defaults_and_templates_render() {
        let resolver = Resolver::new(&manifest(), |name| match name {
            "SPIN_VARIABLE_TOKEN" => Some("t0k".into()),
            "SPIN_VARIABLE_GREETING" => Some("hi".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(resolver.resolve("web", "message").unwrap(), "hi, t0k!");
    }

    #[test]
    fn a_missing_required_variable_stops_start_up() {
        let error = Resolver::new(&manifest(), |_| None).unwrap_err();
        assert!(error.to_string().contains("token"));
    }

    #[test]
    fn undeclared_component_variables_are_undefined() {
        let resolver = Resolver::new(&manifest(), |_| Some("x".into())).unwrap();
        assert!(matches!(
            resolver.resolve("web", "greeting"),
            Err(Error::Undefined(_))
        ));
        assert!(matches!(
            resolver.resolve("web", "Bad-Name"),
            Err(Error::InvalidName(_))
        ));
    }
}
