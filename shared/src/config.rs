//! Configuration from Spin variables. Every variable a component reads is declared in its
//! `[component.<id>.variables]` table in spin.toml (with a default at application level), so
//! an app-level override (`SPIN_VARIABLE_<NAME>`, `spin cloud variables set`) reaches it.

use std::str::FromStr;

use crate::error::ApiError;

/// The raw value of a component variable; an undeclared variable is a deployment bug.
pub async fn get(name: &str) -> Result<String, ApiError> {
    spin_sdk::variables::get(name).await.map_err(|error| {
        ApiError::internal(anyhow::anyhow!(
            "configuration variable {name:?}: {error:?}"
        ))
    })
}

/// A variable parsed as `T` and checked against `accept`; a bad value is a 500 that names the
/// variable in the log (never in the response).
pub async fn parse<T>(name: &str, accept: impl Fn(&T) -> bool) -> Result<T, ApiError>
where
    T: FromStr,
{
    let raw = get(name).await?;
    match raw.trim().parse::<T>() {
        Ok(value) if accept(&value) => Ok(value),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "configuration variable {name:?} has an invalid value"
        ))),
    }
}

/// A comma-separated list variable, trimmed, empty items dropped.
pub async fn list(name: &str) -> Result<Vec<String>, ApiError> {
    Ok(split_list(&get(name).await?))
}

pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A boolean variable: `true`/`false`, `on`/`off`, `1`/`0`, `yes`/`no`.
pub async fn flag(name: &str) -> Result<bool, ApiError> {
    match get(name).await?.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" | "" => Ok(false),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "configuration variable {name:?} is not a boolean"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_trimmed_and_skip_empty_items() {
        assert_eq!(split_list(" alice, bob ,,"), vec!["alice", "bob"]);
        assert!(split_list("").is_empty());
    }
}
