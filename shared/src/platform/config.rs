//! Configuration from Spin variables. Every variable a component reads is declared in its
//! `[component.<id>.variables]` table in spin.toml (with a default at application level), so
//! an app-level override (`SPIN_VARIABLE_<NAME>`, `spin cloud variables set`, a SpinApp's
//! variables) reaches it.
//!
//! Values are read once per instance and kept: the operator sets them, and a Spin instance
//! lives for at most 128 requests (or until it idles), so a change reaches every new instance.
//! Reading a variable under Spin blocks a runtime thread (see [`crate::platform::host`]), which
//! is the other reason not to read it on every request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;

use crate::platform::host;

/// Why a variable could not be used: it is missing from the component's manifest entry or its
/// value is invalid. Both are deployment bugs, reported with the variable's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

thread_local! {
    static CACHE: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// The raw value of a component variable.
pub async fn get(name: &str) -> Result<String, ConfigError> {
    if let Some(value) = kept(name) {
        return Ok(value);
    }
    host::note_blocking_call();
    let value = spin_sdk::variables::get(name)
        .await
        .map_err(|error| ConfigError(format!("configuration variable {name:?}: {error:?}")))?;
    CACHE.with(|cache| cache.borrow_mut().insert(name.to_owned(), value.clone()));
    Ok(value)
}

/// The value of a variable this instance has already read, without a host call.
fn kept(name: &str) -> Option<String> {
    CACHE.with(|cache| cache.borrow().get(name).cloned())
}

/// A boolean variable this instance has already read and kept, without a host call (`None`
/// before the first read).
pub fn kept_flag(name: &str) -> Option<bool> {
    kept(name).and_then(|raw| parse_flag(name, &raw).ok())
}

/// A variable parsed as `T` and checked against `accept`.
pub async fn parse<T: FromStr>(name: &str, accept: impl Fn(&T) -> bool) -> Result<T, ConfigError> {
    parse_value(name, &get(name).await?, accept)
}

fn parse_value<T: FromStr>(
    name: &str,
    raw: &str,
    accept: impl Fn(&T) -> bool,
) -> Result<T, ConfigError> {
    match raw.trim().parse::<T>() {
        Ok(value) if accept(&value) => Ok(value),
        _ => Err(ConfigError(format!(
            "configuration variable {name:?} has an invalid value"
        ))),
    }
}

/// A boolean variable: `true`/`false`, `on`/`off`, `1`/`0`, `yes`/`no`.
pub async fn flag(name: &str) -> Result<bool, ConfigError> {
    parse_flag(name, &get(name).await?)
}

fn parse_flag(name: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" | "" => Ok(false),
        _ => Err(ConfigError(format!(
            "configuration variable {name:?} is not a boolean"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_parsed_and_checked() {
        assert_eq!(parse_value::<i64>("n", " 42 ", |n| *n > 0), Ok(42));
        assert!(parse_value::<i64>("n", "-1", |n| *n > 0).is_err());
        assert!(parse_value::<i64>("n", "x", |_| true).is_err());
    }

    #[test]
    fn a_kept_flag_is_known_only_once_read() {
        assert_eq!(kept_flag("kept_test_flag"), None);
        CACHE.with(|cache| {
            cache
                .borrow_mut()
                .insert("kept_test_flag".to_owned(), "off".to_owned())
        });
        assert_eq!(kept_flag("kept_test_flag"), Some(false));
    }

    #[test]
    fn flags_accept_the_usual_spellings() {
        assert_eq!(parse_flag("f", "On"), Ok(true));
        assert_eq!(parse_flag("f", "0"), Ok(false));
        assert_eq!(parse_flag("f", ""), Ok(false));
        assert!(parse_flag("f", "maybe").is_err());
    }
}
